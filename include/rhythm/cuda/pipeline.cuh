#pragma once
/// rhythm::cuda::credit_pipeline: the one-call path of <rhythm/pipeline.hpp> on a CUDA stream.
///
///   maps or Q, K + segments + rewards + group ids -> gamma and shaped advantages [B, N]
///
/// The same entry points (run_from_maps, run_from_qk, with or without entropies), parameters and
/// metadata checks as rhythm::credit_pipeline, with device views and an exec::cuda policy. The
/// caller sizes the workspace (workspace_size_from_maps / workspace_size_from_qk); it holds every
/// intermediate (spans, per-head and group signals, roles, flags, thresholds, advantages, staged
/// gamma) and the diagnostics, which stay in device memory after the run (the accessors return
/// device views into it, valid until the workspace is reused). Nothing is allocated, nothing waits:
/// a run is a fixed sequence of kernels and memsets on policy.stream, so a CUDA graph can capture
/// it and replay it with identical results. Value errors go to policy.status (first in stage
/// order); gamma and shaped are written only by the last kernel, and only if no error was recorded.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "../pipeline.hpp"
#include "backend.cuh"
#include "runtime.cuh"

namespace rhythm::cuda {

class credit_pipeline : public rhythm::detail::pipeline_entry_points<credit_pipeline> {
 public:
  template <class T, std::size_t R>
  using device_view = view<T, R, device_space>;

  /// Workspace bytes of run_from_maps for maps [B, H, N, N] (`shape` = {B, H, N}): the
  /// intermediates, 4 (3 H N + 4 N + 6) B + H B + N B bytes and alignment, plus the largest stage's own.
  static std::size_t workspace_size_from_maps(const pipeline_shape& shape, const pipeline_params& params = {}) {
    return workspace_size(shape, params,
                          head_signals_from_maps_workspace_size(shape.batch, shape.heads, shape.length, params.signals));
  }
  /// Workspace bytes of run_from_qk for q [B, Hq, N, d] and k [B, Hkv, N, d] (`shape` = {B, Hq, N}).
  static std::size_t workspace_size_from_qk(const pipeline_shape& shape, std::int64_t kv_heads, std::int64_t head_dim,
                                            const pipeline_params& params = {}) {
    return workspace_size(shape, params,
                          head_signals_from_qk_workspace_size(shape.batch, shape.heads, kv_heads, shape.length,
                                                              head_dim, params.signals));
  }

  // Intermediates and diagnostics of the last run: device views into its workspace.
  device_view<const float, 2> head_spans() const { return {buffers_.span, {shape_.batch, shape_.heads}}; }
  device_view<const head_role, 2> head_roles() const {
    const auto roles = reinterpret_cast<const head_role*>(buffers_.roles);
    if (pooled_) return {roles, {shape_.batch, shape_.heads}, {0, 1}};
    return {roles, {shape_.batch, shape_.heads}};
  }
  device_view<const float, 3> head_waad() const { return {buffers_.head_waad, extents3()}; }
  device_view<const float, 3> head_fai() const { return {buffers_.head_fai, extents3()}; }
  device_view<const float, 2> waad() const { return {buffers_.waad, {shape_.batch, shape_.length}}; }
  device_view<const float, 2> fai() const { return {buffers_.fai, {shape_.batch, shape_.length}}; }
  device_view<const token_flag, 2> flags() const {
    return {reinterpret_cast<const token_flag*>(buffers_.flags), {shape_.batch, shape_.length}};
  }
  device_view<const float, 2> thresholds() const {
    return {buffers_.thresholds, {shape_.batch, token_threshold::count}};
  }
  device_view<const float, 1> advantages() const { return {buffers_.advantages, {shape_.batch}}; }
  /// The run's rhythm::pipeline_diagnostics, in device memory (copy it after the stream reached it).
  const pipeline_diagnostics* diagnostics() const { return buffers_.diagnostics; }

 private:
  friend class rhythm::detail::pipeline_entry_points<credit_pipeline>;

  struct buffers {
    float *span = nullptr, *head_waad = nullptr, *head_fai = nullptr, *waad = nullptr, *fai = nullptr;
    float *gamma = nullptr, *thresholds = nullptr, *advantages = nullptr;
    std::uint8_t *roles = nullptr, *flags = nullptr;
    pipeline_diagnostics* diagnostics = nullptr;
  };

  static buffers carve(detail::workspace_carver& c, const pipeline_shape& s, bool pooled) {
    const std::int64_t B = s.batch, H = s.heads, N = s.length;
    buffers b;
    b.span = c.take<float>(B * H), b.head_waad = c.take<float>(B * H * N), b.head_fai = c.take<float>(B * H * N);
    b.waad = c.take<float>(B * N), b.fai = c.take<float>(B * N), b.gamma = c.take<float>(B * N);
    b.thresholds = c.take<float>(B * token_threshold::count), b.advantages = c.take<float>(B);
    b.roles = c.take<std::uint8_t>(pooled ? H : B * H), b.flags = c.take<std::uint8_t>(B * N);
    b.diagnostics = c.take<pipeline_diagnostics>(1);
    return b;
  }

