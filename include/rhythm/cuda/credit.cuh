#pragma once
/// CUDA backend of the credit stage: GRPO advantages, shaping factors of a shaping_rule (every
/// built-in policy), shaped advantages and the pipeline's final write with its diagnostics.
///
/// Every result is bit-identical to the CPU backend (cpu/credit.hpp) for identical inputs: each
/// group, response or token is computed by one thread running the CPU's loop in the CPU's
/// precision and order (RHYTHM_HOST_DEVICE functions below, which the host tests run against the
/// CPU backend), and every double multiply-add that nvcc could contract into an FMA is written
/// with an explicitly rounded multiply.
///
/// Error keys: (phase << 56) | index, phase 0 = segments[b], then each input in the CPU's check
/// order; index = b, i, or b N + t for a (sequence, position). Assumes B N < 2^56.
#include <cstddef>
#include <cstdint>

#include "../core/credit_types.hpp"
#include "../core/dtypes.hpp"
#include "../core/status.hpp"
#include "../core/token_types.hpp"
#include "runtime.cuh"

namespace rhythm::cuda {
namespace detail {

// ---------------------------------------------------------------- shared helpers

/// a * b rounded once (never contracted into an FMA by nvcc).
RHYTHM_HOST_DEVICE inline double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

inline constexpr int key_phase_shift = 56;

RHYTHM_HOST_DEVICE constexpr error_key make_key(unsigned phase, std::int64_t index) {
  return (error_key(phase) << key_phase_shift) | error_key(index);
}

/// The value_error of a key: phase 0 is segments[index] against length N; phase p >= 1 is a
/// non-finite value of checks[p - 1] (a (sequence, position) index is b N + t).
template <class Space>
struct key_decoder {
  struct check {
    value_argument argument;
    value_location where;
    value_scope scope;
  };
  view<const segment, 1, Space> segments;
  std::int64_t N;
  check checks[3];

