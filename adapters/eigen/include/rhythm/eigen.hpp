#pragma once
/// rhythm::eigen: rhythm views of Eigen objects, so that Eigen matrices and tensors go straight into
/// rhythm's primitives (as inputs, and as outputs that rhythm writes into).
///
///   rhythm::eigen::view(x)         the view of x at its natural rank:
///                                  a vector at compile time (VectorXf, RowVectorXf, m.row(i), m.col(j),
///                                  a segment) -> rank 1; any other dense object -> rank 2 [rows, cols];
///                                  an Eigen::Tensor / TensorMap / TensorFixedSize of rank R -> rank R
///   rhythm::eigen::view<Rank>(x)   the same with the rank spelled out; dense objects also give
///                                  view<2>(vector) = [rows, cols] and view<1>(matrix) for a matrix
///                                  with one row or one column (checked at run time)
///
/// Both take an optional argument name, used in error messages ("maps", "q", ...).
///
/// Accepted dense objects (anything derived from Eigen::DenseBase with direct access to its
/// coefficients): Matrix and Array of any storage order, Map with Stride / InnerStride /
/// OuterStride, Ref, Block (of a matrix, map or another block), row(i) / col(j) / segment(...), and
/// transpose() of any of these. Extents are {rows, cols}; strides, in elements, are Eigen's
/// rowStride() and colStride(), so column-major, row-major, outer and inner strides and transposes
/// all come out right. Tensors (`#include <unsupported/Eigen/CXX11/Tensor>` is pulled in here):
/// extents are dimensions(); strides are {1, d0, d0*d1, ...} for the default ColMajor layout and
/// row-major strides for Eigen::RowMajor.
///
/// Element type: the view's element type is the Eigen scalar, const when the Eigen object is const
/// (a const reference, Map<const ...>, Ref<const ...>, a Block of a const matrix, ...): exactly when
/// Eigen's own data() returns a pointer to const. Eigen::bfloat16 and Eigen::half are viewed as
/// rhythm::bfloat16 and rhythm::half: both pairs are 16-bit types with the same IEEE bit layouts
/// (bfloat16: the upper half of a float32; half: binary16), checked by the static_asserts below,
/// and the memory is reinterpreted, never copied. Other scalars: any arithmetic type (float, double,
/// std::int64_t, std::uint8_t, ...).
///
/// Rejected at compile time, with a static_assert that says why: a type that is not an Eigen dense
/// object or tensor; an expression without direct access (a sum, product, lazy or cwise expression,
/// reverse(), a tensor op such as slice()/shuffle()): evaluate it (.eval(), or assign it to a Matrix
/// or Tensor) first; a temporary (rvalue) Matrix, Array, Tensor or TensorFixedSize, which owns its
/// elements, so the view would dangle (temporary Maps, Refs and Blocks are fine: they refer to
/// memory that outlives them); a scalar type other than the above; view<Rank> with a Rank other
/// than 1 or 2 for a dense object, or other than the tensor's rank for a tensor; a rank-0 tensor.
/// Rejected at run time (rhythm::error, message naming the argument): view<1> of a matrix with
/// more than one row and column (errc::shape_mismatch); a TensorRef of an expression that has no
/// storage of its own (errc::bad_stride).
///
/// Convenience: head_signals_from_maps / head_signals_from_qk take Eigen tensors and return the
/// per-head signals as Eigen objects (below). Everything else is reached through views, e.g.
///   Eigen::Matrix<std::uint8_t, Eigen::Dynamic, Eigen::Dynamic> roles(B, H);
///   rhythm::head_groups(policy, rhythm::eigen::view(r.span), rhythm::eigen::view(roles));
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <Eigen/Core>
#include <unsupported/Eigen/CXX11/Tensor>

#include <rhythm/rhythm.hpp>

