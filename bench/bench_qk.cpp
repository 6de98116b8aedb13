// Q/K path: rhythm::head_signals_from_qk (exec::par{2}) against the naive LibTorch path (softmax(QK^T)
// materialised, then reduced; torch::set_num_threads(2)), on Q, K [1, 8, N, 64] (Hkv = 8), segment
// {0, N/8, N}, default parameters (W = 10, H_lo = 10, H_hi = 100).
//
// Time per call: the benchmarks' real time. Peak extra memory, three ways:
//   tracked   in process, after a warm-up call: the peak over one call of the bytes live through
//             operator new (replaced in main.cpp) plus LibTorch's tensor storage (reported by its CPU
//             allocator to a MemoryReportingInfoBase hook), minus the bytes live before the call;
//   vmhwm     in a fresh child process (this binary re-executed), after a warm-up call at N = 128:
//             VmHWM after one call minus VmRSS before it (VmHWM reset through /proc/self/clear_refs);
//   analytic  rhythm only: what include/rhythm/cpu/qk_signals.hpp allocates, from its source.
// The caller's outputs (span [B,H], waad and fai [B,H,N]) are allocated before the measurement for
// rhythm; the naive path allocates its result tensors inside the call (counted; they are O(B H N)).
#include <benchmark/benchmark.h>
#include <malloc.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <rhythm/cpu/qk_signals.hpp>
#include <rhythm/rhythm.hpp>

#include "common.hpp"
#include "naive_torch.hpp"

namespace bench {
namespace {

/// Inputs and caller-owned outputs of one rhythm Q/K problem; T is float or rhythm::bfloat16.
template <class T>
struct qk_problem {
  std::int64_t B, H, Hkv, N, d;
  std::vector<T> q, k;
  std::vector<rhythm::segment> segs;
  std::vector<float> span, waad, fai;
  rhythm::signal_params params;

  qk_problem(const std::vector<float>& qf, const std::vector<float>& kf, std::int64_t B_, std::int64_t H_,
             std::int64_t Hkv_, std::int64_t N_, std::int64_t d_, rhythm::segment seg, rhythm::signal_params p = {})
      : B(B_), H(H_), Hkv(Hkv_), N(N_), d(d_), segs(B_, seg), span(B_ * H_), waad(B_ * H_ * N_), fai(B_ * H_ * N_),
        params(p) {
    q.reserve(qf.size());
    k.reserve(kf.size());
    for (float x : qf) q.push_back(T(x));
    for (float x : kf) k.push_back(T(x));
  }

  void run(int threads) {
    const rhythm::view<const T, 4> qv(q.data(), {B, H, N, d});
    const rhythm::view<const T, 4> kv(k.data(), {B, Hkv, N, d});
    const auto sv = rhythm::make_view(std::as_const(segs));
    const auto spv = rhythm::make_view(span, std::array<std::int64_t, 2>{B, H});
    const auto wv = rhythm::make_view(waad, std::array<std::int64_t, 3>{B, H, N});
    const auto fv = rhythm::make_view(fai, std::array<std::int64_t, 3>{B, H, N});
    if (threads == 1)
      rhythm::head_signals_from_qk(rhythm::exec::seq{}, qv, kv, sv, spv, wv, fv, params);
    else
      rhythm::head_signals_from_qk(rhythm::exec::par{threads}, qv, kv, sv, spv, wv, fv, params);
  }