  /// The intermediates plus the largest workspace of one stage (the stages run one after another).
  static std::size_t workspace_size(const pipeline_shape& s, const pipeline_params& p, std::size_t signals) {
    const std::int64_t B = s.batch, H = s.heads, N = s.length;
    detail::workspace_carver c;
    carve(c, s, p.pooled_groups);
    const std::size_t stages = std::max({
        signals,
        p.pooled_groups ? pooled_head_groups_workspace_size(B, H) : head_groups_workspace_size(B, H),
        group_mean_workspace_size(B, H, N),
        token_sets_workspace_size(B, N, p.tokens()),
        grpo_advantages_workspace_size(B),
        shaping_factors_workspace_size(B, N),
        credit_output_workspace_size(B, N),
    });
    return detail::align_up(c.used()) + stages;
  }

  std::array<std::int64_t, 3> extents3() const { return {shape_.batch, shape_.heads, shape_.length}; }

  template <class Policy, strided_tensor Segments, strided_tensor Rewards, strided_tensor GroupIds, class Entropies,
            shaping_policy Shaping, strided_tensor Gamma, strided_tensor Shaped, class Signals>
  void run(const Policy& policy, const pipeline_shape& s, const Segments& segments, const Rewards& rewards,
           const GroupIds& group_ids, const Entropies* entropies, const Shaping& shaping, const Gamma& gamma,
           const Shaped& shaped, const pipeline_params& params, const Signals& signals) {
    if constexpr (rhythm::detail::check_policy<Policy, Segments, Rewards, GroupIds, Gamma, Shaped>()) {
      static_assert(std::is_same_v<Policy, exec::cuda>,
                    "rhythm: rhythm::cuda::credit_pipeline runs on rhythm::exec::cuda; use rhythm::credit_pipeline "
                    "for host policies");
      static_assert(rule_shaping_policy<Shaping>,
                    "rhythm: a user-written shaping policy runs on the host only; with rhythm::exec::cuda use a "
                    "built-in policy (rhythm::shaping::*, shaping::any)");
      rhythm::detail::check_pipeline_run(s, segments, rewards, group_ids, entropies, shaping, gamma, shaped, params,
                                         signals);
      const bool qk = signals.head_dim > 0;
      const std::size_t needed =
          qk ? workspace_size_from_qk(s, signals.kv_heads, signals.head_dim, params) : workspace_size_from_maps(s, params);
      detail::check_cuda_policy(policy, needed,
                                qk ? "credit_pipeline::workspace_size_from_qk" : "credit_pipeline::workspace_size_from_maps");

      const std::int64_t B = s.batch, H = s.heads, N = s.length;
      detail::workspace_carver c = detail::carver_of(policy);
      shape_ = s, pooled_ = params.pooled_groups, buffers_ = carve(c, s, pooled_);
      const exec::cuda stage = detail::after(policy, c.used());
      const buffers& b = buffers_;
      const device_view<float, 2> span(b.span, {B, H}), waad(b.waad, {B, N}), fai(b.fai, {B, N});
      const device_view<float, 3> head_waad(b.head_waad, {B, H, N}), head_fai(b.head_fai, {B, H, N});
      const device_view<token_flag, 2> flags(reinterpret_cast<token_flag*>(b.flags), {B, N});
      const device_view<float, 2> staged_gamma(b.gamma, {B, N});
      const device_view<float, 1> advantages(b.advantages, {B});

      signals.run(stage, span, head_waad, head_fai, params.signals);
      const auto group_means = [&](const auto& roles) {
        group_mean(stage, head_waad, roles, head_role::local, waad);
        group_mean(stage, head_fai, roles, head_role::global, fai);
      };
      const auto roles = reinterpret_cast<head_role*>(b.roles);
      if (pooled_) {
        const device_view<head_role, 1> r(roles, {H});
        pooled_head_groups(stage, span, r, params.groups);
        group_means(r);
      } else {
        const device_view<head_role, 2> r(roles, {B, H});
        head_groups(stage, span, r, params.groups);
        group_means(r);
      }
      token_sets(stage, waad, fai, segments, flags, device_view<float, 2>(b.thresholds, {B, token_threshold::count}),
                 params.tokens());
      grpo_advantages(stage, rewards, group_ids, advantages, params.advantages);
      if constexpr (std::is_void_v<Entropies>)
        shaping_factors(stage, shaping, flags, segments, advantages, staged_gamma, params.shaping);
      else
        shaping_factors(stage, shaping, flags, *entropies, segments, advantages, staged_gamma, params.shaping);
      detail::credit_output(stage,
                            credit_output_args<device_space>{staged_gamma, advantages,
                                                             rhythm::detail::as_bytes(as_const_view(flags)),
                                                             as_const_view(segments), as_view(gamma), as_view(shaped)},
                            b.diagnostics);
    }
  }

  pipeline_shape shape_{};
  bool pooled_ = false;
  buffers buffers_{};
};

}  // namespace rhythm::cuda
