#pragma once
// Naive double-precision reference of the token stage, written straight from DESIGN.md §3 and the
// documented choices of include/rhythm/tokens (median of an even count = mean of the two middle
// values; peaks; rhythm statistics), never shared with the library: sorted copies for the k-th
// largest, plain loops over every window, sets as vectors of bool indexed by padded position.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "reference.hpp"

namespace ref {

inline constexpr double nan = std::numeric_limits<double>::quiet_NaN();
using set = std::vector<bool>;  // [N]

// k = ceil(q n) within [1, n] (0 when n == 0); the 1e-9 forgives binary rounding of decimal q.
inline std::int64_t top_q_k(double q, std::int64_t n) {
  if (n == 0) return 0;
  return std::min<std::int64_t>(n, std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(q * double(n) - 1e-9))));
}

struct selection {
  set selected;
  double threshold = nan;
};

// top-q over t in R with eligible[t]: threshold = k-th largest (bottom: smallest), ties inclusive.
inline selection top_q(const std::vector<double>& v, const set& eligible, const seg& g, double q, bool bottom) {
  selection out{set(v.size(), false), nan};
  std::vector<double> pool;
  for (std::int64_t t = g.response_begin; t < g.end; ++t)
    if (eligible[t]) pool.push_back(v[t]);
  const std::int64_t k = top_q_k(q, static_cast<std::int64_t>(pool.size()));
  if (k == 0) return out;
  if (bottom) std::sort(pool.begin(), pool.end());
  else std::sort(pool.begin(), pool.end(), std::greater<double>());
  out.threshold = pool[k - 1];
  for (std::int64_t t = g.response_begin; t < g.end; ++t)
    if (eligible[t]) out.selected[t] = bottom ? v[t] <= out.threshold : v[t] >= out.threshold;
  return out;
}

inline set response_set(const seg& g, std::int64_t N) {
  set s(N, false);
  for (std::int64_t t = g.response_begin; t < g.end; ++t) s[t] = true;
  return s;
}

// Δ_t = |WAAD_t − WAAD_{t+1}| for t in R, 0 at the last response token and outside R.
inline std::vector<double> jumps(const std::vector<double>& w, const seg& g) {
  std::vector<double> d(w.size(), 0.0);
  for (std::int64_t t = g.response_begin; t + 1 < g.end; ++t) d[t] = std::abs(w[t] - w[t + 1]);
  return d;
}

