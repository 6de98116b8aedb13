// grpo_experiments: arms x seeds x tasks of the reference trainer (train_grpo.cpp) and the results table.
// With no flag: the rule task, one seed, GRPO against coupled_rhythm.
//
//   build/release/examples/grpo_trainer/grpo_experiments --arms grpo,coupled_rhythm,random --seeds 1,2,3
//   ... --jobs 2 --threads 1      two runs at once, one thread each (twice the throughput on 2 cores)
//   build/release/examples/grpo_trainer/grpo_experiments --help      every knob (the trainer's as well)
//
// Per (task, seed) one warm start is trained and every arm starts GRPO from it with the same seed, so
// arms see the same problems in the same order and differ only in their credit: the comparison is
// paired by seed. Per (task, arm) the table gives the final held-out greedy pass@1 and avg@k as mean
// and 95 % interval over seeds (Student t, n - 1 degrees of freedom; none for one seed), the paired
// difference of pass@1 against `grpo` (mean of per-seed differences, same interval), and the step time
// split; a second table gives the rhythm statistics of the warm starts' and every arm's final greedy
// traces (FAI peaks following WAAD peaks against a shuffled baseline). An arm is a --shaping name, or
// one with "+bottom_q" (arm_options). All warm starts run first, then all arms; `jobs` of them at once
// (run_all), each in a child process. Fewer warm starts than jobs share the idle jobs' threads (the
// demo's one warm start runs on both cores with --jobs 2 --threads 1).
//
// Files under --out: <task>/seed<s>/warm_start_<key>/ and <task>/seed<s>/<arm>/ (each run's files, see
// train_grpo.cpp, and log.txt with its output when jobs > 1), results.md (the table), results.json
// (every run's numbers) and <task>_curves.png (write_arm_comparison). A warm start is reused when its
// directory exists: <key> hashes every option it depends on.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#define GRPO_TRAIN_NO_MAIN
#include "train_grpo.cpp"

namespace grpo {

/// Mean of y over runs at each x of the first run (runs of one arm share their steps).
inline std::vector<double> mean_over_runs(const std::vector<const std::vector<double>*>& ys) {
  std::vector<double> out(ys.empty() ? 0 : ys.front()->size(), 0.0);
  for (const auto* y : ys)
    for (std::size_t i = 0; i < out.size() && i < y->size(); ++i) out[i] += (*y)[i] / double(ys.size());
  return out;
}

/// arms: arm name -> its runs' curves (one per seed). Title names the task.
inline void write_arm_comparison(const std::map<std::string, std::vector<run_curves>>& arms, const std::string& title,
                                 const std::string& png_path) {
  std::vector<plot::chart> charts(3);
  charts[0] = {title + ": held-out greedy pass@1", "step", "accuracy", {}, 0.0, {}};
  charts[1] = {title + ": held-out avg@k", "step", "accuracy", {}, 0.0, {}};
  charts[2] = {title + ": training reward, 20-step mean", "step", "reward", {}, 0.0, {}};
  for (const auto& [arm, runs] : arms) {
    if (runs.empty()) continue;
    std::vector<const std::vector<double>*> greedy, sampled, reward;
    for (const auto& r : runs) greedy.push_back(&r.greedy), sampled.push_back(&r.sampled), reward.push_back(&r.reward);
    charts[0].lines.push_back({arm, runs.front().eval_step, mean_over_runs(greedy)});
    charts[1].lines.push_back({arm, runs.front().eval_step, mean_over_runs(sampled)});
    charts[2].lines.push_back({arm, runs.front().step, moving_mean(mean_over_runs(reward), 20)});
  }
  plot::write_png(png_path, charts, 3, 1500, 500);
}

/// Mean and 95 % interval half-width of a sample (half-width NaN for fewer than two values).
struct interval {
  double mean = 0.0, half_width = 0.0;
};

/// Two-sided 95 % Student t quantile for `df` degrees of freedom (table to 30, then the normal's 1.96).
inline double t_quantile_95(std::int64_t df) {
  static constexpr double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                     2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                     2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  return df <= 30 ? table[df - 1] : 1.96;
}

inline interval interval_of(const std::vector<double>& x) {
  interval out;
  const auto n = static_cast<std::int64_t>(x.size());
  if (n == 0) return {NAN, NAN};
  for (const double v : x) out.mean += v / double(n);
  if (n < 2) return {out.mean, NAN};
  double ss = 0;
  for (const double v : x) ss += (v - out.mean) * (v - out.mean);
  out.half_width = t_quantile_95(n - 1) * std::sqrt(ss / double(n - 1) / double(n));
  return out;
}

/// "1.31 ± 0.21" with `digits` decimals ("1.31" without an interval), of the interval times `scale`.
inline std::string interval_text(const interval& i, double scale = 1.0, int digits = 2) {
  char text[64];
  if (std::isnan(i.half_width)) std::snprintf(text, sizeof text, "%.*f", digits, scale * i.mean);
  else std::snprintf(text, sizeof text, "%.*f ± %.*f", digits, scale * i.mean, digits, scale * i.half_width);
  return text;
}

/// "41.2 ± 3.1" in percent ("41.2" without an interval).
inline std::string percent(const interval& i) { return interval_text(i, 100.0, 1); }

/// 16 hex digits naming the warm start of `opt`: a hash of what it depends on (task, level, seed, model,
/// warm-start options, threads).
inline std::string warm_start_key(const trainer_options& opt) {
  const auto key = opt.task + "/" + std::to_string(opt.level) + "/" + std::to_string(opt.seed) + "/" +
                   std::to_string(opt.d_model) + "x" + std::to_string(opt.n_layers) + "x" + std::to_string(opt.n_heads) +
                   "/" + std::to_string(opt.n_kv_heads) + "/" + std::to_string(opt.sft_steps) + "/" +
                   std::to_string(opt.sft_batch) + "/" + std::to_string(opt.sft_lr) + "/" +
                   std::to_string(opt.sft_warmup) + "/" + std::to_string(opt.threads) + "/" + name_of(device_names, opt.device);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a(key)));
  return hex;
}

