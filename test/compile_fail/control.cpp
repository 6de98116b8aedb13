// expect: success
// The control: the same calls with host views and a host policy compile.
#include <rhythm/credit/advantages.hpp>
#include <rhythm/heads/head_groups.hpp>

int main() {
  const float spans[4] = {1, 2, 3, 4}, rewards[4] = {1, 0, 1, 0};
  rhythm::head_role roles[4];
  const std::int64_t ids[4] = {0, 0, 1, 1};
  float advantages[4];
  rhythm::head_groups(rhythm::exec::seq{}, rhythm::make_view(spans, 1, 4), rhythm::make_view(roles, 1, 4));
  rhythm::grpo_advantages(rhythm::exec::par{}, rhythm::make_view(rewards, 4), rhythm::make_view(ids, 4),
                          rhythm::make_view(advantages, 4));
}
