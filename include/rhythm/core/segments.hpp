#pragma once
/// Segments: where the real tokens and the response of each padded sequence lie.
///
/// Sequence b of a batch padded to length N holds real tokens at [begin, end) and its response
/// at R = [response_begin, end), with 0 <= begin <= response_begin <= end <= N. Left padding is
/// begin > 0, right padding end < N. An empty response (response_begin == end) is allowed: its
/// signals are all zero and it has no eligible tokens.
///
/// Segment ranges are values: the backends check them (core/status.hpp, value_check::segment_range).
#include <cstdint>

#include "../config.hpp"

namespace rhythm {

struct segment {
  std::int64_t begin = 0;           ///< first real token
  std::int64_t response_begin = 0;  ///< first response token
  std::int64_t end = 0;             ///< one past the last real token

  RHYTHM_HOST_DEVICE constexpr std::int64_t response_length() const noexcept { return end - response_begin; }
  /// 0 <= begin <= response_begin <= end <= length (what every backend checks).
  RHYTHM_HOST_DEVICE constexpr bool fits(std::int64_t length) const noexcept {
    return 0 <= begin && begin <= response_begin && response_begin <= end && end <= length;
  }
  RHYTHM_HOST_DEVICE constexpr bool in_response(std::int64_t t) const noexcept {
    return t >= response_begin && t < end;
  }
  friend constexpr bool operator==(const segment&, const segment&) = default;
};

}  // namespace rhythm
