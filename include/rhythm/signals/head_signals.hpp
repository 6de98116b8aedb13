#pragma once
/// Per-head signals: head span (Eq. 7), WAAD (Eq. 9) and FAI (Eq. 10) of every (sequence, head),
/// from attention maps or from Q and K.
///
/// For sequence b with segment {begin, response_begin, end} and response R = [response_begin, end):
///   span[b,h]   = mean_{t in R} sum_{s in [begin,t]} A[b,h,t,s] (t - s)
///   waad[b,h,t] = sum_{s in [begin,t]} A[b,h,t,s] min(t - s, W)                       for t in R, else 0
///   fai[b,h,s]  = mean_{t in T(s)} A[b,h,t,s],  T(s) = {t in R : s + H_lo <= t <= min(end-1, s + H_hi)}
///                 and 0 where T(s) is empty (s is then not eligible as an anchor: see fai_eligible)
/// WAAD and FAI are linear in A, so the signal of a head group is the mean of its heads' signals
/// (group_mean in group_signals.hpp); no averaged map is ever built.
///
/// Both paths validate everything before writing: on error a rhythm::error is thrown and the
/// outputs are untouched. Outputs are float; every element of them is written. Value errors
/// (segments, NaN/Inf, Q/K logits that overflow) come from the backend (core/status.hpp).
#include <cstdint>

#include "../core/checks.hpp"
#include "../core/dtypes.hpp"
#include "../core/execution.hpp"
#include "../core/segments.hpp"
#include "../core/signal_types.hpp"
#include "../core/tensor.hpp"
#include "../cpu/backend.hpp"

