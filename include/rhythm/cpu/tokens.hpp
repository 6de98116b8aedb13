#pragma once
/// CPU backend of the tokens stage: WAAD jumps, top-q, the token sets and peaks. One sequence per
/// work item; values are checked (segments first, then NaN/Inf where read) before anything is written.
#include <cstdint>

#include "../core/dtypes.hpp"
#include "../core/token_types.hpp"
#include "parallel.hpp"
#include "selection.hpp"
#include "values.hpp"

namespace rhythm::cpu {

namespace detail {

/// For every sequence b in parallel: row(b, segment, scratch) fills scratch.flags over b's
/// response, which is then written to out(b, .) (0 outside the response).
template <class Segments, class Out, class Row>
void for_each_row_of_bits(int threads, const Segments& segments, const Out& out, Row&& row) {
  const std::int64_t B = out.extent(0), N = out.extent(1);
  auto scratch = make_token_scratch(threads, B, N);
  parallel_for(threads, B, [&](std::int64_t b, int worker) {
    token_scratch& w = scratch[worker];
    const segment s = segments(b);
    row(b, s, w);
    for (std::int64_t t = 0; t < N; ++t) out(b, t) = s.in_response(t) ? w.flags[t - s.response_begin] : 0;
  });
}

}  // namespace detail

template <class T>
void waad_jumps(int threads, const waad_jumps_args<T, host_space>& a) {
  const std::int64_t B = a.waad.extent(0), N = a.waad.extent(1);
  raise_first([&] { return check_segments(a.segments, N); },
              [&] { return first_non_finite_in_responses(a.waad, a.segments, value_argument::waad); });
  parallel_for(threads, B, [&](std::int64_t b, int) {
    const segment s = a.segments(b);
    for (std::int64_t t = 0; t < N; ++t) {
      float d = 0.0f;
      if (t >= s.response_begin && t + 1 < s.end) d = std::fabs(to_float(a.waad(b, t)) - to_float(a.waad(b, t + 1)));
      a.delta(b, t) = d;
    }
  });
}

template <class T>
void top_q(int threads, const top_q_args<T, host_space>& a) {
  const std::int64_t N = a.values.extent(1);
  const bool masked = a.eligible.data_handle() != nullptr;
  const auto is_eligible = [&](std::int64_t b, std::int64_t t) { return !masked || a.eligible(b, t) != 0; };
  raise_first([&] { return check_segments(a.segments, N); },
              [&] {
                return first_non_finite_in_responses(
                    a.values, a.segments, value_argument::values, value_scope::eligible_response,
                    [&](std::int64_t b, const segment&, std::int64_t t) { return is_eligible(b, t); });
              });
  detail::for_each_row_of_bits(threads, a.segments, a.selected,
                               [&](std::int64_t b, const segment& s, token_scratch& w) {
    const std::int64_t n = s.response_length();
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t t = s.response_begin + i;
      w.m[i] = is_eligible(b, t);
      w.a[i] = w.m[i] ? to_float(a.values(b, t)) : 0.0f;
    }
    a.threshold(b) = select_top_q(w.a.data(), w.m.data(), n, a.params, w.sort.data(), w.flags.data());
  });
}

namespace detail {

struct token_row_thresholds {
  float preplan, anchor;
  double waad_median, jump;
};

/// The sets of one response, as token_flag bits in w.flags[0..n) (position response_begin + i at i).
/// Leaves WAAD in w.a, FAI in w.b (0 where not eligible), Delta in w.c and eligibility in w.m.
/// With `dominance == false` only the preplan and anchor bits are computed.
template <class W, class F>
token_row_thresholds token_sets_row(const view<const W, 2>& waad, const view<const F, 2>& fai, std::int64_t b,
                                    const segment& s, const token_params& p, bool dominance, token_scratch& w) {
  const std::int64_t n = s.response_length(), rb = s.response_begin;
  for (std::int64_t i = 0; i < n; ++i) {
    w.a[i] = to_float(waad(b, rb + i));
    w.m[i] = fai_eligible(rb + i, rb, s.end, p.horizon);
    w.b[i] = w.m[i] ? to_float(fai(b, rb + i)) : 0.0f;
  }
  jumps_of(w.a.data(), n, w.c.data());
  token_row_thresholds r{};
  r.preplan = select_top_q(w.c.data(), nullptr, n, p.selection, w.sort.data(), w.flags.data());
  r.anchor = select_top_q(w.b.data(), w.m.data(), n, p.selection, w.sort.data(), w.sel.data());
  for (std::int64_t i = 0; i < n; ++i)
    w.flags[i] = bits((w.flags[i] ? token_flag::preplan : token_flag::none) |
                      (w.sel[i] ? token_flag::anchor : token_flag::none));
  r.waad_median = median_of(w.a.data(), n, w.sort.data());
  r.jump = p.dominance.threshold == dominance_threshold_mode::loc_threshold ? double(r.preplan)
                                                                            : median_of(w.c.data(), n, w.sort.data());
  if (dominance)
    mark_dominated(w.a.data(), w.c.data(), n, p.dominance.window, r.waad_median, r.jump, w.i0.data(), w.flags.data());
  return r;
}

/// Segments, then finite WAAD on R, then finite FAI where read: the eligible tokens of R, or all
/// of R when `fai_everywhere`.
template <class W, class F>
void check_token_signals(const view<const W, 2>& waad, const view<const F, 2>& fai, const segments_view& segments,
                         const fai_horizon& horizon, bool fai_everywhere) {
  raise_first([&] { return check_segments(segments, waad.extent(1)); },
              [&] { return first_non_finite_in_responses(waad, segments, value_argument::waad); },
              [&] {
                return first_non_finite_in_responses(
                    fai, segments, value_argument::fai,
                    fai_everywhere ? value_scope::response : value_scope::fai_eligible_response,
                    [&](std::int64_t, const segment& s, std::int64_t t) {
                      return fai_everywhere || fai_eligible(t, s.response_begin, s.end, horizon);
                    });
              });
}

}  // namespace detail

template <class W, class F>
void token_sets(int threads, const token_sets_args<W, F, host_space>& a) {
  detail::check_token_signals(a.waad, a.fai, a.segments, a.params.horizon, false);
  detail::for_each_row_of_bits(threads, a.segments, a.flags,
                               [&](std::int64_t b, const segment& s, token_scratch& w) {
    const detail::token_row_thresholds r = detail::token_sets_row(a.waad, a.fai, b, s, a.params, true, w);
    if (a.thresholds.data_handle()) {
      const float row[token_threshold::count] = {r.preplan, r.anchor, static_cast<float>(r.waad_median),
                                                 static_cast<float>(r.jump)};
      for (std::int64_t c = 0; c < token_threshold::count; ++c) a.thresholds(b, c) = row[c];
    }
  });
}

template <class T>
void local_peaks(int threads, const local_peaks_args<T, host_space>& a) {
  raise_first([&] { return check_segments(a.segments, a.values.extent(1)); },
              [&] { return first_non_finite_in_responses(a.values, a.segments, value_argument::values); });
  detail::for_each_row_of_bits(threads, a.segments, a.peaks,
                               [&](std::int64_t b, const segment& s, token_scratch& w) {
    const std::int64_t n = s.response_length();
    for (std::int64_t i = 0; i < n; ++i) {
      w.a[i] = to_float(a.values(b, s.response_begin + i));
      w.m[i] = a.selected(b, s.response_begin + i);
    }
    local_peaks_of(w.a.data(), w.m.data(), a.select_bits, n, w.flags.data());
  });
}

}  // namespace rhythm::cpu
