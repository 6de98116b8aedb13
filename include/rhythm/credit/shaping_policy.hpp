#pragma once
/// Shaping policies: how a response's token sets become per-token factors gamma_t on the GRPO
/// advantage (DESIGN §3). Two kinds satisfy `shaping_policy`:
///
/// * Built-in policies (policies.hpp: uniform, local_chunk, global_anchor, coupled_rhythm, random,
///   entropy, and shaping::any to choose one at run time) reduce to a rhythm::shaping_rule through
///
///     rhythm::shaping_rule rule() const;   // validates the fields, throws rhythm::error
///
///   a trivially copyable description (a gamma table over the token-flag bits, or a per-token
///   selection rule) that every backend, a GPU included, runs without allocating.
///
/// * User policies run on the host backends only (exec::seq, exec::par). A user policy is a small
///   struct with one const member function
///
///     void shape(const rhythm::shaping_context& ctx, std::span<float> gamma) const;
///
///   that writes gamma for the n response positions of one sequence (gamma[i] is position
///   ctx.response_begin + i). Two optional members are honoured when present:
///
///     void validate() const;                          throws rhythm::error on bad fields (run first)
///     static constexpr bool needs_entropies = true;   shaping_factors then requires an entropies view
///
///   shaping_factors (shaping.hpp) calls shape() once per sequence with a non-empty response whose
///   advantage the sign mode selects, possibly from several threads at once (shape() must not
///   mutate shared state). Gamma must come out finite and >= 0.
///
///     struct first_tokens {  // a user policy: double the credit of the first 8 response tokens
///       void shape(const rhythm::shaping_context&, std::span<float> gamma) const {
///         for (std::size_t i = 0; i < gamma.size(); ++i) gamma[i] = i < 8 ? 2.0f : 1.0f;
///       }
///     };
///
/// Either kind then gets the options of rhythm::shaping_options (sign mode, mean preservation, floor).
#include <concepts>
#include <span>

#include "../core/credit_types.hpp"

namespace rhythm {

/// A built-in policy: `p.rule()` gives the device-runnable rule.
template <class P>
concept rule_shaping_policy = requires(const P& p) {
  { p.rule() } -> std::same_as<shaping_rule>;
};

/// A user policy, run on the host: `p.shape(ctx, gamma)` fills gamma.
template <class P>
concept host_shaping_policy = std::copy_constructible<P> &&
                              requires(const P& p, const shaping_context& ctx, std::span<float> gamma) {
                                { p.shape(ctx, gamma) } -> std::same_as<void>;
                              };

template <class P>
concept shaping_policy = rule_shaping_policy<P> || host_shaping_policy<P>;

namespace detail {

/// True if a user policy declares `static constexpr bool needs_entropies = true`.
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

}  // namespace detail
}  // namespace rhythm