  /// Peak extra bytes of one call through the allocation tracker (operator new).
  std::int64_t tracked_peak_bytes(int threads) {
    const std::int64_t base = tracker().reset_peak();
    run(threads);
    return tracker().peak.load() - base;
  }
};

std::vector<float> make_q(std::int64_t n) { return random_normal(kBatch * kHeads * n * kHeadDim, 0x51u + n); }
std::vector<float> make_k(std::int64_t n) { return random_normal(kBatch * kHeads * n * kHeadDim, 0x4bu + n); }

/// What cpu::qk_head_signals allocates, read from include/rhythm/cpu/qk_signals.hpp and maps_signals.hpp:
/// the staged results (cpu::head_signal_rows) span [B H] + waad, fai [B H N] floats and one
/// rhythm::value_error per (sequence, head) [B H]; then per worker a qk_scratch (q tile 32 d, keys 64 d,
/// scores 32 x 64 and lse2 N floats, colsum N doubles), where `std::vector<qk_scratch> scratch(workers,
/// qk_scratch(N, d))` copies a prototype, so workers + 1 scratches are live at once. Mirrors the source as
/// it was when this was written: the tracked figure is the measurement.
std::int64_t rhythm_qk_analytic_bytes(std::int64_t B, std::int64_t H, std::int64_t N, std::int64_t d, int threads) {
  const std::int64_t workers = std::max<std::int64_t>(1, std::min<std::int64_t>(threads, B * H));
  const std::int64_t results =
      4 * (B * H + 2 * B * H * N) + static_cast<std::int64_t>(sizeof(rhythm::value_error)) * B * H;
  const std::int64_t scratch = 4 * (32 * d + d * (N + 64) + 32 * 64 + N) + 8 * (N + 64);  // qk_scratch
  return results + (workers + 1) * scratch;
}

std::string key(const char* path, const char* dtype, std::int64_t n) {
  return std::string("qk/") + path + "/" + dtype + "/" + std::to_string(n);
}

void set_memory_counters(benchmark::State& st, const memory_figures& m) {
  auto bytes = [](std::int64_t b) {
    return benchmark::Counter(static_cast<double>(b), benchmark::Counter::kDefaults, benchmark::Counter::kIs1024);
  };
  if (m.tracked >= 0) st.counters["mem_tracked"] = bytes(m.tracked);
  if (m.vmhwm >= 0) st.counters["mem_vmhwm"] = bytes(m.vmhwm);
  if (m.analytic >= 0) st.counters["mem_analytic"] = bytes(m.analytic);
}

template <class T>
void bm_rhythm_qk(benchmark::State& st, std::int64_t n) {
  release_maps();
  const char* dtype = std::is_same_v<T, float> ? "f32" : "bf16";
  qk_problem<T> p(make_q(n), make_k(n), kBatch, kHeads, kHeads, n, kHeadDim, bench_segment(n));
  memory_figures& m = memory_table()[key("rhythm", dtype, n)];
  if (m.tracked < 0) {
    p.run(kThreads);  // warm-up
    m.tracked = p.tracked_peak_bytes(kThreads);
    m.analytic = rhythm_qk_analytic_bytes(kBatch, kHeads, n, kHeadDim, kThreads);
  }
  for (auto _ : st) {
    p.run(kThreads);
    benchmark::DoNotOptimize(p.span.data());
    benchmark::ClobberMemory();
  }
  set_memory_counters(st, m);
}

// The Q/K kernel forced onto one instruction set (rhythm::cpu::force_kernel_isa), f32: the sets compared
// in one run. Skipped when this CPU lacks the set.
// `trainer`: the reference trainer's shape instead, one thread: the signal rows of a GRPO step (64 of its
// 16 x 8 rollouts), both layers' 4 query heads over 2 kv heads per layer, N = 110 (27-token prompts), d = 16.
void bm_rhythm_qk_isa(benchmark::State& st, std::int64_t n, rhythm::cpu::kernel_isa isa, bool trainer) {
  if (!rhythm::cpu::force_kernel_isa(isa)) return st.SkipWithError("this CPU lacks the instruction set");
  const std::int64_t B = trainer ? 64 : kBatch, H = kHeads, Hkv = trainer ? 4 : kHeads, N = trainer ? 110 : n,
                     d = trainer ? 16 : kHeadDim;
  const int threads = trainer ? 1 : kThreads;
  qk_problem<float> p(random_normal(std::size_t(B * H * N * d), 1), random_normal(std::size_t(B * Hkv * N * d), 2), B, H, Hkv, N, d,
                      trainer ? rhythm::segment{0, 27, N} : bench_segment(N));
  p.run(threads);  // warm-up
  for (auto _ : st) {
    p.run(threads);
    benchmark::DoNotOptimize(p.span.data());
    benchmark::ClobberMemory();
  }
  rhythm::cpu::force_kernel_isa(std::nullopt);
}

void bm_naive_qk(benchmark::State& st, std::int64_t n, bool bf16) {
  release_maps();
  naive_runner r(make_q(n), make_k(n), kBatch, kHeads, kHeads, n, kHeadDim, bench_segment(n), {}, bf16);
  memory_figures& m = memory_table()[key("naive", bf16 ? "bf16" : "f32", n)];
  if (m.tracked < 0) {
    r.run();  // warm-up
    m.tracked = r.tracked_peak_bytes();
  }
  for (auto _ : st) {
    r.run();
    benchmark::ClobberMemory();
  }
  r.release();
  set_memory_counters(st, m);
}

// ---------------------------------------------------------------------------------------------------------------
// Start-up check: the naive path must agree with rhythm, or the comparison means nothing.
struct diff {
  double max_abs = 0, max_rel = 0;
  bool ok = true;
};

diff compare(const std::vector<float>& got, const std::vector<float>& want, double tol) {
  diff d;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double a = got[i], b = want[i], e = std::abs(a - b);
    d.max_abs = std::max(d.max_abs, e);
    d.max_rel = std::max(d.max_rel, e / std::max(1.0, std::abs(b)));
    if (!(e <= tol * std::max(1.0, std::abs(b)))) d.ok = false;  // NaN fails too
  }
  return d;
}

template <class T>
void check_case(const char* what, std::int64_t H, std::int64_t Hkv, std::int64_t N, rhythm::segment seg) {
  const std::int64_t B = 2, d = 32;
  const std::vector<float> qf = random_normal(B * H * N * d, 7), kf = random_normal(B * Hkv * N * d, 8);
  qk_problem<T> p(qf, kf, B, H, Hkv, N, d, seg);
  p.run(kThreads);
  naive_runner r(qf, kf, B, H, Hkv, N, d, seg, {}, std::is_same_v<T, rhythm::bfloat16>);
  r.run();
  const naive_outputs o = r.outputs();
  const double tol = 1e-4;  // |naive - rhythm| <= tol * max(1, |rhythm|)
  const diff ds = compare(o.span, p.span, tol), dw = compare(o.waad, p.waad, tol), df = compare(o.fai, p.fai, tol);
  std::printf("  %-44s span %.1e  waad %.1e  fai %.1e  (max |naive - rhythm| / max(1, |rhythm|))\n", what, ds.max_rel,
              dw.max_rel, df.max_rel);
  if (!(ds.ok && dw.ok && df.ok)) {
    std::fprintf(stderr,
                 "rhythm_bench: the naive LibTorch path disagrees with rhythm::head_signals_from_qk beyond %.0e "
                 "(%s): span ok=%d, waad ok=%d, fai ok=%d; aborting\n",
                 tol, what, ds.ok, dw.ok, df.ok);
    std::exit(1);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Fresh-process VmHWM measurements.
template <class F>
std::int64_t vmhwm_delta(F&& call) {
  if (!reset_peak_rss()) return -1;
  const std::int64_t rss0 = proc_status_bytes("VmRSS");
  call();
  const std::int64_t hwm = proc_status_bytes("VmHWM");
  return rss0 < 0 || hwm < 0 ? -1 : hwm - rss0;
}

}  // namespace

void register_qk_benchmarks() {
  for (const std::int64_t n : kLengths) {
    const std::string sn = std::to_string(n);
    benchmark::RegisterBenchmark(("qk_f32/rhythm_par2/" + sn).c_str(), bm_rhythm_qk<float>, n)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond)
        ->MinTime(0.5)
        ->Repetitions(3);
    benchmark::RegisterBenchmark(("qk_f32/naive_torch/" + sn).c_str(), bm_naive_qk, n, false)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond)
        ->MinTime(0.5)
        ->Repetitions(3);
  }
  for (const auto& [name, isa] : {std::pair{"baseline", rhythm::cpu::kernel_isa::baseline},
                                  std::pair{"avx2", rhythm::cpu::kernel_isa::avx2},
                                  std::pair{"avx512", rhythm::cpu::kernel_isa::avx512}})
    for (const bool trainer : {false, true})
      benchmark::RegisterBenchmark((std::string(trainer ? "qk_f32_isa/trainer_shape/" : "qk_f32_isa/") + name +
                                    (trainer ? "" : "/" + std::to_string(kLengths.back())))
                                       .c_str(),
                                   bm_rhythm_qk_isa, kLengths.back(), isa, trainer)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond)
          ->MinTime(0.5)
          ->Repetitions(3);
  const std::string sn = std::to_string(kBf16Length);
  benchmark::RegisterBenchmark(("qk_bf16/rhythm_par2/" + sn).c_str(), bm_rhythm_qk<rhythm::bfloat16>, kBf16Length)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond)
      ->MinTime(0.5)
      ->Repetitions(3);
  benchmark::RegisterBenchmark(("qk_bf16/naive_torch/" + sn).c_str(), bm_naive_qk, kBf16Length, true)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond)
      ->MinTime(0.5)
      ->Repetitions(3);
}

