// expect: rhythm: unknown execution policy
// A policy type without a backend<> specialisation.
#include <rhythm/heads/head_groups.hpp>

struct my_policy {};

int main() {
  const float spans[4] = {1, 2, 3, 4};
  rhythm::head_role roles[4];
  rhythm::head_groups(my_policy{}, rhythm::make_view(spans, 1, 4), rhythm::make_view(roles, 1, 4));
}
