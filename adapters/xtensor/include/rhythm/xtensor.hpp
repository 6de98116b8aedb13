#pragma once
/// rhythm::xt: rhythm views of xtensor containers and strided views, and .npy files through
/// xtensor's own npy support (for the analysis tool).
///
/// Note: inside namespace rhythm, `xt` names this adapter; xtensor itself is `::xt`. Code that says
/// `using namespace rhythm;` must spell xtensor's names `::xt::...`.
///
///   rhythm::xt::view(e)         the view of e at its compile-time rank: xt::xtensor<T, N>,
///                               xt::xtensor_fixed<T, xt::xshape<...>>, xt::xtensor_adaptor, and
///                               xt::view / xt::strided_view / xt::transpose results of those whose rank
///                               is fixed at compile time
///   rhythm::xt::view<Rank>(e)   any of the above, and dynamic-rank ones (xt::xarray, xt::xarray_adaptor,
///                               views and transposes of them): the rank is checked at run time
///
/// Both take an optional argument name for error messages ("maps", "q", ...). The view points at
/// e.data() + e.data_offset(); extents are e.shape(), strides e.strides() (elements, signed, so
/// negative steps and transposes work). xtensor gives stride 0 to dimensions of extent 1; the
/// view gives them the row-major stride instead (1 for the last dimension, else stride * extent of
/// the next), so a contiguous row-major array has exactly rhythm::make_view's strides and an output
/// with an extent-1 dimension passes rhythm's "no stride 0 on an output" check either way.
///
/// Element type: value_type, const when e is const (a const reference, a view of a const array):
/// exactly when e.data() returns a pointer to const. Value types: any arithmetic type,
/// rhythm::bfloat16 and rhythm::half (xtensor has no 16-bit float of its own).
///
/// Rejected at compile time (static_assert saying why): an expression without strided memory (an
/// arithmetic expression, xt::broadcast, a view with xt::keep / xt::drop / index slices, a functor
/// view): evaluate it (xt::eval, or assign it to an xt::xarray) first; a temporary (rvalue)
/// xt::xarray, xt::xtensor or xt::xtensor_fixed, which owns its elements (the view would dangle;
/// temporary views of an lvalue are fine); view<Rank> whose Rank differs from a compile-time rank;
/// Rank 0; other value types. Rejected at run time (rhythm::error, errc::shape_mismatch, message
/// naming the argument): view<Rank> of a dynamic-rank expression of another rank.
///
/// Files (rhythm::error with errc::bad_parameter naming argument 'path', translating xtensor's
/// std::runtime_error): load_npy<T>(path) -> xt::xarray<T> (row-major; Fortran-order files are
/// reordered); rejects a file that cannot be opened, is not a .npy file, is truncated, or whose dtype
/// is not exactly T's (no conversion: '<f8' is not read as float). save_npy(path, e) writes any
/// xtensor expression or host rhythm view; rejects a path that cannot be written. T and the saved
/// value type must be arithmetic types numpy knows (float, double, std::int64_t, std::uint8_t, ...).
#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

// GCC 12 reports a false -Wmaybe-uninitialized inside libstdc++'s <regex> (which xnpy.hpp uses) when
// building with -fsanitize; the definitions take the diagnostic state of the place they are read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <regex>
#include <xtensor/xarray.hpp>
#include <xtensor/xfixed.hpp>
#include <xtensor/xnpy.hpp>
#include <xtensor/xtensor.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include <rhythm/rhythm.hpp>

