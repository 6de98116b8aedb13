#pragma once
/// The CUDA execution policy and what every CUDA operation shares: the workspace carver, the
/// error slot and the commit rule of the device error contract, launch checks.
///
/// Device error contract (core/status.hpp, DESIGN §1):
///   - metadata errors (extents, strides, parameters, overlap, a too small workspace) throw on the
///     host before any launch;
///   - value errors are found by the kernels. Each operation orders every check it makes by one
///     64-bit key (segments first, then each input in argument order, each in (sequence, head,
///     position) order, as the CPU backend checks them) and keeps the smallest failing key in an
///     8-byte slot of its workspace (atomicMin: the minimum is the same whatever the thread order);
///   - the operation's last kernel commits: if the slot holds a key, it decodes it into the
///     `value_error` the CPU backend would raise and stores it in `policy.status` (unless that holds
///     an earlier error already) and writes nothing; if the status holds an earlier error, it writes
///     nothing either; otherwise it copies the staged results to the outputs. So outputs stay
///     untouched on any error and the status keeps the first one, across a chain of operations;
///   - `cuda::throw_if_error(policy)` waits for the stream and throws the same rhythm::error (errc
///     and message) as the CPU backend. It is the one call in rhythm/cuda that synchronises: reading
///     a device result on the host needs that wait by definition.
/// No operation allocates, synchronises or copies through pageable memory; every launch goes to
/// `policy.stream`, so a whole chain can be captured in a CUDA graph.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "../core/checks.hpp"
#include "../core/dtypes.hpp"
#include "../core/execution.hpp"
#include "../core/status.hpp"
#include "../core/tensor.hpp"
#include "../error.hpp"

namespace rhythm::exec {

/// Execution on a CUDA stream (the CUDA backend, <rhythm/cuda.cuh>).
///
/// stream     the stream every kernel and copy of a call is queued on (nullptr: the legacy default)
/// workspace  caller-owned device bytes, 256-byte aligned, at least the operation's
///            `rhythm::cuda::*_workspace_size(...)`; reused freely by consecutive calls on one stream
/// status     device memory holding one rhythm::value_error, zeroed before the first call
///            (cuda::clear_status); each call records its first value error there
struct cuda {
  cudaStream_t stream = nullptr;
  view<std::byte, 1, device_space> workspace{};
  value_error* status = nullptr;
};

}  // namespace rhythm::exec

namespace rhythm::cuda {

/// The order key of a failed value check; `no_error` when none failed.
using error_key = unsigned long long;
inline constexpr error_key no_error = ~0ull;

/// Alignment of every piece carved from a workspace (and of the workspace itself).
inline constexpr std::size_t workspace_alignment = 256;

namespace detail {

using rhythm::detail::expects;
using rhythm::detail::is_finite_bits;
using rhythm::detail::text;

/// Throws a rhythm::error-like std::runtime_error for a failed CUDA runtime call.
inline void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("rhythm: CUDA error in ") + what + ": " + cudaGetErrorName(e) + ": " +
                             cudaGetErrorString(e));
}

/// `bytes` rounded up to the workspace alignment.
constexpr std::size_t align_up(std::size_t bytes) {
  return (bytes + workspace_alignment - 1) / workspace_alignment * workspace_alignment;
}

/// Hands out aligned pieces of a workspace in order. With a null base it only measures, so one
/// function both sizes (`*_workspace_size`) and carves (the operation) the same layout.
class workspace_carver {
 public:
  explicit workspace_carver(std::byte* base = nullptr) : base_(base) {}

  template <class T>
  T* take(std::int64_t count) {
    used_ = align_up(used_);
    T* p = base_ ? reinterpret_cast<T*>(base_ + used_) : nullptr;
    used_ += static_cast<std::size_t>(count > 0 ? count : 0) * sizeof(T);
    return p;
  }
  /// Bytes handed out so far (the workspace size when measuring).
  std::size_t used() const { return used_; }

 private:
  std::byte* base_;
  std::size_t used_ = 0;
};