struct experiment_plan {
  std::vector<std::string> tasks{"rule"};
  std::vector<std::string> arms{"grpo", "coupled_rhythm"};
  std::vector<std::uint64_t> seeds{1};
  int jobs = 1;  ///< runs at once, each in its own process when > 1 (give each --threads 1 on 2 cores)
};

/// The options of an arm: a --shaping name, or one followed by "+bottom_q" (the ablation that selects
/// the bottom-q token sets instead of the top-q ones). std::invalid_argument naming the arm otherwise.
inline trainer_options arm_options(trainer_options opt, const std::string& arm) {
  static constexpr std::string_view ablation = "+bottom_q";
  opt.shaping = arm;
  opt.bottom_q = arm.size() > ablation.size() && arm.ends_with(ablation);
  if (opt.bottom_q) opt.shaping.resize(arm.size() - ablation.size());
  if (opt.bottom_q && is_plain_grpo(opt.shaping))
    throw std::invalid_argument("--arms: '" + arm + "': grpo selects no tokens, +bottom_q needs one of rhythm's policies");
  check_shaping(opt.shaping);
  return opt;
}

/// One finished run of an arm.
struct arm_run {
  std::uint64_t seed = 0;
  run_summary summary;
};

/// A finished run's summary, from its metrics series (what run_training returned to the process that ran it).
inline run_summary summary_of(const run_curves& c, const std::string& name) {
  run_summary s;
  for (std::size_t i = 0; i < c.eval_step.size(); ++i)
    s.evals.emplace_back(static_cast<std::int64_t>(c.eval_step[i]), eval_result{c.greedy[i], c.sampled[i], 0.0});
  if (s.evals.empty()) throw std::runtime_error("experiments: no evaluation in '" + name + "'");
  s.steps = static_cast<std::int64_t>(c.step.size());
  for (std::size_t i = 0; i < c.step.size(); ++i) {
    s.t_rollout += c.t_rollout[i], s.t_attention += c.t_attention[i];
    s.t_credit += c.t_credit[i], s.t_update += c.t_update[i];
    s.rollout_tokens += static_cast<std::int64_t>(c.rollout_tokens[i]);
  }
  s.rhythm = c.rhythm;
  return s;
}

