#pragma once
/// CPU backend of the credit stage: GRPO advantages, shaping factors (built-in rules and user
/// policies), shaped advantages, the pipeline's final write with its diagnostics, and the PPO-clip
/// reference objective.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "../core/credit_types.hpp"
#include "../core/dtypes.hpp"
#include "parallel.hpp"
#include "selection.hpp"
#include "values.hpp"

namespace rhythm::cpu {

template <class R>
void grpo_advantages(int threads, const advantage_args<R, host_space>& a) {
  const std::int64_t S = a.rewards.extent(0);
  raise(first_non_finite(a.rewards, value_argument::rewards, value_location::index));
  std::vector<std::int64_t> order(static_cast<std::size_t>(S));
  std::iota(order.begin(), order.end(), std::int64_t(0));
  std::stable_sort(order.begin(), order.end(), [&](std::int64_t i, std::int64_t j) { return a.group_ids(i) < a.group_ids(j); });
  std::vector<std::int64_t> starts;  // group g is order[starts[g], starts[g + 1])
  for (std::int64_t i = 0; i < S; ++i)
    if (i == 0 || a.group_ids(order[i]) != a.group_ids(order[i - 1])) starts.push_back(i);
  starts.push_back(S);
  const auto value = [&](std::int64_t i) -> double { return to_float(a.rewards(i)); };

  parallel_for(threads, static_cast<std::int64_t>(starts.size()) - 1, [&](std::int64_t g, int) {
    const std::int64_t lo = starts[g], hi = starts[g + 1], n = hi - lo;
    double sum = 0.0;
    for (std::int64_t i = lo; i < hi; ++i) sum += value(order[i]);
    const double mean = sum / static_cast<double>(n);
    double denom = 1.0;
    if (a.params.std_normalise && n > 1) {
      double ss = 0.0;
      for (std::int64_t i = lo; i < hi; ++i) {
        const double d = value(order[i]) - mean;
        ss += d * d;
      }
      denom = std::sqrt(ss / static_cast<double>(n - 1)) + static_cast<double>(a.params.epsilon);
    }
    for (std::int64_t i = lo; i < hi; ++i)
      a.advantages(order[i]) = static_cast<float>(n > 1 ? (value(order[i]) - mean) / denom : 0.0);
  });
}

namespace detail {

/// gamma of the rule for the n response tokens of sequence b (flags and entropies staged in f, e).
inline void apply_rule(const shaping_rule& rule, std::int64_t b, std::span<const std::uint8_t> f,
                       std::span<const float> e, std::span<float> out, token_scratch& w) {
  const auto n = static_cast<std::int64_t>(out.size());
  switch (rule.kind) {
    case shaping_rule::selector::flags:
      for (std::int64_t i = 0; i < n; ++i) out[i] = rule.by_flags[f[i] & 15];
      break;
    case shaping_rule::selector::random: {
      const std::int64_t k = top_q_count(rule.selection.q, n);
      for (std::int64_t i = 0; i < n; ++i) out[i] = random_rank(rule.seed, b, i, n) < k ? rule.amplified : 1.0f;
      break;
    }
    case shaping_rule::selector::entropy:
      select_top_q(e.data(), nullptr, n, rule.selection, w.sort.data(), w.sel.data());
      for (std::int64_t i = 0; i < n; ++i) out[i] = w.sel[i] ? rule.amplified : 1.0f;
      break;
  }
}

/// Both shaping paths: `shape(b, ctx, out, scratch)` writes the policy's gamma of one response;
/// this applies the checks and options, stages everything, and writes gamma only if nothing failed.
template <class E, class Shape>
void shaping_factors(int threads, const shaping_args<E, host_space>& a, Shape&& shape) {
  const std::int64_t B = a.flags.extent(0), N = a.flags.extent(1);
  const bool with_entropies = a.entropies.data_handle() != nullptr;
  raise_first([&] { return check_segments(a.segments, N); },
              [&] {
                return with_entropies ? first_non_finite_in_responses(a.entropies, a.segments, value_argument::entropies)
                                      : value_error{};
              },
              [&] { return first_non_finite(a.advantages, value_argument::advantages, value_location::sequence); });

  // Stage every response's gamma so that nothing is written if a policy fails or misbehaves.
  std::vector<std::int64_t> offset(static_cast<std::size_t>(B) + 1, 0);
  for (std::int64_t b = 0; b < B; ++b) offset[b + 1] = offset[b] + a.segments(b).response_length();
  std::vector<float> staged(static_cast<std::size_t>(offset[B]), 1.0f);
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(B));
  auto scratch = make_token_scratch(threads, B, N);
  parallel_for(threads, B, [&](std::int64_t b, int worker) {
    const segment g = a.segments(b);
    const std::int64_t n = g.response_length();
    const float adv = a.advantages(b);
    if (n == 0 || !rhythm::detail::sign_selects(a.options.sign, adv)) return;
    try {
      token_scratch& w = scratch[worker];
      for (std::int64_t i = 0; i < n; ++i) w.flags[i] = a.flags(b, g.response_begin + i);
      if (with_entropies)
        for (std::int64_t i = 0; i < n; ++i) w.a[i] = to_float(a.entropies(b, g.response_begin + i));
      const shaping_context ctx{b, g.response_begin, adv,
                                {reinterpret_cast<const token_flag*>(w.flags.data()), static_cast<std::size_t>(n)},
                                {w.a.data(), with_entropies ? static_cast<std::size_t>(n) : 0}};
      const std::span<float> out(staged.data() + offset[b], static_cast<std::size_t>(n));
      shape(b, ctx, out, w);
      double sum = 0.0;
      for (std::int64_t i = 0; i < n; ++i) {
        if (!(out[i] >= 0.0f && std::isfinite(out[i])))
          rhythm::detail::fail(std::isfinite(out[i]) ? errc::bad_parameter : errc::non_finite, "policy",
                               "a shaping policy that writes finite gamma >= 0",
                               std::to_string(out[i]) + " at sequence " + std::to_string(b) + ", position " +
                                   std::to_string(g.response_begin + i));
        sum += out[i];
      }
      if (a.options.mean_preserving) {
        if (!(sum > 0.0))
          rhythm::detail::fail(errc::bad_parameter, "policy", "gamma with a positive mean for options.mean_preserving",
                               "mean 0 at sequence " + std::to_string(b));
        const double mean = sum / static_cast<double>(n);
        for (float& x : out) x = static_cast<float>(x / mean);
      }
      if (a.options.floor > 0.0)
        for (float& x : out) x = std::max(x, static_cast<float>(a.options.floor));
    } catch (...) {
      errors[b] = std::current_exception();
    }
  });
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);  // the lowest failing sequence, whatever the thread count

