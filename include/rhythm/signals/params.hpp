#pragma once
/// Parameters of the signal primitives (DESIGN §3, paper Eq. 9 and Eq. 10).
#include <cstdint>
#include <limits>
#include <string>

#include "../error.hpp"

namespace rhythm {

/// H_hi value meaning "to the end of the response" (for analysis).
inline constexpr std::int64_t unbounded_horizon = std::numeric_limits<std::int64_t>::max();

struct signal_params {
  std::int64_t window = 10;       ///< W of WAAD (Eq. 9): distances are clipped at W; W >= 1
  std::int64_t horizon_lo = 10;   ///< H_lo of FAI (Eq. 10): nearest receiver t = s + H_lo; H_lo >= 0
  std::int64_t horizon_hi = 100;  ///< H_hi of FAI: farthest receiver t = s + H_hi; unbounded_horizon for all
  float scale = 0.0f;             ///< Q/K path: softmax scale of q.k; 0 means 1/sqrt(d)
  bool check_finite = true;       ///< reject NaN/Inf in the inputs (rhythm::errc::non_finite)
};

namespace detail {
inline void check_signal_params(const signal_params& p) {
  require(p.window >= 1, errc::bad_parameter, "params.window", ">= 1", p.window);
  require(p.horizon_lo >= 0, errc::bad_parameter, "params.horizon_lo", ">= 0", p.horizon_lo);
  require(p.horizon_lo <= p.horizon_hi, errc::bad_parameter, "params.horizon_hi",
          ">= params.horizon_lo = " + std::to_string(p.horizon_lo), p.horizon_hi);
  require(p.scale >= 0.0f && p.scale <= std::numeric_limits<float>::max(), errc::bad_parameter, "params.scale",
          "a finite value >= 0 (0 means 1/sqrt(d))", p.scale);
}

/// Number of FAI receivers |T(s)| of key s (Eq. 10): t in R with s + H_lo <= t <= min(end - 1, s + H_hi).
RHYTHM_HOST_DEVICE inline std::int64_t fai_receiver_count(std::int64_t s, std::int64_t response_begin, std::int64_t end,
                                                          std::int64_t horizon_lo, std::int64_t horizon_hi) {
  const std::int64_t lo = s + horizon_lo > response_begin ? s + horizon_lo : response_begin;
  const std::int64_t far = horizon_hi > end - s ? end - 1 : s + horizon_hi;  // overflow-safe min(end-1, s+H_hi)
  const std::int64_t hi = far < end - 1 ? far : end - 1;
  return hi >= lo ? hi - lo + 1 : 0;
}
}  // namespace detail

/// True if token s has at least one FAI receiver (T(s) non-empty), i.e. is eligible as an anchor.
RHYTHM_HOST_DEVICE inline bool fai_eligible(std::int64_t s, std::int64_t response_begin, std::int64_t end,
                                            const signal_params& p) {
  return detail::fai_receiver_count(s, response_begin, end, p.horizon_lo, p.horizon_hi) > 0;
}

}  // namespace rhythm
