#pragma once
/// Metrics as JSON lines (one object per warm-start report, GRPO step and evaluation) and the
/// progress line. Credit figures (gamma_mean, gamma_amplified_share, preplan, anchor, dominated) are over
/// the step's signal rows (grpo_step.hpp); gamma_mean is 1 where no pipeline ran. Every line has "phase" ("warm_start", "rl" or "eval") and "step"; an "eval" line
/// at step s evaluates the policy before GRPO step s. On resume at step s the file keeps its
/// warm-start lines and the lines of steps < s, so that it reads as one uninterrupted run.
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "evaluation.hpp"
#include "grpo_step.hpp"

namespace grpo {

inline nlohmann::json to_json(const step_stats& s) {
  return {{"phase", "rl"},
          {"step", s.step},
          {"reward", s.reward},
          {"signal_groups", s.signal_groups},
          {"response_length", s.response_length},
          {"rollout_tokens", s.rollout_tokens},
          {"gamma_mean", s.credit.response_tokens ? s.credit.mean_gamma : 1.0},
          {"gamma_amplified_share", s.credit.amplified_share},
          {"preplan", s.credit.preplan},
          {"anchor", s.credit.anchor},
          {"dominated", s.credit.dominated},
          {"loss", s.loss},
          {"clip_fraction", s.clip_fraction},
          {"ratio", s.ratio},
          {"grad_norm", s.grad_norm},
          {"t_rollout", s.t_rollout},
          {"t_attention", s.t_attention},
          {"t_credit", s.t_credit},
          {"t_update", s.t_update}};
}

inline nlohmann::json to_json(std::int64_t step, const eval_result& e) {
  return {{"phase", "eval"}, {"step", step}, {"greedy", e.greedy}, {"sampled", e.sampled},
          {"greedy_length", e.greedy_length}};
}

/// The rhythm statistics of the traces at `step` (trace_rhythm); undefined shares are null.
inline nlohmann::json to_json(std::int64_t step, const rhythm::rhythm_stats& r) {
  auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  return {{"phase", "rhythm"}, {"step", step}, {"waad_peaks", r.waad_peaks}, {"fai_peaks", r.fai_peaks},
          {"fai_peaks_following", r.fai_peaks_following}, {"share", number(r.share)}, {"baseline", number(r.baseline)},
          {"lift", number(r.lift)}, {"entropy_ratio", number(r.entropy_ratio)}};
}

/// Appends JSON lines to a file, flushing each one.
class metrics_log {
 public:
  /// Opens `path`; `resume_step` >= 0 first drops the lines of steps >= resume_step (phases rl and eval).
  metrics_log(const std::string& path, std::int64_t resume_step = -1) {
    std::vector<std::string> kept;
    if (resume_step >= 0 && std::filesystem::exists(path)) {
      std::ifstream in(path);
      for (std::string line; std::getline(in, line);) {
        const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (j.is_object() && (j.value("phase", "") == "warm_start" || j.value("step", resume_step) < resume_step))
          kept.push_back(line);
      }
    }
    if (std::filesystem::path(path).has_parent_path()) std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    {  // the kept lines replace the file atomically
      std::ofstream rewrite(path + ".tmp", std::ios::trunc);
      for (const auto& line : kept) rewrite << line << '\n';
      if (!rewrite.flush()) throw std::runtime_error("metrics: cannot write '" + path + ".tmp'");
    }
    std::filesystem::rename(path + ".tmp", path);
    out_.open(path, std::ios::app);
    if (!out_) throw std::runtime_error("metrics: cannot write '" + path + "'");
  }

  void write(const nlohmann::json& line) { out_ << line.dump() << '\n' << std::flush; }

 private:
  std::ofstream out_;
};

/// "rl   12/200 | reward 0.41 (signal 62%) | len 84 | gamma 1.08, 17% amplified | loss -0.012 clip 0.02 |
///  1.92 s = rollout 1.10 + attention 0.01 + credit 0.01 + update 0.80 | 9.3k tok/s"
inline std::string progress_line(const step_stats& s, std::int64_t steps) {
  char line[320];
  std::snprintf(line, sizeof line,
                "rl %5lld/%lld | reward %.3f (signal %3.0f%%) | len %5.1f | gamma %.3f, %2.0f%% amplified | loss %+.4f "
                "clip %.3f | %.2f s = rollout %.2f + attention %.3f + credit %.3f + update %.2f | %.1fk tok/s",
                static_cast<long long>(s.step), static_cast<long long>(steps), s.reward, 100.0 * s.signal_groups,
                s.response_length, s.credit.response_tokens ? s.credit.mean_gamma : 1.0,
                100.0 * s.credit.amplified_share, s.loss, s.clip_fraction, s.seconds(), s.t_rollout, s.t_attention,
                s.t_credit, s.t_update, double(s.rollout_tokens) / s.t_rollout / 1e3);
  return line;
}

inline std::string eval_line(std::int64_t step, const eval_result& e, std::int64_t k) {
  char line[160];
  std::snprintf(line, sizeof line, "eval at step %lld: greedy pass@1 %.1f%%, avg@%lld %.1f%%, greedy length %.1f",
                static_cast<long long>(step), 100.0 * e.greedy, static_cast<long long>(k), 100.0 * e.sampled,
                e.greedy_length);
  return line;
}

}  // namespace grpo
