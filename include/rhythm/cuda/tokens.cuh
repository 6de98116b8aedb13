#pragma once
/// CUDA backend of the tokens stage: WAAD jumps, top-q, the token sets (T_loc, T_glob, D, intro)
/// and local peaks, bit-identical to the CPU backend (cpu/tokens.hpp, cpu/selection.hpp).
///
/// Per-response work (top_q, token_sets) runs one thread per sequence over that sequence's
/// scratch in the workspace, mirroring the CPU's row functions. The k-th value of a top-q
/// selection and the medians are exact order statistics found by radix select: floats map to
/// order-preserving unsigned keys (NaN never reaches them: the value checks reject it), four
/// passes of 8-bit digits narrow the key down, O(4 n) per statistic, no sort buffer. Elementwise
/// operations (waad_jumps, local_peaks) check in one kernel and compute in their commit kernel.
///
/// Value errors (core/status.hpp) are ordered by key = phase·2^60 + index: phase 0 is the
/// segment check (index b), phases 1 and 2 the inputs in argument order (index b·N + t).
#include <cstdint>

#include "../core/dtypes.hpp"
#include "../core/segments.hpp"
#include "../core/status.hpp"
#include "../core/token_types.hpp"
#include "../cpu/selection.hpp"
#include "runtime.cuh"

