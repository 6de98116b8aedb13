#pragma once
/// GRPO group advantages (DESIGN §3): each response's reward relative to the other responses
/// sampled for the same prompt.
///
///   A_i = (r_i - mean_g r) / (std_g r + epsilon)   std_g: unbiased (n - 1) over group g
///   A_i = r_i - mean_g r                             std_normalise = false (Dr. GRPO)
///   A_i = 0                                          if i is alone in its group
#include <cstdint>

#include "../core/checks.hpp"
#include "../core/credit_types.hpp"
#include "../core/dtypes.hpp"
#include "../core/execution.hpp"
#include "../core/tensor.hpp"
#include "../cpu/backend.hpp"

namespace rhythm {

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
void grpo_advantages(const Policy& policy, const Rewards& rewards, const GroupIds& group_ids,
                     const Advantages& advantages, const advantage_params& params = {}) {
  if constexpr (detail::check_policy<Policy, Rewards, GroupIds, Advantages>()) {
    static_assert(Rewards::rank() == 1 && GroupIds::rank() == 1 && Advantages::rank() == 1,
                  "rhythm: rewards, group_ids and advantages must have rank 1: [S]");
    static_assert(input_element<typename Rewards::value_type>, "rhythm: rewards must hold float, bfloat16 or half");
    static_assert(std::is_same_v<typename GroupIds::value_type, std::int64_t>,
                  "rhythm: group_ids must be a view of std::int64_t");
    static_assert(std::is_same_v<element_of<Advantages>, float>, "rhythm: advantages must be a writable view of float");
    detail::check_advantage_params(params);
    const std::int64_t S = rewards.extent(0);
    detail::check_extents(group_ids, "group_ids", "[S]", S);
    detail::check_output(advantages, "advantages");
    detail::check_extents(advantages, "advantages", "[S]", S);
    detail::check_disjoint(advantages, "advantages", rewards, group_ids);
    backend<Policy>::grpo_advantages(policy, advantage_args<typename Rewards::value_type, memory_space_of<Rewards>>{
                                                 as_const_view(rewards), as_const_view(group_ids),
                                                 as_view(advantages), params});
  }
}

}  // namespace rhythm
