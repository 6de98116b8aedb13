#pragma once
/// CPU backend of head_signals_from_qk: two streaming passes per (sequence, query head).
///
/// Pass 1 walks key tiles left to right with an online softmax and keeps, per response row, the
/// base-2 log-sum-exp, the expected key position (the row's span) and the mass at distance >= W
/// (WAAD's clipped part). Pass 2 recomputes only the key tiles within max(W - 1, H_hi) of the
/// diagonal, turning logits into probabilities with the saved log-sum-exp, for WAAD's near part
/// (distances < W) and the FAI column sums (H_lo..H_hi). Scratch per
/// worker is O(N + tile); nothing of size N x N exists.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "../core/dtypes.hpp"
#include "../core/segments.hpp"
#include "../core/signal_types.hpp"
#include "maps_signals.hpp"
#include "parallel.hpp"
#include "simd.hpp"

namespace rhythm::cpu {
namespace detail {

inline constexpr std::int64_t query_tile = 32;
inline constexpr std::int64_t key_tile = 64;

/// Per-worker scratch of the Q/K path.
struct qk_scratch {
  std::vector<float> q, kt, scores, lse2;
  std::vector<double> colsum;
  qk_scratch(std::int64_t n, std::int64_t d)
      : q(query_tile * d), kt(d * key_tile), scores(query_tile * key_tile), lse2(n), colsum(n) {}
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

/// Loads keys [k0, k0 + cols) transposed: dst[c * key_tile + j] = k[b, head, k0 + j, c]; columns
/// j >= cols are zero.
template <class X>
inline void load_keys_transposed(const X& k, std::int64_t b, std::int64_t head, std::int64_t k0, std::int64_t cols,
                                 float* dst) {
  const std::int64_t d = k.extent(3);
  const auto* base = k.data_handle() + b * k.stride(0) + head * k.stride(1);
  for (std::int64_t j = 0; j < key_tile; ++j) {
    if (j < cols) {
      const auto* row = base + (k0 + j) * k.stride(2);
      for (std::int64_t c = 0; c < d; ++c) dst[c * key_tile + j] = to_float(row[c * k.stride(3)]);
    } else {
      for (std::int64_t c = 0; c < d; ++c) dst[c * key_tile + j] = 0.0f;
    }
  }
}

/// scores[i][j] = sum_c q[i][c] * kt[c][j] for i < rows, j < key_tile.
inline void tile_scores(const float* q, const float* kt, std::int64_t rows, std::int64_t d, float* scores) {
  for (std::int64_t i = 0; i < rows; ++i) {
    float acc[key_tile] = {};
    const float* qi = q + i * d;
    for (std::int64_t c = 0; c < d; ++c) {
      const float qv = qi[c];
      const float* kr = kt + c * key_tile;
      for (std::int64_t j = 0; j < key_tile; ++j) acc[j] += qv * kr[j];
    }
    std::copy(acc, acc + key_tile, scores + i * key_tile);
  }
}

/// Pass 1: max of s[j] over j < valid (-inf if none).
inline float tile_row_max(const float* s, std::int64_t valid) {
  using namespace simd;
  const f4 ninf = splat(-std::numeric_limits<float>::infinity()), fvalid = splat(static_cast<float>(valid));
  f4 mx = ninf;
  for (std::int64_t j = 0; j < key_tile; j += width) {
    const f4 v = iota(static_cast<float>(j)) < fvalid ? load(s + j) : ninf;
    mx = mx > v ? mx : v;
  }
  return max(mx);
}

/// Pass 1: with e_j = 2^(s_j - m) over j < valid, the sums of e_j, of j e_j and of e_j over j < far_keys.
inline void tile_row_sums(const float* s, std::int64_t valid, std::int64_t far_keys, float m, float& mass,
                          float& position, float& far) {
  using namespace simd;
  const f4 fvalid = splat(static_cast<float>(valid)), ffar = splat(static_cast<float>(far_keys)), zero = splat(0.0f);
  f4 vm = zero, vp = zero, vf = zero;
  for (std::int64_t j = 0; j < key_tile; j += width) {
    const f4 fj = iota(static_cast<float>(j));
    const f4 e = fj < fvalid ? exp2(load(s + j) - m) : zero;
    vm += e;
    vp += e * fj;
    vf += fj < ffar ? e : zero;
  }
  mass = sum(vm), position = sum(vp), far = sum(vf);
}

/// Pass 2: with p_j = 2^(s_j - lse) at distance dist0 - j >= 0 (j < cols), adds p_j to colsum[j]
/// where lo <= distance <= hi and returns the sum of p_j * distance over distances < W.
inline float tile_row_bands(const float* s, std::int64_t cols, float dist0, float lse, float W, float lo, float hi,
                            double* colsum) {
  using namespace simd;
  const f4 zero = splat(0.0f);
  f4 vn = zero;
  float p[key_tile];
  for (std::int64_t j = 0; j < key_tile; j += width) {
    const f4 dist = dist0 - iota(static_cast<float>(j));
    const f4 pr = dist >= 0.0f ? exp2(load(s + j) - lse) : zero;
    vn += dist < W ? pr * dist : zero;
    store(p + j, dist >= lo && dist <= hi ? pr : zero);
  }
  for (std::int64_t j = 0; j < cols; ++j) colsum[j] += p[j];
  return sum(vn);
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

/// Span, WAAD and FAI of every (sequence, query head) from Q [B,Hq,N,d] and K [B,Hkv,N,d].
/// Work: N^2/2 d multiply-adds per head for pass 1 plus N max(W, H_hi) d for pass 2.
template <class T>
void qk_head_signals(int threads, const qk_signal_args<T, host_space>& a) {
  using namespace detail;
  const auto &q = a.q, &k = a.k;
  const signal_params& p = a.params;
  raise(check_segments(a.segments, q.extent(2)));
  const std::int64_t B = q.extent(0), H = q.extent(1), N = q.extent(2), d = q.extent(3);
  const std::int64_t group = H / k.extent(1);
  const float scale = (p.scale > 0.0f ? p.scale : 1.0f / std::sqrt(static_cast<float>(d))) * 1.4426950408889634f;
  const std::int64_t band = std::max(p.window - 1, p.horizon.hi);  // farthest distance pass 2 needs
  head_signal_rows out(B * H, N);
  const int workers = worker_count(threads, B * H);
  std::vector<qk_scratch> scratch(workers, qk_scratch(N, d));

  parallel_for(threads, B * H, [&](std::int64_t item, int worker) {
    const std::int64_t b = item / H, h = item % H, kvh = h / group;
    const segment seg = a.segments(b);
    if (seg.end == seg.response_begin) return;
    const auto row_error = [&](value_argument arg, std::int64_t t) {
      out.errors[item] = non_finite_error(arg, value_location::sequence_head_row, value_scope::all, b, h, t);
    };
    if (p.check_finite) {
      const std::int64_t bad_q = first_non_finite_row(q, b, h, seg.response_begin, seg.end);
      const std::int64_t bad_k = bad_q >= 0 ? -1 : first_non_finite_row(k, b, kvh, seg.begin, seg.end);
      if (bad_q >= 0) return row_error(value_argument::q, bad_q);
      if (bad_k >= 0) return row_error(value_argument::k, bad_k);
    }
    qk_scratch& w = scratch[worker];
    float* waad = out.waad.data() + item * N;
    double span_sum = 0;

    // Pass 1: online softmax over all keys [begin, t] of each response row.
    for (std::int64_t t0 = seg.response_begin; t0 < seg.end; t0 += query_tile) {
      const std::int64_t rows = std::min(query_tile, seg.end - t0);
      load_rows(q, b, h, t0, rows, scale, w.q.data());
      float m[query_tile];
      // sums of p, p * (s - begin) and of p over keys at distance >= W, all relative to m
      double l[query_tile], pos[query_tile], far[query_tile];
      std::fill(m, m + rows, -std::numeric_limits<float>::infinity());
      std::fill(l, l + rows, 0.0), std::fill(pos, pos + rows, 0.0), std::fill(far, far + rows, 0.0);
      for (std::int64_t k0 = seg.begin; k0 < t0 + rows; k0 += key_tile) {
        const std::int64_t cols = std::min(key_tile, t0 + rows - k0);
        load_keys_transposed(k, b, kvh, k0, cols, w.kt.data());
        tile_scores(w.q.data(), w.kt.data(), rows, d, w.scores.data());
        for (std::int64_t i = 0; i < rows; ++i) {
          const std::int64_t valid = std::min(cols, t0 + i - k0 + 1);  // keys k0 + j <= t
          if (valid <= 0) continue;
          const float* s = w.scores.data() + i * key_tile;
          const float m_new = std::max(m[i], tile_row_max(s, valid));
          float tl, tp, tf;  // keys j < far_keys have t - s >= W
          tile_row_sums(s, valid, t0 + i - k0 - p.window + 1, m_new, tl, tp, tf);
          const double alpha = simd::exp2(m[i] - m_new);
          l[i] = l[i] * alpha + tl;
          pos[i] = pos[i] * alpha + tp + double(k0 - seg.begin) * tl;
          far[i] = far[i] * alpha + tf;
          m[i] = m_new;
        }
      }
      for (std::int64_t i = 0; i < rows; ++i) {
        w.lse2[t0 + i] = m[i] + static_cast<float>(std::log2(l[i]));
        if (!std::isfinite(w.lse2[t0 + i]) && !out.errors[item])
          row_error(value_argument::qk_logits, t0 + i);  // logits overflowed
        span_sum += double(t0 + i - seg.begin) - pos[i] / l[i];
        waad[t0 + i] = static_cast<float>(double(p.window) * far[i] / l[i]);  // pass 2 adds the near part
      }
    }
    if (out.errors[item]) return;
    out.span[item] = static_cast<float>(span_sum / double(seg.response_length()));

    // Pass 2: probabilities within `band` of the diagonal, for WAAD and the FAI column sums.
    double* colsum = w.colsum.data();
    std::fill(colsum, colsum + N, 0.0);
    const float W = static_cast<float>(p.window);
    const float lo = static_cast<float>(p.horizon.lo);
    const float hi = p.horizon.hi >= N ? static_cast<float>(N) : static_cast<float>(p.horizon.hi);
    for (std::int64_t t0 = seg.response_begin; t0 < seg.end; t0 += query_tile) {
      const std::int64_t rows = std::min(query_tile, seg.end - t0);
      load_rows(q, b, h, t0, rows, scale, w.q.data());
      double near_dist[query_tile] = {};
      const std::int64_t first = band >= t0 - seg.begin ? seg.begin : t0 - band;
      for (std::int64_t k0 = first; k0 < t0 + rows; k0 += key_tile) {
        const std::int64_t cols = std::min(key_tile, t0 + rows - k0);
        load_keys_transposed(k, b, kvh, k0, cols, w.kt.data());
        tile_scores(w.q.data(), w.kt.data(), rows, d, w.scores.data());
        for (std::int64_t i = 0; i < rows; ++i) {
          const std::int64_t t = t0 + i;
          const float* s = w.scores.data() + i * key_tile;
          const float lse = w.lse2[t];
          const float dist0 = static_cast<float>(t - k0);  // distance of key j is dist0 - j
          const float nd = tile_row_bands(s, cols, dist0, lse, W, lo, hi, colsum + k0);
          near_dist[i] += nd;
        }
      }
      for (std::int64_t i = 0; i < rows; ++i)
        waad[t0 + i] = static_cast<float>(double(waad[t0 + i]) + near_dist[i]);
    }
    float* fai = out.fai.data() + item * N;
    for (std::int64_t s = seg.begin; s < seg.end; ++s) {
      const std::int64_t receivers = rhythm::detail::fai_receiver_count(s, seg.response_begin, seg.end, p.horizon);
      if (receivers > 0) fai[s] = static_cast<float>(colsum[s] / double(receivers));
    }
  });
  out.finish(a);
}

}  // namespace rhythm::cpu