// Middle value; mean of the two middle values for an even count; NaN when empty.
inline double median(std::vector<double> x) {
  if (x.empty()) return nan;
  std::sort(x.begin(), x.end());
  const std::size_t n = x.size();
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

inline std::vector<double> response_values(const std::vector<double>& v, const seg& g) {
  return {v.begin() + g.response_begin, v.begin() + g.end};
}

// Anchor eligibility: T(s) non-empty (receivers() of reference.hpp; hi < 0 is infinity).
inline set fai_eligible(const seg& g, std::int64_t N, std::int64_t lo, std::int64_t hi) {
  set e(N, false);
  for (std::int64_t s = g.response_begin; s < g.end; ++s) e[s] = !receivers(g, s, lo, hi).empty();
  return e;
}

struct token_options {
  double q = 0.4;
  bool bottom = false;
  std::int64_t k = 3;
  bool median_delta = false;
  std::int64_t lo = 10, hi = 100;  // hi < 0: infinity
};

struct sets {
  set preplan, anchor, dominated, intro;
  double t_loc = nan, t_glob = nan, tau_waad = nan, tau_delta = nan;
};

inline sets token_sets(const std::vector<double>& w, const std::vector<double>& f, const seg& g,
                       const token_options& o) {
  const std::int64_t N = static_cast<std::int64_t>(w.size());
  sets out;
  const auto delta = jumps(w, g);
  const auto loc = top_q(delta, response_set(g, N), g, o.q, o.bottom);
  const auto glob = top_q(f, fai_eligible(g, N, o.lo, o.hi), g, o.q, o.bottom);
  out.preplan = loc.selected, out.anchor = glob.selected;
  out.t_loc = loc.threshold, out.t_glob = glob.threshold;
  out.tau_waad = median(response_values(w, g));
  out.tau_delta = o.median_delta ? median(response_values(delta, g)) : loc.threshold;
  out.dominated.assign(N, false);
  out.intro.assign(N, false);
  for (std::int64_t t = g.response_begin; t < g.end; ++t) {
    if (!out.anchor[t] || !(w[t] <= out.tau_waad)) continue;
    std::int64_t best = -1;
    for (std::int64_t u = t - o.k; u <= t - 1; ++u)
      if (u >= g.response_begin && (best < 0 || delta[u] > delta[best])) best = u;
    if (best >= 0 && delta[best] >= out.tau_delta) out.dominated[t] = true, out.intro[best] = true;
  }
  return out;
}

// t in set with v[t] > v[t−1] and v[t] >= v[t+1], neighbours outside R counting as lower.
inline set peaks(const std::vector<double>& v, const set& in, const seg& g) {
  set p(v.size(), false);
  for (std::int64_t t = g.response_begin; t < g.end; ++t) {
    const bool left = t == g.response_begin || v[t] > v[t - 1];
    const bool right = t == g.end - 1 || v[t] >= v[t + 1];
    p[t] = in[t] && left && right;
  }
  return p;
}

struct stats {
  std::int64_t response_tokens = 0, waad_peaks = 0, fai_peaks = 0, following = 0;
  double share = nan, expected_baseline = nan, entropy_at_peaks = nan, entropy_mean = nan;
};

// Rhythm statistics; the baseline is its exact expectation: a FAI peak at t with w = |[t−k, t] ∩ R|
// is missed by m distinct uniform positions of R (n tokens) with probability C(n−w, m) / C(n, m).
inline stats rhythm_stats(const std::vector<std::vector<double>>& w, const std::vector<std::vector<double>>& f,
                          const std::vector<std::vector<double>>* entropy, const std::vector<seg>& segs,
                          const token_options& o, std::int64_t k_follow) {
  stats out;
  double expected = 0, e_peaks = 0, e_all = 0;
  for (std::size_t b = 0; b < segs.size(); ++b) {
    const seg& g = segs[b];
    const auto s = token_sets(w[b], f[b], g, o);
    const auto wp = peaks(jumps(w[b], g), s.preplan, g);
    const auto fp = peaks(f[b], s.anchor, g);
    const std::int64_t n = g.end - g.response_begin;
    std::int64_t m = 0;
    for (std::int64_t t = g.response_begin; t < g.end; ++t) {
      m += wp[t];
      if (entropy) {
        e_all += (*entropy)[b][t];
        if (wp[t]) e_peaks += (*entropy)[b][t];
      }
    }
    out.response_tokens += n;
    out.waad_peaks += m;
    for (std::int64_t t = g.response_begin; t < g.end; ++t) {
      if (!fp[t]) continue;
      ++out.fai_peaks;
      bool follows = false;
      for (std::int64_t u = t - k_follow; u <= t; ++u) follows = follows || (u >= g.response_begin && wp[u]);
      out.following += follows;
      const std::int64_t width = std::min(k_follow, t - g.response_begin) + 1;
      double miss = 1;
      for (std::int64_t i = 0; i < m; ++i) miss *= double(n - width - i) / double(n - i);
      expected += 1 - std::max(0.0, miss);
    }
  }
  if (out.fai_peaks) {
    out.share = double(out.following) / double(out.fai_peaks);
    out.expected_baseline = expected / double(out.fai_peaks);
  }
  if (entropy && out.waad_peaks) out.entropy_at_peaks = e_peaks / double(out.waad_peaks);
  if (entropy && out.response_tokens) out.entropy_mean = e_all / double(out.response_tokens);
  return out;
}

}  // namespace ref
