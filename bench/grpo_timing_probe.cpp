// Anatomy of one GRPO step, measured: rollout with and without the Q/K recording, the alternative
// separate attention forward, rhythm's credit, and the PPO update, on the trainer's default shapes
// (the default task, 16 prompts x G 8, 2 layers, d 64), after a short warm start so that responses have their
// trained length. Variants of one quantity are timed interleaved, repetition by repetition, so that the
// ratios compare like with like on a shared machine; medians are reported.
//
//   cmake --preset bench && cmake --build --preset bench --target grpo_timing_probe
//   OMP_WAIT_POLICY=passive build/bench/bench/grpo_timing_probe [threads=2] [warm_start_steps=300] [reps=15]
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#define GRPO_TRAIN_NO_MAIN
#include "train_grpo.cpp"

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  grpo::ensure_passive_openmp(argv);
  grpo::keep_freed_memory();
  const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
  const int warm_start_steps = argc > 2 ? std::atoi(argv[2]) : 300;
  const int reps = argc > 3 ? std::atoi(argv[3]) : 15;
  grpo::trainer_options opt;
  opt.threads = threads;
  if (const auto warning = grpo::configure_cpu_threads(threads); !warning.empty()) std::printf("warning: %s\n", warning.c_str());
  if (const auto warning = grpo::slow_blas_warning(); !warning.empty()) std::printf("warning: %s\n", warning.c_str());
  if (std::FILE* f = std::fopen("/proc/loadavg", "r")) {  // the machine is shared: say how busy it was
    char line[128] = {};
    if (std::fgets(line, sizeof line, f)) std::printf("load average at start: %s", line);
    std::fclose(f);
  }
  ::torch::manual_seed(0);
  const grpo::tokenizer tok;
  const auto& task = grpo::find_task(opt.task);
  grpo::transformer model(grpo::model_config_of(opt));
  const auto cpu = ::torch::Device(::torch::kCPU);
  std::mt19937_64 rng(1);
  {
    ::torch::optim::AdamW sft(model->parameters(), ::torch::optim::AdamWOptions(opt.sft_lr).weight_decay(0.0));
    const auto start = std::chrono::steady_clock::now();
    grpo::warm_start_batches batches(task, opt.level, opt.sft_batch);
    for (int s = 0; s < warm_start_steps; ++s) {
      grpo::set_learning_rate(sft, grpo::warm_start_learning_rate(s, warm_start_steps, opt.sft_lr, opt.sft_warmup));
      const auto [prompts, solutions] = batches.next(rng);
      (void)grpo::warm_start_step(model, sft, tok, prompts, solutions);
    }
    std::printf("warm start: %d steps of %lld in %.1f s\n", warm_start_steps, static_cast<long long>(opt.sft_batch),
                grpo::seconds_since(start, cpu));
  }

  ::torch::optim::AdamW optimizer(model->parameters(), ::torch::optim::AdamWOptions(opt.rl_lr).weight_decay(0.0));
  const auto layers = grpo::default_capture_layers(opt.n_layers);
  auto assigner = grpo::credit_assigner_of(opt);
  std::vector<double> plain, recorded, recorder, forward, credit, update, tokens, lengths;
  for (int rep = 0; rep < reps + 2; ++rep) {  // the first two are warm-up
    std::vector<std::string> prompts;
    std::vector<grpo::problem> problems;
    for (std::int64_t i = 0; i < opt.prompts; ++i) {
      problems.push_back(task.generate(rng, grpo::split::train, opt.level));
      prompts.push_back(problems.back().prompt);
    }
    const auto batch = grpo::encode_prompts(tok, prompts);
    grpo::sampling_options so;
    so.samples_per_prompt = opt.group;
    so.max_new_tokens = opt.max_new_tokens;
    so.generator = grpo::make_generator(cpu, 100 + std::uint64_t(rep));
    auto start = std::chrono::steady_clock::now();
    (void)grpo::sample(model, batch, so);  // the same draws with and without recording
    const double t_plain = grpo::seconds_since(start, cpu);
    so.generator = grpo::make_generator(cpu, 100 + std::uint64_t(rep));
    so.capture_layers = layers;
    start = std::chrono::steady_clock::now();
    const auto rollouts = grpo::sample(model, batch, so);
    const double t_recorded = grpo::seconds_since(start, cpu);
    const auto rewards = grpo::rewards_of(task, tok, problems, rollouts, opt.group);

    start = std::chrono::steady_clock::now();
    {
      ::torch::NoGradGuard no_grad;
      (void)model->forward_with_qk(rollouts.tokens, grpo::valid_mask(rollouts.segments, rollouts.tokens.size(1)), layers);
    }
    const double t_forward = grpo::seconds_since(start, cpu);
    start = std::chrono::steady_clock::now();
    double t_attention = 0;
    const auto c = grpo::rhythm_credit(model, rollouts, rewards, opt, layers, assigner, rep, t_attention);
    const double t_credit = grpo::seconds_since(start, cpu);
    start = std::chrono::steady_clock::now();
    grpo::step_stats stats;
    grpo::ppo_update(model, optimizer, rollouts, c.shaped, opt, rng, stats);
    const double t_update = grpo::seconds_since(start, cpu);
    if (rep < 2) continue;
    plain.push_back(t_plain), recorded.push_back(t_recorded), forward.push_back(t_forward);
    recorder.push_back(rollouts.recording_seconds);
    credit.push_back(t_credit), update.push_back(t_update);
    double n = 0;
    for (const auto& s : rollouts.segments) n += double(s.end - s.response_begin);
    tokens.push_back(n / t_recorded), lengths.push_back(n / double(rollouts.rows()));
  }
  const double step = median(recorded) + median(credit) + median(update);
  const double overhead = median(recorded) - median(plain);
  std::printf("%lld prompts x G %lld, %d repetitions (medians), mean response %.1f tokens:\n",
              static_cast<long long>(opt.prompts), static_cast<long long>(opt.group), reps, median(lengths));
  std::printf("  rollout without recording      %8.1f ms\n", 1e3 * median(plain));
  std::printf("  rollout recording Q/K          %8.1f ms  (recording: %+.1f ms; the recorder's own timer: %.1f ms)\n",
              1e3 * median(recorded), 1e3 * overhead, 1e3 * median(recorder));
  std::printf("  separate attention forward     %8.1f ms  (the alternative to recording)\n", 1e3 * median(forward));
  std::printf("  rhythm credit (coupled_rhythm) %8.1f ms\n", 1e3 * median(credit));
  std::printf("  PPO update (%lld mini-batches)  %8.1f ms\n", static_cast<long long>(opt.minibatches), 1e3 * median(update));
  std::printf("step %.1f ms; attention-credit share: recording + credit %.2f %% (credit alone %.2f %%); with a separate "
              "forward instead %.2f %%; rollout %.0f tokens/s\n",
              1e3 * step, 100 * (std::max(overhead, 0.0) + median(credit)) / step, 100 * median(credit) / step,
              100 * (median(forward) + median(credit)) / (median(plain) + median(forward) + median(credit) + median(update)),
              median(tokens));
}
