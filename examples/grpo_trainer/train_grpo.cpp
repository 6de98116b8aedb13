// train_grpo: rhythm's reference GRPO trainer in one file, read top to bottom.
//
//   build/release/examples/grpo_trainer/grpo_trainer --shaping coupled_rhythm --out runs/one
//   build/release/examples/grpo_trainer/grpo_trainer --help            every knob and its default
//
// A run: a supervised warm start on written solutions (or one loaded with --init-from), then GRPO steps
// with held-out evaluations and checkpoints, then the rhythm statistics of the final model's traces and
// the curves. The files under --out:
//
//   metrics.jsonl    one JSON object per warm-start report, GRPO step and evaluation (section 5), and last
//                    the rhythm statistics of the final model's held-out greedy traces (trace_rhythm)
//   warm_start.pt    the model after the warm start (start GRPO from it with --init-from)
//   checkpoint.pt    the latest GRPO checkpoint (continue with --resume)
//   curves.png       reward, held-out accuracy, gamma and the step time split
//
// Determinism (on the CPU): with the same options (threads included) a run repeats exactly, and a run
// resumed from a checkpoint at step s writes the same metrics for steps >= s as the uninterrupted run.
// On CUDA, atomics in some backward kernels make runs differ in the last bits. GRPO draws its problems
// and samples from generators seeded at its step 0 from opt.seed alone, so every arm started from the
// same warm start sees the same problems; evaluation uses generators of its own.
//
// Sections: 1 tunables (every flag, parsed once into enums), 2 evaluation, 3 warm start, 4 the GRPO
// step (rollout, rhythm's credit, PPO update), 5 checkpoints, metrics and curves, 6 the run, 7 main.
// The other files: model.hpp (tokenizer and transformer), sampling.hpp (batches, the KV-cache sampler
// and its Q/K recorder), tasks.hpp (problems, written solutions, verifiers), plot.hpp (PNG charts).
// grpo_experiments.cpp and the tests include this file with GRPO_TRAIN_NO_MAIN defined, as llm.c's
// tests include its trainer.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <rhythm/torch.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <rhythm/core/token_types.hpp>
#include <rhythm/credit/advantages.hpp>
#include <rhythm/credit/policies.hpp>
#include <rhythm/tokens/peaks.hpp>
#include <rhythm/torch.hpp>

#include "model.hpp"
#include "plot.hpp"
#include "sampling.hpp"
#include "tasks.hpp"

namespace grpo {

// ====================================================================================================
// 1. Tunables
// ====================================================================================================
/// Every knob of the trainer, its default, and its command-line flag (CLI11).
///
///   grpo::trainer_options opt;                 // defaults: the demo's run (the rule task)
///   CLI::App app;  grpo::add_trainer_options(app, opt);  CLI11_PARSE(app, argc, argv);
///   grpo::validate(opt);                       // cross-field checks; std::invalid_argument naming the flag
///
/// Phases: a supervised warm start on written solutions (sft_*), then GRPO (rl_*): per step, `prompts`
/// problems x `group` samples at `temperature`, rewards, group advantages, the attention pass (Q and K
/// of `capture_layers`, no grad) and rhythm's pipeline -> gamma, then PPO-clip over `minibatches`
/// mini-batches, AdamW, gradient clipping, no KL term.

/// Which advantage the PPO update sees (`--shaping`). `grpo`: the group advantage on every response
/// token, no attention pass. Any other name is one of rhythm's built-in policies
/// (rhythm::shaping::any::names): the attention pass and rhythm's pipeline with that policy
/// (`uniform` gives gamma = 1 and so the same update as `grpo`).
inline bool is_plain_grpo(const std::string& shaping) { return shaping == "grpo"; }

/// Every `--shaping` name: grpo, then rhythm's policies.
inline std::vector<std::string> shaping_choices() {
  std::vector<std::string> names{"grpo"};
  for (const auto name : rhythm::shaping::any::names) names.emplace_back(name);
  return names;
}

/// Throws std::invalid_argument listing the known names unless `name` is one.
inline void check_shaping(const std::string& name) {
  std::string known;
  for (const auto& n : shaping_choices()) {
    if (n == name) return;
    known += (known.empty() ? "" : ", ") + n;
  }
  throw std::invalid_argument("--shaping: expected one of " + known + ", got '" + name + "'");
}

/// Where the run computes (`--device`).
enum class device_choice { automatic, cpu, cuda };
/// Where rhythm's attention pass gets Q and K (`--attention-pass`).
enum class attention_pass_mode {
  capture,  ///< recorded by the rollout while it decodes (no extra forward)
  forward   ///< a separate no-grad forward over the sampled sequences
};

/// Flag name -> value of each enum option (add_choice_option).
inline const std::map<std::string, device_choice> device_names{
    {"auto", device_choice::automatic}, {"cpu", device_choice::cpu}, {"cuda", device_choice::cuda}};
inline const std::map<std::string, attention_pass_mode> attention_pass_names{
    {"capture", attention_pass_mode::capture}, {"forward", attention_pass_mode::forward}};
inline const std::map<std::string, rhythm::sign_mode> sign_names{
    {"both", rhythm::sign_mode::both}, {"positive", rhythm::sign_mode::positive},
    {"negative", rhythm::sign_mode::negative}};
inline const std::map<std::string, rhythm::dominance_threshold_mode> dominance_threshold_names{
    {"loc", rhythm::dominance_threshold_mode::loc_threshold}, {"median", rhythm::dominance_threshold_mode::median_delta}};

/// The flag name of `value` in `names` (the reverse of the map).
template <class Enum>
std::string name_of(const std::map<std::string, Enum>& names, Enum value) {
  for (const auto& [name, v] : names)
    if (v == value) return name;
  throw std::invalid_argument("name_of: a value without a name");
}

/// Adds `flag`, whose value is one of the names of `names`, parsed into `target` once (CLI11 rejects
/// other names, naming the flag and the choices).
template <class Enum>
CLI::Option* add_choice_option(CLI::App& app, const std::string& flag, Enum& target,
                               const std::map<std::string, Enum>& names, const std::string& help) {
  std::vector<std::string> choices;
  for (const auto& [name, value] : names) choices.push_back(name);
  return app.add_option_function<std::string>(flag, [&target, &names](const std::string& name) { target = names.at(name); },
                                              help)
      ->default_str(name_of(names, target))
      ->check(CLI::IsMember(choices));
}

/// The model's max_seq_len (RoPE tables): prompt + response never exceed it.
inline constexpr std::int64_t max_sequence_length = 1024;

struct trainer_options {
  // Run
  std::string task = "rule";
  int level = 0;                   ///< task difficulty level (0, 1, 2)
  std::uint64_t seed = 1;          ///< problems, initial weights, sampling
  device_choice device = device_choice::automatic;  ///< cuda when LibTorch has it
  int threads = 2;                 ///< CPU intra-op threads (torch and rhythm)
  std::string out_dir = "runs/grpo";
  bool quiet = false;              ///< no progress line per step (metrics are still written)

