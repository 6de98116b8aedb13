// The launchers of rhythm/torch/cuda_launch.hpp: rhythm's CUDA backend, compiled by nvcc without
// ATen. Each launcher zeroes the status, runs rhythm's device code on the policy's stream and
// returns without waiting; throw_if_error is the one wait.
#include <rhythm/cuda.cuh>
#include <rhythm/torch/cuda_launch.hpp>

#include <cstddef>

namespace rhythm::torch::cuda_launch {
namespace {

exec::cuda cuda_policy(const device_policy& p) {
  return {static_cast<cudaStream_t>(p.stream),
          view<std::byte, 1, device_space>(p.workspace, {static_cast<std::int64_t>(p.workspace_bytes)}), p.status};
}

/// Queues a device-to-device copy of `count` elements (none when dst is null or count is 0).
template <class T>
void copy(T* dst, const T* src, std::int64_t count, cudaStream_t stream) {
  if (dst == nullptr || count <= 0) return;
  rhythm::cuda::detail::check_cuda(
      cudaMemcpyAsync(dst, src, static_cast<std::size_t>(count) * sizeof(T), cudaMemcpyDeviceToDevice, stream),
      "cudaMemcpyAsync (rhythm::torch: credit intermediates)");
}

static_assert(offsetof(pipeline_diagnostics, intro) == 4 * sizeof(std::int64_t) &&
                  offsetof(pipeline_diagnostics, amplified_share) == offsetof(pipeline_diagnostics, mean_gamma) + 8,
              "rhythm::torch: credit_copies reads the counts and the shares of pipeline_diagnostics as two arrays");

void copy_intermediates(const rhythm::cuda::credit_pipeline& pipeline, const pipeline_shape& s, bool pooled,
                        const credit_copies& c, cudaStream_t stream) {
  const std::int64_t B = s.batch, H = s.heads, N = s.length;
  copy(c.advantages, pipeline.advantages().data_handle(), B, stream);
  copy(c.flags, reinterpret_cast<const std::uint8_t*>(pipeline.flags().data_handle()), B * N, stream);
  copy(c.waad, pipeline.waad().data_handle(), B * N, stream);
  copy(c.fai, pipeline.fai().data_handle(), B * N, stream);
  copy(c.head_spans, pipeline.head_spans().data_handle(), B * H, stream);
  copy(c.head_roles, reinterpret_cast<const std::uint8_t*>(pipeline.head_roles().data_handle()), pooled ? H : B * H,
       stream);
  const pipeline_diagnostics* d = pipeline.diagnostics();
  copy(c.counts, &d->response_tokens, 5, stream);  // member addresses only: nothing is read on the host
  copy(c.shares, &d->mean_gamma, 2, stream);
}

}  // namespace

std::size_t credit_workspace_size_from_qk(const pipeline_shape& shape, std::int64_t kv_heads, std::int64_t head_dim,
                                          const pipeline_params& params) {
  return rhythm::cuda::credit_pipeline::workspace_size_from_qk(shape, kv_heads, head_dim, params);
}

std::size_t credit_workspace_size_from_maps(const pipeline_shape& shape, const pipeline_params& params) {
  return rhythm::cuda::credit_pipeline::workspace_size_from_maps(shape, params);
}

template <class E>
void credit_from_qk(const device_policy& policy, device_view<const E, 4> q, device_view<const E, 4> k,
                    device_view<const segment, 1> segments, device_view<const float, 1> rewards,
                    device_view<const std::int64_t, 1> group_ids, const device_view<const float, 2>* entropies,
                    const shaping::any& shaping, device_view<float, 2> gamma, device_view<float, 2> shaped,
                    const pipeline_params& params, const credit_copies& copies) {
  const exec::cuda p = cuda_policy(policy);
  rhythm::cuda::clear_status(p);
  rhythm::cuda::credit_pipeline pipeline;
  if (entropies)
    pipeline.run_from_qk(p, q, k, segments, rewards, group_ids, *entropies, shaping, gamma, shaped, params);
  else
    pipeline.run_from_qk(p, q, k, segments, rewards, group_ids, shaping, gamma, shaped, params);
  copy_intermediates(pipeline, {q.extent(0), q.extent(1), q.extent(2)}, params.pooled_groups, copies, p.stream);
}

template <class E>
void credit_from_maps(const device_policy& policy, device_view<const E, 4> maps, device_view<const segment, 1> segments,
                      device_view<const float, 1> rewards, device_view<const std::int64_t, 1> group_ids,
                      const device_view<const float, 2>* entropies, const shaping::any& shaping,
                      device_view<float, 2> gamma, device_view<float, 2> shaped, const pipeline_params& params,
                      const credit_copies& copies) {
  const exec::cuda p = cuda_policy(policy);
  rhythm::cuda::clear_status(p);
  rhythm::cuda::credit_pipeline pipeline;
  if (entropies)
    pipeline.run_from_maps(p, maps, segments, rewards, group_ids, *entropies, shaping, gamma, shaped, params);
  else
    pipeline.run_from_maps(p, maps, segments, rewards, group_ids, shaping, gamma, shaped, params);
  copy_intermediates(pipeline, {maps.extent(0), maps.extent(1), maps.extent(2)}, params.pooled_groups, copies,
                     p.stream);
}

std::size_t head_signals_workspace_size_from_qk(std::int64_t batch, std::int64_t heads, std::int64_t kv_heads,
                                                std::int64_t length, std::int64_t head_dim,
                                                const signal_params& params) {
  return rhythm::cuda::head_signals_from_qk_workspace_size(batch, heads, kv_heads, length, head_dim, params);
}

std::size_t head_signals_workspace_size_from_maps(std::int64_t batch, std::int64_t heads, std::int64_t length,
                                                  const signal_params& params) {
  return rhythm::cuda::head_signals_from_maps_workspace_size(batch, heads, length, params);
}

template <class E>
void head_signals_from_qk(const device_policy& policy, device_view<const E, 4> q, device_view<const E, 4> k,
                          device_view<const segment, 1> segments, device_view<float, 2> span, device_view<float, 3> waad,
                          device_view<float, 3> fai, const signal_params& params) {
  const exec::cuda p = cuda_policy(policy);
  rhythm::cuda::clear_status(p);
  rhythm::head_signals_from_qk(p, q, k, segments, span, waad, fai, params);
}

template <class E>
void head_signals_from_maps(const device_policy& policy, device_view<const E, 4> maps,
                            device_view<const segment, 1> segments, device_view<float, 2> span,
                            device_view<float, 3> waad, device_view<float, 3> fai, const signal_params& params) {
  const exec::cuda p = cuda_policy(policy);
  rhythm::cuda::clear_status(p);
  rhythm::head_signals_from_maps(p, maps, segments, span, waad, fai, params);
}

void throw_if_error(const device_policy& policy) { rhythm::cuda::throw_if_error(cuda_policy(policy)); }

#define RHYTHM_TORCH_INSTANTIATE(E)                                                                                 \
  template void credit_from_qk<E>(const device_policy&, device_view<const E, 4>, device_view<const E, 4>,           \
                                  device_view<const segment, 1>, device_view<const float, 1>,                       \
                                  device_view<const std::int64_t, 1>, const device_view<const float, 2>*,           \
                                  const shaping::any&, device_view<float, 2>, device_view<float, 2>,                \
                                  const pipeline_params&, const credit_copies&);                                    \
  template void credit_from_maps<E>(const device_policy&, device_view<const E, 4>, device_view<const segment, 1>,   \
                                    device_view<const float, 1>, device_view<const std::int64_t, 1>,                \
                                    const device_view<const float, 2>*, const shaping::any&, device_view<float, 2>, \
                                    device_view<float, 2>, const pipeline_params&, const credit_copies&);           \
  template void head_signals_from_qk<E>(const device_policy&, device_view<const E, 4>, device_view<const E, 4>,     \
                                        device_view<const segment, 1>, device_view<float, 2>,                       \
                                        device_view<float, 3>, device_view<float, 3>, const signal_params&);        \
  template void head_signals_from_maps<E>(const device_policy&, device_view<const E, 4>,                            \
                                          device_view<const segment, 1>, device_view<float, 2>,                     \
                                          device_view<float, 3>, device_view<float, 3>, const signal_params&);
RHYTHM_TORCH_INSTANTIATE(float)
RHYTHM_TORCH_INSTANTIATE(bfloat16)
RHYTHM_TORCH_INSTANTIATE(half)
#undef RHYTHM_TORCH_INSTANTIATE

}  // namespace rhythm::torch::cuda_launch
