#pragma once
/// The one-call path: attention (maps, or Q and K) + segments + rewards + group ids -> per-token
/// shaping factors gamma and shaped advantages, with diagnostics.
///
///   per-head signals (Eq. 7, 9, 10) -> head groups (Eq. 8) -> group WAAD and FAI -> token sets
///   (T_loc, T_glob, D, intro) -> GRPO advantages -> gamma (the shaping policy) -> A~ = gamma A
///
/// Plan/run split: a credit_pipeline owns every intermediate buffer. Construct (or reserve) it
/// once for the largest batch a trainer will see; each run then reuses the buffers and reshapes
/// them to the run's [B, H, N] (a larger problem grows them). The intermediates of the last run
/// stay readable through the accessors, for logging and analysis.
///
/// Everything is validated before the first output is written; on error a rhythm::error is thrown
/// and gamma and shaped are untouched (the intermediates are then unspecified).
#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "credit/advantages.hpp"
#include "credit/shaping.hpp"
#include "heads/head_groups.hpp"
#include "signals/group_signals.hpp"
#include "signals/head_signals.hpp"
#include "tokens/token_sets.hpp"

namespace rhythm {

struct pipeline_params {
  signal_params signals{};          ///< W, H_lo, H_hi (also used for anchor eligibility), scale
  head_group_params groups{};       ///< share f of heads in each group
  bool pooled_groups = false;       ///< rank heads over the batch instead of per sequence
  token_params tokens{};            ///< q, bottom, k, tau_Delta mode; tokens.signals is replaced by `signals`
  advantage_params advantages{};    ///< std normalisation (false: Dr. GRPO)
  shaping_options shaping{};        ///< sign mode, bottom (entropy policy), floor, mean preservation
};

/// What one run found, summed over the batch's response tokens.
struct pipeline_diagnostics {
  std::int64_t response_tokens = 0;
  std::int64_t preplan = 0, anchor = 0, dominated = 0, intro = 0;  ///< |T_loc|, |T_glob|, |D|, |intro(D)|
  double mean_gamma = 0.0;       ///< mean gamma over response tokens (1 when there are none)
  double amplified_share = 0.0;  ///< share of response tokens with gamma > 1
};

/// Extents of a pipeline problem: B sequences, H heads (layers stacked on the head axis), length N.
struct pipeline_shape {
  std::int64_t batch = 0, heads = 0, length = 0;
};

class credit_pipeline {
 public:
  credit_pipeline() = default;
  explicit credit_pipeline(const pipeline_shape& largest) { reserve(largest); }

  /// Allocates the buffers for problems up to `largest`: O(B H N) floats.
  void reserve(const pipeline_shape& largest) {
    const std::int64_t B = largest.batch, H = largest.heads, N = largest.length;
    detail::require(B >= 0 && H >= 0 && N >= 0, errc::bad_parameter, "largest", "non-negative extents",
                    std::to_string(B) + ", " + std::to_string(H) + ", " + std::to_string(N));
    span_.reserve(B * H), head_waad_.reserve(B * H * N), head_fai_.reserve(B * H * N), roles_.reserve(B * H);
    waad_.reserve(B * N), fai_.reserve(B * N), flags_.reserve(B * N), thresholds_.reserve(B * token_threshold::count);
    advantages_.reserve(B);
  }

  /// gamma and shaped advantages from attention maps.
  ///
  /// maps      [B, H, N, N] float/bf16/half (head_signals_from_maps)
  /// segments  [B] rhythm::segment;  rewards [B] float;  group_ids [B] std::int64_t (GRPO groups)
  /// shaping   a shaping_policy (rhythm::shaping::coupled_rhythm{}, ...)
  /// gamma     [B, N] float out: gamma_t at response positions, 1 elsewhere
  /// shaped    [B, N] float out: gamma_t A_b at response positions, 0 elsewhere
  /// Cost: the signals stage (one pass over the maps) plus O(B H N) for the rest.
  template <class Policy, strided_tensor Maps, strided_tensor Segments, strided_tensor Rewards, strided_tensor GroupIds,
            shaping_policy Shaping, strided_tensor Gamma, strided_tensor Shaped>
  pipeline_diagnostics run_from_maps(Policy policy, const Maps& maps, const Segments& segments, const Rewards& rewards,
                                     const GroupIds& group_ids, const Shaping& shaping, const Gamma& gamma,
                                     const Shaped& shaped, const pipeline_params& params = {}) {
    return run(policy, shape_of(maps, maps.extent(1)), segments, rewards, group_ids, no_entropies(), shaping, gamma,
               shaped, params, [&](auto span, auto waad, auto fai, const signal_params& sp) {
                 head_signals_from_maps(policy, maps, segments, span, waad, fai, sp);
               });
  }

