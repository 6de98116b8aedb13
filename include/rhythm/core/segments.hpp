#pragma once
/// Segments: where the real tokens and the response of each padded sequence lie.
///
/// Sequence b of a batch padded to length N holds real tokens at [begin, end) and its response
/// at R = [response_begin, end), with 0 <= begin <= response_begin <= end <= N. Left padding is
/// begin > 0, right padding end < N. An empty response (response_begin == end) is allowed: its
/// signals are all zero and it has no eligible tokens.
#include <cstdint>
#include <string>

#include "../error.hpp"
#include "tensor.hpp"

namespace rhythm {

struct segment {
  std::int64_t begin = 0;           ///< first real token
  std::int64_t response_begin = 0;  ///< first response token
  std::int64_t end = 0;             ///< one past the last real token

  RHYTHM_HOST_DEVICE constexpr std::int64_t response_length() const noexcept { return end - response_begin; }
  RHYTHM_HOST_DEVICE constexpr bool in_response(std::int64_t t) const noexcept {
    return t >= response_begin && t < end;
  }
  friend constexpr bool operator==(const segment&, const segment&) = default;
};

namespace detail {

/// Validates `segments` (rank 1, host) against a batch of `batch` sequences of padded length `length`.
template <strided_tensor_of_rank<1> S>
void check_segments(const S& segments, std::int64_t batch, std::int64_t length) {
  static_assert(std::is_same_v<typename S::value_type, segment>, "rhythm: segments must be a view of rhythm::segment");
  require(segments.extent(0) == batch, errc::shape_mismatch, "segments", "one segment per sequence",
          std::to_string(segments.extent(0)) + " segments for a batch of " + std::to_string(batch));
  for (std::int64_t b = 0; b < batch; ++b) {
    const segment s = segments.data_handle()[b * segments.stride(0)];
    if (!(0 <= s.begin && s.begin <= s.response_begin && s.response_begin <= s.end && s.end <= length)) {
      fail(errc::bad_segment, "segments[" + std::to_string(b) + "]",
           "0 <= begin <= response_begin <= end <= N = " + std::to_string(length),
           "{" + std::to_string(s.begin) + ", " + std::to_string(s.response_begin) + ", " + std::to_string(s.end) +
               "}");
    }
  }
}

template <strided_tensor_of_rank<1> S>
segment segment_at(const S& segments, std::int64_t b) {
  return segments.data_handle()[b * segments.stride(0)];
}

}  // namespace detail
}  // namespace rhythm