  parallel_for(threads, B, [&](std::int64_t b, int) {
    const segment g = a.segments(b);
    for (std::int64_t t = 0; t < N; ++t) a.gamma(b, t) = g.in_response(t) ? staged[offset[b] + (t - g.response_begin)] : 1.0f;
  });
}

}  // namespace detail

/// Built-in policies: their rule.
template <class E>
void shaping_factors(int threads, const shaping_args<E, host_space>& a, const shaping_rule& rule) {
  detail::shaping_factors(threads, a, [&](std::int64_t b, const shaping_context& ctx, std::span<float> out, token_scratch& w) {
    detail::apply_rule(rule, b, {w.flags.data(), out.size()}, ctx.entropies, out, w);
  });
}

/// User policies (the host shaping_policy concept): shape() per sequence.
template <class E, class Policy>
void shaping_factors_with(int threads, const shaping_args<E, host_space>& a, const Policy& policy) {
  detail::shaping_factors(threads, a, [&](std::int64_t, const shaping_context& ctx, std::span<float> out,
                                          token_scratch&) { policy.shape(ctx, out); });
}

inline void shaped_advantages(int threads, const shaped_advantage_args<host_space>& a) {
  const std::int64_t B = a.gamma.extent(0), N = a.gamma.extent(1);
  raise_first([&] { return check_segments(a.segments, N); },
              [&] { return first_non_finite(a.advantages, value_argument::advantages, value_location::sequence); },
              [&] { return first_non_finite_in_responses(a.gamma, a.segments, value_argument::gamma); });
  parallel_for(threads, B, [&](std::int64_t b, int) {
    const segment g = a.segments(b);
    const float adv = a.advantages(b);
    for (std::int64_t t = 0; t < N; ++t) a.out(b, t) = g.in_response(t) ? a.gamma(b, t) * adv : 0.0f;
  });
}

