// Overhead of the rhythm::torch convenience path against the core on the same buffers (Google Benchmark). The torch path includes everything a trainer pays: checks of the
// tensors, conversion of an int64 [B, 3] segments tensor, allocation of the output tensors.
//
//   cmake --preset bench && cmake --build --preset bench --target rhythm_torch_overhead
//   build/bench/bench/rhythm_torch_overhead --benchmark_min_time=0.5 --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Sizes: "trainer" B=16, H=Hkv=8 (stacked heads), N=256, d=64; "small" B=2, H=Hkv=2, N=32, d=16.
// One thread on both sides (threads = 1 / exec::par{1}) so that the difference is the adapter's.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include <rhythm/torch.hpp>

namespace {

struct problem {
  std::int64_t B, H, N, d;
  std::vector<float> q, k;
  std::vector<rhythm::segment> segs;
  std::vector<float> rewards;
  std::vector<std::int64_t> ids;
  // The same data as tensors (the torch path reads these; the core reads the vectors).
  at::Tensor qt, kt, segst, rewardst, idst;
  explicit problem(std::int64_t b, std::int64_t h, std::int64_t n, std::int64_t dd) : B(b), H(h), N(n), d(dd) {
    std::mt19937 rng(1);
    std::normal_distribution<float> g(0.0f, 1.5f);
    q.resize(B * H * N * d), k.resize(B * H * N * d);
    for (auto& x : q) x = g(rng);
    for (auto& x : k) x = g(rng);
    std::uniform_int_distribution<std::int64_t> pad(0, N / 8);
    for (std::int64_t i = 0; i < B; ++i) {
      segs.push_back({0, N / 4, N - pad(rng)});
      rewards.push_back(float(i % 3 == 0));
      ids.push_back(i / 4);
    }
    qt = at::from_blob(q.data(), {B, H, N, d}, at::kFloat);
    kt = at::from_blob(k.data(), {B, H, N, d}, at::kFloat);
    segst = rhythm::torch::segments_tensor(segs);
    rewardst = at::from_blob(rewards.data(), {B}, at::kFloat);
    idst = at::from_blob(ids.data(), {B}, at::kLong);
  }
};

const problem& get(int which) {
  static const problem trainer(16, 8, 256, 64), small(2, 2, 32, 16);
  return which == 0 ? trainer : small;
}

void label(benchmark::State& state) { state.SetLabel(state.range(0) == 0 ? "trainer B16 H8 N256 d64" : "small B2 H2 N32 d16"); }

void core_signals(benchmark::State& state) {
  const problem& p = get(int(state.range(0)));
  std::vector<float> span(p.B * p.H), waad(p.B * p.H * p.N), fai(p.B * p.H * p.N);
  for (auto _ : state) {
    rhythm::head_signals_from_qk(rhythm::exec::par{1}, rhythm::make_view(p.q, std::array<std::int64_t, 4>{p.B, p.H, p.N, p.d}),
                                 rhythm::make_view(p.k, std::array<std::int64_t, 4>{p.B, p.H, p.N, p.d}),
                                 rhythm::make_view(p.segs), rhythm::make_view(span, std::array<std::int64_t, 2>{p.B, p.H}),
                                 rhythm::make_view(waad, std::array<std::int64_t, 3>{p.B, p.H, p.N}),
                                 rhythm::make_view(fai, std::array<std::int64_t, 3>{p.B, p.H, p.N}));
    benchmark::DoNotOptimize(waad.data());
  }
  label(state);
}

void torch_signals(benchmark::State& state) {
  const problem& p = get(int(state.range(0)));
  for (auto _ : state) {
    auto r = rhythm::torch::head_signals_from_qk(p.qt, p.kt, p.segst, {}, 1);
    benchmark::DoNotOptimize(r.waad.data_ptr());
  }
  label(state);
}

void core_pipeline(benchmark::State& state) {
  const problem& p = get(int(state.range(0)));
  rhythm::credit_pipeline pipe;
  std::vector<float> gamma(p.B * p.N), shaped(p.B * p.N);
  for (auto _ : state) {
    auto d = pipe.run_from_qk(rhythm::exec::par{1}, rhythm::make_view(p.q, std::array<std::int64_t, 4>{p.B, p.H, p.N, p.d}),
                              rhythm::make_view(p.k, std::array<std::int64_t, 4>{p.B, p.H, p.N, p.d}),
                              rhythm::make_view(p.segs), rhythm::make_view(p.rewards), rhythm::make_view(p.ids),
                              rhythm::shaping::coupled_rhythm{},
                              rhythm::make_view(gamma, std::array<std::int64_t, 2>{p.B, p.N}),
                              rhythm::make_view(shaped, std::array<std::int64_t, 2>{p.B, p.N}));
    benchmark::DoNotOptimize(d);
  }
  label(state);
}

void torch_pipeline_reused(benchmark::State& state) {
  const problem& p = get(int(state.range(0)));
  rhythm::credit_pipeline pipe;
  for (auto _ : state) {
    auto r = rhythm::torch::credit_from_qk(pipe, p.qt, p.kt, p.segst, p.rewardst, p.idst, rhythm::shaping::coupled_rhythm{},
                                           {}, 1);
    benchmark::DoNotOptimize(r.gamma.data_ptr());
  }
  label(state);
}

void torch_pipeline_fresh(benchmark::State& state) {
  const problem& p = get(int(state.range(0)));
  for (auto _ : state) {
    auto r = rhythm::torch::credit_from_qk(p.qt, p.kt, p.segst, p.rewardst, p.idst, rhythm::shaping::coupled_rhythm{}, {}, 1);
    benchmark::DoNotOptimize(r.gamma.data_ptr());
  }
  label(state);
}

// What the torch path adds, alone: tensor checks, dtype dispatch, segments conversion from the
// int64 tensor, output allocation (the signals call, and the pipeline's extra rewards/ids views
// and gamma/shaped allocation).
void adapter_only_signals(benchmark::State& state) {
  const problem& p = get(int(state.range(0)));
  for (auto _ : state) {
    const auto policy = rhythm::torch::detail::host_policy(1);
    rhythm::torch::detail::dispatch_qk(p.qt, p.kt, [&]<class E>(std::type_identity<E>) {
      const auto qv = rhythm::torch::view<const E, 4>(p.qt, "q");
      const auto kv = rhythm::torch::view<const E, 4>(p.kt, "k");
      const rhythm::torch::segments_arg segs(p.segst);
      auto out = rhythm::torch::detail::allocate_signals(qv.extent(0), qv.extent(1), qv.extent(2));
      benchmark::DoNotOptimize(policy);
      benchmark::DoNotOptimize(kv);
      benchmark::DoNotOptimize(segs.span().data());
      benchmark::DoNotOptimize(rhythm::torch::detail::out_view<3>(out.waad).data_handle());
      return 0;
    });
  }
  label(state);
}

void adapter_only_pipeline(benchmark::State& state) {
  const problem& p = get(int(state.range(0)));
  for (auto _ : state) {
    rhythm::torch::detail::dispatch_qk(p.qt, p.kt, [&]<class E>(std::type_identity<E>) {
      const auto qv = rhythm::torch::view<const E, 4>(p.qt, "q");
      const auto kv = rhythm::torch::view<const E, 4>(p.kt, "k");
      const rhythm::torch::segments_arg segs(p.segst);
      const auto r = rhythm::torch::detail::run_credit(qv.extent(0), qv.extent(2), p.rewardst, p.idst,
                                                       [&](auto, auto, auto gamma, auto) {
                                                         benchmark::DoNotOptimize(gamma.data_handle());
                                                         return rhythm::pipeline_diagnostics{};
                                                       });
      benchmark::DoNotOptimize(kv);
      benchmark::DoNotOptimize(segs.span().data());
      benchmark::DoNotOptimize(r.gamma.data_ptr());
      return 0;
    });
  }
  label(state);
}

BENCHMARK(adapter_only_signals)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(adapter_only_pipeline)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(core_signals)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(torch_signals)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(core_pipeline)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(torch_pipeline_reused)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);
BENCHMARK(torch_pipeline_fresh)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
