#pragma once
/// The metadata checks every stage runs before it dispatches: they read extents, strides,
/// addresses and parameters, never an element, so they are the same for every backend and cost
/// nothing on a device. Each throws rhythm::error with the library's message format
///   rhythm: argument '<argument>': expected <expected>, got <given>
/// and builds that message only when the check fails.
///
///   expects(ok, code, argument, expected, given)   the general form; each of the three message
///                                                  parts is a string, a number or text(...)
///   check_extents(v, "waad", "[B, H, N]", B, H, N)  rank-checked extents
///   check_output(v, "gamma")                        no stride 0 over an extent > 1
///   check_disjoint(out, "gamma", inputs...)         no overlap with any input (address ranges)
///   check_share(q, "params.q")                      a share in (0, 1]
///   check_segments_shape(segments, B)               a rank-1 view of B rhythm::segment
#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>

#include "../error.hpp"
#include "segments.hpp"
#include "tensor.hpp"

namespace rhythm::detail {

/// Message parts kept by reference and concatenated only when a message is built.
template <class... Parts>
struct text_parts {
  std::tuple<const Parts&...> parts;
};
template <class... Parts>
text_parts<Parts...> text(const Parts&... parts) {
  return {{parts...}};
}

inline std::string to_text(const std::string& s) { return s; }
inline std::string to_text(std::string_view s) { return std::string(s); }
inline std::string to_text(const char* s) { return s; }
inline std::string to_text(bool b) { return b ? "true" : "false"; }
template <class T>
  requires(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>)
std::string to_text(T x) {
  return std::to_string(x);
}
template <class... Parts>
std::string to_text(const text_parts<Parts...>& t) {
  return std::apply([](const auto&... p) { return (std::string() + ... + to_text(p)); }, t.parts);
}
/// A tensor's extents, "[2, 3, 4]".
template <strided_tensor V>
struct shape_of {
  const V& v;
};
template <strided_tensor V>
std::string to_text(const shape_of<V>& s) {
  return shape_string(s.v);
}

/// Throws rhythm::error(code) unless `ok`; the message is built only then.
template <class Argument, class Expected, class Given>
void expects(bool ok, errc code, const Argument& argument, const Expected& expected, const Given& given) {
  if (ok) [[likely]]
    return;
  fail(code, to_text(argument), to_text(expected), to_text(given));
}

/// Throws errc::shape_mismatch unless v's extents are `want` ("[B, N] = [2, 7]" in the message).
template <strided_tensor V, std::integral... I>
void check_extents(const V& v, const char* name, const char* layout, I... want) {
  static_assert(sizeof...(I) == V::rank(), "rhythm: a tensor has the wrong rank for this argument");
  const std::int64_t w[] = {static_cast<std::int64_t>(want)...};
  bool ok = true;
  for (std::size_t r = 0; r < V::rank(); ++r) ok &= v.extent(r) == w[r];
  if (ok) [[likely]]
    return;
  std::string expected = std::string(layout) + " = [";
  for (std::size_t r = 0; r < V::rank(); ++r) expected += (r ? ", " : "") + std::to_string(w[r]);
  fail(errc::shape_mismatch, name, expected + "]", shape_string(v));
}

/// A writable output: no stride 0 over an extent > 1 (an element would be written twice). An empty
/// view (some extent 0) is never written, whatever its strides (a contiguous [B, H, 0] has stride 0).
template <strided_tensor V>
void check_output(const V& v, const char* name) {
  static_assert(!std::is_const_v<element_of<V>>, "rhythm: an output must be a writable (non-const) view");
  for (std::size_t r = 0; r < V::rank(); ++r)
    if (v.extent(r) == 0) return;
  for (std::size_t r = 0; r < V::rank(); ++r)
    expects(v.extent(r) <= 1 || v.stride(r) != 0, errc::bad_stride, name,
            "non-zero strides (an output element may not be written twice)", text("stride 0 on dimension ", r));
}

/// Throws errc::aliasing if `out` overlaps any of `others` (conservative: address ranges).
template <strided_tensor Out, strided_tensor... Others>
void check_disjoint(const Out& out, const char* name, const Others&... others) {
  expects(!(may_overlap(out, others) || ...), errc::aliasing, name, "memory disjoint from the inputs and other outputs",
          "overlapping memory");
}

/// `segments` holds one rhythm::segment per sequence of a batch of B (their ranges are values:
/// the backends check them).
template <strided_tensor S>
void check_segments_shape(const S& segments, std::int64_t B) {
  static_assert(S::rank() == 1 && std::is_same_v<typename S::value_type, segment>,
                "rhythm: segments must be a rank-1 view of rhythm::segment");
  expects(segments.extent(0) == B, errc::shape_mismatch, "segments", "one segment per sequence",
          text(segments.extent(0), " segments for a batch of ", B));
}

/// A share in (0, 1]: top-q's q, random's q.
inline void check_share(double q, std::string_view name) {
  expects(q > 0.0 && q <= 1.0, errc::bad_parameter, name, "a value in (0, 1]", q);
}

}  // namespace rhythm::detail