namespace rhythm::xt {
namespace detail {

template <class>
inline constexpr bool always_false = false;

/// An xtensor expression with strided memory: data(), data_offset(), strides(), shape().
template <class X>
concept strided_memory = requires(X& x) {
  x.data();
  x.data_offset();
  x.strides();
  x.shape();
  x.dimension();
};

/// The compile-time rank of an expression, or -1 when it is dynamic.
template <class X>
constexpr std::ptrdiff_t static_rank() {
  if constexpr (requires { typename X::shape_type; }) return ::xt::static_dimension<typename X::shape_type>::value;
  else return -1;
}

/// xtensor types that own their elements (a temporary of one would leave the view dangling).
template <class X>
struct owns_elements : std::false_type {};
template <class EC, ::xt::layout_type L, class SC, class Tag>
struct owns_elements<::xt::xarray_container<EC, L, SC, Tag>> : std::true_type {};
template <class EC, std::size_t N, ::xt::layout_type L, class Tag>
struct owns_elements<::xt::xtensor_container<EC, N, L, Tag>> : std::true_type {};
template <class ET, class S, ::xt::layout_type L, bool SH, class Tag>
struct owns_elements<::xt::xfixed_container<ET, S, L, SH, Tag>> : std::true_type {};

template <class T>
inline constexpr bool supported_value = std::is_arithmetic_v<T> || std::is_same_v<T, ::rhythm::bfloat16> ||
                                        std::is_same_v<T, ::rhythm::half>;

inline std::string name_or(std::string_view name, const char* fallback) {
  return std::string(name.empty() ? std::string_view(fallback) : name);
}

template <class X>
std::string shape_of(const X& x) {
  std::string s = "[";
  for (std::size_t r = 0; r < x.dimension(); ++r) s += (r ? ", " : "") + std::to_string(x.shape()[r]);
  return s + "]";
}

template <std::size_t Rank, class X>
auto make(X& x, std::string_view name) {
  using D = std::remove_cv_t<X>;
  static_assert(strided_memory<X>,
                "rhythm::xt::view: this xtensor expression has no strided memory (an arithmetic expression, "
                "broadcast, a view with keep/drop/index slices, a functor view, ...); evaluate it first "
                "(xt::eval, or assign it to an xt::xarray) and view that");
  if constexpr (strided_memory<X>) {
    using T = std::remove_pointer_t<decltype(x.data())>;
    static_assert(std::is_same_v<std::remove_cv_t<T>, typename D::value_type>,
                  "rhythm::xt::view: data() must point at the expression's value_type");
    static_assert(supported_value<std::remove_cv_t<T>>,
                  "rhythm::xt::view: the value type must be arithmetic, rhythm::bfloat16 or rhythm::half");
    static_assert(Rank >= 1, "rhythm::xt::view: rank-0 expressions have no view");
    constexpr std::ptrdiff_t fixed = static_rank<D>();
    static_assert(fixed < 0 || std::size_t(fixed) == Rank,
                  "rhythm::xt::view<Rank>: Rank must equal the expression's compile-time rank");
    if constexpr (fixed < 0)
      if (x.dimension() != Rank)
        ::rhythm::detail::fail(errc::shape_mismatch, name_or(name, "array"), "rank " + std::to_string(Rank),
                               "rank " + std::to_string(x.dimension()) + " (shape " + shape_of(x) + ")");
    std::array<std::int64_t, Rank> extents{}, strides{};
    const auto& shape = x.shape();
    const auto& xs = x.strides();
    for (std::size_t r = 0; r < Rank; ++r) {
      extents[r] = static_cast<std::int64_t>(shape[r]);
      strides[r] = static_cast<std::int64_t>(xs[r]);
    }
    for (std::size_t r = Rank; r-- > 0;)  // xtensor's stride 0 on extent-1 dimensions -> the row-major stride
      if (extents[r] == 1) strides[r] = r + 1 == Rank ? 1 : strides[r + 1] * std::max<std::int64_t>(extents[r + 1], 1);
    return ::rhythm::view<T, Rank>(x.data() + x.data_offset(), extents, strides);
  } else {
    return ::rhythm::view<const float, Rank>{};  // unreachable: the static_assert has failed
  }
}

/// numpy's typestring of T ('<f4', '|u1', ...), as xtensor writes it.
template <class T>
std::string npy_typestring() {
  static_assert(std::is_arithmetic_v<T>,
                "rhythm::xt: .npy files hold arithmetic types (float, double, std::int64_t, std::uint8_t, ...)");
  const char order = sizeof(T) == 1 ? '|' : (std::endian::native == std::endian::little ? '<' : '>');
  const char kind = std::is_same_v<T, bool> ? 'b' : std::is_floating_point_v<T> ? 'f' : std::is_signed_v<T> ? 'i' : 'u';
  return std::string{order, kind} + std::to_string(sizeof(T));
}

/// "'<f4' (float32)" for messages.
inline std::string describe_typestring(const std::string& t) {
  std::string name;
  if (t.size() >= 3) {
    const std::string bits = std::to_string(8 * std::atoi(t.c_str() + 2));
    switch (t[1]) {
      case 'f': name = "float" + bits; break;
      case 'i': name = "int" + bits; break;
      case 'u': name = "uint" + bits; break;
      case 'b': name = "bool"; break;
      case 'c': name = "complex" + bits; break;
      default: break;
    }
  }
  return "'" + t + "'" + (name.empty() ? "" : " (" + name + ")");
}

}  // namespace detail

/// True if rhythm::xt::view accepts an lvalue of X (an xtensor expression with strided memory).
template <class X>
inline constexpr bool viewable = detail::strided_memory<std::remove_cvref_t<X>>;

/// A rhythm::view<T, Rank> of e (see the top of this file). `name` names e in error messages.
template <std::size_t Rank, class E>
auto view(E&& e, std::string_view name = {}) {
  using X = std::remove_reference_t<E>;
  static_assert(std::is_lvalue_reference_v<E> || !detail::owns_elements<std::remove_cv_t<X>>::value,
                "rhythm::xt::view: the argument is a temporary xt::xarray, xt::xtensor or xt::xtensor_fixed that "
                "owns its elements; the view would dangle. Keep the array in a variable and view that");
  return detail::make<Rank>(static_cast<X&>(e), name);
}

/// view<Rank>(e) at e's compile-time rank (xt::xtensor<T, N>, xt::xtensor_fixed and their views).
template <class E>
auto view(E&& e, std::string_view name = {}) {
  constexpr std::ptrdiff_t rank = detail::static_rank<std::remove_cvref_t<E>>();
  if constexpr (!detail::strided_memory<std::remove_reference_t<E>>) {
    return detail::make<1>(e, name);  // raises make's "no strided memory" static_assert
  } else if constexpr (rank < 1) {
    static_assert(detail::always_false<E>,
                  "rhythm::xt::view: this expression's rank is not fixed at compile time (xt::xarray, or a view of "
                  "one); say it: rhythm::xt::view<Rank>(e), checked at run time");
    return ::rhythm::view<const float, 1>{};
  } else {
    return view<std::size_t(rank)>(std::forward<E>(e), name);
  }
}

/// Reads a .npy file holding exactly T elements into a row-major xt::xarray<T>.
template <class T>
::xt::xarray<T> load_npy(const std::string& path) {
  const std::string want = detail::npy_typestring<T>();
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const std::error_code ec(errno, std::generic_category());
    ::rhythm::detail::fail(errc::bad_parameter, "path", "a readable .npy file",
                           "'" + path + "' (cannot open: " + ec.message() + ")");
  }
  std::string problem;  // xtensor's complaint, translated below (rhythm::error is thrown outside the catch)
  ::xt::xarray<T> result;
  try {
    result = ::xt::load_npy<T>(in);
  } catch (const std::runtime_error& e) {
    problem = e.what();
  }
  if (problem.empty()) {
    if (in) return result;
    ::rhythm::detail::fail(errc::bad_parameter, "path", "a complete .npy file",
                           "'" + path + "' (truncated: fewer data bytes than its header declares)");
  }
  const std::string marker = "formats not matching ";
  if (const auto at = problem.find(marker); at != std::string::npos) {
    const auto from = at + marker.size();
    const std::string got = problem.substr(from, problem.find(' ', from) - from);
    ::rhythm::detail::fail(errc::bad_parameter, "path", "a .npy file of dtype " + detail::describe_typestring(want),
                           "dtype " + detail::describe_typestring(got) + " in '" + path + "'");
  }
  ::rhythm::detail::fail(errc::bad_parameter, "path", "a .npy file", "'" + path + "' (xtensor: " + problem + ")");
}

