// expect: rhythm: a tensor's memory space does not match the execution policy
// Device views passed to a host policy (head signals from Q/K).
#include <rhythm/signals/head_signals.hpp>

int main() {
  using dev = rhythm::device_space;
  const rhythm::view<const float, 4, dev> q(nullptr, {1, 1, 4, 8}), k(nullptr, {1, 1, 4, 8});
  const rhythm::view<const rhythm::segment, 1, dev> segments(nullptr, {1});
  const rhythm::view<float, 2, dev> span(nullptr, {1, 1});
  const rhythm::view<float, 3, dev> waad(nullptr, {1, 1, 4}), fai(nullptr, {1, 1, 4});
  rhythm::head_signals_from_qk(rhythm::exec::par{2}, q, k, segments, span, waad, fai);
}