  // Model (model.hpp)
  std::int64_t d_model = 64, n_layers = 2, n_heads = 4, n_kv_heads = 2;
  std::vector<std::int64_t> capture_layers;  ///< layers read by the attention pass; empty: default_capture_layers
  attention_pass_mode attention_pass = attention_pass_mode::capture;

  // Warm start (supervised, on written solutions)
  std::int64_t sft_steps = 1500;
  std::int64_t sft_batch = 64;
  double sft_lr = 3e-3;
  std::int64_t sft_warmup = 50;    ///< linear warm-up steps, then a cosine decay to sft_lr / 10
  std::string init_from;           ///< a checkpoint file to start GRPO from (skips the warm start)

  // GRPO
  std::int64_t rl_steps = 240;
  std::int64_t prompts = 16;       ///< problems per step
  std::int64_t group = 8;          ///< G samples per problem
  std::int64_t max_new_tokens = 128;
  double temperature = 1.0;        ///< rollout temperature; the update's policy is softmax(logits / temperature)
  std::int64_t minibatches = 2;    ///< PPO mini-batches per step (one pass over the rollouts)
  double rl_lr = 3e-4;
  double weight_decay = 0.0;
  double clip_epsilon = 0.2, clip_epsilon_high = 0.2;
  double grad_clip = 1.0;
  bool dr_grpo = false;            ///< centre advantages without dividing by the group's std

  // Credit (rhythm)
  std::string shaping = "coupled_rhythm";
  rhythm::sign_mode sign = rhythm::sign_mode::both;  ///< which advantages are shaped
  bool bottom_q = false;           ///< ablation: bottom-q token sets instead of top-q
  double q = 0.4, gamma_amp = 1.5, alpha = 0.5;
  std::int64_t window = 10, horizon_lo = 10, horizon_hi = 100;
  double head_fraction = 0.3;
  bool pooled_groups = false;      ///< rank heads over the step's signal rows instead of per sequence
  std::int64_t dominance_window = 3;
  rhythm::dominance_threshold_mode dominance_threshold = rhythm::dominance_threshold_mode::loc_threshold;  ///< tau_Delta
  double gamma_floor = 0.0;        ///< lower bound on gamma; 0: none
  bool mean_preserving = false;    ///< rescale each shaped response to mean gamma 1

