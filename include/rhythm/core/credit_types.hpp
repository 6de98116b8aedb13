#pragma once
/// Vocabulary of the credit stage (DESIGN §3): advantage, shaping and PPO parameters, the
/// device-runnable shaping rule every built-in policy reduces to, the pipeline's diagnostics, and
/// the flat argument structs the backends receive.
#include <cstdint>
#include <limits>
#include <span>

#include "../config.hpp"
#include "checks.hpp"
#include "segments.hpp"
#include "tensor.hpp"
#include "token_types.hpp"

namespace rhythm {

struct advantage_params {
  bool std_normalise = true;  ///< divide by the group's unbiased std; false: Dr. GRPO (centre only)
  float epsilon = 1e-6f;      ///< added to the std; finite and > 0
};

/// Which responses are shaped, by the sign of their advantage A. Responses not selected get
/// gamma = 1 at every position (floor and mean-preserving rescaling are not applied to them).
/// A == 0 counts as neither sign: it is shaped only under `both` (its shaped advantage is 0
/// whatever gamma is).
enum class sign_mode : std::uint8_t {
  both = 0,      ///< every response (default)
  positive = 1,  ///< only A > 0
  negative = 2,  ///< only A < 0
};

/// Options shared by every shaping policy, applied by shaping_factors in this order to each
/// shaped response's gamma (from the policy):
///   1. mean_preserving: gamma_t /= mean_{u in R} gamma_u (the response's mean becomes 1)
///   2. floor:           gamma_t = max(gamma_t, floor)
/// The floor comes last so that it bounds the final factors: with mean_preserving, unselected
/// tokens drop below 1 (e.g. to 1 / (1 + b q)) and the floor caps how far; where it binds, the
/// response's mean ends slightly above 1.
struct shaping_options {
  sign_mode sign = sign_mode::both;  ///< which advantages are scaled
  double floor = 0.0;                ///< lower bound on gamma; >= 0 and finite as a float; 0: none (built-ins give >= 1)
  bool mean_preserving = false;      ///< rescale each shaped response to mean gamma 1
};

/// What a shaping policy sees of one sequence (user policies, credit/shaping_policy.hpp). Spans
/// are valid during the shape() call only.
struct shaping_context {
  std::int64_t sequence = 0;             ///< b: index of the sequence in the batch
  std::int64_t response_begin = 0;       ///< padded position of flags[0], gamma[0]
  float advantage = 0.0f;                ///< A_b, the sequence's GRPO advantage
  std::span<const token_flag> flags;     ///< token_flag bits at the n response positions
  std::span<const float> entropies;      ///< token entropies at the response positions; empty if none given
};

/// What a built-in shaping policy computes, as data a device can run (no allocation, no virtual
/// call): gamma of a response token from its token_flag bits, or from a per-token selection rule.
struct shaping_rule {
  enum class selector : std::uint8_t {
    flags = 0,    ///< gamma_t = by_flags[flags_t & 15] (uniform, local_chunk, global_anchor, coupled_rhythm)
    random = 1,   ///< gamma_t = amplified if t is among the ceil(q n) drawn tokens, else 1 (random_rank)
    entropy = 2,  ///< gamma_t = amplified if entropy_t is in the response's top-q (selection), else 1
  };
  selector kind = selector::flags;
  float by_flags[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  float amplified = 1.0f;    ///< gamma of a selected token (random, entropy)
  top_q_params selection{};  ///< random: q (share drawn); entropy: q and bottom
  std::uint64_t seed = 0;    ///< random: the draw's seed

  bool needs_entropies() const noexcept { return kind == selector::entropy; }
};

/// random's draw: the rank of token i in a pseudo-random permutation of [0, n) keyed by (seed,
/// sequence); token i is drawn when its rank is below k = ceil(q n), so exactly k tokens are
/// drawn, each subset of size k equally likely up to the quality of the permutation. The
/// permutation is a 12-round Feistel network on the smallest 2^(2h) >= n positions with cycle
/// walking: O(1) expected per token, no memory, the same on every backend and thread count.
RHYTHM_HOST_DEVICE inline std::int64_t random_rank(std::uint64_t seed, std::int64_t sequence, std::int64_t i,
                                                   std::int64_t n) {
  const auto mix = [](std::uint64_t z) {  // splitmix64's finaliser
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  int h = 0;  // half width in bits: 4^h >= n
  while ((std::uint64_t(1) << (2 * h)) < std::uint64_t(n)) ++h;
  const std::uint64_t mask = (std::uint64_t(1) << h) - 1;
  const std::uint64_t key = mix(mix(seed + 0x9e3779b97f4a7c15ull) ^ (std::uint64_t(sequence) * 0xd1b54a32d192ed03ull));
  std::uint64_t x = std::uint64_t(i);
  do {
    std::uint64_t left = x >> h, right = x & mask;
    for (std::uint64_t round = 0; round < 12; ++round) {
      const std::uint64_t f = mix(key ^ (right + (round << 56))) & mask;
      const std::uint64_t next = left ^ f;
      left = right, right = next;
    }
    x = (left << h) | right;
  } while (x >= std::uint64_t(n));
  return static_cast<std::int64_t>(x);
}

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

/// What one pipeline run found, summed over the batch's response tokens.
struct pipeline_diagnostics {
  std::int64_t response_tokens = 0;
  std::int64_t preplan = 0, anchor = 0, dominated = 0, intro = 0;  ///< |T_loc|, |T_glob|, |D|, |intro(D)|
  double mean_gamma = 0.0;       ///< mean gamma over response tokens (1 when there are none)
  double amplified_share = 0.0;  ///< share of response tokens with gamma > 1
};

namespace detail {
inline void check_advantage_params(const advantage_params& p, const char* name = "params.epsilon") {
  expects(p.epsilon > 0.0f && p.epsilon <= std::numeric_limits<float>::max(), errc::bad_parameter, name,
          "a finite value > 0", p.epsilon);
}

inline void check_shaping_options(const shaping_options& o, const std::string& prefix = "options") {
  expects(o.sign == sign_mode::both || o.sign == sign_mode::positive || o.sign == sign_mode::negative,
          errc::bad_parameter, text(prefix, ".sign"), "sign_mode::both, positive or negative (0, 1, 2)", int(o.sign));
  expects(o.floor >= 0.0 && o.floor <= std::numeric_limits<float>::max(), errc::bad_parameter,
          text(prefix, ".floor"), "a finite value >= 0 (as a float)", o.floor);
}

inline void check_ppo_params(const ppo_params& p) {
  expects(p.epsilon >= 0.0 && p.epsilon <= 1.0, errc::bad_parameter, "params.epsilon", "a value in [0, 1]", p.epsilon);
  expects(p.epsilon_high >= 0.0 && p.epsilon_high <= std::numeric_limits<double>::max(), errc::bad_parameter,
          "params.epsilon_high", "a finite value >= 0", p.epsilon_high);
  expects(p.aggregation == ppo_aggregation::seq_mean_token_mean || p.aggregation == ppo_aggregation::token_mean,
          errc::bad_parameter, "params.aggregation", "ppo_aggregation::seq_mean_token_mean or token_mean (0, 1)",
          int(p.aggregation));
}

/// Whether the sign mode shapes a response with advantage a.
RHYTHM_HOST_DEVICE inline bool sign_selects(sign_mode m, float a) {
  return m == sign_mode::both || (m == sign_mode::positive && a > 0.0f) || (m == sign_mode::negative && a < 0.0f);
}
}  // namespace detail

/// grpo_advantages: rewards [S], group_ids [S] -> advantages [S].
template <class R, class Space>
struct advantage_args {
  view<const R, 1, Space> rewards;
  view<const std::int64_t, 1, Space> group_ids;
  view<float, 1, Space> advantages;
  advantage_params params;
};

/// shaping_factors: flags [B, N], entropies [B, N] (optional), advantages [B] -> gamma [B, N].
template <class E, class Space>
struct shaping_args {
  view<const std::uint8_t, 2, Space> flags;
  view<const E, 2, Space> entropies;  ///< data_handle() == nullptr: none
  view<const segment, 1, Space> segments;
  view<const float, 1, Space> advantages;
  view<float, 2, Space> gamma;
  shaping_options options;
};

/// shaped_advantages: gamma [B, N], advantages [B] -> out [B, N] = gamma A on responses, 0 elsewhere.
template <class Space>
struct shaped_advantage_args {
  view<const float, 2, Space> gamma;
  view<const float, 1, Space> advantages;
  view<const segment, 1, Space> segments;
  view<float, 2, Space> out;
};

/// ppo_clip_objective: logp_new, logp_old [B, N], shaped_adv [B, N] -> ppo_result.
template <class T, class Space>
struct ppo_args {
  view<const T, 2, Space> logp_new, logp_old;
  view<const float, 2, Space> shaped_adv;
  view<const segment, 1, Space> segments;
  ppo_params params;
};

/// The pipeline's last step: gamma [B, N] (staged) and advantages [B] -> gamma_out and shaped
/// [B, N], and the diagnostics over flags [B, N].
template <class Space>
struct credit_output_args {
  view<const float, 2, Space> gamma;
  view<const float, 1, Space> advantages;
  view<const std::uint8_t, 2, Space> flags;
  view<const segment, 1, Space> segments;
  view<float, 2, Space> gamma_out, shaped;
};

}  // namespace rhythm
