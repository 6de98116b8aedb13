#pragma once
/// The device half of rhythm::torch: plain C++ declarations of the launchers that run rhythm's
/// CUDA backend for credit.hpp. Neither ATen nor a CUDA header is included here: the launchers are
/// defined and explicitly instantiated (element types float, rhythm::bfloat16, rhythm::half) in
/// adapters/libtorch/src/cuda_launch.cu, compiled by nvcc without ATen (LibTorch 1.13's headers
/// fail under nvcc in C++20), and the current-stream lookup in src/cuda_stream.cpp, compiled by
/// the host compiler with c10 only. Both make the static library rhythm_torch_cuda, built and
/// linked into rhythm::torch (with RHYTHM_TORCH_CUDA=1) when LibTorch has CUDA and rhythm's CUDA
/// backend is enabled.
///
/// Every launcher queues its work on `device_policy::stream` and returns without waiting (except
/// throw_if_error); pointers are device memory of the current CUDA device, whose stream it is.
/// Metadata errors throw rhythm::error before anything is queued; value errors are recorded in
/// `device_policy::status` (rhythm/cuda/runtime.cuh) and thrown by throw_if_error.
#include <cstddef>
#include <cstdint>

#include <rhythm/core/segments.hpp>
#include <rhythm/core/status.hpp>
#include <rhythm/core/tensor.hpp>
#include <rhythm/credit/policies.hpp>
#include <rhythm/pipeline.hpp>

namespace rhythm::torch::cuda_launch {

// The templates below are defined in src/cuda_launch.cu only, explicitly instantiated there for
// E = float, rhythm::bfloat16 and rhythm::half; other element types do not link.

template <class T, std::size_t Rank>
using device_view = ::rhythm::view<T, Rank, ::rhythm::device_space>;

/// Where a launch runs (the fields of rhythm::exec::cuda, without CUDA types).
///
/// stream           a cudaStream_t of the current device (nullptr: the legacy default stream)
/// workspace        device bytes aligned to 256, `workspace_bytes` of them, at least the launch's
///                  *_workspace_size; free for reuse once the stream has passed the launch
/// status          device memory for one rhythm::value_error (sizeof(rhythm::value_error) bytes);
///                  each launcher queues its zeroing first, so one launch's error is its own
struct device_policy {
  void* stream = nullptr;
  std::byte* workspace = nullptr;
  std::size_t workspace_bytes = 0;
  ::rhythm::value_error* status = nullptr;
};

/// Contiguous device buffers the credit launchers copy the pipeline's intermediates into, on the
/// same stream after the pipeline (device to device; a null pointer skips that copy).
struct credit_copies {
  float* advantages = nullptr;         ///< [B] GRPO advantages
  std::uint8_t* flags = nullptr;       ///< [B, N] token_flag bits
  float* waad = nullptr;               ///< [B, N] local-group WAAD
  float* fai = nullptr;                ///< [B, N] global-group FAI
  float* head_spans = nullptr;         ///< [B, H]
  std::uint8_t* head_roles = nullptr;  ///< [B, H] head_role bits; [H] when params.pooled_groups (one row for all)
  std::int64_t* counts = nullptr;      ///< [5] response_tokens, preplan, anchor, dominated, intro
  double* shares = nullptr;            ///< [2] mean_gamma, amplified_share
};

/// Workspace bytes of credit_from_qk: rhythm::cuda::credit_pipeline::workspace_size_from_qk for
/// q [B, Hq, N, d], k [B, Hkv, N, d] (shape = {B, Hq, N}, kv_heads = Hkv, head_dim = d).
std::size_t credit_workspace_size_from_qk(const ::rhythm::pipeline_shape& shape, std::int64_t kv_heads,
                                          std::int64_t head_dim, const ::rhythm::pipeline_params& params);
/// Workspace bytes of credit_from_maps for maps [B, H, N, N] (shape = {B, H, N}).
std::size_t credit_workspace_size_from_maps(const ::rhythm::pipeline_shape& shape,
                                            const ::rhythm::pipeline_params& params);

/// rhythm::cuda::credit_pipeline::run_from_qk (with `*entropies` [B, N] when not null), then the
/// copies of its intermediates and diagnostics into `copies`. E: float, rhythm::bfloat16,
/// rhythm::half. Cost: the pipeline's plus O(B (H + N)) bytes copied on the device.
template <class E>
void credit_from_qk(const device_policy& policy, device_view<const E, 4> q, device_view<const E, 4> k,
                    device_view<const ::rhythm::segment, 1> segments, device_view<const float, 1> rewards,
                    device_view<const std::int64_t, 1> group_ids, const device_view<const float, 2>* entropies,
                    const ::rhythm::shaping::any& shaping, device_view<float, 2> gamma, device_view<float, 2> shaped,
                    const ::rhythm::pipeline_params& params, const credit_copies& copies);

/// As credit_from_qk, from attention maps [B, H, N, N] (run_from_maps).
template <class E>
void credit_from_maps(const device_policy& policy, device_view<const E, 4> maps,
                      device_view<const ::rhythm::segment, 1> segments, device_view<const float, 1> rewards,
                      device_view<const std::int64_t, 1> group_ids, const device_view<const float, 2>* entropies,
                      const ::rhythm::shaping::any& shaping, device_view<float, 2> gamma, device_view<float, 2> shaped,
                      const ::rhythm::pipeline_params& params, const credit_copies& copies);

/// Workspace bytes of head_signals_from_qk (rhythm::cuda::head_signals_from_qk_workspace_size).
std::size_t head_signals_workspace_size_from_qk(std::int64_t batch, std::int64_t heads, std::int64_t kv_heads,
                                                std::int64_t length, std::int64_t head_dim,
                                                const ::rhythm::signal_params& params);
/// Workspace bytes of head_signals_from_maps (rhythm::cuda::head_signals_from_maps_workspace_size).
std::size_t head_signals_workspace_size_from_maps(std::int64_t batch, std::int64_t heads, std::int64_t length,
                                                  const ::rhythm::signal_params& params);

/// rhythm::head_signals_from_qk on the device: span [B, Hq], waad and fai [B, Hq, N] from q, k.
template <class E>
void head_signals_from_qk(const device_policy& policy, device_view<const E, 4> q, device_view<const E, 4> k,
                          device_view<const ::rhythm::segment, 1> segments, device_view<float, 2> span,
                          device_view<float, 3> waad, device_view<float, 3> fai, const ::rhythm::signal_params& params);
/// rhythm::head_signals_from_maps on the device.
template <class E>
void head_signals_from_maps(const device_policy& policy, device_view<const E, 4> maps,
                            device_view<const ::rhythm::segment, 1> segments, device_view<float, 2> span,
                            device_view<float, 3> waad, device_view<float, 3> fai,
                            const ::rhythm::signal_params& params);

/// Waits for the stream and throws the rhythm::error of the value error recorded in `policy.status`
/// (rhythm::cuda::throw_if_error: the same errc and message as the CPU backend); returns if none.
void throw_if_error(const device_policy& policy);

/// The cudaStream_t of c10::cuda::getCurrentCUDAStream(device_index) (src/cuda_stream.cpp).
void* current_stream(std::int8_t device_index);

}  // namespace rhythm::torch::cuda_launch