  // Evaluation and checkpoints
  std::int64_t eval_every = 40;    ///< GRPO steps between held-out evaluations (and at the start and end)
  std::int64_t eval_problems = 256;
  std::int64_t eval_k = 4;         ///< samples per problem for avg@k
  std::int64_t checkpoint_every = 50;
  std::string resume;              ///< a checkpoint file to continue exactly from
};

/// CLI11 validator: a finite number. CLI11's ranges only compare, so NaN passes every one of them; Inf
/// passes the open ones. (Input that is no number at all is left to the option's conversion error.)
inline const CLI::Validator finite_number(
    [](std::string& input) -> std::string {
      double value = 0;
      if (!CLI::detail::lexical_cast(input, value) || std::isfinite(value)) return "";
      return "expected a finite number, got " + input;
    },
    "FINITE");

/// CLI11 validator: no minus sign (an unsigned option would read "-1" as 2^64 - 1).
inline const CLI::Validator unsigned_number(
    [](std::string& input) -> std::string {
      return input.find('-') == std::string::npos ? "" : "expected a non-negative integer, got " + input;
    },
    "UNSIGNED");

/// Registers every field of `opt` as a flag of `app` (range checks by CLI11, which names the flag).
/// Every floating-point flag must be finite.
inline void add_trainer_options(CLI::App& app, trainer_options& opt) {
  const auto positive = CLI::PositiveNumber & finite_number;
  const auto non_negative = CLI::NonNegativeNumber & finite_number;
  const auto share = CLI::Range(0.0, 1.0) & finite_number;
  const std::vector<std::string> kinds = shaping_choices();

  app.add_option("--task", opt.task, "countdown, arithmetic, planning, chain or rule")->capture_default_str()
      ->check(CLI::IsMember({"countdown", "arithmetic", "planning", "chain", "rule"}));
  app.add_option("--level", opt.level, "task difficulty level")->capture_default_str()->check(CLI::Range(0, 2));
  app.add_option("--seed", opt.seed, "seed of problems, weights and sampling")->capture_default_str()
      ->check(unsigned_number);
  add_choice_option(app, "--device", opt.device, device_names, "cpu, cuda or auto");
  app.add_option("--threads", opt.threads, "CPU threads")->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--out", opt.out_dir, "output directory (metrics, plots, checkpoints)")->capture_default_str();
  app.add_flag("--quiet", opt.quiet, "no progress line per step");

  app.add_option("--d-model", opt.d_model, "model width")->capture_default_str()->check(positive);
  app.add_option("--layers", opt.n_layers, "decoder blocks")->capture_default_str()->check(positive);
  app.add_option("--heads", opt.n_heads, "query heads")->capture_default_str()->check(positive);
  app.add_option("--kv-heads", opt.n_kv_heads, "key/value heads (GQA)")->capture_default_str()->check(positive);
  app.add_option("--capture-layers", opt.capture_layers, "layers the attention pass reads (default: middle third)")
      ->check(non_negative);
  add_choice_option(app, "--attention-pass", opt.attention_pass, attention_pass_names,
                    "capture: record Q/K while sampling; forward: a separate no-grad forward after sampling");

  app.add_option("--sft-steps", opt.sft_steps, "warm-start steps")->capture_default_str()->check(non_negative);
  app.add_option("--sft-batch", opt.sft_batch, "warm-start batch")->capture_default_str()->check(positive);
  app.add_option("--sft-lr", opt.sft_lr, "warm-start learning rate")->capture_default_str()->check(positive);
  app.add_option("--sft-warmup", opt.sft_warmup, "warm-start linear warm-up steps")->capture_default_str()
      ->check(non_negative);
  app.add_option("--init-from", opt.init_from, "checkpoint to start GRPO from (skips the warm start)")
      ->check(CLI::ExistingFile);

  app.add_option("--steps", opt.rl_steps, "GRPO steps")->capture_default_str()->check(non_negative);
  app.add_option("--prompts", opt.prompts, "problems per GRPO step")->capture_default_str()->check(positive);
  app.add_option("--group", opt.group, "samples per problem (G)")->capture_default_str()->check(CLI::Range(2, 1 << 16));
  app.add_option("--max-new-tokens", opt.max_new_tokens, "longest response")->capture_default_str()->check(positive);
  app.add_option("--temperature", opt.temperature, "rollout temperature (the PPO policy is softmax(logits / T))")
      ->capture_default_str()->check(CLI::Range(0.05, 10.0) & finite_number);
  app.add_option("--minibatches", opt.minibatches, "PPO mini-batches per step")->capture_default_str()->check(positive);
  app.add_option("--lr", opt.rl_lr, "GRPO learning rate (AdamW)")->capture_default_str()->check(positive);
  app.add_option("--weight-decay", opt.weight_decay, "AdamW weight decay")->capture_default_str()->check(non_negative);
  app.add_option("--clip-epsilon", opt.clip_epsilon, "PPO lower clip")->capture_default_str()->check(share);
  app.add_option("--clip-epsilon-high", opt.clip_epsilon_high, "PPO upper clip")->capture_default_str()
      ->check(non_negative);
  app.add_option("--grad-clip", opt.grad_clip, "gradient norm clip")->capture_default_str()->check(positive);
  app.add_flag("--dr-grpo", opt.dr_grpo, "centre advantages without dividing by the group's std");

  app.add_option("--shaping", opt.shaping, "credit: grpo, uniform, local_chunk, global_anchor, coupled_rhythm, random, "
                                           "entropy")
      ->capture_default_str()->check(CLI::IsMember(kinds));
  add_choice_option(app, "--sign", opt.sign, sign_names, "which advantages are shaped: both, positive, negative");
  app.add_flag("--bottom-q", opt.bottom_q, "ablation: bottom-q token sets instead of top-q");
  app.add_option("--q", opt.q, "share of tokens selected")->capture_default_str()
      ->check(CLI::Range(1e-9, 1.0) & finite_number);
  app.add_option("--gamma-amp", opt.gamma_amp, "amplification")->capture_default_str()
      ->check(CLI::Range(1.0, 1e6) & finite_number);
  app.add_option("--alpha", opt.alpha, "coupling share moved to intro tokens")->capture_default_str()->check(share);
  app.add_option("--window", opt.window, "WAAD window W")->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, max_sequence_length));
  app.add_option("--horizon-lo", opt.horizon_lo, "FAI horizon H_lo")->capture_default_str()->check(non_negative);
  app.add_option("--horizon-hi", opt.horizon_hi, "FAI horizon H_hi")->capture_default_str()->check(non_negative);
  app.add_option("--head-fraction", opt.head_fraction, "share of heads per group")->capture_default_str()
      ->check(CLI::Range(1e-9, 1.0) & finite_number);
  app.add_flag("--pooled-groups", opt.pooled_groups, "rank heads over the step's signal rows instead of per sequence");
  app.add_option("--dominance-window", opt.dominance_window, "k: an anchor looks back at the jumps of [t-k, t-1]")
      ->capture_default_str()->check(positive);
  add_choice_option(app, "--dominance-threshold", opt.dominance_threshold, dominance_threshold_names,
                    "tau_Delta: loc (T_loc threshold) or median");
  app.add_option("--gamma-floor", opt.gamma_floor, "lower bound on gamma (0: none)")->capture_default_str()
      ->check(non_negative);
  app.add_flag("--mean-preserving", opt.mean_preserving, "rescale each shaped response to mean gamma 1");

  app.add_option("--eval-every", opt.eval_every, "GRPO steps between evaluations")->capture_default_str()
      ->check(positive);
  app.add_option("--eval-problems", opt.eval_problems, "held-out problems per evaluation")->capture_default_str()
      ->check(positive);
  app.add_option("--eval-k", opt.eval_k, "samples per problem for avg@k")->capture_default_str()->check(positive);
  app.add_option("--checkpoint-every", opt.checkpoint_every, "GRPO steps between checkpoints")
      ->capture_default_str()->check(positive);
  app.add_option("--resume", opt.resume, "checkpoint to continue exactly from")->check(CLI::ExistingFile);
}

