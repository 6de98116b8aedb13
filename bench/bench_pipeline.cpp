// Tokens-and-credit throughput and the pipeline's cost outside the signals stage.
//
//   tokens_credit/rhythm_par2/512x1024   token_sets + grpo_advantages + shaping_factors (coupled_rhythm)
//                                        + shaped_advantages on group signals of 512 responses x 1024 tokens
//   pipeline/signals_only/1024           head_signals_from_qk, Q, K [8, 8, 1024, 64], exec::par{2}
//   pipeline/run_from_qk/1024            credit_pipeline::run_from_qk on the same inputs (signals + the rest)
#include <benchmark/benchmark.h>

#include <vector>

#include <rhythm/rhythm.hpp>

#include "common.hpp"

namespace bench {
namespace {

constexpr std::int64_t kResponses = 512, kTokens = 1024;  // tokens-and-credit problem
constexpr std::int64_t kPipeBatch = 8, kPipeLength = 1024;  // pipeline problem: one GRPO group of 8

// Group WAAD with a sawtooth (chunks of random length) and a spiky FAI, 0 outside the response.
void sawtooth_signals(std::int64_t B, std::int64_t N, std::vector<float>& waad, std::vector<float>& fai) {
  splitmix64 rng{42};
  waad.assign(B * N, 0.0f), fai.assign(B * N, 0.0f);
  for (std::int64_t b = 0; b < B; ++b) {
    float w = 0;
    for (std::int64_t t = 0; t < N; ++t) {
      w = rng.uniform() < 0.08f ? 0.2f * rng.uniform() : w + 0.3f * rng.uniform();
      waad[b * N + t] = std::min(w, 10.0f);
      fai[b * N + t] = rng.uniform() < 0.05f ? 0.05f + 0.1f * rng.uniform() : 0.002f * rng.uniform();
    }
  }
}

void bm_tokens_credit(benchmark::State& st) {
  const std::int64_t B = kResponses, N = kTokens;
  std::vector<float> waad, fai, rewards(B), adv(B), gamma(B * N), shaped(B * N);
  sawtooth_signals(B, N, waad, fai);
  std::vector<std::int64_t> ids(B);
  splitmix64 rng{7};
  for (std::int64_t b = 0; b < B; ++b) ids[b] = b / 8, rewards[b] = rng.uniform() < 0.5f ? 1.0f : 0.0f;
  std::vector<rhythm::token_flag> flags(B * N);
  const std::vector<rhythm::segment> segs(B, rhythm::segment{0, 0, N});
  const auto BN = std::array<std::int64_t, 2>{B, N};
  const auto wv = rhythm::make_view(std::as_const(waad), BN), fv = rhythm::make_view(std::as_const(fai), BN);
  const auto flv = rhythm::make_view(flags, BN);
  const auto gv = rhythm::make_view(gamma, BN), sv = rhythm::make_view(shaped, BN);
  const auto segv = rhythm::make_view(segs);
  const auto policy = rhythm::exec::par{kThreads};
  for (auto _ : st) {
    rhythm::token_sets(policy, wv, fv, segv, flv);
    rhythm::grpo_advantages(policy, rhythm::make_view(std::as_const(rewards)), rhythm::make_view(std::as_const(ids)),
                            rhythm::make_view(adv));
    rhythm::shaping_factors(policy, rhythm::shaping::coupled_rhythm{}, flv, segv, rhythm::make_view(std::as_const(adv)), gv);
    rhythm::shaped_advantages(policy, gv, rhythm::make_view(std::as_const(adv)), segv, sv);
    benchmark::DoNotOptimize(shaped.data());
    benchmark::ClobberMemory();
  }
  st.SetItemsProcessed(static_cast<std::int64_t>(st.iterations()) * B * N);
}

struct pipeline_inputs {
  std::int64_t B = kPipeBatch, H = kHeads, N = kPipeLength, d = kHeadDim;
  std::vector<float> q, k, rewards, gamma, shaped, span, waad, fai;
  std::vector<std::int64_t> ids;
  std::vector<rhythm::segment> segs;
  pipeline_inputs() {
    splitmix64 rng{11};
    q.resize(B * H * N * d), k.resize(B * H * N * d);
    for (auto& x : q) x = rng.normal();
    for (auto& x : k) x = rng.normal();
    rewards.resize(B), ids.assign(B, 0);
    for (auto& r : rewards) r = rng.uniform() < 0.5f ? 1.0f : 0.0f;
    segs.assign(B, bench_segment(N));
    gamma.resize(B * N), shaped.resize(B * N), span.resize(B * H), waad.resize(B * H * N), fai.resize(B * H * N);
  }
  auto qv() const { return rhythm::make_view(q, std::array<std::int64_t, 4>{B, H, N, d}); }
  auto kv() const { return rhythm::make_view(k, std::array<std::int64_t, 4>{B, H, N, d}); }
};

void bm_signals_only(benchmark::State& st) {
  pipeline_inputs x;
  for (auto _ : st) {
    rhythm::head_signals_from_qk(rhythm::exec::par{kThreads}, x.qv(), x.kv(), rhythm::make_view(x.segs),
                                 rhythm::make_view(x.span, std::array<std::int64_t, 2>{x.B, x.H}),
                                 rhythm::make_view(x.waad, std::array<std::int64_t, 3>{x.B, x.H, x.N}),
                                 rhythm::make_view(x.fai, std::array<std::int64_t, 3>{x.B, x.H, x.N}));
    benchmark::DoNotOptimize(x.fai.data());
  }
}

void bm_pipeline(benchmark::State& st) {
  pipeline_inputs x;
  rhythm::credit_pipeline pipe({x.B, x.H, x.N});
  for (auto _ : st) {
    pipe.run_from_qk(rhythm::exec::par{kThreads}, x.qv(), x.kv(), rhythm::make_view(x.segs),
                     rhythm::make_view(std::as_const(x.rewards)), rhythm::make_view(std::as_const(x.ids)),
                     rhythm::shaping::coupled_rhythm{},
                     rhythm::make_view(x.gamma, std::array<std::int64_t, 2>{x.B, x.N}),
                     rhythm::make_view(x.shaped, std::array<std::int64_t, 2>{x.B, x.N}));
    benchmark::DoNotOptimize(x.shaped.data());
  }
}

}  // namespace

void register_pipeline_benchmarks() {
  benchmark::RegisterBenchmark("tokens_credit/rhythm_par2/512x1024", bm_tokens_credit)
      ->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(0.5)->Repetitions(3);
  benchmark::RegisterBenchmark("pipeline/signals_only/1024", bm_signals_only)
      ->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(0.5)->Repetitions(3);
  benchmark::RegisterBenchmark("pipeline/run_from_qk/1024", bm_pipeline)
      ->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(0.5)->Repetitions(3);
}

}  // namespace bench
