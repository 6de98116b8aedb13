#pragma once
/// ppo_clip_loss: the PPO-clip loss of rhythm::ppo_clip_objective built from torch ops, so that
/// autograd flows into logp_new (shaped advantages are never differentiated).
///
/// Per response token t of sequence b, rho_t = exp(logp_new_t - logp_old_t) and
///   J_t = min(rho_t A~_t, clamp(rho_t, 1 - epsilon, 1 + epsilon_high) A~_t)
/// evaluated as rhythm::ppo_clip_objective does: A~ min(rho, 1 + epsilon_high) for A~ > 0,
/// A~ max(rho, 1 - epsilon) for A~ < 0 and exactly 0 for A~ = 0. Aggregation:
///   seq_mean_token_mean: J = mean over sequences with a non-empty response of mean_{t in R_b} J_t
///   token_mean:          J = mean over all response tokens of the batch of J_t
/// loss = -J. With no response token in the batch the loss is 0 (still attached to the graph, with
/// zero gradients). The gradient of J_t with respect to logp_new_t is A~ rho_t where the token is
/// not clipped and 0 where it is (A~ > 0 and rho > 1 + epsilon_high, or A~ < 0 and rho < 1 - epsilon).
///
/// Positions outside the responses are never read into the result: their logp_new, logp_old and
/// shaped_adv may hold anything (even NaN or -inf) and their gradient is exactly 0.
///
/// Dtypes: logp_new, logp_old and shaped_adv are floating (float32, float64, bfloat16, float16);
/// the loss is computed in float64 if any of them is float64 and in float32 otherwise, and is
/// returned in that dtype. Pure torch ops: any device works (the segments mask is built on the
/// device of logp_new); the statistics cost one host synchronisation.
#include <ATen/ATen.h>

#include <cstdint>
#include <span>
#include <string>

#include <rhythm/cpu/values.hpp>
#include <rhythm/credit/ppo_objective.hpp>

#include "view.hpp"

namespace rhythm::torch {

/// The loss and what a trainer logs (the fields of rhythm::ppo_result).
struct ppo_loss {
  ::at::Tensor loss;           ///< scalar -J; requires grad when logp_new does
  double clip_fraction = 0.0;  ///< clipped response tokens / response tokens (0 if none)
  double mean_ratio = 0.0;     ///< mean of rho over response tokens (0 if none)
  std::int64_t tokens = 0;     ///< response tokens in the batch
};

namespace detail {

#define RHYTHM_TORCH_REQUIRE(cond, name, expected, ...)                                                    \
  do {                                                                                                     \
    TORCH_CHECK(cond, "rhythm::torch: argument '", name, "': expected ", expected, ", got ", __VA_ARGS__); \
  } while (false)

inline void check_loss_input(const ::at::Tensor& t, const char* name, const ::at::Tensor& like) {
  RHYTHM_TORCH_REQUIRE(t.defined(), name, "a defined tensor", "an undefined tensor");
  RHYTHM_TORCH_REQUIRE(t.dim() == 2, name, "rank 2: [B, N]", "rank ", t.dim(), " (sizes ", sizes_string(t.sizes()), ")");
  RHYTHM_TORCH_REQUIRE(t.is_floating_point(), name, "a floating dtype", "dtype ", ::c10::toString(t.scalar_type()));
  RHYTHM_TORCH_REQUIRE(t.sizes() == like.sizes(), name, "the sizes of logp_new " + sizes_string(like.sizes()),
                       "sizes ", sizes_string(t.sizes()));
  RHYTHM_TORCH_REQUIRE(t.device() == like.device(), name, "the device of logp_new (" + like.device().str() + ")",
                       "device ", t.device().str());
}

/// Bool [B, N] mask of the response positions from segments (ranges checked as the core does).
inline ::at::Tensor response_mask(std::span<const ::rhythm::segment> segments, std::int64_t B, std::int64_t N,
                                  const ::c10::Device& device) {
  ::rhythm::detail::check_segments_shape(::rhythm::make_view(segments), B);
  ::rhythm::raise(::rhythm::cpu::check_segments(::rhythm::make_view(segments), N));
  ::at::Tensor mask = ::at::zeros({B, N}, ::at::kBool);
  auto* m = mask.data_ptr<bool>();
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t t = segments[b].response_begin; t < segments[b].end; ++t) m[b * N + t] = true;
  return mask.to(device);
}

inline ppo_loss ppo_clip_loss_masked(const ::at::Tensor& logp_new, const ::at::Tensor& logp_old,
                                     const ::at::Tensor& shaped_adv, const ::at::Tensor& mask,
                                     const ::rhythm::ppo_params& params) {
  ::rhythm::detail::check_ppo_params(params);
  const bool wide = logp_new.scalar_type() == ::at::kDouble || logp_old.scalar_type() == ::at::kDouble ||
                    shaped_adv.scalar_type() == ::at::kDouble;
  const auto acc = wide ? ::at::kDouble : ::at::kFloat;
  const double lo = 1.0 - params.epsilon, hi = 1.0 + params.epsilon_high;
  const ::at::Tensor zero = ::at::zeros({}, logp_new.options().dtype(acc));

  // Padding never enters: the log-ratio is 0 there (rho = 1) and where() sends it no gradient.
  const ::at::Tensor log_ratio = ::at::where(mask, logp_new.to(acc) - logp_old.to(acc).detach(), zero);
  const ::at::Tensor rho = log_ratio.exp();
  const ::at::Tensor adv = ::at::where(mask, shaped_adv.detach().to(acc), zero);
  const ::at::Tensor term =
      ::at::where(adv > 0, adv * rho.clamp_max(hi), ::at::where(adv < 0, adv * rho.clamp_min(lo), zero));

  ppo_loss out;
  const ::at::Tensor counts = mask.sum(1);  // int64 [B]
  out.tokens = counts.sum().item<std::int64_t>();
  if (params.aggregation == ::rhythm::ppo_aggregation::token_mean) {
    out.loss = -(term.sum() / static_cast<double>(std::max<std::int64_t>(out.tokens, 1)));
  } else {
    const std::int64_t sequences = (counts > 0).sum().item<std::int64_t>();
    const ::at::Tensor per_sequence = term.sum(1) / counts.clamp_min(1).to(acc);
    out.loss = -(per_sequence.sum() / static_cast<double>(std::max<std::int64_t>(sequences, 1)));
  }
  if (out.tokens > 0) {
    ::at::NoGradGuard no_grad;
    const ::at::Tensor clipped = ((adv > 0) & (rho > hi)) | ((adv < 0) & (rho < lo));
    const double n = static_cast<double>(out.tokens);
    out.clip_fraction = static_cast<double>(clipped.sum().item<std::int64_t>()) / n;
    out.mean_ratio = ::at::where(mask, rho, zero).sum(::at::kDouble).item<double>() / n;
  }
  return out;
}

}  // namespace detail

