#pragma once
/// Memory spaces: where a view's elements live. Carried in a view's type so that passing device
/// memory to a host backend is a compile error, not a crash.
#include <type_traits>

namespace rhythm {

/// Ordinary host memory, readable by the CPU backends.
struct host_space {};
/// GPU global memory, readable only by the CUDA backend (<rhythm/cuda.cuh>).
struct device_space {};

namespace detail {
template <class T, class = void>
struct memory_space_of_impl {
  using type = host_space;  // types without a memory_space member (e.g. std::mdspan) are host
};
template <class T>
struct memory_space_of_impl<T, std::void_t<typename T::memory_space>> {
  using type = typename T::memory_space;
};
}  // namespace detail

/// The memory space of a tensor type: its `memory_space` member type, or host_space if it has none.
template <class T>
using memory_space_of = typename detail::memory_space_of_impl<std::remove_cvref_t<T>>::type;

template <class T>
inline constexpr bool is_host_accessible_v = std::is_same_v<memory_space_of<T>, host_space>;

}  // namespace rhythm
