#pragma once
// Naive double-precision reference of the credit stage, written straight from DESIGN.md §3 and
// never sharing code with the library: GRPO advantages by scanning for group members, top-q by a
// full sort, the shaping table row by row, PPO-clip with the literal min and clip.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

namespace ref_credit {

using i64 = std::int64_t;

// A_i = (r_i - mean_g r) / (std_g r + eps) with the unbiased std (n - 1); r_i - mean_g r without
// std normalisation (Dr. GRPO); 0 for a group of one.
inline std::vector<double> grpo_advantages(const std::vector<double>& r, const std::vector<i64>& ids, bool std_normalise,
                                           double eps) {
  const auto S = r.size();
  std::vector<double> A(S, 0.0);
  for (std::size_t i = 0; i < S; ++i) {
    std::vector<double> g;
    for (std::size_t j = 0; j < S; ++j)
      if (ids[j] == ids[i]) g.push_back(r[j]);
    const double n = double(g.size());
    if (g.size() == 1) continue;
    double mean = 0;
    for (double x : g) mean += x;
    mean /= n;
    double var = 0;
    for (double x : g) var += (x - mean) * (x - mean);
    var /= n - 1;
    A[i] = std_normalise ? (r[i] - mean) / (std::sqrt(var) + eps) : r[i] - mean;
  }
  return A;
}

// k = ceil(q n): the smallest k with k >= q n (compared with a small tolerance, since q is a
// decimal written in binary).
inline i64 top_q_count(double q, i64 n) {
  i64 k = 0;
  while (double(k) < q * double(n) - 1e-9) ++k;
  return std::clamp<i64>(k, 1, n);
}

// Top-q over all given values: threshold = k-th largest, select every value >= it (ties inclusive);
// bottom: k-th smallest, every value <= it.
inline std::vector<bool> top_q(const std::vector<double>& v, double q, bool bottom) {
  const i64 n = i64(v.size());
  std::vector<bool> sel(v.size(), false);
  if (n == 0) return sel;
  std::vector<double> sorted = v;
  if (bottom) std::sort(sorted.begin(), sorted.end());
  else std::sort(sorted.begin(), sorted.end(), std::greater<>());
  const double threshold = sorted[top_q_count(q, n) - 1];
  for (i64 i = 0; i < n; ++i) sel[i] = bottom ? v[i] <= threshold : v[i] >= threshold;
  return sel;
}

// Flag bits of the token stage (token_flags.hpp contract).
constexpr unsigned preplan = 1, anchor = 2, dominated = 4, intro = 8;

enum class kind { uniform, local_chunk, global_anchor, coupled_rhythm, random, entropy };

struct policy {
  kind k = kind::uniform;
  double gamma_amp = 1.5, alpha = 0.5, q = 0.4;
};

// gamma over one response (DESIGN §3 shaping table), before the options. `drawn` is the random
// control's selection (the reference cannot know the library's generator; tests check the draw).
inline std::vector<double> raw_gamma(const policy& p, const std::vector<unsigned>& flags,
                                     const std::vector<double>& entropy, const std::vector<bool>& drawn, bool bottom) {
  const double b = p.gamma_amp - 1.0;
  const std::size_t n = flags.size();
  std::vector<double> g(n, 1.0);
  std::vector<bool> top;
  if (p.k == kind::entropy) top = top_q(entropy, p.q, bottom);
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned f = flags[i];
    switch (p.k) {
      case kind::uniform: g[i] = 1.0; break;
      case kind::local_chunk: g[i] = 1.0 + b * ((f & preplan) ? 1 : 0); break;
      case kind::global_anchor: g[i] = 1.0 + b * ((f & anchor) ? 1 : 0); break;
      case kind::coupled_rhythm:
        g[i] = 1.0 + b * ((f & anchor) && !(f & dominated) ? 1 : 0) + (1.0 - p.alpha) * b * ((f & dominated) ? 1 : 0) +
               p.alpha * b * ((f & intro) ? 1 : 0);
        break;
      case kind::random: g[i] = 1.0 + b * (drawn[i] ? 1 : 0); break;
      case kind::entropy: g[i] = 1.0 + b * (top[i] ? 1 : 0); break;
    }
  }
  return g;
}

enum class sign { both, positive, negative };

struct options {
  sign s = sign::both;
  bool bottom = false;
  double floor = 0.0;
  bool mean_preserving = false;
};

// The options on one response with advantage A: responses the sign mode leaves out get 1;
// otherwise gamma / mean(gamma) if mean-preserving, then max(gamma, floor).
inline std::vector<double> apply_options(std::vector<double> g, double A, const options& o) {
  const bool shaped = o.s == sign::both || (o.s == sign::positive && A > 0) || (o.s == sign::negative && A < 0);
  if (!shaped) return std::vector<double>(g.size(), 1.0);
  if (o.mean_preserving && !g.empty()) {
    double mean = 0;
    for (double x : g) mean += x;
    mean /= double(g.size());
    for (double& x : g) x /= mean;
  }
  for (double& x : g) x = std::max(x, o.floor);
  return g;
}

// PPO-clip over a batch; per-token J = min(rho A, clip(rho, 1 - eps, 1 + eps_high) A).
struct ppo_out {
  double loss = 0, clip_fraction = 0, mean_ratio = 0;
  i64 tokens = 0;
};

// new_lp, old_lp, adv: [b][t] over the response tokens of each sequence only.
inline ppo_out ppo_clip(const std::vector<std::vector<double>>& new_lp, const std::vector<std::vector<double>>& old_lp,
                        const std::vector<std::vector<double>>& adv, double eps, double eps_high, bool token_mean) {
  ppo_out o;
  double all = 0, seq_means = 0, ratios = 0;
  i64 clipped = 0, seqs = 0;
  for (std::size_t b = 0; b < adv.size(); ++b) {
    double sum = 0;
    for (std::size_t t = 0; t < adv[b].size(); ++t) {
      const double rho = std::exp(new_lp[b][t] - old_lp[b][t]);
      const double unclipped = rho * adv[b][t];
      const double clipped_term = std::clamp(rho, 1.0 - eps, 1.0 + eps_high) * adv[b][t];
      sum += std::min(unclipped, clipped_term);
      clipped += clipped_term < unclipped;
      ratios += rho;
      ++o.tokens;
    }
    all += sum;
    if (!adv[b].empty()) seq_means += sum / double(adv[b].size()), ++seqs;
  }
  if (o.tokens == 0) return o;
  o.loss = -(token_mean ? all / double(o.tokens) : seq_means / double(seqs));
  o.clip_fraction = double(clipped) / double(o.tokens);
  o.mean_ratio = ratios / double(o.tokens);
  return o;
}

}  // namespace ref_credit
