#pragma once
/// Shaping factors gamma [B, N] from token flags through a shaping policy, and the shaped
/// advantages A~_t = gamma_t A_b (DESIGN §3; paper Eq. 15-19). A~ is a constant of the loss:
/// it is never differentiated.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <vector>

#include "../core/dtypes.hpp"
#include "../core/execution.hpp"
#include "../core/segments.hpp"
#include "../core/tensor.hpp"
#include "../cpu/parallel.hpp"
#include "common.hpp"
#include "policies.hpp"
#include "shaping_policy.hpp"

namespace rhythm {
namespace detail::credit {

/// Both shaping_factors overloads; `entropies` is null when none was given.
template <class Policy, shaping_policy Shaping, strided_tensor Flags, class Entropies, strided_tensor Segments,
          strided_tensor Advantages, strided_tensor Gamma>
void shaping_factors(Policy policy, const Shaping& shaping, const Flags& flags, const Entropies* entropies,
                     const Segments& segments, const Advantages& advantages, const Gamma& gamma,
                     const shaping_options& options) {
  static_assert(Flags::rank() == 2 && Gamma::rank() == 2, "rhythm: flags and gamma must have rank 2: [B, N]");
  static_assert(Advantages::rank() == 1, "rhythm: advantages must have rank 1: [B]");
  static_assert(std::is_same_v<typename Flags::value_type, std::uint8_t>,
                "rhythm: flags must be a view of std::uint8_t token_flag bits");
  static_assert(std::is_same_v<typename Advantages::value_type, float>, "rhythm: advantages must be a view of float");
  validate_policy(shaping);
  check_shaping_options(options);
  const std::int64_t B = flags.extent(0), N = flags.extent(1);
  check_segments(segments, B, N);
  require_extents(advantages, "advantages", {B}, "[B]");
  require_output<float>(gamma, "gamma");
  require_extents(gamma, "gamma", {B, N}, "[B, N]");
  require_disjoint(gamma, "gamma", flags, segments, advantages);
  if constexpr (!std::is_same_v<Entropies, std::nullptr_t>) {
    static_assert(Entropies::rank() == 2, "rhythm: entropies must have rank 2: [B, N]");
    static_assert(input_element<typename Entropies::value_type>, "rhythm: entropies must hold float, bfloat16 or half");
    require_extents(*entropies, "entropies", {B, N}, "[B, N]");
    require_disjoint(gamma, "gamma", *entropies);
    require_finite_in_responses(*entropies, segments, "entropies");
  } else if constexpr (policy_needs_entropies<Shaping>()) {
    fail(errc::shape_mismatch, "entropies", "an entropies view [B, N] for a policy that reads entropies",
         "none (call the shaping_factors overload that takes entropies)");
  }
  for (std::int64_t b = 0; b < B; ++b)
    if (const float a = at(advantages, b); !std::isfinite(a))
      fail_non_finite("advantages", a, "sequence " + std::to_string(b));

  // Stage every response's gamma so that nothing is written if a policy fails or misbehaves.
  std::vector<std::int64_t> offset(static_cast<std::size_t>(B) + 1, 0);
  for (std::int64_t b = 0; b < B; ++b) offset[b + 1] = offset[b] + segment_at(segments, b).response_length();
  std::vector<float> staged(static_cast<std::size_t>(offset[B]), 1.0f);
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(B));
  const int threads = cpu::thread_count(policy);
  std::vector<std::vector<std::uint8_t>> flag_scratch(cpu::worker_count(threads, B));
  std::vector<std::vector<float>> entropy_scratch(flag_scratch.size());
  cpu::parallel_for(threads, B, [&](std::int64_t b, int worker) {
    const segment g = segment_at(segments, b);
    const std::int64_t n = g.response_length();
    const float a = at(advantages, b);
    if (n == 0 || !sign_selects(options.sign, a)) return;
    try {
      auto& f = flag_scratch[worker];
      f.resize(static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < n; ++i) f[i] = at(flags, b, g.response_begin + i);
      shaping_context ctx{b, g.response_begin, a, f, {}, options.bottom};
      if constexpr (!std::is_same_v<Entropies, std::nullptr_t>) {
        auto& e = entropy_scratch[worker];
        e.resize(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) e[i] = value_at(*entropies, b, g.response_begin + i);
        ctx.entropies = e;
      }
      const std::span<float> out(staged.data() + offset[b], static_cast<std::size_t>(n));
      shaping.shape(ctx, out);
      double sum = 0.0;
      for (std::int64_t i = 0; i < n; ++i) {
        if (!(out[i] >= 0.0f && std::isfinite(out[i])))
          fail(std::isfinite(out[i]) ? errc::bad_parameter : errc::non_finite, "policy",
               "a shaping policy that writes finite gamma >= 0",
               std::to_string(out[i]) + " at sequence " + std::to_string(b) + ", position " +
                   std::to_string(g.response_begin + i));
        sum += out[i];
      }
      if (options.mean_preserving) {
        require(sum > 0.0, errc::bad_parameter, "policy", "gamma with a positive mean for options.mean_preserving",
                "mean 0 at sequence " + std::to_string(b));
        const double mean = sum / static_cast<double>(n);
        for (float& x : out) x = static_cast<float>(x / mean);
      }
      if (options.floor > 0.0)
        for (float& x : out) x = std::max(x, static_cast<float>(options.floor));
    } catch (...) {
      errors[b] = std::current_exception();
    }
  });
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);  // the lowest failing sequence, whatever the thread count