namespace rhythm::eigen {

static_assert(sizeof(Eigen::bfloat16) == sizeof(::rhythm::bfloat16) &&
                  alignof(Eigen::bfloat16) == alignof(::rhythm::bfloat16) &&
                  std::is_trivially_copyable_v<Eigen::bfloat16> && std::is_standard_layout_v<Eigen::bfloat16>,
              "rhythm::eigen: Eigen::bfloat16 must be 16-bit storage like rhythm::bfloat16");
static_assert(sizeof(Eigen::half) == sizeof(::rhythm::half) && alignof(Eigen::half) == alignof(::rhythm::half) &&
                  std::is_trivially_copyable_v<Eigen::half> && std::is_standard_layout_v<Eigen::half>,
              "rhythm::eigen: Eigen::half must be 16-bit storage like rhythm::half");

namespace detail {

template <class>
inline constexpr bool always_false = false;

/// The rhythm element type of an Eigen scalar (cv kept).
template <class S>
struct element {
  using type = S;
};
template <>
struct element<Eigen::bfloat16> {
  using type = ::rhythm::bfloat16;
};
template <>
struct element<Eigen::half> {
  using type = ::rhythm::half;
};
template <class S>
struct element<const S> {
  using type = const typename element<S>::type;
};

template <class S>
inline constexpr bool supported_scalar = std::is_arithmetic_v<std::remove_cv_t<S>> ||
                                         std::is_same_v<std::remove_cv_t<S>, Eigen::bfloat16> ||
                                         std::is_same_v<std::remove_cv_t<S>, Eigen::half>;

// Base-class probes: the CRTP argument of a base may be a base class of X (VectorBlock is a Block).
template <class D>
std::true_type dense_probe(const Eigen::DenseBase<D>*);
std::false_type dense_probe(const void*);
template <class D>
std::true_type tensor_probe(const Eigen::TensorBase<D, Eigen::ReadOnlyAccessors>*);
std::false_type tensor_probe(const void*);
template <class D>
std::true_type plain_probe(const Eigen::PlainObjectBase<D>*);
std::false_type plain_probe(const void*);

template <class X>
inline constexpr bool is_dense = decltype(dense_probe(static_cast<X*>(nullptr)))::value;

template <class X>
inline constexpr bool is_tensor = decltype(tensor_probe(static_cast<X*>(nullptr)))::value;

/// Eigen types that own their elements (a temporary of one would leave the view dangling).
template <class X>
struct owns_elements : decltype(plain_probe(static_cast<X*>(nullptr))) {};
template <class S, int N, int O, class I>
struct owns_elements<Eigen::Tensor<S, N, O, I>> : std::true_type {};
template <class S, class D, int O, class I>
struct owns_elements<Eigen::TensorFixedSize<S, D, O, I>> : std::true_type {};

template <class X>
constexpr bool has_direct_access() {
  if constexpr (is_dense<X>) return (int(X::Flags) & Eigen::DirectAccessBit) != 0;
  else if constexpr (is_tensor<X>) return requires(X& x) { x.data(); x.dimensions(); };
  else return false;
}

template <class X>
constexpr void check_viewable() {
  static_assert(is_dense<X> || is_tensor<X>,
                "rhythm::eigen::view takes an Eigen Matrix, Array, Map, Ref, Block, Tensor, TensorMap or "
                "TensorFixedSize");
  static_assert(!(is_dense<X> || is_tensor<X>) || has_direct_access<X>(),
                "rhythm::eigen::view: this Eigen expression has no direct access to its coefficients (a sum, "
                "product, cwise or lazy expression, reverse(), a tensor op, ...); evaluate it first (.eval(), or "
                "assign it to a Matrix or Tensor) and view that");
}

inline std::string name_or(std::string_view name, const char* fallback) {
  return std::string(name.empty() ? std::string_view(fallback) : name);
}

template <std::size_t Rank, class X>
auto dense_view(X& x, std::string_view name) {
  using D = std::remove_cv_t<X>;
  using S = std::remove_pointer_t<decltype(x.data())>;
  static_assert(supported_scalar<S>,
                "rhythm::eigen::view: the scalar type must be arithmetic, Eigen::bfloat16 or Eigen::half");
  static_assert(Rank == 1 || Rank == 2,
                "rhythm::eigen::view<Rank>: dense Eigen objects give views of rank 1 (vectors) or 2; use an "
                "Eigen::Tensor or TensorMap for higher ranks");
  using T = typename element<S>::type;
  T* data = reinterpret_cast<T*>(x.data());
  if constexpr (Rank == 1) {
    if constexpr (!D::IsVectorAtCompileTime)
      if (x.rows() != 1 && x.cols() != 1)
        ::rhythm::detail::fail(errc::shape_mismatch, name_or(name, "matrix"),
                               "a vector (one row or one column) for a rank-1 view",
                               "a " + std::to_string(x.rows()) + " x " + std::to_string(x.cols()) + " matrix");
    const std::int64_t stride = x.cols() == 1 ? x.rowStride() : x.colStride();
    return ::rhythm::view<T, 1>(data, {static_cast<std::int64_t>(x.size())}, {stride});
  } else {
    return ::rhythm::view<T, 2>(data, {static_cast<std::int64_t>(x.rows()), static_cast<std::int64_t>(x.cols())},
                                {static_cast<std::int64_t>(x.rowStride()), static_cast<std::int64_t>(x.colStride())});
  }
}

template <std::size_t Rank, class X>
auto tensor_view(X& x, std::string_view name) {
  using D = std::remove_cv_t<X>;
  using S = std::remove_pointer_t<decltype(x.data())>;
  static_assert(supported_scalar<S>,
                "rhythm::eigen::view: the scalar type must be arithmetic, Eigen::bfloat16 or Eigen::half");
  static_assert(D::NumIndices >= 1, "rhythm::eigen::view: rank-0 tensors have no view");
  static_assert(std::size_t(D::NumIndices) == Rank, "rhythm::eigen::view<Rank>: Rank must equal the tensor's rank");
  using T = typename element<S>::type;
  std::array<std::int64_t, Rank> extents{}, strides{};
  const auto& dims = x.dimensions();
  std::int64_t size = 1;
  for (std::size_t r = 0; r < Rank; ++r) size *= extents[r] = static_cast<std::int64_t>(dims[r]);
  std::int64_t s = 1;
  if constexpr (int(D::Layout) == int(Eigen::RowMajor)) {
    for (std::size_t r = Rank; r-- > 0;) strides[r] = s, s *= extents[r];
  } else {
    for (std::size_t r = 0; r < Rank; ++r) strides[r] = s, s *= extents[r];
  }
  if (size != 0 && x.data() == nullptr)
    ::rhythm::detail::fail(errc::bad_stride, name_or(name, "tensor"),
                           "a tensor with storage (Tensor, TensorMap, TensorFixedSize)",
                           "an expression without direct access to its coefficients");
  return ::rhythm::view<T, Rank>(reinterpret_cast<T*>(x.data()), extents, strides);
}

template <class X>
constexpr std::size_t natural_rank() {
  if constexpr (!has_direct_access<X>()) return 0;  // not viewable: view() raises check_viewable's message
  else if constexpr (is_dense<X>) return X::IsVectorAtCompileTime ? 1 : 2;
  else return std::size_t(X::NumIndices);
}

}  // namespace detail

/// True if rhythm::eigen::view accepts an lvalue of X (an Eigen dense object with direct access, or
/// a tensor with storage). A false value is the static_assert that view would raise.
template <class X>
inline constexpr bool viewable = detail::has_direct_access<std::remove_cvref_t<X>>();

/// A rhythm::view<T, Rank> of x (see the top of this file). `name` names x in error messages.
template <std::size_t Rank, class E>
auto view(E&& x, std::string_view name = {}) {
  using X = std::remove_reference_t<E>;
  using D = std::remove_cv_t<X>;
  detail::check_viewable<D>();
  static_assert(std::is_lvalue_reference_v<E> || !detail::owns_elements<D>::value,
                "rhythm::eigen::view: the argument is a temporary Matrix, Array or Tensor that owns its elements; "
                "the view would dangle. Keep the object in a variable and view that");
  if constexpr (!detail::has_direct_access<D>()) return ::rhythm::view<const float, Rank>{};  // check_viewable failed
  else if constexpr (detail::is_dense<D>) return detail::dense_view<Rank>(static_cast<X&>(x), name);
  else return detail::tensor_view<Rank>(static_cast<X&>(x), name);
}

/// view<Rank>(x) at x's natural rank: 1 for compile-time vectors, 2 for other dense objects, the
/// rank of a tensor.
template <class E>
auto view(E&& x, std::string_view name = {}) {
  constexpr std::size_t rank = detail::natural_rank<std::remove_cvref_t<E>>();
  if constexpr (rank == 0) {
    detail::check_viewable<std::remove_cvref_t<E>>();
    return ::rhythm::view<const float, 1>{};  // unreachable: check_viewable has failed
  } else {
    return view<rank>(std::forward<E>(x), name);
  }
}

/// Per-head signals as Eigen objects: what rhythm::head_signals_from_* writes.
struct head_signals {
  Eigen::MatrixXf span;                                ///< [B, H] head span d_h (Eq. 7)
  Eigen::Tensor<float, 3, Eigen::RowMajor> waad, fai;  ///< [B, H, N] per-head WAAD (Eq. 9) and FAI (Eq. 10)
};

/// rhythm::head_signals_from_maps on an Eigen tensor of maps [B, H, N, N] (Tensor, TensorMap or
/// TensorFixedSize of rank 4, either layout; float, Eigen::bfloat16 or Eigen::half), returning the
/// results in Eigen objects. Errors as rhythm::head_signals_from_maps (argument 'maps', ...).
template <class Policy, class Maps>
head_signals head_signals_from_maps(Policy policy, const Maps& maps, std::span<const segment> segments,
                                    const signal_params& params = {}) {
  const auto m = view<4>(maps, "maps");
  const Eigen::Index B = m.extent(0), H = m.extent(1), N = m.extent(2);
  head_signals r{Eigen::MatrixXf(B, H), Eigen::Tensor<float, 3, Eigen::RowMajor>(B, H, N),
                 Eigen::Tensor<float, 3, Eigen::RowMajor>(B, H, N)};
  ::rhythm::head_signals_from_maps(policy, m, ::rhythm::make_view(segments), view(r.span), view(r.waad), view(r.fai),
                                   params);
  return r;
}

/// rhythm::head_signals_from_qk on Eigen tensors q [B, Hq, N, d] and k [B, Hkv, N, d] (rank 4, either
/// layout, the same scalar: float, Eigen::bfloat16 or Eigen::half), returning Eigen objects.
template <class Policy, class Q, class K>
head_signals head_signals_from_qk(Policy policy, const Q& q, const K& k, std::span<const segment> segments,
                                  const signal_params& params = {}) {
  const auto qv = view<4>(q, "q");
  const auto kv = view<4>(k, "k");
  const Eigen::Index B = qv.extent(0), H = qv.extent(1), N = qv.extent(2);
  head_signals r{Eigen::MatrixXf(B, H), Eigen::Tensor<float, 3, Eigen::RowMajor>(B, H, N),
                 Eigen::Tensor<float, 3, Eigen::RowMajor>(B, H, N)};
  ::rhythm::head_signals_from_qk(policy, qv, kv, ::rhythm::make_view(segments), view(r.span), view(r.waad),
                                 view(r.fai), params);
  return r;
}

}  // namespace rhythm::eigen
