#pragma once
/// One GRPO step, in three timed stages:
///
///   rollout   `prompts` training problems x G samples at `temperature` (KV cache), rewards from the verifier;
///             the policy PPO sees is softmax(logits / temperature) in sampling and update alike
///   credit    group advantages A_b (Eq. 1); unless the shaping is `grpo`, the attention pass (post-RoPE Q
///             and K of the capture layers, [R, L*Hq, N, hd] and [R, L*Hkv, N, hd]) and rhythm's pipeline on
///             them -> gamma [R, N] and A~ = gamma * A. The pass is either recorded by the rollout as it
///             decodes (--attention-pass capture, the default: no extra forward, its cost is inside the
///             rollout's time) or a separate no-grad forward after it (--attention-pass forward).
///   update    the rollouts in `minibatches` shuffled mini-batches, each: a full forward, the PPO-clip loss
///             (rhythm::torch::ppo_clip_loss, no KL), backward, gradient-norm clip, AdamW
///
/// `grpo` skips the attention pass and writes A_b on every response token; `uniform` runs the pass
/// and the pipeline with gamma = 1, so both give the same update (a test checks it).
///
/// Groups whose rewards all agree have A_b = 0 on every row, so gamma cannot change their advantage and
/// their PPO gradient is exactly zero: the pipeline and the update run on the rows of the other groups
/// only ("signal rows"; gamma = 1 elsewhere; the credit diagnostics count signal rows only). Each
/// mini-batch's loss is scaled by |mini-batch| / (R / minibatches), so that its gradient is the one of
/// the usual sequence mean over R / minibatches rows, zero rows included. A step without a signal row
/// makes no update. Mini-batch order comes from a generator seeded by (seed, step), so that every arm
/// of an experiment draws the same problems whatever its rewards.
///
/// Timing: t_rollout excludes, and t_attention includes, the rollout's Q/K recording
/// (rollout_batch::recording_seconds), so that t_attention + t_credit is all that rhythm costs.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <numeric>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <rhythm/credit/advantages.hpp>
#include <rhythm/tokens/peaks.hpp>
#include <rhythm/torch.hpp>

#include "model.hpp"
#include "options.hpp"
#include "sampling.hpp"
#include "tasks.hpp"
#include "tokenizer.hpp"

