#pragma once
/// Shared pieces of the token detectors (tokens/*.hpp): per-response selection primitives on
/// contiguous buffers, and the argument checks every token primitive runs before writing.
///
/// Public here: `top_q_count(q, n)`, the size k = ceil(q n) of a top-q selection, and
/// `top_q_params`. Everything in rhythm::detail::tokens is internal.
///
/// Conventions of every token primitive: signals are [B, N] (one value per padded position) and
/// are read only at response positions R = [response_begin, end) of each sequence's segment;
/// masks and flags are [B, N] std::uint8_t and are written at every position (0 outside R).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "../core/dtypes.hpp"
#include "../core/execution.hpp"
#include "../core/segments.hpp"
#include "../core/tensor.hpp"
#include "../cpu/parallel.hpp"
#include "../error.hpp"

namespace rhythm {

/// Parameters of a per-response top-q selection (DESIGN §3).
struct top_q_params {
  double q = 0.4;       ///< share of the eligible response tokens to select, in (0, 1]
  bool bottom = false;  ///< ablation: select the k smallest (every value <= the k-th smallest) instead
};

/// Size k of a top-q selection over n tokens: ceil(q n), clamped to [1, n]; 0 when n == 0.
/// The ceiling forgives 1e-9 of rounding so that decimal shares count as written
/// (q = 0.07, n = 100 gives 7, although 0.07 * 100 is 7.000000000000001 in binary).
inline std::int64_t top_q_count(double q, std::int64_t n) {
  if (n <= 0) return 0;
  const double k = std::ceil(q * double(n) - 1e-9);
  return std::clamp<std::int64_t>(static_cast<std::int64_t>(k), 1, n);
}

namespace detail::tokens {

inline void check_q(double q, const std::string& name) {
  require(q > 0.0 && q <= 1.0, errc::bad_parameter, name, "a value in (0, 1]", q);
}

/// Element [b, t] of a rank-2 view.
template <strided_tensor V>
inline auto& token_at(const V& v, std::int64_t b, std::int64_t t) {
  return v.data_handle()[b * v.stride(0) + t * v.stride(1)];
}

/// Rank-2 [B, N] check with the library's message.
template <strided_tensor V>
void check_token_extents(const V& v, const char* name, std::int64_t B, std::int64_t N) {
  static_assert(V::rank() == 2, "rhythm: token signals, masks and flags must have rank 2: [B, N]");
  require(v.extent(0) == B && v.extent(1) == N, errc::shape_mismatch, name,
          "[B, N] = [" + std::to_string(B) + ", " + std::to_string(N) + "]", shape_string(v));
}

/// An output may not write an element twice (zero stride on an extent > 1) nor overlap an input.
template <strided_tensor Out, strided_tensor... Inputs>
void check_token_output(const Out& out, const char* name, const Inputs&... inputs) {
  for (std::size_t r = 0; r < Out::rank(); ++r)
    require(out.extent(r) <= 1 || out.stride(r) != 0, errc::bad_stride, name,
            "non-zero strides (an output element may not be written twice)", "stride 0 on dimension " + std::to_string(r));
  require(!(may_overlap(out, inputs) || ...), errc::aliasing, name, "memory disjoint from the inputs and other outputs",
          "overlapping memory");
}

template <class T>
inline constexpr bool is_u8 = std::is_same_v<std::remove_cv_t<T>, std::uint8_t>;

/// Throws errc::non_finite naming the first (b, t), in order, with t in R and read(b, t), whose value is NaN/Inf.
template <strided_tensor V, strided_tensor S, class Read>
void check_token_finite(const V& v, const char* name, const S& segments, const char* where, Read read) {
  for (std::int64_t b = 0; b < v.extent(0); ++b) {
    const segment s = segment_at(segments, b);
    for (std::int64_t t = s.response_begin; t < s.end; ++t)
      if (read(b, s, t) && !std::isfinite(to_float(token_at(v, b, t))))
        fail(errc::non_finite, name, std::string("finite values at ") + where,
             "NaN or Inf at sequence " + std::to_string(b) + ", position " + std::to_string(t));
  }
}

/// Per-worker scratch of the token detectors: O(N) each, allocated once per call.
struct token_scratch {
  std::vector<float> a, b, c, sort;
  std::vector<std::uint8_t> m, sel, flags;
  std::vector<std::int64_t> i0, i1, i2;
  explicit token_scratch(std::int64_t n)
      : a(n), b(n), c(n), sort(n), m(n), sel(n), flags(n), i0(n), i1(n), i2(n) {}
};

inline std::vector<token_scratch> make_token_scratch(int threads, std::int64_t B, std::int64_t N) {
  return std::vector<token_scratch>(static_cast<std::size_t>(cpu::worker_count(threads, B)), token_scratch(N));
}

// ---- per-response kernels; buffers hold the n response values at offsets 0..n-1 ----

/// delta[i] = |w[i] - w[i+1]|, 0 at i = n - 1.
inline void jumps_of(const float* w, std::int64_t n, float* delta) {
  for (std::int64_t i = 0; i + 1 < n; ++i) delta[i] = std::fabs(w[i] - w[i + 1]);
  if (n > 0) delta[n - 1] = 0.0f;
}

/// Top-q (bottom-q) of v over the eligible entries (eligible == nullptr: all): sets selected[i] to
/// 1 or 0 and returns the threshold, NaN when nothing is eligible. O(n) (nth_element on `sort`).
inline float select_top_q(const float* v, const std::uint8_t* eligible, std::int64_t n, const top_q_params& p,
                          float* sort, std::uint8_t* selected) {
  std::int64_t m = 0;
  for (std::int64_t i = 0; i < n; ++i)
    if (!eligible || eligible[i]) sort[m++] = v[i];
  const std::int64_t k = top_q_count(p.q, m);
  if (k == 0) {
    if (n > 0) std::fill(selected, selected + n, std::uint8_t{0});  // the guard also silences a false -Wstringop-overflow
    return std::numeric_limits<float>::quiet_NaN();
  }
  if (p.bottom) std::nth_element(sort, sort + (k - 1), sort + m);
  else std::nth_element(sort, sort + (k - 1), sort + m, std::greater<float>());
  const float threshold = sort[k - 1];
  for (std::int64_t i = 0; i < n; ++i)
    selected[i] = (!eligible || eligible[i]) && (p.bottom ? v[i] <= threshold : v[i] >= threshold);
  return threshold;
}

/// Median of v[0..n): the middle value, or the mean of the two middle values when n is even;
/// NaN when n == 0. O(n).
inline double median_of(const float* v, std::int64_t n, float* sort) {
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  std::copy(v, v + n, sort);
  const std::int64_t mid = n / 2;
  std::nth_element(sort, sort + mid, sort + n);
  const double upper = sort[mid];
  if (n % 2) return upper;
  return 0.5 * (double(*std::max_element(sort, sort + mid)) + upper);
}

/// peak[i] = 1 where (selected[i] & bits) != 0, v[i] > v[i-1] and v[i] >= v[i+1]; a neighbour
/// outside [0, n) counts as lower. O(n).
inline void local_peaks_of(const float* v, const std::uint8_t* selected, std::uint8_t bits, std::int64_t n,
                           std::uint8_t* peak) {
  for (std::int64_t i = 0; i < n; ++i)
    peak[i] = (selected[i] & bits) && (i == 0 || v[i] > v[i - 1]) && (i + 1 == n || v[i] >= v[i + 1]);
}

}  // namespace detail::tokens
}  // namespace rhythm