/// Runs every (label, options) of `runs`, at most `jobs` at a time. With one job they run here, one after
/// another; with more, each runs in a child process (fork: this process itself never starts LibTorch's
/// thread pools) writing its output to <out_dir>/log.txt, and this process prints when each starts and
/// ends. Throws std::runtime_error naming the first run that failed, after the others have ended.
inline void run_all(const std::vector<std::pair<std::string, trainer_options>>& runs, int jobs) {
  if (jobs <= 1) {
    for (const auto& [label, opt] : runs) {
      std::printf("== %s\n", label.c_str());
      (void)run_training(opt);
    }
    return;
  }
  std::map<pid_t, std::pair<std::string, std::chrono::steady_clock::time_point>> live;
  std::string failed;
  auto wait_one = [&] {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) throw std::runtime_error(std::string("experiments: waitpid: ") + std::strerror(errno));
    const auto [label, start] = live.at(pid);
    live.erase(pid);
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    std::printf("== %s: %s after %.0f s\n", label.c_str(), ok ? "done" : "FAILED",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (!ok && failed.empty()) failed = label;
  };
  for (const auto& [label, opt] : runs) {
    if (static_cast<int>(live.size()) >= jobs) wait_one();
    if (!failed.empty()) break;
    std::filesystem::create_directories(opt.out_dir);
    const auto log = (std::filesystem::path(opt.out_dir) / "log.txt").string();
    std::fflush(stdout), std::fflush(stderr);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(std::string("experiments: fork: ") + std::strerror(errno));
    if (pid == 0) {  // the child: its output into the log, then the run
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) ::dup2(fd, 1), ::dup2(fd, 2), ::close(fd);
      int code = 0;
      try {
        (void)run_training(opt);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: %s\n", label.c_str(), e.what());
        code = 1;
      }
      std::fflush(stdout), std::fflush(stderr);
      ::_exit(code);
    }
    live.emplace(pid, std::pair{label, std::chrono::steady_clock::now()});
    std::printf("== %s: started (log %s)\n", label.c_str(), log.c_str());
  }
  while (!live.empty()) wait_one();
  if (!failed.empty()) throw std::runtime_error("experiments: the run '" + failed + "' failed (its log.txt says why)");
}

