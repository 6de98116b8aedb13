#pragma once
/// Value checks of the CPU backend: they read elements, so they live here and not in the stages.
/// Each returns the first error in item order as a rhythm::value_error (none if all is well);
/// the operation raises it before it writes anything.
#include <cmath>
#include <cstdint>

#include "../core/dtypes.hpp"
#include "../core/segments.hpp"
#include "../core/status.hpp"
#include "../core/tensor.hpp"

namespace rhythm::cpu {

using segments_view = view<const segment, 1>;

/// The first segment outside 0 <= begin <= response_begin <= end <= length.
inline value_error check_segments(const segments_view& segments, std::int64_t length) {
  for (std::int64_t b = 0; b < segments.extent(0); ++b) {
    const segment s = segments(b);
    if (!s.fits(length))
      return segment_error(b, s.begin, s.response_begin, s.end, length);
  }
  return {};
}

template <class T>
inline bool is_finite(T x) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) return std::isfinite(x);
  else return std::isfinite(to_float(x));
}

/// The first response position (b, t), in order, with read(b, s, t) and a non-finite v(b, t).
template <class T, class Read>
value_error first_non_finite_in_responses(const view<const T, 2>& v, const segments_view& segments,
                                          value_argument argument, value_scope scope, Read read) {
  for (std::int64_t b = 0; b < v.extent(0); ++b) {
    const segment s = segments(b);
    for (std::int64_t t = s.response_begin; t < s.end; ++t)
      if (read(b, s, t) && !is_finite(v(b, t)))
        return non_finite_error(argument, value_location::sequence_position, scope, b, t);
  }
  return {};
}

/// As above, reading every response position.
template <class T>
value_error first_non_finite_in_responses(const view<const T, 2>& v, const segments_view& segments,
                                          value_argument argument, value_scope scope = value_scope::response) {
  return first_non_finite_in_responses(v, segments, argument, scope, [](auto, const segment&, auto) { return true; });
}

/// The first non-finite element of a rank-1 view, located by index or by sequence.
template <class T>
value_error first_non_finite(const view<const T, 1>& v, value_argument argument, value_location where) {
  for (std::int64_t i = 0; i < v.extent(0); ++i)
    if (!is_finite(v(i))) return non_finite_error(argument, where, value_scope::all, i);
  return {};
}

/// Raises the first of several checks that failed, in the order given (each runs only if the
/// previous ones passed).
template <class... Checks>
void raise_first(Checks&&... checks) {
  value_error e;
  ((e ? void() : void(e = checks())), ...);
  raise(e);
}

}  // namespace rhythm::cpu
