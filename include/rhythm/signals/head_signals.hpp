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
/// outputs are untouched. Outputs are float; every element of them is written.
#include <cmath>
#include <string>

#include "../core/dtypes.hpp"
#include "../core/execution.hpp"
#include "../core/segments.hpp"
#include "../core/tensor.hpp"
#include "../cpu/maps_signals.hpp"
#include "../cpu/qk_signals.hpp"
#include "params.hpp"

namespace rhythm {
namespace detail {

template <strided_tensor V>
void check_extents(const V& v, const char* name, std::initializer_list<std::int64_t> want, const char* layout) {
  bool ok = true;
  std::size_t r = 0;
  for (auto e : want) ok &= v.extent(r++) == e;
  if (!ok) {
    std::string w = "[";
    r = 0;
    for (auto e : want) w += (r++ ? ", " : "") + std::to_string(e);
    fail(errc::shape_mismatch, name, std::string(layout) + " = " + w + "]", shape_string(v));
  }
}

template <strided_tensor V>
void check_float_output(const V& v, const char* name) {
  static_assert(std::is_same_v<element_of<V>, float>, "rhythm: signal outputs must be writable views of float");
  for (std::size_t r = 0; r < V::rank(); ++r)
    require(v.extent(r) <= 1 || v.stride(r) != 0, errc::bad_stride, name,
            "non-zero strides (an output element may not be written twice)", "stride 0 on dimension " + std::to_string(r));
}

template <strided_tensor Span, strided_tensor Waad, strided_tensor Fai, class... Inputs>
void check_head_signal_outputs(const Span& span, const Waad& waad, const Fai& fai, std::int64_t B, std::int64_t H,
                               std::int64_t N, const Inputs&... inputs) {
  check_float_output(span, "span");
  check_float_output(waad, "waad");
  check_float_output(fai, "fai");
  check_extents(span, "span", {B, H}, "[B, H]");
  check_extents(waad, "waad", {B, H, N}, "[B, H, N]");
  check_extents(fai, "fai", {B, H, N}, "[B, H, N]");
  require(!may_overlap(span, waad) && !may_overlap(span, fai) && !may_overlap(waad, fai), errc::aliasing,
          "span, waad, fai", "three non-overlapping outputs", "overlapping memory");
  require(!(may_overlap(inputs, span) || ...) && !(may_overlap(inputs, waad) || ...) &&
              !(may_overlap(inputs, fai) || ...),
          errc::aliasing, "span, waad, fai", "outputs that do not overlap the inputs", "overlapping memory");
}

/// Copies the backend's results out (only after every check passed).
template <strided_tensor Span, strided_tensor Waad, strided_tensor Fai>
void write_head_signals(const cpu::head_signal_rows& r, const Span& span, const Waad& waad, const Fai& fai) {
  const std::int64_t B = span.extent(0), H = span.extent(1), N = waad.extent(2);
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < H; ++h) {
      const std::int64_t item = b * H + h;
      span.data_handle()[b * span.stride(0) + h * span.stride(1)] = r.span[item];
      float* w = waad.data_handle() + b * waad.stride(0) + h * waad.stride(1);
      float* f = fai.data_handle() + b * fai.stride(0) + h * fai.stride(1);
      for (std::int64_t t = 0; t < N; ++t) {
        w[t * waad.stride(2)] = r.waad[item * N + t];
        f[t * fai.stride(2)] = r.fai[item * N + t];
      }
    }
}

inline void throw_if_non_finite(const cpu::head_signal_rows& r, std::int64_t H, const char* what) {
  if (r.bad_item < 0) return;
  fail(errc::non_finite, r.bad_argument ? r.bad_argument : what, "finite values",
       "NaN or Inf at sequence " + std::to_string(r.bad_item / H) + ", head " + std::to_string(r.bad_item % H) +
           ", row " + std::to_string(r.bad_row));
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
void head_signals_from_maps(Policy policy, const Maps& maps, const Segments& segments, const Span& span,
                            const Waad& waad, const Fai& fai, const signal_params& params = {}) {
  detail::check_policy<Policy, Maps, Segments, Span, Waad, Fai>();
  static_assert(Maps::rank() == 4, "rhythm: maps must have rank 4: [B, H, N, N]");
  static_assert(input_element<typename Maps::value_type>, "rhythm: maps must hold float, bfloat16 or half");
  detail::check_signal_params(params);
  const std::int64_t B = maps.extent(0), H = maps.extent(1), N = maps.extent(2);
  detail::require(maps.extent(3) == N, errc::shape_mismatch, "maps", "[B, H, N, N] with equal last two extents",
                  detail::shape_string(maps));
  detail::check_segments(segments, B, N);
  detail::check_head_signal_outputs(span, waad, fai, B, H, N, maps);
  const cpu::head_signal_rows r = cpu::maps_head_signals(cpu::thread_count(policy), maps, segments, params);
  detail::throw_if_non_finite(r, H, "maps");
  detail::write_head_signals(r, span, waad, fai);
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
void head_signals_from_qk(Policy policy, const Q& q, const K& k, const Segments& segments, const Span& span,
                          const Waad& waad, const Fai& fai, const signal_params& params = {}) {
  detail::check_policy<Policy, Q, K, Segments, Span, Waad, Fai>();
  static_assert(Q::rank() == 4 && K::rank() == 4, "rhythm: q and k must have rank 4: [B, H, N, d]");
  static_assert(input_element<typename Q::value_type>, "rhythm: q must hold float, bfloat16 or half");
  static_assert(std::is_same_v<typename Q::value_type, typename K::value_type>,
                "rhythm: q and k must have the same element type");
  detail::check_signal_params(params);
  const std::int64_t B = q.extent(0), H = q.extent(1), N = q.extent(2), d = q.extent(3);
  detail::require(d >= 1, errc::shape_mismatch, "q", "a head dimension d >= 1", detail::shape_string(q));
  detail::require(k.extent(0) == B && k.extent(2) == N && k.extent(3) == d && k.extent(1) >= 1 && H % k.extent(1) == 0,
                  errc::shape_mismatch, "k",
                  "[B, Hkv, N, d] = [" + std::to_string(B) + ", a divisor of " + std::to_string(H) + ", " +
                      std::to_string(N) + ", " + std::to_string(d) + "]",
                  detail::shape_string(k));
  detail::check_segments(segments, B, N);
  detail::check_head_signal_outputs(span, waad, fai, B, H, N, q, k);
  const cpu::head_signal_rows r = cpu::qk_head_signals(cpu::thread_count(policy), q, k, segments, params);
  detail::throw_if_non_finite(r, H, "q, k");
  detail::write_head_signals(r, span, waad, fai);
}

}  // namespace rhythm