/// Metadata checks of a CUDA policy for an operation that needs `needed` workspace bytes.
inline void check_cuda_policy(const exec::cuda& p, std::size_t needed, const char* size_function) {
  expects(p.status != nullptr, errc::bad_parameter, "policy.status",
          "device memory for one rhythm::value_error (zeroed by rhythm::cuda::clear_status)", "a null pointer");
  const auto bytes = static_cast<std::size_t>(p.workspace.extent(0));
  expects(bytes >= needed, errc::bad_parameter, "policy.workspace",
          text(">= ", needed, " bytes (rhythm::cuda::", size_function, ")"), text(bytes, " bytes"));
  expects(needed == 0 || (p.workspace.stride(0) == 1 &&
                          reinterpret_cast<std::uintptr_t>(p.workspace.data_handle()) % workspace_alignment == 0),
          errc::bad_parameter, "policy.workspace", text("contiguous bytes aligned to ", workspace_alignment),
          text("stride ", p.workspace.stride(0), " at address ",
               reinterpret_cast<std::uintptr_t>(p.workspace.data_handle())));
}

/// A carver over the policy's workspace.
inline workspace_carver carver_of(const exec::cuda& p) { return workspace_carver(p.workspace.data_handle()); }

/// The policy for a nested operation: the same stream and status, the workspace after `used` bytes.
inline exec::cuda after(const exec::cuda& p, std::size_t used) {
  used = align_up(used);
  const std::int64_t rest = p.workspace.extent(0) - static_cast<std::int64_t>(used);
  return {p.stream, view<std::byte, 1, device_space>(p.workspace.data_handle() + used, {rest > 0 ? rest : 0}),
          p.status};
}

/// Queues the reset of an error slot (no_error) on the stream.
inline void reset_slot(error_key* slot, cudaStream_t stream) {
  check_cuda(cudaMemsetAsync(slot, 0xff, sizeof(error_key), stream), "cudaMemsetAsync (error slot)");
}

/// Checks the launch just queued.
inline void check_launch(const char* kernel) { check_cuda(cudaGetLastError(), kernel); }

/// Blocks for a grid-stride loop over `n` items with `threads` per block (at least 1 block).
inline unsigned blocks_for(std::int64_t n, int threads = 256) {
  const std::int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 ? 65535 : b));
}

#if defined(__CUDACC__)
/// Records a failed check: the slot keeps the smallest key.
__device__ inline void report(error_key* slot, error_key key) { atomicMin(slot, key); }

/// The commit rule, for the last kernel of an operation: true if this call's checks failed (the
/// first block then records the decoded error in `status` unless it holds one) or an earlier call
/// failed. `decode(key)` returns the value_error of a key.
template <class Decode>
__device__ bool call_failed(const error_key* slot, value_error* status, Decode decode) {
  const error_key key = *slot;
  if (key != no_error) {
    const bool first_thread = blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0 && threadIdx.x == 0 &&
                              threadIdx.y == 0 && threadIdx.z == 0;
    if (first_thread && status->check == value_check::none) *status = decode(key);
    return true;
  }
  return status->check != value_check::none;
}

/// The global index of this thread and the grid's thread count, for grid-stride loops.
__device__ inline std::int64_t thread_index() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline std::int64_t thread_count() { return static_cast<std::int64_t>(gridDim.x) * blockDim.x; }
#endif

}  // namespace detail

/// Queues the zeroing of `policy.status` on its stream (no error recorded).
inline void clear_status(const exec::cuda& policy) {
  detail::expects(policy.status != nullptr, errc::bad_parameter, "policy.status", "a device pointer", "a null pointer");
  detail::check_cuda(cudaMemsetAsync(policy.status, 0, sizeof(value_error), policy.stream), "cudaMemsetAsync (status)");
}

/// Waits for `policy.stream` and throws the rhythm::error of the first value error recorded in
/// `policy.status` (the same errc and message as the CPU backend); returns if there is none.
/// The status keeps the error; clear_status starts afresh.
inline void throw_if_error(const exec::cuda& policy) {
  detail::expects(policy.status != nullptr, errc::bad_parameter, "policy.status", "a device pointer", "a null pointer");
  value_error e;
  detail::check_cuda(cudaMemcpyAsync(&e, policy.status, sizeof e, cudaMemcpyDeviceToHost, policy.stream),
                     "cudaMemcpyAsync (status)");
  detail::check_cuda(cudaStreamSynchronize(policy.stream), "cudaStreamSynchronize");
  raise(e);
}

}  // namespace rhythm::cuda