namespace grpo {

/// Seconds since `start`, after the device's queued work is done.
inline double seconds_since(std::chrono::steady_clock::time_point start, const ::torch::Device& device) {
  if (device.is_cuda()) ::torch::cuda::synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// What a step did; a JSON line of metrics.hpp and the progress line.
struct step_stats {
  std::int64_t step = 0;
  double reward = 0.0;            ///< mean reward of the rollouts (= accuracy: rewards are 0 or 1)
  double signal_groups = 0.0;     ///< share of groups whose rewards differ (the others carry no gradient)
  double response_length = 0.0;   ///< mean response tokens (EOS included)
  std::int64_t rollout_tokens = 0;
  rhythm::pipeline_diagnostics credit;  ///< zero for `grpo` (no pipeline run)
  double loss = 0.0, clip_fraction = 0.0, ratio = 0.0, grad_norm = 0.0;  ///< means over mini-batches
  double t_rollout = 0.0, t_attention = 0.0, t_credit = 0.0, t_update = 0.0;  ///< seconds

  double seconds() const { return t_rollout + t_attention + t_credit + t_update; }
};

/// gamma [R, N] and shaped advantages [R, N], float32 on the CPU.
struct credit_assignment {
  ::torch::Tensor gamma, shaped;
  rhythm::pipeline_diagnostics diagnostics;
};

/// rhythm's parameters from the trainer's options.
inline rhythm::pipeline_params pipeline_params_of(const trainer_options& opt) {
  rhythm::pipeline_params p;
  p.signals.window = opt.window;
  p.signals.horizon = {opt.horizon_lo, opt.horizon_hi};
  p.groups.fraction = opt.head_fraction;
  p.pooled_groups = opt.pooled_groups;
  p.selection = {opt.q, opt.bottom_q};
  p.dominance.window = opt.dominance_window;
  p.dominance.threshold = opt.dominance_threshold == "median" ? rhythm::dominance_threshold_mode::median_delta
                                                              : rhythm::dominance_threshold_mode::loc_threshold;
  p.advantages.std_normalise = !opt.dr_grpo;
  p.shaping.sign = parse_sign(opt.sign);
  p.shaping.floor = opt.gamma_floor;
  p.shaping.mean_preserving = opt.mean_preserving;
  return p;
}

/// rhythm's shaping policy from the trainer's options (not for `grpo`). The entropy control
/// selects with the token sets' q and bottom; `random`'s seed is set per step (rhythm_credit).
inline rhythm::shaping::any policy_of(const trainer_options& opt) {
  auto policy = rhythm::shaping::any::parse(opt.shaping);
  policy.gamma_amp = opt.gamma_amp;
  policy.alpha = opt.alpha;
  policy.selection = {opt.q, opt.bottom_q};
  return policy;
}

/// The credit assigner of a run: configured once from the options, reused every step.
inline rhythm::torch::credit_assigner credit_assigner_of(const trainer_options& opt) {
  return rhythm::torch::credit_assigner(is_plain_grpo(opt.shaping) ? rhythm::shaping::any{} : policy_of(opt),
                                        pipeline_params_of(opt), opt.threads);
}

/// Plain GRPO: A_b on every response token of row b (gamma = 1).
inline credit_assignment group_advantage_credit(const rollout_batch& rollouts, const ::torch::Tensor& rewards,
                                                const rhythm::advantage_params& params) {
  const std::int64_t R = rollouts.rows(), N = rollouts.tokens.size(1);
  auto advantages = ::torch::zeros({R}, ::torch::kFloat32);
  const auto group_ids = rollouts.group_ids.contiguous();
  rhythm::grpo_advantages(rhythm::exec::seq{}, rhythm::torch::view<const float, 1>(rewards, "rewards"),
                          rhythm::torch::view<const std::int64_t, 1>(group_ids, "group_ids"),
                          rhythm::torch::view<float, 1>(advantages, "advantages"), params);
  const auto mask = rhythm::torch::response_mask(rollouts.segments, N);
  return {::torch::ones({R, N}), advantages.unsqueeze(1) * mask.to(::torch::kFloat32), {}};
}

/// The rows of the groups whose rewards differ (rewards [R] float32, group_ids [R] int64, on the CPU).
inline std::vector<std::int64_t> signal_rows(const ::torch::Tensor& rewards, const ::torch::Tensor& group_ids) {
  const auto r = rewards.contiguous(), g = group_ids.contiguous();
  const auto* reward = r.data_ptr<float>();
  const auto* group = g.data_ptr<std::int64_t>();
  std::map<std::int64_t, std::pair<float, float>> range;  // group -> (min, max)
  for (std::int64_t i = 0; i < r.numel(); ++i) {
    auto [it, fresh] = range.try_emplace(group[i], reward[i], reward[i]);
    if (!fresh) it->second = {std::min(it->second.first, reward[i]), std::max(it->second.second, reward[i])};
  }
  std::vector<std::int64_t> rows;
  for (std::int64_t i = 0; i < r.numel(); ++i)
    if (range[group[i]].first < range[group[i]].second) rows.push_back(i);
  return rows;
}

/// The attention pass and rhythm's pipeline with the chosen policy, on the signal rows (the file
/// comment); gamma = 1 and A~ = 0 on the other rows. `step` seeds the `random` policy. The recorded
/// Q/K stay on the model's device: the credit assigner takes them from there.
inline credit_assignment rhythm_credit(transformer& model, const rollout_batch& rollouts, const ::torch::Tensor& rewards,
                                       const trainer_options& opt, const std::vector<std::int64_t>& layers,
                                       rhythm::torch::credit_assigner& credit, std::int64_t step, double& t_attention) {
  const auto device = model->embedding->weight.device();
  const std::int64_t R = rollouts.rows(), N = rollouts.tokens.size(1);
  credit_assignment full{::torch::ones({R, N}), ::torch::zeros({R, N}), {}};
  const auto rows = signal_rows(rewards, rollouts.group_ids);
  t_attention = 0.0;
  if (rows.empty()) return full;
  const auto index = ::torch::tensor(rows, ::torch::kInt64);
  std::vector<rhythm::segment> segments;
  for (const auto r : rows) segments.push_back(rollouts.segments[static_cast<std::size_t>(r)]);

  auto start = std::chrono::steady_clock::now();
  ::torch::Tensor q = rollouts.q, k = rollouts.k;
  if (q.defined()) {
    q = q.index_select(0, index.to(device)), k = k.index_select(0, index.to(device));
  } else {
    ::torch::NoGradGuard no_grad;
    const auto tokens = rollouts.tokens.index_select(0, index.to(device));
    auto qk = model->forward_with_qk(tokens, valid_mask(segments, N).to(device), layers);
    q = qk.q, k = qk.k;
  }
  t_attention = seconds_since(start, device);

  if (credit.policy.which == rhythm::shaping::kind::random)
    credit.policy.seed = opt.seed * 0x9e37'79b9'7f4a'7c15ull + std::uint64_t(step);
  const auto out = credit({.q = q,
                           .k = k,
                           .segments = rhythm::torch::segments_tensor(segments),
                           .rewards = rewards.index_select(0, index),
                           .group_ids = rollouts.group_ids.index_select(0, index),
                           .entropies = credit.policy.which == rhythm::shaping::kind::entropy
                                            ? rollouts.entropy.index_select(0, index.to(device))
                                            : ::torch::Tensor()});
  full.gamma.index_copy_(0, index, out.gamma.cpu());
  full.shaped.index_copy_(0, index, out.shaped.cpu());
  full.diagnostics = out.diagnostics.values();
  return full;
}

/// PPO-clip over the rows with a nonzero advantage, shuffled, in mini-batches (one pass; the file
/// comment). Fills loss (the PPO loss of the signal rows, unscaled), clip_fraction, ratio and grad_norm
/// (means over mini-batches).
inline void ppo_update(transformer& model, ::torch::optim::Optimizer& optimizer, const rollout_batch& rollouts,
                       const ::torch::Tensor& shaped, const trainer_options& opt, std::mt19937_64& rng,
                       step_stats& stats) {
  const auto device = model->embedding->weight.device();
  const auto with_advantage = shaped.ne(0).any(1).nonzero().squeeze(1).contiguous();
  std::vector<std::int64_t> order(with_advantage.data_ptr<std::int64_t>(),
                                  with_advantage.data_ptr<std::int64_t>() + with_advantage.numel());
  shuffle(rng, order);
  const rhythm::ppo_params ppo{opt.clip_epsilon, opt.clip_epsilon_high, rhythm::ppo_aggregation::seq_mean_token_mean};
  const auto parts = std::min(static_cast<std::size_t>(opt.minibatches), order.size());
  const double usual_rows = double(rollouts.rows()) / double(opt.minibatches);  // rows of a usual mini-batch
  for (std::size_t m = 0; m < parts; ++m) {
    const std::vector<std::int64_t> rows(order.begin() + static_cast<std::ptrdiff_t>(m * order.size() / parts),
                                         order.begin() + static_cast<std::ptrdiff_t>((m + 1) * order.size() / parts));
    std::vector<rhythm::segment> segments;
    for (const auto r : rows) segments.push_back(rollouts.segments[static_cast<std::size_t>(r)]);
    const auto index = ::torch::tensor(rows, ::torch::kInt64);
    const auto tokens = rollouts.tokens.index_select(0, index.to(device));
    const auto logp_new = token_statistics_of(model, tokens, segments, /*with_entropy=*/false, opt.temperature).logp;
    const auto result = rhythm::torch::ppo_clip_loss(logp_new, rollouts.logp.index_select(0, index.to(device)),
                                                     shaped.index_select(0, index).to(device), segments, ppo);
    optimizer.zero_grad();
    (result.loss * (double(rows.size()) / usual_rows)).backward();
    const double norm = ::torch::nn::utils::clip_grad_norm_(model->parameters(), opt.grad_clip);
    optimizer.step();
    stats.loss += result.loss.item<double>() / double(parts);
    stats.clip_fraction += result.clip_fraction / double(parts);
    stats.ratio += result.mean_ratio / double(parts);
    stats.grad_norm += norm / double(parts);
  }
}

/// The rhythm statistics (rhythm_statistics, tokens/peaks.hpp) of the greedy traces of `problems`, their
/// Q and K recorded from `layers` while decoding: how often an FAI peak follows a WAAD peak within 3
/// tokens, against the same share with the WAAD peaks at shuffled positions (lift = share / baseline),
/// and the token entropy at WAAD peaks against the mean. WAAD and FAI are the pipeline's (local and
/// global head groups of the run's parameters); q and the horizons are the run's.
inline rhythm::rhythm_stats trace_rhythm(transformer& model, const tokenizer& tok, std::span<const problem> problems,
                                         const trainer_options& opt, const std::vector<std::int64_t>& layers) {
  std::vector<std::string> prompts;
  for (const auto& p : problems) prompts.push_back(p.prompt);
  sampling_options sampling;
  sampling.samples_per_prompt = 1;
  sampling.max_new_tokens = opt.max_new_tokens;
  sampling.temperature = 0.0;
  sampling.capture_layers = layers;
  const auto traces = sample(model, encode_prompts(tok, prompts), sampling);
  const auto R = traces.rows();
  rhythm::torch::credit_assigner signals(rhythm::shaping::uniform{}, pipeline_params_of(opt), opt.threads);
  const auto out = signals({.q = traces.q,
                            .k = traces.k,
                            .segments = rhythm::torch::segments_tensor(traces.segments),
                            .rewards = ::torch::zeros({R}),
                            .group_ids = ::torch::arange(R, ::torch::kInt64)});
  const auto waad = out.diagnostics.waad.cpu().contiguous(), fai = out.diagnostics.fai.cpu().contiguous();
  const auto entropy = traces.entropy.cpu().contiguous();
  rhythm::rhythm_stats_params params;
  params.selection = {opt.q, false};
  params.horizon = {opt.horizon_lo, opt.horizon_hi};
  return rhythm::rhythm_statistics(rhythm::exec::seq{}, rhythm::torch::view<const float, 2>(waad, "waad"),
                                   rhythm::torch::view<const float, 2>(fai, "fai"),
                                   rhythm::torch::view<const float, 2>(entropy, "entropy"),
                                   rhythm::make_view(std::span<const rhythm::segment>(traces.segments)), params);
}

/// Rewards [R] float32 (CPU) of the rollouts of `problems` (row r answers problems[r / G]).
inline ::torch::Tensor rewards_of(const task& t, const tokenizer& tok, std::span<const problem> problems,
                                  const rollout_batch& rollouts, std::int64_t G) {
  const auto responses = decode_responses(tok, rollouts);
  auto rewards = ::torch::zeros({rollouts.rows()}, ::torch::kFloat32);
  auto acc = rewards.accessor<float, 1>();
  for (std::int64_t r = 0; r < rollouts.rows(); ++r)
    acc[r] = t.verify(problems[static_cast<std::size_t>(r / G)], responses[static_cast<std::size_t>(r)]);
  return rewards;
}

/// What a step does, decided once from the options (the step compares no strings).
struct step_plan {
  bool plain_grpo = true;               ///< --shaping grpo: the group advantage on every token, no attention pass
  bool record_while_sampling = false;   ///< rhythm's policies with --attention-pass capture
  rhythm::advantage_params advantages;  ///< --dr-grpo

  static step_plan of(const trainer_options& opt) {
    const bool plain = is_plain_grpo(opt.shaping);
    return {plain, !plain && opt.attention_pass == "capture", pipeline_params_of(opt).advantages};
  }
};

/// Everything one GRPO step reads and advances.
struct grpo_context {
  transformer& model;
  ::torch::optim::Optimizer& optimizer;
  rhythm::torch::credit_assigner& credit;
  const task& problems_task;
  const tokenizer& tok;
  const trainer_options& opt;
  std::vector<std::int64_t> capture_layers;
  std::mt19937_64& problem_rng;
  ::at::Generator sampling;
  step_plan plan = step_plan::of(opt);
};

/// One GRPO step (see the file comment).
inline step_stats grpo_step(grpo_context& ctx, std::int64_t step) {
  const auto& opt = ctx.opt;
  const auto device = ctx.model->embedding->weight.device();
  step_stats stats;
  stats.step = step;

  auto start = std::chrono::steady_clock::now();
  std::vector<problem> problems;
  std::vector<std::string> prompts;
  for (std::int64_t i = 0; i < opt.prompts; ++i) {
    problems.push_back(ctx.problems_task.generate(ctx.problem_rng, split::train, opt.level));
    prompts.push_back(problems.back().prompt);
  }
  sampling_options sampling;
  sampling.samples_per_prompt = opt.group;
  sampling.max_new_tokens = opt.max_new_tokens;
  sampling.temperature = opt.temperature;
  sampling.generator = ctx.sampling;
  if (ctx.plan.record_while_sampling) sampling.capture_layers = ctx.capture_layers;
  const auto rollouts = sample(ctx.model, encode_prompts(ctx.tok, prompts), sampling);
  const auto rewards = rewards_of(ctx.problems_task, ctx.tok, problems, rollouts, opt.group);
  stats.t_rollout = seconds_since(start, device);

  for (const auto& s : rollouts.segments) stats.rollout_tokens += s.end - s.response_begin;
  stats.response_length = double(stats.rollout_tokens) / double(rollouts.rows());
  stats.reward = rewards.mean().item<double>();
  const auto per_group = rewards.view({opt.prompts, opt.group});
  stats.signal_groups = (per_group.amax(1) > per_group.amin(1)).to(::torch::kFloat64).mean().item<double>();

  start = std::chrono::steady_clock::now();
  credit_assignment credit;
  if (ctx.plan.plain_grpo) {
    credit = group_advantage_credit(rollouts, rewards, ctx.plan.advantages);
  } else {
    credit = rhythm_credit(ctx.model, rollouts, rewards, opt, ctx.capture_layers, ctx.credit, step, stats.t_attention);
  }
  stats.credit = credit.diagnostics;
  stats.t_credit = seconds_since(start, device) - stats.t_attention;

  stats.t_attention += rollouts.recording_seconds;  // the recording is rhythm's cost, not the rollout's
  stats.t_rollout -= rollouts.recording_seconds;

  start = std::chrono::steady_clock::now();
  std::mt19937_64 order_rng(opt.seed ^ (0xb5ad'4ece'da1c'e2a9ull * std::uint64_t(step + 1)));
  ppo_update(ctx.model, ctx.optimizer, rollouts, credit.shaped, opt, order_rng, stats);
  stats.t_update = seconds_since(start, device);
  return stats;
}

}  // namespace grpo
