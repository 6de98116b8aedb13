#pragma once
/// Bit operators for the library's flag enums (head_role, token_flag): `a | b`, `a & b`, `a |= b`,
/// and `any(x)` for "some bit set". An enum opts in by specialising enable_bit_operators.
#include <cstdint>
#include <type_traits>

#include "../config.hpp"

namespace rhythm {

template <class E>
inline constexpr bool enable_bit_operators = false;

template <class E>
concept bit_flags = std::is_enum_v<E> && enable_bit_operators<E>;

template <bit_flags E>
RHYTHM_HOST_DEVICE constexpr E operator|(E a, E b) noexcept {
  using U = std::underlying_type_t<E>;
  return static_cast<E>(static_cast<U>(static_cast<U>(a) | static_cast<U>(b)));
}
template <bit_flags E>
RHYTHM_HOST_DEVICE constexpr E operator&(E a, E b) noexcept {
  using U = std::underlying_type_t<E>;
  return static_cast<E>(static_cast<U>(static_cast<U>(a) & static_cast<U>(b)));
}
template <bit_flags E>
RHYTHM_HOST_DEVICE constexpr E& operator|=(E& a, E b) noexcept {
  return a = a | b;
}
/// True if any bit of `x` is set.
template <bit_flags E>
RHYTHM_HOST_DEVICE constexpr bool any(E x) noexcept {
  return static_cast<std::underlying_type_t<E>>(x) != 0;
}
/// The bits of `x` as their underlying integer.
template <bit_flags E>
RHYTHM_HOST_DEVICE constexpr std::underlying_type_t<E> bits(E x) noexcept {
  return static_cast<std::underlying_type_t<E>>(x);
}

}  // namespace rhythm