/// The pipeline's last step: gamma_out = gamma, shaped = gamma A on responses (0 elsewhere), and
/// the diagnostics of flags and gamma over the response tokens (summed in sequence order).
inline pipeline_diagnostics credit_output(int threads, const credit_output_args<host_space>& a) {
  const std::int64_t B = a.gamma.extent(0), N = a.gamma.extent(1);
  raise(check_segments(a.segments, N));
  parallel_for(threads, B, [&](std::int64_t b, int) {
    const segment g = a.segments(b);
    const float adv = a.advantages(b);
    for (std::int64_t t = 0; t < N; ++t) {
      a.gamma_out(b, t) = a.gamma(b, t);
      a.shaped(b, t) = g.in_response(t) ? a.gamma(b, t) * adv : 0.0f;
    }
  });
  pipeline_diagnostics d;
  double gamma_sum = 0;
  std::int64_t amplified = 0;
  for (std::int64_t b = 0; b < B; ++b) {
    const segment g = a.segments(b);
    for (std::int64_t t = g.response_begin; t < g.end; ++t) {
      const auto f = static_cast<token_flag>(a.flags(b, t));
      d.preplan += any(f & token_flag::preplan), d.anchor += any(f & token_flag::anchor);
      d.dominated += any(f & token_flag::dominated), d.intro += any(f & token_flag::intro);
      const float y = a.gamma(b, t);
      gamma_sum += y;
      amplified += y > 1.0f;
    }
    d.response_tokens += g.response_length();
  }
  d.mean_gamma = d.response_tokens ? gamma_sum / double(d.response_tokens) : 1.0;
  d.amplified_share = d.response_tokens ? double(amplified) / double(d.response_tokens) : 0.0;
  return d;
}

template <class T>
ppo_result ppo_clip_objective(int threads, const ppo_args<T, host_space>& a) {
  const std::int64_t B = a.logp_new.extent(0), N = a.logp_new.extent(1);
  raise_first([&] { return check_segments(a.segments, N); },
              [&] { return first_non_finite_in_responses(a.logp_new, a.segments, value_argument::logp_new); },
              [&] { return first_non_finite_in_responses(a.logp_old, a.segments, value_argument::logp_old); },
              [&] { return first_non_finite_in_responses(a.shaped_adv, a.segments, value_argument::shaped_adv); });
  struct sums {
    double objective = 0.0, ratio = 0.0;
    std::int64_t tokens = 0, clipped = 0;
  };
  std::vector<sums> per_sequence(static_cast<std::size_t>(B));
  const double lo = 1.0 - a.params.epsilon, hi = 1.0 + a.params.epsilon_high;
  parallel_for(threads, B, [&](std::int64_t b, int) {
    const segment g = a.segments(b);
    sums s;
    for (std::int64_t t = g.response_begin; t < g.end; ++t) {
      const double rho = std::exp(double(to_float(a.logp_new(b, t))) - double(to_float(a.logp_old(b, t))));
      const double adv = a.shaped_adv(b, t);
      s.objective += adv > 0.0 ? adv * std::min(rho, hi) : adv < 0.0 ? adv * std::max(rho, lo) : 0.0;
      s.clipped += (adv > 0.0 && rho > hi) || (adv < 0.0 && rho < lo);
      s.ratio += rho;
    }
    s.tokens = g.response_length();
    per_sequence[b] = s;
  });

  ppo_result r;
  double objective = 0.0, ratio = 0.0, sequence_means = 0.0;
  std::int64_t clipped = 0, sequences = 0;
  for (const sums& s : per_sequence) {
    objective += s.objective, ratio += s.ratio, clipped += s.clipped, r.tokens += s.tokens;
    if (s.tokens > 0) sequence_means += s.objective / static_cast<double>(s.tokens), ++sequences;
  }
  if (r.tokens == 0) return r;
  const double J = a.params.aggregation == ppo_aggregation::token_mean ? objective / static_cast<double>(r.tokens)
                                                                       : sequence_means / static_cast<double>(sequences);
  r.loss = -J;
  r.clip_fraction = static_cast<double>(clipped) / static_cast<double>(r.tokens);
  r.mean_ratio = ratio / static_cast<double>(r.tokens);
  return r;
}

}  // namespace rhythm::cpu
