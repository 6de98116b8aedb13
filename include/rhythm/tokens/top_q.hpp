#pragma once
/// Per-response top-q selection with inclusive ties (DESIGN §3).
///
/// Over the eligible response tokens of one sequence (n of them):
///   k         = top_q_count(q, n) = ceil(q n)        (1 <= k <= n; nothing is selected when n == 0)
///   threshold = the k-th largest eligible value      (bottom: the k-th smallest)
///   selected  = every eligible token with value >= threshold   (bottom: <= threshold)
/// Ties are inclusive, so more than k tokens are selected when values repeat at the threshold
/// (all-equal values select every eligible token); with distinct values exactly k are.
///
/// The preplan and anchor sets (token_sets.hpp) are top-q selections; this header exposes the
/// selection itself for any per-token score (entropy, a custom signal, the ablations).
#include <cstdint>
#include <limits>

#include "common.hpp"

namespace rhythm {
namespace detail::tokens {

/// Shared body of both top_q overloads; `eligible` is null for "every response token".
template <class Policy, strided_tensor Values, class Eligible, strided_tensor Segments, strided_tensor Selected,
          strided_tensor Threshold>
void top_q_impl(Policy policy, const Values& values, const Eligible* eligible, const Segments& segments,
                const Selected& selected, const Threshold& threshold, const top_q_params& params) {
  static_assert(Values::rank() == 2 && Selected::rank() == 2 && Threshold::rank() == 1,
                "rhythm: top_q takes values [B, N], selected [B, N] and threshold [B]");
  static_assert(input_element<typename Values::value_type>, "rhythm: values must hold float, bfloat16 or half");
  static_assert(std::is_same_v<element_of<Selected>, std::uint8_t>,
                "rhythm: selected must be a writable view of std::uint8_t");
  static_assert(std::is_same_v<element_of<Threshold>, float>, "rhythm: threshold must be a writable view of float");
  check_q(params.q, "params.q");
  const std::int64_t B = values.extent(0), N = values.extent(1);
  constexpr bool masked = !std::is_void_v<Eligible>;
  if constexpr (masked) check_token_extents(*eligible, "eligible", B, N);
  check_segments(segments, B, N);
  check_token_extents(selected, "selected", B, N);
  require(threshold.extent(0) == B, errc::shape_mismatch, "threshold", "[B] = [" + std::to_string(B) + "]",
          shape_string(threshold));
  if constexpr (masked) {
    check_token_output(selected, "selected", values, *eligible, segments);
    check_token_output(threshold, "threshold", values, *eligible, segments, selected);
  } else {
    check_token_output(selected, "selected", values, segments);
    check_token_output(threshold, "threshold", values, segments, selected);
  }
  auto is_eligible = [&](std::int64_t b, std::int64_t t) {
    if constexpr (masked) return token_at(*eligible, b, t) != 0;
    else {
      (void)b, (void)t;
      return true;
    }
  };
  check_token_finite(values, "values", segments, "eligible response positions",
                     [&](std::int64_t b, const segment&, std::int64_t t) { return is_eligible(b, t); });

  const int threads = cpu::thread_count(policy);
  auto scratch = make_token_scratch(threads, B, N);
  cpu::parallel_for(threads, B, [&](std::int64_t b, int worker) {
    token_scratch& w = scratch[worker];
    const segment s = segment_at(segments, b);
    const std::int64_t n = s.response_length();
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t t = s.response_begin + i;
      w.m[i] = is_eligible(b, t);
      w.a[i] = w.m[i] ? to_float(token_at(values, b, t)) : 0.0f;
    }
    const float thr = select_top_q(w.a.data(), w.m.data(), n, params, w.sort.data(), w.flags.data());
    for (std::int64_t t = 0; t < N; ++t)
      token_at(selected, b, t) = s.in_response(t) ? w.flags[t - s.response_begin] : std::uint8_t{0};
    threshold.data_handle()[b * threshold.stride(0)] = thr;
  });
}

}  // namespace detail::tokens

/// Top-q of `values` over the eligible response tokens of every sequence.
///
/// values    [B, N]  float, bfloat16 or half; read at eligible response positions only
/// eligible  [B, N]  std::uint8_t, nonzero = eligible (read at response positions only)
/// segments  [B]     rhythm::segment per sequence
/// selected  [B, N]  std::uint8_t out: 1 for selected tokens, 0 at every other position
/// threshold [B]     float out: the k-th largest (bottom: smallest) eligible value; NaN when n == 0
/// params            {q in (0, 1], bottom}
///
/// Throws (writing nothing) on q outside (0, 1], shape mismatch, bad segments, overlapping
/// memory, or NaN/Inf in values at an eligible response position. O(B N) expected time
/// (nth_element), O(N) scratch per worker.
template <class Policy, strided_tensor Values, strided_tensor Eligible, strided_tensor Segments,
          strided_tensor Selected, strided_tensor Threshold>
void top_q(Policy policy, const Values& values, const Eligible& eligible, const Segments& segments,
           const Selected& selected, const Threshold& threshold, const top_q_params& params = {}) {
  detail::check_policy<Policy, Values, Eligible, Segments, Selected, Threshold>();
  static_assert(Eligible::rank() == 2 && detail::tokens::is_u8<typename Eligible::value_type>,
                "rhythm: eligible must be a [B, N] view of std::uint8_t");
  detail::tokens::top_q_impl(policy, values, &eligible, segments, selected, threshold, params);
}

/// Top-q of `values` over every response token (no eligibility mask); otherwise as above.
template <class Policy, strided_tensor Values, strided_tensor Segments, strided_tensor Selected,
          strided_tensor Threshold>
void top_q(Policy policy, const Values& values, const Segments& segments, const Selected& selected,
           const Threshold& threshold, const top_q_params& params = {}) {
  detail::check_policy<Policy, Values, Segments, Selected, Threshold>();
  detail::tokens::top_q_impl(policy, values, static_cast<const void*>(nullptr), segments, selected, threshold, params);
}

}  // namespace rhythm
