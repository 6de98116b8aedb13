#pragma once
/// 16-bit floating-point storage types and conversions to and from float.
///
/// rhythm reads float, bfloat16 and half inputs and always accumulates in float (or double).
/// `bfloat16` and `half` are plain 16-bit storage with the IEEE bit layouts of at::BFloat16 /
/// __nv_bfloat16 and at::Half / __half, so adapters reinterpret those types' memory directly.
#include <cstdint>
#include <type_traits>

#include "../config.hpp"

namespace rhythm {
namespace detail {
/// The bits of a 32-bit value as another 32-bit type; usable in CUDA device code, unlike std::bit_cast.
template <class To, class From>
RHYTHM_HOST_DEVICE inline To bits_as(From x) {
  static_assert(sizeof(To) == sizeof(From));
  return __builtin_bit_cast(To, x);
}

/// |x| by clearing the sign bit (std::fabs's result, on host and device).
RHYTHM_HOST_DEVICE inline float abs_bits(float x) { return bits_as<float>(bits_as<std::uint32_t>(x) & 0x7fffffffu); }

/// std::isfinite on the bits (host and device alike, and immune to fast-math flags).
RHYTHM_HOST_DEVICE inline bool is_finite_bits(float x) {
  return (bits_as<std::uint32_t>(x) & 0x7f800000u) != 0x7f800000u;
}
}  // namespace detail

/// bfloat16: the upper 16 bits of an IEEE float32.
struct bfloat16 {
  std::uint16_t bits = 0;
  bfloat16() = default;
  /// Round to nearest even; NaN stays NaN.
  RHYTHM_HOST_DEVICE explicit bfloat16(float f) {
    std::uint32_t u = detail::bits_as<std::uint32_t>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
      bits = static_cast<std::uint16_t>((u >> 16) | 0x40u);
    } else {
      u += 0x7fffu + ((u >> 16) & 1u);
      bits = static_cast<std::uint16_t>(u >> 16);
    }
  }
  RHYTHM_HOST_DEVICE explicit operator float() const { return detail::bits_as<float>(std::uint32_t(bits) << 16); }
};

/// IEEE binary16 (1 sign, 5 exponent, 10 mantissa bits).
struct half {
  std::uint16_t bits = 0;
  half() = default;
  /// Round to nearest even, overflow to Inf, subnormals kept; NaN stays NaN.
  RHYTHM_HOST_DEVICE explicit half(float f) {
    const std::uint32_t u = detail::bits_as<std::uint32_t>(f);
    const std::uint32_t sign = (u >> 16) & 0x8000u;
    const std::uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) {
      bits = static_cast<std::uint16_t>(sign | 0x7e00u);
    } else if (a >= 0x477ff000u) {  // rounds to >= 65520: Inf
      bits = static_cast<std::uint16_t>(sign | 0x7c00u);
    } else if (a < 0x38800000u) {  // below 2^-14: subnormal half (or zero)
      const float mag = detail::bits_as<float>(a) * 16777216.0f;  // scale by 2^24: units of 2^-24
      // nearest-even integer via the float adder (exact: mag < 2^10)
      const float r = (mag + 8388608.0f) - 8388608.0f;
      bits = static_cast<std::uint16_t>(sign | static_cast<std::uint32_t>(r));
    } else {
      std::uint32_t m = a + 0xfffu + ((a >> 13) & 1u);  // round mantissa to 10 bits, nearest even
      m -= 0x38000000u;                                  // rebias exponent 127 -> 15
      bits = static_cast<std::uint16_t>(sign | (m >> 13));
    }
  }
  RHYTHM_HOST_DEVICE explicit operator float() const {
    const std::uint32_t sign = std::uint32_t(bits & 0x8000u) << 16;
    const std::uint32_t e = (bits >> 10) & 0x1fu;
    const std::uint32_t m = bits & 0x3ffu;
    if (e == 0) {  // zero or subnormal: m * 2^-24
      const float v = static_cast<float>(m) * 5.9604644775390625e-8f;
      return detail::bits_as<float>(detail::bits_as<std::uint32_t>(v) | sign);
    }
    if (e == 31) return detail::bits_as<float>(sign | 0x7f800000u | (m << 13));
    return detail::bits_as<float>(sign | ((e + 112u) << 23) | (m << 13));
  }
};

/// Element types the signal primitives read: float, bfloat16, half.
template <class T>
concept input_element = std::is_same_v<T, float> || std::is_same_v<T, bfloat16> || std::is_same_v<T, half>;

/// Widens an input element to float.
template <input_element T>
RHYTHM_HOST_DEVICE inline float to_float(T x) {
  return static_cast<float>(x);
}

template <input_element T>
constexpr const char* dtype_name() {
  if constexpr (std::is_same_v<T, float>) return "float32";
  else if constexpr (std::is_same_v<T, bfloat16>) return "bfloat16";
  else return "float16";
}

}  // namespace rhythm
