#pragma once
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
#include <CLI/CLI.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <rhythm/credit/policies.hpp>

namespace grpo {

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

/// The model's max_seq_len (RoPE tables): prompt + response never exceed it.
inline constexpr std::int64_t max_sequence_length = 1024;

struct trainer_options {
  // Run
  std::string task = "rule";
  int level = 0;                   ///< task difficulty level (0, 1, 2)
  std::uint64_t seed = 1;          ///< problems, initial weights, sampling
  std::string device = "auto";     ///< cpu, cuda or auto (cuda when LibTorch has it)
  int threads = 2;                 ///< CPU intra-op threads (torch and rhythm)
  std::string out_dir = "runs/grpo";
  bool quiet = false;              ///< no progress line per step (metrics are still written)

  // Model (model.hpp)
  std::int64_t d_model = 64, n_layers = 2, n_heads = 4, n_kv_heads = 2;
  std::vector<std::int64_t> capture_layers;  ///< layers read by the attention pass; empty: default_capture_layers
  std::string attention_pass = "capture";    ///< capture: Q/K recorded while sampling; forward: a separate pass

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
  std::string sign = "both";       ///< both, positive, negative
  bool bottom_q = false;           ///< ablation: bottom-q token sets instead of top-q
  double q = 0.4, gamma_amp = 1.5, alpha = 0.5;
  std::int64_t window = 10, horizon_lo = 10, horizon_hi = 100;
  double head_fraction = 0.3;
  bool pooled_groups = false;      ///< rank heads over the step's signal rows instead of per sequence
  std::int64_t dominance_window = 3;
  std::string dominance_threshold = "loc";  ///< tau_Delta: loc (the T_loc threshold) or median (of Delta)
  double gamma_floor = 0.0;        ///< lower bound on gamma; 0: none
  bool mean_preserving = false;    ///< rescale each shaped response to mean gamma 1

  // Evaluation and checkpoints
  std::int64_t eval_every = 40;    ///< GRPO steps between held-out evaluations (and at the start and end)
  std::int64_t eval_problems = 256;
  std::int64_t eval_k = 4;         ///< samples per problem for avg@k
  std::int64_t checkpoint_every = 50;
  std::string resume;              ///< a checkpoint file to continue exactly from
};

inline rhythm::sign_mode parse_sign(const std::string& name) {
  if (name == "both") return rhythm::sign_mode::both;
  if (name == "positive") return rhythm::sign_mode::positive;
  if (name == "negative") return rhythm::sign_mode::negative;
  throw std::invalid_argument("--sign: expected one of both, positive, negative, got '" + name + "'");
}

/// Registers every field of `opt` as a flag of `app` (range checks by CLI11, which names the flag).
inline void add_trainer_options(CLI::App& app, trainer_options& opt) {
  const auto positive = CLI::PositiveNumber;
  const auto non_negative = CLI::NonNegativeNumber;
  const auto share = CLI::Range(0.0, 1.0);
  const std::vector<std::string> kinds = shaping_choices();

  app.add_option("--task", opt.task, "countdown, arithmetic, planning, chain or rule")->capture_default_str()
      ->check(CLI::IsMember({"countdown", "arithmetic", "planning", "chain", "rule"}));
  app.add_option("--level", opt.level, "task difficulty level")->capture_default_str()->check(CLI::Range(0, 2));
  app.add_option("--seed", opt.seed, "seed of problems, weights and sampling")->capture_default_str();
  app.add_option("--device", opt.device, "cpu, cuda or auto")->capture_default_str()
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  app.add_option("--threads", opt.threads, "CPU threads")->capture_default_str()->check(CLI::Range(1, 1024));
  app.add_option("--out", opt.out_dir, "output directory (metrics, plots, checkpoints)")->capture_default_str();
  app.add_flag("--quiet", opt.quiet, "no progress line per step");

  app.add_option("--d-model", opt.d_model, "model width")->capture_default_str()->check(positive);
  app.add_option("--layers", opt.n_layers, "decoder blocks")->capture_default_str()->check(positive);
  app.add_option("--heads", opt.n_heads, "query heads")->capture_default_str()->check(positive);
  app.add_option("--kv-heads", opt.n_kv_heads, "key/value heads (GQA)")->capture_default_str()->check(positive);
  app.add_option("--capture-layers", opt.capture_layers, "layers the attention pass reads (default: middle third)")
      ->check(non_negative);
  app.add_option("--attention-pass", opt.attention_pass,
                 "capture: record Q/K while sampling; forward: a separate no-grad forward after sampling")
      ->capture_default_str()->check(CLI::IsMember({"capture", "forward"}));

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
      ->capture_default_str()->check(CLI::Range(0.05, 10.0));
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
  app.add_option("--sign", opt.sign, "which advantages are shaped: both, positive, negative")->capture_default_str()
      ->check(CLI::IsMember({"both", "positive", "negative"}));
  app.add_flag("--bottom-q", opt.bottom_q, "ablation: bottom-q token sets instead of top-q");
  app.add_option("--q", opt.q, "share of tokens selected")->capture_default_str()->check(CLI::Range(1e-9, 1.0));
  app.add_option("--gamma-amp", opt.gamma_amp, "amplification")->capture_default_str()->check(CLI::Range(1.0, 1e6));
  app.add_option("--alpha", opt.alpha, "coupling share moved to intro tokens")->capture_default_str()->check(share);
  app.add_option("--window", opt.window, "WAAD window W")->capture_default_str()->check(positive);
  app.add_option("--horizon-lo", opt.horizon_lo, "FAI horizon H_lo")->capture_default_str()->check(non_negative);
  app.add_option("--horizon-hi", opt.horizon_hi, "FAI horizon H_hi")->capture_default_str()->check(non_negative);
  app.add_option("--head-fraction", opt.head_fraction, "share of heads per group")->capture_default_str()
      ->check(CLI::Range(1e-9, 1.0));
  app.add_flag("--pooled-groups", opt.pooled_groups, "rank heads over the step's signal rows instead of per sequence");
  app.add_option("--dominance-window", opt.dominance_window, "k: an anchor looks back at the jumps of [t-k, t-1]")
      ->capture_default_str()->check(positive);
  app.add_option("--dominance-threshold", opt.dominance_threshold, "tau_Delta: loc (T_loc threshold) or median")
      ->capture_default_str()->check(CLI::IsMember({"loc", "median"}));
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
  (void)parse_sign(opt.sign);
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

}  // namespace grpo
