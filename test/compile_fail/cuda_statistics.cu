// expect: rhythm: rhythm_statistics is host-only
// The batch statistics for analysis have no device backend.
#include <rhythm/cuda.cuh>

int main() {
  using dev = rhythm::device_space;
  const rhythm::view<const float, 2, dev> waad(nullptr, {2, 4}), fai(nullptr, {2, 4});
  const rhythm::view<const rhythm::segment, 1, dev> segments(nullptr, {2});
  rhythm::rhythm_statistics(rhythm::exec::cuda{}, waad, fai, segments);
}
