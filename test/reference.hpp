#pragma once
// Naive double-precision reference, written straight from DESIGN.md §3 and never shared with the
// library: plain loops over full maps, no bands, no linearity tricks, no streaming.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

namespace ref {

struct seg {
  std::int64_t begin, response_begin, end;
};

// One head's map, N x N, A[t][s]; entries outside the causal real region are never read.
using map = std::vector<std::vector<double>>;

inline bool in_response(const seg& g, std::int64_t t) { return t >= g.response_begin && t < g.end; }

// softmax_{s in [begin, t]}(scale q_t . k_s) for rows t in [begin, end); other entries 0.
inline map softmax_map(const std::vector<std::vector<double>>& q, const std::vector<std::vector<double>>& k,
                       const seg& g, double scale) {
  const std::int64_t N = static_cast<std::int64_t>(q.size());
  map A(N, std::vector<double>(N, 0.0));
  for (std::int64_t t = g.begin; t < g.end; ++t) {
    std::vector<double> z;
    for (std::int64_t s = g.begin; s <= t; ++s) {
      double dot = 0;
      for (std::size_t c = 0; c < q[t].size(); ++c) dot += q[t][c] * k[s][c];
      z.push_back(scale * dot);
    }
    const double m = *std::max_element(z.begin(), z.end());
    double sum = 0;
    for (double& x : z) sum += (x = std::exp(x - m));
    for (std::int64_t s = g.begin; s <= t; ++s) A[t][s] = z[s - g.begin] / sum;
  }
  return A;
}

// Eq. 7: d_h = mean_{t in R} sum_s A[t,s] (t - s); 0 for an empty response.
inline double head_span(const map& A, const seg& g) {
  double total = 0;
  for (std::int64_t t = g.response_begin; t < g.end; ++t)
    for (std::int64_t s = g.begin; s <= t; ++s) total += A[t][s] * double(t - s);
  return g.end > g.response_begin ? total / double(g.end - g.response_begin) : 0.0;
}

// Eq. 9 for one head: WAAD_t = sum_s A[t,s] min(t - s, W) for t in R, else 0.
inline std::vector<double> waad(const map& A, const seg& g, std::int64_t W) {
  std::vector<double> out(A.size(), 0.0);
  for (std::int64_t t = g.response_begin; t < g.end; ++t)
    for (std::int64_t s = g.begin; s <= t; ++s) out[t] += A[t][s] * double(std::min(t - s, W));
  return out;
}

// T(s) = {t in R : s + H_lo <= t <= min(end - 1, s + H_hi)}; H_hi < 0 stands for infinity.
inline std::vector<std::int64_t> receivers(const seg& g, std::int64_t s, std::int64_t lo, std::int64_t hi) {
  std::vector<std::int64_t> T;
  for (std::int64_t t = g.response_begin; t < g.end; ++t)
    if (t >= s + lo && (hi < 0 || t <= s + hi)) T.push_back(t);
  return T;
}

// Eq. 10 for one head: FAI_s = mean_{t in T(s)} A[t,s], 0 where T(s) is empty.
inline std::vector<double> fai(const map& A, const seg& g, std::int64_t lo, std::int64_t hi) {
  std::vector<double> out(A.size(), 0.0);
  for (std::int64_t s = g.begin; s < g.end; ++s) {
    const auto T = receivers(g, s, lo, hi);
    if (T.empty()) continue;
    double sum = 0;
    for (auto t : T) sum += A[t][s];
    out[s] = sum / double(T.size());
  }
  return out;
}

// Eq. 8: c = max(1, round(f H)); lowest c spans local, highest c global; ties to the lower index.
// Returns role bits (1 local, 2 global) per head.
inline std::vector<int> head_groups(const std::vector<double>& span, double f) {
  const std::int64_t H = static_cast<std::int64_t>(span.size());
  const std::int64_t c = std::min<std::int64_t>(H, std::max<std::int64_t>(1, std::llround(f * double(H))));
  std::vector<int> role(H, 0);
  for (std::int64_t h = 0; h < H; ++h) {
    std::int64_t below = 0, above = 0;  // heads ranked before h in each order
    for (std::int64_t o = 0; o < H; ++o) {
      below += span[o] < span[h] || (span[o] == span[h] && o < h);
      above += span[o] > span[h] || (span[o] == span[h] && o < h);
    }
    role[h] = (below < c ? 1 : 0) | (above < c ? 2 : 0);
  }
  return role;
}

}  // namespace ref