namespace rhythm::cuda::detail::token_rows {

// ---- order statistics on plain buffers ---------------------------------------------------------

/// Order-preserving key of a non-NaN float: a < b (with -0 < +0) iff key(a) < key(b).
RHYTHM_HOST_DEVICE inline std::uint32_t order_key(float x) {
  const auto u = rhythm::detail::bits_as<std::uint32_t>(x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/// The float of an order key (inverse of order_key).
RHYTHM_HOST_DEVICE inline float float_of_key(std::uint32_t k) {
  return rhythm::detail::bits_as<float>((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

/// std::numeric_limits<float>::quiet_NaN(), written as bits (device NaN arithmetic may differ).
RHYTHM_HOST_DEVICE inline float quiet_nan() { return rhythm::detail::bits_as<float>(0x7fc00000u); }

/// A double rounded to float, NaN as quiet_nan() (the bits the CPU's conversion gives).
RHYTHM_HOST_DEVICE inline float float_of(double x) { return x == x ? static_cast<float>(x) : quiet_nan(); }

/// The value of ascending rank `rank` (0-based) among the eligible entries of v[0..n) (eligible ==
/// nullptr: all). Needs 0 <= rank < the number of eligible entries. Radix select over order_key in
/// 4-bit digits: 8 passes, O(n) each, 128 bytes of counters (small, so that a kernel's local memory,
/// which the driver reserves for every resident thread, stays small).
RHYTHM_HOST_DEVICE inline float select_rank(const float* v, const std::uint8_t* eligible, std::int64_t n,
                                            std::int64_t rank) {
  std::uint32_t prefix = 0, mask = 0;
  for (int shift = 28; shift >= 0; shift -= 4) {
    std::int64_t count[16] = {};
    for (std::int64_t i = 0; i < n; ++i) {
      if (eligible && !eligible[i]) continue;
      const std::uint32_t k = order_key(v[i]);
      if ((k & mask) == prefix) ++count[(k >> shift) & 0xfu];
    }
    std::uint32_t d = 0;
    while (rank >= count[d]) rank -= count[d++];
    prefix |= d << shift;
    mask |= 0xfu << shift;
  }
  return float_of_key(prefix);
}

/// Threshold of the top-q (bottom-q) selection of v over its eligible entries: the k-th largest
/// (smallest) eligible value, k = top_q_count(q, m) for m eligible; NaN when m == 0. O(n).
RHYTHM_HOST_DEVICE inline float top_q_threshold(const float* v, const std::uint8_t* eligible, std::int64_t n,
                                                const top_q_params& p) {
  std::int64_t m = 0;
  for (std::int64_t i = 0; i < n; ++i) m += !eligible || eligible[i];
  const std::int64_t k = top_q_count(p.q, m);
  if (k == 0) return quiet_nan();
  return select_rank(v, eligible, n, p.bottom ? k - 1 : m - k);
}

/// Whether an eligible value is in the selection of `threshold` (never for a NaN threshold).
RHYTHM_HOST_DEVICE inline bool selected_by(float v, float threshold, bool bottom) {
  return bottom ? v <= threshold : v >= threshold;
}

/// Median of v[0..n): the middle value, or the mean (in double) of the two middle values when n
/// is even; NaN when n == 0. O(n): one radix select for the upper middle value u = rank n/2; the
/// lower one is the largest value below u if exactly n/2 values lie below u, else u itself.
RHYTHM_HOST_DEVICE inline double median_of(const float* v, std::int64_t n) {
  if (n == 0) return double(quiet_nan());
  const std::int64_t mid = n / 2;
  const float upper = select_rank(v, nullptr, n, mid);
  if (n % 2) return upper;
  const std::uint32_t ku = order_key(upper);
  std::int64_t below = 0;
  std::uint32_t kl = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint32_t k = order_key(v[i]);
    if (k < ku) ++below, kl = k > kl ? k : kl;
  }
  const float lower = below == mid ? float_of_key(kl) : upper;
  return 0.5 * (double(lower) + double(upper));
}

/// The jumps and the dominance scan (D and intro bits) are the CPU backend's own host/device functions.
using rhythm::cpu::jumps_of;
using rhythm::cpu::mark_dominated;

// ---- value checks and their keys ----------------------------------------------------------------

RHYTHM_HOST_DEVICE inline error_key key_of(unsigned phase, std::int64_t index) {
  return (static_cast<error_key>(phase) << 60) | static_cast<error_key>(index);
}

/// Rebuilds the CPU's value error from a key: phase 0 the segment error, phase p >= 1 NaN or Inf
/// in argument[p - 1] (scope[p - 1]) at (b, t).
template <class S>
struct token_decoder {
  view<const segment, 1, S> segments;
  std::int64_t N;
  value_argument argument[2];
  value_scope scope[2];
  RHYTHM_HOST_DEVICE value_error operator()(error_key key) const {
    const auto phase = static_cast<unsigned>(key >> 60);
    const auto i = static_cast<std::int64_t>(key & ((error_key(1) << 60) - 1));
    if (phase == 0) {
      const segment s = segments(i);
      return segment_error(i, s.begin, s.response_begin, s.end, N);
    }
    return non_finite_error(argument[phase - 1], value_location::sequence_position, scope[phase - 1], i / N, i % N);
  }
};

/// Elementwise check, item i of B·max(N, 1) (b = i / max(N, 1), t = the rest): the segment of b
/// (at t = 0), then a finite v(b, t) at response positions. Returns the failed check's key.
template <class T, class S>
RHYTHM_HOST_DEVICE error_key check_response_item(const view<const T, 2, S>& v, const view<const segment, 1, S>& segments,
                                                 std::int64_t i) {
  const std::int64_t N = v.extent(1), row = N > 0 ? N : 1, b = i / row, t = i % row;
  const segment s = segments(b);
  if (!s.fits(N)) return t == 0 ? key_of(0, b) : no_error;
  return s.in_response(t) && !is_finite_bits(to_float(v(b, t))) ? key_of(1, b * N + t) : no_error;
}

// ---- per-operation staging ----------------------------------------------------------------------

/// Scratch of one response of length <= N at offset b·N of each [B·N] buffer.
struct row_scratch {
  float* a;             ///< values (WAAD in token_sets)
  float* f;             ///< FAI (0 where not eligible)
  float* delta;         ///< jumps
  std::uint8_t* m;      ///< eligibility
  std::uint8_t* flags;  ///< the staged output bits of the response, position response_begin + i at i
  std::int64_t* dq;     ///< the dominance deque
};

/// top_q: error slot; values, eligibility and selection [B·N]; thresholds [B].
struct top_q_layout {
  error_key* slot;
  float* values;
  std::uint8_t* eligible;
  std::uint8_t* selected;
  float* threshold;
};
inline top_q_layout plan_top_q(workspace_carver& c, std::int64_t B, std::int64_t N) {
  return {c.take<error_key>(1), c.take<float>(B * N), c.take<std::uint8_t>(B * N), c.take<std::uint8_t>(B * N),
          c.take<float>(B)};
}

/// token_sets: error slot; WAAD, FAI, Delta [B·N] floats; eligibility and flags [B·N] bytes; the
/// dominance deque [B·N] int64; thresholds [B·4].
struct token_sets_layout {
  error_key* slot;
  float *waad, *fai, *delta;
  std::uint8_t *eligible, *flags;
  std::int64_t* dq;
  float* thresholds;
  RHYTHM_HOST_DEVICE row_scratch row(std::int64_t b, std::int64_t N) const {
    return {waad + b * N, fai + b * N, delta + b * N, eligible + b * N, flags + b * N, dq + b * N};
  }
};
inline token_sets_layout plan_token_sets(workspace_carver& c, std::int64_t B, std::int64_t N) {
  token_sets_layout w{};
  w.slot = c.take<error_key>(1);
  w.waad = c.take<float>(B * N), w.fai = c.take<float>(B * N), w.delta = c.take<float>(B * N);
  w.eligible = c.take<std::uint8_t>(B * N), w.flags = c.take<std::uint8_t>(B * N);
  w.dq = c.take<std::int64_t>(B * N);
  w.thresholds = c.take<float>(B * token_threshold::count);
  return w;
}

/// waad_jumps and local_peaks compute in their commit kernel: only the error slot.
struct slot_layout {
  error_key* slot;
};
inline slot_layout plan_slot(workspace_carver& c) { return {c.take<error_key>(1)}; }

// ---- per-item work --------------------------------------------------------------------------------

/// waad_jumps output at item i = b·N + t: |WAAD_t - WAAD_{t+1}| for t, t + 1 in the response, else 0.
template <class T, class S>
RHYTHM_HOST_DEVICE void waad_jumps_item(const waad_jumps_args<T, S>& a, std::int64_t i) {
  const std::int64_t N = a.waad.extent(1), b = i / N, t = i % N;
  const segment s = a.segments(b);
  float d = 0.0f;
  if (t >= s.response_begin && t + 1 < s.end) d = rhythm::detail::abs_bits(to_float(a.waad(b, t)) - to_float(a.waad(b, t + 1)));
  a.delta(b, t) = d;
}

/// local_peaks output at item i = b·N + t (cpu local_peaks_of on the response).
template <class T, class S>
RHYTHM_HOST_DEVICE void local_peaks_item(const local_peaks_args<T, S>& a, std::int64_t i) {
  const std::int64_t N = a.values.extent(1), b = i / N, t = i % N;
  const segment s = a.segments(b);
  bool peak = false;
  if (s.in_response(t) && (a.selected(b, t) & a.select_bits)) {
    const float v = to_float(a.values(b, t));
    peak = (t == s.response_begin || v > to_float(a.values(b, t - 1))) &&
           (t + 1 == s.end || v >= to_float(a.values(b, t + 1)));
  }
  a.peaks(b, t) = peak;
}

/// top_q, sequence b: its checks (segment, then finite values at eligible response positions,
/// made while the response is copied to the scratch), and if they pass its selection and
/// threshold, staged. Returns the failed check's key.
template <class T, class S>
RHYTHM_HOST_DEVICE error_key top_q_sequence(const top_q_args<T, S>& a, const top_q_layout& w, std::int64_t b) {
  const std::int64_t N = a.values.extent(1);
  const bool masked = a.eligible.data_handle() != nullptr;
  const segment s = a.segments(b);
  if (!s.fits(N)) return key_of(0, b);
  const std::int64_t n = s.response_length();
  float* v = w.values + b * N;
  std::uint8_t *m = w.eligible + b * N, *sel = w.selected + b * N;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t t = s.response_begin + i;
    m[i] = !masked || a.eligible(b, t) != 0;
    v[i] = m[i] ? to_float(a.values(b, t)) : 0.0f;
    if (!is_finite_bits(v[i])) return key_of(1, b * N + t);
  }
  const float threshold = top_q_threshold(v, m, n, a.params);
  for (std::int64_t i = 0; i < n; ++i) sel[i] = m[i] && selected_by(v[i], threshold, a.params.bottom);
  w.threshold[b] = threshold;
  return no_error;
}

/// The thresholds of one response (token_threshold columns, before rounding).
struct row_thresholds {
  float preplan, anchor;
  double waad_median, jump;
};

/// The token sets of one response of n tokens whose WAAD, FAI (0 where not eligible) and
/// eligibility are in w.a, w.f, w.m (cpu detail::token_sets_row after its copy): fills w.delta and
/// w.flags[0..n) (token_flag bits) and returns the thresholds.
RHYTHM_HOST_DEVICE inline row_thresholds token_sets_row(std::int64_t n, const token_params& p, const row_scratch& w) {
  jumps_of(w.a, n, w.delta);
  row_thresholds r{};
  r.preplan = top_q_threshold(w.delta, nullptr, n, p.selection);
  r.anchor = top_q_threshold(w.f, w.m, n, p.selection);
  const bool bottom = p.selection.bottom;
  for (std::int64_t i = 0; i < n; ++i)
    w.flags[i] = static_cast<std::uint8_t>((selected_by(w.delta[i], r.preplan, bottom) ? bits(token_flag::preplan) : 0) |
                                           (w.m[i] && selected_by(w.f[i], r.anchor, bottom) ? bits(token_flag::anchor) : 0));
  r.waad_median = median_of(w.a, n);
  r.jump = p.dominance.threshold == dominance_threshold_mode::loc_threshold ? double(r.preplan) : median_of(w.delta, n);
  mark_dominated(w.a, w.delta, n, p.dominance.window, r.waad_median, r.jump, w.dq, w.flags);
  return r;
}

/// token_sets, sequence b: its checks (segment, finite WAAD on the response, finite FAI at the
/// FAI-eligible response positions, made while the response is copied to the scratch), and if
/// they pass its flags and thresholds, staged. Returns the failed check's key.
template <class W, class F, class S>
RHYTHM_HOST_DEVICE error_key token_sets_sequence(const token_sets_args<W, F, S>& a, const token_sets_layout& w,
                                                 std::int64_t b) {
  const std::int64_t N = a.waad.extent(1);
  const segment s = a.segments(b);
  if (!s.fits(N)) return key_of(0, b);
  const std::int64_t n = s.response_length(), rb = s.response_begin;
  const row_scratch r = w.row(b, N);
  for (std::int64_t i = 0; i < n; ++i) {
    r.a[i] = to_float(a.waad(b, rb + i));
    if (!is_finite_bits(r.a[i])) return key_of(1, b * N + rb + i);
  }
  for (std::int64_t i = 0; i < n; ++i) {
    r.m[i] = fai_eligible(rb + i, rb, s.end, a.params.horizon);
    r.f[i] = r.m[i] ? to_float(a.fai(b, rb + i)) : 0.0f;
    if (!is_finite_bits(r.f[i])) return key_of(2, b * N + rb + i);
  }
  const row_thresholds th = token_sets_row(n, a.params, r);
  float* out = w.thresholds + b * token_threshold::count;
  out[token_threshold::preplan] = th.preplan;
  out[token_threshold::anchor] = th.anchor;
  out[token_threshold::waad_median] = float_of(th.waad_median);
  out[token_threshold::jump] = float_of(th.jump);
  return no_error;
}

/// Commit of a row of bits at item i = b·N + t: the staged byte at response positions, else 0.
template <class S>
RHYTHM_HOST_DEVICE void commit_bits_item(const view<std::uint8_t, 2, S>& out, const view<const segment, 1, S>& segments,
                                         const std::uint8_t* staged, std::int64_t i) {
  const std::int64_t N = out.extent(1), b = i / N, t = i % N;
  const segment s = segments(b);
  out(b, t) = s.in_response(t) ? staged[b * N + (t - s.response_begin)] : std::uint8_t{0};
}

/// top_q commit, item i of B·N + B: the selection, then the thresholds.
template <class T, class S>
RHYTHM_HOST_DEVICE void top_q_commit_item(const top_q_args<T, S>& a, const top_q_layout& w, std::int64_t i) {
  const std::int64_t BN = a.values.extent(0) * a.values.extent(1);
  if (i < BN) commit_bits_item(a.selected, a.segments, w.selected, i);
  else a.threshold(i - BN) = w.threshold[i - BN];
}

/// token_sets commit, item i of B·N (+ B·4 with thresholds wanted): the flags, then the thresholds.
template <class W, class F, class S>
RHYTHM_HOST_DEVICE void token_sets_commit_item(const token_sets_args<W, F, S>& a, const token_sets_layout& w,
                                               std::int64_t i) {
  const std::int64_t BN = a.waad.extent(0) * a.waad.extent(1);
  if (i < BN) return commit_bits_item(a.flags, a.segments, w.flags, i);
  const std::int64_t j = i - BN;
  a.thresholds(j / token_threshold::count, j % token_threshold::count) = w.thresholds[j];
}

/// Items of each commit.
template <class T, class S>
RHYTHM_HOST_DEVICE std::int64_t commit_items(const top_q_args<T, S>& a) {
  return a.values.extent(0) * (a.values.extent(1) + 1);
}
template <class W, class F, class S>
RHYTHM_HOST_DEVICE std::int64_t commit_items(const token_sets_args<W, F, S>& a) {
  return a.waad.extent(0) * (a.waad.extent(1) + (a.thresholds.data_handle() ? token_threshold::count : 0));
}

/// The decoders of each operation.
template <class S>
RHYTHM_HOST_DEVICE token_decoder<S> values_decoder(const view<const segment, 1, S>& segments, std::int64_t N,
                                                   value_argument argument, value_scope scope) {
  return {segments, N, {argument, argument}, {scope, scope}};
}
template <class W, class F, class S>
RHYTHM_HOST_DEVICE token_decoder<S> token_sets_decoder(const token_sets_args<W, F, S>& a) {
  return {a.segments,
          a.waad.extent(1),
          {value_argument::waad, value_argument::fai},
          {value_scope::response, value_scope::fai_eligible_response}};
}

// ---- kernels ------------------------------------------------------------------------------------

#if defined(__CUDACC__)
/// One thread per sequence: blocks of a warp spread few sequences over many SMs.
inline constexpr int sequence_threads = 32;

template <class T, class S>
__global__ void check_response_kernel(view<const T, 2, S> v, view<const segment, 1, S> segments, error_key* slot) {
  const std::int64_t n = v.extent(0) * (v.extent(1) > 0 ? v.extent(1) : 1);
  for (std::int64_t i = thread_index(); i < n; i += thread_count())
    if (const error_key key = check_response_item(v, segments, i); key != no_error) report(slot, key);
}

template <class T, class S>
__global__ void waad_jumps_commit(waad_jumps_args<T, S> a, slot_layout w, value_error* status) {
  if (call_failed(w.slot, status,
                  values_decoder(a.segments, a.waad.extent(1), value_argument::waad, value_scope::response)))
    return;
  const std::int64_t n = a.waad.extent(0) * a.waad.extent(1);
  for (std::int64_t i = thread_index(); i < n; i += thread_count()) waad_jumps_item(a, i);
}

template <class T, class S>
__global__ void local_peaks_commit(local_peaks_args<T, S> a, slot_layout w, value_error* status) {
  if (call_failed(w.slot, status,
                  values_decoder(a.segments, a.values.extent(1), value_argument::values, value_scope::response)))
    return;
  const std::int64_t n = a.values.extent(0) * a.values.extent(1);
  for (std::int64_t i = thread_index(); i < n; i += thread_count()) local_peaks_item(a, i);
}

template <class T, class S>
__global__ void top_q_kernel(top_q_args<T, S> a, top_q_layout w) {
  for (std::int64_t b = thread_index(); b < a.values.extent(0); b += thread_count())
    if (const error_key key = top_q_sequence(a, w, b); key != no_error) report(w.slot, key);
}

template <class T, class S>
__global__ void top_q_commit(top_q_args<T, S> a, top_q_layout w, value_error* status) {
  if (call_failed(w.slot, status,
                  values_decoder(a.segments, a.values.extent(1), value_argument::values, value_scope::eligible_response)))
    return;
  for (std::int64_t i = thread_index(), n = commit_items(a); i < n; i += thread_count()) top_q_commit_item(a, w, i);
}

template <class W, class F, class S>
__global__ void token_sets_kernel(token_sets_args<W, F, S> a, token_sets_layout w) {
  for (std::int64_t b = thread_index(); b < a.waad.extent(0); b += thread_count())
    if (const error_key key = token_sets_sequence(a, w, b); key != no_error) report(w.slot, key);
}

template <class W, class F, class S>
__global__ void token_sets_commit(token_sets_args<W, F, S> a, token_sets_layout w, value_error* status) {
  if (call_failed(w.slot, status, token_sets_decoder(a))) return;
  for (std::int64_t i = thread_index(), n = commit_items(a); i < n; i += thread_count()) token_sets_commit_item(a, w, i);
}
#endif

}  // namespace rhythm::cuda::detail::token_rows

namespace rhythm::cuda {

/// Workspace bytes of waad_jumps for waad [B, N]: the error slot only (8 bytes).
inline std::size_t waad_jumps_workspace_size(std::int64_t /*B*/, std::int64_t /*N*/) {
  detail::workspace_carver c;
  detail::token_rows::plan_slot(c);
  return c.used();
}

/// Workspace bytes of local_peaks for values [B, N]: the error slot only (8 bytes).
inline std::size_t local_peaks_workspace_size(std::int64_t /*B*/, std::int64_t /*N*/) {
  detail::workspace_carver c;
  detail::token_rows::plan_slot(c);
  return c.used();
}

/// Workspace bytes of top_q for values [B, N]: the error slot, B·N floats (values), 2·B·N bytes
/// (eligibility, selection) and B floats (thresholds), each piece 256-byte aligned: about 6·B·N bytes.
/// The parameters do not change it.
inline std::size_t top_q_workspace_size(std::int64_t B, std::int64_t N, const top_q_params& = {}) {
  detail::workspace_carver c;
  detail::token_rows::plan_top_q(c, B, N);
  return c.used();
}

/// Workspace bytes of token_sets for waad, fai [B, N]: the error slot, 3·B·N floats (WAAD, FAI,
/// Delta), 2·B·N bytes (eligibility, flags), B·N int64 (the dominance deque) and 4·B floats
/// (thresholds), each piece 256-byte aligned: about 22·B·N bytes. The parameters do not change it.
inline std::size_t token_sets_workspace_size(std::int64_t B, std::int64_t N, const token_params& = {}) {
  detail::workspace_carver c;
  detail::token_rows::plan_token_sets(c, B, N);
  return c.used();
}

}  // namespace rhythm::cuda

#if defined(__CUDACC__)
namespace rhythm::cuda::detail {

/// WAAD jumps: waad [B, N] -> delta [B, N]. One thread per element for the checks and the jumps.
template <class T>
void waad_jumps(const exec::cuda& p, const waad_jumps_args<T, device_space>& a) {
  const std::int64_t B = a.waad.extent(0), N = a.waad.extent(1);
  check_cuda_policy(p, waad_jumps_workspace_size(B, N), "waad_jumps_workspace_size");
  if (B == 0) return;  // nothing to check or write (N == 0 still checks the segments)
  workspace_carver c = carver_of(p);
  const auto w = token_rows::plan_slot(c);
  reset_slot(w.slot, p.stream);
  token_rows::check_response_kernel<<<blocks_for(B * (N > 0 ? N : 1)), 256, 0, p.stream>>>(a.waad, a.segments, w.slot);
  check_launch("check_response_kernel (waad_jumps)");
  token_rows::waad_jumps_commit<<<blocks_for(B * N), 256, 0, p.stream>>>(a, w, p.status);
  check_launch("waad_jumps_commit");
}

/// Local peaks: values [B, N], selected [B, N] -> peaks [B, N]. One thread per element.
template <class T>
void local_peaks(const exec::cuda& p, const local_peaks_args<T, device_space>& a) {
  const std::int64_t B = a.values.extent(0), N = a.values.extent(1);
  check_cuda_policy(p, local_peaks_workspace_size(B, N), "local_peaks_workspace_size");
  if (B == 0) return;
  workspace_carver c = carver_of(p);
  const auto w = token_rows::plan_slot(c);
  reset_slot(w.slot, p.stream);
  token_rows::check_response_kernel<<<blocks_for(B * (N > 0 ? N : 1)), 256, 0, p.stream>>>(a.values, a.segments,
                                                                                           w.slot);
  check_launch("check_response_kernel (local_peaks)");
  token_rows::local_peaks_commit<<<blocks_for(B * N), 256, 0, p.stream>>>(a, w, p.status);
  check_launch("local_peaks_commit");
}

/// Top-q per response: values [B, N] (eligible [B, N]) -> selected [B, N], threshold [B].
/// One thread per sequence, O(n) (about eight passes over the response: the checks, the copy, the
/// count, eight radix passes, the selection).
template <class T>
void top_q(const exec::cuda& p, const top_q_args<T, device_space>& a) {
  const std::int64_t B = a.values.extent(0), N = a.values.extent(1);
  check_cuda_policy(p, top_q_workspace_size(B, N), "top_q_workspace_size");
  if (B == 0) return;
  workspace_carver c = carver_of(p);
  const auto w = token_rows::plan_top_q(c, B, N);
  reset_slot(w.slot, p.stream);
  constexpr int threads = token_rows::sequence_threads;
  token_rows::top_q_kernel<<<blocks_for(B, threads), threads, 0, p.stream>>>(a, w);
  check_launch("top_q_kernel");
  token_rows::top_q_commit<<<blocks_for(token_rows::commit_items(a)), 256, 0, p.stream>>>(a, w, p.status);
  check_launch("top_q_commit");
}

/// Token sets: waad, fai [B, N] -> flags [B, N] (thresholds [B, 4]). One thread per sequence,
/// O(n) (about twenty-five passes over the response: four order statistics of five passes or
/// less, the checks, the copy, the jumps, the flags, the dominance scan).
template <class W, class F>
void token_sets(const exec::cuda& p, const token_sets_args<W, F, device_space>& a) {
  const std::int64_t B = a.waad.extent(0), N = a.waad.extent(1);
  check_cuda_policy(p, token_sets_workspace_size(B, N), "token_sets_workspace_size");
  if (B == 0) return;
  workspace_carver c = carver_of(p);
  const auto w = token_rows::plan_token_sets(c, B, N);
  reset_slot(w.slot, p.stream);
  constexpr int threads = token_rows::sequence_threads;
  token_rows::token_sets_kernel<<<blocks_for(B, threads), threads, 0, p.stream>>>(a, w);
  check_launch("token_sets_kernel");
  token_rows::token_sets_commit<<<blocks_for(token_rows::commit_items(a)), 256, 0, p.stream>>>(a, w, p.status);
  check_launch("token_sets_commit");
}

}  // namespace rhythm::cuda::detail
#endif
