// expect: rhythm: a user-written shaping policy runs on the host only
// A user policy (host code) with exec::cuda.
#include <rhythm/cuda.cuh>

struct first_eight {
  void shape(const rhythm::shaping_context&, std::span<float> gamma) const {
    for (std::size_t i = 0; i < gamma.size(); ++i) gamma[i] = i < 8 ? 2.0f : 1.0f;
  }
};

int main() {
  using dev = rhythm::device_space;
  const rhythm::view<const std::uint8_t, 2, dev> flags(nullptr, {2, 4});
  const rhythm::view<const rhythm::segment, 1, dev> segments(nullptr, {2});
  const rhythm::view<const float, 1, dev> advantages(nullptr, {2});
  const rhythm::view<float, 2, dev> gamma(nullptr, {2, 4});
  rhythm::shaping_factors(rhythm::exec::cuda{}, first_eight{}, flags, segments, advantages, gamma);
}
