#pragma once
/// The experiment runner: arms x seeds x tasks, and the results table.
///
/// Per (task, seed) one warm start is trained and every arm starts GRPO from it with the same seed, so
/// arms see the same problems in the same order and differ only in their credit: the comparison is
/// paired by seed. Per (task, arm) the table gives the final held-out greedy pass@1 and avg@k as
/// mean and 95 % interval over seeds (Student t, n - 1 degrees of freedom; none for one seed), the
/// paired difference of pass@1 against `grpo` (mean of per-seed differences, same interval), and the
/// step time split.
///
/// Files under out_dir: <task>/seed<s>/warm_start_<key>/ and <task>/seed<s>/<arm>/ (training.hpp's files of
/// each run), results.md (the table), results.json (every run's numbers) and <task>_curves.png (curves.hpp).
/// A warm start is reused when its directory exists: <key> hashes every option it depends on.
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "curves.hpp"
#include "options.hpp"
#include "training.hpp"

namespace grpo {

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

/// "41.2 ± 3.1" in percent ("41.2" without an interval).
inline std::string percent(const interval& i) {
  char text[64];
  if (std::isnan(i.half_width)) std::snprintf(text, sizeof text, "%.1f", 100 * i.mean);
  else std::snprintf(text, sizeof text, "%.1f ± %.1f", 100 * i.mean, 100 * i.half_width);
  return text;
}

/// 16 hex digits naming the warm start of `opt`: a hash of what it depends on (task, level, seed, model,
/// warm-start options, threads).
inline std::string warm_start_key(const trainer_options& opt) {
  const auto key = opt.task + "/" + std::to_string(opt.level) + "/" + std::to_string(opt.seed) + "/" +
                   std::to_string(opt.d_model) + "x" + std::to_string(opt.n_layers) + "x" + std::to_string(opt.n_heads) +
                   "/" + std::to_string(opt.n_kv_heads) + "/" + std::to_string(opt.sft_steps) + "/" +
                   std::to_string(opt.sft_batch) + "/" + std::to_string(opt.sft_lr) + "/" +
                   std::to_string(opt.sft_warmup) + "/" + std::to_string(opt.threads) + "/" + opt.device;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a(key)));
  return hex;
}

struct experiment_plan {
  std::vector<std::string> tasks{"chain"};
  std::vector<std::string> arms{"grpo", "coupled_rhythm"};
  std::vector<std::uint64_t> seeds{1};
};

/// One finished run of an arm.
struct arm_run {
  std::uint64_t seed = 0;
  run_summary summary;
};

/// Runs the plan (see the file comment), prints and writes the table; returns it as markdown.
inline std::string run_experiments(const trainer_options& base, const experiment_plan& plan) {
  validate(base);
  for (const auto& arm : plan.arms) check_shaping(arm);
  const std::filesystem::path out(base.out_dir);
  std::string table = "| task | arm | seeds | warm start pass@1 | final pass@1 | final avg@" + std::to_string(base.eval_k) +
                      " | pass@1 − grpo (paired) | attention + credit share of step | rollout tokens/s |\n"
                      "|---|---|---|---|---|---|---|---|---|\n";
  nlohmann::json results = nlohmann::json::array();
  for (const auto& task_name : plan.tasks) {
    std::map<std::string, std::vector<arm_run>> runs;
    std::map<std::string, std::vector<run_curves>> curves;
    for (const auto seed : plan.seeds) {
      auto opt = base;
      opt.task = task_name;
      opt.seed = seed;
      const auto seed_dir = out / task_name / ("seed" + std::to_string(seed));
      const auto warm_dir = seed_dir / ("warm_start_" + warm_start_key(opt));
      const auto warm = warm_dir / "warm_start.pt";
      if (!std::filesystem::exists(warm)) {
        auto warm_opt = opt;
        warm_opt.rl_steps = 0;
        warm_opt.out_dir = warm_dir.string();
        std::printf("== %s, seed %llu: warm start\n", task_name.c_str(), static_cast<unsigned long long>(seed));
        (void)run_training(warm_opt);
      }
      for (const auto& arm : plan.arms) {
        auto arm_opt = opt;
        arm_opt.shaping = arm;
        arm_opt.init_from = warm.string();
        arm_opt.resume.clear();
        arm_opt.out_dir = (seed_dir / arm).string();
        std::printf("== %s, seed %llu: %s\n", task_name.c_str(), static_cast<unsigned long long>(seed), arm.c_str());
        runs[arm].push_back({seed, run_training(arm_opt)});
        curves[arm].push_back(read_metrics((seed_dir / arm / "metrics.jsonl").string()));
      }
    }
    write_arm_comparison(curves, task_name, (out / (task_name + "_curves.png")).string());
    std::map<std::uint64_t, double> grpo_final;
    if (runs.contains("grpo"))
      for (const auto& r : runs["grpo"]) grpo_final[r.seed] = r.summary.final_eval().greedy;
    for (const auto& arm : plan.arms) {
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
                           {"t_credit", s.t_credit}, {"t_update", s.t_update}, {"rollout_tokens", s.rollout_tokens}});
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
  std::ofstream(out / "results.md") << table;
  std::ofstream(out / "results.json") << results.dump(2) << '\n';
  return table;
}

}  // namespace grpo
