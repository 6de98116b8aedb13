#pragma once
/// CUDA backend of head_signals_from_maps (signals/head_signals.hpp): span, WAAD and FAI of every
/// (sequence, head) in one fused read of the response rows' lower triangle.
///
/// Launch shape. One block of `maps_threads` (128) threads per (sequence, head) item (grid-stride
/// over B*H items). The block walks the columns in tiles of C = 128 * V keys, V = 16 / sizeof(T)
/// (4 for float, 8 for bfloat16/half); thread j owns the V keys [c0 + j V, c0 + j V + V) of tile c0
/// and loads them with one 16-byte load per row when the row is contiguous and 16-byte aligned
/// (element loads otherwise). Within a tile it reads the rows t in R with t >= c0 in batches of
/// `maps_rows` (8) rows, and only the keys [begin, t] of each row count:
///   - row sums sum_s A[t,s] (t - s) (span) and sum_s A[t,s] min(t - s, W) (WAAD): each thread
///     sums its V keys in float, a warp reduce-scatter and a fixed-order double sum over the warps
///     give the tile's part, which is added in double to the row's accumulator in the workspace
///     (the row's first tile stores it). The block owns all rows of its item: no atomics;
///   - FAI column sums over the band H_lo <= t - s <= H_hi: each thread keeps its V columns in
///     registers (float within a batch, double across batches); at the end of the tile they are
///     complete and divided by the receiver count |T(s)|.
/// Every reduction has a fixed order, so results are deterministic; they agree with the CPU
/// backend within float rounding of short sums (~1e-6 relative).
///
/// Bytes read: the maps elements H * sum_b sum_{t in R_b} (t - begin_b + 1) * sizeof(T), rounded out
/// to whole 16-byte vectors at both ends of each row, plus per (row, column tile) one 8-byte
/// accumulator read and write; then the commit reads 12 bytes and writes 8 per (b, h, t).
///
/// Value errors (the CPU's order): a bad segment (key b), then the first (b, h, t) whose row has
/// NaN or Inf among its keys [begin, t] (key B + (b H + h) N + t), if params.check_finite.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "../core/dtypes.hpp"
#include "../core/segments.hpp"
#include "../core/signal_types.hpp"
#include "../core/status.hpp"
#include "../core/tensor.hpp"
#include "runtime.cuh"

