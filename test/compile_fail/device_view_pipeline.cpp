// expect: rhythm: a tensor's memory space does not match the execution policy
// Device views passed to the one-call pipeline with a host policy.
#include <rhythm/pipeline.hpp>

int main() {
  using dev = rhythm::device_space;
  const rhythm::view<const float, 4, dev> maps(nullptr, {1, 1, 4, 4});
  const rhythm::view<const rhythm::segment, 1, dev> segments(nullptr, {1});
  const rhythm::view<const float, 1, dev> rewards(nullptr, {1});
  const rhythm::view<const std::int64_t, 1, dev> ids(nullptr, {1});
  const rhythm::view<float, 2, dev> gamma(nullptr, {1, 4}), shaped(nullptr, {1, 4});
  rhythm::credit_pipeline pipeline;
  pipeline.run_from_maps(rhythm::exec::par{}, maps, segments, rewards, ids, rhythm::shaping::coupled_rhythm{}, gamma,
                         shaped);
}
