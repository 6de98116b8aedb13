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
/// Every metadata check of every stage (parameters, the policy, extents, strides, overlap of the
/// outputs with each other and with every input) runs before the first stage; values are checked
/// by each stage's backend; gamma and shaped are written only by the last step, after everything
/// else succeeded. On error a rhythm::error is thrown and gamma and shaped are untouched (the
/// intermediates are then unspecified). Host backends (the buffers are host memory).
#include <cstdint>
#include <utility>
#include <vector>

#include "core/checks.hpp"
#include "core/credit_types.hpp"
#include "core/execution.hpp"
#include "core/head_types.hpp"
#include "core/signal_types.hpp"
#include "core/token_types.hpp"
#include "cpu/backend.hpp"
#include "credit/advantages.hpp"
#include "credit/shaping.hpp"
#include "heads/head_groups.hpp"
#include "signals/group_signals.hpp"
#include "signals/head_signals.hpp"
#include "tokens/token_sets.hpp"

namespace rhythm {

/// Every parameter of the chain, each owned once: the horizons of anchor eligibility are those of
/// `signals`, the q and bottom of T_loc and T_glob those of `selection`.
struct pipeline_params {
  signal_params signals{};        ///< W, H_lo, H_hi (FAI and anchor eligibility), scale
  head_group_params groups{};     ///< share f of heads in each group
  bool pooled_groups = false;     ///< rank heads over the batch instead of per sequence
  top_q_params selection{};       ///< q and bottom of T_loc and T_glob
  dominance_params dominance{};   ///< k and tau_Delta of the dominated anchors
  advantage_params advantages{};  ///< std normalisation (false: Dr. GRPO)
  shaping_options shaping{};      ///< sign mode, floor, mean preservation

