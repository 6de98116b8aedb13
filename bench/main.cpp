// rhythm_bench: custom main. Checks the baseline, measures peak memory in child processes, runs every
// benchmark with a reporter that also collects the results, then prints the ratio tables from that same run.
//
//   rhythm_bench [google-benchmark flags]      the whole suite (about two minutes on 2 cores)
//   rhythm_bench --rhythm-skip-children ...    without the fresh-process VmHWM measurements
//   rhythm_bench --rhythm-child=<spec>         internal: one VmHWM measurement (see bench_qk.cpp)
#include <benchmark/benchmark.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include <rhythm/version.hpp>

#include "common.hpp"
#include "naive_torch.hpp"

// ---------------------------------------------------------------------------------------------------------------
// Allocation tracking: every operator new / delete of the process (rhythm's std::vectors, LibTorch's small
// objects) goes through these replacements and updates bench::tracker() by the block's usable size.
namespace {
void* tracked_alloc(std::size_t n, std::size_t align) {
  void* p = align <= alignof(std::max_align_t) ? std::malloc(n ? n : 1)
                                               : std::aligned_alloc(align, (std::max<std::size_t>(n, 1) + align - 1) / align * align);
  if (p) bench::tracker().add(static_cast<std::int64_t>(malloc_usable_size(p)));
  return p;
}
void tracked_free(void* p) noexcept {
  if (!p) return;
  bench::tracker().add(-static_cast<std::int64_t>(malloc_usable_size(p)));
  std::free(p);
}
void* tracked_alloc_or_throw(std::size_t n, std::size_t align) {
  if (void* p = tracked_alloc(n, align)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t n) { return tracked_alloc_or_throw(n, 0); }
void* operator new[](std::size_t n) { return tracked_alloc_or_throw(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return tracked_alloc_or_throw(n, static_cast<std::size_t>(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return tracked_alloc_or_throw(n, static_cast<std::size_t>(a)); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return tracked_alloc(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return tracked_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return tracked_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return tracked_alloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { tracked_free(p); }
void operator delete[](void* p) noexcept { tracked_free(p); }
void operator delete(void* p, std::size_t) noexcept { tracked_free(p); }
void operator delete[](void* p, std::size_t) noexcept { tracked_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { tracked_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { tracked_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { tracked_free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { tracked_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { tracked_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { tracked_free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { tracked_free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { tracked_free(p); }

namespace bench {

alloc_tracker& tracker() {
  static alloc_tracker t;  // constant-initialised: usable from static initialisers
  return t;
}

std::int64_t proc_status_bytes(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::size_t len = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, len, key) == 0 && line.size() > len && line[len] == ':')
      return std::atoll(line.c_str() + len + 1) * 1024;  // "VmHWM:   1234 kB"
  return -1;
}

bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

std::map<std::string, memory_figures>& memory_table() {
  static std::map<std::string, memory_figures> t;
  return t;
}

namespace {

// ---------------------------------------------------------------------------------------------------------------
// A console reporter that also keeps, per benchmark name, the seconds per iteration of every repetition.
class collecting_reporter : public benchmark::ConsoleReporter {
 public:
  explicit collecting_reporter(bool color) : ConsoleReporter(color ? OO_ColorTabular : OO_Tabular) {}
  std::map<std::string, std::vector<double>> seconds;  // name -> seconds per call, one entry per repetition
  std::map<std::string, double> bytes_per_call;

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      if (r.error_occurred || r.iterations <= 0) continue;
      const std::string name = r.run_name.function_name;  // as registered, without the /min_time... suffixes
      const bool aggregate = r.run_type == Run::RT_Aggregate;
      if (aggregate && !(r.aggregate_name == "median" && !seconds.count(name))) continue;
      seconds[name].push_back(r.real_accumulated_time / static_cast<double>(r.iterations));
      if (auto it = r.counters.find("bytes_per_call"); it != r.counters.end()) bytes_per_call[name] = it->second.value;
    }
    ConsoleReporter::ReportRuns(runs);
  }

  /// Median seconds per call of a benchmark, or a negative value if it did not run.
  double median(const std::string& name) const {
    auto it = seconds.find(name);
    if (it == seconds.end() || it->second.empty()) return -1;
    std::vector<double> v = it->second;
    std::sort(v.begin(), v.end());
    const std::size_t m = v.size() / 2;
    return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
  }
};

std::string fmt(const char* f, double v) {
  if (!(v >= 0)) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

constexpr std::int64_t kVmhwmResolution = 2 * 32 * 4096;  // 2 CPUs x 32 pages

std::string mib(std::int64_t b) { return b < 0 ? "-" : fmt(b < 10 * 1048576 ? "%.3f" : "%.1f", b / 1048576.0); }

void print_summary(const collecting_reporter& rep) {
  std::printf("\n=== Summary (medians of 3 repetitions, all from this run) ===\n");
  std::printf("\nMaps path, float [1, 8, N, N], segment {0, N/8, N}: GB/s = 1e9 bytes/s of the elements read\n");
  std::printf("| N | MB read/call | rhythm seq GB/s | read loop 1t GB/s | seq share | rhythm par2 GB/s | read loop 2t GB/s | "
              "par2 share |\n|---|---|---|---|---|---|---|---|\n");
  for (const std::int64_t n : kLengths) {
    const std::string sn = std::to_string(n);
    const double bytes = 4.0 * kBatch * kHeads * lower_triangle_elements(bench_segment(n));
    auto gbs = [&](const std::string& name) {
      const double s = rep.median(name);
      return s > 0 ? bytes / s * 1e-9 : -1.0;
    };
    const double s1 = gbs("maps_f32/rhythm_seq/" + sn), r1 = gbs("maps_f32/readloop_1t/" + sn);
    const double s2 = gbs("maps_f32/rhythm_par2/" + sn), r2 = gbs("maps_f32/readloop_2t/" + sn);
    std::printf("| %ld | %.1f | %s | %s | %s | %s | %s | %s |\n", static_cast<long>(n), bytes * 1e-6,
                fmt("%.2f", s1).c_str(), fmt("%.2f", r1).c_str(), fmt("%.0f %%", s1 > 0 && r1 > 0 ? 100 * s1 / r1 : -1).c_str(),
                fmt("%.2f", s2).c_str(), fmt("%.2f", r2).c_str(), fmt("%.0f %%", s2 > 0 && r2 > 0 ? 100 * s2 / r2 : -1).c_str());
  }

  std::printf("\nQ/K path: rhythm head_signals_from_qk exec::par{2} vs naive LibTorch (2 threads), Q, K [1, 8, N, 64], "
              "segment {0, N/8, N}\n");
  std::printf("Memory = peak extra bytes of one call, MiB: tracked = operator new + torch tensor storage, in process; "
              "vmhwm = VmHWM - VmRSS in a fresh child (resolution ~0.25 MiB)\n");
  std::printf("| dtype | N | rhythm ms | naive ms | time rhythm/naive | rhythm MiB tracked | naive MiB tracked | "
              "mem rhythm/naive tracked | rhythm MiB vmhwm | naive MiB vmhwm | mem rhythm/naive vmhwm | rhythm MiB analytic |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  auto row = [&](const char* dtype, std::int64_t n) {
    const std::string sn = std::to_string(n), dt = dtype;
    const double tr = rep.median("qk_" + dt + "/rhythm_par2/" + sn), tn = rep.median("qk_" + dt + "/naive_torch/" + sn);
    const auto& tab = memory_table();
    const auto get = [&](const char* path) {
      auto it = tab.find(std::string("qk/") + path + "/" + dt + "/" + sn);
      return it == tab.end() ? memory_figures{} : it->second;
    };
    const memory_figures mr = get("rhythm"), mn = get("naive");
    auto ratio = [](double a, double b) { return a > 0 && b > 0 ? a / b : -1.0; };
    // VmHWM moves in steps of the kernel's per-CPU RSS batches (32 pages per CPU): below kVmhwmResolution a
    // figure only bounds the peak, and the ratio is printed as a bound.
    const bool below = mr.vmhwm >= 0 && mr.vmhwm < kVmhwmResolution;
    const double vm_ratio = ratio(static_cast<double>(below ? kVmhwmResolution : mr.vmhwm), static_cast<double>(mn.vmhwm));
    std::printf("| %s | %ld | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", dtype, static_cast<long>(n),
                fmt("%.1f", tr * 1e3).c_str(), fmt("%.1f", tn * 1e3).c_str(), fmt("%.3f", ratio(tr, tn)).c_str(),
                mib(mr.tracked).c_str(), mib(mn.tracked).c_str(),
                fmt("%.2e", ratio(static_cast<double>(mr.tracked), static_cast<double>(mn.tracked))).c_str(),
                (below ? std::string("<").append(mib(kVmhwmResolution)) : mib(mr.vmhwm)).c_str(), mib(mn.vmhwm).c_str(),
                std::string(below && vm_ratio > 0 ? "<" : "").append(fmt("%.2e", vm_ratio)).c_str(),
                mib(mr.analytic).c_str());
  };
  for (const std::int64_t n : kLengths) row("f32", n);
  row("bf16", kBf16Length);

  std::printf("\nTokens and credit (token_sets, grpo_advantages, shaping_factors coupled_rhythm, shaped_advantages), "
              "exec::par{2}, 512 responses x 1024 tokens; pipeline = credit_pipeline::run_from_qk vs the signals stage "
              "alone, Q, K [8, 8, 1024, 64]\n");
  const double tc = rep.median("tokens_credit/rhythm_par2/512x1024");
  const double sig = rep.median("pipeline/signals_only/1024"), pipe = rep.median("pipeline/run_from_qk/1024");
  std::printf("| tokens+credit ms | M tokens/s | signals ms | pipeline ms | outside signals / signals |\n"
              "|---|---|---|---|---|\n| %s | %s | %s | %s | %s |\n",
              fmt("%.1f", tc * 1e3).c_str(), fmt("%.1f", tc > 0 ? 512.0 * 1024.0 / tc * 1e-6 : -1).c_str(),
              fmt("%.1f", sig * 1e3).c_str(), fmt("%.1f", pipe * 1e3).c_str(),
              fmt("%.1f %%", sig > 0 && pipe > 0 ? 100.0 * (pipe - sig) / sig : -1).c_str());
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  // Our own flags first (google benchmark rejects unknown ones).
  bool children = true;
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--rhythm-child=", 0) == 0) return bench::run_memory_child(a.substr(std::strlen("--rhythm-child=")));
    if (a == "--rhythm-skip-children") {
      children = false;
      continue;
    }
    args.push_back(argv[i]);
  }
  int n_args = static_cast<int>(args.size());
  benchmark::Initialize(&n_args, args.data());
  if (benchmark::ReportUnrecognizedArguments(n_args, args.data())) return 1;

  bench::torch_set_threads(bench::kThreads);
  const double gflops = bench::torch_matmul_gflops();
  std::printf("rhythm %d.%d.%d, LibTorch %s (%d threads), hardware threads %u\n", RHYTHM_VERSION_MAJOR,
              RHYTHM_VERSION_MINOR, RHYTHM_VERSION_PATCH,
              bench::torch_version_string().c_str(), bench::torch_get_threads(), std::thread::hardware_concurrency());
  std::printf("BLAS check: 512 x 512 float matmul through LibTorch: %.1f GFLOP/s%s\n", gflops,
              gflops < 20 ? "  WARNING: looks like the reference BLAS; apt-get install libopenblas0-pthread" : "");
  bench::check_naive_against_rhythm();
  if (children) {
    // popen runs through /bin/sh, where /proc/self/exe is the shell: resolve our own path first.
    char self[4096];
    const ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    self[len > 0 ? len : 0] = '\0';
    bench::measure_memory_in_children(len > 0 ? self : argv[0]);
  }

  bench::register_maps_benchmarks();
  bench::register_qk_benchmarks();
  bench::register_pipeline_benchmarks();
  bench::collecting_reporter reporter(isatty(fileno(stdout)) != 0);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  bench::print_summary(reporter);
  benchmark::Shutdown();
  return 0;
}
