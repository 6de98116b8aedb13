#pragma once
/// The one tensor concept of rhythm, and the library's own non-owning strided view.
///
/// `strided_tensor<V>` is mdspan-shaped: `value_type`, a static `rank()`, `extent(r)` and
/// `stride(r)` (in elements, signed 64-bit) and `data_handle()`. The memory space is the type's
/// `memory_space` member (host_space if absent). Every primitive is constrained on it, so
/// rhythm::view, a strided std::mdspan, an adapter's view or a user's own type all work.
#include <array>
#include <concepts>
#include <functional>
#include <utility>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "../error.hpp"
#include "memory_space.hpp"

namespace rhythm {

template <class V>
concept strided_tensor = requires(const V& v, std::size_t r) {
  typename V::value_type;
  { V::rank() } -> std::convertible_to<std::size_t>;
  { v.extent(r) } -> std::convertible_to<std::int64_t>;
  { v.stride(r) } -> std::convertible_to<std::int64_t>;
  { v.data_handle() };
};

/// A strided_tensor of the given rank.
template <class V, std::size_t Rank>
concept strided_tensor_of_rank = strided_tensor<V> && (V::rank() == Rank);

/// Element type of a tensor with its const-ness as seen through data_handle().
template <strided_tensor V>
using element_of = std::remove_pointer_t<decltype(std::declval<const V&>().data_handle())>;

/// Non-owning view of a strided array: `T* data`, `Rank` extents and strides in elements.
/// `T` may be const. Default strides are row-major contiguous. Cheap to copy; usable in kernels.
template <class T, std::size_t Rank, class Space = host_space>
class view {
 public:
  using value_type = std::remove_cv_t<T>;
  using element_type = T;
  using memory_space = Space;
  using index_type = std::int64_t;

  static constexpr std::size_t rank() noexcept { return Rank; }

  constexpr view() = default;

  /// Row-major contiguous view of `extents`.
  RHYTHM_HOST_DEVICE view(T* data, const std::array<index_type, Rank>& extents) : data_(data), extents_(extents) {
    index_type s = 1;
    for (std::size_t r = Rank; r-- > 0;) {
      strides_[r] = s;
      s *= extents_[r];
    }
  }

  RHYTHM_HOST_DEVICE view(T* data, const std::array<index_type, Rank>& extents,
                          const std::array<index_type, Rank>& strides)
      : data_(data), extents_(extents), strides_(strides) {}

  /// A view of non-const T converts to a view of const T.
  template <class U>
    requires(std::is_same_v<const U, T> && !std::is_same_v<U, T>)
  RHYTHM_HOST_DEVICE view(const view<U, Rank, Space>& other)
      : data_(other.data_handle()), extents_(other.extents()), strides_(other.strides()) {}

  RHYTHM_HOST_DEVICE T* data_handle() const noexcept { return data_; }
  RHYTHM_HOST_DEVICE index_type extent(std::size_t r) const noexcept { return extents_[r]; }
  RHYTHM_HOST_DEVICE index_type stride(std::size_t r) const noexcept { return strides_[r]; }
  RHYTHM_HOST_DEVICE const std::array<index_type, Rank>& extents() const noexcept { return extents_; }
  RHYTHM_HOST_DEVICE const std::array<index_type, Rank>& strides() const noexcept { return strides_; }

  /// Number of elements (product of extents).
  RHYTHM_HOST_DEVICE index_type size() const noexcept {
    index_type n = 1;
    for (auto e : extents_) n *= e;
    return n;
  }

  template <class... I>
    requires(sizeof...(I) == Rank && (std::is_integral_v<I> && ...))
  RHYTHM_HOST_DEVICE T& operator()(I... idx) const noexcept {
    const index_type i[] = {static_cast<index_type>(idx)...};
    index_type off = 0;
    for (std::size_t r = 0; r < Rank; ++r) off += i[r] * strides_[r];
    return data_[off];
  }

 private:
  T* data_ = nullptr;
  std::array<index_type, Rank> extents_{};
  std::array<index_type, Rank> strides_{};
};

/// Rank-1 host view over a contiguous range (std::vector, std::array, std::span).
template <class T, std::size_t E>
view<T, 1> make_view(std::span<T, E> s) {
  return view<T, 1>(s.data(), {static_cast<std::int64_t>(s.size())});
}
template <class T>
view<T, 1> make_view(std::vector<T>& v) {
  return make_view(std::span<T>(v));
}
template <class T>
view<const T, 1> make_view(const std::vector<T>& v) {
  return make_view(std::span<const T>(v));
}

/// Row-major host view of `extents` over a contiguous buffer; throws if the buffer is too small.
template <class T, std::size_t Rank>
view<T, Rank> make_view(std::span<T> buffer, const std::array<std::int64_t, Rank>& extents) {
  view<T, Rank> v(buffer.data(), extents);
  detail::require(static_cast<std::int64_t>(buffer.size()) >= v.size(), errc::shape_mismatch, "buffer",
                  "at least the product of the extents", std::to_string(buffer.size()) + " elements for " +
                                                             std::to_string(v.size()));
  return v;
}
template <class T, std::size_t Rank>
view<T, Rank> make_view(std::vector<T>& buffer, const std::array<std::int64_t, Rank>& extents) {
  return make_view(std::span<T>(buffer), extents);
}
template <class T, std::size_t Rank>
view<const T, Rank> make_view(const std::vector<T>& buffer, const std::array<std::int64_t, Rank>& extents) {
  return make_view(std::span<const T>(buffer), extents);
}

namespace detail {

/// "[2, 3, 4]": extents of a tensor, for messages.
template <strided_tensor V>
std::string shape_string(const V& v) {
  std::string s = "[";
  for (std::size_t r = 0; r < V::rank(); ++r) s += (r ? ", " : "") + std::to_string(v.extent(r));
  return s + "]";
}

/// The offset range [lo, hi] in elements that a tensor's elements span (hi inclusive); empty tensors give lo > hi.
template <strided_tensor V>
std::pair<std::int64_t, std::int64_t> offset_range(const V& v) {
  std::int64_t lo = 0, hi = 0;
  for (std::size_t r = 0; r < V::rank(); ++r) {
    if (v.extent(r) == 0) return {1, 0};
    const std::int64_t span = (static_cast<std::int64_t>(v.extent(r)) - 1) * static_cast<std::int64_t>(v.stride(r));
    (span < 0 ? lo : hi) += span;
  }
  return {lo, hi};
}

/// True if the byte ranges covered by two tensors intersect (a conservative aliasing test).
template <strided_tensor A, strided_tensor B>
bool may_overlap(const A& a, const B& b) {
  const auto [alo, ahi] = offset_range(a);
  const auto [blo, bhi] = offset_range(b);
  if (alo > ahi || blo > bhi) return false;
  using EA = element_of<A>;
  using EB = element_of<B>;
  const auto* a0 = reinterpret_cast<const unsigned char*>(a.data_handle());
  const auto* b0 = reinterpret_cast<const unsigned char*>(b.data_handle());
  const auto* a1 = a0 + (ahi + 1) * static_cast<std::int64_t>(sizeof(EA));
  const auto* b1 = b0 + (bhi + 1) * static_cast<std::int64_t>(sizeof(EB));
  a0 += alo * static_cast<std::int64_t>(sizeof(EA));
  b0 += blo * static_cast<std::int64_t>(sizeof(EB));
  return std::less<>{}(a0, b1) && std::less<>{}(b0, a1);
}

}  // namespace detail
}  // namespace rhythm
