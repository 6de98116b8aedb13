#pragma once
/// The shaping-policy concept: how a policy turns one response's token sets into per-token
/// factors gamma_t on the GRPO advantage (DESIGN §3), and the options every policy shares.
///
/// A policy is a small struct with one const member function
///
///   void shape(const rhythm::shaping_context& ctx, std::span<float> gamma) const;
///
/// that writes gamma for the n response positions of one sequence (gamma[i] is position
/// ctx.response_begin + i). Two optional members are honoured when present:
///
///   void validate() const;                          throws rhythm::error on bad fields (run first)
///   static constexpr bool needs_entropies = true;   shaping_factors then requires an entropies view
///
/// shaping_factors (shaping.hpp) calls shape() once per sequence with a non-empty response whose
/// advantage the sign mode selects, possibly from several threads at once (shape() must not
/// mutate shared state), then applies the options below. Gamma must come out finite and >= 0.
///
///   struct first_tokens {  // a user policy: double the credit of the first 8 response tokens
///     void shape(const rhythm::shaping_context&, std::span<float> gamma) const {
///       for (std::size_t i = 0; i < gamma.size(); ++i) gamma[i] = i < 8 ? 2.0f : 1.0f;
///     }
///   };
#include <concepts>
#include <cstdint>
#include <limits>
#include <span>

#include "../error.hpp"

namespace rhythm {

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
  /// Select the bottom-q instead of the top-q, for policies that select by themselves (entropy:
  /// lowest-entropy tokens). The flag-based policies (local_chunk, global_anchor, coupled_rhythm)
  /// read the sets the tokens stage wrote; ask that stage for bottom sets instead. A uniform
  /// draw (random) has no top or bottom and ignores it.
  bool bottom = false;
  double floor = 0.0;            ///< lower bound on gamma; finite, >= 0; 0: none (built-ins give >= 1)
  bool mean_preserving = false;  ///< rescale each shaped response to mean gamma 1
};

/// What a policy sees of one sequence. Spans are valid during the shape() call only.
struct shaping_context {
  std::int64_t sequence = 0;             ///< b: index of the sequence in the batch (seeds `random`)
  std::int64_t response_begin = 0;       ///< padded position of flags[0], gamma[0]
  float advantage = 0.0f;                ///< A_b, the sequence's GRPO advantage
  std::span<const std::uint8_t> flags;   ///< token_flag bits at the n response positions
  std::span<const float> entropies;      ///< token entropies at the response positions; empty if none given
  bool bottom = false;                   ///< shaping_options::bottom
};

/// A shaping policy: `p.shape(ctx, gamma)` fills gamma (see the file comment).
template <class P>
concept shaping_policy = std::copy_constructible<P> &&
                         requires(const P& p, const shaping_context& ctx, std::span<float> gamma) {
                           { p.shape(ctx, gamma) } -> std::same_as<void>;
                         };

namespace detail {

/// True if the policy declares `static constexpr bool needs_entropies = true`.
template <class P>
constexpr bool policy_needs_entropies() {
  if constexpr (requires { P::needs_entropies; }) return static_cast<bool>(P::needs_entropies);
  else return false;
}

/// Calls p.validate() if the policy has it.
template <class P>
void validate_policy(const P& p) {
  if constexpr (requires { p.validate(); }) p.validate();
}

inline void check_shaping_options(const shaping_options& o) {
  require(o.sign == sign_mode::both || o.sign == sign_mode::positive || o.sign == sign_mode::negative,
          errc::bad_parameter, "options.sign", "sign_mode::both, positive or negative (0, 1, 2)", int(o.sign));
  require(o.floor >= 0.0 && o.floor <= std::numeric_limits<double>::max(), errc::bad_parameter, "options.floor",
          "a finite value >= 0", o.floor);
}

/// Whether the sign mode shapes a response with advantage a.
inline bool sign_selects(sign_mode m, float a) {
  return m == sign_mode::both || (m == sign_mode::positive && a > 0.0f) || (m == sign_mode::negative && a < 0.0f);
}

}  // namespace detail
}  // namespace rhythm
