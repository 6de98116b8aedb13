// Consumer smoke test of find_package(rhythm CONFIG COMPONENTS cuda): the signals of a uniform
// causal map through exec::cuda. Built everywhere nvcc is; without a CUDA device it says so and
// succeeds (it has compiled and linked, which is what it checks there).
#include <cstdio>
#include <vector>

#include <rhythm/cuda.cuh>

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("rhythm %s CUDA consumer: built; no CUDA device to run on\n", rhythm::version_string);
    return 0;
  }
  const std::int64_t N = 16;
  std::vector<float> maps(N * N, 0.0f);
  for (std::int64_t t = 0; t < N; ++t)
    for (std::int64_t s = 0; s <= t; ++s) maps[t * N + s] = 1.0f / float(t + 1);
  const rhythm::segment seg{0, 4, N};
  const std::size_t ws = rhythm::cuda::head_signals_from_maps_workspace_size(1, 1, N);
  float *d_maps, *d_out;
  rhythm::segment* d_seg;
  std::byte* d_ws;
  rhythm::value_error* d_status;
  cudaMalloc(&d_maps, maps.size() * sizeof(float));
  cudaMalloc(&d_out, (1 + 2 * N) * sizeof(float));
  cudaMalloc(&d_seg, sizeof seg);
  cudaMalloc(&d_ws, ws + 1);
  cudaMalloc(&d_status, sizeof(rhythm::value_error));
  cudaMemcpy(d_maps, maps.data(), maps.size() * sizeof(float), cudaMemcpyHostToDevice);
  cudaMemcpy(d_seg, &seg, sizeof seg, cudaMemcpyHostToDevice);
  using dv = rhythm::device_space;
  const rhythm::exec::cuda policy{nullptr, rhythm::view<std::byte, 1, dv>(d_ws, {std::int64_t(ws + 1)}), d_status};
  rhythm::cuda::clear_status(policy);
  rhythm::head_signals_from_maps(policy, rhythm::view<const float, 4, dv>(d_maps, {1, 1, N, N}),
                                 rhythm::view<const rhythm::segment, 1, dv>(d_seg, {1}),
                                 rhythm::view<float, 2, dv>(d_out, {1, 1}),
                                 rhythm::view<float, 3, dv>(d_out + 1, {1, 1, N}),
                                 rhythm::view<float, 3, dv>(d_out + 1 + N, {1, 1, N}));
  rhythm::cuda::throw_if_error(policy);
  float waad4 = 0;
  cudaMemcpy(&waad4, d_out + 1 + 4, sizeof waad4, cudaMemcpyDeviceToHost);
  const bool ok = waad4 > 1.9999f && waad4 < 2.0001f;
  std::printf("rhythm %s CUDA consumer: waad[4] = %g (%s)\n", rhythm::version_string, waad4, ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
