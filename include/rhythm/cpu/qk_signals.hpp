#pragma once
/// CPU backend of head_signals_from_qk: two streaming passes per (sequence, query head), compiled for
/// each vector width the CPU may have (qk_kernel.inc) and run on the widest it has.
///
/// Pass 1 walks key tiles left to right with an online softmax and keeps, per response row, the
/// base-2 log-sum-exp, the expected key position (the row's span) and the mass at distance >= W
/// (WAAD's clipped part). Pass 2 recomputes only the key tiles within max(W - 1, H_hi) of the
/// diagonal, turning logits into probabilities with the saved log-sum-exp, for WAAD's near part
/// (distances < W) and the FAI column sums (H_lo..H_hi). Segments of at most single_pass_keys keys
/// take a single pass instead: a query tile's logits against all its keys are kept, so that each is
/// computed and exponentiated once (the row's max first, then e = 2^(s - max) over the row, then the
/// band's probabilities e / sum e). Scratch per worker is O(N d + tile + query_tile single_pass_keys):
/// the keys of the head being processed, packed once; nothing of size N x N exists.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/dtypes.hpp"
#include "../core/segments.hpp"
#include "../core/signal_types.hpp"
#include "maps_signals.hpp"
#include "parallel.hpp"

/// Whether the Q/K kernel is also compiled for AVX2 and AVX-512: x86-64 with GCC, nvcc's host pass included
/// (host code goes to GCC there), so that every translation unit of a program sees the same definitions.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__CUDA_ARCH__)
#define RHYTHM_CPU_MULTI_ISA 1
#else
#define RHYTHM_CPU_MULTI_ISA 0
#endif

namespace rhythm::cpu {
namespace detail {

inline constexpr std::int64_t query_tile = 32;
inline constexpr std::int64_t key_tile = 64;
/// Longest segment that takes the single pass. At N = 4096 (rhythm_bench, [1, 8, N, 64]) the single
/// pass took 67 ms against the two passes' 71, at 2048 15.6 against 19.3. Tests lower it to reach the
/// two passes on small inputs; a call reads it once, when it sizes its scratch.
inline std::atomic<std::int64_t> single_pass_keys{4096};

/// The single pass runs with its vector lanes across query rows (one row per lane, logits against one key
/// per pack) when d <= row_lane_depth and the segment has at most row_lane_keys keys (and fits the single
/// pass): short rows and small heads, where lanes across keys would spend most of their time on partly
/// filled key tiles and per-row reductions (the reference trainer's shape: N ~ 110, d = 16).
inline constexpr std::int64_t row_lane_depth = 32;
inline constexpr std::int64_t row_lane_keys = 1024;
inline constexpr std::int64_t row_lane_block = 8;   ///< keys whose logits are computed together
inline constexpr std::int64_t widest_pack = 16;     ///< lanes of the widest instruction set (AVX-512)

/// Per-worker scratch of the Q/K path: a query tile; the keys of one kv head transposed ([d, N + key_tile],
/// packed once per sequence and kv head, read by every tile of both passes); one tile of scores;
/// per-row log-sum-exp; the FAI column sums (N + key_tile: a tile starting near N adds zeros past it);
/// for the single pass, a query tile's scores against up to single_pass_keys keys (rows of sld; a
/// segment takes the single pass when its keys fit), which the row-lane pass uses as [key][lane], and
/// its FAI sums per key and lane (lane_colsum).
struct qk_scratch {
  std::vector<float> q, kt, scores, lse2, row_scores, lane_colsum;
  std::vector<double> colsum;
  std::int64_t ld;   ///< row length of kt
  std::int64_t sld;  ///< row length of row_scores
  std::int64_t packed_b = -1, packed_kvh = -1;  ///< whose keys kt holds (the query heads of a kv head share them)
  qk_scratch(std::int64_t n, std::int64_t d)
      : q(query_tile * d), kt(d * (n + key_tile)), scores(query_tile * key_tile), lse2(n),
        row_scores(query_tile * (std::min(n, single_pass_keys.load()) + key_tile)),
        lane_colsum(d <= row_lane_depth ? (std::min(n, row_lane_keys) + row_lane_block) * widest_pack : 0),
        colsum(n + key_tile), ld(n + key_tile), sld(std::min(n, single_pass_keys.load()) + key_tile) {}
};

/// Loads `rows` rows of x[b, head, t0 + i, :] as float times `mul` into dst[i * d + c].
template <class X>
inline void load_rows(const X& x, std::int64_t b, std::int64_t head, std::int64_t t0, std::int64_t rows, float mul,
                      float* dst) {
  const std::int64_t d = x.extent(3);
  const auto* base = x.data_handle() + b * x.stride(0) + head * x.stride(1);
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t c = 0; c < d; ++c) dst[i * d + c] = to_float(base[(t0 + i) * x.stride(2) + c * x.stride(3)]) * mul;
}

/// Packs keys [k0, k1) as float, transposed: dst[c * ld + j] = k[b, head, j, c]; columns [k1, ld) are zero.
template <class X>
inline void pack_keys_transposed(const X& k, std::int64_t b, std::int64_t head, std::int64_t k0, std::int64_t k1,
                                 std::int64_t ld, float* dst) {
  const std::int64_t d = k.extent(3);
  const auto* base = k.data_handle() + b * k.stride(0) + head * k.stride(1);
  for (std::int64_t c = 0; c < d; ++c) {
    float* out = dst + c * ld;
    for (std::int64_t j = k0; j < k1; ++j) out[j] = to_float(base[j * k.stride(2) + c * k.stride(3)]);
    std::fill(out + k1, out + ld, 0.0f);
  }
}

/// First row t in [t0, t1) of x[b, head] holding NaN or Inf, or -1.
template <class X>
inline std::int64_t first_non_finite_row(const X& x, std::int64_t b, std::int64_t head, std::int64_t t0, std::int64_t t1) {
  const auto* base = x.data_handle() + b * x.stride(0) + head * x.stride(1);
  for (std::int64_t t = t0; t < t1; ++t) {
    bool ok = true;
    for (std::int64_t c = 0; c < x.extent(3); ++c) ok &= std::isfinite(to_float(base[t * x.stride(2) + c * x.stride(3)]));
    if (!ok) return t;
  }
  return -1;
}

}  // namespace detail