  cpu::parallel_for(threads, B, [&](std::int64_t b, int) {
    const segment g = segment_at(segments, b);
    for (std::int64_t t = 0; t < N; ++t)
      at(gamma, b, t) = g.in_response(t) ? staged[offset[b] + (t - g.response_begin)] : 1.0f;
  });
}

}  // namespace detail::credit

/// Shaping factors gamma of every token of a batch, through a shaping policy (policies.hpp, or
/// any type satisfying shaping_policy).
///
/// flags      [B, N] std::uint8_t token_flag bits (tokens stage); only response positions are read
/// segments   [B]    rhythm::segment per sequence
/// advantages [B]    float: each sequence's GRPO advantage A_b; finite; read for the sign mode
/// gamma      [B, N] float out: at response positions the policy's gamma after the options
///                   (shaping_options: sign mode, then mean-preserving rescaling, then floor);
///                   1 at every other position (prompt and padding), and at every position of a
///                   response the sign mode leaves out
/// options    shaping_options
///
/// Validates the policy (its validate(), e.g. 'params.q'), the options, shapes, segments and
/// finiteness, runs the policy per sequence in parallel into a staging buffer, checks that it wrote
/// finite gamma >= 0 (and a positive mean under mean_preserving), and only then writes gamma; on
/// any error nothing is written. A policy with needs_entropies needs the overload below.
/// O(B N) plus the policy's cost (O(n) per response for the built-ins); O(sum of |R|) staging.
template <class Policy, shaping_policy Shaping, strided_tensor Flags, strided_tensor Segments,
          strided_tensor Advantages, strided_tensor Gamma>
void shaping_factors(Policy policy, const Shaping& shaping, const Flags& flags, const Segments& segments,
                     const Advantages& advantages, const Gamma& gamma, const shaping_options& options = {}) {
  detail::check_policy<Policy, Flags, Segments, Advantages, Gamma>();
  detail::credit::shaping_factors(policy, shaping, flags, static_cast<const std::nullptr_t*>(nullptr), segments,
                                  advantages, gamma, options);
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
void shaping_factors(Policy policy, const Shaping& shaping, const Flags& flags, const Entropies& entropies,
                     const Segments& segments, const Advantages& advantages, const Gamma& gamma,
                     const shaping_options& options = {}) {
  detail::check_policy<Policy, Flags, Entropies, Segments, Advantages, Gamma>();
  detail::credit::shaping_factors(policy, shaping, flags, &entropies, segments, advantages, gamma, options);
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
void shaped_advantages(Policy policy, const Gamma& gamma, const Advantages& advantages, const Segments& segments,
                       const Out& out) {
  namespace dc = detail::credit;
  detail::check_policy<Policy, Gamma, Advantages, Segments, Out>();
  static_assert(Gamma::rank() == 2 && Out::rank() == 2, "rhythm: gamma and out must have rank 2: [B, N]");
  static_assert(Advantages::rank() == 1, "rhythm: advantages must have rank 1: [B]");
  static_assert(std::is_same_v<typename Gamma::value_type, float>, "rhythm: gamma must be a view of float");
  static_assert(std::is_same_v<typename Advantages::value_type, float>, "rhythm: advantages must be a view of float");
  const std::int64_t B = gamma.extent(0), N = gamma.extent(1);
  detail::check_segments(segments, B, N);
  dc::require_extents(advantages, "advantages", {B}, "[B]");
  dc::require_output<float>(out, "out");
  dc::require_extents(out, "out", {B, N}, "[B, N]");
  dc::require_disjoint(out, "out", gamma, advantages, segments);
  for (std::int64_t b = 0; b < B; ++b)
    if (const float a = dc::at(advantages, b); !std::isfinite(a))
      dc::fail_non_finite("advantages", a, "sequence " + std::to_string(b));
  dc::require_finite_in_responses(gamma, segments, "gamma");
  cpu::parallel_for(cpu::thread_count(policy), B, [&](std::int64_t b, int) {
    const segment g = detail::segment_at(segments, b);
    const float a = dc::at(advantages, b);
    for (std::int64_t t = 0; t < N; ++t) dc::at(out, b, t) = g.in_response(t) ? dc::at(gamma, b, t) * a : 0.0f;
  });
}

}  // namespace rhythm
