#pragma once
/// Execution policies and the backend seam: the first argument of every primitive chooses its
/// backend by type, as Thrust's and Kokkos' execution spaces do.
///
///   rhythm::exec::seq{}          one thread, in the calling thread                 (CPU backend, cpu/)
///   rhythm::exec::par{threads}   a fork-join over `threads` std::threads (0: all)  (CPU backend, cpu/)
///   rhythm::exec::cuda{...}      declared in <rhythm/cuda.cuh> only                (CUDA backend, cuda/)
///
/// `rhythm::backend<Policy>` is the customisation point: each backend specialises it for its
/// policies with a `memory_space` member type and one static member function per operation,
/// taking the policy and a flat, trivially copyable arguments struct (core/*_types.hpp). A public
/// stage header validates the metadata (extents, strides, parameters, overlap), builds that struct
/// and makes one call, `backend<Policy>::operation(policy, args)`; the loops live in the backend.
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

/// The backend of an execution policy; specialised by each backend header (cpu/backend.hpp for
/// exec::seq and exec::par, cuda/ for exec::cuda). Undefined for any other type.
template <class Policy>
struct backend;

namespace detail {
template <class P, class = void>
inline constexpr bool has_backend = false;
template <class P>
inline constexpr bool has_backend<P, std::void_t<typename backend<P>::memory_space>> = true;

/// Compile-time checks shared by every primitive: the policy's backend is available and every
/// tensor lives in the memory space that backend reads. Returns whether both hold, so that
/// callers can skip the body (and the follow-up errors) when they do not.
template <class Policy, class... Tensors>
constexpr bool check_policy() {
  using P = std::remove_cvref_t<Policy>;
  static_assert(has_backend<P>,
                "rhythm: unknown execution policy; use rhythm::exec::seq or rhythm::exec::par, or "
                "#include <rhythm/cuda.cuh> for rhythm::exec::cuda");
  if constexpr (has_backend<P>) {
    constexpr bool same_space = (std::is_same_v<memory_space_of<Tensors>, typename backend<P>::memory_space> && ...);
    static_assert(same_space,
                  "rhythm: a tensor's memory space does not match the execution policy: host policies "
                  "(exec::seq, exec::par) read host views only; for device views #include "
                  "<rhythm/cuda.cuh> and pass rhythm::exec::cuda{stream}");
    return same_space;
  } else {
    return false;
  }
}
}  // namespace detail
}  // namespace rhythm
