// The GRPO trainer's pieces: the update direction, grpo == uniform, checkpoints and exact resume,
// metrics, flags and their errors, and the runner's statistics.
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#define GRPO_EXPERIMENTS_NO_MAIN  // the programs without their main(), as llm.c's tests include its trainer
#include "grpo_experiments.cpp"

namespace {

namespace fs = std::filesystem;

grpo::transformer tiny_model(std::uint64_t seed) {
  ::torch::manual_seed(seed);
  grpo::trainer_options opt;
  opt.d_model = 32;
  return grpo::transformer(grpo::model_config_of(opt));
}

fs::path fresh_dir(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("rhythm_test_grpo_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

/// 2 prompts x G 4 sampled from a tiny model, and rewards with variance in both groups.
struct small_rollout {
  grpo::rollout_batch batch;
  ::torch::Tensor rewards;
};

small_rollout sample_small(grpo::transformer& model, std::vector<std::int64_t> layers = {}) {
  const grpo::tokenizer tok;
  const std::vector<std::string> prompts{"3,7,9->30:", "2,5,8->18:"};
  grpo::sampling_options opt;
  opt.samples_per_prompt = 4;
  opt.max_new_tokens = 24;
  opt.generator = ::at::detail::createCPUGenerator(3);
  opt.capture_layers = std::move(layers);
  auto batch = grpo::sample(model, grpo::encode_prompts(tok, prompts), opt);
  return {batch, ::torch::tensor({1.f, 0.f, 0.f, 1.f, 0.f, 1.f, 1.f, 1.f})};
}

std::vector<::torch::Tensor> parameters_of(grpo::transformer model) {
  std::vector<::torch::Tensor> out;
  for (const auto& p : model->parameters()) out.push_back(p.detach().clone());
  return out;
}

/// Sum of log pi over row r's response under the model (no grad).
double response_logp(grpo::transformer& model, const grpo::rollout_batch& b, std::int64_t r) {
  ::torch::NoGradGuard no_grad;
  const auto& s = b.segments[static_cast<std::size_t>(r)];
  const std::vector<rhythm::segment> one{s};
  const auto stats = grpo::token_statistics_of(model, b.tokens.narrow(0, r, 1), one, false);
  return stats.logp.narrow(1, s.response_begin, s.end - s.response_begin).sum().item<double>();
}

TEST(GrpoStep, PositiveAdvantageRaisesTheSamplesLogProbability) {
  auto model = tiny_model(1);
  const auto r = sample_small(model);
  grpo::trainer_options opt;
  opt.minibatches = 1;
  opt.shaping = "grpo";
  const auto credit = grpo::group_advantage_credit(r.batch, r.rewards, grpo::pipeline_params_of(opt).advantages);
  ASSERT_GT(credit.shaped[0].abs().sum().item<double>(), 0.0);
  const double before_pos = response_logp(model, r.batch, 0), before_neg = response_logp(model, r.batch, 1);
  ::torch::optim::AdamW optimizer(model->parameters(), ::torch::optim::AdamWOptions(1e-2).weight_decay(0.0));
  std::mt19937_64 rng(0);
  grpo::step_stats stats;
  grpo::ppo_update(model, optimizer, r.batch, credit.shaped, opt, rng, stats);
  EXPECT_GT(response_logp(model, r.batch, 0), before_pos);  // reward 1 in a mixed group: A > 0
  EXPECT_LT(response_logp(model, r.batch, 1), before_neg);  // reward 0: A < 0
  EXPECT_GT(stats.grad_norm, 0.0);
  EXPECT_NEAR(stats.ratio, 1.0, 1e-4);  // the first mini-batch's policy is the sampler's
}

TEST(GrpoStep, GrpoAndUniformGiveIdenticalUpdates) {
  auto a = tiny_model(2), b = tiny_model(2);
  const auto r = sample_small(a, grpo::default_capture_layers(2));
  grpo::trainer_options opt;
  opt.shaping = "grpo";
  const auto plain = grpo::group_advantage_credit(r.batch, r.rewards, grpo::pipeline_params_of(opt).advantages);
  opt.shaping = "uniform";
  auto assigner = grpo::credit_assigner_of(opt);
  ASSERT_EQ(assigner.policy.which, rhythm::shaping::kind::uniform);
  double t_attention = 0;
  const auto uniform = grpo::rhythm_credit(a, r.batch, r.rewards, opt, {0, 1}, assigner, 0, t_attention);
  EXPECT_TRUE(::torch::equal(uniform.gamma.masked_select(rhythm::torch::response_mask(r.batch.segments, r.batch.tokens.size(1))),
                             ::torch::ones({uniform.diagnostics.response_tokens})));
  EXPECT_TRUE(::torch::allclose(plain.shaped, uniform.shaped, 0.0, 1e-7));
  ::torch::optim::AdamW opt_a(a->parameters(), ::torch::optim::AdamWOptions(1e-2));
  ::torch::optim::AdamW opt_b(b->parameters(), ::torch::optim::AdamWOptions(1e-2));
  std::mt19937_64 rng_a(4), rng_b(4);
  grpo::step_stats sa, sb;
  grpo::ppo_update(a, opt_a, r.batch, plain.shaped, opt, rng_a, sa);
  grpo::ppo_update(b, opt_b, r.batch, uniform.shaped, opt, rng_b, sb);
  const auto pa = parameters_of(a), pb = parameters_of(b);
  for (std::size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(::torch::allclose(pa[i], pb[i], 0.0, 1e-6)) << i;
  EXPECT_FALSE(::torch::equal(pa[0], parameters_of(tiny_model(2))[0]));  // the update did move the weights
}

TEST(GrpoStep, AmplifyingPoliciesScaleTheGroupAdvantage) {
  auto model = tiny_model(3);
  const auto r = sample_small(model, {0, 1});
  grpo::trainer_options opt;
  const auto plain = grpo::group_advantage_credit(r.batch, r.rewards, grpo::pipeline_params_of(opt).advantages);
  // One assigner reused across the policies (its pipeline's buffers too), the policy swapped per kind.
  auto assigner = grpo::credit_assigner_of(opt);
  for (const auto* kind : {"local_chunk", "global_anchor", "coupled_rhythm", "random", "entropy"}) {
    opt.shaping = kind;
    assigner.policy = grpo::policy_of(opt);
    ASSERT_EQ(assigner.policy.name(), kind);
    double t = 0;
    const auto credit = grpo::rhythm_credit(model, r.batch, r.rewards, opt, {0, 1}, assigner, 7, t);
    EXPECT_TRUE(::torch::allclose(credit.shaped, credit.gamma * plain.shaped, 1e-6, 1e-7)) << kind;
    EXPECT_GT(credit.diagnostics.amplified_share, 0.0) << kind;
    EXPECT_GE(credit.gamma.min().item<float>(), 1.0f) << kind;
  }
}

TEST(GrpoStep, CreditOnRecordedQKEqualsTheSignalRowsAlone) {
  // rhythm_credit reads the recorded Q/K in place, every row, with the rows of equal-reward groups given
  // an empty response: gamma and A~ equal those of the signal rows alone, copied out, and 1 / 0 elsewhere;
  // the separate forward (--attention-pass forward) agrees to rounding.
  auto model = tiny_model(5);
  auto r = sample_small(model, {0, 1});
  r.rewards = ::torch::tensor({1.f, 0.f, 0.f, 1.f, 1.f, 1.f, 1.f, 1.f});  // group 2 has no signal
  grpo::trainer_options opt;
  opt.shaping = "coupled_rhythm";
  auto assigner = grpo::credit_assigner_of(opt);
  double t = 0;
  const auto in_place = grpo::rhythm_credit(model, r.batch, r.rewards, opt, {0, 1}, assigner, 0, t);
  const auto rows = ::torch::arange(4);
  std::vector<rhythm::segment> segments(r.batch.segments.begin(), r.batch.segments.begin() + 4);
  const auto alone = assigner({.q = r.batch.q.index_select(0, rows).contiguous(),
                               .k = r.batch.k.index_select(0, rows).contiguous(),
                               .segments = rhythm::torch::segments_tensor(segments),
                               .rewards = r.rewards.narrow(0, 0, 4),
                               .group_ids = r.batch.group_ids.narrow(0, 0, 4)});
  EXPECT_TRUE(::torch::equal(in_place.gamma.narrow(0, 0, 4), alone.gamma));
  EXPECT_TRUE(::torch::equal(in_place.shaped.narrow(0, 0, 4), alone.shaped));
  EXPECT_TRUE(::torch::equal(in_place.gamma.narrow(0, 4, 4), ::torch::ones({4, r.batch.tokens.size(1)})));
  EXPECT_TRUE(::torch::equal(in_place.shaped.narrow(0, 4, 4), ::torch::zeros({4, r.batch.tokens.size(1)})));
  EXPECT_EQ(in_place.diagnostics.response_tokens, alone.diagnostics.values().response_tokens);
  EXPECT_GT(in_place.diagnostics.amplified_share, 0.0);
  opt.attention_pass = grpo::attention_pass_mode::forward;
  auto unrecorded = r.batch;
  unrecorded.q = unrecorded.k = ::torch::Tensor();
  const auto forward = grpo::rhythm_credit(model, unrecorded, r.rewards, opt, {0, 1}, assigner, 0, t);
  EXPECT_TRUE(::torch::allclose(forward.shaped, in_place.shaped, 1e-5, 1e-6));
}

TEST(Checkpoint, RoundTripAndShapeMismatch) {
  const auto dir = fresh_dir("checkpoint");
  auto model = tiny_model(4);
  ::torch::optim::AdamW optimizer(model->parameters(), ::torch::optim::AdamWOptions(1e-3));
  grpo::run_state state;
  state.phase = "rl";
  state.step = 17;
  state.problem_rng.seed(9);
  (void)state.problem_rng();
  state.sampling_state = ::at::detail::createCPUGenerator(5).get_state();
  const auto path = (dir / "c.pt").string();
  grpo::save_checkpoint(path, model, &optimizer, state);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  auto other = tiny_model(5);
  ::torch::optim::AdamW other_optimizer(other->parameters(), ::torch::optim::AdamWOptions(1e-3));
  const auto loaded = grpo::load_checkpoint(path, other, &other_optimizer);
  EXPECT_EQ(loaded.phase, "rl");
  EXPECT_EQ(loaded.step, 17);
  EXPECT_EQ(loaded.problem_rng, state.problem_rng);
  EXPECT_TRUE(::torch::equal(loaded.sampling_state, state.sampling_state));
  const auto pa = parameters_of(model), pb = parameters_of(other);
  for (std::size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(::torch::equal(pa[i], pb[i]));

  grpo::trainer_options wide;
  wide.d_model = 64;
  grpo::transformer mismatched(grpo::model_config_of(wide));
  try {
    (void)grpo::load_checkpoint(path, mismatched, nullptr);
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("c.pt"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("d_model 32"), std::string::npos) << e.what();
  }
  grpo::save_checkpoint(path, model, nullptr, state);  // a warm-start checkpoint has no optimizer
  EXPECT_THROW((void)grpo::load_checkpoint(path, other, &other_optimizer), std::runtime_error);
  EXPECT_THROW((void)grpo::load_checkpoint((dir / "missing.pt").string(), other, nullptr), std::runtime_error);
}

/// Options of a run that takes a few seconds.
grpo::trainer_options tiny_run(const fs::path& out) {
  grpo::trainer_options opt;
  opt.d_model = 32;
  opt.sft_steps = 20;
  opt.sft_batch = 8;
  opt.rl_steps = 4;
  opt.prompts = 2;
  opt.group = 4;
  opt.max_new_tokens = 32;
  opt.eval_every = 2;
  opt.eval_problems = 8;
  opt.eval_k = 2;
  opt.checkpoint_every = 2;
  opt.quiet = true;
  opt.out_dir = out.string();
  return opt;
}

/// The metrics lines of a file, timings removed.
std::vector<nlohmann::json> metrics_without_timings(const fs::path& file, const std::string& phase) {
  std::vector<nlohmann::json> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j["phase"] != phase) continue;
    for (const auto* key : {"t_rollout", "t_attention", "t_credit", "t_update", "seconds"}) j.erase(key);
    out.push_back(j);
  }
  return out;
}

/// Countdown with a reward an untrained model earns about half the time (odd response length), so that
/// GRPO's updates are not zero and the optimizer's state matters for the resume.
grpo::task parity_task() {
  auto t = grpo::find_task("countdown");
  t.verify = [](const grpo::problem&, std::string_view response) { return float(response.size() % 2); };
  return t;
}

TEST(Training, ResumeFromACheckpointGivesTheSameMetrics) {
  const auto whole = fresh_dir("whole"), first = fresh_dir("first"), second = fresh_dir("second");
  const auto task = parity_task();
  const auto summary = grpo::run_training(tiny_run(whole), &task);
  EXPECT_EQ(summary.steps, 4);
  auto half = tiny_run(first);
  half.rl_steps = 2;
  (void)grpo::run_training(half, &task);
  auto rest = tiny_run(second);
  rest.resume = (first / "checkpoint.pt").string();
  EXPECT_EQ(grpo::run_training(rest, &task).steps, 2);
  // The same weights at the end, and GRPO did move them (the rewards had variance).
  auto end_whole = tiny_model(0), end_resumed = tiny_model(0), warm = tiny_model(0);
  (void)grpo::load_checkpoint((whole / "checkpoint.pt").string(), end_whole, nullptr);
  (void)grpo::load_checkpoint((second / "checkpoint.pt").string(), end_resumed, nullptr);
  (void)grpo::load_checkpoint((whole / "warm_start.pt").string(), warm, nullptr);
  const auto pw = parameters_of(end_whole), pr = parameters_of(end_resumed), p0 = parameters_of(warm);
  for (std::size_t i = 0; i < pw.size(); ++i) EXPECT_TRUE(::torch::equal(pw[i], pr[i])) << i;
  EXPECT_FALSE(::torch::equal(pw[0], p0[0]));

  const auto expected = metrics_without_timings(whole / "metrics.jsonl", "rl");
  const auto resumed = metrics_without_timings(second / "metrics.jsonl", "rl");
  ASSERT_EQ(expected.size(), 4u);
  ASSERT_EQ(resumed.size(), 2u);
  EXPECT_NE(expected[0]["loss"].get<double>(), 0.0);
  EXPECT_EQ(resumed[0], expected[2]);
  EXPECT_EQ(resumed[1], expected[3]);
  EXPECT_EQ(metrics_without_timings(second / "metrics.jsonl", "eval").back(),
            metrics_without_timings(whole / "metrics.jsonl", "eval").back());
  // Resuming into the run's own directory keeps the lines before the checkpoint and rewrites the rest.
  auto again = tiny_run(first);
  again.resume = (first / "checkpoint.pt").string();
  (void)grpo::run_training(again, &task);
  EXPECT_EQ(metrics_without_timings(first / "metrics.jsonl", "rl"), expected);
  EXPECT_EQ(metrics_without_timings(first / "metrics.jsonl", "warm_start"),
            metrics_without_timings(whole / "metrics.jsonl", "warm_start"));
  EXPECT_TRUE(fs::exists(whole / "curves.png"));
  EXPECT_TRUE(fs::exists(whole / "warm_start.pt"));
}

TEST(Training, GrpoLearnsALearnableReward) {
  // Reward 1 for a response of at most 12 characters: an untrained model writes one about 1 time in 5,
  // and writing EOS early is a single-token lesson. GRPO (any credit) must make it the rule quickly.
  auto t = grpo::find_task("countdown");
  t.verify = [](const grpo::problem&, std::string_view response) { return float(response.size() <= 12); };
  for (const auto* shaping : {"grpo", "coupled_rhythm"}) {
    auto opt = tiny_run(fresh_dir(std::string("learnable_") + shaping));
    opt.shaping = shaping;
    opt.sft_steps = 0;
    opt.rl_steps = 40;
    opt.prompts = 4;
    opt.group = 8;
    opt.rl_lr = 3e-3;
    opt.eval_every = 40;
    (void)grpo::run_training(opt, &t);
    const auto lines = metrics_without_timings(fs::path(opt.out_dir) / "metrics.jsonl", "rl");
    double first = 0, last = 0;
    for (std::size_t i = 0; i < 8; ++i) first += lines[i]["reward"].get<double>() / 8, last += lines[lines.size() - 1 - i]["reward"].get<double>() / 8;
    std::printf("  %s: mean reward of the first 8 steps %.2f, of the last 8 %.2f\n", shaping, first, last);
    EXPECT_GT(last, first + 0.3) << shaping;
  }
}

/// Parses `args` into options as grpo_trainer does, then validates; returns the error message ("" if none).
std::string flag_error(std::vector<std::string> args) {
  grpo::trainer_options opt;
  CLI::App app;
  grpo::add_trainer_options(app, opt);
  std::reverse(args.begin(), args.end());
  try {
    app.parse(args);
    grpo::validate(opt);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

TEST(Options, BadFlagsGiveClearErrors) {
  EXPECT_EQ(flag_error({"--shaping", "coupled_rhythm", "--group", "4"}), "");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
      {{"--shaping", "rhythmic"}, "--shaping"},
      {{"--sign", "up"}, "--sign"},
      {{"--task", "sudoku"}, "--task"},
      {{"--group", "1"}, "--group"},
      {{"--lr", "-1"}, "--lr"},
      {{"--temperature", "0"}, "--temperature"},
      {{"--q", "1.5"}, "--q"},
      {{"--gamma-amp", "0.5"}, "--gamma-amp"},
      {{"--steps", "ten"}, "--steps"},
      {{"--resume", "/nonexistent/checkpoint.pt"}, "--resume"},
      {{"--device", "tpu"}, "--device"},
      {{"--kv-heads", "3"}, "--kv-heads"},
      {{"--d-model", "36"}, "--d-model"},
      {{"--capture-layers", "2"}, "--capture-layers"},
      {{"--horizon-lo", "50", "--horizon-hi", "20"}, "--horizon-hi"},
      {{"--minibatches", "1000"}, "--minibatches"},
      {{"--max-new-tokens", "100000"}, "--max-new-tokens"},
      {{"--attention-pass", "maps"}, "--attention-pass"},
      {{"--dominance-threshold", "mean"}, "--dominance-threshold"},
      {{"--gamma-floor", "-1"}, "--gamma-floor"},
      // NaN passes CLI11's ranges (they only compare) and Inf its open ones: every float flag says so.
      {{"--lr", "nan"}, "--lr"},
      {{"--sft-lr", "inf"}, "--sft-lr"},
      {{"--temperature", "nan"}, "--temperature"},
      {{"--weight-decay", "inf"}, "--weight-decay"},
      {{"--clip-epsilon", "nan"}, "--clip-epsilon"},
      {{"--clip-epsilon-high", "inf"}, "--clip-epsilon-high"},
      {{"--grad-clip", "nan"}, "--grad-clip"},
      {{"--q", "nan"}, "--q"},
      {{"--gamma-amp", "nan"}, "--gamma-amp"},
      {{"--alpha", "nan"}, "--alpha"},
      {{"--head-fraction", "nan"}, "--head-fraction"},
      {{"--gamma-floor", "inf"}, "--gamma-floor"},
      {{"--seed", "-1"}, "--seed"},                  // would wrap to 2^64 - 1
      {{"--window", "1000000000000"}, "--window"},  // was clamped to the sequence
  };
  for (const auto& [args, flag] : cases) {
    const auto message = flag_error(args);
    EXPECT_NE(message.find(flag), std::string::npos) << args[0] << " " << args[1] << ": '" << message << "'";
  }
  EXPECT_EQ(flag_error({"--lr", "1e-4", "--seed", "18446744073709551615", "--window", "1024"}), "");
  EXPECT_THROW(grpo::check_shaping("grpo2"), std::invalid_argument);
  for (const auto* name : {"grpo", "uniform", "local_chunk", "global_anchor", "coupled_rhythm", "random", "entropy"})
    EXPECT_NO_THROW(grpo::check_shaping(name)) << name;
  EXPECT_TRUE(grpo::is_plain_grpo("grpo"));
  EXPECT_FALSE(grpo::is_plain_grpo("uniform"));
}

TEST(Metrics, ResumeKeepsTheLinesBeforeTheCheckpoint) {
  const auto path = fresh_dir("metrics") / "m.jsonl";
  {
    grpo::metrics_log log(path.string());
    log.write({{"phase", "warm_start"}, {"step", 100}});
    for (int s = 0; s < 5; ++s) log.write({{"phase", "rl"}, {"step", s}});
    log.write({{"phase", "eval"}, {"step", 4}});
  }
  { grpo::metrics_log log(path.string(), 3); }
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 4u);  // warm start, steps 0-2
  EXPECT_EQ(nlohmann::json::parse(lines[0])["phase"], "warm_start");
  EXPECT_EQ(nlohmann::json::parse(lines[3])["step"], 2);
}

TEST(Experiments, IntervalsUseStudentT) {
  const auto i = grpo::interval_of({1.0, 2.0, 3.0});
  EXPECT_DOUBLE_EQ(i.mean, 2.0);
  EXPECT_NEAR(i.half_width, 4.303 / std::sqrt(3.0), 1e-12);
  EXPECT_TRUE(std::isnan(grpo::interval_of({0.5}).half_width));
  EXPECT_EQ(grpo::percent({0.412, 0.031}), "41.2 ± 3.1");
  EXPECT_EQ(grpo::percent({0.5, NAN}), "50.0");
  EXPECT_EQ(grpo::interval_text({1.3125, 0.214}), "1.31 ± 0.21");
  EXPECT_NEAR(grpo::t_quantile_95(100), 1.96, 1e-12);
  const double t_table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228};  // df 1-10
  for (int df = 1; df <= 10; ++df) EXPECT_DOUBLE_EQ(grpo::t_quantile_95(df), t_table[df - 1]) << df;
}

TEST(Experiments, ArmsAreShapingNamesWithAnOptionalBottomQAblation) {
  const grpo::trainer_options base;
  EXPECT_EQ(grpo::arm_options(base, "random").shaping, "random");
  EXPECT_FALSE(grpo::arm_options(base, "random").bottom_q);
  const auto ablation = grpo::arm_options(base, "coupled_rhythm+bottom_q");
  EXPECT_EQ(ablation.shaping, "coupled_rhythm");
  EXPECT_TRUE(ablation.bottom_q);
  for (const auto* bad : {"grpo+bottom_q", "+bottom_q", "coupled", "coupled_rhythm+top_q"}) {
    try {
      (void)grpo::arm_options(base, bad);
      FAIL() << bad;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(std::string(bad).substr(0, 4)), std::string::npos) << e.what();
    }
  }
}

TEST(Experiments, RunsInParallelProcessesGiveTheResultsOfRunsOneAfterAnother) {
  grpo::experiment_plan plan;
  plan.tasks = {"rule"};
  plan.arms = {"grpo", "coupled_rhythm+bottom_q"};
  plan.seeds = {1, 2};
  std::vector<nlohmann::json> results;
  fs::path dir;
  for (const int jobs : {1, 2}) {
    dir = fresh_dir("jobs" + std::to_string(jobs));
    auto opt = tiny_run(dir);
    opt.threads = 1;
    plan.jobs = jobs;
    (void)grpo::run_experiments(opt, plan);
    auto j = nlohmann::json::parse(std::ifstream(dir / "results.json"));
    for (auto& run : j)
      for (const auto* key : {"t_rollout", "t_attention", "t_credit", "t_update"}) run.erase(key);
    results.push_back(j);
    EXPECT_EQ(fs::exists(dir / "rule" / "seed2" / "coupled_rhythm+bottom_q" / "log.txt"), jobs > 1);
  }
  ASSERT_EQ(results[0].size(), 4u);
  EXPECT_EQ(results[0], results[1]);
  EXPECT_EQ(results[0][1]["steps"], 4);
  // Every run ends with the rhythm statistics of its greedy traces.
  const auto metrics = dir / "rule" / "seed1" / "grpo" / "metrics.jsonl";
  std::ifstream in(metrics);
  nlohmann::json last;
  for (std::string line; std::getline(in, line);) last = nlohmann::json::parse(line);
  EXPECT_EQ(last["phase"], "rhythm") << metrics;
  EXPECT_GT(last["waad_peaks"].get<std::int64_t>(), 0);
  EXPECT_GT(last["fai_peaks"].get<std::int64_t>(), 0);
  EXPECT_LE(last["fai_peaks_following"].get<std::int64_t>(), last["fai_peaks"].get<std::int64_t>());
  EXPECT_TRUE(results[0][0]["rhythm_lift"].is_number()) << results[0][0];
}

}  // namespace
