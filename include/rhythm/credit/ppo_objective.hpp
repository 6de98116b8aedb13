#pragma once
/// PPO-clip reference objective on shaped advantages (DESIGN §3): the value a trainer's loss
/// must reproduce, with the statistics a trainer logs. Forward only (no gradients); double
/// accumulation.
///
/// Per response token t of sequence b, rho_t = exp(logp_new_t - logp_old_t) and
///   J_t = min(rho_t A~_t, clip(rho_t, 1 - epsilon, 1 + epsilon_high) A~_t)
/// aggregated as
///   seq_mean_token_mean:  J = mean over sequences with a non-empty response of mean_{t in R_b} J_t
///   token_mean:           J = mean over all response tokens of the batch of J_t
/// and loss = -J. The parameters and result are core/credit_types.hpp's ppo_params and ppo_result.
#include <cstdint>

#include "../core/checks.hpp"
#include "../core/credit_types.hpp"
#include "../core/dtypes.hpp"
#include "../core/execution.hpp"
#include "../core/tensor.hpp"
#include "../cpu/backend.hpp"

namespace rhythm {

/// PPO-clip objective of a batch of responses. Host backends only.
///
/// logp_new   [B, N] float, bfloat16 or half: log-probability of each sampled token under the current policy
/// logp_old   [B, N] same element type: under the policy that sampled it
/// shaped_adv [B, N] float: A~ (shaped_advantages output)
/// segments   [B]    rhythm::segment per sequence; only response positions of the three are read,
///                   and must be finite there
///
/// J_t is evaluated as A~ min(rho, 1 + epsilon_high) for A~ > 0, A~ max(rho, 1 - epsilon) for
/// A~ < 0 and 0 for A~ = 0, which equals the min above and cannot form inf * 0.
/// A token is clipped when the clipped term is the one the min picks and differs from the
/// unclipped one: A~ > 0 and rho > 1 + epsilon_high, or A~ < 0 and rho < 1 - epsilon (tokens with
/// A~ = 0, and ties at the bounds, are not clipped); this is where PPO's gradient is zero.
/// clip_fraction and mean_ratio are token means over the batch under both aggregations.
///
/// Per-sequence sums run in parallel, then are combined in sequence order: the result is
/// identical for every policy and thread count. O(B N) reads, O(B) scratch.
template <class Policy, strided_tensor LogpNew, strided_tensor LogpOld, strided_tensor ShapedAdv,
          strided_tensor Segments>
ppo_result ppo_clip_objective(const Policy& policy, const LogpNew& logp_new, const LogpOld& logp_old,
                              const ShapedAdv& shaped_adv, const Segments& segments, const ppo_params& params = {}) {
  if constexpr (detail::check_policy<Policy, LogpNew, LogpOld, ShapedAdv, Segments>()) {
    static_assert(LogpNew::rank() == 2 && LogpOld::rank() == 2 && ShapedAdv::rank() == 2,
                  "rhythm: logp_new, logp_old and shaped_adv must have rank 2: [B, N]");
    static_assert(input_element<typename LogpNew::value_type>, "rhythm: logp_new must hold float, bfloat16 or half");
    static_assert(std::is_same_v<typename LogpNew::value_type, typename LogpOld::value_type>,
                  "rhythm: logp_new and logp_old must have the same element type");
    static_assert(std::is_same_v<typename ShapedAdv::value_type, float>, "rhythm: shaped_adv must be a view of float");
    detail::check_ppo_params(params);
    const std::int64_t B = logp_new.extent(0), N = logp_new.extent(1);
    detail::check_extents(logp_old, "logp_old", "[B, N]", B, N);
    detail::check_extents(shaped_adv, "shaped_adv", "[B, N]", B, N);
    detail::check_segments_shape(segments, B);
    return backend<Policy>::ppo_clip_objective(
        policy, ppo_args<typename LogpNew::value_type, memory_space_of<LogpNew>>{
                    as_const_view(logp_new), as_const_view(logp_old), as_const_view(shaped_adv),
                    as_const_view(segments), params});
  } else {
    return {};
  }
}

}  // namespace rhythm
