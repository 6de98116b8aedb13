#pragma once
/// CUDA backend of head_signals_from_qk: span, WAAD and FAI of every (sequence, query head) from
/// Q [B,Hq,N,d] and K [B,Hkv,N,d] without an N x N map.
///
/// Kernels, all on policy.stream, in this order:
///   check   one warp per segment / q row / k row: the value checks on the inputs (error keys below)
///   pass 1  per (sequence, kv head, head chunk, query tile): an online softmax over key tiles of 64
///           aligned at the segment's begin (as the CPU), keeping per response row the base-2
///           log-sum-exp, the expected key position and sum_s p(s) min(t - s, W), so WAAD is complete
///           after pass 1; the query rows of all the chunk's query heads share each K tile.
///           16-bit inputs: S = Q K^T on tensor cores (mma m16n8k16, f32 accumulation), scaled by
///           scale log2(e) in f32 afterwards; float inputs: plain f32 multiply-add (unfused, in the
///           CPU's order of c, no TF32) with q pre-scaled as the CPU, so the scores are the CPU's.
///   pass 2  per (sequence, kv head, head chunk, key tile of 64): recomputes the scores of the
///           queries t with H_lo <= t - s <= H_hi (full columns for H_hi = unbounded_horizon) and sums
///           p = 2^(s - lse_t) per key column in a fixed order (no atomics): the FAI column sums.
///   commit  per item: span = mean of the staged row terms (fixed-order reduction), copies waad,
///           fai to the outputs (zeros outside R / non-eligible positions), or records the error.
///
/// Error keys, in the CPU's order: b for a bad segments[b]; then B + item 3N + phase N + t for
/// item = b Hq + h and phase 0 (q row t in R), 1 (k row t in [begin, end) of h's kv head), 2 (a
/// row whose log-sum-exp is not finite: the CPU's value_argument::qk_logits).
#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "../core/dtypes.hpp"
#include "../core/segments.hpp"
#include "../core/signal_types.hpp"
#include "../core/status.hpp"
#include "mma.cuh"
#include "runtime.cuh"

