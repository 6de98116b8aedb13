// grpo_trainer: one run of the reference GRPO trainer (warm start, then GRPO with rhythm's credit).
//
//   build/release/examples/grpo_trainer/grpo_trainer --shaping coupled_rhythm --out runs/one
//   build/release/examples/grpo_trainer/grpo_trainer --help            every knob and its default
//
// Files under --out: metrics.jsonl, warm_start.pt, checkpoint.pt, curves.png (training.hpp).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "options.hpp"
#include "training.hpp"

int main(int argc, char** argv) {
  grpo::ensure_passive_openmp(argv);
  grpo::keep_freed_memory();
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one progress line at a time, also into a file or a pipe
  grpo::trainer_options opt;
  CLI::App app{"rhythm's reference GRPO trainer: warm start, GRPO with rhythm's credit assignment, evaluation"};
  grpo::add_trainer_options(app, opt);
  CLI11_PARSE(app, argc, argv);
  try {
    const auto summary = grpo::run_training(opt);
    const double total = summary.t_rollout + summary.t_attention + summary.t_credit + summary.t_update;
    if (summary.steps > 0)
      std::printf("%lld GRPO steps in %.1f s: rollout %.1f%%, attention pass %.2f%%, rhythm credit %.2f%%, update %.1f%%; "
                  "%.0f rollout tokens/s\n",
                  static_cast<long long>(summary.steps), total, 100 * summary.t_rollout / total,
                  100 * summary.t_attention / total, 100 * summary.t_credit / total, 100 * summary.t_update / total,
                  double(summary.rollout_tokens) / summary.t_rollout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "grpo_trainer: %s\n", e.what());
    return 1;
  }
}
