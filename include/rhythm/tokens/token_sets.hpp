#pragma once
/// WAAD jumps and the token sets of the preplan-and-anchor rhythm (DESIGN §3; paper §4, used by
/// Eq. 15-19).
///
/// For each sequence, over its response R = [response_begin, end), with WAAD the local-group WAAD
/// and FAI the global-group FAI (signals/group_signals.hpp):
///
///   Delta_t            = |WAAD_t - WAAD_{t+1}| for t in R, 0 at the last response token (waad_jumps)
///   T_loc  (preplan)   = top-q(Delta) over every response token
///   T_glob (anchor)    = top-q(FAI)   over the FAI-eligible response tokens (fai_eligible: T(s) non-empty)
///   D      (dominated) = {t in T_glob : WAAD_t <= tau_waad  and  max_{u in [t-k, t-1] ∩ R} Delta_u >= tau_Delta}
///                        a t whose window [t-k, t-1] ∩ R is empty is never dominated
///   intro(t)           = argmax_{u in [t-k, t-1] ∩ R} Delta_u (the earliest on ties), for every t in D
///
///   tau_waad  = median of WAAD over the response tokens
///   tau_Delta = the T_loc threshold (dominance_threshold_mode::loc_threshold, default)
///               or the median of Delta over the response tokens (dominance_threshold_mode::median_delta)
///
/// The median of m values is the middle value when m is odd and the mean of the two middle values
/// when m is even. top-q is top_q.hpp's (k = ceil(q n), inclusive ties); `bottom` switches T_loc and
/// T_glob to bottom-q selections (their thresholds then being k-th smallest values), everything else
/// unchanged. The sets are written as rhythm::token_flag bits, one byte per position.
///
/// Delta is computed in float, by waad_jumps and inside token_sets alike, so that
/// top_q(waad_jumps(waad)) reproduces T_loc bit for bit.
#include <cstdint>
#include <limits>
#include <string>

#include "../signals/params.hpp"
#include "common.hpp"
#include "token_flags.hpp"