namespace rhythm::cuda {
namespace detail::qk {

inline constexpr int warps = 4;
inline constexpr int threads = 32 * warps;
inline constexpr int block_rows = 16 * warps;  ///< pass 1 query rows, pass 2 keys per block
inline constexpr int key_tile = 64;            ///< pass 1 keys per tile (the CPU's key tile)
inline constexpr int query_tile = 64;          ///< pass 2 queries per tile
inline constexpr int max_heads_per_block = 4;  ///< GQA: query heads sharing one K tile in a block

/// 2^x: ex2.approx.ftz on the device (0 below 2^-126 and for -inf, NaN stays NaN, as the CPU's
/// exp2); the host emulation uses std::exp2 with the same flush.
RHYTHM_HOST_DEVICE inline float exp2_ftz(float x) {
#if defined(__CUDA_ARCH__)
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#else
  return x < -126.0f ? 0.0f : std::exp2(x);
#endif
}

RHYTHM_HOST_DEVICE inline float minus_infinity() { return rhythm::detail::bits_as<float>(0xff800000u); }

/// Key j in [0, 64) of the i-th of the 16 scores a lane holds per row (the C fragments of eight
/// 16x8 tiles: i = 2 n + e is column 8 n + 2 (lane % 4) + e); the same in both passes.
RHYTHM_HOST_DEVICE inline int lane_column(int quad_lane, int i) { return 8 * (i / 2) + 2 * quad_lane + i % 2; }

/// The fixed order in which a quad (4 lanes of one row) combines its partials: (v0 + v1) + (v2 + v3),
/// which is what the xor-1-then-xor-2 shuffle butterfly computes in every lane.
template <class F>
RHYTHM_HOST_DEVICE inline F quad_order(F v0, F v1, F v2, F v3) {
  return (v0 + v1) + (v2 + v3);
}

/// Pass 1 state of one response row, relative to the running max m (base-2 logits):
/// l = sum 2^(s - m), pos = sum 2^(s - m) (key - begin), w = sum 2^(s - m) min(t - key, W).
struct row_state {
  float m = minus_infinity();
  double l = 0, pos = 0, w = 0;
};

/// Pass 1, one lane: max of its scores s[i] over keys lane_column(i) <= last (= t - k0).
RHYTHM_HOST_DEVICE inline float lane_max(const float (&s)[16], int quad_lane, int last) {
  float mx = minus_infinity();
  for (int i = 0; i < 16; ++i)
    if (lane_column(quad_lane, i) <= last) mx = fmaxf(mx, s[i]);
  return mx;
}

/// Pass 1, one lane: with e = 2^(s - m) over its keys j <= last, the sums of e, e j and e min(last - j, W).
RHYTHM_HOST_DEVICE inline void lane_sums(const float (&s)[16], int quad_lane, int last, float m, float W, float& l,
                                         float& p, float& w) {
  l = 0.0f, p = 0.0f, w = 0.0f;
  for (int i = 0; i < 16; ++i) {
    const int j = lane_column(quad_lane, i);
    const float e = j <= last ? exp2_ftz(s[i] - m) : 0.0f;
    l += e;
    p += e * static_cast<float>(j);
    w += e * fminf(static_cast<float>(last - j), W);
  }
}

/// Pass 1: folds one key tile (its max m_new = max(m, tile max) and sums relative to m_new) into a row.
RHYTHM_HOST_DEVICE inline void row_update(row_state& r, float m_new, float l, float p, float w, std::int64_t offset) {
  const double alpha = exp2_ftz(r.m - m_new);
  r.l = r.l * alpha + l;
  r.pos = r.pos * alpha + p + static_cast<double>(offset) * l;
  r.w = r.w * alpha + w;
  r.m = m_new;
}

/// Pass 1 results of row t (t_rel = t - begin): base-2 log-sum-exp, WAAD, and span term (t - E[key]).
RHYTHM_HOST_DEVICE inline void row_finish(const row_state& r, std::int64_t t_rel, float& lse, float& waad,
                                          float& span_term) {
  lse = r.m + static_cast<float>(::log2(r.l));
  waad = static_cast<float>(r.w / r.l);
  span_term = static_cast<float>(static_cast<double>(t_rel) - r.pos / r.l);
}

/// Pass 2, one lane: sum of p = 2^(s[i] - lse[j]) over its query columns j < cols with
/// lo <= dist0 + j <= hi (dist0 = first query of the tile - key).
RHYTHM_HOST_DEVICE inline float lane_band(const float (&s)[16], int quad_lane, const float* lse, int dist0, int lo,
                                          int hi, int cols) {
  float acc = 0.0f;
  for (int i = 0; i < 16; ++i) {
    const int j = lane_column(quad_lane, i), dist = dist0 + j;
    acc += j < cols && dist >= lo && dist <= hi ? exp2_ftz(s[i] - lse[j]) : 0.0f;
  }
  return acc;
}

/// scale log2(e) as the CPU computes it.
inline float score_scale(const signal_params& p, std::int64_t d) {
  return (p.scale > 0.0f ? p.scale : 1.0f / std::sqrt(static_cast<float>(d))) * 1.4426950408889634f;
}

/// Query heads per block (a power of two <= min(G, 4)) and query positions per pass-1 block.
inline int heads_per_block(std::int64_t group) {
  int hb = 1;
  while (hb * 2 <= group && hb * 2 <= max_heads_per_block) hb *= 2;
  return hb;
}

// ---- error keys ---------------------------------------------------------------------------

RHYTHM_HOST_DEVICE inline error_key row_key(std::int64_t B, std::int64_t N, std::int64_t item, int phase,
                                            std::int64_t t) {
  return static_cast<error_key>(B + (item * 3 + phase) * N + t);
}

/// The value_error the CPU raises for `key` (segments [B], Hq query heads, N positions).
RHYTHM_HOST_DEVICE inline value_error decode_key(error_key key, const view<const segment, 1, device_space>& segments,
                                                 std::int64_t Hq, std::int64_t N) {
  const std::int64_t B = segments.extent(0), k = static_cast<std::int64_t>(key);
  if (k < B) {
    const segment s = segments(k);
    return segment_error(k, s.begin, s.response_begin, s.end, N);
  }
  const std::int64_t r = k - B, item = r / (3 * N), phase = r / N % 3, t = r % N;
  const value_argument arg = phase == 0 ? value_argument::q : phase == 1 ? value_argument::k : value_argument::qk_logits;
  return non_finite_error(arg, value_location::sequence_head_row, value_scope::all, item / Hq, item % Hq, t);
}

/// Check units: B segments, then (if check_finite and Hq > 0) B Hq N q rows and B Hkv N k rows.
inline std::int64_t check_units(std::int64_t B, std::int64_t Hq, std::int64_t Hkv, std::int64_t N, bool finite_checks) {
  return B + (finite_checks && Hq > 0 ? B * (Hq + Hkv) * N : 0);
}

/// True if `lane` (of `lanes` reading one row) finds unit `u` failing; `key` is its key.
/// Rows outside the checked ranges (q: [response_begin, end), k: [begin, end) of sequences with a
/// response) and rows of sequences with a bad segment pass.
template <class T>
RHYTHM_HOST_DEVICE inline bool check_unit(const qk_signal_args<T, device_space>& a, std::int64_t u, int lane, int lanes,
                                          error_key& key) {
  const std::int64_t B = a.q.extent(0), Hq = a.q.extent(1), Hkv = a.k.extent(1), N = a.q.extent(2),
                     d = a.q.extent(3);
  key = no_error;
  if (u < B) {
    const segment s = a.segments(u);
    key = static_cast<error_key>(u);
    return lane == 0 && !s.fits(N);
  }
  u -= B;
  const bool is_q = u < B * Hq * N;
  if (!is_q) u -= B * Hq * N;
  const std::int64_t heads = is_q ? Hq : Hkv, t = u % N, head = u / N % heads, b = u / N / heads;
  const segment s = a.segments(b);
  if (!s.fits(N) || s.end == s.response_begin) return false;
  if (t < (is_q ? s.response_begin : s.begin) || t >= s.end) return false;
  const std::int64_t item = b * Hq + (is_q ? head : head * (Hq / Hkv));  // k: the first query head reading it
  key = row_key(B, N, item, is_q ? 0 : 1, t);
  const auto& x = is_q ? a.q : a.k;
  const T* row = x.data_handle() + b * x.stride(0) + head * x.stride(1) + t * x.stride(2);
  bool ok = true;
  for (std::int64_t c = lane; c < d; c += lanes) ok &= is_finite_bits(to_float(row[c * x.stride(3)]));
  return !ok;
}

// ---- workspace ----------------------------------------------------------------------------

/// The workspace: the error slot, then per (item, position) the staged lse, span term, waad, fai.
struct layout {
  error_key* slot;
  float *lse, *span_term, *waad, *fai;
};

inline layout plan(workspace_carver& w, std::int64_t B, std::int64_t Hq, std::int64_t N) {
  const std::int64_t rows = B * Hq * N;
  layout l;
  l.slot = w.take<error_key>(1);
  l.lse = w.take<float>(rows);
  l.span_term = w.take<float>(rows);
  l.waad = w.take<float>(rows);
  l.fai = w.take<float>(rows);
  return l;
}

// ---- shared-memory tiles ------------------------------------------------------------------

/// The block's launch constants.
struct launch_params {
  float scale, window;
  int lo, hi;          ///< H_lo, min(H_hi, N)
  int heads_per_block; ///< query heads per block (pass 1 rows, pass 2 loop)
  int chunks;          ///< ceil(G / heads_per_block)
  int pitch;           ///< row pitch of row-major tiles (elements)
  int dpad;            ///< 16-bit: d rounded up to 16; float: d
};

inline constexpr int transposed_pitch = key_tile + 2;  ///< float path: [c][j] tiles (even: float2 loads)

template <class T>
inline constexpr bool tensor_core = !std::is_same_v<T, float>;

/// Row pitch (elements) of the row-major tiles: 16-bit: d padded to 16, plus 8 (conflict-free
/// fragment loads); float: d | 1 (odd: conflict-free column reads).
template <class T>
RHYTHM_HOST_DEVICE inline int row_pitch(std::int64_t d) {
  if constexpr (tensor_core<T>) return static_cast<int>((d + 15) / 16 * 16 + 8);
  else return static_cast<int>(d | 1);
}

/// Dynamic shared memory of either pass: a row-major tile of 64 rows, a second tile (16-bit: 64 rows
/// row-major; float: transposed, d x 66) and 64 floats of lse.
template <class T>
RHYTHM_HOST_DEVICE inline std::size_t shared_bytes(std::int64_t d) {
  const auto pitch = static_cast<std::size_t>(row_pitch<T>(d));
  if constexpr (tensor_core<T>) return 2 * block_rows * pitch * sizeof(T) + query_tile * sizeof(float);
  else return (block_rows * pitch + static_cast<std::size_t>(d) * transposed_pitch + query_tile) * sizeof(float);
}

#if defined(__CUDACC__)
template <class T>
using tile_t = std::conditional_t<tensor_core<T>, T, float>;

/// Stages 64 rows of x (row r at `row_ptr(r)`, nullptr: zeros) into shared memory: row-major
/// [r][c] with `pitch` (columns d..dpad zero) or, if `transposed`, [c][r] with pitch 66. 16-bit
/// values are copied; floats are multiplied by `mul` (the CPU's pre-scaled q).
template <class T, class RowPtr>
__device__ inline void stage_tile(tile_t<T>* dst, bool transposed, int pitch, int d, int dpad, std::int64_t col_stride,
                                  float mul, RowPtr row_ptr) {
  for (int idx = threadIdx.x; idx < block_rows * dpad; idx += threads) {
    const int r = idx / dpad, c = idx - r * dpad;
    const T* row = row_ptr(r);
    tile_t<T> v{};
    if (row != nullptr && c < d) {
      if constexpr (tensor_core<T>) v = row[c * col_stride];
      else v = row[c * col_stride] * mul;
    }
    dst[transposed ? c * transposed_pitch + r : r * pitch + c] = v;
  }
}

/// acc = S for one warp: rows [row0, row0 + 16) of the row-major tile `rows_tile` against the 64
/// rows of `cols_tile` (16-bit: row-major, tensor cores; float: transposed [c][j], f32 FMA).
template <class T>
__device__ inline void warp_scores(const tile_t<T>* rows_tile, const tile_t<T>* cols_tile, int row0,
                                   const launch_params& lp, int d, int lane, float (&acc)[8][4]) {
  for (int n = 0; n < 8; ++n)
    for (int i = 0; i < 4; ++i) acc[n][i] = 0.0f;
  if constexpr (tensor_core<T>) {
    for (int k0 = 0; k0 < lp.dpad; k0 += 16) {
      std::uint32_t a[4];
      mma::load_a(rows_tile, lp.pitch, row0, k0, lane, a);
#pragma unroll
      for (int n = 0; n < 8; ++n) {
        std::uint32_t b[2];
        mma::load_b_rows(cols_tile, lp.pitch, 8 * n, k0, lane, b);
        mma::mma_16816<T>(acc[n], a, b);
      }
    }
#pragma unroll
    for (int n = 0; n < 8; ++n)
      for (int i = 0; i < 4; ++i) acc[n][i] *= lp.scale;
  } else {
    const float* qa = rows_tile + (row0 + lane / 4) * lp.pitch;
    const float* qb = qa + 8 * lp.pitch;
    const float* kt = cols_tile + 2 * (lane % 4);
    for (int c = 0; c < d; ++c) {
      const float x = qa[c], y = qb[c];
#pragma unroll
      for (int n = 0; n < 8; ++n) {
        const float2 k = *reinterpret_cast<const float2*>(kt + c * transposed_pitch + 8 * n);
        // unfused multiply and add, in order of c: the CPU's scores (built without FMA contraction)
        acc[n][0] = __fadd_rn(acc[n][0], __fmul_rn(x, k.x));
        acc[n][1] = __fadd_rn(acc[n][1], __fmul_rn(x, k.y));
        acc[n][2] = __fadd_rn(acc[n][2], __fmul_rn(y, k.x));
        acc[n][3] = __fadd_rn(acc[n][3], __fmul_rn(y, k.y));
      }
    }
  }
}

/// The 16 scores of the lane's row g (r = 0) or g + 8 (r = 1), in lane_column order.
__device__ inline void lane_row(const float (&acc)[8][4], int r, float (&s)[16]) {
#pragma unroll
  for (int n = 0; n < 8; ++n) s[2 * n] = acc[n][2 * r], s[2 * n + 1] = acc[n][2 * r + 1];
}

template <class F>
__device__ inline F quad_sum(F v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
__device__ inline float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

/// Block (x: (b, kv head, head chunk), y: query tile from the longest) of pass 1.
template <class T>
__global__ void __launch_bounds__(threads) pass1_kernel(const qk_signal_args<T, device_space> a, const launch_params lp,
                                                       const layout ws) {
  extern __shared__ __align__(16) unsigned char shared[];
  auto* q_tile = reinterpret_cast<tile_t<T>*>(shared);
  auto* k_tile = q_tile + block_rows * lp.pitch;
  const std::int64_t B = a.q.extent(0), Hq = a.q.extent(1), Hkv = a.k.extent(1), N = a.q.extent(2);
  const int d = static_cast<int>(a.q.extent(3));
  const std::int64_t G = Hq / Hkv, chunk = blockIdx.x % lp.chunks, kvh = blockIdx.x / lp.chunks % Hkv,
                     b = blockIdx.x / lp.chunks / Hkv;
  const segment seg = a.segments(b);
  if (!seg.fits(N)) return;
  const int span_rows = block_rows / lp.heads_per_block;  // query positions per block
  const std::int64_t t0 = seg.response_begin + std::int64_t(gridDim.y - 1 - blockIdx.y) * span_rows;
  if (t0 >= seg.end) return;
  const std::int64_t h0 = kvh * G + chunk * lp.heads_per_block;  // first query head of the block
  const auto q_row = [&](int r) -> const T* {
    const std::int64_t hh = chunk * lp.heads_per_block + r / span_rows, t = t0 + r % span_rows;
    if (hh >= G || t >= seg.end) return nullptr;
    return a.q.data_handle() + b * a.q.stride(0) + (kvh * G + hh) * a.q.stride(1) + t * a.q.stride(2);
  };
  stage_tile<T>(q_tile, false, lp.pitch, d, lp.dpad, a.q.stride(3), lp.scale, q_row);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, quad_lane = lane % 4;
  const std::int64_t head = h0 + warp * 16 / span_rows, wt0 = t0 + warp * 16 % span_rows;
  const bool active = head < kvh * G + G && wt0 < seg.end;
  const std::int64_t warp_last = wt0 + 15 < seg.end - 1 ? wt0 + 15 : seg.end - 1;
  const std::int64_t block_last = t0 + span_rows - 1 < seg.end - 1 ? t0 + span_rows - 1 : seg.end - 1;
  row_state st[2];
  for (std::int64_t k0 = seg.begin; k0 <= block_last; k0 += key_tile) {
    __syncthreads();  // the previous tile is consumed (and the q tile staged)
    const auto k_row = [&](int r) -> const T* {
      const std::int64_t s = k0 + r;
      if (s >= seg.end) return nullptr;
      return a.k.data_handle() + b * a.k.stride(0) + kvh * a.k.stride(1) + s * a.k.stride(2);
    };
    stage_tile<T>(k_tile, !tensor_core<T>, lp.pitch, d, lp.dpad, a.k.stride(3), 1.0f, k_row);
    __syncthreads();
    if (!active || k0 > warp_last) continue;  // warp-uniform
    float acc[8][4];
    warp_scores<T>(q_tile, k_tile, warp * 16, lp, d, lane, acc);
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float s[16];
      lane_row(acc, r, s);
      const std::int64_t t = wt0 + lane / 4 + 8 * r;
      const int last = static_cast<int>(t - k0);  // keys j <= last; distance of key j: last - j
      const float m_new = fmaxf(st[r].m, quad_max(lane_max(s, quad_lane, last)));
      float l, p, w;
      lane_sums(s, quad_lane, last, m_new, lp.window, l, p, w);
      l = quad_sum(l), p = quad_sum(p), w = quad_sum(w);
      if (last >= 0) row_update(st[r], m_new, l, p, w, k0 - seg.begin);
    }
  }
  if (!active || quad_lane != 0) return;
  for (int r = 0; r < 2; ++r) {
    const std::int64_t t = wt0 + lane / 4 + 8 * r;
    if (t >= seg.end) continue;
    const std::int64_t item = b * Hq + head, at = item * N + t;
    float lse, waad, span_term;
    row_finish(st[r], t - seg.begin, lse, waad, span_term);
    ws.lse[at] = lse, ws.waad[at] = waad, ws.span_term[at] = span_term;
    if (!is_finite_bits(lse)) report(ws.slot, row_key(B, N, item, 2, t));
  }
}

/// Block (x: (b, kv head, head chunk), y: key tile) of pass 2: FAI column sums of 64 keys.
template <class T>
__global__ void __launch_bounds__(threads) pass2_kernel(const qk_signal_args<T, device_space> a, const launch_params lp,
                                                       const layout ws) {
  extern __shared__ __align__(16) unsigned char shared[];
  auto* k_tile = reinterpret_cast<tile_t<T>*>(shared);
  auto* q_tile = k_tile + block_rows * lp.pitch;
  auto* lse_tile = reinterpret_cast<float*>(shared + shared_bytes<T>(a.q.extent(3)) - query_tile * sizeof(float));
  const std::int64_t Hq = a.q.extent(1), Hkv = a.k.extent(1), N = a.q.extent(2);
  const int d = static_cast<int>(a.q.extent(3));
  const std::int64_t G = Hq / Hkv, chunk = blockIdx.x % lp.chunks, kvh = blockIdx.x / lp.chunks % Hkv,
                     b = blockIdx.x / lp.chunks / Hkv;
  const segment seg = a.segments(b);
  if (!seg.fits(N)) return;
  const std::int64_t s0 = seg.begin + std::int64_t(blockIdx.y) * block_rows;
  const std::int64_t t_first = s0 + lp.lo > seg.response_begin ? s0 + lp.lo : seg.response_begin;
  const std::int64_t t_last = s0 + block_rows - 1 + lp.hi < seg.end - 1 ? s0 + block_rows - 1 + lp.hi : seg.end - 1;
  if (s0 >= seg.end || t_first > t_last) return;
  const auto k_row = [&](int r) -> const T* {
    const std::int64_t s = s0 + r;
    if (s >= seg.end) return nullptr;
    return a.k.data_handle() + b * a.k.stride(0) + kvh * a.k.stride(1) + s * a.k.stride(2);
  };
  stage_tile<T>(k_tile, false, lp.pitch, d, lp.dpad, a.k.stride(3), 1.0f, k_row);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, quad_lane = lane % 4;
  const std::int64_t ws0 = s0 + warp * 16;  // the warp's first key
  const std::int64_t hh_end = (chunk + 1) * lp.heads_per_block < G ? (chunk + 1) * lp.heads_per_block : G;
  for (std::int64_t hh = chunk * lp.heads_per_block; hh < hh_end; ++hh) {
    const std::int64_t head = kvh * G + hh, item = b * Hq + head;
    double col[2] = {0.0, 0.0};
    for (std::int64_t tq0 = t_first; tq0 <= t_last; tq0 += query_tile) {
      __syncthreads();  // the previous q tile is consumed (and the k tile staged)
      const auto q_row = [&](int r) -> const T* {
        const std::int64_t t = tq0 + r;
        if (t > t_last) return nullptr;
        return a.q.data_handle() + b * a.q.stride(0) + head * a.q.stride(1) + t * a.q.stride(2);
      };
      stage_tile<T>(q_tile, !tensor_core<T>, lp.pitch, d, lp.dpad, a.q.stride(3), lp.scale, q_row);
      if (threadIdx.x < query_tile)
        lse_tile[threadIdx.x] = tq0 + threadIdx.x <= t_last ? ws.lse[item * N + tq0 + threadIdx.x] : 0.0f;
      __syncthreads();
      // warp-uniform skip: no key of the warp has a receiver in [tq0, tq0 + 64)
      if (ws0 >= seg.end || tq0 > ws0 + 15 + lp.hi || tq0 + query_tile - 1 < ws0 + lp.lo) continue;
      float acc[8][4];
      warp_scores<T>(k_tile, q_tile, warp * 16, lp, d, lane, acc);
      const int cols = static_cast<int>(t_last - tq0 + 1 < query_tile ? t_last - tq0 + 1 : query_tile);
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float s[16];
        lane_row(acc, r, s);
        const std::int64_t key = ws0 + lane / 4 + 8 * r;
        col[r] += lane_band(s, quad_lane, lse_tile, static_cast<int>(tq0 - key), lp.lo, lp.hi, cols);
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const double total = quad_sum(col[r]);
      const std::int64_t key = ws0 + lane / 4 + 8 * r;
      if (quad_lane != 0 || key >= seg.end) continue;
      const std::int64_t receivers =
          rhythm::detail::fai_receiver_count(key, seg.response_begin, seg.end, a.params.horizon);
      if (receivers > 0) ws.fai[item * N + key] = static_cast<float>(total / static_cast<double>(receivers));
    }
  }
}

/// Value checks: one warp per unit (check_units).
template <class T>
__global__ void __launch_bounds__(256) check_kernel(const qk_signal_args<T, device_space> a, std::int64_t units,
                                                   error_key* slot) {
  const std::int64_t warps_total = thread_count() / 32;
  for (std::int64_t u = thread_index() / 32; u < units; u += warps_total) {
    error_key key;
    const bool bad = check_unit(a, u, static_cast<int>(threadIdx.x % 32), 32, key);
    if (__any_sync(0xffffffffu, bad) && threadIdx.x % 32 == 0) report(slot, key);
  }
}

inline constexpr int commit_threads = 256;

/// Commit: records the error, or writes span (fixed-order mean of the staged terms), waad, fai.
template <class T>
__global__ void __launch_bounds__(commit_threads) commit_kernel(const qk_signal_args<T, device_space> a,
                                                               const layout ws, value_error* status) {
  __shared__ double partial[commit_threads];
  const std::int64_t Hq = a.q.extent(1), N = a.q.extent(2), items = a.q.extent(0) * Hq;
  if (call_failed(ws.slot, status, [&](error_key key) { return decode_key(key, a.segments, Hq, N); })) return;
  for (std::int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const std::int64_t b = item / Hq, h = item % Hq;
    const segment seg = a.segments(b);
    double sum = 0;
    for (std::int64_t t = seg.response_begin + threadIdx.x; t < seg.end; t += commit_threads)
      sum += ws.span_term[item * N + t];
    partial[threadIdx.x] = sum;
    __syncthreads();
    for (int half = commit_threads / 2; half > 0; half /= 2) {
      if (static_cast<int>(threadIdx.x) < half) partial[threadIdx.x] += partial[threadIdx.x + half];
      __syncthreads();
    }
    if (threadIdx.x == 0)
      a.span(b, h) = seg.end > seg.response_begin
                         ? static_cast<float>(partial[0] / static_cast<double>(seg.response_length()))
                         : 0.0f;
    __syncthreads();  // partial[0] is read before the next item overwrites it
    for (std::int64_t t = threadIdx.x; t < N; t += commit_threads) {
      a.waad(b, h, t) = seg.in_response(t) ? ws.waad[item * N + t] : 0.0f;
      const bool eligible = t >= seg.begin && t < seg.end &&
                            rhythm::detail::fai_receiver_count(t, seg.response_begin, seg.end, a.params.horizon) > 0;
      a.fai(b, h, t) = eligible ? ws.fai[item * N + t] : 0.0f;
    }
  }
}

/// Runs the op: checks the policy, then check, pass 1, pass 2 and commit on policy.stream.
template <class T>
void run(const exec::cuda& p, const qk_signal_args<T, device_space>& a) {
  const std::int64_t B = a.q.extent(0), Hq = a.q.extent(1), Hkv = a.k.extent(1), N = a.q.extent(2),
                     d = a.q.extent(3);
  workspace_carver measure;
  plan(measure, B, Hq, N);
  check_cuda_policy(p, measure.used(), "head_signals_from_qk_workspace_size");
  expects(N <= INT_MAX / 4, errc::shape_mismatch, "q", text("[B, Hq, N, d] with N <= ", INT_MAX / 4),
          rhythm::detail::shape_of{a.q});
  const std::size_t smem = shared_bytes<T>(d);
  int device = 0, smem_max = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&smem_max, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
             "cudaDeviceGetAttribute");
  expects(smem <= static_cast<std::size_t>(smem_max), errc::shape_mismatch, "q",
          text("a head dimension d whose tiles fit the device's ", smem_max, " bytes of shared memory per block (",
               smem, " needed)"),
          rhythm::detail::shape_of{a.q});
  // The passes' launch shape and limits, before anything is queued.
  const bool passes = Hq > 0 && N > 0;
  launch_params lp{};
  dim3 grid1, grid2;
  if (passes) {
    const std::int64_t G = Hq / Hkv;
    lp.scale = score_scale(a.params, d);
    lp.window = static_cast<float>(a.params.window);
    lp.lo = static_cast<int>(a.params.horizon.lo < N + 1 ? a.params.horizon.lo : N + 1);
    lp.hi = static_cast<int>(a.params.horizon.hi < N ? a.params.horizon.hi : N);
    lp.heads_per_block = heads_per_block(G);
    lp.chunks = static_cast<int>((G + lp.heads_per_block - 1) / lp.heads_per_block);
    lp.pitch = row_pitch<T>(d);
    lp.dpad = tensor_core<T> ? static_cast<int>((d + 15) / 16 * 16) : static_cast<int>(d);
    const std::int64_t blocks_x = B * Hkv * lp.chunks, span_rows = block_rows / lp.heads_per_block;
    expects(blocks_x <= INT_MAX, errc::shape_mismatch, "q", text("B Hq <= ", INT_MAX), rhythm::detail::shape_of{a.q});
    expects((N + span_rows - 1) / span_rows <= 65535, errc::shape_mismatch, "q",
            text("[B, Hq, N, d] with N <= ", 65535 * span_rows, " (the grid's second dimension)"),
            rhythm::detail::shape_of{a.q});
    if constexpr (tensor_core<T>) {
      int major = 0;
      check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "cudaDeviceGetAttribute");
      expects(major >= 8, errc::bad_parameter, "policy",
              "a device of compute capability 8.0 or newer for bfloat16 or half q and k (tensor cores)",
              text("compute capability ", major, ".x"));
    }
    grid1 = dim3(static_cast<unsigned>(blocks_x), static_cast<unsigned>((N + span_rows - 1) / span_rows));
    grid2 = dim3(static_cast<unsigned>(blocks_x), static_cast<unsigned>((N + block_rows - 1) / block_rows));
  }
  workspace_carver carve = carver_of(p);
  const layout ws = plan(carve, B, Hq, N);
  reset_slot(ws.slot, p.stream);
  if (B == 0) return;  // nothing to check or write

