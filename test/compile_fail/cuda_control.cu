// expect: success
// The control of the CUDA compile-fail tests: a correct call with exec::cuda compiles.
#include <rhythm/cuda.cuh>

int main() {
  using dev = rhythm::device_space;
  const rhythm::view<const float, 1, dev> rewards(nullptr, {4});
  const rhythm::view<const std::int64_t, 1, dev> ids(nullptr, {4});
  const rhythm::view<float, 1, dev> advantages(nullptr, {4});
  rhythm::grpo_advantages(rhythm::exec::cuda{}, rewards, ids, advantages);
}
