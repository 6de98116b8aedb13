#pragma once
/// Learning curves from metrics.jsonl files, as PNG (plot.hpp).
///
///   read_metrics          the series of one run's metrics file (and its rhythm statistics line)
///   write_run_curves      one run: training reward (and its 20-step moving mean), held-out greedy pass@1 and
///                         avg@k, gamma (mean and amplified share), step time split
///   write_arm_comparison  several arms, each averaged over its runs (seeds): held-out greedy pass@1 and
///                         avg@k, and the training reward's moving mean
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <rhythm/core/token_types.hpp>

#include "plot.hpp"

namespace grpo {

/// One run's series, in file order.
struct run_curves {
  std::vector<double> step, reward, gamma_mean, amplified, t_rollout, t_attention, t_credit, t_update, rollout_tokens;
  std::vector<double> eval_step, greedy, sampled;
  rhythm::rhythm_stats rhythm;  ///< the "rhythm" line (NaN shares where it has null or is absent)
};

inline run_curves read_metrics(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("curves: cannot read '" + path + "'");
  run_curves c;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    const auto phase = j.value("phase", "");
    if (phase == "rl") {
      c.step.push_back(j["step"].get<double>());
      for (auto [series, key] : {std::pair{&c.reward, "reward"}, {&c.gamma_mean, "gamma_mean"},
                                 {&c.amplified, "gamma_amplified_share"}, {&c.t_rollout, "t_rollout"},
                                 {&c.t_attention, "t_attention"}, {&c.t_credit, "t_credit"}, {&c.t_update, "t_update"},
                                 {&c.rollout_tokens, "rollout_tokens"}})
        series->push_back(j[key].get<double>());
    } else if (phase == "eval") {
      c.eval_step.push_back(j["step"].get<double>());
      c.greedy.push_back(j["greedy"].get<double>());
      c.sampled.push_back(j["sampled"].get<double>());
    } else if (phase == "rhythm") {
      auto number = [&](const char* key) { return j[key].is_number() ? j[key].get<double>() : NAN; };
      c.rhythm.waad_peaks = j["waad_peaks"], c.rhythm.fai_peaks = j["fai_peaks"];
      c.rhythm.fai_peaks_following = j["fai_peaks_following"];
      c.rhythm.share = number("share"), c.rhythm.baseline = number("baseline"), c.rhythm.lift = number("lift");
      c.rhythm.entropy_ratio = number("entropy_ratio");
    }
  }
  return c;
}

/// Trailing mean over `width` points.
inline std::vector<double> moving_mean(const std::vector<double>& y, std::size_t width) {
  std::vector<double> out(y.size());
  double sum = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    sum += y[i] - (i >= width ? y[i - width] : 0.0);
    out[i] = sum / double(std::min(i + 1, width));
  }
  return out;
}

inline void write_run_curves(const std::string& metrics_path, const std::string& png_path, const std::string& label) {
  const auto c = read_metrics(metrics_path);
  std::vector<plot::chart> charts(4);
  charts[0] = {"training reward (" + label + ")", "step", "reward",
               {{"per step", c.step, c.reward}, {"20-step mean", c.step, moving_mean(c.reward, 20)}}, 0.0, 1.0};
  charts[1] = {"held-out accuracy", "step", "accuracy",
               {{"greedy pass@1", c.eval_step, c.greedy}, {"avg@k", c.eval_step, c.sampled}}, 0.0, 1.0};
  charts[2] = {"credit", "step", "value",
               {{"mean gamma", c.step, c.gamma_mean}, {"amplified share", c.step, c.amplified}}, {}, {}};
  charts[3] = {"step time", "step", "seconds",
               {{"rollout", c.step, c.t_rollout}, {"attention", c.step, c.t_attention}, {"credit", c.step, c.t_credit},
                {"update", c.step, c.t_update}}, 0.0, {}};
  plot::write_png(png_path, charts, 2, 1200, 800);
}

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

}  // namespace grpo