/// Writes an xtensor expression (evaluated first) to a .npy file; Fortran order for column-major arrays.
template <class E>
void save_npy(const std::string& path, const ::xt::xexpression<E>& e) {
  using T = typename E::value_type;
  (void)detail::npy_typestring<T>();  // the arithmetic-type check
  std::string problem;
  try {
    ::xt::dump_npy(path, e);
  } catch (const std::runtime_error& ex) {
    problem = ex.what();
  }
  if (!problem.empty())
    ::rhythm::detail::fail(errc::bad_parameter, "path", "a writable file path",
                           "'" + path + "' (xtensor: " + problem + ")");
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(path, ec);
  const auto data_bytes = static_cast<std::uintmax_t>(e.derived_cast().size()) * sizeof(T);
  ::rhythm::detail::expects(!ec && bytes > data_bytes, errc::bad_parameter, "path", "a writable file path",
                            ::rhythm::detail::text("'", path, "' (the file is incomplete after writing; is the disk full?)"));
}

/// Writes a host rhythm view (e.g. signals computed into a std::vector) to a row-major .npy file.
template <strided_tensor V>
  requires(is_host_accessible_v<V>)
void save_npy(const std::string& path, const V& v) {
  using T = typename V::value_type;
  std::vector<std::size_t> shape(V::rank());
  for (std::size_t r = 0; r < V::rank(); ++r) shape[r] = static_cast<std::size_t>(v.extent(r));
  ::xt::xarray<T> a = ::xt::xarray<T>::from_shape(shape);
  std::vector<std::int64_t> index(V::rank(), 0);
  for (std::size_t i = 0; i < a.size(); ++i) {  // row-major walk over v
    std::int64_t off = 0;
    for (std::size_t r = 0; r < V::rank(); ++r) off += index[r] * v.stride(r);
    a.data()[i] = v.data_handle()[off];
    for (std::size_t r = V::rank(); r-- > 0;) {
      if (++index[r] < v.extent(r)) break;
      index[r] = 0;
    }
  }
  save_npy(path, a);
}