  /// As run_from_maps, from post-RoPE q [B, Hq, N, d] and k [B, Hkv, N, d] (head_signals_from_qk):
  /// no N x N map is built. Cost: the Q/K signals stage plus O(B H N).
  template <class Policy, strided_tensor Q, strided_tensor K, strided_tensor Segments, strided_tensor Rewards,
            strided_tensor GroupIds, shaping_policy Shaping, strided_tensor Gamma, strided_tensor Shaped>
  pipeline_diagnostics run_from_qk(Policy policy, const Q& q, const K& k, const Segments& segments,
                                   const Rewards& rewards, const GroupIds& group_ids, const Shaping& shaping,
                                   const Gamma& gamma, const Shaped& shaped, const pipeline_params& params = {}) {
    return run(policy, shape_of(q, q.extent(1)), segments, rewards, group_ids, no_entropies(), shaping, gamma, shaped,
               params, [&](auto span, auto waad, auto fai, const signal_params& sp) {
                 head_signals_from_qk(policy, q, k, segments, span, waad, fai, sp);
               });
  }

  /// run_from_qk with token entropies [B, N] (float/bf16/half), for policies that read them
  /// (rhythm::shaping::entropy). Entropies are an input, so they come before the shaping policy.
  template <class Policy, strided_tensor Q, strided_tensor K, strided_tensor Segments, strided_tensor Rewards,
            strided_tensor GroupIds, strided_tensor Entropies, shaping_policy Shaping, strided_tensor Gamma,
            strided_tensor Shaped>
  pipeline_diagnostics run_from_qk(Policy policy, const Q& q, const K& k, const Segments& segments,
                                   const Rewards& rewards, const GroupIds& group_ids, const Entropies& entropies,
                                   const Shaping& shaping, const Gamma& gamma, const Shaped& shaped,
                                   const pipeline_params& params = {}) {
    return run(policy, shape_of(q, q.extent(1)), segments, rewards, group_ids, &entropies, shaping, gamma, shaped,
               params, [&](auto span, auto waad, auto fai, const signal_params& sp) {
                 head_signals_from_qk(policy, q, k, segments, span, waad, fai, sp);
               });
  }

  /// run_from_maps with token entropies [B, N].
  template <class Policy, strided_tensor Maps, strided_tensor Segments, strided_tensor Rewards, strided_tensor GroupIds,
            strided_tensor Entropies, shaping_policy Shaping, strided_tensor Gamma, strided_tensor Shaped>
  pipeline_diagnostics run_from_maps(Policy policy, const Maps& maps, const Segments& segments, const Rewards& rewards,
                                     const GroupIds& group_ids, const Entropies& entropies, const Shaping& shaping,
                                     const Gamma& gamma, const Shaped& shaped, const pipeline_params& params = {}) {
    return run(policy, shape_of(maps, maps.extent(1)), segments, rewards, group_ids, &entropies, shaping, gamma,
               shaped, params, [&](auto span, auto waad, auto fai, const signal_params& sp) {
                 head_signals_from_maps(policy, maps, segments, span, waad, fai, sp);
               });
  }

  // Intermediates of the last run (views into the pipeline's buffers; valid until the next run).
  view<const float, 2> head_spans() const { return {span_.data(), {shape_.batch, shape_.heads}}; }           ///< [B, H]
  /// head_role bits [B, H] (with pooled_groups every row is the same)
  view<const std::uint8_t, 2> head_roles() const { return {roles_.data(), {shape_.batch, shape_.heads}}; }
  view<const float, 3> head_waad() const { return {head_waad_.data(), {shape_.batch, shape_.heads, shape_.length}}; }
  view<const float, 3> head_fai() const { return {head_fai_.data(), {shape_.batch, shape_.heads, shape_.length}}; }
  view<const float, 2> waad() const { return {waad_.data(), {shape_.batch, shape_.length}}; }  ///< local-group WAAD [B, N]
  view<const float, 2> fai() const { return {fai_.data(), {shape_.batch, shape_.length}}; }    ///< global-group FAI [B, N]
  view<const std::uint8_t, 2> flags() const { return {flags_.data(), {shape_.batch, shape_.length}}; }  ///< token_flag bits
  view<const float, 2> thresholds() const { return {thresholds_.data(), {shape_.batch, token_threshold::count}}; }
  view<const float, 1> advantages() const { return {advantages_.data(), {shape_.batch}}; }  ///< A_b [B]

 private:
  static constexpr const std::nullptr_t* no_entropies() { return nullptr; }

  template <strided_tensor X>
  static pipeline_shape shape_of(const X& x, std::int64_t heads) {
    return {x.extent(0), heads, x.extent(2)};
  }

