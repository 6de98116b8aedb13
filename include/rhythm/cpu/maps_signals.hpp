#pragma once
/// CPU backend of head_signals_from_maps: one pass over the response rows of each (sequence, head).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../core/dtypes.hpp"
#include "../core/segments.hpp"
#include "../core/signal_types.hpp"
#include "parallel.hpp"
#include "simd.hpp"
#include "values.hpp"

namespace rhythm::cpu {

/// Span, WAAD and FAI of every (sequence, head), staged before anything is written to the caller.
struct head_signal_rows {
  std::vector<float> span;  // [B*H]
  std::vector<float> waad;  // [B*H*N]
  std::vector<float> fai;   // [B*H*N]
  std::vector<value_error> errors;  // [B*H]: what each item found

  head_signal_rows(std::int64_t items, std::int64_t N)
      : span(items, 0.0f), waad(items * N, 0.0f), fai(items * N, 0.0f), errors(items) {}

  /// Raises the first error in item order, else writes the results into the caller's views.
  template <class Args>
  void finish(const Args& a) const {
    for (const value_error& e : errors) raise(e);
    const std::int64_t B = a.span.extent(0), H = a.span.extent(1), N = a.waad.extent(2);
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t h = 0; h < H; ++h) {
        const std::int64_t item = b * H + h;
        a.span(b, h) = span[item];
        for (std::int64_t t = 0; t < N; ++t) {
          a.waad(b, h, t) = waad[item * N + t];
          a.fai(b, h, t) = fai[item * N + t];
        }
      }
  }
};

namespace detail {

/// Sums of a[j * stride] and of j * a[j * stride] over j in [j0, j1), in double. Unit-stride rows
/// are summed in float packs over blocks of 256 keys (positions relative to the block), each block
/// then added in double: vectorised, and accurate to float rounding of a 256-term sum.
template <bool Unit, class T>
inline void row_mass_and_position(const T* a, std::int64_t stride, std::int64_t j0, std::int64_t j1, double& mass,
                                  double& position) {
  using namespace simd;
  double m = 0, p = 0;
  std::int64_t j = j0;
  if constexpr (Unit) {
    constexpr std::int64_t block = 256;
    for (; j + width <= j1;) {
      const std::int64_t end = std::min(j1, j + block) - width;
      f4 vm = splat(0.0f), vp = splat(0.0f), idx = iota(0.0f);
      const std::int64_t base = j;
      for (; j <= end; j += width, idx += float(width)) {
        f4 x;
        if constexpr (std::is_same_v<T, float>) x = load(a + j);
        else x = f4{to_float(a[j]), to_float(a[j + 1]), to_float(a[j + 2]), to_float(a[j + 3])};
        vm += x;
        vp += x * idx;
      }
      const double bm = sum(vm);
      m += bm;
      p += sum(vp) + double(base) * bm;
    }
  }
  for (; j < j1; ++j) {
    const double x = to_float(a[j * (Unit ? 1 : stride)]);
    m += x, p += x * double(j);
  }
  mass = m, position = p;
}

template <bool Unit, class T>
inline void add_columns(const T* a, std::int64_t stride, std::int64_t lo, std::int64_t hi, double* colsum) {
  const std::int64_t st = Unit ? 1 : stride;
  for (std::int64_t j = lo; j < hi; ++j) colsum[j] += to_float(a[j * st]);
}

}  // namespace detail

/// Span, WAAD and FAI of every (sequence, head) of `maps` [B,H,N,N]. Reads only the rows t in R
/// and within them the keys [begin, t]; O(sum over rows of t - begin + 1) reads, O(N) scratch per worker.
template <class T>
void maps_head_signals(int threads, const maps_signal_args<T, host_space>& a) {
  const auto& maps = a.maps;
  const signal_params& p = a.params;
  raise(check_segments(a.segments, maps.extent(2)));
  const std::int64_t B = maps.extent(0), H = maps.extent(1), N = maps.extent(2);
  const std::int64_t sb = maps.stride(0), sh = maps.stride(1), st = maps.stride(2), ss = maps.stride(3);
  head_signal_rows out(B * H, N);
  const int workers = worker_count(threads, B * H);
  std::vector<std::vector<double>> colsums(workers, std::vector<double>(N));

  parallel_for(threads, B * H, [&](std::int64_t item, int worker) {
    const std::int64_t b = item / H, h = item % H;
    const segment seg = a.segments(b);
    const T* head = maps.data_handle() + b * sb + h * sh;
    double* colsum = colsums[worker].data();
    std::fill(colsum, colsum + N, 0.0);
    float* waad = out.waad.data() + item * N;
    double span_sum = 0;
    for (std::int64_t t = seg.response_begin; t < seg.end; ++t) {
      const T* row = head + t * st + seg.begin * ss;  // row[j * ss] is A[t, begin + j]
      const std::int64_t n = t - seg.begin + 1;      // keys [begin, t]
      const std::int64_t far_end = std::max<std::int64_t>(0, n - p.window);  // keys with t - s >= W
      double fm, fp, nm, np;  // mass and key-weighted mass of the far (t - s >= W) and near parts
      if (ss == 1) {
        detail::row_mass_and_position<true>(row, 1, 0, far_end, fm, fp);
        detail::row_mass_and_position<true>(row, 1, far_end, n, nm, np);
      } else {
        detail::row_mass_and_position<false>(row, ss, 0, far_end, fm, fp);
        detail::row_mass_and_position<false>(row, ss, far_end, n, nm, np);
      }
      if (p.check_finite && !std::isfinite(fm + fp + nm + np)) {
        out.errors[item] = non_finite_error(value_argument::maps, value_location::sequence_head_row,
                                            value_scope::all, b, h, t);
        return;
      }
      const double last = double(n - 1);  // t - s = last - j
      span_sum += last * (fm + nm) - (fp + np);
      waad[t] = static_cast<float>(last * nm - np + double(p.window) * fm);
      // FAI band: keys with H_lo <= t - s <= H_hi, i.e. j in [last - H_hi, last - H_lo]
      const std::int64_t hi = last - p.horizon.lo + 1;
      const std::int64_t lo = p.horizon.hi >= n ? 0 : last - p.horizon.hi;
      if (hi > lo) {
        double* cs = colsum + seg.begin;
        if (ss == 1) detail::add_columns<true>(row, 1, lo, hi, cs);
        else detail::add_columns<false>(row, ss, lo, hi, cs);
      }
    }
    if (seg.end > seg.response_begin) out.span[item] = static_cast<float>(span_sum / double(seg.response_length()));
    float* fai = out.fai.data() + item * N;
    for (std::int64_t s = seg.begin; s < seg.end; ++s) {
      const std::int64_t receivers = rhythm::detail::fai_receiver_count(s, seg.response_begin, seg.end, p.horizon);
      if (receivers > 0) fai[s] = static_cast<float>(colsum[s] / double(receivers));
    }
  });
  out.finish(a);
}

}  // namespace rhythm::cpu
