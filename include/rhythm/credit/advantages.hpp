#pragma once
/// GRPO group advantages (DESIGN §3): each response's reward relative to the other responses
/// sampled for the same prompt.
///
///   A_i = (r_i - mean_g r) / (std_g r + epsilon)   std_g: unbiased (n - 1) over group g
///   A_i = r_i - mean_g r                             std_normalise = false (Dr. GRPO)
///   A_i = 0                                          if i is alone in its group
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "../core/execution.hpp"
#include "../core/tensor.hpp"
#include "../cpu/parallel.hpp"
#include "common.hpp"

namespace rhythm {

struct advantage_params {
  bool std_normalise = true;  ///< divide by the group's unbiased std; false: Dr. GRPO (centre only)
  float epsilon = 1e-6f;      ///< added to the std; finite and > 0
};

namespace detail {
inline void check_advantage_params(const advantage_params& p) {
  require(p.epsilon > 0.0f && p.epsilon <= std::numeric_limits<float>::max(), errc::bad_parameter, "params.epsilon",
          "a finite value > 0", p.epsilon);
}
}  // namespace detail

/// GRPO advantages of S responses grouped by prompt.
///
/// rewards    [S] float, bfloat16 or half; finite
/// group_ids  [S] std::int64_t: any labels (negative, sparse, unsorted); equal labels form a group
/// advantages [S] float out: A_i as above, computed in double; every element is written
///
/// Deterministic and identical for every policy and thread count: a group's mean and std are
/// summed in response order. O(S log S) to group (a stable sort of the labels), then O(S) in
/// parallel over groups; O(S) scratch. Throws (and writes nothing) on mismatched extents, a
/// non-finite reward, params.epsilon <= 0 or an output overlapping an input.
template <class Policy, strided_tensor Rewards, strided_tensor GroupIds, strided_tensor Advantages>
void grpo_advantages(Policy policy, const Rewards& rewards, const GroupIds& group_ids, const Advantages& advantages,
                     const advantage_params& params = {}) {
  namespace dc = detail::credit;
  detail::check_policy<Policy, Rewards, GroupIds, Advantages>();
  static_assert(Rewards::rank() == 1 && GroupIds::rank() == 1 && Advantages::rank() == 1,
                "rhythm: rewards, group_ids and advantages must have rank 1: [S]");
  static_assert(input_element<typename Rewards::value_type>, "rhythm: rewards must hold float, bfloat16 or half");
  static_assert(std::is_same_v<typename GroupIds::value_type, std::int64_t>,
                "rhythm: group_ids must be a view of std::int64_t");
  detail::check_advantage_params(params);
  const std::int64_t S = rewards.extent(0);
  dc::require_extents(group_ids, "group_ids", {S}, "[S]");
  dc::require_output<float>(advantages, "advantages");
  dc::require_extents(advantages, "advantages", {S}, "[S]");
  dc::require_disjoint(advantages, "advantages", rewards, group_ids);
  for (std::int64_t i = 0; i < S; ++i)
    if (const float r = dc::value_at(rewards, i); !std::isfinite(r))
      dc::fail_non_finite("rewards", r, "index " + std::to_string(i));

  std::vector<std::int64_t> order(static_cast<std::size_t>(S));
  std::iota(order.begin(), order.end(), std::int64_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int64_t a, std::int64_t b) { return dc::at(group_ids, a) < dc::at(group_ids, b); });
  std::vector<std::int64_t> starts;  // group g is order[starts[g], starts[g + 1])
  for (std::int64_t i = 0; i < S; ++i)
    if (i == 0 || dc::at(group_ids, order[i]) != dc::at(group_ids, order[i - 1])) starts.push_back(i);
  starts.push_back(S);

  const auto groups = static_cast<std::int64_t>(starts.size()) - 1;
  cpu::parallel_for(cpu::thread_count(policy), groups, [&](std::int64_t g, int) {
    const std::int64_t lo = starts[g], hi = starts[g + 1], n = hi - lo;
    double sum = 0.0;
    for (std::int64_t i = lo; i < hi; ++i) sum += dc::value_at(rewards, order[i]);
    const double mean = sum / static_cast<double>(n);
    double denom = 1.0;
    if (params.std_normalise && n > 1) {
      double ss = 0.0;
      for (std::int64_t i = lo; i < hi; ++i) {
        const double d = dc::value_at(rewards, order[i]) - mean;
        ss += d * d;
      }
      denom = std::sqrt(ss / static_cast<double>(n - 1)) + static_cast<double>(params.epsilon);
    }
    for (std::int64_t i = lo; i < hi; ++i) {
      const double a = n > 1 ? (dc::value_at(rewards, order[i]) - mean) / denom : 0.0;
      dc::at(advantages, order[i]) = static_cast<float>(a);
    }
  });
}

}  // namespace rhythm