/// Checks between fields (single-field ranges are CLI11's); std::invalid_argument naming the flag.
inline void validate(const trainer_options& opt) {
  auto require = [](bool ok, const std::string& flag, const std::string& expected, const std::string& got) {
    if (!ok) throw std::invalid_argument(flag + ": expected " + expected + ", got " + got);
  };
  const auto str = [](auto v) { return std::to_string(v); };
  check_shaping(opt.shaping);
  require(opt.d_model % opt.n_heads == 0 && (opt.d_model / opt.n_heads) % 2 == 0, "--d-model",
          "a multiple of 2 x --heads (" + str(opt.n_heads) + ")", str(opt.d_model));
  require(opt.n_heads % opt.n_kv_heads == 0, "--kv-heads", "a divisor of --heads (" + str(opt.n_heads) + ")",
          str(opt.n_kv_heads));
  for (const auto l : opt.capture_layers)
    require(l >= 0 && l < opt.n_layers, "--capture-layers", "layers in [0, " + str(opt.n_layers) + ")", str(l));
  require(opt.horizon_lo <= opt.horizon_hi, "--horizon-hi", ">= --horizon-lo (" + str(opt.horizon_lo) + ")",
          str(opt.horizon_hi));
  require(opt.minibatches <= opt.prompts * opt.group, "--minibatches",
          "at most --prompts x --group (" + str(opt.prompts * opt.group) + ")", str(opt.minibatches));
  require(opt.resume.empty() || opt.init_from.empty(), "--resume", "not together with --init-from", "both");
  require(opt.max_new_tokens <= max_sequence_length / 2, "--max-new-tokens",
          "at most " + str(max_sequence_length / 2), str(opt.max_new_tokens));
}

// ====================================================================================================
// 2. Evaluation
// ====================================================================================================
/// Held-out evaluation.
///
///   held_out_problems   a fixed set of test-split problems (the same for every arm of a seed)
///   evaluate            greedy pass@1 (one argmax decode per problem) and sampled avg@k (k samples at
///                       temperature 1, mean reward); its own generator, reseeded per call, so that
///                       evaluating never changes what training samples

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

// ====================================================================================================
// 3. Warm start
// ====================================================================================================
/// Supervised steps on written solutions, in batches of similar length, with a linear warm-up and a cosine
/// decay: loss = mean over sequences of the mean negative log-likelihood of the response tokens (EOS
/// included).

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

// ====================================================================================================
// 4. GRPO step
// ====================================================================================================
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