/// Runs the plan (see the file comment), prints and writes the table; returns it as markdown.
inline std::string run_experiments(const trainer_options& base, const experiment_plan& plan) {
  validate(base);
  for (const auto& arm : plan.arms) validate(arm_options(base, arm));
  const std::filesystem::path out(base.out_dir);
  auto seed_dir = [&](const std::string& task, std::uint64_t seed) { return out / task / ("seed" + std::to_string(seed)); };
  auto seed_options = [&](const std::string& task, std::uint64_t seed) {
    auto opt = base;
    opt.task = task, opt.seed = seed;
    return opt;
  };
  const auto warm_starts = static_cast<int>(plan.tasks.size() * plan.seeds.size());
  auto warm_options = [&](const std::string& task, std::uint64_t seed) {
    auto opt = seed_options(task, seed);
    opt.threads *= std::max(1, plan.jobs / std::max(1, warm_starts));
    return opt;
  };
  auto warm_dir = [&](const std::string& task, std::uint64_t seed) {
    return seed_dir(task, seed) / ("warm_start_" + warm_start_key(warm_options(task, seed)));
  };
  auto label = [](const std::string& task, std::uint64_t seed, const std::string& what) {
    return task + ", seed " + std::to_string(seed) + ": " + what;
  };

  // The warm starts that do not exist yet, then every arm from its seed's warm start.
  std::vector<std::pair<std::string, trainer_options>> warm_runs, arm_runs;
  for (const auto& task : plan.tasks)
    for (const auto seed : plan.seeds) {
      if (!std::filesystem::exists(warm_dir(task, seed) / "warm_start.pt")) {
        auto opt = warm_options(task, seed);
        opt.rl_steps = 0, opt.out_dir = warm_dir(task, seed).string();
        warm_runs.emplace_back(label(task, seed, "warm start"), opt);
      }
      for (const auto& arm : plan.arms) {
        auto opt = arm_options(seed_options(task, seed), arm);
        opt.init_from = (warm_dir(task, seed) / "warm_start.pt").string();
        opt.resume.clear();
        opt.out_dir = (seed_dir(task, seed) / arm).string();
        arm_runs.emplace_back(label(task, seed, arm), opt);
      }
    }
  run_all(warm_runs, plan.jobs);
  run_all(arm_runs, plan.jobs);

  std::string table = "| task | arm | seeds | warm start pass@1 | final pass@1 | final avg@" + std::to_string(base.eval_k) +
                      " | pass@1 − grpo (paired) | attention + credit share of step | rollout tokens/s |\n"
                      "|---|---|---|---|---|---|---|---|---|\n";
  std::string rhythm_table = "| task | traces of | seeds | FAI peaks following a WAAD peak | shuffled baseline | lift | "
                             "entropy at WAAD peaks / mean |\n|---|---|---|---|---|---|---|\n";
  auto rhythm_row = [&](const std::string& task, const std::string& who, const std::vector<run_summary>& summaries) {
    std::vector<double> share, baseline, lift, entropy;
    for (const auto& s : summaries)
      share.push_back(s.rhythm.share), baseline.push_back(s.rhythm.baseline), lift.push_back(s.rhythm.lift),
          entropy.push_back(s.rhythm.entropy_ratio);
    rhythm_table += "| " + task + " | " + who + " | " + std::to_string(summaries.size()) + " | " +
                    percent(interval_of(share)) + " | " + percent(interval_of(baseline)) + " | " +
                    interval_text(interval_of(lift)) + " | " + interval_text(interval_of(entropy)) + " |\n";
  };
  nlohmann::json results = nlohmann::json::array();
  for (const auto& task_name : plan.tasks) {
    std::vector<run_summary> warm_starts;
    for (const auto seed : plan.seeds) {
      const auto metrics = (warm_dir(task_name, seed) / "metrics.jsonl").string();
      warm_starts.push_back(summary_of(read_metrics(metrics), metrics));
    }
    rhythm_row(task_name, "warm start", warm_starts);
    std::map<std::string, std::vector<arm_run>> runs;
    std::map<std::string, std::vector<run_curves>> curves;
    for (const auto seed : plan.seeds)
      for (const auto& arm : plan.arms) {
        const auto metrics = (seed_dir(task_name, seed) / arm / "metrics.jsonl").string();
        curves[arm].push_back(read_metrics(metrics));
        runs[arm].push_back({seed, summary_of(curves[arm].back(), metrics)});
      }
    write_arm_comparison(curves, task_name, (out / (task_name + "_curves.png")).string());
    std::map<std::uint64_t, double> grpo_final;
    if (runs.contains("grpo"))
      for (const auto& r : runs["grpo"]) grpo_final[r.seed] = r.summary.final_eval().greedy;
    for (const auto& arm : plan.arms) {
      std::vector<run_summary> summaries;
      for (const auto& r : runs[arm]) summaries.push_back(r.summary);
      rhythm_row(task_name, arm, summaries);
      std::vector<double> start, greedy, sampled, paired;
      double attention_credit = 0, total = 0, tokens = 0, rollout_seconds = 0;
      for (const auto& [seed, s] : runs[arm]) {
        start.push_back(s.evals.front().second.greedy);
        greedy.push_back(s.final_eval().greedy);
        sampled.push_back(s.final_eval().sampled);
        if (grpo_final.contains(seed)) paired.push_back(s.final_eval().greedy - grpo_final[seed]);
        attention_credit += s.t_attention + s.t_credit;
        total += s.t_rollout + s.t_attention + s.t_credit + s.t_update;
        tokens += double(s.rollout_tokens), rollout_seconds += s.t_rollout;
        results.push_back({{"task", task_name}, {"arm", arm}, {"seed", seed}, {"warm_start_greedy", start.back()},
                           {"final_greedy", greedy.back()}, {"final_sampled", sampled.back()},
                           {"steps", s.steps}, {"t_rollout", s.t_rollout}, {"t_attention", s.t_attention},
                           {"t_credit", s.t_credit}, {"t_update", s.t_update}, {"rollout_tokens", s.rollout_tokens},
                           {"rhythm_lift", std::isfinite(s.rhythm.lift) ? nlohmann::json(s.rhythm.lift) : nlohmann::json()}});
      }
      char share[32], rate[32];
      std::snprintf(share, sizeof share, "%.2f %%", total > 0 ? 100 * attention_credit / total : 0.0);
      std::snprintf(rate, sizeof rate, "%.0f", rollout_seconds > 0 ? tokens / rollout_seconds : 0.0);
      table += "| " + task_name + " | " + arm + " | " + std::to_string(runs[arm].size()) + " | " +
               percent(interval_of(start)) + " | " + percent(interval_of(greedy)) + " | " + percent(interval_of(sampled)) +
               " | " + (arm == "grpo" || paired.empty() ? std::string("—") : percent(interval_of(paired))) + " | " +
               share + " | " + rate + " |\n";
    }
  }
  table += "\nRhythm statistics of the final models' greedy traces of the held-out problems (trace_rhythm):\n\n" + rhythm_table;
  std::ofstream(out / "results.md") << table;
  std::ofstream(out / "results.json") << results.dump(2) << '\n';
  return table;
}

}  // namespace grpo

#ifndef GRPO_EXPERIMENTS_NO_MAIN
int main(int argc, char** argv) {
  grpo::start_program(argv);
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
#endif  // GRPO_EXPERIMENTS_NO_MAIN