void check_naive_against_rhythm() {
  const std::int64_t N = kCheckLength;
  std::printf("Correctness check of the naive LibTorch path against rhythm (N = %ld, tolerance 1e-4):\n",
              static_cast<long>(N));
  check_case<float>("f32, H = 8, Hkv = 8, segment {0, N/8, N}", 8, 8, N, bench_segment(N));
  check_case<float>("f32, H = 8, Hkv = 2, segment {16, 64, N - 6}", 8, 2, N, {16, 64, N - 6});
  check_case<rhythm::bfloat16>("bf16, H = 8, Hkv = 8, segment {0, N/8, N}", 8, 8, N, bench_segment(N));
}

void measure_memory_in_children(const char* self) {
  std::vector<std::pair<std::string, std::string>> specs;  // (table key, child spec)
  for (const std::int64_t n : kLengths)
    for (const char* path : {"rhythm", "naive"})
      specs.emplace_back(key(path, "f32", n), std::string(path) + ":f32:" + std::to_string(n));
  for (const char* path : {"rhythm", "naive"})
    specs.emplace_back(key(path, "bf16", kBf16Length), std::string(path) + ":bf16:" + std::to_string(kBf16Length));
  std::printf("Peak-RSS measurements, one fresh child process each:");
  std::fflush(stdout);
  for (const auto& [k, spec] : specs) {
    std::string cmd = "'";
    cmd.append(self).append("' --rhythm-child=").append(spec);
    std::int64_t bytes = -1;
    if (FILE* f = popen(cmd.c_str(), "r")) {
      char line[256];
      while (std::fgets(line, sizeof line, f)) {
        long long v;
        if (std::sscanf(line, "VMHWM_DELTA %lld", &v) == 1) bytes = v;
      }
      pclose(f);
    }
    memory_table()[k].vmhwm = bytes;
    std::printf(" %s", spec.c_str());
    std::fflush(stdout);
  }
  std::printf("\n");
}