namespace rhythm::cuda {
namespace detail {

inline constexpr int maps_threads = 128;  ///< threads per block (one (sequence, head) per block)
inline constexpr int maps_rows = 8;       ///< rows per batch (2 * maps_rows values per warp reduction)
inline constexpr int maps_warps = maps_threads / 32;

/// Workspace of head_signals_from_maps: the error slot, span [B*H] (float), the WAAD row
/// accumulators [B*H*N] (double) and FAI [B*H*N] (float).
struct maps_signal_layout {
  error_key* slot;
  float* span;
  double* waad;
  float* fai;
  std::size_t bytes;
};

inline maps_signal_layout maps_signal_plan(workspace_carver c, std::int64_t B, std::int64_t H, std::int64_t N) {
  maps_signal_layout w{};
  w.slot = c.take<error_key>(1);
  w.span = c.take<float>(B * H);
  w.waad = c.take<double>(B * H * N);
  w.fai = c.take<float>(B * H * N);
  w.bytes = c.used();
  return w;
}

/// 16 bytes of elements as four 32-bit words (element k of a 16-bit type: word k / 2, low half first).
struct raw16 {
  std::uint32_t w[4];
};

/// The keys one block reads: rows of head (b, h), row t at head + t * row_stride, key s at + s * key_stride.
template <class T>
struct maps_item {
  const T* head;
  std::int64_t row_stride, key_stride, N;
  segment seg;
  float window, band_lo, band_hi;  // W, H_lo, H_hi clipped to [0, N + 1]: exact floats for N < 2^24
};

RHYTHM_HOST_DEVICE inline float clipped(std::int64_t x, std::int64_t N) { return static_cast<float>(x < N + 1 ? x : N + 1); }

template <class T, class Space>
RHYTHM_HOST_DEVICE inline maps_item<T> maps_item_of(const maps_signal_args<T, Space>& a, std::int64_t b, std::int64_t h) {
  const std::int64_t N = a.maps.extent(2);
  return {a.maps.data_handle() + b * a.maps.stride(0) + h * a.maps.stride(1), a.maps.stride(2), a.maps.stride(3), N,
          a.segments(b), clipped(a.params.window, N), clipped(a.params.horizon.lo, N), clipped(a.params.horizon.hi, N)};
}

template <class T>
RHYTHM_HOST_DEVICE inline float element(const raw16& r, int k) {
  if constexpr (std::is_same_v<T, float>) {
    return rhythm::detail::bits_as<float>(r.w[k]);
  } else if constexpr (std::is_same_v<T, bfloat16>) {
    const std::uint32_t w = r.w[k / 2];
    return rhythm::detail::bits_as<float>((k & 1) ? (w & 0xffff0000u) : (w << 16));
  } else {
    const auto bits = static_cast<unsigned short>(r.w[k / 2] >> ((k & 1) * 16));
#if defined(__CUDA_ARCH__)
    return __half2float(__ushort_as_half(bits));
#else
    half x;
    x.bits = bits;
    return static_cast<float>(x);
#endif
  }
}

/// Thread's V keys [col0, col0 + V) of row t, zero where not loaded. One 16-byte load when the row is
/// contiguous, aligned and holds all V keys (keys outside [begin, t] then hold whatever is there);
/// otherwise element loads of the keys in [begin, t] only.
template <class T>
RHYTHM_HOST_DEVICE inline raw16 load_keys(const maps_item<T>& m, std::int64_t t, std::int64_t col0) {
  constexpr int V = 16 / sizeof(T);
  raw16 r{{0, 0, 0, 0}};
  if (col0 > t || col0 + V <= m.seg.begin) return r;
  const T* row = m.head + t * m.row_stride;
  if (m.key_stride == 1 && col0 + V <= m.N && reinterpret_cast<std::uintptr_t>(row) % 16 == 0) {
#if defined(__CUDA_ARCH__)
    const uint4 q = __ldcs(reinterpret_cast<const uint4*>(row + col0));
    r.w[0] = q.x, r.w[1] = q.y, r.w[2] = q.z, r.w[3] = q.w;
#else
    std::memcpy(r.w, row + col0, 16);
#endif
    return r;
  }
  for (int k = 0; k < V; ++k) {
    const std::int64_t s = col0 + k;
    if (s < m.seg.begin || s > t) continue;
    const T x = row[s * m.key_stride];
    if constexpr (std::is_same_v<T, float>) r.w[k] = rhythm::detail::bits_as<std::uint32_t>(x);
    else r.w[k / 2] |= std::uint32_t(x.bits) << ((k & 1) * 16);
  }
  return r;
}

/// One thread's part of row t over its keys [col0, col0 + V) restricted to [begin, t]:
/// span += sum x (t - s), waad += sum x min(t - s, W) (float, fmaf), and the band keys
/// H_lo <= t - s <= H_hi added to `columns` (the thread's FAI column sums).
template <class T>
RHYTHM_HOST_DEVICE inline void add_row_keys(const maps_item<T>& m, const raw16& r, std::int64_t t, std::int64_t col0,
                                            float& span, float& waad, float (&columns)[16 / sizeof(T)]) {
  constexpr int V = 16 / sizeof(T);
  if (col0 > t || col0 + V <= m.seg.begin) return;
  const bool whole = col0 >= m.seg.begin && col0 + V - 1 <= t;
  const float d0 = static_cast<float>(t - col0);  // t - s for k = 0; exact
  const bool all_band = d0 - (V - 1) >= m.band_lo && d0 <= m.band_hi;
  const bool no_band = d0 < m.band_lo || d0 - (V - 1) > m.band_hi;
  for (int k = 0; k < V; ++k) {
    float x = element<T>(r, k);
    if (!whole && (col0 + k < m.seg.begin || col0 + k > t)) x = 0.0f;
    const float d = d0 - static_cast<float>(k);
    span = fmaf(x, d, span);
    waad = fmaf(x, fminf(d, m.window), waad);
    if (!no_band && (all_band || (d >= m.band_lo && d <= m.band_hi))) columns[k] += x;
  }
}

/// FAI of key s from its band column sum: mean over the receivers T(s), 0 where there are none or
/// s is outside [begin, end).
RHYTHM_HOST_DEVICE inline float fai_of_column(double column_sum, std::int64_t s, const segment& seg,
                                              const fai_horizon& horizon) {
  if (s < seg.begin || s >= seg.end) return 0.0f;
  const std::int64_t receivers = rhythm::detail::fai_receiver_count(s, seg.response_begin, seg.end, horizon);
  return receivers > 0 ? static_cast<float>(column_sum / static_cast<double>(receivers)) : 0.0f;
}

/// The tile's part of row slot r from the warps' partials `partials[warp][2 maps_rows]` (span at
/// 2 r, waad at 2 r + 1), summed in double in warp order.
RHYTHM_HOST_DEVICE inline void row_of_warps(const float* partials, int r, double& span, double& waad) {
  span = 0, waad = 0;
  for (int w = 0; w < maps_warps; ++w) {
    span += static_cast<double>(partials[w * 2 * maps_rows + 2 * r]);
    waad += static_cast<double>(partials[w * 2 * maps_rows + 2 * r + 1]);
  }
}

/// The value_error of a key (segments view in the memory the caller can read).
template <class Space>
RHYTHM_HOST_DEVICE inline value_error maps_signal_error(error_key key, const view<const segment, 1, Space>& segments,
                                                        std::int64_t H, std::int64_t N) {
  const auto B = static_cast<error_key>(segments.extent(0));
  if (key < B) {
    const auto b = static_cast<std::int64_t>(key);
    const segment s = segments(b);
    return segment_error(b, s.begin, s.response_begin, s.end, N);
  }
  const auto k = static_cast<std::int64_t>(key - B);
  const std::int64_t item = k / N;
  return non_finite_error(value_argument::maps, value_location::sequence_head_row, value_scope::all, item / H,
                          item % H, k % N);
}

RHYTHM_HOST_DEVICE inline error_key row_key(std::int64_t B, std::int64_t item, std::int64_t N, std::int64_t t) {
  return static_cast<error_key>(B + item * N + t);
}

#if defined(__CUDACC__)

/// Warp reduce-scatter of Width values per lane: afterwards lane L holds the warp's sum of
/// value L / (32 / Width) (lanes differing in their low bits hold the same sum). Five steps,
/// Width - 1 + 5 - log2(Width) shuffles in all (16 for 16 values) instead of 5 per value.
template <int Width, int Offset, int Count>
__device__ inline void reduce_scatter(float (&v)[Count], unsigned lane) {
  if constexpr (Offset >= 1) {
    const bool upper = (lane & Offset) != 0;
    if constexpr (Width > 1) {
      constexpr int half = Width / 2;
#pragma unroll
      for (int i = 0; i < half; ++i) {
        const float send = upper ? v[i] : v[i + half];
        const float keep = upper ? v[i + half] : v[i];
        v[i] = keep + __shfl_xor_sync(0xffffffffu, send, Offset);
      }
      reduce_scatter<half, Offset / 2>(v, lane);
    } else {
      v[0] += __shfl_xor_sync(0xffffffffu, v[0], Offset);
      reduce_scatter<1, Offset / 2>(v, lane);
    }
  }
}

template <class T>
__global__ void __launch_bounds__(maps_threads) maps_signals_segments_kernel(maps_signal_args<T, device_space> a,
                                                                             maps_signal_layout w) {
  const std::int64_t N = a.maps.extent(2);
  for (std::int64_t b = thread_index(); b < a.segments.extent(0); b += thread_count())
    if (!a.segments(b).fits(N)) report(w.slot, static_cast<error_key>(b));
}

/// One block per (sequence, head) item; writes span, the WAAD accumulators and FAI of the workspace.
template <class T>
__global__ void __launch_bounds__(maps_threads) maps_signals_kernel(maps_signal_args<T, device_space> a,
                                                                    maps_signal_layout w) {
  constexpr int V = 16 / sizeof(T), R = maps_rows;
  constexpr std::int64_t C = std::int64_t(maps_threads) * V;
  __shared__ float partials[2][maps_warps * 2 * R];
  __shared__ double span_slots[R];
  const std::int64_t B = a.maps.extent(0), H = a.maps.extent(1), N = a.maps.extent(2);
  const int tid = threadIdx.x;
  const unsigned lane = tid % 32;
  const int warp = tid / 32;
  int buffer = 0;
  for (std::int64_t item = blockIdx.x; item < B * H; item += gridDim.x) {
    const maps_item<T> m = maps_item_of(a, item / H, item % H);
    if (!m.seg.fits(N)) continue;  // the segments kernel reports it
    const segment& seg = m.seg;
    double* waad = w.waad + item * N;
    double span = 0;  // this thread's row slot (tid < R), over all tiles
    for (std::int64_t c0 = 0; c0 < N; c0 += C) {
      const std::int64_t col0 = c0 + std::int64_t(tid) * V;
      double columns[V] = {};
      const bool first_tile = c0 <= seg.begin;
      const std::int64_t t_first = seg.response_begin > c0 ? seg.response_begin : c0;
      if (c0 + C > seg.begin) {
        for (std::int64_t t0 = t_first; t0 < seg.end; t0 += R) {
          const std::int64_t t_own = t0 + tid;  // the row this thread accumulates (tid < R)
          const double before = (tid < R && t_own < seg.end && !first_tile) ? waad[t_own] : 0.0;
          raw16 raw[R];
#pragma unroll
          for (int r = 0; r < R; ++r) raw[r] = t0 + r < seg.end ? load_keys(m, t0 + r, col0) : raw16{{0, 0, 0, 0}};
          float v[2 * R], band[V] = {};
#pragma unroll
          for (int r = 0; r < R; ++r) {
            v[2 * r] = 0.0f, v[2 * r + 1] = 0.0f;
            if (t0 + r < seg.end) add_row_keys(m, raw[r], t0 + r, col0, v[2 * r], v[2 * r + 1], band);
          }
#pragma unroll
          for (int k = 0; k < V; ++k) columns[k] += static_cast<double>(band[k]);
          reduce_scatter<2 * R, 16>(v, lane);
          if (lane % (32 / (2 * R)) == 0) partials[buffer][warp * 2 * R + lane / (32 / (2 * R))] = v[0];
          __syncthreads();
          if (tid < R && t_own < seg.end) {
            double row_span, row_waad;
            row_of_warps(partials[buffer], tid, row_span, row_waad);
            if (a.params.check_finite && !(isfinite(row_span) && isfinite(row_waad)))
              report(w.slot, row_key(B, item, N, t_own));
            waad[t_own] = before + row_waad;
            span += row_span;
          }
          buffer ^= 1;
        }
      }
#pragma unroll
      for (int k = 0; k < V; ++k)
        if (col0 + k < N) w.fai[item * N + col0 + k] = fai_of_column(columns[k], col0 + k, seg, a.params.horizon);
      __syncthreads();  // the next tile's rows may go to other threads: their accumulators must be visible
    }
    if (tid < R) span_slots[tid] = span;
    __syncthreads();
    if (tid == 0) {
      double total = 0;
      for (int r = 0; r < R; ++r) total += span_slots[r];
      const std::int64_t n = seg.response_length();
      w.span[item] = n > 0 ? static_cast<float>(total / static_cast<double>(n)) : 0.0f;
    }
    __syncthreads();
  }
}

/// The only kernel that writes outputs: the staged results, or nothing if a check failed.
template <class T>
__global__ void maps_signals_commit_kernel(maps_signal_args<T, device_space> a, maps_signal_layout w,
                                           value_error* status) {
  const std::int64_t B = a.maps.extent(0), H = a.maps.extent(1), N = a.maps.extent(2);
  const auto decode = [&](error_key key) { return maps_signal_error(key, a.segments, H, N); };
  if (call_failed(w.slot, status, decode)) return;
  const std::int64_t items = B * H, cells = items * N;
  for (std::int64_t i = thread_index(); i < (cells > items ? cells : items); i += thread_count()) {
    if (i < items) a.span(i / H, i % H) = N > 0 ? w.span[i] : 0.0f;
    if (i < cells) {
      const std::int64_t item = i / N, t = i % N, b = item / H, h = item % H;
      a.waad(b, h, t) = a.segments(b).in_response(t) ? static_cast<float>(w.waad[i]) : 0.0f;
      a.fai(b, h, t) = w.fai[i];
    }
  }
}

/// head_signals_from_maps on p.stream (arguments checked by the stage; see the file comment).
template <class T>
void head_signals_from_maps(const exec::cuda& p, const maps_signal_args<T, device_space>& a) {
  const std::int64_t B = a.maps.extent(0), H = a.maps.extent(1), N = a.maps.extent(2);
  check_cuda_policy(p, maps_signal_plan(workspace_carver{}, B, H, N).bytes, "head_signals_from_maps_workspace_size");
  if (B == 0) return;  // nothing to check or write
  const maps_signal_layout w = maps_signal_plan(carver_of(p), B, H, N);
  reset_slot(w.slot, p.stream);
  maps_signals_segments_kernel<T><<<blocks_for(B, maps_threads), maps_threads, 0, p.stream>>>(a, w);
  check_launch("maps_signals_segments_kernel");
  if (H > 0 && N > 0) {
    const std::int64_t items = B * H;
    const auto grid = static_cast<unsigned>(items < (1 << 30) ? items : (1 << 30));
    maps_signals_kernel<T><<<grid, maps_threads, 0, p.stream>>>(a, w);
    check_launch("maps_signals_kernel");
  }
  const std::int64_t cells = B * H * (N > 1 ? N : 1);
  maps_signals_commit_kernel<T><<<blocks_for(cells), 256, 0, p.stream>>>(a, w, p.status);
  check_launch("maps_signals_commit_kernel");
}

#endif  // __CUDACC__

}  // namespace detail

/// Workspace bytes of head_signals_from_maps with exec::cuda for maps [B, H, N, N]: an error slot,
/// span [B*H] (float), WAAD row accumulators [B*H*N] (double) and FAI [B*H*N] (float), each piece
/// aligned to 256 bytes: about 12 B H N + 4 B H + 768 bytes. `params` does not change it.
inline std::size_t head_signals_from_maps_workspace_size(std::int64_t B, std::int64_t H, std::int64_t N,
                                                         const signal_params& = {}) {
  return detail::maps_signal_plan(detail::workspace_carver{}, B, H, N).bytes;
}

}  // namespace rhythm::cuda