  const std::int64_t units = check_units(B, Hq, Hkv, N, a.params.check_finite);
  check_kernel<T><<<blocks_for(units * 32, 256), 256, 0, p.stream>>>(a, units, ws.slot);
  check_launch("rhythm::cuda head_signals_from_qk check_kernel");

  if (passes) {
    if (smem > 48 * 1024) {
      check_cuda(cudaFuncSetAttribute(pass1_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
                 "cudaFuncSetAttribute");
      check_cuda(cudaFuncSetAttribute(pass2_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)),
                 "cudaFuncSetAttribute");
    }
    pass1_kernel<T><<<grid1, threads, smem, p.stream>>>(a, lp, ws);
    check_launch("rhythm::cuda head_signals_from_qk pass1_kernel");
    pass2_kernel<T><<<grid2, threads, smem, p.stream>>>(a, lp, ws);
    check_launch("rhythm::cuda head_signals_from_qk pass2_kernel");
  }
  commit_kernel<T><<<blocks_for(B * Hq, 1), commit_threads, 0, p.stream>>>(a, ws, p.status);
  check_launch("rhythm::cuda head_signals_from_qk commit_kernel");
}
#endif

}  // namespace detail::qk

/// Workspace bytes of head_signals_from_qk for q [B, Hq, N, d], k [B, Hkv, N, d]: the error slot
/// and four float arrays of B Hq N (staged lse, span terms, waad, fai), each 256-byte aligned:
/// at most 16 B Hq N + 1024 bytes. Independent of Hkv, d and params (kept for the signature's sake).
inline std::size_t head_signals_from_qk_workspace_size(std::int64_t B, std::int64_t Hq, std::int64_t Hkv,
                                                       std::int64_t N, std::int64_t d,
                                                       const signal_params& params = {}) {
  (void)Hkv, (void)d, (void)params;
  detail::workspace_carver w;
  detail::qk::plan(w, B, Hq, N);
  return w.used();
}

#if defined(__CUDACC__)
namespace detail {
/// head_signals_from_qk on policy.stream (see the file comment); T is float, bfloat16 or half.
template <class T>
void head_signals_from_qk(const exec::cuda& p, const qk_signal_args<T, device_space>& a) {
  qk::run(p, a);
}
}  // namespace detail
#endif

}  // namespace rhythm::cuda
