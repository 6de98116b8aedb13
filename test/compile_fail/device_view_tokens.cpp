// expect: rhythm: a tensor's memory space does not match the execution policy
// One device output among host views (token sets).
#include <rhythm/tokens/token_sets.hpp>

int main() {
  const float waad[4] = {}, fai[4] = {};
  const rhythm::segment segments[1] = {{0, 1, 4}};
  const rhythm::view<rhythm::token_flag, 2, rhythm::device_space> flags(nullptr, {1, 4});
  rhythm::token_sets(rhythm::exec::seq{}, rhythm::make_view(waad, 1, 4), rhythm::make_view(fai, 1, 4),
                     rhythm::make_view(segments, 1), flags);
}