/// Seconds since `start`, after the device's queued work is done.
inline double seconds_since(std::chrono::steady_clock::time_point start, const ::torch::Device& device) {
  if (device.is_cuda()) ::torch::cuda::synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// What a step did; a JSON line of metrics.jsonl and the progress line (section 5).
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
  p.dominance.threshold = opt.dominance_threshold;
  p.advantages.std_normalise = !opt.dr_grpo;
  p.shaping.sign = opt.sign;
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
/// comment); gamma = 1 and A~ = 0 on the other rows. `step` seeds the `random` policy (its draws follow
/// the row's index in the batch). Recorded Q/K are read in place, on the model's device: every row goes
/// to the credit assigner, the other rows with an empty response (no work, gamma 1, A~ 0, no token in
/// the counts, span 0 for every head, which leaves a pooled ranking as it is), so that nothing is copied.
inline credit_assignment rhythm_credit(transformer& model, const rollout_batch& rollouts, const ::torch::Tensor& rewards,
                                       const trainer_options& opt, const std::vector<std::int64_t>& layers,
                                       rhythm::torch::credit_assigner& credit, std::int64_t step, double& t_attention) {
  const auto device = model->embedding->weight.device();
  const std::int64_t R = rollouts.rows(), N = rollouts.tokens.size(1);
  const auto rows = signal_rows(rewards, rollouts.group_ids);
  t_attention = 0.0;
  if (rows.empty()) return {::torch::ones({R, N}), ::torch::zeros({R, N}), {}};
  std::vector<rhythm::segment> segments = rollouts.segments;  // responses emptied, then the signal rows' restored
  for (auto& s : segments) s.end = s.response_begin;
  for (const auto r : rows) segments[std::size_t(r)].end = rollouts.segments[std::size_t(r)].end;

  auto start = std::chrono::steady_clock::now();
  ::torch::Tensor q = rollouts.q, k = rollouts.k;
  if (!q.defined()) {  // --attention-pass forward: a forward over the signal rows, scattered into a zero batch
    ::torch::NoGradGuard no_grad;
    const auto index = ::torch::tensor(rows, ::torch::kInt64).to(device);
    const auto valid = valid_mask(segments, N).index_select(0, index.cpu()).to(device);
    auto qk = model->forward_with_qk(rollouts.tokens.index_select(0, index), valid, layers);
    q = ::torch::zeros({R, qk.q.size(1), N, qk.q.size(3)}, qk.q.options()).index_copy_(0, index, qk.q);
    k = ::torch::zeros({R, qk.k.size(1), N, qk.k.size(3)}, qk.k.options()).index_copy_(0, index, qk.k);
  }
  t_attention = seconds_since(start, device);

  if (credit.policy.which == rhythm::shaping::kind::random)
    credit.policy.seed = opt.seed * 0x9e37'79b9'7f4a'7c15ull + std::uint64_t(step);
  const auto out = credit({.q = q,
                           .k = k,
                           .segments = rhythm::torch::segments_tensor(segments),
                           .rewards = rewards,
                           .group_ids = rollouts.group_ids,
                           .entropies = credit.policy.which == rhythm::shaping::kind::entropy ? rollouts.entropy
                                                                                              : ::torch::Tensor()});
  return {out.gamma.cpu(), out.shaped.cpu(), out.diagnostics.values()};
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
    return {plain, !plain && opt.attention_pass == attention_pass_mode::capture, pipeline_params_of(opt).advantages};
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

// ====================================================================================================
// 5. Checkpoints, metrics and curves
// ====================================================================================================
/// Checkpoints: one file holding everything a run needs to continue bit for bit.
///
///   model        parameters and buffers (model.hpp's names)
///   optimizer    AdamW's moments and step counts (absent in a warm-start checkpoint)
///   state        phase ("warm_start" or "rl"), the next step, the problem generator (std::mt19937_64
///                in its text form), the sampling generator's state, and the model's shape (checked on load)
///
/// Writes are atomic: the archive goes to `path.tmp`, which is then renamed over `path`, so a crash
/// leaves either the previous checkpoint or the new one, never half of one. Loading maps every tensor
/// to the model's device (a CPU warm start can start a CUDA run).
///
/// Metrics are JSON lines, one object per warm-start report, GRPO step and evaluation; every line has
/// "phase" ("warm_start", "rl", "eval" or "rhythm") and "step", and an "eval" line at step s evaluates
/// the policy before GRPO step s. Credit figures (gamma_mean, gamma_amplified_share, preplan, anchor,
/// dominated) are over the step's signal rows (section 4); gamma_mean is 1 where no pipeline ran. On
/// resume at step s the file keeps its warm-start lines and the lines of steps < s, so that it reads as
/// one uninterrupted run. read_metrics reads a file back into series; write_run_curves draws one run's
/// curves.png (reward and its 20-step moving mean, held-out greedy pass@1 and avg@k, gamma, step time).

/// The non-tensor part of a checkpoint.
struct run_state {
  std::string phase = "warm_start";  ///< what the checkpoint ends: "warm_start" or "rl"
  std::int64_t step = 0;             ///< the next step of that phase
  std::mt19937_64 problem_rng;       ///< draws training problems
  ::torch::Tensor sampling_state;    ///< the rollout generator's state (at::Generator::get_state)
};

namespace detail {

inline std::string shape_key(const model_config& c) {
  return "vocab " + std::to_string(c.vocab_size) + ", d_model " + std::to_string(c.d_model) + ", layers " +
         std::to_string(c.n_layers) + ", heads " + std::to_string(c.n_heads) + "/" + std::to_string(c.n_kv_heads) +
         ", mlp " + std::to_string(c.mlp_hidden_size()) + ", max_seq_len " + std::to_string(c.max_seq_len);
}

}  // namespace detail

/// Writes model, optimizer (when given) and state to `path` atomically.
inline void save_checkpoint(const std::string& path, transformer& model, ::torch::optim::Optimizer* optimizer,
                            const run_state& state) {
  ::torch::serialize::OutputArchive archive, model_archive, optimizer_archive;
  model->save(model_archive);
  archive.write("model", model_archive);
  if (optimizer) {
    optimizer->save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
  }
  std::ostringstream rng;
  rng << state.problem_rng;
  archive.write("phase", ::c10::IValue(state.phase));
  archive.write("step", ::c10::IValue(state.step));
  archive.write("problem_rng", ::c10::IValue(rng.str()));
  archive.write("sampling_state", state.sampling_state);
  archive.write("model_shape", ::c10::IValue(detail::shape_key(model->config)));
  const std::filesystem::path target(path), temporary(path + ".tmp");
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path());
  try {
    archive.save_to(temporary.string());
    std::filesystem::rename(temporary, target);
  } catch (...) {
    std::filesystem::remove(temporary);
    throw;
  }
}

/// Reads a checkpoint into `model` (whose shape must match the one saved), `optimizer` (when given;
/// the checkpoint must then hold one) and returns the state. std::runtime_error naming the file otherwise.
inline run_state load_checkpoint(const std::string& path, transformer& model, ::torch::optim::Optimizer* optimizer) {
  if (!std::filesystem::is_regular_file(path)) throw std::runtime_error("checkpoint '" + path + "': no such file");
  ::torch::serialize::InputArchive archive;
  archive.load_from(path, model->embedding->weight.device());
  ::c10::IValue value;
  archive.read("model_shape", value);
  const auto expected = detail::shape_key(model->config);
  if (value.toStringRef() != expected)
    throw std::runtime_error("checkpoint '" + path + "': model shape " + value.toStringRef() +
                             " differs from the configured " + expected);
  ::torch::serialize::InputArchive model_archive, optimizer_archive;
  archive.read("model", model_archive);
  model->load(model_archive);
  if (optimizer) {
    if (!archive.try_read("optimizer", optimizer_archive))
      throw std::runtime_error("checkpoint '" + path + "': holds no optimizer state (a warm-start checkpoint: use "
                               "--init-from, not --resume)");
    optimizer->load(optimizer_archive);
  }
  run_state state;
  archive.read("phase", value);
  state.phase = value.toStringRef();
  archive.read("step", value);
  state.step = value.toInt();
  archive.read("problem_rng", value);
  std::istringstream rng(value.toStringRef());
  rng >> state.problem_rng;
  archive.read("sampling_state", state.sampling_state);
  return state;
}

inline nlohmann::json to_json(const step_stats& s) {
  return {{"phase", "rl"},
          {"step", s.step},
          {"reward", s.reward},
          {"signal_groups", s.signal_groups},
          {"response_length", s.response_length},
          {"rollout_tokens", s.rollout_tokens},
          {"gamma_mean", s.credit.response_tokens ? s.credit.mean_gamma : 1.0},
          {"gamma_amplified_share", s.credit.amplified_share},
          {"preplan", s.credit.preplan},
          {"anchor", s.credit.anchor},
          {"dominated", s.credit.dominated},
          {"loss", s.loss},
          {"clip_fraction", s.clip_fraction},
          {"ratio", s.ratio},
          {"grad_norm", s.grad_norm},
          {"t_rollout", s.t_rollout},
          {"t_attention", s.t_attention},
          {"t_credit", s.t_credit},
          {"t_update", s.t_update}};
}

inline nlohmann::json to_json(std::int64_t step, const eval_result& e) {
  return {{"phase", "eval"}, {"step", step}, {"greedy", e.greedy}, {"sampled", e.sampled},
          {"greedy_length", e.greedy_length}};
}

/// The rhythm statistics of the traces at `step` (trace_rhythm); undefined shares are null.
inline nlohmann::json to_json(std::int64_t step, const rhythm::rhythm_stats& r) {
  auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  return {{"phase", "rhythm"}, {"step", step}, {"waad_peaks", r.waad_peaks}, {"fai_peaks", r.fai_peaks},
          {"fai_peaks_following", r.fai_peaks_following}, {"share", number(r.share)}, {"baseline", number(r.baseline)},
          {"lift", number(r.lift)}, {"entropy_ratio", number(r.entropy_ratio)}};
}

/// Appends JSON lines to a file, flushing each one.
class metrics_log {
 public:
  /// Opens `path`; `resume_step` >= 0 first drops the lines of steps >= resume_step (phases rl and eval).
  metrics_log(const std::string& path, std::int64_t resume_step = -1) {
    std::vector<std::string> kept;
    if (resume_step >= 0 && std::filesystem::exists(path)) {
      std::ifstream in(path);
      for (std::string line; std::getline(in, line);) {
        const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        if (j.is_object() && (j.value("phase", "") == "warm_start" || j.value("step", resume_step) < resume_step))
          kept.push_back(line);
      }
    }
    if (std::filesystem::path(path).has_parent_path()) std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    {  // the kept lines replace the file atomically
      std::ofstream rewrite(path + ".tmp", std::ios::trunc);
      for (const auto& line : kept) rewrite << line << '\n';
      if (!rewrite.flush()) throw std::runtime_error("metrics: cannot write '" + path + ".tmp'");
    }
    std::filesystem::rename(path + ".tmp", path);
    out_.open(path, std::ios::app);
    if (!out_) throw std::runtime_error("metrics: cannot write '" + path + "'");
  }

  void write(const nlohmann::json& line) { out_ << line.dump() << '\n' << std::flush; }

 private:
  std::ofstream out_;
};

/// "rl   12/200 | reward 0.41 (signal 62%) | len 84 | gamma 1.08, 17% amplified | loss -0.012 clip 0.02 |
///  1.92 s = rollout 1.10 + attention 0.01 + credit 0.01 + update 0.80 | 9.3k tok/s"
inline std::string progress_line(const step_stats& s, std::int64_t steps) {
  char line[320];
  std::snprintf(line, sizeof line,
                "rl %5lld/%lld | reward %.3f (signal %3.0f%%) | len %5.1f | gamma %.3f, %2.0f%% amplified | loss %+.4f "
                "clip %.3f | %.2f s = rollout %.2f + attention %.3f + credit %.3f + update %.2f | %.1fk tok/s",
                static_cast<long long>(s.step), static_cast<long long>(steps), s.reward, 100.0 * s.signal_groups,
                s.response_length, s.credit.response_tokens ? s.credit.mean_gamma : 1.0,
                100.0 * s.credit.amplified_share, s.loss, s.clip_fraction, s.seconds(), s.t_rollout, s.t_attention,
                s.t_credit, s.t_update, double(s.rollout_tokens) / s.t_rollout / 1e3);
  return line;
}

inline std::string eval_line(std::int64_t step, const eval_result& e, std::int64_t k) {
  char line[160];
  std::snprintf(line, sizeof line, "eval at step %lld: greedy pass@1 %.1f%%, avg@%lld %.1f%%, greedy length %.1f",
                static_cast<long long>(step), 100.0 * e.greedy, static_cast<long long>(k), 100.0 * e.sampled,
                e.greedy_length);
  return line;
}

/// One run's series, in file order.
struct run_curves {
  std::vector<double> step, reward, gamma_mean, amplified, t_rollout, t_attention, t_credit, t_update, rollout_tokens;
  std::vector<double> eval_step, greedy, sampled;
  rhythm::rhythm_stats rhythm;  ///< the "rhythm" line (NaN shares where it has null or is absent)
};

inline run_curves read_metrics(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("curves: cannot read '" + path + "'");
  run_curves c;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    const auto phase = j.value("phase", "");
    if (phase == "rl") {
      c.step.push_back(j["step"].get<double>());
      for (auto [series, key] : {std::pair{&c.reward, "reward"}, {&c.gamma_mean, "gamma_mean"},
                                 {&c.amplified, "gamma_amplified_share"}, {&c.t_rollout, "t_rollout"},
                                 {&c.t_attention, "t_attention"}, {&c.t_credit, "t_credit"}, {&c.t_update, "t_update"},
                                 {&c.rollout_tokens, "rollout_tokens"}})
        series->push_back(j[key].get<double>());
    } else if (phase == "eval") {
      c.eval_step.push_back(j["step"].get<double>());
      c.greedy.push_back(j["greedy"].get<double>());
      c.sampled.push_back(j["sampled"].get<double>());
    } else if (phase == "rhythm") {
      auto number = [&](const char* key) { return j[key].is_number() ? j[key].get<double>() : NAN; };
      c.rhythm.waad_peaks = j["waad_peaks"], c.rhythm.fai_peaks = j["fai_peaks"];
      c.rhythm.fai_peaks_following = j["fai_peaks_following"];
      c.rhythm.share = number("share"), c.rhythm.baseline = number("baseline"), c.rhythm.lift = number("lift");
      c.rhythm.entropy_ratio = number("entropy_ratio");
    }
  }
  return c;
}

