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
/// and loss = -J.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "../core/dtypes.hpp"
#include "../core/execution.hpp"
#include "../core/segments.hpp"
#include "../core/tensor.hpp"
#include "../cpu/parallel.hpp"
#include "common.hpp"

namespace rhythm {

/// How per-token objective terms are averaged into one number.
enum class ppo_aggregation : std::uint8_t {
  seq_mean_token_mean = 0,  ///< mean over sequences of each sequence's token mean (default)
  token_mean = 1,           ///< mean over every response token of the batch
};

struct ppo_params {
  double epsilon = 0.2;       ///< lower clip: rho >= 1 - epsilon; in [0, 1]
  double epsilon_high = 0.2;  ///< upper clip: rho <= 1 + epsilon_high; finite, >= 0 (DAPO's clip-higher)
  ppo_aggregation aggregation = ppo_aggregation::seq_mean_token_mean;
};

/// The objective and what a trainer logs about it. All zero when the batch has no response token.
struct ppo_result {
  double loss = 0.0;           ///< -J (to be minimised)
  double clip_fraction = 0.0;  ///< clipped tokens / tokens (see ppo_clip_objective)
  double mean_ratio = 0.0;     ///< mean of rho over every response token (token mean, whatever the aggregation)
  std::int64_t tokens = 0;     ///< number of response tokens in the batch
};

namespace detail {
inline void check_ppo_params(const ppo_params& p) {
  require(p.epsilon >= 0.0 && p.epsilon <= 1.0, errc::bad_parameter, "params.epsilon", "a value in [0, 1]", p.epsilon);
  require(p.epsilon_high >= 0.0 && p.epsilon_high <= std::numeric_limits<double>::max(), errc::bad_parameter,
          "params.epsilon_high", "a finite value >= 0", p.epsilon_high);
  require(p.aggregation == ppo_aggregation::seq_mean_token_mean || p.aggregation == ppo_aggregation::token_mean,
          errc::bad_parameter, "params.aggregation", "ppo_aggregation::seq_mean_token_mean or token_mean (0, 1)",
          int(p.aggregation));
}
}  // namespace detail

/// PPO-clip objective of a batch of responses.
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
ppo_result ppo_clip_objective(Policy policy, const LogpNew& logp_new, const LogpOld& logp_old,
                              const ShapedAdv& shaped_adv, const Segments& segments, const ppo_params& params = {}) {
  namespace dc = detail::credit;
  detail::check_policy<Policy, LogpNew, LogpOld, ShapedAdv, Segments>();
  static_assert(LogpNew::rank() == 2 && LogpOld::rank() == 2 && ShapedAdv::rank() == 2,
                "rhythm: logp_new, logp_old and shaped_adv must have rank 2: [B, N]");
  static_assert(input_element<typename LogpNew::value_type>, "rhythm: logp_new must hold float, bfloat16 or half");
  static_assert(std::is_same_v<typename LogpNew::value_type, typename LogpOld::value_type>,
                "rhythm: logp_new and logp_old must have the same element type");
  static_assert(std::is_same_v<typename ShapedAdv::value_type, float>, "rhythm: shaped_adv must be a view of float");
  detail::check_ppo_params(params);
  const std::int64_t B = logp_new.extent(0), N = logp_new.extent(1);
  dc::require_extents(logp_old, "logp_old", {B, N}, "[B, N]");
  dc::require_extents(shaped_adv, "shaped_adv", {B, N}, "[B, N]");
  detail::check_segments(segments, B, N);
  dc::require_finite_in_responses(logp_new, segments, "logp_new");
  dc::require_finite_in_responses(logp_old, segments, "logp_old");
  dc::require_finite_in_responses(shaped_adv, segments, "shaped_adv");

  struct sums {
    double objective = 0.0, ratio = 0.0;
    std::int64_t tokens = 0, clipped = 0;
  };
  std::vector<sums> per_sequence(static_cast<std::size_t>(B));
  const double lo = 1.0 - params.epsilon, hi = 1.0 + params.epsilon_high;
  cpu::parallel_for(cpu::thread_count(policy), B, [&](std::int64_t b, int) {
    const segment g = detail::segment_at(segments, b);
    sums s;
    for (std::int64_t t = g.response_begin; t < g.end; ++t) {
      const double rho = std::exp(double(dc::value_at(logp_new, b, t)) - double(dc::value_at(logp_old, b, t)));
      const double a = dc::at(shaped_adv, b, t);
      s.objective += a > 0.0 ? a * std::min(rho, hi) : a < 0.0 ? a * std::max(rho, lo) : 0.0;
      s.clipped += (a > 0.0 && rho > hi) || (a < 0.0 && rho < lo);
      s.ratio += rho;
    }
    s.tokens = g.response_length();
    per_sequence[b] = s;
  });

  ppo_result r;
  double objective = 0.0, ratio = 0.0, sequence_means = 0.0;
  std::int64_t clipped = 0, sequences = 0;
  for (const sums& s : per_sequence) {
    objective += s.objective, ratio += s.ratio, clipped += s.clipped, r.tokens += s.tokens;
    if (s.tokens > 0) sequence_means += s.objective / static_cast<double>(s.tokens), ++sequences;
  }
  if (r.tokens == 0) return r;
  const double J = params.aggregation == ppo_aggregation::token_mean ? objective / static_cast<double>(r.tokens)
                                                                     : sequence_means / static_cast<double>(sequences);
  r.loss = -J;
  r.clip_fraction = static_cast<double>(clipped) / static_cast<double>(r.tokens);
  r.mean_ratio = ratio / static_cast<double>(r.tokens);
  return r;
}

}  // namespace rhythm
