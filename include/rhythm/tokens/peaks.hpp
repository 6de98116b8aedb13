#pragma once
/// Peaks of a signal inside a token set, and the rhythm statistics built on them (the paper's
/// Table 2), for analysis.
///
/// Peaks (local_peaks):
/// For sequence b with response R = [response_begin, end), a token t in R is a peak when
///   t is in the set:        (selected[b, t] & params.select_bits) != 0
///   it rises from the left: t == response_begin  or  v[t] >  v[t-1]
///   it holds to the right:  t == end - 1         or  v[t] >= v[t+1]
/// Neighbours are compared by value whether or not they are in the set, and are restricted to R:
/// a missing neighbour (before response_begin, at or after end) counts as lower. Strict on the
/// left and loose on the right, a plateau of equal values has exactly one peak, its first token.
/// Typically the set is a top-q selection (top_q.hpp) or a token_flag bit of token_sets' flags.
///
/// Rhythm statistics (rhythm_statistics): do FAI peaks coincide with or follow WAAD peaks more
/// often than chance, and is the token entropy higher at WAAD peaks?
///
/// Per sequence, over its response R = [response_begin, end), with the sets of token_sets.hpp
/// (same q, bottom and horizons, taken from params.tokens):
///   WAAD peaks  = local_peaks of the jump Delta inside T_loc = top-q(Delta)
///   FAI peaks   = local_peaks of FAI inside T_glob = top-q(FAI) over the FAI-eligible tokens
///                 (neighbours compared by their FAI value anywhere in R, as local_peaks does)
///   a FAI peak t "follows" when some WAAD peak u of the same response has t - k_follow <= u <= t
/// Pooled over the batch (ratios of sums, every peak weighing the same):
///   share    = following FAI peaks / FAI peaks
///   baseline = the same share with each response's WAAD peaks replaced by as many distinct
///              positions drawn uniformly from its R, averaged over `shuffles` draws
///   lift     = share / baseline
/// With token entropies: entropy_at_waad_peaks = mean entropy over the WAAD peaks, entropy_mean =
/// mean over every response token, entropy_ratio = their quotient. Undefined quantities (no FAI
/// peak, no WAAD peak, no response token) are NaN; the ratios follow IEEE division.
///
/// Deterministic for a seed, whatever the policy and thread count: the draws of sequence b come
/// from std::mt19937_64 seeded with splitmix64(splitmix64(seed) ^ b), and each draw is a partial
/// Fisher-Yates shuffle whose bounded integers use rejection sampling (no std:: distribution,
/// whose algorithms differ between standard libraries).
#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "common.hpp"
#include "token_sets.hpp"

