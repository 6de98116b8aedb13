// expect: rhythm: a tensor's memory space does not match the execution policy
// Host views passed to exec::cuda.
#include <rhythm/cuda.cuh>

int main() {
  const rhythm::view<const float, 1> rewards(nullptr, {4});
  const rhythm::view<const std::int64_t, 1> ids(nullptr, {4});
  const rhythm::view<float, 1> advantages(nullptr, {4});
  rhythm::grpo_advantages(rhythm::exec::cuda{}, rewards, ids, advantages);
}
