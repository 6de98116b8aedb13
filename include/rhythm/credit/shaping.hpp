#pragma once
/// Shaping factors gamma [B, N] from token flags through a shaping policy, and the shaped
/// advantages A~_t = gamma_t A_b (DESIGN §3; paper Eq. 15-19). A~ is a constant of the loss:
/// it is never differentiated.
#include <cstdint>

#include "../core/checks.hpp"
#include "../core/credit_types.hpp"
#include "../core/dtypes.hpp"
#include "../core/execution.hpp"
#include "../core/tensor.hpp"
#include "../core/token_types.hpp"
#include "../cpu/backend.hpp"
#include "policies.hpp"
#include "shaping_policy.hpp"

namespace rhythm {
namespace detail {

[[noreturn]] inline void fail_missing_entropies() {
  fail(errc::shape_mismatch, "entropies", "an entropies view [B, N] for a policy that reads entropies",
       "none (call the shaping_factors overload that takes entropies)");
}

/// Both shaping_factors overloads; `entropies` is null when none was given.
template <class Policy, shaping_policy Shaping, strided_tensor Flags, class Entropies, strided_tensor Segments,
          strided_tensor Advantages, strided_tensor Gamma>
void shaping_factors(const Policy& policy, const Shaping& shaping, const Flags& flags, const Entropies* entropies,
                     const Segments& segments, const Advantages& advantages, const Gamma& gamma,
                     const shaping_options& options) {
  static_assert(Flags::rank() == 2 && Gamma::rank() == 2, "rhythm: flags and gamma must have rank 2: [B, N]");
  static_assert(Advantages::rank() == 1, "rhythm: advantages must have rank 1: [B]");
  static_assert(flag_element<typename Flags::value_type>, "rhythm: flags must be a view of rhythm::token_flag bits");
  static_assert(std::is_same_v<typename Advantages::value_type, float>, "rhythm: advantages must be a view of float");
  static_assert(std::is_same_v<element_of<Gamma>, float>, "rhythm: gamma must be a writable view of float");
  using space = memory_space_of<Flags>;
  constexpr bool with_entropies = !std::is_void_v<Entropies>;
  shaping_rule rule;
  bool needs_entropies = false;
  if constexpr (rule_shaping_policy<Shaping>) {
    rule = shaping.rule();
    needs_entropies = rule.needs_entropies();
  } else {
    static_assert(std::is_same_v<space, host_space>,
                  "rhythm: user shaping policies run on the host backends only (exec::seq, exec::par); use a "
                  "built-in policy or rhythm::shaping::any on a device");
    validate_policy(shaping);
    needs_entropies = policy_needs_entropies<Shaping>();
  }
  check_shaping_options(options);
  const std::int64_t B = flags.extent(0), N = flags.extent(1);
  check_segments_shape(segments, B);
  check_extents(advantages, "advantages", "[B]", B);
  check_output(gamma, "gamma");
  check_extents(gamma, "gamma", "[B, N]", B, N);
  check_disjoint(gamma, "gamma", flags, segments, advantages);
  shaping_args<float, space> args{as_bytes(as_const_view(flags)), {}, as_const_view(segments),
                                  as_const_view(advantages), as_view(gamma), options};
  const auto run = [&](const auto& a) {
    if constexpr (rule_shaping_policy<Shaping>) backend<Policy>::shaping_factors(policy, a, rule);
    else backend<Policy>::shaping_factors_with(policy, a, shaping);
  };
  if constexpr (with_entropies) {
    static_assert(Entropies::rank() == 2, "rhythm: entropies must have rank 2: [B, N]");
    static_assert(input_element<typename Entropies::value_type>, "rhythm: entropies must hold float, bfloat16 or half");
    check_extents(*entropies, "entropies", "[B, N]", B, N);
    check_disjoint(gamma, "gamma", *entropies);
    run(shaping_args<typename Entropies::value_type, space>{args.flags, as_const_view(*entropies), args.segments,
                                                           args.advantages, args.gamma, options});
  } else {
    if (needs_entropies) fail_missing_entropies();
    run(args);
  }
}

}  // namespace detail

/// Shaping factors gamma of every token of a batch, through a shaping policy (policies.hpp,
/// shaping::any, or a user policy on the host: shaping_policy.hpp).
///
/// flags      [B, N] token_flag bits (tokens stage); only response positions are read
/// segments   [B]    rhythm::segment per sequence
/// advantages [B]    float: each sequence's GRPO advantage A_b; finite; read for the sign mode
/// gamma      [B, N] float out: at response positions the policy's gamma after the options
///                   (shaping_options: sign mode, then mean-preserving rescaling, then floor);
///                   1 at every other position (prompt and padding), and at every position of a
///                   response the sign mode leaves out
/// options    shaping_options
///
/// Validates the policy (its rule() or validate(), e.g. 'params.gamma_amp'), the options, shapes
/// and overlap, then the backend checks segments and finiteness, computes every response's gamma
/// into a staging buffer, checks that a user policy wrote finite gamma >= 0 (and a positive mean
/// under mean_preserving), and only then writes gamma; on any error nothing is written. A policy
/// that reads entropies needs the overload below. O(B N) plus the policy's cost (O(n) per response
/// for the built-ins); O(sum of |R|) staging.
template <class Policy, shaping_policy Shaping, strided_tensor Flags, strided_tensor Segments,
          strided_tensor Advantages, strided_tensor Gamma>
void shaping_factors(const Policy& policy, const Shaping& shaping, const Flags& flags, const Segments& segments,
                     const Advantages& advantages, const Gamma& gamma, const shaping_options& options = {}) {
  if constexpr (detail::check_policy<Policy, Flags, Segments, Advantages, Gamma>())
    detail::shaping_factors(policy, shaping, flags, static_cast<const void*>(nullptr), segments, advantages, gamma,
                            options);
}

/// As above, with per-token entropies for policies that read them (shaping::entropy, or a user
/// policy via shaping_context::entropies).
///
/// entropies  [B, N] float, bfloat16 or half; finite at response positions (others are not read)
///
/// The entropies are an input, so by DESIGN §2's fixed order they come after flags and before
/// the outputs.
template <class Policy, shaping_policy Shaping, strided_tensor Flags, strided_tensor Entropies,
          strided_tensor Segments, strided_tensor Advantages, strided_tensor Gamma>
void shaping_factors(const Policy& policy, const Shaping& shaping, const Flags& flags, const Entropies& entropies,
                     const Segments& segments, const Advantages& advantages, const Gamma& gamma,
                     const shaping_options& options = {}) {
  if constexpr (detail::check_policy<Policy, Flags, Entropies, Segments, Advantages, Gamma>())
    detail::shaping_factors(policy, shaping, flags, &entropies, segments, advantages, gamma, options);
}

/// Shaped advantages A~[b, t] = gamma[b, t] * A_b at response positions t in R_b, 0 elsewhere.
///
/// gamma      [B, N] float (shaping_factors output); finite at response positions (others not read)
/// advantages [B]    float; finite
/// segments   [B]    rhythm::segment per sequence
/// out        [B, N] float out: every element is written
///
/// One float multiplication per token, so gamma = 1 (shaping::uniform) gives A~ = A bit for bit.
/// O(B N).
template <class Policy, strided_tensor Gamma, strided_tensor Advantages, strided_tensor Segments, strided_tensor Out>
void shaped_advantages(const Policy& policy, const Gamma& gamma, const Advantages& advantages,
                       const Segments& segments, const Out& out) {
  if constexpr (detail::check_policy<Policy, Gamma, Advantages, Segments, Out>()) {
    static_assert(Gamma::rank() == 2 && Out::rank() == 2, "rhythm: gamma and out must have rank 2: [B, N]");
    static_assert(Advantages::rank() == 1, "rhythm: advantages must have rank 1: [B]");
    static_assert(std::is_same_v<typename Gamma::value_type, float>, "rhythm: gamma must be a view of float");
    static_assert(std::is_same_v<typename Advantages::value_type, float>, "rhythm: advantages must be a view of float");
    static_assert(std::is_same_v<element_of<Out>, float>, "rhythm: out must be a writable view of float");
    const std::int64_t B = gamma.extent(0), N = gamma.extent(1);
    detail::check_segments_shape(segments, B);
    detail::check_extents(advantages, "advantages", "[B]", B);
    detail::check_output(out, "out");
    detail::check_extents(out, "out", "[B, N]", B, N);
    detail::check_disjoint(out, "out", gamma, advantages, segments);
    backend<Policy>::shaped_advantages(policy, shaped_advantage_args<memory_space_of<Gamma>>{
                                                   as_const_view(gamma), as_const_view(advantages),
                                                   as_const_view(segments), as_view(out)});
  }
}

}  // namespace rhythm