/// Segments from an integer array [B, 3] of {begin, response_begin, end} rows (e.g. a loaded .npy).
/// Rejects another rank or a last extent other than 3 (errc::shape_mismatch); the segments
/// themselves are checked by the primitive that reads them.
template <class E>
std::vector<segment> to_segments(const E& e, std::string_view name = "segments") {
  static_assert(std::is_integral_v<typename E::value_type>, "rhythm::xt::to_segments: segments must be integers");
  const auto v = [&] {
    if constexpr (detail::static_rank<E>() < 0) return view<2>(e, name);
    else return view(e, name);
  }();
  static_assert(decltype(v)::rank() == 2, "rhythm::xt::to_segments: segments must be [B, 3]");
  if (v.extent(1) != 3)
    ::rhythm::detail::fail(errc::shape_mismatch, std::string(name), "[B, 3] rows of {begin, response_begin, end}",
                           ::rhythm::detail::shape_string(v));
  std::vector<segment> out(static_cast<std::size_t>(v.extent(0)));
  for (std::int64_t b = 0; b < v.extent(0); ++b)
    out[b] = {std::int64_t(v(b, 0)), std::int64_t(v(b, 1)), std::int64_t(v(b, 2))};
  return out;
}

/// Per-head signals as xtensor containers: what rhythm::head_signals_from_* writes.
struct head_signals {
  ::xt::xtensor<float, 2> span;      ///< [B, H] head span d_h (Eq. 7)
  ::xt::xtensor<float, 3> waad, fai;  ///< [B, H, N] per-head WAAD (Eq. 9) and FAI (Eq. 10)
};

namespace detail {
template <class E>
auto view4(const E& e, std::string_view name) {
  if constexpr (static_rank<E>() < 0) return ::rhythm::xt::view<4>(e, name);
  else return ::rhythm::xt::view(e, name);
}
inline head_signals allocate_head_signals(std::int64_t B, std::int64_t H, std::int64_t N) {
  const auto b = static_cast<std::size_t>(B), h = static_cast<std::size_t>(H), n = static_cast<std::size_t>(N);
  return {::xt::xtensor<float, 2>(std::array<std::size_t, 2>{b, h}),
          ::xt::xtensor<float, 3>(std::array<std::size_t, 3>{b, h, n}),
          ::xt::xtensor<float, 3>(std::array<std::size_t, 3>{b, h, n})};
}
}  // namespace detail

/// rhythm::head_signals_from_maps on xtensor maps [B, H, N, N] (any expression view<4> accepts:
/// xarray, xtensor<T, 4>, strided views; float, rhythm::bfloat16 or rhythm::half), returning xtensors.
template <class Policy, class Maps>
head_signals head_signals_from_maps(Policy policy, const Maps& maps, std::span<const segment> segments,
                                    const signal_params& params = {}) {
  const auto m = detail::view4(maps, "maps");
  head_signals r = detail::allocate_head_signals(m.extent(0), m.extent(1), m.extent(2));
  ::rhythm::head_signals_from_maps(policy, m, ::rhythm::make_view(segments), view(r.span), view(r.waad), view(r.fai),
                                   params);
  return r;
}

/// rhythm::head_signals_from_qk on xtensor q [B, Hq, N, d] and k [B, Hkv, N, d], returning xtensors.
template <class Policy, class Q, class K>
head_signals head_signals_from_qk(Policy policy, const Q& q, const K& k, std::span<const segment> segments,
                                  const signal_params& params = {}) {
  const auto qv = detail::view4(q, "q");
  const auto kv = detail::view4(k, "k");
  head_signals r = detail::allocate_head_signals(qv.extent(0), qv.extent(1), qv.extent(2));
  ::rhythm::head_signals_from_qk(policy, qv, kv, ::rhythm::make_view(segments), view(r.span), view(r.waad),
                                 view(r.fai), params);
  return r;
}

}  // namespace rhythm::xt
