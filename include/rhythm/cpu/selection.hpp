#pragma once
/// Per-response kernels of the CPU backend on contiguous buffers (the n response values of one
/// sequence at offsets 0..n-1): jumps, top-q selection, medians, peaks, dominance.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <vector>

#include "../core/dtypes.hpp"
#include "../core/token_types.hpp"
#include "parallel.hpp"

namespace rhythm::cpu {

/// Per-worker scratch of the token kernels: O(N) each, allocated once per call.
struct token_scratch {
  std::vector<float> a, b, c, sort;
  std::vector<std::uint8_t> m, sel, flags;
  std::vector<std::int64_t> i0, i1, i2;
  explicit token_scratch(std::int64_t n) : a(n), b(n), c(n), sort(n), m(n), sel(n), flags(n), i0(n), i1(n), i2(n) {}
};

inline std::vector<token_scratch> make_token_scratch(int threads, std::int64_t B, std::int64_t N) {
  return std::vector<token_scratch>(static_cast<std::size_t>(worker_count(threads, B)), token_scratch(N));
}

/// delta[i] = |w[i] - w[i+1]|, 0 at i = n - 1. Host and device: the CUDA backend runs it too.
RHYTHM_HOST_DEVICE inline void jumps_of(const float* w, std::int64_t n, float* delta) {
  for (std::int64_t i = 0; i + 1 < n; ++i) delta[i] = rhythm::detail::abs_bits(w[i] - w[i + 1]);
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

/// Marks D and intro in flags[0..n) (whose anchor bits are set). A monotone deque of window
/// indices (dq, n entries) keeps the earliest maximal jump of [t-k, t-1] at its front: O(n) for any k.
/// Host and device: the CUDA backend runs this same scan.
RHYTHM_HOST_DEVICE inline void mark_dominated(const float* waad, const float* delta, std::int64_t n, std::int64_t k,
                                              double tau_waad, double tau_delta, std::int64_t* dq,
                                              std::uint8_t* flags) {
  std::int64_t head = 0, tail = 0;
  for (std::int64_t t = 0; t < n; ++t) {
    if (t >= 1) {
      while (tail > head && delta[dq[tail - 1]] < delta[t - 1]) --tail;  // equal jumps stay: earliest first
      dq[tail++] = t - 1;
    }
    while (head < tail && dq[head] < t - k) ++head;
    if (!(flags[t] & bits(token_flag::anchor)) || head == tail) continue;
    const std::int64_t u = dq[head];
    if (double(waad[t]) <= tau_waad && double(delta[u]) >= tau_delta) {
      flags[t] |= bits(token_flag::dominated);
      flags[u] |= bits(token_flag::intro);
    }
  }
}

}  // namespace rhythm::cpu