int run_memory_child(const std::string& spec) {
  const auto c1 = spec.find(':'), c2 = spec.find(':', c1 + 1);
  if (c1 == std::string::npos || c2 == std::string::npos) return 2;
  const std::string path = spec.substr(0, c1), dtype = spec.substr(c1 + 1, c2 - c1 - 1);
  const std::int64_t n = std::stoll(spec.substr(c2 + 1));
  const bool bf16 = dtype == "bf16";
  torch_set_threads(kThreads);
  // Blocks of 64 KiB and more get their own fresh mapping, so that RSS sees them: otherwise glibc's dynamic
  // mmap threshold serves them from heap pages made resident (and freed) while building the inputs.
  mallopt(M_MMAP_THRESHOLD, 64 * 1024);
  constexpr std::int64_t warm_n = 128;
  std::int64_t delta = -1;
  if (path == "naive") {
    naive_runner warm(make_q(warm_n), make_k(warm_n), kBatch, kHeads, kHeads, warm_n, kHeadDim, bench_segment(warm_n),
                      {}, bf16);
    warm.run();
    naive_runner r(make_q(n), make_k(n), kBatch, kHeads, kHeads, n, kHeadDim, bench_segment(n), {}, bf16);
    delta = vmhwm_delta([&] { r.run(); });
  } else if (bf16) {
    qk_problem<rhythm::bfloat16> warm(make_q(warm_n), make_k(warm_n), kBatch, kHeads, kHeads, warm_n, kHeadDim,
                                      bench_segment(warm_n));
    warm.run(kThreads);
    qk_problem<rhythm::bfloat16> p(make_q(n), make_k(n), kBatch, kHeads, kHeads, n, kHeadDim, bench_segment(n));
    delta = vmhwm_delta([&] { p.run(kThreads); });
  } else {
    qk_problem<float> warm(make_q(warm_n), make_k(warm_n), kBatch, kHeads, kHeads, warm_n, kHeadDim,
                           bench_segment(warm_n));
    warm.run(kThreads);
    qk_problem<float> p(make_q(n), make_k(n), kBatch, kHeads, kHeads, n, kHeadDim, bench_segment(n));
    delta = vmhwm_delta([&] { p.run(kThreads); });
  }
  std::printf("VMHWM_DELTA %lld\n", static_cast<long long>(delta));
  return 0;
}

}  // namespace bench
