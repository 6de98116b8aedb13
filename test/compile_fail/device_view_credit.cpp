// expect: rhythm: a tensor's memory space does not match the execution policy
// Device views passed to a host policy (GRPO advantages).
#include <rhythm/credit/advantages.hpp>

int main() {
  using dev = rhythm::device_space;
  const rhythm::view<const float, 1, dev> rewards(nullptr, {4});
  const rhythm::view<const std::int64_t, 1, dev> ids(nullptr, {4});
  const rhythm::view<float, 1, dev> advantages(nullptr, {4});
  rhythm::grpo_advantages(rhythm::exec::seq{}, rewards, ids, advantages);
}
