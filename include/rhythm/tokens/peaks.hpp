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
/// (params.selection's q and bottom, params.horizon):
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
#include <cstdint>

#include "../core/checks.hpp"
#include "../core/execution.hpp"
#include "../core/token_types.hpp"
#include "../core/tensor.hpp"
#include "../cpu/backend.hpp"
#include "top_q.hpp"

namespace rhythm {

/// Peaks of `values` inside the set `selected`, for every sequence.
///
/// values   [B, N]  float, bfloat16 or half; read at response positions
/// selected [B, N]  token_flag bits or a 0/1 std::uint8_t mask: the set (read at response positions)
/// segments [B]     rhythm::segment per sequence
/// peaks    [B, N]  std::uint8_t out: 1 at peaks, 0 at every other position
///
/// Throws (writing nothing) on select_bits == none, shape mismatch, bad segments, overlapping memory,
/// or NaN/Inf in values at a response position. O(B N); O(N) scratch per worker.
template <class Policy, strided_tensor Values, strided_tensor Selected, strided_tensor Segments, strided_tensor Peaks>
void local_peaks(const Policy& policy, const Values& values, const Selected& selected, const Segments& segments,
                 const Peaks& peaks, const peak_params& params = {}) {
  if constexpr (detail::check_policy<Policy, Values, Selected, Segments, Peaks>()) {
    detail::check_token_signal<Values>();
    static_assert(flag_element<typename Selected::value_type>, "rhythm: selected must be a view of rhythm::token_flag");
    static_assert(std::is_same_v<element_of<Peaks>, std::uint8_t>, "rhythm: peaks must be a writable view of std::uint8_t");
    detail::expects(any(params.select_bits), errc::bad_parameter, "params.select_bits", "a nonzero bit mask", 0);
    const std::int64_t B = values.extent(0), N = values.extent(1);
    detail::check_token_extents(selected, "selected", B, N);
    detail::check_segments_shape(segments, B);
    detail::check_token_extents(peaks, "peaks", B, N);
    detail::check_output(peaks, "peaks");
    detail::check_disjoint(peaks, "peaks", values, selected, segments);
    backend<Policy>::local_peaks(policy, local_peaks_args<typename Values::value_type, memory_space_of<Values>>{
                                             as_const_view(values), detail::as_bytes(as_const_view(selected)),
                                             as_const_view(segments), as_view(peaks), bits(params.select_bits)});
  }
}

namespace detail {

template <class Policy, strided_tensor Waad, strided_tensor Fai, class Entropy, strided_tensor Segments>
rhythm_stats rhythm_statistics(const Policy& policy, const Waad& waad, const Fai& fai, const Entropy* entropy,
                               const Segments& segments, const rhythm_stats_params& params) {
  check_token_signal<Waad>();
  check_token_signal<Fai>();
  using space = memory_space_of<Waad>;
  check_top_q_params(params.selection, "params.selection");
  check_horizon(params.horizon, "params.horizon");
  expects(params.follow_window >= 0, errc::bad_parameter, "params.follow_window", ">= 0", params.follow_window);
  expects(params.shuffles >= 1, errc::bad_parameter, "params.shuffles", ">= 1", params.shuffles);
  const std::int64_t B = waad.extent(0), N = waad.extent(1);
  check_token_extents(fai, "fai", B, N);
  check_segments_shape(segments, B);
  if constexpr (std::is_void_v<Entropy>) {
    return backend<Policy>::rhythm_statistics(
        policy, rhythm_stats_args<typename Waad::value_type, typename Fai::value_type, float, space>{
                    as_const_view(waad), as_const_view(fai), absent<const float, 2, space>(), as_const_view(segments),
                    params});
  } else {
    check_token_signal<Entropy>();
    check_token_extents(*entropy, "entropy", B, N);
    return backend<Policy>::rhythm_statistics(
        policy, rhythm_stats_args<typename Waad::value_type, typename Fai::value_type, typename Entropy::value_type,
                                  space>{as_const_view(waad), as_const_view(fai), as_const_view(*entropy),
                                         as_const_view(segments), params});
  }
}

}  // namespace detail

/// Rhythm statistics of a batch (see the top of this header). Host backends only.
///
/// waad     [B, N]  float, bfloat16 or half: local-group WAAD; read at response positions
/// fai      [B, N]  same types: global-group FAI; read at response positions
/// segments [B]     rhythm::segment per sequence
/// params           rhythm_stats_params: the sets' selection and horizon, k_follow, shuffles, seed
///
/// Throws on a bad parameter (q outside (0, 1], H_lo < 0 or > H_hi, follow_window < 0, shuffles
/// < 1), shape mismatch, bad segments or NaN/Inf where a value is read.
/// O(B N + shuffles sum_b (m_b log m_b + f_b)) for m_b WAAD and f_b FAI peaks in sequence b;
/// O(N) scratch per worker.
template <class Policy, strided_tensor Waad, strided_tensor Fai, strided_tensor Segments>
rhythm_stats rhythm_statistics(const Policy& policy, const Waad& waad, const Fai& fai, const Segments& segments,
                               const rhythm_stats_params& params = {}) {
  if constexpr (detail::check_policy<Policy, Waad, Fai, Segments>())
    return detail::rhythm_statistics(policy, waad, fai, static_cast<const void*>(nullptr), segments, params);
  else
    return {};
}

/// As above, with per-token entropies [B, N] (float, bfloat16 or half; read at response positions),
/// which fill the entropy fields of the result.
template <class Policy, strided_tensor Waad, strided_tensor Fai, strided_tensor Entropy, strided_tensor Segments>
rhythm_stats rhythm_statistics(const Policy& policy, const Waad& waad, const Fai& fai, const Entropy& entropy,
                               const Segments& segments, const rhythm_stats_params& params = {}) {
  if constexpr (detail::check_policy<Policy, Waad, Fai, Entropy, Segments>())
    return detail::rhythm_statistics(policy, waad, fai, &entropy, segments, params);
  else
    return {};
}

}  // namespace rhythm