/// Trailing mean over `width` points.
inline std::vector<double> moving_mean(const std::vector<double>& y, std::size_t width) {
  std::vector<double> out(y.size());
  double sum = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    sum += y[i] - (i >= width ? y[i - width] : 0.0);
    out[i] = sum / double(std::min(i + 1, width));
  }
  return out;
}

inline void write_run_curves(const std::string& metrics_path, const std::string& png_path, const std::string& label) {
  const auto c = read_metrics(metrics_path);
  std::vector<plot::chart> charts(4);
  charts[0] = {"training reward (" + label + ")", "step", "reward",
               {{"per step", c.step, c.reward}, {"20-step mean", c.step, moving_mean(c.reward, 20)}}, 0.0, 1.0};
  charts[1] = {"held-out accuracy", "step", "accuracy",
               {{"greedy pass@1", c.eval_step, c.greedy}, {"avg@k", c.eval_step, c.sampled}}, 0.0, 1.0};
  charts[2] = {"credit", "step", "value",
               {{"mean gamma", c.step, c.gamma_mean}, {"amplified share", c.step, c.amplified}}, {}, {}};
  charts[3] = {"step time", "step", "seconds",
               {{"rollout", c.step, c.t_rollout}, {"attention", c.step, c.t_attention}, {"credit", c.step, c.t_credit},
                {"update", c.step, c.t_update}}, 0.0, {}};
  plot::write_png(png_path, charts, 2, 1200, 800);
}

