// Timing probe for the trainer's pieces: BLAS speed, the supervised step (forward +
// backward + AdamW) on Countdown batches, and KV-cache sampling throughput, for the 2-layer d 64 model.
//
//   cmake --preset release && cmake --build --preset release --target grpo_timing_probe
//   OMP_WAIT_POLICY=passive build/release/examples/grpo_trainer/grpo_timing_probe [threads=2] [warm_start_steps=300]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "model.hpp"
#include "sampling.hpp"
#include "tasks.hpp"
#include "tokenizer.hpp"

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// A batch of `n` Countdown problems with written solutions (level 0), and their prompts.
struct countdown_batch {
  std::vector<grpo::problem> problems;
  std::vector<std::string> prompts, solutions;
};

countdown_batch make_batch(std::mt19937_64& rng, int n, grpo::split s) {
  const auto& task = grpo::find_task("countdown");
  countdown_batch b;
  for (int i = 0; i < n; ++i) {
    b.problems.push_back(task.generate(rng, s, 0));
    b.prompts.push_back(b.problems.back().prompt);
    b.solutions.push_back(task.write_solution(b.problems.back(), rng));
  }
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int warm_start_steps = argc > 2 ? std::atoi(argv[2]) : 300;
  const auto warning = grpo::configure_cpu_threads(threads);
  if (!warning.empty()) std::printf("warning: %s\n", warning.c_str());
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {  // the machine is shared: say how busy it was
    char line[128] = {};
    if (std::fgets(line, sizeof line, f)) std::printf("load average at start: %s", line);
    std::fclose(f);
  }
  ::torch::manual_seed(0);
  const grpo::tokenizer tok;
  std::mt19937_64 rng(1);

  {  // BLAS: netlib's reference BLAS gives ~6 GFLOP/s here, OpenBLAS ~60 (trainer-calibration.md)
    const auto a = ::torch::randn({512, 512}), b = ::torch::randn({512, 512});
    for (int i = 0; i < 3; ++i) (void)a.matmul(b);
    const auto start = std::chrono::steady_clock::now();
    const int reps = 20;
    for (int i = 0; i < reps; ++i) (void)a.matmul(b);
    std::printf("threads %d; 512x512 float matmul: %.1f GFLOP/s\n", ::torch::get_num_threads(),
                reps * 2.0 * 512 * 512 * 512 / seconds_since(start) / 1e9);
  }

  grpo::model_config config;
  config.vocab_size = tok.vocab_size();  // d 64, 2 layers, 4 heads, 2 kv heads, SwiGLU 176
  grpo::transformer model(config);
  std::printf("model: %lld layers, d %lld, heads %lld/%lld, %lld parameters\n", (long long)config.n_layers,
              (long long)config.d_model, (long long)config.n_heads, (long long)config.n_kv_heads,
              (long long)grpo::parameter_count(config));
  ::torch::optim::AdamW optimizer(model->parameters(), ::torch::optim::AdamWOptions(2e-3).weight_decay(0.0));

  // Supervised warm start on Countdown: batch 64, loss = mean over sequences of the mean response-token NLL.
  double forward_backward = 0, optimizer_time = 0, tokens = 0;
  int timed = 0;
  const auto train_start = std::chrono::steady_clock::now();
  for (int step = 0; step < warm_start_steps; ++step) {
    const auto b = make_batch(rng, 64, grpo::split::train);
    const auto batch = grpo::encode_sequences(tok, b.prompts, b.solutions);
    const auto mask = grpo::valid_mask(batch.segments, batch.tokens.size(1)).logical_and(
        ::torch::arange(batch.tokens.size(1)).ge(batch.segments[0].response_begin));
    auto start = std::chrono::steady_clock::now();
    const auto stats = grpo::token_statistics_of(model, batch.tokens, batch.segments, /*with_entropy=*/false);
    const auto loss = -((stats.logp * mask).sum(1) / mask.sum(1)).mean();
    optimizer.zero_grad();
    loss.backward();
    const double fb = seconds_since(start);
    start = std::chrono::steady_clock::now();
    ::torch::nn::utils::clip_grad_norm_(model->parameters(), 1.0);
    optimizer.step();
    const double opt = seconds_since(start);
    if (step >= 5) forward_backward += fb, optimizer_time += opt, tokens += double(batch.tokens.numel()), ++timed;
    if (step % 50 == 0 || step == warm_start_steps - 1)
      std::printf("  step %4d: loss %.4f, batch 64 x %lld tokens, fwd+bwd %.1f ms, clip+AdamW %.1f ms\n", step,
                  loss.item<double>(), (long long)batch.tokens.size(1), 1e3 * fb, 1e3 * opt);
  }
  if (timed > 0)
    std::printf("warm start: %d steps in %.1f s; steady state (steps >= 5): fwd+bwd %.1f ms, clip+AdamW %.1f ms per "
                "step, mean padded length %.0f tokens\n",
                warm_start_steps, seconds_since(train_start), 1e3 * forward_backward / timed, 1e3 * optimizer_time / timed,
                tokens / timed / 64);

  {  // The brief's shape: 64 sequences of exactly 150 tokens (random tokens, no padding).
    const auto tokens150 = ::torch::randint(3, tok.vocab_size(), {64, 150}, ::torch::kInt64);
    std::vector<rhythm::segment> segments(64, rhythm::segment{0, 20, 150});
    double total = 0;
    for (int i = 0; i < 13; ++i) {
      const auto start = std::chrono::steady_clock::now();
      const auto stats = grpo::token_statistics_of(model, tokens150, segments, /*with_entropy=*/false);
      optimizer.zero_grad();
      (-stats.logp.sum() / 64).backward();
      if (i >= 3) total += seconds_since(start);
    }
    optimizer.zero_grad();
    std::printf("fwd+bwd, 64 x 150 tokens: %.1f ms (mean of 10 after 3 warm-up)\n", 1e3 * total / 10);
  }

  // Sampling: 16 held-out prompts x 8 samples, temperature 1, KV cache.
  for (const int max_new : {160, 300}) {
    const auto b = make_batch(rng, 16, grpo::split::test);
    const auto prompts = grpo::encode_prompts(tok, b.prompts);
    grpo::sampling_options opt;
    opt.samples_per_prompt = 8;
    opt.max_new_tokens = max_new;
    (void)grpo::sample(model, prompts, opt);  // warm-up
    double total = 0, generated = 0, steps = 0;
    const int reps = 5;
    float correct = 0, finished = 0;
    for (int i = 0; i < reps; ++i) {
      const auto start = std::chrono::steady_clock::now();
      const auto rollout = grpo::sample(model, prompts, opt);
      total += seconds_since(start);
      steps += double(rollout.tokens.size(1) - rollout.prompt_width);
      const auto responses = grpo::decode_responses(tok, rollout);
      for (std::int64_t r = 0; r < rollout.rows(); ++r) {
        const auto& s = rollout.segments[static_cast<std::size_t>(r)];
        generated += double(s.end - s.response_begin);
        finished += rollout.finished[static_cast<std::size_t>(r)];
        correct += grpo::find_task("countdown").verify(b.problems[static_cast<std::size_t>(r / 8)],
                                                       responses[static_cast<std::size_t>(r)]);
      }
    }
    std::printf("sampling 16 x 8, max_new_tokens %d: %.1f ms per batch, %.0f decoding steps; %.0f generated tokens/s "
                "(%.0f per row, %.0f%% ended with EOS); reward %.3f\n",
                max_new, 1e3 * total / reps, steps / reps, generated / total, generated / reps / 128,
                100.0 * finished / reps / 128, correct / reps / 128);
  }

  {  // Greedy held-out accuracy after the warm start (a sanity check that the pieces learn).
    const auto b = make_batch(rng, 256, grpo::split::test);
    const auto prompts = grpo::encode_prompts(tok, b.prompts);
    grpo::sampling_options opt;
    opt.samples_per_prompt = 1;
    opt.max_new_tokens = 300;
    opt.temperature = 0.0;
    const auto rollout = grpo::sample(model, prompts, opt);
    const auto responses = grpo::decode_responses(tok, rollout);
    float correct = 0;
    for (std::size_t i = 0; i < responses.size(); ++i) correct += grpo::find_task("countdown").verify(b.problems[i], responses[i]);
    std::printf("greedy held-out accuracy (256 problems): %.1f%%; e.g. %s%s\n", 100.0 * correct / 256,
                b.prompts[0].c_str(), responses[0].c_str());
  }
}
