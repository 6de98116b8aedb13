#pragma once
// Shared helpers of the rhythm benchmark binary (rhythm_bench): problem sizes, input generators,
// byte counts, the allocation tracker and the results table that main.cpp prints as a summary.
// Nothing here includes LibTorch: torch lives in naive_torch.cpp only.
#include <atomic>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <rhythm/core/segments.hpp>
#include <rhythm/core/signal_types.hpp>

namespace bench {

// ---------------------------------------------------------------------------------------------------------------
// Problem sizes (one place, so RESULTS.md can quote them).
inline constexpr std::int64_t kBatch = 1;
inline constexpr std::int64_t kHeads = 8;    // maps heads, and Hq = Hkv of the Q/K problem
inline constexpr std::int64_t kHeadDim = 64;  // d of the Q/K problem
inline constexpr int kThreads = 2;            // exec::par{2}, torch::set_num_threads(2), read loop threads
inline const std::vector<std::int64_t> kLengths = {1024, 2048, 4096};
inline constexpr std::int64_t kBf16Length = 2048;  // the one N of the bf16 variant
inline constexpr std::int64_t kCheckLength = 256;  // N of the start-up correctness check

/// The segment every benchmark uses: whole sequence real, prompt = first N/8 tokens, response = the rest.
inline rhythm::segment bench_segment(std::int64_t n) { return {0, n / 8, n}; }

/// Elements the maps kernel reads for one head: sum over response rows t of (t - begin + 1).
inline std::int64_t lower_triangle_elements(const rhythm::segment& s) {
  std::int64_t e = 0;
  for (std::int64_t t = s.response_begin; t < s.end; ++t) e += t - s.begin + 1;
  return e;
}

// ---------------------------------------------------------------------------------------------------------------
// Deterministic inputs.
struct splitmix64 {
  std::uint64_t x;
  std::uint64_t next() {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  /// Uniform in (0, 1].
  float uniform() { return static_cast<float>((next() >> 40) + 1) * (1.0f / 16777216.0f); }
  /// Standard normal (Box-Muller).
  float normal() {
    const float u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853071795864f * u2);
  }
};

/// Random causal row-stochastic maps [B, H, N, N]: row t holds positive weights on keys [0, t] summing
/// to 1, zeros above the diagonal.
inline std::vector<float> random_causal_maps(std::int64_t B, std::int64_t H, std::int64_t N, std::uint64_t seed) {
  std::vector<float> m(static_cast<std::size_t>(B * H * N * N), 0.0f);
  splitmix64 rng{seed};
  for (std::int64_t bh = 0; bh < B * H; ++bh)
    for (std::int64_t t = 0; t < N; ++t) {
      float* row = m.data() + (bh * N + t) * N;
      double sum = 0;
      for (std::int64_t s = 0; s <= t; ++s) sum += row[s] = rng.uniform();
      const float inv = static_cast<float>(1.0 / sum);
      for (std::int64_t s = 0; s <= t; ++s) row[s] *= inv;
    }
  return m;
}

/// Standard-normal values (Q or K), `count` of them.
inline std::vector<float> random_normal(std::size_t count, std::uint64_t seed) {
  std::vector<float> v(count);
  splitmix64 rng{seed};
  for (auto& x : v) x = rng.normal();
  return v;
}

// ---------------------------------------------------------------------------------------------------------------
// Allocation tracker (defined in main.cpp). Counts the bytes live through the replaced global operator
// new/delete (malloc_usable_size of each block) and, while a window is open in naive_torch.cpp, the
// tensor storage LibTorch's CPU allocator reports to its memory profiler hook. peak is the highest
// live value since the last reset_peak().
struct alloc_tracker {
  std::atomic<std::int64_t> live{0};
  std::atomic<std::int64_t> peak{0};
  void add(std::int64_t bytes) {
    const std::int64_t now = live.fetch_add(bytes, std::memory_order_relaxed) + bytes;
    std::int64_t p = peak.load(std::memory_order_relaxed);
    while (now > p && !peak.compare_exchange_weak(p, now, std::memory_order_relaxed)) {
    }
  }
  /// Starts a window: returns the live bytes now; peak() - that is the window's peak extra memory.
  std::int64_t reset_peak() {
    const std::int64_t now = live.load(std::memory_order_relaxed);
    peak.store(now, std::memory_order_relaxed);
    return now;
  }
};
alloc_tracker& tracker();

// ---------------------------------------------------------------------------------------------------------------
// Peak-RSS helpers (Linux): VmRSS / VmHWM of this process in bytes, and a reset of VmHWM to VmRSS
// (writing "5" to /proc/self/clear_refs; Linux >= 4.0).
std::int64_t proc_status_bytes(const char* key);
bool reset_peak_rss();

// ---------------------------------------------------------------------------------------------------------------
// Results shared between the benchmarks and the summary printed by main.cpp. Keys are free-form
// strings such as "qk/rhythm/f32/4096".
struct memory_figures {
  std::int64_t tracked = -1;   // peak extra bytes, allocation tracker (in process, after one warm-up call)
  std::int64_t vmhwm = -1;     // VmHWM - VmRSS around one call in a fresh child process
  std::int64_t analytic = -1;  // bytes the implementation allocates, from its source (rhythm only)
};
std::map<std::string, memory_figures>& memory_table();

/// Registration functions of each benchmark file.
void register_maps_benchmarks();
void register_qk_benchmarks();
void register_pipeline_benchmarks();
/// Frees the maps benchmarks' cached map (called before the Q/K benchmarks).
void release_maps();
/// Start-up check of the naive LibTorch path against rhythm (aborts on disagreement).
void check_naive_against_rhythm();
/// Runs the fresh-process VmHWM measurements (re-executing this binary) and fills memory_table().
void measure_memory_in_children(const char* self);
/// Child mode: `spec` is "<rhythm|naive>:<f32|bf16>:<N>"; prints "VMHWM_DELTA <bytes>" and returns 0.
int run_memory_child(const std::string& spec);

}  // namespace bench
