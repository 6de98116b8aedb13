#pragma once
/// A whole run, top to bottom: set up, warm start (or load one), GRPO steps with held-out evaluations
/// and checkpoints, curves. The files under opt.out_dir:
///
///   metrics.jsonl    one JSON object per warm-start report, GRPO step and evaluation (metrics.hpp), and
///                    last the rhythm statistics of the final model's held-out greedy traces (trace_rhythm)
///   warm_start.pt    the model after the warm start (start GRPO from it with --init-from)
///   checkpoint.pt    the latest GRPO checkpoint (continue with --resume; checkpoint.hpp)
///   curves.png       reward, held-out accuracy, gamma and the step time split (curves.hpp)
///
/// Determinism (on the CPU): with the same options (threads included) a run repeats exactly, and a run
/// resumed from a checkpoint at step s writes the same metrics for steps >= s as the uninterrupted run.
/// On CUDA, atomics in some backward kernels make runs differ in the last bits. GRPO draws its
/// problems and samples from generators seeded at its step 0 from opt.seed alone, so every arm started
/// from the same warm start sees the same problems; evaluation uses generators of its own.
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <rhythm/torch.hpp>

#include "checkpoint.hpp"
#include "curves.hpp"
#include "evaluation.hpp"
#include "grpo_step.hpp"
#include "metrics.hpp"
#include "model.hpp"
#include "options.hpp"
#include "tasks.hpp"
#include "tokenizer.hpp"

namespace grpo {

/// What a run measured (the runner's table reads it).
struct run_summary {
  std::vector<std::pair<std::int64_t, eval_result>> evals;  ///< (step, result), step 0 = after the warm start
  double warm_start_seconds = 0.0;
  std::int64_t steps = 0;  ///< GRPO steps run by this process
  double t_rollout = 0.0, t_attention = 0.0, t_credit = 0.0, t_update = 0.0;  ///< summed over those steps
  std::int64_t rollout_tokens = 0;
  rhythm::rhythm_stats rhythm;  ///< of the final model's greedy traces of the held-out problems (trace_rhythm)

  const eval_result& final_eval() const { return evals.back().second; }
};

/// "cpu", "cuda" or "auto"; std::invalid_argument when CUDA is asked for but absent.
inline ::torch::Device resolve_device(const std::string& name) {
  const bool cuda = ::torch::cuda::is_available();
  if (name == "cuda" && !cuda) throw std::invalid_argument("--device: expected a device LibTorch has, got 'cuda' "
                                                           "(this LibTorch sees no CUDA device)");
  return (name == "cuda" || (name == "auto" && cuda)) ? ::torch::Device(::torch::kCUDA) : ::torch::Device(::torch::kCPU);
}

/// A warning when a 256 x 256 float matmul runs below 15 GFLOP/s (the reference BLAS gives ~6, OpenBLAS ~60
/// on the development machine; ../shared/notes/trainer-calibration.md). Empty otherwise.
inline std::string slow_blas_warning() {
  const auto a = ::torch::randn({256, 256}), b = ::torch::randn({256, 256});
  (void)a.matmul(b);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) (void)a.matmul(b);
  const double gflops = 20 * 2.0 * 256 * 256 * 256 / seconds_since(start, ::torch::Device(::torch::kCPU)) / 1e9;
  if (gflops >= 15.0) return {};
  char line[200];
  std::snprintf(line, sizeof line, "a 256x256 matmul ran at %.1f GFLOP/s: LibTorch may be on the reference BLAS "
                "(install libopenblas0-pthread; scripts/deps does)", gflops);
  return line;
}

inline model_config model_config_of(const trainer_options& opt) {
  model_config c;
  c.vocab_size = tokenizer::vocab_size();
  c.d_model = opt.d_model;
  c.n_layers = opt.n_layers;
  c.n_heads = opt.n_heads;
  c.n_kv_heads = opt.n_kv_heads;
  c.max_seq_len = max_sequence_length;
  return c;
}