namespace rhythm {

/// Which jump threshold tau_Delta the window before a dominated anchor must reach.
enum class dominance_threshold_mode : std::uint8_t {
  loc_threshold = 0,  ///< tau_Delta = the T_loc (preplan) threshold of the same response
  median_delta = 1,   ///< tau_Delta = the median jump Delta over the response tokens
};

/// Parameters of token_sets (and of rhythm_statistics' sets).
struct token_params {
  double q = 0.4;                     ///< share selected by T_loc and T_glob, in (0, 1]
  bool bottom = false;                ///< ablation: bottom-q instead of top-q for T_loc and T_glob
  std::int64_t dominance_window = 3;  ///< k: an anchor looks back at the jumps of [t - k, t - 1]; k >= 1
  dominance_threshold_mode dominance_threshold = dominance_threshold_mode::loc_threshold;  ///< tau_Delta
  /// The signal parameters the FAI was computed with; only horizon_lo and horizon_hi are read
  /// here (anchor eligibility, rhythm::fai_eligible).
  signal_params signals{};
};

/// Columns of the optional per-sequence thresholds output [B, token_threshold::count] of token_sets.
/// A threshold is NaN when its sequence has no token to take it from (empty response, no eligible token).
struct token_threshold {
  static constexpr std::int64_t preplan = 0;      ///< T_loc threshold: k-th largest Delta (bottom: smallest)
  static constexpr std::int64_t anchor = 1;       ///< T_glob threshold: k-th largest eligible FAI (bottom: smallest)
  static constexpr std::int64_t waad_median = 2;  ///< tau_waad
  static constexpr std::int64_t jump = 3;         ///< tau_Delta (rounded to float; comparisons use the exact value)
  static constexpr std::int64_t count = 4;
};

namespace detail::tokens {

/// Validates token_params; `prefix` names the struct in messages ("params." or "params.tokens.").
inline void check_token_params(const token_params& p, const std::string& prefix = "params.") {
  check_q(p.q, prefix + "q");
  require(p.dominance_window >= 1, errc::bad_parameter, prefix + "dominance_window", ">= 1", p.dominance_window);
  require(p.dominance_threshold == dominance_threshold_mode::loc_threshold ||
              p.dominance_threshold == dominance_threshold_mode::median_delta,
          errc::bad_parameter, prefix + "dominance_threshold",
          "dominance_threshold_mode::loc_threshold (0) or dominance_threshold_mode::median_delta (1)",
          int(p.dominance_threshold));
  require(p.signals.horizon_lo >= 0, errc::bad_parameter, prefix + "signals.horizon_lo", ">= 0", p.signals.horizon_lo);
  require(p.signals.horizon_lo <= p.signals.horizon_hi, errc::bad_parameter, prefix + "signals.horizon_hi",
          ">= " + prefix + "signals.horizon_lo = " + std::to_string(p.signals.horizon_lo), p.signals.horizon_hi);
}

/// Marks D and intro in flags[0..n) (whose anchor bits are set). A monotone deque of window
/// indices (dq, n entries) keeps the earliest maximal jump of [t-k, t-1] at its front: O(n) for any k.
inline void mark_dominated(const float* waad, const float* delta, std::int64_t n, std::int64_t k, double tau_waad,
                           double tau_delta, std::int64_t* dq, std::uint8_t* flags) {
  std::int64_t head = 0, tail = 0;
  for (std::int64_t t = 0; t < n; ++t) {
    if (t >= 1) {
      while (tail > head && delta[dq[tail - 1]] < delta[t - 1]) --tail;  // equal jumps stay: earliest first
      dq[tail++] = t - 1;
    }
    while (head < tail && dq[head] < t - k) ++head;
    if (!(flags[t] & token_flag::anchor) || head == tail) continue;
    const std::int64_t u = dq[head];
    if (double(waad[t]) <= tau_waad && double(delta[u]) >= tau_delta) {
      flags[t] |= token_flag::dominated;
      flags[u] |= token_flag::intro;
    }
  }
}

struct token_row_thresholds {
  float preplan, anchor;
  double waad_median, jump;
};

/// The sets of one response, as token_flag bits in w.flags[0..n) (position response_begin + i at i).
/// Leaves WAAD in w.a, FAI in w.b (0 where not eligible), Delta in w.c and eligibility in w.m.
/// With `dominance == false` only the preplan and anchor bits are computed.
template <strided_tensor Waad, strided_tensor Fai>
token_row_thresholds token_sets_row(const Waad& waad, const Fai& fai, std::int64_t b, const segment& s,
                                    const token_params& p, bool dominance, token_scratch& w) {
  const std::int64_t n = s.response_length(), rb = s.response_begin;
  for (std::int64_t i = 0; i < n; ++i) {
    w.a[i] = to_float(token_at(waad, b, rb + i));
    w.m[i] = fai_eligible(rb + i, rb, s.end, p.signals);
    w.b[i] = w.m[i] ? to_float(token_at(fai, b, rb + i)) : 0.0f;
  }
  jumps_of(w.a.data(), n, w.c.data());
  const top_q_params tq{p.q, p.bottom};
  token_row_thresholds r{};
  r.preplan = select_top_q(w.c.data(), nullptr, n, tq, w.sort.data(), w.flags.data());
  r.anchor = select_top_q(w.b.data(), w.m.data(), n, tq, w.sort.data(), w.sel.data());
  for (std::int64_t i = 0; i < n; ++i)
    w.flags[i] = static_cast<std::uint8_t>((w.flags[i] ? token_flag::preplan : 0) | (w.sel[i] ? token_flag::anchor : 0));
  r.waad_median = median_of(w.a.data(), n, w.sort.data());
  r.jump = p.dominance_threshold == dominance_threshold_mode::loc_threshold ? double(r.preplan)
                                                                             : median_of(w.c.data(), n, w.sort.data());
  if (dominance)
    mark_dominated(w.a.data(), w.c.data(), n, p.dominance_window, r.waad_median, r.jump, w.i0.data(), w.flags.data());
  return r;
}

/// Checks shared by token_sets and rhythm_statistics, run after the params: [B, N] signals and segments.
template <strided_tensor Waad, strided_tensor Fai, strided_tensor Segments>
void check_token_signals(const Waad& waad, const Fai& fai, const Segments& segments) {
  static_assert(Waad::rank() == 2 && Fai::rank() == 2, "rhythm: waad and fai must have rank 2: [B, N]");
  static_assert(input_element<typename Waad::value_type> && input_element<typename Fai::value_type>,
                "rhythm: waad and fai must hold float, bfloat16 or half");
  const std::int64_t B = waad.extent(0), N = waad.extent(1);
  check_token_extents(fai, "fai", B, N);
  check_segments(segments, B, N);
}

/// Last check before computing: finite values where they are read (WAAD on R; FAI on the eligible
/// tokens of R, or on all of R when `fai_everywhere`).
template <strided_tensor Waad, strided_tensor Fai, strided_tensor Segments>
void check_token_signals_finite(const Waad& waad, const Fai& fai, const Segments& segments, const token_params& p,
                                bool fai_everywhere) {
  check_token_finite(waad, "waad", segments, "response positions", [](auto, auto, auto) { return true; });
  check_token_finite(fai, "fai", segments, fai_everywhere ? "response positions" : "FAI-eligible response positions",
                     [&](std::int64_t, const segment& s, std::int64_t t) {
                       return fai_everywhere || fai_eligible(t, s.response_begin, s.end, p.signals);
                     });
}

template <class Policy, strided_tensor Waad, strided_tensor Fai, strided_tensor Segments, strided_tensor Flags,
          class Thresholds>
void token_sets_impl(Policy policy, const Waad& waad, const Fai& fai, const Segments& segments, const Flags& flags,
                     const Thresholds* thresholds, const token_params& params) {
  static_assert(std::is_same_v<element_of<Flags>, std::uint8_t>, "rhythm: flags must be a writable view of std::uint8_t");
  constexpr bool with_thresholds = !std::is_void_v<Thresholds>;
  const std::int64_t B = waad.extent(0), N = waad.extent(1);
  check_token_params(params);
  check_token_signals(waad, fai, segments);
  check_token_extents(flags, "flags", B, N);
  check_token_output(flags, "flags", waad, fai, segments);
  if constexpr (with_thresholds) {
    static_assert(Thresholds::rank() == 2 && std::is_same_v<element_of<Thresholds>, float>,
                  "rhythm: thresholds must be a writable [B, 4] view of float");
    require(thresholds->extent(0) == B && thresholds->extent(1) == token_threshold::count, errc::shape_mismatch,
            "thresholds", "[B, 4] = [" + std::to_string(B) + ", 4]", shape_string(*thresholds));
    check_token_output(*thresholds, "thresholds", waad, fai, segments, flags);
  }
  check_token_signals_finite(waad, fai, segments, params, false);

  const int threads = cpu::thread_count(policy);
  auto scratch = make_token_scratch(threads, B, N);
  cpu::parallel_for(threads, B, [&](std::int64_t b, int worker) {
    token_scratch& w = scratch[worker];
    const segment s = segment_at(segments, b);
    const token_row_thresholds r = token_sets_row(waad, fai, b, s, params, true, w);
    for (std::int64_t t = 0; t < N; ++t)
      token_at(flags, b, t) = s.in_response(t) ? w.flags[t - s.response_begin] : std::uint8_t{0};
    if constexpr (with_thresholds) {
      const float row[token_threshold::count] = {r.preplan, r.anchor, static_cast<float>(r.waad_median),
                                                 static_cast<float>(r.jump)};
      for (std::int64_t c = 0; c < token_threshold::count; ++c) token_at(*thresholds, b, c) = row[c];
    }
  });
}

}  // namespace detail::tokens

/// WAAD jumps of every sequence.
///
/// waad     [B, N]  float, bfloat16 or half: the local-group WAAD (group_mean of head_signals_*);
///                  read only at response positions (padding and prompt may hold anything)
/// segments [B]     rhythm::segment per sequence
/// delta    [B, N]  float out, written at every position
///
/// Throws (writing nothing) on shape mismatch, bad segments, overlapping memory, or NaN/Inf in
/// waad at a response position. O(B N); no allocation.
template <class Policy, strided_tensor Waad, strided_tensor Segments, strided_tensor Delta>
void waad_jumps(Policy policy, const Waad& waad, const Segments& segments, const Delta& delta) {
  detail::check_policy<Policy, Waad, Segments, Delta>();
  static_assert(Waad::rank() == 2 && Delta::rank() == 2, "rhythm: waad and delta must have rank 2: [B, N]");
  static_assert(input_element<typename Waad::value_type>, "rhythm: waad must hold float, bfloat16 or half");
  static_assert(std::is_same_v<element_of<Delta>, float>, "rhythm: delta must be a writable view of float");
  const std::int64_t B = waad.extent(0), N = waad.extent(1);
  detail::check_segments(segments, B, N);
  detail::tokens::check_token_extents(delta, "delta", B, N);
  detail::tokens::check_token_output(delta, "delta", waad, segments);
  detail::tokens::check_token_finite(waad, "waad", segments, "response positions", [](auto, auto, auto) { return true; });
  cpu::parallel_for(cpu::thread_count(policy), B, [&](std::int64_t b, int) {
    const segment s = detail::segment_at(segments, b);
    for (std::int64_t t = 0; t < N; ++t) {
      float d = 0.0f;
      if (t >= s.response_begin && t + 1 < s.end)
        d = std::fabs(to_float(detail::tokens::token_at(waad, b, t)) - to_float(detail::tokens::token_at(waad, b, t + 1)));
      detail::tokens::token_at(delta, b, t) = d;
    }
  });
}

/// Preplan, anchor, dominated and intro sets of every sequence, as token_flag bits.
///
/// waad       [B, N]  float, bfloat16 or half: local-group WAAD; read at response positions
/// fai        [B, N]  same types: global-group FAI; read at FAI-eligible response positions only
/// segments   [B]     rhythm::segment per sequence
/// flags      [B, N]  std::uint8_t out: token_flag::preplan | anchor | dominated | intro, 0 outside R
/// thresholds [B, 4]  float out (optional overload), columns token_threshold::preplan, anchor,
///                    waad_median, jump: the per-sequence thresholds the sets were cut at
/// params             token_params: q, bottom, dominance_window k, dominance_threshold, signals horizons
///
/// Throws (writing nothing) on a bad parameter (q outside (0, 1], k < 1, H_lo < 0 or > H_hi),
/// shape mismatch, bad segments, overlapping memory, or NaN/Inf where a value is read.
/// O(B N) expected time for any q and k (nth_element selections and medians, a monotone deque
/// for the windowed maxima); O(N) scratch per worker.
template <class Policy, strided_tensor Waad, strided_tensor Fai, strided_tensor Segments, strided_tensor Flags,
          strided_tensor Thresholds>
void token_sets(Policy policy, const Waad& waad, const Fai& fai, const Segments& segments, const Flags& flags,
                const Thresholds& thresholds, const token_params& params = {}) {
  detail::check_policy<Policy, Waad, Fai, Segments, Flags, Thresholds>();
  detail::tokens::token_sets_impl(policy, waad, fai, segments, flags, &thresholds, params);
}

/// As above, without the thresholds output.
template <class Policy, strided_tensor Waad, strided_tensor Fai, strided_tensor Segments, strided_tensor Flags>
void token_sets(Policy policy, const Waad& waad, const Fai& fai, const Segments& segments, const Flags& flags,
                const token_params& params = {}) {
  detail::check_policy<Policy, Waad, Fai, Segments, Flags>();
  detail::tokens::token_sets_impl(policy, waad, fai, segments, flags, static_cast<const void*>(nullptr), params);
}

}  // namespace rhythm