  /// The token_sets parameters these imply.
  token_params tokens() const { return {selection, dominance, signals.horizon}; }
};

/// Extents of a pipeline problem: B sequences, H heads (layers stacked on the head axis), length N.
struct pipeline_shape {
  std::int64_t batch = 0, heads = 0, length = 0;
};

namespace detail {

/// Every field of `params` in its domain (errc::bad_parameter naming the field, e.g. 'params.signals.window').
inline void check_pipeline_params(const pipeline_params& params) {
  check_signal_params(params.signals, "params.signals");
  check_head_group_params(params.groups, "params.groups.fraction");
  check_top_q_params(params.selection, "params.selection");
  check_dominance_params(params.dominance, "params.dominance");
  check_advantage_params(params.advantages, "params.advantages.epsilon");
  check_shaping_options(params.shaping, "params.shaping");
}

template <strided_tensor X>
pipeline_shape pipeline_shape_of(const X& x) {
  return {x.extent(0), x.extent(1), x.extent(2)};
}

/// The signals stage of a pipeline, as a callable on a policy (the pipeline's, or one with the
/// rest of a device workspace) and the pipeline's buffers, plus the check that an output does not
/// overlap the inputs it reads.
template <class Run, class Disjoint>
struct pipeline_signals {
  Run run;                    ///< run(policy, span, waad, fai, signal_params)
  Disjoint check_disjoint;    ///< check_disjoint(output, name)
  std::int64_t kv_heads = 0;  ///< Hkv of the Q/K path (0: from maps)
  std::int64_t head_dim = 0;  ///< d of the Q/K path (0: from maps)
};
template <class Policy, class Maps, class Segments>
auto pipeline_maps_signals(const Policy&, const Maps& maps, const Segments& segments) {
  return pipeline_signals{[&](const Policy& stage, auto span, auto waad, auto fai, const signal_params& sp) {
                            head_signals_from_maps(stage, maps, segments, span, waad, fai, sp);
                          },
                          [&](const auto& out, const char* name) { check_disjoint(out, name, maps); }};
}
template <class Policy, class Q, class K, class Segments>
auto pipeline_qk_signals(const Policy&, const Q& q, const K& k, const Segments& segments) {
  return pipeline_signals{[&](const Policy& stage, auto span, auto waad, auto fai, const signal_params& sp) {
                            head_signals_from_qk(stage, q, k, segments, span, waad, fai, sp);
                          },
                          [&](const auto& out, const char* name) { check_disjoint(out, name, q, k); },
                          k.extent(1), k.extent(3)};
}

/// Every parameter and metadata check of a pipeline run, before any stage runs (both backends).
template <strided_tensor Segments, strided_tensor Rewards, strided_tensor GroupIds, class Entropies,
          shaping_policy Shaping, strided_tensor Gamma, strided_tensor Shaped, class Signals>
void check_pipeline_run(const pipeline_shape& s, const Segments& segments, const Rewards& rewards,
                        const GroupIds& group_ids, const Entropies* entropies, const Shaping& shaping,
                        const Gamma& gamma, const Shaped& shaped, const pipeline_params& params,
                        const Signals& signals) {
  static_assert(Gamma::rank() == 2 && Shaped::rank() == 2, "rhythm: gamma and shaped must have rank 2: [B, N]");
  static_assert(std::is_same_v<element_of<Gamma>, float> && std::is_same_v<element_of<Shaped>, float>,
                "rhythm: gamma and shaped must be writable views of float");
  const std::int64_t B = s.batch, N = s.length;
  check_pipeline_params(params);
  if constexpr (rule_shaping_policy<Shaping>) {
    if (shaping.rule().needs_entropies() && !entropies) fail_missing_entropies();
  } else {
    validate_policy(shaping);
    if (policy_needs_entropies<Shaping>() && !entropies) fail_missing_entropies();
  }
  check_segments_shape(segments, B);
  check_extents(rewards, "rewards", "[B]", B);
  check_extents(group_ids, "group_ids", "[B]", B);
  if constexpr (!std::is_void_v<Entropies>) check_extents(*entropies, "entropies", "[B, N]", B, N);
  check_extents(gamma, "gamma", "[B, N]", B, N);
  check_extents(shaped, "shaped", "[B, N]", B, N);
  check_output(gamma, "gamma");
  check_output(shaped, "shaped");
  expects(!may_overlap(gamma, shaped), errc::aliasing, "gamma, shaped", "non-overlapping outputs",
          "overlapping memory");
  for (const auto& [out, name] : {std::pair{as_view(gamma), "gamma"}, std::pair{as_view(shaped), "shaped"}}) {
    check_disjoint(out, name, segments, rewards, group_ids);
    if constexpr (!std::is_void_v<Entropies>) check_disjoint(out, name, *entropies);
    signals.check_disjoint(out, name);
  }
}

/// The public entry points of a credit pipeline, shared by rhythm::credit_pipeline (host) and
/// rhythm::cuda::credit_pipeline: each forwards to Derived::run with the signals stage it needs.
template <class Derived>
class pipeline_entry_points {
  static constexpr const void* no_entropies = nullptr;
  Derived& self() { return static_cast<Derived&>(*this); }

 public:
  /// gamma and shaped advantages from attention maps.
  ///
  /// maps      [B, H, N, N] float/bf16/half (head_signals_from_maps)
  /// segments  [B] rhythm::segment;  rewards [B] float;  group_ids [B] std::int64_t (GRPO groups)
  /// shaping   a shaping_policy (rhythm::shaping::coupled_rhythm{}, shaping::any, ...)
  /// gamma     [B, N] float out: gamma_t at response positions, 1 elsewhere
  /// shaped    [B, N] float out: gamma_t A_b at response positions, 0 elsewhere
  /// Cost: the signals stage (one pass over the maps) plus O(B H N) for the rest.
  template <class Policy, strided_tensor Maps, strided_tensor Segments, strided_tensor Rewards, strided_tensor GroupIds,
            shaping_policy Shaping, strided_tensor Gamma, strided_tensor Shaped>
  decltype(auto) run_from_maps(const Policy& policy, const Maps& maps, const Segments& segments, const Rewards& rewards,
                               const GroupIds& group_ids, const Shaping& shaping, const Gamma& gamma,
                               const Shaped& shaped, const pipeline_params& params = {}) {
    return self().run(policy, pipeline_shape_of(maps), segments, rewards, group_ids, no_entropies, shaping, gamma,
                      shaped, params, pipeline_maps_signals(policy, maps, segments));
  }