// ====================================================================================================
// 6. The run
// ====================================================================================================
/// What the trainer's programs do first: OpenMP threads that sleep when idle (ensure_passive_openmp),
/// freed memory kept for reuse (keep_freed_memory), and stdout line-buffered, so that progress lines come
/// one at a time also into a file or a pipe.
inline void start_program(char** argv) {
  ensure_passive_openmp(argv);
  keep_freed_memory();
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
}

/// What a run measured (the runner's table reads it).
struct run_summary {
  std::vector<std::pair<std::int64_t, eval_result>> evals;  ///< (step, result), step 0 = after the warm start
  double warm_start_seconds = 0.0;
  std::int64_t steps = 0;  ///< GRPO steps run by this process
  double t_rollout = 0.0, t_attention = 0.0, t_credit = 0.0, t_update = 0.0;  ///< summed over those steps
  std::int64_t rollout_tokens = 0;
  rhythm::rhythm_stats rhythm;  ///< of the final model's greedy traces of the held-out problems (trace_rhythm)

  const eval_result& final_eval() const { return evals.back().second; }
};

/// The device of `choice`; std::invalid_argument when CUDA is asked for but absent.
inline ::torch::Device resolve_device(device_choice choice) {
  const bool cuda = ::torch::cuda::is_available();
  if (choice == device_choice::cuda && !cuda)
    throw std::invalid_argument("--device: expected a device LibTorch has, got 'cuda' (this LibTorch sees no CUDA device)");
  const bool use_cuda = choice == device_choice::cuda || (choice == device_choice::automatic && cuda);
  return use_cuda ? ::torch::Device(::torch::kCUDA) : ::torch::Device(::torch::kCPU);
}

/// A warning when a 256 x 256 float matmul runs below 15 GFLOP/s (the reference BLAS gives ~6, OpenBLAS ~60
/// on the development machine; ../shared/notes/trainer-calibration.md). Empty otherwise.
inline std::string slow_blas_warning() {
  const auto a = ::torch::randn({256, 256}), b = ::torch::randn({256, 256});
  (void)a.matmul(b);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 20; ++i) (void)a.matmul(b);
  const double gflops = 20 * 2.0 * 256 * 256 * 256 / seconds_since(start, ::torch::Device(::torch::kCPU)) / 1e9;
  if (gflops >= 15.0) return {};
  char line[200];
  std::snprintf(line, sizeof line, "a 256x256 matmul ran at %.1f GFLOP/s: LibTorch may be on the reference BLAS "
                "(install libopenblas0-pthread; scripts/deps does)", gflops);
  return line;
}

inline model_config model_config_of(const trainer_options& opt) {
  model_config c;
  c.vocab_size = tokenizer::vocab_size();
  c.d_model = opt.d_model;
  c.n_layers = opt.n_layers;
  c.n_heads = opt.n_heads;
  c.n_kv_heads = opt.n_kv_heads;
  c.max_seq_len = max_sequence_length;
  return c;
}

