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
///
/// Conventions of every token primitive (tokens/*.hpp): signals are [B, N] (one value per padded
/// position) and are read only at response positions R = [response_begin, end) of each
/// sequence's segment; masks and flags are [B, N] bytes and are written at every position (0
/// outside R). Outputs may not be broadcast (stride 0) nor overlap an input or another output.
#include <cstdint>

#include "../core/checks.hpp"
#include "../core/dtypes.hpp"
#include "../core/execution.hpp"
#include "../core/token_types.hpp"
#include "../core/tensor.hpp"
#include "../cpu/backend.hpp"

namespace rhythm {
namespace detail {

/// A [B, N] token view: rank 2 with the batch's extents.
template <strided_tensor V>
void check_token_extents(const V& v, const char* name, std::int64_t B, std::int64_t N) {
  static_assert(V::rank() == 2, "rhythm: token signals, masks and flags must have rank 2: [B, N]");
  check_extents(v, name, "[B, N]", B, N);
}

/// A [B, N] input of float, bfloat16 or half.
template <strided_tensor V>
constexpr void check_token_signal() {
  static_assert(V::rank() == 2, "rhythm: token signals must have rank 2: [B, N]");
  static_assert(input_element<typename V::value_type>, "rhythm: token signals must hold float, bfloat16 or half");
}

/// An empty view standing for "no such tensor" in an arguments struct.
template <class T, std::size_t R, class Space>
view<T, R, Space> absent() {
  return {};
}

template <class Policy, strided_tensor Values, class Eligible, strided_tensor Segments, strided_tensor Selected,
          strided_tensor Threshold>
void top_q(const Policy& policy, const Values& values, const Eligible* eligible, const Segments& segments,
           const Selected& selected, const Threshold& threshold, const top_q_params& params) {
  check_token_signal<Values>();
  static_assert(Selected::rank() == 2 && Threshold::rank() == 1,
                "rhythm: top_q takes values [B, N], selected [B, N] and threshold [B]");
  static_assert(std::is_same_v<element_of<Selected>, std::uint8_t>, "rhythm: selected must be a writable view of std::uint8_t");
  static_assert(std::is_same_v<element_of<Threshold>, float>, "rhythm: threshold must be a writable view of float");
  using space = memory_space_of<Values>;
  check_top_q_params(params, "params");
  const std::int64_t B = values.extent(0), N = values.extent(1);
  auto eligible_view = absent<const std::uint8_t, 2, space>();
  if constexpr (!std::is_void_v<Eligible>) {
    static_assert(Eligible::rank() == 2 && flag_element<typename Eligible::value_type>,
                  "rhythm: eligible must be a [B, N] view of std::uint8_t");
    check_token_extents(*eligible, "eligible", B, N);
    eligible_view = as_bytes(as_const_view(*eligible));
  }
  check_segments_shape(segments, B);
  check_token_extents(selected, "selected", B, N);
  check_extents(threshold, "threshold", "[B]", B);
  check_output(selected, "selected");
  check_output(threshold, "threshold");
  check_disjoint(selected, "selected", values, segments, eligible_view);
  check_disjoint(threshold, "threshold", values, segments, eligible_view, selected);
  backend<Policy>::top_q(policy, top_q_args<typename Values::value_type, space>{as_const_view(values), eligible_view,
                                                                                 as_const_view(segments), as_view(selected),
                                                                                 as_view(threshold), params});
}

}  // namespace detail

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
void top_q(const Policy& policy, const Values& values, const Eligible& eligible, const Segments& segments,
           const Selected& selected, const Threshold& threshold, const top_q_params& params = {}) {
  if constexpr (detail::check_policy<Policy, Values, Eligible, Segments, Selected, Threshold>())
    detail::top_q(policy, values, &eligible, segments, selected, threshold, params);
}

/// Top-q of `values` over every response token (no eligibility mask); otherwise as above.
template <class Policy, strided_tensor Values, strided_tensor Segments, strided_tensor Selected,
          strided_tensor Threshold>
void top_q(const Policy& policy, const Values& values, const Segments& segments, const Selected& selected,
           const Threshold& threshold, const top_q_params& params = {}) {
  if constexpr (detail::check_policy<Policy, Values, Segments, Selected, Threshold>())
    detail::top_q(policy, values, static_cast<const void*>(nullptr), segments, selected, threshold, params);
}

}  // namespace rhythm