  RHYTHM_HOST_DEVICE value_error operator()(error_key key) const {
    const auto phase = static_cast<unsigned>(key >> key_phase_shift);
    const auto index = static_cast<std::int64_t>(key & ((error_key(1) << key_phase_shift) - 1));
    if (phase == 0) {
      const segment s = segments(index);
      return segment_error(index, s.begin, s.response_begin, s.end, N);
    }
    const check& c = checks[phase - 1];
    if (c.where == value_location::sequence_position)
      return non_finite_error(c.argument, c.where, c.scope, index / N, index % N);
    return non_finite_error(c.argument, c.where, c.scope, index);
  }
};

// ---------------------------------------------------------------- grpo_advantages

/// Phase 1: rewards[i] non-finite.
template <class R, class Space>
RHYTHM_HOST_DEVICE error_key grpo_check(const advantage_args<R, Space>& a, std::int64_t i) {
  return is_finite_bits(to_float(a.rewards(i))) ? no_error : make_key(1, i);
}

template <class Space>
RHYTHM_HOST_DEVICE key_decoder<Space> grpo_decoder() {
  return {{}, 0, {{value_argument::rewards, value_location::index, value_scope::all}}};
}

/// A_i as cpu::grpo_advantages computes it: i's group is every j with group_ids(j) ==
/// group_ids(i), in index order (the CPU's stable sort keeps that order), so its mean and std are
/// summed in the CPU's order. O(S).
template <class R, class Space>
RHYTHM_HOST_DEVICE float grpo_advantage(const advantage_args<R, Space>& a, std::int64_t i) {
  const std::int64_t S = a.rewards.extent(0), id = a.group_ids(i);
  const auto value = [&](std::int64_t j) -> double { return to_float(a.rewards(j)); };
  double sum = 0.0;
  std::int64_t n = 0;
  for (std::int64_t j = 0; j < S; ++j)
    if (a.group_ids(j) == id) sum += value(j), ++n;
  const double mean = sum / static_cast<double>(n);
  double denom = 1.0;
  if (a.params.std_normalise && n > 1) {
    double ss = 0.0;
    for (std::int64_t j = 0; j < S; ++j)
      if (a.group_ids(j) == id) {
        const double d = value(j) - mean;
        ss += mul_rn(d, d);
      }
    denom = ::sqrt(ss / static_cast<double>(n - 1)) + static_cast<double>(a.params.epsilon);
  }
  return static_cast<float>(n > 1 ? (value(i) - mean) / denom : 0.0);
}

// ---------------------------------------------------------------- shaping_factors

/// Phase 0: segments[b]; 1: entropies at (b, t), t in R_b (when given); 2: advantages[b].
template <class E, class Space>
RHYTHM_HOST_DEVICE error_key shaping_check(const shaping_args<E, Space>& a, std::int64_t b) {
  const std::int64_t N = a.flags.extent(1);
  const segment g = a.segments(b);
  if (!g.fits(N)) return make_key(0, b);
  if (a.entropies.data_handle())
    for (std::int64_t t = g.response_begin; t < g.end; ++t)
      if (!is_finite_bits(to_float(a.entropies(b, t)))) return make_key(1, b * N + t);
  return is_finite_bits(a.advantages(b)) ? no_error : make_key(2, b);
}

template <class Space>
RHYTHM_HOST_DEVICE key_decoder<Space> shaping_decoder(const view<const segment, 1, Space>& segments, std::int64_t N) {
  return {segments,
          N,
          {{value_argument::entropies, value_location::sequence_position, value_scope::response},
           {value_argument::advantages, value_location::sequence, value_scope::all}}};
}

/// Order key of a finite float: unsigned order = float order, with -0 == +0.
RHYTHM_HOST_DEVICE inline std::uint32_t order_key(float x) {
  const std::uint32_t u = rhythm::detail::bits_as<std::uint32_t>(x == 0.0f ? 0.0f : x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

RHYTHM_HOST_DEVICE inline float float_of_key(std::uint32_t k) {
  return rhythm::detail::bits_as<float>((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

/// The k-th largest (bottom: smallest) of the finite values v(0..n), 1 <= k <= n: the same
/// value nth_element finds, by a bitwise search over order keys (32 counting passes, no memory).
template <class Value>
RHYTHM_HOST_DEVICE float kth_value(const Value& v, std::int64_t n, std::int64_t k, bool bottom) {
  const std::uint32_t flip = bottom ? ~0u : 0u;
  std::uint32_t prefix = 0;  // the largest key with at least k keys >= it, found bit by bit
  for (int bit = 31; bit >= 0; --bit) {
    const std::uint32_t candidate = prefix | (1u << bit);
    std::int64_t count = 0;
    for (std::int64_t i = 0; i < n; ++i) count += (order_key(v(i)) ^ flip) >= candidate;
    if (count >= k) prefix = candidate;
  }
  return float_of_key(prefix ^ flip);
}

/// gamma of response b as the CPU stages it (rule, then mean preservation, then floor), into
/// out[0..n) (n = |R_b|; all 1 when the sign mode leaves b out). Checks passed for b.
template <class E, class Space>
RHYTHM_HOST_DEVICE void shape_response(const shaping_args<E, Space>& a, const shaping_rule& rule, std::int64_t b,
                                       float* out) {
  const segment g = a.segments(b);
  const std::int64_t n = g.response_length(), r0 = g.response_begin;
  for (std::int64_t i = 0; i < n; ++i) out[i] = 1.0f;
  if (n == 0 || !rhythm::detail::sign_selects(a.options.sign, a.advantages(b))) return;
  switch (rule.kind) {
    case shaping_rule::selector::flags:
      for (std::int64_t i = 0; i < n; ++i) out[i] = rule.by_flags[a.flags(b, r0 + i) & 15];
      break;
    case shaping_rule::selector::random: {
      const std::int64_t k = top_q_count(rule.selection.q, n);
      for (std::int64_t i = 0; i < n; ++i) out[i] = random_rank(rule.seed, b, i, n) < k ? rule.amplified : 1.0f;
      break;
    }
    case shaping_rule::selector::entropy: {
      const auto e = [&](std::int64_t i) { return to_float(a.entropies(b, r0 + i)); };
      const bool bottom = rule.selection.bottom;
      const float threshold = kth_value(e, n, top_q_count(rule.selection.q, n), bottom);
      for (std::int64_t i = 0; i < n; ++i)
        out[i] = (bottom ? e(i) <= threshold : e(i) >= threshold) ? rule.amplified : 1.0f;
      break;
    }
  }
  if (a.options.mean_preserving) {
    double sum = 0.0;
    for (std::int64_t i = 0; i < n; ++i) sum += out[i];
    const double mean = sum / static_cast<double>(n);
    for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(out[i] / mean);
  }
  if (a.options.floor > 0.0) {
    const auto floor = static_cast<float>(a.options.floor);
    for (std::int64_t i = 0; i < n; ++i) out[i] = out[i] < floor ? floor : out[i];
  }
}

/// Host checks of a rule before any launch. The CPU checks a policy's gamma per token after the
/// value checks (finite, >= 0; a positive mean under mean_preserving); a value_error cannot carry
/// that message, so a device rejects a rule that could fail them up front (no built-in can).
inline void check_device_rule(const shaping_rule& rule, const shaping_options& options, bool with_entropies) {
  const auto check = [&](float g, const char* where) {
    expects(is_finite_bits(g) && g >= 0.0f, is_finite_bits(g) ? errc::bad_parameter : errc::non_finite, "policy",
            "a shaping policy that writes finite gamma >= 0", text(g, " in its rule's ", where));
    expects(!options.mean_preserving || g > 0.0f, errc::bad_parameter, "policy",
            "gamma with a positive mean for options.mean_preserving (on a device: a rule with gamma > 0)",
            text(g, " in its rule's ", where));
  };
  if (rule.kind == shaping_rule::selector::flags)
    for (float g : rule.by_flags) check(g, "by_flags");
  else check(rule.amplified, "amplified");
  expects(!rule.needs_entropies() || with_entropies, errc::shape_mismatch, "entropies",
          "an entropies view [B, N] for a policy that reads entropies",
          "none (call the shaping_factors overload that takes entropies)");
}

// ---------------------------------------------------------------- shaped_advantages

/// Phase 0: segments[b]; 1: advantages[b] (the per-sequence checks).
template <class Space>
RHYTHM_HOST_DEVICE error_key shaped_sequence_check(const shaped_advantage_args<Space>& a, std::int64_t b) {
  if (!a.segments(b).fits(a.gamma.extent(1))) return make_key(0, b);
  return is_finite_bits(a.advantages(b)) ? no_error : make_key(1, b);
}

/// Phase 2: gamma at (b, t), t in R_b (segments[b] must be valid to blame it; else phase 0 wins).
template <class Space>
RHYTHM_HOST_DEVICE error_key shaped_token_check(const shaped_advantage_args<Space>& a, std::int64_t b,
                                                std::int64_t t) {
  const std::int64_t N = a.gamma.extent(1);
  const segment g = a.segments(b);
  return g.fits(N) && g.in_response(t) && !is_finite_bits(a.gamma(b, t)) ? make_key(2, b * N + t) : no_error;
}

template <class Space>
RHYTHM_HOST_DEVICE key_decoder<Space> shaped_decoder(const view<const segment, 1, Space>& segments, std::int64_t N) {
  return {segments,
          N,
          {{value_argument::advantages, value_location::sequence, value_scope::all},
           {value_argument::gamma, value_location::sequence_position, value_scope::response}}};
}

// ---------------------------------------------------------------- credit_output

/// What sequence b adds to the diagnostics. sum is gamma summed in position order; abs_sum and
/// lowest_bit (the smallest exponent e with every nonzero gamma a multiple of 2^e) tell whether
/// every partial sum of the batch is exact in double, so that summing the per-sequence sums
/// gives the CPU's batch-wide running sum bit for bit.
struct output_partial {
  std::int64_t tokens, preplan, anchor, dominated, intro, amplified;
  double sum, abs_sum;
  int lowest_bit;
  bool finite;
};

/// The exponent e of x = m 2^e with m odd (x finite and nonzero).
RHYTHM_HOST_DEVICE inline int lowest_bit_exponent(float x) {
  const std::uint32_t u = rhythm::detail::bits_as<std::uint32_t>(x) & 0x7fffffffu, e8 = u >> 23;
  const std::uint32_t m = (u & 0x7fffffu) | (e8 ? 0x800000u : 0u);
#if defined(__CUDA_ARCH__)
  const int zeros = __ffs(static_cast<int>(m)) - 1;
#else
  const int zeros = __builtin_ctz(m);
#endif
  return zeros + (e8 ? static_cast<int>(e8) - 150 : -149);
}

/// Phase 0: segments[b] (credit_output checks nothing else).
template <class Space>
RHYTHM_HOST_DEVICE error_key output_check(const credit_output_args<Space>& a, std::int64_t b) {
  return a.segments(b).fits(a.gamma.extent(1)) ? no_error : make_key(0, b);
}

template <class Space>
RHYTHM_HOST_DEVICE key_decoder<Space> output_decoder(const view<const segment, 1, Space>& segments, std::int64_t N) {
  return {segments, N, {}};
}

template <class Space>
RHYTHM_HOST_DEVICE output_partial output_partial_of(const credit_output_args<Space>& a, std::int64_t b) {
  const segment g = a.segments(b);
  output_partial p{g.response_length(), 0, 0, 0, 0, 0, 0.0, 0.0, 1 << 20, true};
  for (std::int64_t t = g.response_begin; t < g.end; ++t) {
    const std::uint8_t f = a.flags(b, t);
    p.preplan += (f & 1) != 0, p.anchor += (f & 2) != 0, p.dominated += (f & 4) != 0, p.intro += (f & 8) != 0;
    const float y = a.gamma(b, t);
    p.sum += y;
    p.amplified += y > 1.0f;
    p.abs_sum += y < 0.0f ? -y : y;
    p.finite = p.finite && is_finite_bits(y);
    if (y != 0.0f && is_finite_bits(y)) {
      const int e = lowest_bit_exponent(y);
      p.lowest_bit = e < p.lowest_bit ? e : p.lowest_bit;
    }
  }
  return p;
}

/// The diagnostics of cpu::credit_output from the B partials, bit for bit: the gamma sum is the
/// sum of the per-sequence sums when every partial sum is exact (|sum| <= 2^52 2^e for every
/// subset, e the common lowest bit), else the CPU's running sum over every response token.
template <class Space>
RHYTHM_HOST_DEVICE pipeline_diagnostics diagnostics_of(const credit_output_args<Space>& a,
                                                       const output_partial* partials) {
  const std::int64_t B = a.gamma.extent(0);
  pipeline_diagnostics d;
  std::int64_t amplified = 0;
  double sums = 0.0, abs_sum = 0.0;
  int lowest_bit = 1 << 20;
  bool finite = true;
  for (std::int64_t b = 0; b < B; ++b) {
    const output_partial& p = partials[b];
    d.response_tokens += p.tokens, d.preplan += p.preplan, d.anchor += p.anchor;
    d.dominated += p.dominated, d.intro += p.intro, amplified += p.amplified;
    sums += p.sum, abs_sum += p.abs_sum;
    lowest_bit = p.lowest_bit < lowest_bit ? p.lowest_bit : lowest_bit;
    finite = finite && p.finite;
  }
  double gamma_sum = sums;
  if (!finite || !(abs_sum <= ::ldexp(1.0, 52 + (lowest_bit < 2000 ? lowest_bit : 2000)))) {
    gamma_sum = 0.0;
    for (std::int64_t b = 0; b < B; ++b) {
      const segment g = a.segments(b);
      for (std::int64_t t = g.response_begin; t < g.end; ++t) gamma_sum += a.gamma(b, t);
    }
  }
  d.mean_gamma = d.response_tokens ? gamma_sum / double(d.response_tokens) : 1.0;
  d.amplified_share = d.response_tokens ? double(amplified) / double(d.response_tokens) : 0.0;
  return d;
}

// ---------------------------------------------------------------- layouts

/// The workspace of each operation; sizing (null base) and carving share it.
struct grpo_layout {
  error_key* slot;
  float* staged;  // [S]
  static grpo_layout plan(workspace_carver& w, std::int64_t S) { return {w.take<error_key>(1), w.take<float>(S)}; }
};
struct shaping_layout {
  error_key* slot;
  float* staged;  // [B, N] row-major; response positions only
  static shaping_layout plan(workspace_carver& w, std::int64_t B, std::int64_t N) {
    return {w.take<error_key>(1), w.take<float>(B * N)};
  }
};
struct shaped_layout {
  error_key* slot;
  static shaped_layout plan(workspace_carver& w) { return {w.take<error_key>(1)}; }
};
struct output_layout {
  error_key* slot;
  output_partial* partials;           // [B]
  pipeline_diagnostics* diagnostics;  // [1]
  static output_layout plan(workspace_carver& w, std::int64_t B) {
    return {w.take<error_key>(1), w.take<output_partial>(B), w.take<pipeline_diagnostics>(1)};
  }
};

}  // namespace detail

/// Workspace bytes of grpo_advantages over S responses: the error slot and S staged floats,
/// each piece 256-byte aligned (256 + 4 S). Host arithmetic only.
inline std::size_t grpo_advantages_workspace_size(std::int64_t S) {
  detail::workspace_carver w;
  detail::grpo_layout::plan(w, S);
  return w.used();
}

/// Workspace bytes of shaping_factors on [B, N]: the error slot and B N staged floats (256 + 4 B N).
inline std::size_t shaping_factors_workspace_size(std::int64_t B, std::int64_t N) {
  detail::workspace_carver w;
  detail::shaping_layout::plan(w, B, N);
  return w.used();
}

/// Workspace bytes of shaped_advantages on [B, N]: the error slot only (8; B and N for symmetry).
inline std::size_t shaped_advantages_workspace_size(std::int64_t, std::int64_t) {
  detail::workspace_carver w;
  detail::shaped_layout::plan(w);
  return w.used();
}

/// Workspace bytes of credit_output on [B, N]: the error slot, B per-sequence partials
/// (sizeof(detail::output_partial) = 72 bytes each) and one staged pipeline_diagnostics (56
/// bytes), each 256-byte aligned: 256 + round_up(72 B, 256) + 56.
inline std::size_t credit_output_workspace_size(std::int64_t B, std::int64_t) {
  detail::workspace_carver w;
  detail::output_layout::plan(w, B);
  return w.used();
}

namespace detail {

#if defined(__CUDACC__)
inline constexpr int credit_threads = 128;

template <class R>
__global__ void grpo_compute_kernel(advantage_args<R, device_space> a, grpo_layout w) {
  for (std::int64_t i = thread_index(); i < a.rewards.extent(0); i += thread_count()) {
    const error_key key = grpo_check(a, i);
    if (key != no_error) report(w.slot, key);
    else w.staged[i] = grpo_advantage(a, i);
  }
}

template <class R>
__global__ void grpo_commit_kernel(advantage_args<R, device_space> a, grpo_layout w, value_error* status) {
  if (call_failed(w.slot, status, grpo_decoder<device_space>())) return;
  for (std::int64_t i = thread_index(); i < a.rewards.extent(0); i += thread_count()) a.advantages(i) = w.staged[i];
}

template <class E>
__global__ void shaping_compute_kernel(shaping_args<E, device_space> a, shaping_rule rule, shaping_layout w) {
  const std::int64_t N = a.flags.extent(1);
  for (std::int64_t b = thread_index(); b < a.flags.extent(0); b += thread_count()) {
    const error_key key = shaping_check(a, b);
    if (key != no_error) report(w.slot, key);
    else shape_response(a, rule, b, w.staged + b * N + a.segments(b).response_begin);
  }
}

template <class E>
__global__ void shaping_commit_kernel(shaping_args<E, device_space> a, shaping_layout w, value_error* status) {
  const std::int64_t N = a.flags.extent(1);
  if (call_failed(w.slot, status, shaping_decoder(a.segments, N))) return;
  for (std::int64_t i = thread_index(); i < a.flags.extent(0) * N; i += thread_count()) {
    const std::int64_t b = i / N, t = i % N;
    a.gamma(b, t) = a.segments(b).in_response(t) ? w.staged[i] : 1.0f;
  }
}

/// Items [0, B): the per-sequence checks; [B, B + B N): gamma at (b, t).
template <class Space = device_space>  // a template: one definition in every translation unit
__global__ void shaped_check_kernel(shaped_advantage_args<device_space> a, shaped_layout w) {
  const std::int64_t B = a.gamma.extent(0), N = a.gamma.extent(1);
  for (std::int64_t i = thread_index(); i < B + B * N; i += thread_count()) {
    const error_key key = i < B ? shaped_sequence_check(a, i) : shaped_token_check(a, (i - B) / N, (i - B) % N);
    if (key != no_error) report(w.slot, key);
  }
}

template <class Space = device_space>
__global__ void shaped_commit_kernel(shaped_advantage_args<device_space> a, shaped_layout w,
                                            value_error* status) {
  const std::int64_t N = a.gamma.extent(1);
  if (call_failed(w.slot, status, shaped_decoder(a.segments, N))) return;
  for (std::int64_t i = thread_index(); i < a.gamma.extent(0) * N; i += thread_count()) {
    const std::int64_t b = i / N, t = i % N;
    a.out(b, t) = a.segments(b).in_response(t) ? a.gamma(b, t) * a.advantages(b) : 0.0f;
  }
}

template <class Space = device_space>
__global__ void output_partials_kernel(credit_output_args<device_space> a, output_layout w) {
  for (std::int64_t b = thread_index(); b < a.gamma.extent(0); b += thread_count()) {
    const error_key key = output_check(a, b);
    if (key != no_error) report(w.slot, key);
    else w.partials[b] = output_partial_of(a, b);
  }
}

/// One thread: the diagnostics, staged (skipped when a check failed: the partials are incomplete).
template <class Space = device_space>
__global__ void output_diagnostics_kernel(credit_output_args<device_space> a, output_layout w) {
  if (*w.slot == no_error) *w.diagnostics = diagnostics_of(a, w.partials);
}

template <class Space = device_space>
__global__ void output_commit_kernel(credit_output_args<device_space> a, output_layout w,
                                            pipeline_diagnostics* diagnostics, value_error* status) {
  const std::int64_t N = a.gamma.extent(1);
  if (call_failed(w.slot, status, output_decoder(a.segments, N))) return;
  if (thread_index() == 0) *diagnostics = *w.diagnostics;
  for (std::int64_t i = thread_index(); i < a.gamma.extent(0) * N; i += thread_count()) {
    const std::int64_t b = i / N, t = i % N;
    const float y = a.gamma(b, t);
    a.gamma_out(b, t) = y;
    a.shaped(b, t) = a.segments(b).in_response(t) ? y * a.advantages(b) : 0.0f;
  }
}

// ---------------------------------------------------------------- operations

/// GRPO advantages: rewards [S], group_ids [S] -> advantages [S]. One thread per response reads
/// its group by scanning every label: O(S^2) work, O(S) per thread, no sort. 2 kernels.
template <class R>
void grpo_advantages(const exec::cuda& p, const advantage_args<R, device_space>& a) {
  const std::int64_t S = a.rewards.extent(0);
  check_cuda_policy(p, rhythm::cuda::grpo_advantages_workspace_size(S), "grpo_advantages_workspace_size");
  if (S == 0) return;  // nothing to check or write
  auto carver = carver_of(p);
  const grpo_layout w = grpo_layout::plan(carver, S);
  reset_slot(w.slot, p.stream);
  grpo_compute_kernel<R><<<blocks_for(S, credit_threads), credit_threads, 0, p.stream>>>(a, w);
  check_launch("grpo_compute_kernel");
  grpo_commit_kernel<R><<<blocks_for(S), 256, 0, p.stream>>>(a, w, p.status);
  check_launch("grpo_commit_kernel");
}

/// Shaping factors of a rule: flags [B, N], entropies [B, N] (optional), advantages [B] ->
/// gamma [B, N]. One thread per response (checks, the rule, mean preservation, floor; the
/// entropy rule's top-q by 32 counting passes over the response: O(32 n)), then the commit.
template <class E>
void shaping_factors(const exec::cuda& p, const shaping_args<E, device_space>& a, const shaping_rule& rule) {
  const std::int64_t B = a.flags.extent(0), N = a.flags.extent(1);
  check_device_rule(rule, a.options, a.entropies.data_handle() != nullptr || B * N == 0);
  check_cuda_policy(p, rhythm::cuda::shaping_factors_workspace_size(B, N), "shaping_factors_workspace_size");
  if (B == 0) return;
  auto carver = carver_of(p);
  const shaping_layout w = shaping_layout::plan(carver, B, N);
  reset_slot(w.slot, p.stream);
  shaping_compute_kernel<E><<<blocks_for(B, 64), 64, 0, p.stream>>>(a, rule, w);
  check_launch("shaping_compute_kernel");
  shaping_commit_kernel<E><<<blocks_for(B * N), 256, 0, p.stream>>>(a, w, p.status);
  check_launch("shaping_commit_kernel");
}

/// Shaped advantages: gamma [B, N], advantages [B] -> out [B, N]. Elementwise checks, then the
/// commit computes gamma A (one float multiply, as the CPU). 2 kernels.
inline void shaped_advantages(const exec::cuda& p, const shaped_advantage_args<device_space>& a) {
  const std::int64_t B = a.gamma.extent(0), N = a.gamma.extent(1);
  check_cuda_policy(p, rhythm::cuda::shaped_advantages_workspace_size(B, N), "shaped_advantages_workspace_size");
  if (B == 0) return;
  auto carver = carver_of(p);
  const shaped_layout w = shaped_layout::plan(carver);
  reset_slot(w.slot, p.stream);
  shaped_check_kernel<><<<blocks_for(B + B * N), 256, 0, p.stream>>>(a, w);
  check_launch("shaped_check_kernel");
  shaped_commit_kernel<><<<blocks_for(B * N), 256, 0, p.stream>>>(a, w, p.status);
  check_launch("shaped_commit_kernel");
}

/// The pipeline's last step: gamma_out = gamma, shaped = gamma A on responses (0 elsewhere), and
/// the diagnostics written to `diagnostics` (device memory, one pipeline_diagnostics), bit-identical
/// to cpu::credit_output's. Per-sequence partials, a one-thread reduction (O(B); O(sum |R|) when
/// the gamma sum could round), then the commit writes gamma_out, shaped and the diagnostics. 3 kernels.
inline void credit_output(const exec::cuda& p, const credit_output_args<device_space>& a,
                          pipeline_diagnostics* diagnostics) {
  const std::int64_t B = a.gamma.extent(0), N = a.gamma.extent(1);
  expects(diagnostics != nullptr, errc::bad_parameter, "diagnostics",
          "device memory for one rhythm::pipeline_diagnostics", "a null pointer");
  check_cuda_policy(p, rhythm::cuda::credit_output_workspace_size(B, N), "credit_output_workspace_size");
  auto carver = carver_of(p);
  const output_layout w = output_layout::plan(carver, B);
  reset_slot(w.slot, p.stream);
  if (B > 0) {
    output_partials_kernel<><<<blocks_for(B, 64), 64, 0, p.stream>>>(a, w);
    check_launch("output_partials_kernel");
  }
  output_diagnostics_kernel<><<<1, 1, 0, p.stream>>>(a, w);
  check_launch("output_diagnostics_kernel");
  output_commit_kernel<><<<blocks_for(B * N), 256, 0, p.stream>>>(a, w, diagnostics, p.status);
  check_launch("output_commit_kernel");
}
#endif

}  // namespace detail
}  // namespace rhythm::cuda
