#pragma once
/// Vocabulary of the signals stage (DESIGN §3, paper Eq. 9 and Eq. 10): the FAI horizons (owned
/// here and nowhere else), the signal parameters, and the flat argument structs the backends receive.
#include <cstdint>
#include <limits>
#include <string>

#include "../config.hpp"
#include "checks.hpp"
#include "segments.hpp"
#include "tensor.hpp"

namespace rhythm {

/// H_hi value meaning "to the end of the response" (for analysis).
inline constexpr std::int64_t unbounded_horizon = std::numeric_limits<std::int64_t>::max();

/// The FAI receiver band (Eq. 10): key s is read by the response rows t with lo <= t - s <= hi.
struct fai_horizon {
  std::int64_t lo = 10;   ///< H_lo: nearest receiver t = s + H_lo; >= 0
  std::int64_t hi = 100;  ///< H_hi: farthest receiver t = s + H_hi; >= lo; unbounded_horizon for all
};

struct signal_params {
  std::int64_t window = 10;  ///< W of WAAD (Eq. 9): distances are clipped at W; W >= 1
  fai_horizon horizon{};     ///< H_lo, H_hi of FAI (Eq. 10)
  float scale = 0.0f;        ///< Q/K path: softmax scale of q.k; 0 means 1/sqrt(d)
  bool check_finite = true;  ///< reject NaN/Inf in the inputs (rhythm::errc::non_finite)
};

namespace detail {
/// `prefix` names the horizon in messages ("params.horizon" or "params.signals.horizon").
inline void check_horizon(const fai_horizon& h, const std::string& prefix) {
  expects(h.lo >= 0, errc::bad_parameter, text(prefix, ".lo"), ">= 0", h.lo);
  expects(h.lo <= h.hi, errc::bad_parameter, text(prefix, ".hi"), text(">= ", prefix, ".lo = ", h.lo), h.hi);
}

inline void check_signal_params(const signal_params& p, const std::string& prefix = "params") {
  expects(p.window >= 1, errc::bad_parameter, text(prefix, ".window"), ">= 1", p.window);
  check_horizon(p.horizon, prefix + ".horizon");
  expects(p.scale >= 0.0f && p.scale <= std::numeric_limits<float>::max(), errc::bad_parameter,
          text(prefix, ".scale"), "a finite value >= 0 (0 means 1/sqrt(d))", p.scale);
}

/// Number of FAI receivers |T(s)| of key s (Eq. 10): t in R with s + H_lo <= t <= min(end - 1, s + H_hi).
RHYTHM_HOST_DEVICE inline std::int64_t fai_receiver_count(std::int64_t s, std::int64_t response_begin, std::int64_t end,
                                                          const fai_horizon& h) {
  if (h.lo > end - 1 - s) return 0;  // s + H_lo past the last token (and s + H_lo would overflow)
  const std::int64_t lo = s + h.lo > response_begin ? s + h.lo : response_begin;
  const std::int64_t far = h.hi > end - s ? end - 1 : s + h.hi;  // overflow-safe min(end-1, s+H_hi)
  const std::int64_t hi = far < end - 1 ? far : end - 1;
  return hi >= lo ? hi - lo + 1 : 0;
}
}  // namespace detail

/// True if token s has at least one FAI receiver (T(s) non-empty), i.e. is eligible as an anchor.
RHYTHM_HOST_DEVICE inline bool fai_eligible(std::int64_t s, std::int64_t response_begin, std::int64_t end,
                                            const fai_horizon& h) {
  return detail::fai_receiver_count(s, response_begin, end, h) > 0;
}

/// head_signals_from_maps: maps [B, H, N, N] -> span [B, H], waad and fai [B, H, N].
template <class T, class Space>
struct maps_signal_args {
  view<const T, 4, Space> maps;
  view<const segment, 1, Space> segments;
  view<float, 2, Space> span;
  view<float, 3, Space> waad, fai;
  signal_params params;
};

/// head_signals_from_qk: q [B, Hq, N, d], k [B, Hkv, N, d] -> span [B, Hq], waad and fai [B, Hq, N].
template <class T, class Space>
struct qk_signal_args {
  view<const T, 4, Space> q, k;
  view<const segment, 1, Space> segments;
  view<float, 2, Space> span;
  view<float, 3, Space> waad, fai;
  signal_params params;
};

}  // namespace rhythm