/// Runs the warm start and GRPO as `opt` says (see the file comment). Progress goes to stdout.
/// `task_override` replaces the task named by opt.task (tests use it to give rewards a random model earns).
inline run_summary run_training(const trainer_options& opt, const task* task_override = nullptr) {
  validate(opt);
  const auto device = resolve_device(opt.device);
  if (const auto warning = configure_cpu_threads(opt.threads); !warning.empty()) std::printf("warning: %s\n", warning.c_str());
  if (const auto warning = slow_blas_warning(); !warning.empty()) std::printf("warning: %s\n", warning.c_str());
  ::torch::manual_seed(opt.seed);
  const tokenizer tok;
  const task& t = task_override ? *task_override : find_task(opt.task);
  transformer model(model_config_of(opt));
  model->to(device);
  const auto layers = opt.capture_layers.empty() ? default_capture_layers(opt.n_layers) : opt.capture_layers;
  const auto eval_set = held_out_problems(t, opt.level, opt.eval_problems, opt.seed);
  const std::filesystem::path out(opt.out_dir);
  std::filesystem::create_directories(out);

  ::torch::optim::AdamW optimizer(model->parameters(), ::torch::optim::AdamWOptions(opt.rl_lr).weight_decay(opt.weight_decay));
  run_state state;
  state.phase = "rl";
  state.problem_rng.seed(opt.seed ^ 0x9e37'79b9'7f4a'7c15ull);
  auto sampling = make_generator(device, opt.seed + 1);
  if (!opt.resume.empty()) {
    state = load_checkpoint(opt.resume, model, &optimizer);
    if (state.phase != "rl") throw std::runtime_error("--resume: '" + opt.resume + "' is not a GRPO checkpoint");
    sampling.set_state(state.sampling_state);
  } else if (!opt.init_from.empty()) {
    (void)load_checkpoint(opt.init_from, model, nullptr);
  }
  metrics_log log((out / "metrics.jsonl").string(), opt.resume.empty() ? -1 : state.step);
  run_summary summary;
  auto report = [&](std::int64_t step) {
    const auto e = evaluate(model, t, tok, eval_set, opt.eval_k, opt.max_new_tokens, opt.seed * 1'000'003ull + std::uint64_t(step));
    log.write(to_json(step, e));
    std::printf("%s\n", eval_line(step, e, opt.eval_k).c_str());
    summary.evals.emplace_back(step, e);
  };

  if (opt.resume.empty() && opt.init_from.empty() && opt.sft_steps > 0) {
    const auto start = std::chrono::steady_clock::now();
    std::mt19937_64 rng(opt.seed);
    ::torch::optim::AdamW sft(model->parameters(), ::torch::optim::AdamWOptions(opt.sft_lr).weight_decay(0.0));
    double recent = 0;
    warm_start_batches batches(t, opt.level, opt.sft_batch);
    for (std::int64_t s = 0; s < opt.sft_steps; ++s) {
      set_learning_rate(sft, warm_start_learning_rate(s, opt.sft_steps, opt.sft_lr, opt.sft_warmup));
      const auto [prompts, solutions] = batches.next(rng);
      recent += warm_start_step(model, sft, tok, prompts, solutions);
      if ((s + 1) % 100 == 0 || s + 1 == opt.sft_steps) {
        const auto count = double((s + 1) % 100 == 0 ? 100 : (s + 1) % 100);
        const double seconds = seconds_since(start, device);
        log.write({{"phase", "warm_start"}, {"step", s + 1}, {"loss", recent / count}, {"seconds", seconds}});
        if (!opt.quiet)
          std::printf("warm start %5lld/%lld | loss %.4f | %.1f s\n", static_cast<long long>(s + 1),
                      static_cast<long long>(opt.sft_steps), recent / count, seconds);
        recent = 0;
      }
    }
    summary.warm_start_seconds = seconds_since(start, device);
    run_state warm;
    warm.sampling_state = sampling.get_state();
    warm.step = opt.sft_steps;
    save_checkpoint((out / "warm_start.pt").string(), model, nullptr, warm);
  }

  auto credit = credit_assigner_of(opt);
  grpo_context ctx{model, optimizer, credit, t, tok, opt, layers, state.problem_rng, sampling};
  for (std::int64_t step = state.step; step < opt.rl_steps; ++step) {
    if (step % opt.eval_every == 0) report(step);
    const auto stats = grpo_step(ctx, step);
    log.write(to_json(stats));
    if (!opt.quiet) std::printf("%s\n", progress_line(stats, opt.rl_steps).c_str());
    std::fflush(stdout);
    ++summary.steps;
    summary.t_rollout += stats.t_rollout, summary.t_attention += stats.t_attention;
    summary.t_credit += stats.t_credit, summary.t_update += stats.t_update;
    summary.rollout_tokens += stats.rollout_tokens;
    if ((step + 1) % opt.checkpoint_every == 0 || step + 1 == opt.rl_steps) {
      state.step = step + 1;
      state.sampling_state = sampling.get_state();
      save_checkpoint((out / "checkpoint.pt").string(), model, &optimizer, state);
    }
  }
  if (summary.evals.empty() || summary.evals.back().first != opt.rl_steps) report(opt.rl_steps);
  summary.rhythm = trace_rhythm(model, tok, eval_set, opt, layers);
  log.write(to_json(opt.rl_steps, summary.rhythm));
  write_run_curves((out / "metrics.jsonl").string(), (out / "curves.png").string(), opt.shaping);
  return summary;
}

}  // namespace grpo