  /// As run_from_maps, from post-RoPE q [B, Hq, N, d] and k [B, Hkv, N, d] (head_signals_from_qk):
  /// no N x N map is built. Cost: the Q/K signals stage plus O(B H N).
  template <class Policy, strided_tensor Q, strided_tensor K, strided_tensor Segments, strided_tensor Rewards,
            strided_tensor GroupIds, shaping_policy Shaping, strided_tensor Gamma, strided_tensor Shaped>
  decltype(auto) run_from_qk(const Policy& policy, const Q& q, const K& k, const Segments& segments,
                             const Rewards& rewards, const GroupIds& group_ids, const Shaping& shaping,
                             const Gamma& gamma, const Shaped& shaped, const pipeline_params& params = {}) {
    return self().run(policy, pipeline_shape_of(q), segments, rewards, group_ids, no_entropies, shaping, gamma, shaped,
                      params, pipeline_qk_signals(policy, q, k, segments));
  }

  /// run_from_qk with token entropies [B, N] (float/bf16/half), for policies that read them
  /// (rhythm::shaping::entropy). Entropies are an input, so they come before the shaping policy.
  template <class Policy, strided_tensor Q, strided_tensor K, strided_tensor Segments, strided_tensor Rewards,
            strided_tensor GroupIds, strided_tensor Entropies, shaping_policy Shaping, strided_tensor Gamma,
            strided_tensor Shaped>
  decltype(auto) run_from_qk(const Policy& policy, const Q& q, const K& k, const Segments& segments,
                             const Rewards& rewards, const GroupIds& group_ids, const Entropies& entropies,
                             const Shaping& shaping, const Gamma& gamma, const Shaped& shaped,
                             const pipeline_params& params = {}) {
    return self().run(policy, pipeline_shape_of(q), segments, rewards, group_ids, &entropies, shaping, gamma, shaped,
                      params, pipeline_qk_signals(policy, q, k, segments));
  }

  /// run_from_maps with token entropies [B, N].
  template <class Policy, strided_tensor Maps, strided_tensor Segments, strided_tensor Rewards, strided_tensor GroupIds,
            strided_tensor Entropies, shaping_policy Shaping, strided_tensor Gamma, strided_tensor Shaped>
  decltype(auto) run_from_maps(const Policy& policy, const Maps& maps, const Segments& segments, const Rewards& rewards,
                               const GroupIds& group_ids, const Entropies& entropies, const Shaping& shaping,
                               const Gamma& gamma, const Shaped& shaped, const pipeline_params& params = {}) {
    return self().run(policy, pipeline_shape_of(maps), segments, rewards, group_ids, &entropies, shaping, gamma, shaped,
                      params, pipeline_maps_signals(policy, maps, segments));
  }
};

}  // namespace detail

class credit_pipeline : public detail::pipeline_entry_points<credit_pipeline> {
 public:
  credit_pipeline() = default;
  explicit credit_pipeline(const pipeline_shape& largest) { reserve(largest); }

  /// Allocates the buffers for problems up to `largest`: O(B H N) floats.
  void reserve(const pipeline_shape& largest) {
    const std::int64_t B = largest.batch, H = largest.heads, N = largest.length;
    detail::expects(B >= 0 && H >= 0 && N >= 0, errc::bad_parameter, "largest", "non-negative extents",
                    detail::text(B, ", ", H, ", ", N));
    span_.reserve(B * H), head_waad_.reserve(B * H * N), head_fai_.reserve(B * H * N), roles_.reserve(B * H);
    waad_.reserve(B * N), fai_.reserve(B * N), flags_.reserve(B * N), gamma_.reserve(B * N);
    thresholds_.reserve(B * token_threshold::count), advantages_.reserve(B);
  }

  // Intermediates of the last run (views into the pipeline's buffers; valid until the next run).
  view<const float, 2> head_spans() const { return {span_.data(), {shape_.batch, shape_.heads}}; }  ///< [B, H]
  /// head_role bits [B, H] (with pooled_groups every row is the same one)
  view<const head_role, 2> head_roles() const {
    if (pooled_) return {roles_.data(), {shape_.batch, shape_.heads}, {0, 1}};
    return {roles_.data(), {shape_.batch, shape_.heads}};
  }
  view<const float, 3> head_waad() const { return {head_waad_.data(), {shape_.batch, shape_.heads, shape_.length}}; }
  view<const float, 3> head_fai() const { return {head_fai_.data(), {shape_.batch, shape_.heads, shape_.length}}; }
  view<const float, 2> waad() const { return {waad_.data(), {shape_.batch, shape_.length}}; }  ///< local-group WAAD [B, N]
  view<const float, 2> fai() const { return {fai_.data(), {shape_.batch, shape_.length}}; }    ///< global-group FAI [B, N]
  view<const token_flag, 2> flags() const {  ///< token_flag bits [B, N]
    return {flags_.data(), {shape_.batch, shape_.length}};
  }
  view<const float, 2> thresholds() const { return {thresholds_.data(), {shape_.batch, token_threshold::count}}; }
  view<const float, 1> advantages() const { return {advantages_.data(), {shape_.batch}}; }  ///< A_b [B]

