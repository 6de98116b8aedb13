#pragma once
/// The one tensor concept of rhythm, and the library's own non-owning strided view.
///
/// `strided_tensor<V>` is mdspan-shaped: `value_type`, a static `rank()`, `extent(r)` and
/// `stride(r)` (in elements, signed 64-bit) and `data_handle()`. The memory space is the type's
/// `memory_space` member (host_space if absent). Every primitive is constrained on it, so
/// rhythm::view, a strided std::mdspan, an adapter's view or a user's own type all work. Each
/// primitive turns its arguments into rhythm::view (`as_view`) before handing them to a backend:
/// a view is trivially copyable, so it can travel to a CUDA kernel inside a params struct.
///
///   std::vector<float> maps(B * H * N * N);
///   auto m = rhythm::make_view(maps, B, H, N, N);        // view<float, 4>, row-major, size checked
///   auto q = rhythm::make_view(q_ptr, B, Hq, N, d);      // from a pointer, row-major
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
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

/// Element type of a tensor with its const-ness as seen through data_handle().
template <strided_tensor V>
using element_of = std::remove_pointer_t<decltype(std::declval<const V&>().data_handle())>;

/// Non-owning view of a strided array: `T* data`, `Rank` extents and strides in elements.
/// `T` may be const. Default strides are row-major contiguous. Trivially copyable; its element
/// access works in CUDA kernels (extents and strides are plain arrays, not std::array).
template <class T, std::size_t Rank, class Space = host_space>
class view {
  static_assert(Rank >= 1, "rhythm::view: rank must be at least 1");

 public:
  using value_type = std::remove_cv_t<T>;
  using element_type = T;
  using memory_space = Space;
  using index_type = std::int64_t;

  static constexpr std::size_t rank() noexcept { return Rank; }

  constexpr view() = default;

  /// Row-major contiguous view of `extents`.
  view(T* data, const std::array<index_type, Rank>& extents) : data_(data) {
    index_type s = 1;
    for (std::size_t r = Rank; r-- > 0;) {
      extents_[r] = extents[r];
      strides_[r] = s;
      s *= extents[r];
    }
  }

  view(T* data, const std::array<index_type, Rank>& extents, const std::array<index_type, Rank>& strides) : data_(data) {
    for (std::size_t r = 0; r < Rank; ++r) extents_[r] = extents[r], strides_[r] = strides[r];
  }

  /// A view of non-const T converts to a view of const T.
  template <class U>
    requires(std::is_same_v<const U, T> && !std::is_same_v<U, T>)
  RHYTHM_HOST_DEVICE view(const view<U, Rank, Space>& other) : data_(other.data_handle()) {
    for (std::size_t r = 0; r < Rank; ++r) extents_[r] = other.extent(r), strides_[r] = other.stride(r);
  }

  RHYTHM_HOST_DEVICE T* data_handle() const noexcept { return data_; }
  RHYTHM_HOST_DEVICE index_type extent(std::size_t r) const noexcept { return extents_[r]; }
  RHYTHM_HOST_DEVICE index_type stride(std::size_t r) const noexcept { return strides_[r]; }
  std::array<index_type, Rank> extents() const noexcept { return to_array(extents_); }
  std::array<index_type, Rank> strides() const noexcept { return to_array(strides_); }

  /// Number of elements (product of extents).
  RHYTHM_HOST_DEVICE index_type size() const noexcept {
    index_type n = 1;
    for (std::size_t r = 0; r < Rank; ++r) n *= extents_[r];
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
  static std::array<index_type, Rank> to_array(const index_type (&a)[Rank]) {
    std::array<index_type, Rank> out{};
    for (std::size_t r = 0; r < Rank; ++r) out[r] = a[r];
    return out;
  }

  T* data_ = nullptr;
  index_type extents_[Rank] = {};
  index_type strides_[Rank] = {};
};

/// The rhythm::view of any strided tensor (same element type, const-ness, rank and memory space).
template <strided_tensor V>
auto as_view(const V& v) {
  using E = element_of<V>;
  constexpr std::size_t R = V::rank();
  std::array<std::int64_t, R> extents{}, strides{};
  for (std::size_t r = 0; r < R; ++r) extents[r] = v.extent(r), strides[r] = v.stride(r);
  return view<E, R, memory_space_of<V>>(v.data_handle(), extents, strides);
}

/// As as_view, read-only.
template <strided_tensor V>
auto as_const_view(const V& v) {
  return view<const typename V::value_type, V::rank(), memory_space_of<V>>(as_view(v));
}

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
  if (static_cast<std::int64_t>(buffer.size()) < v.size())
    detail::fail(errc::shape_mismatch, "buffer", "at least the product of the extents",
                 std::to_string(buffer.size()) + " elements for " + std::to_string(v.size()));
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

/// make_view(buffer, B, H, N): the same with the extents as arguments (a std::vector is size-checked).
template <class T, std::integral... I>
  requires(sizeof...(I) >= 1)
view<T, sizeof...(I)> make_view(std::vector<T>& buffer, I... extents) {
  return make_view(std::span<T>(buffer), std::array<std::int64_t, sizeof...(I)>{static_cast<std::int64_t>(extents)...});
}
template <class T, std::integral... I>
  requires(sizeof...(I) >= 1)
view<const T, sizeof...(I)> make_view(const std::vector<T>& buffer, I... extents) {
  return make_view(std::span<const T>(buffer),
                   std::array<std::int64_t, sizeof...(I)>{static_cast<std::int64_t>(extents)...});
}

/// make_view(ptr, B, H, N): a row-major host view of a buffer the caller vouches for.
template <class T, std::integral... I>
  requires(sizeof...(I) >= 1)
view<T, sizeof...(I)> make_view(T* data, I... extents) {
  return view<T, sizeof...(I)>(data, {static_cast<std::int64_t>(extents)...});
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
