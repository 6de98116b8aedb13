#pragma once
/// CPU backend of rhythm_statistics (host-only: a batch's summary for analysis, not a training step).
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "../core/dtypes.hpp"
#include "../core/token_types.hpp"
#include "parallel.hpp"
#include "selection.hpp"
#include "tokens.hpp"
#include "values.hpp"

namespace rhythm::cpu {
namespace detail {

inline std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// Uniform integer in [0, range), range >= 1, by rejection: exact and the same on every platform.
inline std::uint64_t uniform_below(std::mt19937_64& gen, std::uint64_t range) {
  const std::uint64_t reject_below = (0 - range) % range;  // 2^64 mod range
  std::uint64_t x;
  do x = gen();
  while (x < reject_below);
  return x % range;
}

/// How many of the ascending positions f[0..nf) have one of the ascending positions p[0..m) in
/// [f - k, f]. O(m + nf).
inline std::int64_t count_following(const std::int64_t* p, std::int64_t m, const std::int64_t* f, std::int64_t nf,
                                    std::int64_t k) {
  std::int64_t i = 0, count = 0;
  for (std::int64_t j = 0; j < nf; ++j) {
    while (i < m && p[i] < f[j] - k) ++i;
    count += i < m && p[i] <= f[j];
  }
  return count;
}

struct rhythm_row {
  std::int64_t n = 0, waad_peaks = 0, fai_peaks = 0, following = 0, shuffled_following = 0;
  double entropy_at_peaks = 0, entropy_sum = 0;
};

}  // namespace detail

template <class W, class F, class E>
rhythm_stats rhythm_statistics(int threads, const rhythm_stats_args<W, F, E, host_space>& a) {
  using namespace detail;
  const rhythm_stats_params& params = a.params;
  const bool with_entropy = a.entropy.data_handle() != nullptr;
  check_token_signals(a.waad, a.fai, a.segments, params.horizon, true);
  if (with_entropy) raise(first_non_finite_in_responses(a.entropy, a.segments, value_argument::entropy));
  const std::int64_t B = a.waad.extent(0), N = a.waad.extent(1);
  const token_params sets{params.selection, {}, params.horizon};

  auto scratch = make_token_scratch(threads, B, N);
  std::vector<rhythm_row> rows(static_cast<std::size_t>(B));
  parallel_for(threads, B, [&](std::int64_t b, int worker) {
    token_scratch& w = scratch[worker];
    const segment s = a.segments(b);
    const std::int64_t n = s.response_length();
    rhythm_row& row = rows[b];
    row.n = n;
    token_sets_row(a.waad, a.fai, b, s, sets, false, w);
    for (std::int64_t i = 0; i < n; ++i) w.b[i] = to_float(a.fai(b, s.response_begin + i));
    local_peaks_of(w.c.data(), w.flags.data(), bits(token_flag::preplan), n, w.m.data());
    local_peaks_of(w.b.data(), w.flags.data(), bits(token_flag::anchor), n, w.sel.data());
    std::int64_t* wp = w.i1.data();
    std::int64_t* fp = w.i2.data();
    std::int64_t m = 0, f = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      if (w.m[i]) wp[m++] = i;
      if (w.sel[i]) fp[f++] = i;
      if (with_entropy) {
        const double e = to_float(a.entropy(b, s.response_begin + i));
        row.entropy_sum += e;
        if (w.m[i]) row.entropy_at_peaks += e;
      }
    }
    row.waad_peaks = m, row.fai_peaks = f;
    row.following = count_following(wp, m, fp, f, params.follow_window);
    if (m == 0 || f == 0) return;
    std::mt19937_64 gen(splitmix64(splitmix64(params.seed) ^ static_cast<std::uint64_t>(b)));
    std::int64_t* pos = w.i0.data();  // any arrangement of [0, n): each partial shuffle is uniform from it
    std::iota(pos, pos + n, std::int64_t{0});
    for (std::int64_t d = 0; d < params.shuffles; ++d) {
      for (std::int64_t i = 0; i < m; ++i)
        std::swap(pos[i], pos[i + static_cast<std::int64_t>(uniform_below(gen, static_cast<std::uint64_t>(n - i)))]);
      std::sort(pos, pos + m);
      row.shuffled_following += count_following(pos, m, fp, f, params.follow_window);
    }
  });

  rhythm_stats out;
  double entropy_at_peaks = 0, entropy_sum = 0, shuffled = 0;
  for (const rhythm_row& r : rows) {  // in sequence order: the same sums for every thread count
    out.response_tokens += r.n;
    out.waad_peaks += r.waad_peaks;
    out.fai_peaks += r.fai_peaks;
    out.fai_peaks_following += r.following;
    shuffled += double(r.shuffled_following);
    entropy_at_peaks += r.entropy_at_peaks;
    entropy_sum += r.entropy_sum;
  }
  if (out.fai_peaks > 0) {
    out.share = double(out.fai_peaks_following) / double(out.fai_peaks);
    out.baseline = shuffled / (double(params.shuffles) * double(out.fai_peaks));
    out.lift = out.share / out.baseline;
  }
  if (with_entropy) {
    if (out.waad_peaks > 0) out.entropy_at_waad_peaks = entropy_at_peaks / double(out.waad_peaks);
    if (out.response_tokens > 0) out.entropy_mean = entropy_sum / double(out.response_tokens);
    out.entropy_ratio = out.entropy_at_waad_peaks / out.entropy_mean;
  }
  return out;
}

}  // namespace rhythm::cpu