namespace rhythm {
namespace detail {

/// The checks of head_signals_*'s segments and outputs: segments [B]; span [B, H] and waad, fai
/// [B, H, N] writable float, disjoint from each other and from the inputs.
template <strided_tensor Segments, strided_tensor Span, strided_tensor Waad, strided_tensor Fai, class... Inputs>
void check_head_signal_outputs(const Segments& segments, const Span& span, const Waad& waad, const Fai& fai,
                               std::int64_t B, std::int64_t H, std::int64_t N, const Inputs&... inputs) {
  static_assert(Span::rank() == 2 && Waad::rank() == 3 && Fai::rank() == 3,
                "rhythm: span must be [B, H] and waad, fai [B, H, N]");
  static_assert(std::is_same_v<element_of<Span>, float> && std::is_same_v<element_of<Waad>, float> &&
                    std::is_same_v<element_of<Fai>, float>,
                "rhythm: signal outputs must be writable views of float");
  check_segments_shape(segments, B);
  check_output(span, "span");
  check_output(waad, "waad");
  check_output(fai, "fai");
  check_extents(span, "span", "[B, H]", B, H);
  check_extents(waad, "waad", "[B, H, N]", B, H, N);
  check_extents(fai, "fai", "[B, H, N]", B, H, N);
  expects(!may_overlap(span, waad) && !may_overlap(span, fai) && !may_overlap(waad, fai), errc::aliasing,
          "span, waad, fai", "three non-overlapping outputs", "overlapping memory");
  const auto overlaps_outputs = [&](const auto& input) {
    return may_overlap(input, span) || may_overlap(input, waad) || may_overlap(input, fai);
  };
  expects(!(overlaps_outputs(segments) || ... || overlaps_outputs(inputs)), errc::aliasing, "span, waad, fai",
          "outputs that do not overlap the inputs", "overlapping memory");
}

}  // namespace detail

/// Span, WAAD and FAI of every head from attention maps.
///
/// maps     [B, H, N, N]  A[b,h,t,s], query t, key s; float, bfloat16 or half; any strides
/// segments [B]           rhythm::segment per sequence
/// span     [B, H]        float out: head span d_h (Eq. 7); 0 for an empty response
/// waad     [B, H, N]     float out: per-head WAAD (Eq. 9) at response positions, 0 elsewhere
/// fai      [B, H, N]     float out: per-head FAI (Eq. 10) at eligible positions, 0 elsewhere
///
/// One pass over the lower triangle of the response rows: reads
/// sum_b H * sum_{t in R_b} (t - begin_b + 1) elements; O(N) scratch per thread plus the O(B H N)
/// results, staged so that nothing is written on error. Only keys [begin, t] of rows t in R are read.
template <class Policy, strided_tensor Maps, strided_tensor Segments, strided_tensor Span, strided_tensor Waad,
          strided_tensor Fai>
void head_signals_from_maps(const Policy& policy, const Maps& maps, const Segments& segments, const Span& span,
                            const Waad& waad, const Fai& fai, const signal_params& params = {}) {
  if constexpr (detail::check_policy<Policy, Maps, Segments, Span, Waad, Fai>()) {
    static_assert(Maps::rank() == 4, "rhythm: maps must have rank 4: [B, H, N, N]");
    static_assert(input_element<typename Maps::value_type>, "rhythm: maps must hold float, bfloat16 or half");
    detail::check_signal_params(params);
    const std::int64_t B = maps.extent(0), H = maps.extent(1), N = maps.extent(2);
    detail::expects(maps.extent(3) == N, errc::shape_mismatch, "maps", "[B, H, N, N] with equal last two extents",
                    detail::shape_of{maps});
    detail::check_head_signal_outputs(segments, span, waad, fai, B, H, N, maps);
    backend<Policy>::head_signals_from_maps(
        policy, maps_signal_args<typename Maps::value_type, memory_space_of<Maps>>{
                    as_const_view(maps), as_const_view(segments), as_view(span), as_view(waad), as_view(fai), params});
  }
}

/// Span, WAAD and FAI of every query head from post-RoPE queries and keys, without an N x N map.
///
/// q        [B, Hq, N, d]   float, bfloat16 or half; any strides
/// k        [B, Hkv, N, d]  same element type; Hq % Hkv == 0, query head h reads kv head h / (Hq / Hkv)
/// segments [B]; span [B, Hq]; waad, fai [B, Hq, N]: as head_signals_from_maps with
/// A[b,h,t,s] = softmax_{s in [begin,t]}(scale q_t . k_s), scale = params.scale or 1/sqrt(d).
///
/// Two passes, float accumulation: pass 1 costs sum_{t in R}(t - begin + 1) d multiply-adds per head,
/// pass 2 about |R| (max(W - 1, H_hi) + 96) d. Extra memory O(B Hq N) plus O(N + 64 d) per thread.
template <class Policy, strided_tensor Q, strided_tensor K, strided_tensor Segments, strided_tensor Span,
          strided_tensor Waad, strided_tensor Fai>
void head_signals_from_qk(const Policy& policy, const Q& q, const K& k, const Segments& segments, const Span& span,
                          const Waad& waad, const Fai& fai, const signal_params& params = {}) {
  if constexpr (detail::check_policy<Policy, Q, K, Segments, Span, Waad, Fai>()) {
    static_assert(Q::rank() == 4 && K::rank() == 4, "rhythm: q and k must have rank 4: [B, H, N, d]");
    static_assert(input_element<typename Q::value_type>, "rhythm: q must hold float, bfloat16 or half");
    static_assert(std::is_same_v<typename Q::value_type, typename K::value_type>,
                  "rhythm: q and k must have the same element type");
    detail::check_signal_params(params);
    const std::int64_t B = q.extent(0), H = q.extent(1), N = q.extent(2), d = q.extent(3);
    detail::expects(d >= 1, errc::shape_mismatch, "q", "a head dimension d >= 1", detail::shape_of{q});
    detail::expects(k.extent(0) == B && k.extent(2) == N && k.extent(3) == d && k.extent(1) >= 1 && H % k.extent(1) == 0,
                    errc::shape_mismatch, "k",
                    detail::text("[B, Hkv, N, d] = [", B, ", a divisor of ", H, ", ", N, ", ", d, "]"),
                    detail::shape_of{k});
    detail::check_head_signal_outputs(segments, span, waad, fai, B, H, N, q, k);
    backend<Policy>::head_signals_from_qk(
        policy, qk_signal_args<typename Q::value_type, memory_space_of<Q>>{
                    as_const_view(q), as_const_view(k), as_const_view(segments), as_view(span), as_view(waad),
                    as_view(fai), params});
  }
}

}  // namespace rhythm
