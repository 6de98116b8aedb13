#pragma once
/// Held-out evaluation and the supervised warm start.
///
///   held_out_problems   a fixed set of test-split problems (the same for every arm of a seed)
///   evaluate            greedy pass@1 (one argmax decode per problem) and sampled avg@k (k samples at
///                       temperature 1, mean reward); its own generator, reseeded per call, so that
///                       evaluating never changes what training samples
///   warm_start_batches  written solutions in batches of similar length
///   warm_start_step     one supervised step on written solutions: loss = mean over sequences of the mean
///                       negative log-likelihood of the response tokens (EOS included)
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <rhythm/torch.hpp>

#include "model.hpp"
#include "sampling.hpp"
#include "tasks.hpp"
#include "tokenizer.hpp"

namespace grpo {

/// `count` test-split problems of `t` at `level`, drawn from `seed` alone.
inline std::vector<problem> held_out_problems(const task& t, int level, std::int64_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed ^ 0x5eed'e7a1'0000'0000ull);
  std::vector<problem> out;
  for (std::int64_t i = 0; i < count; ++i) out.push_back(t.generate(rng, split::test, level));
  return out;
}

/// A generator on `device` seeded with `seed` (on CUDA: the device's default generator, cloned; on the
/// CPU a new one, since LibTorch 1.13's CPU clone leaks under LeakSanitizer).
inline ::at::Generator make_generator(const ::torch::Device& device, std::uint64_t seed) {
  if (device.is_cpu()) return ::at::detail::createCPUGenerator(seed);
  auto gen = ::at::globalContext().defaultGenerator(device).clone();
  gen.set_current_seed(seed);
  return gen;
}

struct eval_result {
  double greedy = 0.0;           ///< pass@1 of the greedy decode
  double sampled = 0.0;          ///< avg@k: mean reward of k samples per problem at temperature 1
  double greedy_length = 0.0;    ///< mean greedy response length (tokens)
};

/// Evaluates `model` on `problems` (see the file comment); `seed` seeds the avg@k samples.
inline eval_result evaluate(transformer& model, const task& t, const tokenizer& tok, std::span<const problem> problems,
                            std::int64_t k, std::int64_t max_new_tokens, std::uint64_t seed) {
  const auto device = model->embedding->weight.device();
  const std::int64_t chunk = 128;
  eval_result out;
  auto gen = make_generator(device, seed);
  double tokens = 0;
  for (std::size_t first = 0; first < problems.size(); first += chunk) {
    const auto part = problems.subspan(first, std::min<std::size_t>(chunk, problems.size() - first));
    std::vector<std::string> prompts;
    for (const auto& p : part) prompts.push_back(p.prompt);
    const auto batch = encode_prompts(tok, prompts);
    for (const bool greedy : {true, false}) {
      sampling_options opt;
      opt.samples_per_prompt = greedy ? 1 : k;
      opt.max_new_tokens = max_new_tokens;
      opt.temperature = greedy ? 0.0 : 1.0;
      opt.generator = gen;
      const auto rollouts = sample(model, batch, opt);
      const auto responses = decode_responses(tok, rollouts);
      for (std::size_t r = 0; r < responses.size(); ++r) {
        const double reward = t.verify(part[r / static_cast<std::size_t>(opt.samples_per_prompt)], responses[r]);
        (greedy ? out.greedy : out.sampled) += reward;
        if (greedy) tokens += double(rollouts.segments[r].end - rollouts.segments[r].response_begin);
      }
    }
  }
  const auto n = double(problems.size());
  out.greedy /= n;
  out.sampled /= n * double(k);
  out.greedy_length = tokens / n;
  return out;
}

/// Written solutions for the warm start, served in batches of similar length: `pool` batches are drawn
/// at once, sorted by solution length, cut into batches and served in a shuffled order (padding to the
/// longest row of a batch then costs little).
class warm_start_batches {
 public:
  warm_start_batches(const task& t, int level, std::int64_t batch_size, std::int64_t pool = 8)
      : task_(t), level_(level), batch_(batch_size), pool_(pool) {}

  /// The next batch: prompts and their solutions.
  std::pair<std::vector<std::string>, std::vector<std::string>> next(std::mt19937_64& rng) {
    if (ready_.empty()) refill(rng);
    auto out = std::move(ready_.back());
    ready_.pop_back();
    return out;
  }

 private:
  void refill(std::mt19937_64& rng) {
    std::vector<std::pair<std::string, std::string>> drawn;
    for (std::int64_t i = 0; i < batch_ * pool_; ++i) {
      const auto p = task_.generate(rng, split::train, level_);
      drawn.emplace_back(p.prompt, task_.write_solution(p, rng));
    }
    std::stable_sort(drawn.begin(), drawn.end(),
                     [](const auto& a, const auto& b) { return a.second.size() < b.second.size(); });
    for (std::int64_t b = 0; b < pool_; ++b) {
      ready_.emplace_back();
      for (std::int64_t i = b * batch_; i < (b + 1) * batch_; ++i) {
        ready_.back().first.push_back(drawn[static_cast<std::size_t>(i)].first);
        ready_.back().second.push_back(drawn[static_cast<std::size_t>(i)].second);
      }
    }
    shuffle(rng, ready_);
  }

  const task& task_;
  int level_;
  std::int64_t batch_, pool_;
  std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> ready_;
};

/// Learning rate of warm-start step s (0-based) of `steps`: linear warm-up to `peak` over `warmup` steps,
/// then a cosine decay to peak / 10 at the last step.
inline double warm_start_learning_rate(std::int64_t s, std::int64_t steps, double peak, std::int64_t warmup) {
  if (s < warmup) return peak * double(s + 1) / double(warmup);
  const double progress = steps > warmup + 1 ? double(s - warmup) / double(steps - warmup - 1) : 1.0;
  return peak * (0.1 + 0.45 * (1.0 + std::cos(3.141592653589793 * std::min(progress, 1.0))));
}

/// One supervised step on a batch of prompts and written solutions; returns the loss.
inline double warm_start_step(transformer& model, ::torch::optim::Optimizer& optimizer, const tokenizer& tok,
                              const std::vector<std::string>& prompts, const std::vector<std::string>& solutions) {
  const auto device = model->embedding->weight.device();
  const auto batch = encode_sequences(tok, prompts, solutions);
  const auto tokens = batch.tokens.to(device);
  const auto mask = rhythm::torch::response_mask(batch.segments, tokens.size(1)).to(device).to(::torch::kFloat32);
  const auto logp = token_statistics_of(model, tokens, batch.segments, /*with_entropy=*/false).logp;
  const auto loss = -((logp * mask).sum(1) / mask.sum(1)).mean();
  optimizer.zero_grad();
  loss.backward();
  ::torch::nn::utils::clip_grad_norm_(model->parameters(), 1.0);
  optimizer.step();
  return loss.item<double>();
}

/// Sets every parameter group's learning rate (AdamW).
inline void set_learning_rate(::torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) static_cast<::torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

}  // namespace grpo