/// Bool [B, N] CPU tensor, true at the response positions [response_begin, end) of each sequence
/// (for masking gamma, shaped advantages or a trainer's own token losses). Segment ranges are
/// checked as the core does (rhythm::error, errc::bad_segment).
inline ::at::Tensor response_mask(const segments_arg& segments, std::int64_t length) {
  return detail::response_mask(segments.span(), segments.size(), length, ::at::kCPU);
}

/// PPO-clip loss of a batch (see the file comment).
///
/// logp_new    [B, N] floating: log-probabilities of the sampled tokens under the current policy (differentiated)
/// logp_old    [B, N] floating: under the policy that sampled them (detached)
/// shaped_adv  [B, N] floating: A~, e.g. credit_result::shaped (detached)
/// response    either a bool or uint8 mask [B, N] of the response positions (nonzero = response),
///             or an int64 tensor [B, 3] of segments {begin, response_begin, end}
/// Params: rhythm::ppo_params (epsilon, epsilon_high, aggregation), checked by the core.
inline ppo_loss ppo_clip_loss(const ::at::Tensor& logp_new, const ::at::Tensor& logp_old,
                              const ::at::Tensor& shaped_adv, const ::at::Tensor& response,
                              const ::rhythm::ppo_params& params = {}) {
  detail::check_loss_input(logp_new, "logp_new", logp_new);
  detail::check_loss_input(logp_old, "logp_old", logp_new);
  detail::check_loss_input(shaped_adv, "shaped_adv", logp_new);
  const std::int64_t B = logp_new.size(0), N = logp_new.size(1);
  RHYTHM_TORCH_REQUIRE(response.defined(), "response", "a mask [B, N] or segments [B, 3]", "an undefined tensor");
  const auto type = response.scalar_type();
  if (type == ::at::kBool || type == ::at::kByte) {
    RHYTHM_TORCH_REQUIRE(response.sizes() == logp_new.sizes(), "response",
                         "a mask of the sizes of logp_new " + detail::sizes_string(logp_new.sizes()), "sizes ",
                         detail::sizes_string(response.sizes()));
    const ::at::Tensor mask = type == ::at::kBool ? response : response != 0;
    return detail::ppo_clip_loss_masked(logp_new, logp_old, shaped_adv, mask.to(logp_new.device()), params);
  }
  RHYTHM_TORCH_REQUIRE(type == ::at::kLong, "response",
                       "a bool or uint8 mask [B, N], or an int64 tensor of segments [B, 3]", "dtype ",
                       ::c10::toString(type));
  const segments_arg segments(response.is_cpu() ? response : response.cpu());  // segments are read on the host
  return detail::ppo_clip_loss_masked(logp_new, logp_old, shaped_adv,
                                      detail::response_mask(segments.span(), B, N, logp_new.device()), params);
}

/// As above with the segments as rhythm::segment (a std::vector converts).
inline ppo_loss ppo_clip_loss(const ::at::Tensor& logp_new, const ::at::Tensor& logp_old,
                              const ::at::Tensor& shaped_adv, std::span<const ::rhythm::segment> segments,
                              const ::rhythm::ppo_params& params = {}) {
  detail::check_loss_input(logp_new, "logp_new", logp_new);
  detail::check_loss_input(logp_old, "logp_old", logp_new);
  detail::check_loss_input(shaped_adv, "shaped_adv", logp_new);
  return detail::ppo_clip_loss_masked(
      logp_new, logp_old, shaped_adv,
      detail::response_mask(segments, logp_new.size(0), logp_new.size(1), logp_new.device()), params);
}

}  // namespace rhythm::torch

#undef RHYTHM_TORCH_REQUIRE
