#pragma once
/// The CUDA backend behind exec::cuda: rhythm::backend<exec::cuda>, one line per operation, as
/// cpu/backend.hpp for the host. Each operation queues its kernels on policy.stream, takes its
/// scratch from policy.workspace (rhythm::cuda::*_workspace_size) and records value errors in
/// policy.status (cuda/runtime.cuh); cuda::throw_if_error(policy) turns them into rhythm::error.
///
/// Host-only, by design: rhythm_statistics and the PPO-clip reference objective (they return
/// host values and serve analysis and tests), and user-written shaping policies (their shape()
/// is host code); each is a compile-time error with exec::cuda.
#include "../core/credit_types.hpp"
#include "../core/execution.hpp"
#include "../core/head_types.hpp"
#include "../core/signal_types.hpp"
#include "../core/token_types.hpp"
#include "credit.cuh"
#include "heads.cuh"
#include "maps_signals.cuh"
#include "qk_signals.cuh"
#include "runtime.cuh"
#include "tokens.cuh"

namespace rhythm {
namespace cuda {

template <class>
inline constexpr bool host_only = false;

struct device_backend {
  using memory_space = device_space;
  using D = device_space;
  using P = exec::cuda;

  // heads/
  static void head_groups(const P& p, const head_group_args<D>& a) { detail::head_groups(p, a); }
  static void pooled_head_groups(const P& p, const pooled_head_group_args<D>& a) { detail::pooled_head_groups(p, a); }
  // signals/
  template <class T>
  static void head_signals_from_maps(const P& p, const maps_signal_args<T, D>& a) { detail::head_signals_from_maps(p, a); }
  template <class T>
  static void head_signals_from_qk(const P& p, const qk_signal_args<T, D>& a) { detail::head_signals_from_qk(p, a); }
  static void group_mean(const P& p, const group_mean_args<D>& a) { detail::group_mean(p, a); }
  // tokens/
  template <class T>
  static void waad_jumps(const P& p, const waad_jumps_args<T, D>& a) { detail::waad_jumps(p, a); }
  template <class T>
  static void top_q(const P& p, const top_q_args<T, D>& a) { detail::top_q(p, a); }
  template <class W, class F>
  static void token_sets(const P& p, const token_sets_args<W, F, D>& a) { detail::token_sets(p, a); }
  template <class T>
  static void local_peaks(const P& p, const local_peaks_args<T, D>& a) { detail::local_peaks(p, a); }
  template <class W, class F, class E>
  static rhythm_stats rhythm_statistics(const P&, const rhythm_stats_args<W, F, E, D>&) {
    static_assert(host_only<W>, "rhythm: rhythm_statistics is host-only; copy waad, fai (and entropy) to the host "
                                "and call it with rhythm::exec::seq or rhythm::exec::par");
    return {};
  }
  // credit/
  template <class R>
  static void grpo_advantages(const P& p, const advantage_args<R, D>& a) { detail::grpo_advantages(p, a); }
  template <class E>
  static void shaping_factors(const P& p, const shaping_args<E, D>& a, const shaping_rule& rule) {
    detail::shaping_factors(p, a, rule);
  }
  template <class E, class Policy>
  static void shaping_factors_with(const P&, const shaping_args<E, D>&, const Policy&) {
    static_assert(host_only<Policy>, "rhythm: a user-written shaping policy runs on the host only; with "
                                     "rhythm::exec::cuda use a built-in policy (rhythm::shaping::*, shaping::any)");
  }
  static void shaped_advantages(const P& p, const shaped_advantage_args<D>& a) { detail::shaped_advantages(p, a); }
  template <class T>
  static ppo_result ppo_clip_objective(const P&, const ppo_args<T, D>&) {
    static_assert(host_only<T>, "rhythm: ppo_clip_objective is a host-only reference; use the LibTorch adapter's "
                                "rhythm::torch::ppo_clip_loss for CUDA tensors");
    return {};
  }
};

}  // namespace cuda

template <>
struct backend<exec::cuda> : cuda::device_backend {};

}  // namespace rhythm
