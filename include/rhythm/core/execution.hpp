#pragma once
/// Execution policies: the first argument of every primitive chooses its backend by type.
///
///   rhythm::exec::seq{}          one thread, in the calling thread
///   rhythm::exec::par{threads}   a fork-join over `threads` std::threads (0: all hardware threads)
///   rhythm::exec::cuda{stream}   declared in <rhythm/cuda.cuh> only
#include <type_traits>

#include "memory_space.hpp"

namespace rhythm::exec {

/// Sequential execution in the calling thread.
struct seq {};

/// Parallel execution on the host; `threads == 0` means std::thread::hardware_concurrency().
struct par {
  int threads = 0;
};

}  // namespace rhythm::exec

namespace rhythm {

/// The memory space a policy's backend reads. Specialised by each backend header.
template <class Policy>
struct policy_traits;  // undefined for policies whose backend header is not included

template <>
struct policy_traits<exec::seq> {
  using memory_space = host_space;
};
template <>
struct policy_traits<exec::par> {
  using memory_space = host_space;
};

namespace detail {
template <class P, class = void>
inline constexpr bool has_policy_traits = false;
template <class P>
inline constexpr bool has_policy_traits<P, std::void_t<typename policy_traits<P>::memory_space>> = true;

template <class>
inline constexpr bool always_false = false;

/// Compile-time checks shared by every primitive: the policy's backend is available and every
/// tensor lives in the memory space that backend reads.
template <class Policy, class... Tensors>
constexpr void check_policy() {
  static_assert(has_policy_traits<std::remove_cvref_t<Policy>>,
                "rhythm: unknown execution policy; use rhythm::exec::seq or rhythm::exec::par, or "
                "#include <rhythm/cuda.cuh> for rhythm::exec::cuda");
  if constexpr (has_policy_traits<std::remove_cvref_t<Policy>>) {
    using space = typename policy_traits<std::remove_cvref_t<Policy>>::memory_space;
    static_assert((std::is_same_v<memory_space_of<Tensors>, space> && ...),
                  "rhythm: a tensor's memory space does not match the execution policy: host policies "
                  "(exec::seq, exec::par) read host views only; for device views #include "
                  "<rhythm/cuda.cuh> and pass rhythm::exec::cuda{stream}");
  }
}
}  // namespace detail
}  // namespace rhythm
