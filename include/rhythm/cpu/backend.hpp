#pragma once
/// The CPU backend behind exec::seq and exec::par: rhythm::backend<exec::seq> and
/// rhythm::backend<exec::par>. This struct is the whole seam, one line per operation: each takes
/// the policy and the operation's flat arguments struct (core/*_types.hpp), checks the values it
/// reads (core/status.hpp) and only then writes. Every loop of the library lives in cpu/.
#include "../core/credit_types.hpp"
#include "../core/execution.hpp"
#include "../core/head_types.hpp"
#include "../core/signal_types.hpp"
#include "../core/token_types.hpp"
#include "credit.hpp"
#include "heads.hpp"
#include "maps_signals.hpp"
#include "parallel.hpp"
#include "qk_signals.hpp"
#include "statistics.hpp"
#include "tokens.hpp"

namespace rhythm {
namespace cpu {

struct host_backend {
  using memory_space = host_space;
  using H = host_space;

  // heads/
  template <class P> static void head_groups(P p, const head_group_args<H>& a) { cpu::head_groups(thread_count(p), a); }
  template <class P>
  static void pooled_head_groups(P p, const pooled_head_group_args<H>& a) { cpu::pooled_head_groups(thread_count(p), a); }
  // signals/
  template <class P, class T>
  static void head_signals_from_maps(P p, const maps_signal_args<T, H>& a) { maps_head_signals(thread_count(p), a); }
  template <class P, class T>
  static void head_signals_from_qk(P p, const qk_signal_args<T, H>& a) { qk_head_signals(thread_count(p), a); }
  template <class P> static void group_mean(P p, const group_mean_args<H>& a) { cpu::group_mean(thread_count(p), a); }
  // tokens/
  template <class P, class T>
  static void waad_jumps(P p, const waad_jumps_args<T, H>& a) { cpu::waad_jumps(thread_count(p), a); }
  template <class P, class T> static void top_q(P p, const top_q_args<T, H>& a) { cpu::top_q(thread_count(p), a); }
  template <class P, class W, class F>
  static void token_sets(P p, const token_sets_args<W, F, H>& a) { cpu::token_sets(thread_count(p), a); }
  template <class P, class T>
  static void local_peaks(P p, const local_peaks_args<T, H>& a) { cpu::local_peaks(thread_count(p), a); }
  template <class P, class W, class F, class E>
  static rhythm_stats rhythm_statistics(P p, const rhythm_stats_args<W, F, E, H>& a) {
    return cpu::rhythm_statistics(thread_count(p), a);
  }
  // credit/
  template <class P, class R>
  static void grpo_advantages(P p, const advantage_args<R, H>& a) { cpu::grpo_advantages(thread_count(p), a); }
  template <class P, class E>
  static void shaping_factors(P p, const shaping_args<E, H>& a, const shaping_rule& rule) {
    cpu::shaping_factors(thread_count(p), a, rule);
  }
  /// A user policy (host concept): runs its shape() on the host. Only host backends have this.
  template <class P, class E, class Policy>
  static void shaping_factors_with(P p, const shaping_args<E, H>& a, const Policy& policy) {
    cpu::shaping_factors_with(thread_count(p), a, policy);
  }
  template <class P>
  static void shaped_advantages(P p, const shaped_advantage_args<H>& a) { cpu::shaped_advantages(thread_count(p), a); }
  template <class P>
  static pipeline_diagnostics credit_output(P p, const credit_output_args<H>& a) {
    return cpu::credit_output(thread_count(p), a);
  }
  template <class P, class T>
  static ppo_result ppo_clip_objective(P p, const ppo_args<T, H>& a) {
    return cpu::ppo_clip_objective(thread_count(p), a);
  }
};

}  // namespace cpu

template <>
struct backend<exec::seq> : cpu::host_backend {};
template <>
struct backend<exec::par> : cpu::host_backend {};

}  // namespace rhythm
