// grpo_experiments: arms x seeds x tasks of the reference trainer and the results table
// (experiments.hpp). With no flag: the rule task, one seed, GRPO against coupled_rhythm.
//
//   build/release/examples/grpo_trainer/grpo_experiments --arms grpo,coupled_rhythm,random --seeds 1,2,3
//   ... --jobs 2 --threads 1      two runs at once, one thread each (twice the throughput on 2 cores)
//   build/release/examples/grpo_trainer/grpo_experiments --help      every knob (the trainer's as well)
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <exception>

#include "experiments.hpp"

int main(int argc, char** argv) {
  grpo::ensure_passive_openmp(argv);
  grpo::keep_freed_memory();
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // one progress line at a time, also into a file or a pipe
  grpo::trainer_options opt;
  opt.out_dir = "runs/experiments";
  grpo::experiment_plan plan;
  CLI::App app{"rhythm's experiment runner: arms x seeds x tasks of the reference GRPO trainer"};
  grpo::add_trainer_options(app, opt);
  app.add_option("--tasks", plan.tasks, "tasks")->delimiter(',')->capture_default_str()
      ->check(CLI::IsMember({"countdown", "arithmetic", "planning", "chain", "rule"}));
  app.add_option("--arms", plan.arms, "--shaping names, each optionally with +bottom_q (the ablation); grpo is the "
                                      "baseline of the paired difference")
      ->delimiter(',')->capture_default_str();
  app.add_option("--seeds", plan.seeds, "seeds")->delimiter(',')->capture_default_str();
  app.add_option("--jobs", plan.jobs, "runs at once, each in its own process")->capture_default_str()
      ->check(CLI::Range(1, 64));
  CLI11_PARSE(app, argc, argv);
  try {
    const auto start = std::chrono::steady_clock::now();
    const auto table = grpo::run_experiments(opt, plan);
    std::printf("\n%s\nin %.0f s; table, per-run numbers and curves under %s\n", table.c_str(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), opt.out_dir.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "grpo_experiments: %s\n", e.what());
    return 1;
  }
}