/// Runs the warm start and GRPO as `opt` says (see the file comment). Progress goes to stdout.
/// `task_override` replaces the task named by opt.task (tests use it to give rewards a random model earns).
inline run_summary run_training(const trainer_options& opt, const task* task_override = nullptr) {
  validate(opt);
  const auto device = resolve_device(opt.device);
  if (const auto warning = configure_cpu_threads(opt.threads); !warning.empty()) std::printf("warning: %s\n", warning.c_str());
  if (const auto warning = slow_blas_warning(); !warning.empty()) std::printf("warning: %s\n", warning.c_str());
  ::torch::manual_seed(opt.seed);
  const tokenizer tok;
  const task& t = task_override ? *task_override : find_task(opt.task);
  transformer model(model_config_of(opt));
  model->to(device);
  const auto layers = opt.capture_layers.empty() ? default_capture_layers(opt.n_layers) : opt.capture_layers;
  const auto eval_set = held_out_problems(t, opt.level, opt.eval_problems, opt.seed);
  const std::filesystem::path out(opt.out_dir);
  std::filesystem::create_directories(out);

  ::torch::optim::AdamW optimizer(model->parameters(), ::torch::optim::AdamWOptions(opt.rl_lr).weight_decay(opt.weight_decay));
  run_state state;
  state.phase = "rl";
  state.problem_rng.seed(opt.seed ^ 0x9e37'79b9'7f4a'7c15ull);
  auto sampling = make_generator(device, opt.seed + 1);
  if (!opt.resume.empty()) {
    state = load_checkpoint(opt.resume, model, &optimizer);
    if (state.phase != "rl") throw std::runtime_error("--resume: '" + opt.resume + "' is not a GRPO checkpoint");
    sampling.set_state(state.sampling_state);
  } else if (!opt.init_from.empty()) {
    (void)load_checkpoint(opt.init_from, model, nullptr);
  }
  metrics_log log((out / "metrics.jsonl").string(), opt.resume.empty() ? -1 : state.step);
  run_summary summary;
  auto report = [&](std::int64_t step) {
    const auto e = evaluate(model, t, tok, eval_set, opt.eval_k, opt.max_new_tokens, opt.seed * 1'000'003ull + std::uint64_t(step));
    log.write(to_json(step, e));
    std::printf("%s\n", eval_line(step, e, opt.eval_k).c_str());
    summary.evals.emplace_back(step, e);
  };

  if (opt.resume.empty() && opt.init_from.empty() && opt.sft_steps > 0) {
    const auto start = std::chrono::steady_clock::now();
    std::mt19937_64 rng(opt.seed);
    ::torch::optim::AdamW sft(model->parameters(), ::torch::optim::AdamWOptions(opt.sft_lr).weight_decay(0.0));
    double recent = 0;
    warm_start_batches batches(t, opt.level, opt.sft_batch);
    for (std::int64_t s = 0; s < opt.sft_steps; ++s) {
      set_learning_rate(sft, warm_start_learning_rate(s, opt.sft_steps, opt.sft_lr, opt.sft_warmup));
      const auto [prompts, solutions] = batches.next(rng);
      recent += warm_start_step(model, sft, tok, prompts, solutions);
      if ((s + 1) % 100 == 0 || s + 1 == opt.sft_steps) {
        const auto count = double((s + 1) % 100 == 0 ? 100 : (s + 1) % 100);
        const double seconds = seconds_since(start, device);
        log.write({{"phase", "warm_start"}, {"step", s + 1}, {"loss", recent / count}, {"seconds", seconds}});
        if (!opt.quiet)
          std::printf("warm start %5lld/%lld | loss %.4f | %.1f s\n", static_cast<long long>(s + 1),
                      static_cast<long long>(opt.sft_steps), recent / count, seconds);
        recent = 0;
      }
    }
    summary.warm_start_seconds = seconds_since(start, device);
    run_state warm;
    warm.sampling_state = sampling.get_state();
    warm.step = opt.sft_steps;
    save_checkpoint((out / "warm_start.pt").string(), model, nullptr, warm);
  }

  auto credit = credit_assigner_of(opt);
  grpo_context ctx{model, optimizer, credit, t, tok, opt, layers, state.problem_rng, sampling};
  for (std::int64_t step = state.step; step < opt.rl_steps; ++step) {
    if (step % opt.eval_every == 0) report(step);
    const auto stats = grpo_step(ctx, step);
    log.write(to_json(stats));
    if (!opt.quiet) std::printf("%s\n", progress_line(stats, opt.rl_steps).c_str());
    std::fflush(stdout);
    ++summary.steps;
    summary.t_rollout += stats.t_rollout, summary.t_attention += stats.t_attention;
    summary.t_credit += stats.t_credit, summary.t_update += stats.t_update;
    summary.rollout_tokens += stats.rollout_tokens;
    if ((step + 1) % opt.checkpoint_every == 0 || step + 1 == opt.rl_steps) {
      state.step = step + 1;
      state.sampling_state = sampling.get_state();
      save_checkpoint((out / "checkpoint.pt").string(), model, &optimizer, state);
    }
  }
  if (summary.evals.empty() || summary.evals.back().first != opt.rl_steps) report(opt.rl_steps);
  summary.rhythm = trace_rhythm(model, tok, eval_set, opt, layers);
  log.write(to_json(opt.rl_steps, summary.rhythm));
  write_run_curves((out / "metrics.jsonl").string(), (out / "curves.png").string(), opt.shaping);
  return summary;
}

}  // namespace grpo

// ====================================================================================================
// 7. main
// ====================================================================================================
#ifndef GRPO_TRAIN_NO_MAIN
int main(int argc, char** argv) {
  grpo::start_program(argv);
  grpo::trainer_options opt;
  CLI::App app{"rhythm's reference GRPO trainer: warm start, GRPO with rhythm's credit assignment, evaluation"};
  grpo::add_trainer_options(app, opt);
  CLI11_PARSE(app, argc, argv);
  try {
    const auto summary = grpo::run_training(opt);
    const double total = summary.t_rollout + summary.t_attention + summary.t_credit + summary.t_update;
    if (summary.steps > 0)
      std::printf("%lld GRPO steps in %.1f s: rollout %.1f%%, attention pass %.2f%%, rhythm credit %.2f%%, update %.1f%%; "
                  "%.0f rollout tokens/s\n",
                  static_cast<long long>(summary.steps), total, 100 * summary.t_rollout / total,
                  100 * summary.t_attention / total, 100 * summary.t_credit / total, 100 * summary.t_update / total,
                  double(summary.rollout_tokens) / summary.t_rollout);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "grpo_trainer: %s\n", e.what());
    return 1;
  }
}
#endif  // GRPO_TRAIN_NO_MAIN