 private:
  friend class detail::pipeline_entry_points<credit_pipeline>;

  template <class Policy, strided_tensor Segments, strided_tensor Rewards, strided_tensor GroupIds, class Entropies,
            shaping_policy Shaping, strided_tensor Gamma, strided_tensor Shaped, class Signals>
  pipeline_diagnostics run(const Policy& policy, const pipeline_shape& s, const Segments& segments,
                           const Rewards& rewards, const GroupIds& group_ids, const Entropies* entropies,
                           const Shaping& shaping, const Gamma& gamma, const Shaped& shaped,
                           const pipeline_params& params, const Signals& signals) {
    if constexpr (detail::check_policy<Policy, Segments, Rewards, GroupIds, Gamma, Shaped>()) {
      static_assert(std::is_same_v<typename backend<Policy>::memory_space, host_space>,
                    "rhythm: credit_pipeline keeps its buffers in host memory: use a host policy");
      detail::check_pipeline_run(s, segments, rewards, group_ids, entropies, shaping, gamma, shaped, params, signals);
      const std::int64_t B = s.batch, H = s.heads, N = s.length;
      shape_ = s;
      pooled_ = params.pooled_groups;
      span_.resize(B * H), head_waad_.resize(B * H * N), head_fai_.resize(B * H * N);
      roles_.resize(pooled_ ? H : B * H), waad_.resize(B * N), fai_.resize(B * N), flags_.resize(B * N);
      gamma_.resize(B * N), thresholds_.resize(B * token_threshold::count), advantages_.resize(B);
      const view<float, 2> span(span_.data(), {B, H}), waad(waad_.data(), {B, N}), fai(fai_.data(), {B, N});
      const view<float, 3> head_waad(head_waad_.data(), {B, H, N}), head_fai(head_fai_.data(), {B, H, N});
      const view<token_flag, 2> flags(flags_.data(), {B, N});
      const view<float, 2> staged_gamma(gamma_.data(), {B, N});
      const view<float, 1> advantages(advantages_.data(), {B});

      signals.run(policy, span, head_waad, head_fai, params.signals);
      const auto group_means = [&](const auto& roles) {
        group_mean(policy, head_waad, roles, head_role::local, waad);
        group_mean(policy, head_fai, roles, head_role::global, fai);
      };
      if (pooled_) {
        const view<head_role, 1> roles(roles_.data(), {H});
        pooled_head_groups(policy, span, roles, params.groups);
        group_means(roles);
      } else {
        const view<head_role, 2> roles(roles_.data(), {B, H});
        head_groups(policy, span, roles, params.groups);
        group_means(roles);
      }
      token_sets(policy, waad, fai, segments, flags, view<float, 2>(thresholds_.data(), {B, token_threshold::count}),
                 params.tokens());
      grpo_advantages(policy, rewards, group_ids, advantages, params.advantages);
      if constexpr (std::is_void_v<Entropies>)
        shaping_factors(policy, shaping, flags, segments, advantages, staged_gamma, params.shaping);
      else
        shaping_factors(policy, shaping, flags, *entropies, segments, advantages, staged_gamma, params.shaping);
      return backend<Policy>::credit_output(
          policy, credit_output_args<host_space>{staged_gamma, advantages, detail::as_bytes(as_const_view(flags)),
                                                 as_const_view(segments),
                                                 as_view(gamma), as_view(shaped)});
    } else {
      return {};
    }
  }

  pipeline_shape shape_{};
  bool pooled_ = false;
  std::vector<float> span_, head_waad_, head_fai_, waad_, fai_, gamma_, thresholds_, advantages_;
  std::vector<head_role> roles_;
  std::vector<token_flag> flags_;
};

}  // namespace rhythm