  template <class Policy, strided_tensor Segments, strided_tensor Rewards, strided_tensor GroupIds, class Entropies,
            shaping_policy Shaping, strided_tensor Gamma, strided_tensor Shaped, class Signals>
  pipeline_diagnostics run(Policy policy, const pipeline_shape& s, const Segments& segments, const Rewards& rewards,
                           const GroupIds& group_ids, const Entropies* entropies, const Shaping& shaping,
                           const Gamma& gamma, const Shaped& shaped, const pipeline_params& params,
                           Signals&& head_signals) {
    detail::check_policy<Policy, Segments, Rewards, GroupIds, Gamma, Shaped>();
    static_assert(Gamma::rank() == 2 && Shaped::rank() == 2, "rhythm: gamma and shaped must have rank 2: [B, N]");
    static_assert(std::is_same_v<element_of<Gamma>, float> && std::is_same_v<element_of<Shaped>, float>,
                  "rhythm: gamma and shaped must be writable views of float");
    const std::int64_t B = s.batch, H = s.heads, N = s.length;
    // Checks of everything the later stages would reject, so that no stage runs for nothing
    // and gamma is never written when shaped would be refused.
    token_params tp = params.tokens;
    tp.signals = params.signals;
    detail::check_signal_params(params.signals);
    detail::check_head_group_params(params.groups);
    detail::tokens::check_token_params(tp, "params.tokens.");
    detail::check_advantage_params(params.advantages);
    detail::check_shaping_options(params.shaping);
    detail::validate_policy(shaping);
    detail::check_segments(segments, B, N);
    detail::check_extents(rewards, "rewards", {B}, "[B]");
    detail::check_extents(group_ids, "group_ids", {B}, "[B]");
    detail::check_extents(gamma, "gamma", {B, N}, "[B, N]");
    detail::check_extents(shaped, "shaped", {B, N}, "[B, N]");
    detail::require(!detail::may_overlap(gamma, shaped), errc::aliasing, "gamma, shaped", "non-overlapping outputs",
                    "overlapping memory");

    shape_ = s;
    span_.resize(B * H), head_waad_.resize(B * H * N), head_fai_.resize(B * H * N);
    roles_.resize(B * H), waad_.resize(B * N), fai_.resize(B * N), flags_.resize(B * N);
    thresholds_.resize(B * token_threshold::count), advantages_.resize(B);
    const auto BH = std::array<std::int64_t, 2>{B, H};
    const auto BHN = std::array<std::int64_t, 3>{B, H, N};
    const auto BN = std::array<std::int64_t, 2>{B, N};
    const view<float, 2> span(span_.data(), BH), waad(waad_.data(), BN), fai(fai_.data(), BN);
    const view<float, 3> head_waad(head_waad_.data(), BHN), head_fai(head_fai_.data(), BHN);

    head_signals(span, head_waad, head_fai, params.signals);
    if (params.pooled_groups) {
      const view<std::uint8_t, 1> pooled(roles_.data(), {H});
      pooled_head_groups(policy, span, pooled, params.groups);
      for (std::int64_t b = 1; b < B; ++b) std::copy(roles_.begin(), roles_.begin() + H, roles_.begin() + b * H);
    } else {
      head_groups(policy, span, view<std::uint8_t, 2>(roles_.data(), BH), params.groups);
    }
    const view<const std::uint8_t, 2> roles(roles_.data(), BH);
    group_mean(policy, head_waad, roles, head_role::local, waad);
    group_mean(policy, head_fai, roles, head_role::global, fai);
    const view<std::uint8_t, 2> flags(flags_.data(), BN);
    token_sets(policy, waad, fai, segments, flags,
               view<float, 2>(thresholds_.data(), {B, token_threshold::count}), tp);
    const view<float, 1> advantages(advantages_.data(), {B});
    grpo_advantages(policy, rewards, group_ids, advantages, params.advantages);
    if constexpr (std::is_same_v<Entropies, std::nullptr_t>)
      shaping_factors(policy, shaping, flags, segments, advantages, gamma, params.shaping);
    else
      shaping_factors(policy, shaping, flags, *entropies, segments, advantages, gamma, params.shaping);
    shaped_advantages(policy, gamma, advantages, segments, shaped);
    return diagnose(segments, gamma);
  }

  template <strided_tensor Segments, strided_tensor Gamma>
  pipeline_diagnostics diagnose(const Segments& segments, const Gamma& gamma) const {
    pipeline_diagnostics d;
    double gamma_sum = 0;
    std::int64_t amplified = 0;
    for (std::int64_t b = 0; b < shape_.batch; ++b) {
      const segment g = detail::segment_at(segments, b);
      for (std::int64_t t = g.response_begin; t < g.end; ++t) {
        const std::uint8_t f = flags_[b * shape_.length + t];
        d.preplan += (f & token_flag::preplan) != 0, d.anchor += (f & token_flag::anchor) != 0;
        d.dominated += (f & token_flag::dominated) != 0, d.intro += (f & token_flag::intro) != 0;
        const float y = gamma.data_handle()[b * gamma.stride(0) + t * gamma.stride(1)];
        gamma_sum += y;
        amplified += y > 1.0f;
      }
      d.response_tokens += g.response_length();
    }
    d.mean_gamma = d.response_tokens ? gamma_sum / double(d.response_tokens) : 1.0;
    d.amplified_share = d.response_tokens ? double(amplified) / double(d.response_tokens) : 0.0;
    return d;
  }

  pipeline_shape shape_{};
  std::vector<float> span_, head_waad_, head_fai_, waad_, fai_, thresholds_, advantages_;
  std::vector<std::uint8_t> roles_, flags_;
};

}  // namespace rhythm