namespace rhythm {

struct peak_params {
  /// Which bits of `selected` put a token in the set: with top_q's 0/1 masks the default (any bit)
  /// is right; with token_sets' flags pass e.g. token_flag::preplan. Must be nonzero.
  std::uint8_t select_bits = 0xff;
};

/// Peaks of `values` inside the set `selected`, for every sequence.
///
/// values   [B, N]  float, bfloat16 or half; read at response positions
/// selected [B, N]  std::uint8_t: the set, as bits (read at response positions)
/// segments [B]     rhythm::segment per sequence
/// peaks    [B, N]  std::uint8_t out: 1 at peaks, 0 at every other position
///
/// Throws (writing nothing) on select_bits == 0, shape mismatch, bad segments, overlapping memory,
/// or NaN/Inf in values at a response position. O(B N); O(N) scratch per worker.
template <class Policy, strided_tensor Values, strided_tensor Selected, strided_tensor Segments, strided_tensor Peaks>
void local_peaks(Policy policy, const Values& values, const Selected& selected, const Segments& segments,
                 const Peaks& peaks, const peak_params& params = {}) {
  detail::check_policy<Policy, Values, Selected, Segments, Peaks>();
  static_assert(Values::rank() == 2, "rhythm: values must have rank 2: [B, N]");
  static_assert(input_element<typename Values::value_type>, "rhythm: values must hold float, bfloat16 or half");
  static_assert(detail::tokens::is_u8<typename Selected::value_type>, "rhythm: selected must be a view of std::uint8_t");
  static_assert(std::is_same_v<element_of<Peaks>, std::uint8_t>, "rhythm: peaks must be a writable view of std::uint8_t");
  detail::require(params.select_bits != 0, errc::bad_parameter, "params.select_bits", "a nonzero bit mask", 0);
  const std::int64_t B = values.extent(0), N = values.extent(1);
  detail::tokens::check_token_extents(selected, "selected", B, N);
  detail::check_segments(segments, B, N);
  detail::tokens::check_token_extents(peaks, "peaks", B, N);
  detail::tokens::check_token_output(peaks, "peaks", values, selected, segments);
  detail::tokens::check_token_finite(values, "values", segments, "response positions", [](auto, auto, auto) { return true; });
  const int threads = cpu::thread_count(policy);
  auto scratch = detail::tokens::make_token_scratch(threads, B, N);
  cpu::parallel_for(threads, B, [&](std::int64_t b, int worker) {
    detail::tokens::token_scratch& w = scratch[worker];
    const segment s = detail::segment_at(segments, b);
    const std::int64_t n = s.response_length();
    for (std::int64_t i = 0; i < n; ++i) {
      w.a[i] = to_float(detail::tokens::token_at(values, b, s.response_begin + i));
      w.m[i] = detail::tokens::token_at(selected, b, s.response_begin + i);
    }
    detail::tokens::local_peaks_of(w.a.data(), w.m.data(), params.select_bits, n, w.flags.data());
    for (std::int64_t t = 0; t < N; ++t)
      detail::tokens::token_at(peaks, b, t) = s.in_response(t) ? w.flags[t - s.response_begin] : std::uint8_t{0};
  });
}

struct rhythm_stats_params {
  /// q, bottom and signals (horizons) choose the sets the peaks live in; the dominance fields are not used.
  token_params tokens{};
  std::int64_t follow_window = 3;  ///< k_follow >= 0: a WAAD peak up to k_follow tokens before a FAI peak counts
  std::int64_t shuffles = 100;     ///< draws of the shuffled baseline, >= 1
  std::uint64_t seed = 0;          ///< seed of the shuffled baseline
};

/// The result of rhythm_statistics: counts over the batch and pooled shares.
struct rhythm_stats {
  std::int64_t response_tokens = 0;      ///< response tokens of the batch
  std::int64_t waad_peaks = 0;           ///< WAAD peaks (peaks of Delta inside T_loc)
  std::int64_t fai_peaks = 0;            ///< FAI peaks (peaks of FAI inside T_glob)
  std::int64_t fai_peaks_following = 0;  ///< FAI peaks with a WAAD peak in [t - k_follow, t]
  double share = std::numeric_limits<double>::quiet_NaN();     ///< fai_peaks_following / fai_peaks
  double baseline = std::numeric_limits<double>::quiet_NaN();  ///< mean share with WAAD peaks at random positions
  double lift = std::numeric_limits<double>::quiet_NaN();      ///< share / baseline
  double entropy_at_waad_peaks = std::numeric_limits<double>::quiet_NaN();  ///< mean token entropy at WAAD peaks
  double entropy_mean = std::numeric_limits<double>::quiet_NaN();           ///< mean over response tokens
  double entropy_ratio = std::numeric_limits<double>::quiet_NaN();          ///< entropy_at_waad_peaks / entropy_mean
};

namespace detail::tokens {

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

template <class Policy, strided_tensor Waad, strided_tensor Fai, class Entropy, strided_tensor Segments>
rhythm_stats rhythm_statistics_impl(Policy policy, const Waad& waad, const Fai& fai, const Entropy* entropy,
                                    const Segments& segments, const rhythm_stats_params& params) {
  constexpr bool with_entropy = !std::is_void_v<Entropy>;
  check_token_params(params.tokens, "params.tokens.");
  require(params.follow_window >= 0, errc::bad_parameter, "params.follow_window", ">= 0", params.follow_window);
  require(params.shuffles >= 1, errc::bad_parameter, "params.shuffles", ">= 1", params.shuffles);
  check_token_signals(waad, fai, segments);
  const std::int64_t B = waad.extent(0), N = waad.extent(1);
  if constexpr (with_entropy) {
    static_assert(Entropy::rank() == 2 && input_element<typename Entropy::value_type>,
                  "rhythm: entropy must be a [B, N] view of float, bfloat16 or half");
    check_token_extents(*entropy, "entropy", B, N);
  }
  check_token_signals_finite(waad, fai, segments, params.tokens, true);
  if constexpr (with_entropy)
    check_token_finite(*entropy, "entropy", segments, "response positions", [](auto, auto, auto) { return true; });

  const int threads = cpu::thread_count(policy);
  auto scratch = make_token_scratch(threads, B, N);
  std::vector<rhythm_row> rows(static_cast<std::size_t>(B));
  cpu::parallel_for(threads, B, [&](std::int64_t b, int worker) {
    token_scratch& w = scratch[worker];
    const segment s = segment_at(segments, b);
    const std::int64_t n = s.response_length();
    rhythm_row& row = rows[b];
    row.n = n;
    token_sets_row(waad, fai, b, s, params.tokens, false, w);
    for (std::int64_t i = 0; i < n; ++i) w.b[i] = to_float(token_at(fai, b, s.response_begin + i));
    local_peaks_of(w.c.data(), w.flags.data(), token_flag::preplan, n, w.m.data());
    local_peaks_of(w.b.data(), w.flags.data(), token_flag::anchor, n, w.sel.data());
    std::int64_t* wp = w.i1.data();
    std::int64_t* fp = w.i2.data();
    std::int64_t m = 0, f = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      if (w.m[i]) wp[m++] = i;
      if (w.sel[i]) fp[f++] = i;
      if constexpr (with_entropy) {
        const double e = to_float(token_at(*entropy, b, s.response_begin + i));
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
  if constexpr (with_entropy) {
    if (out.waad_peaks > 0) out.entropy_at_waad_peaks = entropy_at_peaks / double(out.waad_peaks);
    if (out.response_tokens > 0) out.entropy_mean = entropy_sum / double(out.response_tokens);
    out.entropy_ratio = out.entropy_at_waad_peaks / out.entropy_mean;
  }
  return out;
}

}  // namespace detail::tokens

/// Rhythm statistics of a batch (see the top of this header).
///
/// waad     [B, N]  float, bfloat16 or half: local-group WAAD; read at response positions
/// fai      [B, N]  same types: global-group FAI; read at response positions
/// segments [B]     rhythm::segment per sequence
/// params           rhythm_stats_params: the sets' token_params, k_follow, shuffles, seed
///
/// Throws on a bad parameter (those of token_params, follow_window < 0, shuffles < 1), shape
/// mismatch, bad segments or NaN/Inf where a value is read. O(B N + shuffles sum_b (m_b log m_b + f_b))
/// for m_b WAAD and f_b FAI peaks in sequence b; O(N) scratch per worker.
template <class Policy, strided_tensor Waad, strided_tensor Fai, strided_tensor Segments>
rhythm_stats rhythm_statistics(Policy policy, const Waad& waad, const Fai& fai, const Segments& segments,
                               const rhythm_stats_params& params = {}) {
  detail::check_policy<Policy, Waad, Fai, Segments>();
  return detail::tokens::rhythm_statistics_impl(policy, waad, fai, static_cast<const void*>(nullptr), segments, params);
}

/// As above, with per-token entropies [B, N] (float, bfloat16 or half; read at response positions),
/// which fill the entropy fields of the result.
template <class Policy, strided_tensor Waad, strided_tensor Fai, strided_tensor Entropy, strided_tensor Segments>
rhythm_stats rhythm_statistics(Policy policy, const Waad& waad, const Fai& fai, const Entropy& entropy,
                               const Segments& segments, const rhythm_stats_params& params = {}) {
  detail::check_policy<Policy, Waad, Fai, Entropy, Segments>();
  return detail::tokens::rhythm_statistics_impl(policy, waad, fai, &entropy, segments, params);
}

}  // namespace rhythm