/// The instruction sets the Q/K kernel is compiled for: the 4-lane baseline everywhere; 8-lane AVX2 + FMA
/// and 16-lane AVX-512 on x86-64 with GCC (the kernel is compiled once per set and picked at run time).
enum class kernel_isa { baseline, avx2, avx512 };

/// Whether this build has `isa` and this CPU runs it.
inline bool supported(kernel_isa isa) {
  switch (isa) {
    case kernel_isa::baseline: return true;
#if RHYTHM_CPU_MULTI_ISA
    case kernel_isa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case kernel_isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && supported(kernel_isa::avx2);
#endif
    default: return false;
  }
}

namespace detail {
/// The set the next calls use; -1: the widest supported.
inline std::atomic<int>& forced_kernel_isa() {
  static std::atomic<int> isa{-1};
  return isa;
}
}  // namespace detail

/// The set the Q/K kernel runs on: the widest one supported, unless force_kernel_isa chose another.
inline kernel_isa active_kernel_isa() {
  const int forced = detail::forced_kernel_isa().load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<kernel_isa>(forced);
  static const kernel_isa widest = supported(kernel_isa::avx512) ? kernel_isa::avx512
                                   : supported(kernel_isa::avx2) ? kernel_isa::avx2
                                                                 : kernel_isa::baseline;
  return widest;
}

/// Runs the Q/K kernel on `isa` from now on (tests and benchmarks compare the sets); std::nullopt
/// returns to the widest. Returns false, changing nothing, when `isa` is not supported.
inline bool force_kernel_isa(std::optional<kernel_isa> isa) {
  if (isa && !supported(*isa)) return false;
  detail::forced_kernel_isa().store(isa ? static_cast<int>(*isa) : -1, std::memory_order_relaxed);
  return true;
}

namespace detail {

namespace isa_baseline {
#define RHYTHM_SIMD_WIDTH 4
#include "simd_ops.inc"
#include "qk_kernel.inc"
#undef RHYTHM_SIMD_WIDTH
}  // namespace isa_baseline

#if RHYTHM_CPU_MULTI_ISA
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace isa_avx2 {
#define RHYTHM_SIMD_WIDTH 8
#include "simd_ops.inc"
#include "qk_kernel.inc"
#undef RHYTHM_SIMD_WIDTH
}  // namespace isa_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
namespace isa_avx512 {
#define RHYTHM_SIMD_WIDTH 16
#include "simd_ops.inc"
#include "qk_kernel.inc"
#undef RHYTHM_SIMD_WIDTH
}  // namespace isa_avx512
#pragma GCC pop_options
#endif

}  // namespace detail

/// Span, WAAD and FAI of every (sequence, query head) from Q [B,Hq,N,d] and K [B,Hkv,N,d].
/// Work per head: N^2/2 d multiply-adds and N^2/2 exponentials in the single pass (segments of up to
/// single_pass_keys keys); beyond, N^2/2 d for pass 1 plus N max(W, H_hi) d for pass 2, exponentials
/// alike. On the widest vector unit the CPU has (active_kernel_isa).
template <class T>
void qk_head_signals(int threads, const qk_signal_args<T, host_space>& a) {
  using namespace detail;
  raise(check_segments(a.segments, a.q.extent(2)));
  const std::int64_t B = a.q.extent(0), H = a.q.extent(1), N = a.q.extent(2), d = a.q.extent(3);
  head_signal_rows out(B * H, N);
  const int workers = worker_count(threads, B * H);
  std::vector<qk_scratch> scratch(workers, qk_scratch(N, d));
  const kernel_isa isa = active_kernel_isa();
  parallel_for(threads, B * H, [&](std::int64_t item, int worker) {
    switch (isa) {
#if RHYTHM_CPU_MULTI_ISA
      case kernel_isa::avx512: return isa_avx512::qk_one_head(a, item, scratch[worker], out);
      case kernel_isa::avx2: return isa_avx2::qk_one_head(a, item, scratch[worker], out);
#endif
      default: return isa_baseline::qk_one_head(a, item, scratch[worker], out);
    }
  });
  out.finish(a);
}

}  // namespace rhythm::cpu

#undef RHYTHM_CPU_MULTI_ISA
