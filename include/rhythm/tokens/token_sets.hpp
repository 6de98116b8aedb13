#pragma once
/// WAAD jumps and the token sets of the preplan-and-anchor rhythm (DESIGN §3; paper §4, used by
/// Eq. 15-19).
///
/// For each sequence, over its response R = [response_begin, end), with WAAD the local-group WAAD
/// and FAI the global-group FAI (signals/group_signals.hpp):
///
///   Delta_t            = |WAAD_t - WAAD_{t+1}| for t in R, 0 at the last response token (waad_jumps)
///   T_loc  (preplan)   = top-q(Delta) over every response token
///   T_glob (anchor)    = top-q(FAI)   over the FAI-eligible response tokens (fai_eligible: T(s) non-empty)
///   D      (dominated) = {t in T_glob : WAAD_t <= tau_waad  and  max_{u in [t-k, t-1] ∩ R} Delta_u >= tau_Delta}
///                        a t whose window [t-k, t-1] ∩ R is empty is never dominated
///   intro(t)           = argmax_{u in [t-k, t-1] ∩ R} Delta_u (the earliest on ties), for every t in D
///
///   tau_waad  = median of WAAD over the response tokens
///   tau_Delta = the T_loc threshold (dominance_threshold_mode::loc_threshold, default)
///               or the median of Delta over the response tokens (dominance_threshold_mode::median_delta)
///
/// The median of m values is the middle value when m is odd and the mean of the two middle values
/// when m is even. top-q is top_q.hpp's (k = ceil(q n), inclusive ties); `bottom` switches T_loc and
/// T_glob to bottom-q selections (their thresholds then being k-th smallest values), everything else
/// unchanged. The sets are written as rhythm::token_flag bits, one byte per position.
///
/// Delta is computed in float, by waad_jumps and inside token_sets alike, so that
/// top_q(waad_jumps(waad)) reproduces T_loc bit for bit.
#include <cstdint>

#include "../core/checks.hpp"
#include "../core/execution.hpp"
#include "../core/token_types.hpp"
#include "../core/tensor.hpp"
#include "../cpu/backend.hpp"
#include "top_q.hpp"

namespace rhythm {
namespace detail {

template <class Policy, strided_tensor Waad, strided_tensor Fai, strided_tensor Segments, strided_tensor Flags,
          class Thresholds>
void token_sets(const Policy& policy, const Waad& waad, const Fai& fai, const Segments& segments, const Flags& flags,
                const Thresholds* thresholds, const token_params& params) {
  check_token_signal<Waad>();
  check_token_signal<Fai>();
  static_assert(flag_element<element_of<Flags>>, "rhythm: flags must be a writable view of rhythm::token_flag");
  using space = memory_space_of<Waad>;
  check_token_params(params);
  const std::int64_t B = waad.extent(0), N = waad.extent(1);
  check_token_extents(fai, "fai", B, N);
  check_segments_shape(segments, B);
  check_token_extents(flags, "flags", B, N);
  check_output(flags, "flags");
  check_disjoint(flags, "flags", waad, fai, segments);
  auto thresholds_view = absent<float, 2, space>();
  if constexpr (!std::is_void_v<Thresholds>) {
    static_assert(Thresholds::rank() == 2 && std::is_same_v<element_of<Thresholds>, float>,
                  "rhythm: thresholds must be a writable [B, 4] view of float");
    check_extents(*thresholds, "thresholds", "[B, 4]", B, token_threshold::count);
    check_output(*thresholds, "thresholds");
    check_disjoint(*thresholds, "thresholds", waad, fai, segments, flags);
    thresholds_view = as_view(*thresholds);
  }
  backend<Policy>::token_sets(
      policy, token_sets_args<typename Waad::value_type, typename Fai::value_type, space>{
                  as_const_view(waad), as_const_view(fai), as_const_view(segments), as_bytes(as_view(flags)),
                  thresholds_view, params});
}

}  // namespace detail

/// WAAD jumps of every sequence.
///
/// waad     [B, N]  float, bfloat16 or half: the local-group WAAD (group_mean of head_signals_*);
///                  read only at response positions (padding and prompt may hold anything)
/// segments [B]     rhythm::segment per sequence
/// delta    [B, N]  float out, written at every position
///
/// Throws (writing nothing) on shape mismatch, bad segments, overlapping memory, or NaN/Inf in
/// waad at a response position. O(B N); no allocation.
template <class Policy, strided_tensor Waad, strided_tensor Segments, strided_tensor Delta>
void waad_jumps(const Policy& policy, const Waad& waad, const Segments& segments, const Delta& delta) {
  if constexpr (detail::check_policy<Policy, Waad, Segments, Delta>()) {
    detail::check_token_signal<Waad>();
    static_assert(Delta::rank() == 2 && std::is_same_v<element_of<Delta>, float>,
                  "rhythm: delta must be a writable [B, N] view of float");
    const std::int64_t B = waad.extent(0), N = waad.extent(1);
    detail::check_segments_shape(segments, B);
    detail::check_token_extents(delta, "delta", B, N);
    detail::check_output(delta, "delta");
    detail::check_disjoint(delta, "delta", waad, segments);
    backend<Policy>::waad_jumps(policy, waad_jumps_args<typename Waad::value_type, memory_space_of<Waad>>{
                                            as_const_view(waad), as_const_view(segments), as_view(delta)});
  }
}

/// Preplan, anchor, dominated and intro sets of every sequence, as token_flag bits.
///
/// waad       [B, N]  float, bfloat16 or half: local-group WAAD; read at response positions
/// fai        [B, N]  same types: global-group FAI; read at FAI-eligible response positions only
/// segments   [B]     rhythm::segment per sequence
/// flags      [B, N]  token_flag out: preplan | anchor | dominated | intro, none outside R
/// thresholds [B, 4]  float out (optional overload), columns token_threshold::preplan, anchor,
///                    waad_median, jump: the per-sequence thresholds the sets were cut at
/// params             token_params: selection {q, bottom}, dominance {window k, threshold}, horizon
///
/// Throws (writing nothing) on a bad parameter (q outside (0, 1], k < 1, H_lo < 0 or > H_hi),
/// shape mismatch, bad segments, overlapping memory, or NaN/Inf where a value is read.
/// O(B N) expected time for any q and k (nth_element selections and medians, a monotone deque
/// for the windowed maxima); O(N) scratch per worker.
template <class Policy, strided_tensor Waad, strided_tensor Fai, strided_tensor Segments, strided_tensor Flags,
          strided_tensor Thresholds>
void token_sets(const Policy& policy, const Waad& waad, const Fai& fai, const Segments& segments, const Flags& flags,
                const Thresholds& thresholds, const token_params& params = {}) {
  if constexpr (detail::check_policy<Policy, Waad, Fai, Segments, Flags, Thresholds>())
    detail::token_sets(policy, waad, fai, segments, flags, &thresholds, params);
}

/// As above, without the thresholds output.
template <class Policy, strided_tensor Waad, strided_tensor Fai, strided_tensor Segments, strided_tensor Flags>
void token_sets(const Policy& policy, const Waad& waad, const Fai& fai, const Segments& segments, const Flags& flags,
                const token_params& params = {}) {
  if constexpr (detail::check_policy<Policy, Waad, Fai, Segments, Flags>())
    detail::token_sets(policy, waad, fai, segments, flags, static_cast<const void*>(nullptr), params);
}

}  // namespace rhythm
