// rhythm::torch::cuda_launch::current_stream: the one use of c10's CUDA headers, in a host
// translation unit of rhythm_torch_cuda, so that rhythm/torch/credit.hpp includes no CUDA header.
#include <c10/cuda/CUDAStream.h>

#include <rhythm/torch/cuda_launch.hpp>

namespace rhythm::torch::cuda_launch {

void* current_stream(std::int8_t device_index) {
  return static_cast<void*>(::c10::cuda::getCurrentCUDAStream(device_index).stream());
}

}  // namespace rhythm::torch::cuda_launch
