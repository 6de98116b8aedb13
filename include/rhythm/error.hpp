#pragma once
/// rhythm::error: the one exception type of the library.
///
/// Every rejected input throws a rhythm::error whose message names the argument, what was
/// expected and what was given, e.g.
///   rhythm: argument 'params.window': expected >= 1, got 0
/// and whose code() is a stable rhythm::errc value. Outputs are never written when an error is
/// thrown: every check runs before the first write (core/checks.hpp for the checks of extents,
/// strides, parameters and overlap; core/status.hpp for the checks of values and their contract
/// on a device).
#include <cstdint>
#include <stdexcept>
#include <string>

#include "config.hpp"

namespace rhythm {

/// Stable error codes; values never change between versions.
enum class errc : int {
  shape_mismatch = 1,   ///< a rank or extent does not match what the operation needs
  bad_stride = 2,       ///< a stride the operation cannot use (e.g. negative or overlapping)
  bad_segment = 3,      ///< a segment outside the sequence or with begin > response_begin > end
  bad_parameter = 4,    ///< a params field outside its domain (W < 1, H_lo > H_hi, q outside (0,1], ...)
  non_finite = 5,       ///< NaN or Inf in an input that must be finite
  aliasing = 6,         ///< an output overlaps an input or another output
};

/// Name of an error code, for messages and logs.
constexpr const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::shape_mismatch: return "shape_mismatch";
    case errc::bad_stride: return "bad_stride";
    case errc::bad_segment: return "bad_segment";
    case errc::bad_parameter: return "bad_parameter";
    case errc::non_finite: return "non_finite";
    case errc::aliasing: return "aliasing";
  }
  return "unknown";
}

class error : public std::runtime_error {
 public:
  error(errc code, const std::string& message) : std::runtime_error(message), code_(code) {}
  [[nodiscard]] errc code() const noexcept { return code_; }

 private:
  errc code_;
};

namespace detail {

/// Throws rhythm::error with the library's message format.
[[noreturn]] inline void fail(errc code, const std::string& argument, const std::string& expected,
                              const std::string& given) {
  throw error(code, "rhythm: argument '" + argument + "': expected " + expected + ", got " + given);
}

}  // namespace detail
}  // namespace rhythm
