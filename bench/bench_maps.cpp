// Maps path: head_signals_from_maps on a random causal row-stochastic map [1, 8, N, N] (float), next to a
// plain read loop that sums exactly the elements the kernel reads (the roofline), at the same thread count.
//
// Segment {0, N/8, N}: the kernel reads, for each head, the keys [0, t] of every response row t in
// [N/8, N), i.e. sum_t (t + 1) floats; SetBytesProcessed counts exactly those bytes, for both benchmarks.
#include <benchmark/benchmark.h>

#include <thread>
#include <utility>
#include <vector>

#include <rhythm/rhythm.hpp>

#include "common.hpp"

namespace bench {
namespace {

// One map in memory at a time (512 MiB at N = 4096); the benchmarks of one N run back to back.
struct maps_cache {
  std::int64_t n = -1;
  std::vector<float> maps;
};
maps_cache& cache() {
  static maps_cache c;
  return c;
}

const std::vector<float>& maps_for(std::int64_t n) {
  maps_cache& c = cache();
  if (c.n != n) {
    c.maps = {};  // free the previous N's map before building the next
    c.maps = random_causal_maps(kBatch, kHeads, n, 0x5eed0000u + static_cast<std::uint64_t>(n));
    c.n = n;
  }
  return c.maps;
}

std::int64_t bytes_per_call(std::int64_t n) {
  return kBatch * kHeads * lower_triangle_elements(bench_segment(n)) * static_cast<std::int64_t>(sizeof(float));
}

void set_byte_counters(benchmark::State& st, std::int64_t n) {
  const std::int64_t bytes = bytes_per_call(n);
  st.SetBytesProcessed(static_cast<std::int64_t>(st.iterations()) * bytes);
  st.counters["bytes_per_call"] = benchmark::Counter(static_cast<double>(bytes), benchmark::Counter::kDefaults,
                                                     benchmark::Counter::kIs1024);
}

void bm_maps(benchmark::State& st, std::int64_t n, int threads) {
  const std::vector<float>& maps = maps_for(n);
  const std::vector<rhythm::segment> segs(kBatch, bench_segment(n));
  std::vector<float> span(kBatch * kHeads), waad(kBatch * kHeads * n), fai(kBatch * kHeads * n);
  const rhythm::view<const float, 4> mv(maps.data(), {kBatch, kHeads, n, n});
  const auto sv = rhythm::make_view(segs);
  const auto spv = rhythm::make_view(span, std::array<std::int64_t, 2>{kBatch, kHeads});
  const auto wv = rhythm::make_view(waad, std::array<std::int64_t, 3>{kBatch, kHeads, n});
  const auto fv = rhythm::make_view(fai, std::array<std::int64_t, 3>{kBatch, kHeads, n});
  for (auto _ : st) {
    if (threads == 1)
      rhythm::head_signals_from_maps(rhythm::exec::seq{}, mv, sv, spv, wv, fv);
    else
      rhythm::head_signals_from_maps(rhythm::exec::par{threads}, mv, sv, spv, wv, fv);
    benchmark::DoNotOptimize(span.data());
    benchmark::ClobberMemory();
  }
  set_byte_counters(st, n);
}

// Sum of rows [response_begin, end) x keys [begin, t] of heads [h0, h1): the same elements the kernel reads,
// in the same order, with 32 float accumulators so that it vectorises (4 AVX2 registers).
float read_heads(const float* maps, std::int64_t n, rhythm::segment seg, std::int64_t h0, std::int64_t h1) {
  constexpr int lanes = 32;
  float acc[lanes] = {};
  for (std::int64_t h = h0; h < h1; ++h)
    for (std::int64_t t = seg.response_begin; t < seg.end; ++t) {
      const float* row = maps + (h * n + t) * n + seg.begin;
      const std::int64_t len = t - seg.begin + 1;
      std::int64_t j = 0;
      for (; j + lanes <= len; j += lanes)
        for (int u = 0; u < lanes; ++u) acc[u] += row[j + u];
      for (; j < len; ++j) acc[j % lanes] += row[j];
    }
  float s = 0;
  for (float a : acc) s += a;
  return s;
}

void bm_read_loop(benchmark::State& st, std::int64_t n, int threads) {
  const std::vector<float>& maps = maps_for(n);
  const rhythm::segment seg = bench_segment(n);
  const std::int64_t heads = kBatch * kHeads;
  std::vector<float> partial(threads);
  for (auto _ : st) {
    // Like exec::par{threads}: start threads per call, the caller is worker 0; heads split evenly.
    std::vector<std::thread> pool;
    for (int w = 1; w < threads; ++w)
      pool.emplace_back([&, w] { partial[w] = read_heads(maps.data(), n, seg, heads * w / threads, heads * (w + 1) / threads); });
    partial[0] = read_heads(maps.data(), n, seg, 0, heads / threads);
    for (auto& t : pool) t.join();
    benchmark::DoNotOptimize(partial.data());
    benchmark::ClobberMemory();
  }
  set_byte_counters(st, n);
}

}  // namespace

void register_maps_benchmarks() {
  for (const std::int64_t n : kLengths) {
    const std::string sn = std::to_string(n);
    for (const int threads : {1, kThreads}) {
      const std::string rhythm_name = threads == 1 ? "rhythm_seq" : "rhythm_par" + std::to_string(threads);
      benchmark::RegisterBenchmark(("maps_f32/" + rhythm_name + "/" + sn).c_str(), bm_maps, n, threads)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond)
          ->MinTime(0.3)
          ->Repetitions(3);
      benchmark::RegisterBenchmark(("maps_f32/readloop_" + std::to_string(threads) + "t/" + sn).c_str(), bm_read_loop,
                                   n, threads)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond)
          ->MinTime(0.3)
          ->Repetitions(3);
    }
  }
}

void release_maps() { cache() = {}; }

}  // namespace bench
