// Overhead of the rhythm::torch convenience path against the core on the same buffers (Google Benchmark). The torch path includes everything a trainer pays: checks of the
// tensors, conversion of an int64 [B, 3] segments tensor, allocation of the output tensors (for
// rhythm::torch::credit_assigner also its diagnostics tensors).
//
//   cmake --preset bench && cmake --build --preset bench --target rhythm_torch_overhead
//   build/bench/bench/rhythm_torch_overhead --benchmark_min_time=0.5 --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Sizes: "trainer" B=16, H=Hkv=8 (stacked heads), N=256, d=64; "small" B=2, H=Hkv=2, N=32, d=16.
// One thread on both sides (threads = 1 / exec::par{1}) so that the difference is the adapter's.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <type_traits>
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
    rhythm::head_signals_from_qk(rhythm::exec::par{1}, rhythm::make_view(p.q, p.B, p.H, p.N, p.d),
                                 rhythm::make_view(p.k, p.B, p.H, p.N, p.d), rhythm::make_view(p.segs),
                                 rhythm::make_view(span, p.B, p.H), rhythm::make_view(waad, p.B, p.H, p.N),
                                 rhythm::make_view(fai, p.B, p.H, p.N));
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
    auto d = pipe.run_from_qk(rhythm::exec::par{1}, rhythm::make_view(p.q, p.B, p.H, p.N, p.d),
                              rhythm::make_view(p.k, p.B, p.H, p.N, p.d), rhythm::make_view(p.segs),
                              rhythm::make_view(p.rewards), rhythm::make_view(p.ids), rhythm::shaping::coupled_rhythm{},
                              rhythm::make_view(gamma, p.B, p.N), rhythm::make_view(shaped, p.B, p.N));
    benchmark::DoNotOptimize(d);
  }
  label(state);
}

/// The batch of the torch path: q, k, the int64 [B, 3] segments tensor, rewards, group ids.
rhythm::torch::credit_batch batch_of(const problem& p) {
  return {.q = p.qt, .k = p.kt, .segments = p.segst, .rewards = p.rewardst, .group_ids = p.idst};
}

// One credit_assigner reused across calls (its pipeline's buffers too): what a trainer does.
void torch_pipeline_reused(benchmark::State& state) {
  const problem& p = get(int(state.range(0)));
  rhythm::torch::credit_assigner assign(rhythm::shaping::coupled_rhythm{}, {}, 1);
  for (auto _ : state) {
    auto r = assign(batch_of(p));
    benchmark::DoNotOptimize(r.gamma.data_ptr());
  }
  label(state);
}

// A fresh credit_assigner (and so a fresh pipeline, its buffers allocated) every call.
void torch_pipeline_fresh(benchmark::State& state) {
  const problem& p = get(int(state.range(0)));
  for (auto _ : state) {
    rhythm::torch::credit_assigner assign(rhythm::shaping::coupled_rhythm{}, {}, 1);
    auto r = assign(batch_of(p));
    benchmark::DoNotOptimize(r.gamma.data_ptr());
  }
  label(state);
}

// What the torch path adds, alone: tensor checks, dtype dispatch, segments conversion from the
// int64 tensor, output allocation (the signals call), and for the pipeline also the rewards/ids
// views, gamma/shaped allocation and the diagnostics tensors credit_assigner returns. Mirrors
// rhythm::torch::head_signals_from_qk and credit_assigner::operator() (adapters/libtorch/include/
// rhythm/torch/credit.hpp) on CPU tensors, with the core's work left out.
void adapter_only_signals(benchmark::State& state) {
  namespace rt = rhythm::torch;
  const problem& p = get(int(state.range(0)));
  for (auto _ : state) {
    const rt::segments_arg segs(p.segst);
    const auto policy = rt::detail::host_policy(1);
    const at::Tensor hq = rt::detail::on_host(p.qt), hk = rt::detail::on_host(p.kt);
    auto out = rt::detail::dispatch_qk(hq, hk, [&]<class E>(std::type_identity<E>) {
      const auto qv = rt::view<const E, 4>(hq, "q");
      const auto kv = rt::view<const E, 4>(hk, "k");
      return rt::detail::head_signals(qv.extent(0), qv.extent(1), qv.extent(2), p.qt.device(),
                                      [&](auto span, auto waad, auto fai) {
                                        benchmark::DoNotOptimize(policy);
                                        benchmark::DoNotOptimize(kv);
                                        benchmark::DoNotOptimize(segs.view().data_handle());
                                        benchmark::DoNotOptimize(span.data_handle());
                                        benchmark::DoNotOptimize(waad.data_handle());
                                        benchmark::DoNotOptimize(fai.data_handle());
                                      });
    });
    benchmark::DoNotOptimize(out.waad.data_ptr());
  }
  label(state);
}

void adapter_only_pipeline(benchmark::State& state) {
  namespace rt = rhythm::torch;
  const problem& p = get(int(state.range(0)));
  const auto batch = batch_of(p);
  rt::credit_assigner filled(rhythm::shaping::coupled_rhythm{}, {}, 1);
  (void)filled(batch);  // a pipeline holding intermediates of this problem's shape, to copy from
  const rhythm::credit_pipeline& pipe = filled.pipeline();
  for (auto _ : state) {
    TORCH_CHECK(batch.q.defined() != batch.maps.defined(), "credit_assigner: expected either q and k or maps");
    TORCH_CHECK(batch.response_mask.defined() != batch.segments.defined(),
                "credit_assigner: expected either response_mask or segments");
    TORCH_CHECK(!batch.attention_mask.defined() || batch.response_mask.defined(),
                "credit_assigner: attention_mask goes with response_mask");
    rt::detail::check_strided(batch.q, "q", 4);
    const rt::segments_arg segs(batch.segments);
    const at::Tensor rewards = rt::detail::on_host(batch.rewards), ids = rt::detail::on_host(batch.group_ids);
    const auto r = rt::view<const float, 1>(rewards, "rewards");
    const auto g = rt::view<const std::int64_t, 1>(ids, "group_ids");
    const auto policy = rt::detail::host_policy(1);
    const std::int64_t B = batch.q.size(0), N = batch.q.size(2);
    rt::credit_result out{rt::detail::float_tensor({B, N}), rt::detail::float_tensor({B, N}), {}};
    const auto gamma = rt::detail::out_view<float, 2>(out.gamma), shaped = rt::detail::out_view<float, 2>(out.shaped);
    const at::Tensor hq = rt::detail::on_host(batch.q), hk = rt::detail::on_host(batch.k);
    const auto d = rt::detail::dispatch_qk(hq, hk, [&]<class E>(std::type_identity<E>) {
      const auto qv = rt::view<const E, 4>(hq, "q"), kv = rt::view<const E, 4>(hk, "k");
      benchmark::DoNotOptimize(qv);
      benchmark::DoNotOptimize(kv);
      benchmark::DoNotOptimize(segs.view().data_handle());
      benchmark::DoNotOptimize(r);
      benchmark::DoNotOptimize(g);
      benchmark::DoNotOptimize(policy);
      benchmark::DoNotOptimize(gamma.data_handle());
      benchmark::DoNotOptimize(shaped.data_handle());
      return rhythm::pipeline_diagnostics{};
    });
    out.diagnostics = rt::detail::diagnostics_of(pipe, d);  // the diagnostics tensors
    benchmark::DoNotOptimize(out.gamma.data_ptr());
    benchmark::DoNotOptimize(out.diagnostics.head_roles.data_ptr());
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
