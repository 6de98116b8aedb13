// The CUDA benchmark of rhythm (DESIGN §5), standalone: CUDA events, no Google Benchmark.
//
//   maps      head_signals_from_maps in GB/s of the elements it reads (the lower triangle of the
//             response rows, counted exactly from the segments) next to two read-only kernels over
//             the same bytes: `rows` reads exactly those elements, `flat` the same byte count
//             contiguously; ratio and share of the GPU's nominal bandwidth
//   qk        head_signals_from_qk, bf16, B = 1, Hq = 32, Hkv in {32, 8}, d = 128, segment {0, 256, N},
//             N in {4096 .. 32768}, H_hi in {100, unbounded}: time, workspace bytes, pass-1 TFLOP/s
//   float     the float path at N = 32768: whether it runs, and its time
//   pipeline  rhythm::cuda::credit_pipeline against the signals stage alone, B = 128, H = 20, N = 512, d = 64
//
// Every time is the median of 10 calls after 3 warm-ups (3 after 1 when a call takes over 0.5 s),
// each timed call queued behind a 2 ms spin kernel so that host-side launch latency is not counted;
// the pipeline also reports host wall time (call + stream synchronisation). Prints markdown tables
// and writes JSON after every part (a crash keeps the parts before it).
//
//   nvcc -std=c++20 -O3 -gencode arch=compute_90a,code=sm_90a -Iinclude bench/cuda/bench_cuda.cu -o bench_cuda
//   ./bench_cuda out.json [--parts maps,qk,float,pipeline] [--lengths 4096,8192] [--max-seconds 120]
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <rhythm/rhythm.hpp>
#include <rhythm/cuda/runtime.cuh>

#include <rhythm/cuda.cuh>

namespace bench_cuda {

using rhythm::cuda::detail::check_cuda;
using rhythm::cuda::detail::check_launch;
using std::int64_t;

// ---------------------------------------------------------------------------------------------------------------
// JSON: an ordered value, enough for the report (objects, arrays, numbers, strings, booleans, null).

class json {
 public:
  json() : kind_(kind::null) {}
  json(std::nullptr_t) : kind_(kind::null) {}
  json(bool b) : kind_(kind::literal), text_(b ? "true" : "false") {}
  json(double x) : kind_(std::isfinite(x) ? kind::literal : kind::null) {
    if (std::isfinite(x)) {
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "%.9g", x);
      text_ = buffer;
    }
  }
  json(int x) : kind_(kind::literal), text_(std::to_string(x)) {}
  json(int64_t x) : kind_(kind::literal), text_(std::to_string(x)) {}
  json(std::size_t x) : kind_(kind::literal), text_(std::to_string(x)) {}
  json(const std::string& s) : kind_(kind::string), text_(s) {}
  json(const char* s) : kind_(kind::string), text_(s) {}

  static json object() { return json(kind::object); }
  static json array() { return json(kind::array); }

  json& set(const std::string& key, json value) {
    for (auto& [k, v] : items_)
      if (k == key) return v = std::move(value), *this;
    items_.emplace_back(key, std::move(value));
    return *this;
  }
  json& push(json value) { return items_.emplace_back(std::string(), std::move(value)), *this; }
  bool has(const std::string& key) const {
    return std::any_of(items_.begin(), items_.end(), [&](const auto& item) { return item.first == key; });
  }

  std::string dump(int indent = 0) const {
    std::string out;
    write(out, indent);
    return out;
  }

 private:
  enum class kind { null, literal, string, object, array };
  explicit json(kind k) : kind_(k) {}

  static void quote(std::string& out, const std::string& s) {
    out += '"';
    for (const unsigned char c : s) {
      if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
      else if (c == '\n') out += "\\n";
      else if (c < 0x20) {
        char buffer[8];
        std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
        out += buffer;
      } else out += static_cast<char>(c);
    }
    out += '"';
  }

  void write(std::string& out, int indent) const {
    const std::string pad(static_cast<std::size_t>(indent + 2), ' '), close(static_cast<std::size_t>(indent), ' ');
    switch (kind_) {
      case kind::null: out += "null"; return;
      case kind::literal: out += text_; return;
      case kind::string: quote(out, text_); return;
      case kind::object:
      case kind::array: {
        const bool object = kind_ == kind::object;
        out += object ? "{" : "[";
        for (std::size_t i = 0; i < items_.size(); ++i) {
          out += i ? ",\n" : "\n";
          out += pad;
          if (object) quote(out, items_[i].first), out += ": ";
          items_[i].second.write(out, indent + 2);
        }
        if (!items_.empty()) out += "\n" + close;
        out += object ? "}" : "]";
      }
    }
  }

  kind kind_;
  std::string text_;
  std::vector<std::pair<std::string, json>> items_;
};

// ---------------------------------------------------------------------------------------------------------------
// Device memory and inputs.

/// Owning device array of `count` T (cudaMalloc; the benchmark program's own buffers).
template <class T>
class device_array {
 public:
  explicit device_array(int64_t count) : count_(count) {
    if (count > 0) check_cuda(cudaMalloc(&data_, bytes()), "cudaMalloc");
  }
  device_array(const std::vector<T>& host) : device_array(static_cast<int64_t>(host.size())) {
    if (count_ > 0) check_cuda(cudaMemcpy(data_, host.data(), bytes(), cudaMemcpyHostToDevice), "cudaMemcpy");
  }
  device_array(const device_array&) = delete;
  device_array& operator=(const device_array&) = delete;
  ~device_array() {
    if (data_) cudaFree(data_);
  }
  T* get() const { return data_; }
  int64_t size() const { return count_; }
  std::size_t bytes() const { return static_cast<std::size_t>(count_) * sizeof(T); }
  std::vector<T> download() const {
    std::vector<T> host(static_cast<std::size_t>(count_));
    if (count_ > 0) check_cuda(cudaMemcpy(host.data(), data_, bytes(), cudaMemcpyDeviceToHost), "cudaMemcpy");
    return host;
  }

 private:
  T* data_ = nullptr;
  int64_t count_ = 0;
};

/// Uniform in [0, 1) from a counter (splitmix64 finaliser), the same on host and device.
__host__ __device__ inline float hash_uniform(std::uint64_t i, std::uint64_t seed) {
  std::uint64_t z = i + seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f);
}

/// x[i] = uniform in [lo, hi), rounded to T.
template <class T>
__global__ void fill_uniform(T* x, int64_t count, std::uint64_t seed, float lo, float hi) {
  for (int64_t i = rhythm::cuda::detail::thread_index(); i < count; i += rhythm::cuda::detail::thread_count())
    x[i] = static_cast<T>(lo + (hi - lo) * hash_uniform(static_cast<std::uint64_t>(i), seed));
}

/// Causal maps [B, H, N, N], row-major: row t of sequence b holds positive weights of mean
/// 1 / (t - begin + 1) on keys [begin, t] for t in [begin, end) (rows sum to about 1), 0 elsewhere.
template <class T>
__global__ void fill_causal_maps(T* maps, const rhythm::segment* segments, int64_t H, int64_t N, int64_t count,
                                 std::uint64_t seed) {
  for (int64_t i = rhythm::cuda::detail::thread_index(); i < count; i += rhythm::cuda::detail::thread_count()) {
    const int64_t s = i % N, t = (i / N) % N, b = i / (N * N * H);
    const rhythm::segment g = segments[b];
    const bool inside = t >= g.begin && t < g.end && s >= g.begin && s <= t;
    const float weight = 2.0f * hash_uniform(static_cast<std::uint64_t>(i), seed) / static_cast<float>(t - g.begin + 1);
    maps[i] = static_cast<T>(inside ? weight : 0.0f);
  }
}

template <class T>
void fill(device_array<T>& x, std::uint64_t seed, float lo, float hi) {
  fill_uniform<<<rhythm::cuda::detail::blocks_for(x.size()), 256>>>(x.get(), x.size(), seed, lo, hi);
  check_launch("fill_uniform");
}

/// Waits for every input upload and fill: they run on the legacy stream (and a pageable cudaMemcpy
/// may return before its DMA ends), the timed calls on a non-blocking stream.
inline void settle() { check_cuda(cudaDeviceSynchronize(), "cudaDeviceSynchronize (inputs)"); }

// ---------------------------------------------------------------------------------------------------------------
// Timing.

/// Busy-waits `ns` nanoseconds on the GPU: queued before a timed call, it lets the host queue the
/// whole call before the GPU reaches it, so the events measure GPU time, not launch latency.
__global__ void spin_for(unsigned long long ns) {
  unsigned long long start = 0, now = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  do asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  while (now - start < ns);
}

struct timing {
  double median_ms = 0, min_ms = 0, max_ms = 0, wall_median_ms = -1;
  int warmups = 0, reps = 0;

  json to_json() const {
    json j = json::object();
    j.set("median_ms", median_ms).set("min_ms", min_ms).set("max_ms", max_ms).set("warmups", warmups).set("reps", reps);
    if (wall_median_ms >= 0) j.set("wall_median_ms", wall_median_ms);
    return j;
  }
};

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0.0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

using host_clock = std::chrono::steady_clock;
inline double ms_since(host_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(host_clock::now() - t0).count();
}

/// Times `call` (which queues work on `stream`): 3 warm-ups and the median of 10 event-timed calls,
/// or 2 and 3 when the second warm-up (the first one loads the kernels) takes over 0.5 s; with
/// `wall`, also the median host time of call + synchronisation.
template <class Call>
timing time_calls(cudaStream_t stream, Call&& call, bool wall = false) {
  timing r;
  call();
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize (warm-up)");
  auto t0 = host_clock::now();
  call();
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize (warm-up)");
  const bool slow = ms_since(t0) > 500.0;
  r.warmups = slow ? 2 : 3;
  r.reps = slow ? 3 : 10;
  for (int i = 2; i < r.warmups; ++i) call();
  check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize (warm-up)");

  cudaEvent_t begin = nullptr, end = nullptr;
  check_cuda(cudaEventCreate(&begin), "cudaEventCreate");
  check_cuda(cudaEventCreate(&end), "cudaEventCreate");
  std::vector<double> times;
  for (int i = 0; i < r.reps; ++i) {
    spin_for<<<1, 1, 0, stream>>>(2'000'000ull);
    check_launch("spin_for");
    check_cuda(cudaEventRecord(begin, stream), "cudaEventRecord");
    call();
    check_cuda(cudaEventRecord(end, stream), "cudaEventRecord");
    check_cuda(cudaEventSynchronize(end), "cudaEventSynchronize");
    float ms = 0;
    check_cuda(cudaEventElapsedTime(&ms, begin, end), "cudaEventElapsedTime");
    times.push_back(ms);
  }
  cudaEventDestroy(begin);
  cudaEventDestroy(end);
  r.median_ms = median(times);
  r.min_ms = *std::min_element(times.begin(), times.end());
  r.max_ms = *std::max_element(times.begin(), times.end());
  if (wall) {
    std::vector<double> walls;
    for (int i = 0; i < r.reps; ++i) {
      t0 = host_clock::now();
      call();
      check_cuda(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
      walls.push_back(ms_since(t0));
    }
    r.wall_median_ms = median(walls);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------------------------
// The machine.

struct machine {
  cudaDeviceProp props{};
  int driver = 0, runtime = 0, memory_clock_khz = 0, bus_width_bits = 0;
  double nominal_bandwidth = 0;  ///< bytes/s
  std::string nominal_source;
};

/// Nominal HBM bandwidth: the vendor figure for known parts, else 2 x memory clock x bus width.
inline machine describe_machine() {
  machine m;
  int device = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaGetDeviceProperties(&m.props, device), "cudaGetDeviceProperties");
  check_cuda(cudaDriverGetVersion(&m.driver), "cudaDriverGetVersion");
  check_cuda(cudaRuntimeGetVersion(&m.runtime), "cudaRuntimeGetVersion");
  cudaDeviceGetAttribute(&m.memory_clock_khz, cudaDevAttrMemoryClockRate, device);
  cudaDeviceGetAttribute(&m.bus_width_bits, cudaDevAttrGlobalMemoryBusWidth, device);
  const std::string name = m.props.name;
  const auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("H200")) m.nominal_bandwidth = 4.8e12, m.nominal_source = "vendor: H200 4.8 TB/s";
  else if (has("H100") && has("PCIe")) m.nominal_bandwidth = 2.0e12, m.nominal_source = "vendor: H100 PCIe 2.0 TB/s";
  else if (has("H100")) m.nominal_bandwidth = 3.35e12, m.nominal_source = "vendor: H100 SXM 3.35 TB/s";
  else {
    m.nominal_bandwidth = 2.0 * m.memory_clock_khz * 1e3 * m.bus_width_bits / 8.0;
    m.nominal_source = "2 x memory clock x bus width";
  }
  return m;
}

inline std::string version_string(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

inline json machine_json(const machine& m) {
  json j = json::object();
  j.set("gpu", std::string(m.props.name))
      .set("compute_capability", std::to_string(m.props.major) + "." + std::to_string(m.props.minor))
      .set("sm_count", m.props.multiProcessorCount)
      .set("global_memory_bytes", m.props.totalGlobalMem)
      .set("l2_cache_bytes", m.props.l2CacheSize)
      .set("memory_clock_khz", m.memory_clock_khz)
      .set("memory_bus_width_bits", m.bus_width_bits)
      .set("nominal_bandwidth_bytes_per_s", m.nominal_bandwidth)
      .set("nominal_bandwidth_source", m.nominal_source)
      .set("driver_version", version_string(m.driver))
      .set("runtime_version", version_string(m.runtime))
      .set("driver_version_raw", m.driver)
      .set("runtime_version_raw", m.runtime);
  return j;
}

// ---------------------------------------------------------------------------------------------------------------
// Shared problem pieces.

template <class T, std::size_t R>
using device_view = rhythm::view<T, R, rhythm::device_space>;

/// A CUDA policy over a workspace of `bytes` and a zeroed status, on `stream`.
struct cuda_call {
  device_array<std::byte> workspace;
  device_array<rhythm::value_error> status{1};
  rhythm::exec::cuda policy;

  cuda_call(std::size_t bytes, cudaStream_t stream)
      // cudaMalloc returns 256-byte aligned memory, as exec::cuda asks
      : workspace(static_cast<int64_t>(std::max<std::size_t>(bytes, 1))),
        policy{stream, device_view<std::byte, 1>(workspace.get(), {static_cast<int64_t>(bytes)}), status.get()} {
    rhythm::cuda::clear_status(policy);
  }
};

/// Elements head_signals_from_maps reads per head: sum over sequences and response rows t of (t - begin + 1).
inline int64_t lower_triangle_elements(const std::vector<rhythm::segment>& segments) {
  int64_t e = 0;
  for (const auto& s : segments)
    for (int64_t t = s.response_begin; t < s.end; ++t) e += t - s.begin + 1;
  return e;
}

/// Signal outputs span [B, H], waad and fai [B, H, N] on the device.
struct signal_outputs {
  device_array<float> span, waad, fai;
  signal_outputs(int64_t B, int64_t H, int64_t N) : span(B * H), waad(B * H * N), fai(B * H * N) {}
  device_view<float, 2> span_view(int64_t B, int64_t H) const { return {span.get(), {B, H}}; }
  device_view<float, 3> waad_view(int64_t B, int64_t H, int64_t N) const { return {waad.get(), {B, H, N}}; }
  device_view<float, 3> fai_view(int64_t B, int64_t H, int64_t N) const { return {fai.get(), {B, H, N}}; }
  std::size_t bytes() const { return span.bytes() + waad.bytes() + fai.bytes(); }
  /// True if every span is finite and at least one is positive (a cheap sanity check, not a test).
  bool plausible() const {
    const auto host = span.download();
    bool positive = false;
    for (float x : host) {
      if (!std::isfinite(x)) return false;
      positive = positive || x > 0;
    }
    return positive;
  }
};

inline std::string error_text(const std::exception& e) {
  if (const auto* r = dynamic_cast<const rhythm::error*>(&e))
    return std::string("rhythm::error(") + rhythm::to_string(r->code()) + "): " + r->what();
  return e.what();
}

/// Runs one part of the benchmark; an exception becomes {"error": ...} and the program goes on.
inline json guarded(const char* part, const std::function<json()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::printf("%s: failed: %s\n", part, error_text(e).c_str());
    json j = json::object();
    j.set("error", error_text(e));
    if (cudaGetLastError() != cudaSuccess) j.set("cuda_error_cleared", true);
    return j;
  }
}

struct options {
  std::string json_path = "bench_cuda.json";
  std::set<std::string> parts = {"maps", "qk", "float", "pipeline"};
  std::vector<int64_t> lengths = {4096, 8192, 16384, 32768};
  double max_seconds = 120;  ///< Q/K configurations that would start after this are skipped
};

// ---------------------------------------------------------------------------------------------------------------
// Maps path against the read kernels.

/// Reads exactly the elements head_signals_from_maps reads: row t in R of every (sequence, head),
/// keys [begin, t]; 16-byte loads in the aligned middle of each row. One block per row:
/// grid (max response length, B * H).
template <std::size_t ElementBytes>
__global__ void read_rows(const std::byte* maps, const rhythm::segment* segments, int64_t H, int64_t N,
                          unsigned* sink) {
  const int64_t bh = blockIdx.y, b = bh / H;
  const rhythm::segment s = segments[b];
  const int64_t t = s.response_begin + blockIdx.x;
  if (t >= s.end) return;
  const std::byte* first = maps + ((bh * N + t) * N + s.begin) * static_cast<int64_t>(ElementBytes);
  const std::byte* last = maps + ((bh * N + t) * N + t + 1) * static_cast<int64_t>(ElementBytes);
  // [first, middle): bytes up to the first 16-byte boundary; [middle, tail): 16-byte vectors; [tail, last): the rest
  const std::uintptr_t lo = reinterpret_cast<std::uintptr_t>(first), hi = reinterpret_cast<std::uintptr_t>(last);
  const std::uintptr_t up = (lo + 15) & ~std::uintptr_t{15}, down = hi & ~std::uintptr_t{15};
  const std::byte* middle = first + ((up < hi ? up : hi) - lo);
  const std::byte* tail = first + ((down > up ? down : (up < hi ? up : hi)) - lo);
  unsigned acc = 0;
  for (const std::byte* p = first + threadIdx.x; p < middle; p += blockDim.x) acc ^= static_cast<unsigned>(*p);
  const uint4* vectors = reinterpret_cast<const uint4*>(middle);
  const int64_t count = (tail - middle) / 16;
#pragma unroll 4
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const uint4 v = __ldg(vectors + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  for (const std::byte* p = tail + threadIdx.x; p < last; p += blockDim.x) acc ^= static_cast<unsigned>(*p);
  if (acc == 0x9e3779b9u) *sink = acc;  // practically never: keeps the loads alive
}

/// Reads `count` 16-byte vectors contiguously (grid-stride, 4 independent loads per step).
__global__ void read_flat(const uint4* data, int64_t count, unsigned* sink) {
  unsigned acc = 0;
  const int64_t stride = rhythm::cuda::detail::thread_count();
  int64_t i = rhythm::cuda::detail::thread_index();
  for (; i + 3 * stride < count; i += 4 * stride) {
    const uint4 a = __ldg(data + i), b = __ldg(data + i + stride), c = __ldg(data + i + 2 * stride),
                d = __ldg(data + i + 3 * stride);
    acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b.x ^ b.y ^ b.z ^ b.w ^ c.x ^ c.y ^ c.z ^ c.w ^ d.x ^ d.y ^ d.z ^ d.w;
  }
  for (; i < count; i += stride) {
    const uint4 a = __ldg(data + i);
    acc ^= a.x ^ a.y ^ a.z ^ a.w;
  }
  if (acc == 0x9e3779b9u) *sink = acc;
}

/// The maps problem: B = 2 sequences (one with left and right padding), H heads, length N.
inline std::vector<rhythm::segment> maps_segments(int64_t N) {
  return {{0, 256, N}, {1024, 1536, N - 512}};
}

template <class T>
json bench_maps_dtype(const char* dtype, int64_t H, int64_t N, const machine& m, cudaStream_t stream) {
  const auto segments_host = maps_segments(N);
  const int64_t B = static_cast<int64_t>(segments_host.size());
  const int64_t elements = H * lower_triangle_elements(segments_host);
  const double bytes = static_cast<double>(elements) * sizeof(T);
  device_array<rhythm::segment> segments(segments_host);
  device_array<T> maps(B * H * N * N);
  fill_causal_maps<<<rhythm::cuda::detail::blocks_for(maps.size()), 256>>>(maps.get(), segments.get(), H, N,
                                                                            maps.size(), 7);
  check_launch("fill_causal_maps");
  device_array<unsigned> sink(1);
  settle();

  json j = json::object();
  j.set("dtype", dtype).set("B", B).set("H", H).set("N", N);
  json segs = json::array();
  for (const auto& s : segments_host) {
    json one = json::array();
    one.push(s.begin).push(s.response_begin).push(s.end);
    segs.push(one);
  }
  j.set("segments", segs).set("elements_read", elements).set("bytes_read", bytes);

  // The read-only kernels over the same bytes.
  const unsigned row_blocks = static_cast<unsigned>(N);  // >= the longest response
  const timing rows = time_calls(stream, [&] {
    read_rows<sizeof(T)><<<dim3(row_blocks, static_cast<unsigned>(B * H)), 256, 0, stream>>>(
        reinterpret_cast<const std::byte*>(maps.get()), segments.get(), H, N, sink.get());
    check_launch("read_rows");
  });
  const int64_t vectors = static_cast<int64_t>(bytes) / 16;
  const timing flat = time_calls(stream, [&] {
    read_flat<<<static_cast<unsigned>(m.props.multiProcessorCount * 8), 512, 0, stream>>>(
        reinterpret_cast<const uint4*>(maps.get()), vectors, sink.get());
    check_launch("read_flat");
  });
  const double rows_gbps = bytes / (rows.median_ms * 1e6), flat_gbps = vectors * 16.0 / (flat.median_ms * 1e6);
  j.set("read_rows", rows.to_json()).set("read_rows_gbps", rows_gbps);
  j.set("read_flat", flat.to_json()).set("read_flat_gbps", flat_gbps);
  j.set("read_share_of_nominal", std::max(rows_gbps, flat_gbps) * 1e9 / m.nominal_bandwidth);

  const rhythm::signal_params params{};
  const std::size_t ws = rhythm::cuda::head_signals_from_maps_workspace_size(B, H, N, params);
  cuda_call call(ws, stream);
  signal_outputs out(B, H, N);
  const device_view<const T, 4> maps_view(maps.get(), {B, H, N, N});
  const device_view<const rhythm::segment, 1> segments_view(segments.get(), {B});
  const timing t = time_calls(stream, [&] {
    rhythm::head_signals_from_maps(call.policy, maps_view, segments_view, out.span_view(B, H), out.waad_view(B, H, N),
                                   out.fai_view(B, H, N), params);
  });
  rhythm::cuda::throw_if_error(call.policy);
  const double gbps = bytes / (t.median_ms * 1e6);
  j.set("rhythm", t.to_json()).set("rhythm_gbps", gbps).set("workspace_bytes", ws);
  j.set("rhythm_over_read_rows", gbps / rows_gbps).set("rhythm_over_read_flat", gbps / flat_gbps);
  j.set("rhythm_share_of_nominal", gbps * 1e9 / m.nominal_bandwidth);
  j.set("outputs_plausible", out.plausible());
  std::printf("| %s | [%lld, %lld, %lld, %lld] | %.3f | %.3f | %.0f | %.0f | %.0f | %.2f | %.1f %% | %.1f %% |\n", dtype,
              static_cast<long long>(B), static_cast<long long>(H), static_cast<long long>(N),
              static_cast<long long>(N), bytes / 1e9, t.median_ms, gbps, rows_gbps, flat_gbps, gbps / rows_gbps,
              100 * gbps * 1e9 / m.nominal_bandwidth, 100 * std::max(rows_gbps, flat_gbps) * 1e9 / m.nominal_bandwidth);
  return j;
}

inline json bench_maps(const machine& m, cudaStream_t stream) {
  std::printf("\nMaps path: head_signals_from_maps vs read kernels over the same bytes (GB/s = 1e9 B/s)\n");
  std::printf("| dtype | maps | GB read | rhythm ms | rhythm GB/s | read rows GB/s | read flat GB/s | "
              "rhythm/read rows | rhythm of nominal | read of nominal |\n|---|---|---|---|---|---|---|---|---|---|\n");
  json cases = json::array();
  // About 3.5 GB read in float and 1.75 GB in bf16 (>= 1 GiB each); 8.6 and 4.3 GB allocated.
  cases.push(guarded("maps float", [&] { return bench_maps_dtype<float>("f32", 16, 8192, m, stream); }));
  cases.push(guarded("maps bf16", [&] { return bench_maps_dtype<rhythm::bfloat16>("bf16", 16, 8192, m, stream); }));
  return cases;
}

// ---------------------------------------------------------------------------------------------------------------
// Q/K path.

struct qk_case {
  int64_t B = 1, Hq = 32, Hkv = 32, N = 4096, d = 128;
  int64_t horizon_hi = 100;  ///< rhythm::unbounded_horizon for H_hi = infinity
};

inline std::string horizon_text(int64_t hi) { return hi == rhythm::unbounded_horizon ? "inf" : std::to_string(hi); }

/// Pass-1 FLOPs: 2 d per (response row, key) pair of every query head, keys [begin, t].
inline double pass1_flops(const qk_case& c, const std::vector<rhythm::segment>& segments) {
  return 2.0 * static_cast<double>(c.d) * static_cast<double>(c.Hq) *
         static_cast<double>(lower_triangle_elements(segments));
}

template <class T>
json bench_qk_case(const char* dtype, const qk_case& c, cudaStream_t stream) {
  const std::vector<rhythm::segment> segments_host(static_cast<std::size_t>(c.B), rhythm::segment{0, 256, c.N});
  rhythm::signal_params params{};
  params.horizon.hi = c.horizon_hi;
  json j = json::object();
  j.set("dtype", dtype).set("B", c.B).set("Hq", c.Hq).set("Hkv", c.Hkv).set("N", c.N).set("d", c.d);
  j.set("segment", "{0, 256, N}").set("H_lo", params.horizon.lo).set("H_hi", horizon_text(c.horizon_hi));
  const double flops = pass1_flops(c, segments_host);
  j.set("pass1_flops", flops);
  const std::size_t ws = rhythm::cuda::head_signals_from_qk_workspace_size(c.B, c.Hq, c.Hkv, c.N, c.d, params);
  j.set("workspace_bytes", ws);
  device_array<T> q(c.B * c.Hq * c.N * c.d), k(c.B * c.Hkv * c.N * c.d);
  fill(q, 11, -1.7f, 1.7f);  // about unit variance: logits q.k / sqrt(d) of about unit spread
  fill(k, 13, -1.7f, 1.7f);
  device_array<rhythm::segment> segments(segments_host);
  signal_outputs out(c.B, c.Hq, c.N);
  j.set("output_bytes", out.bytes());
  cuda_call call(ws, stream);
  settle();
  const device_view<const T, 4> qv(q.get(), {c.B, c.Hq, c.N, c.d}), kv(k.get(), {c.B, c.Hkv, c.N, c.d});
  const device_view<const rhythm::segment, 1> sv(segments.get(), {c.B});
  const timing t = time_calls(stream, [&] {
    rhythm::head_signals_from_qk(call.policy, qv, kv, sv, out.span_view(c.B, c.Hq), out.waad_view(c.B, c.Hq, c.N),
                                 out.fai_view(c.B, c.Hq, c.N), params);
  });
  rhythm::cuda::throw_if_error(call.policy);
  const double tflops = flops / (t.median_ms * 1e9);
  j.set("ran", true).set("rhythm", t.to_json()).set("median_ms", t.median_ms);
  j.set("pass1_tflops", tflops).set("outputs_plausible", out.plausible());
  std::printf("| %s | %lld | %lld | %s | %.3f | %.1f | %.2f |\n", dtype, static_cast<long long>(c.Hkv),
              static_cast<long long>(c.N), horizon_text(c.horizon_hi).c_str(), t.median_ms, tflops,
              static_cast<double>(ws) / (1 << 20));
  return j;
}

/// Past the time limit (--max-seconds, counted from the program's start)?
inline bool out_of_time(const options& o, host_clock::time_point start) { return ms_since(start) > o.max_seconds * 1e3; }

/// The Q/K cases; `save` receives the cases so far after each one (the JSON survives a kill).
inline json bench_qk(const options& o, cudaStream_t stream, host_clock::time_point start,
                     const std::function<void(const json&)>& save) {
  std::printf("\nQ/K path: head_signals_from_qk, bf16, B = 1, Hq = 32, d = 128, segment {0, 256, N}; "
              "pass-1 TFLOP/s = pass-1 FLOPs / time of the whole call (a lower bound)\n");
  std::printf("| dtype | Hkv | N | H_hi | rhythm ms | pass-1 TFLOP/s | workspace MiB |\n|---|---|---|---|---|---|---|\n");
  json cases = json::array();
  for (const int64_t hkv : {int64_t{32}, int64_t{8}})
    for (const int64_t n : o.lengths)
      for (const int64_t hi : {int64_t{100}, rhythm::unbounded_horizon}) {
        const qk_case c{1, 32, hkv, n, 128, hi};
        if (out_of_time(o, start)) {
          json j = json::object();
          j.set("Hkv", hkv).set("N", n).set("H_hi", horizon_text(hi)).set("skipped", "time limit (--max-seconds)");
          cases.push(j);
          continue;
        }
        json j = guarded("qk", [&] { return bench_qk_case<rhythm::bfloat16>("bf16", c, stream); });
        j.set("Hkv", hkv).set("N", n).set("H_hi", horizon_text(hi));
        cases.push(j);
        save(cases);
      }
  return cases;
}

/// The float path at N = 32768, Hkv = 32, H_hi = 100: does it run, and how long does it take.
inline json bench_float(const options& o, cudaStream_t stream, host_clock::time_point start) {
  if (out_of_time(o, start)) {
    json j = json::object();
    return j.set("dtype", "f32").set("N", 32768).set("skipped", "time limit (--max-seconds)");
  }
  std::printf("\nQ/K path, float inputs at N = 32768 (Hq = Hkv = 32, d = 128, H_hi = 100)\n");
  std::printf("| dtype | Hkv | N | H_hi | rhythm ms | pass-1 TFLOP/s | workspace MiB |\n|---|---|---|---|---|---|---|\n");
  const qk_case c{1, 32, 32, 32768, 128, 100};
  json j = guarded("float", [&] { return bench_qk_case<float>("f32", c, stream); });
  if (!j.has("ran")) j.set("ran", false);  // it threw: the error says why
  return j.set("dtype", "f32").set("N", c.N).set("Hkv", c.Hkv);
}

// ---------------------------------------------------------------------------------------------------------------
// Pipeline: the whole credit_pipeline against the signals stage alone.

struct pipeline_problem {
  static constexpr int64_t B = 128, H = 20, N = 512, d = 64, group = 8;
  std::vector<rhythm::segment> segments;
  std::vector<float> rewards;
  std::vector<int64_t> group_ids;

  /// Prompts of 32..127 tokens, every fourth sequence left-padded, right padding up to 63 tokens;
  /// rewards 0/1; GRPO groups of 8 consecutive sequences.
  pipeline_problem() {
    for (int64_t b = 0; b < B; ++b) {
      const int64_t begin = b % 4 == 3 ? (b % 5) * 8 : 0, end = N - (b * 53) % 64;
      segments.push_back({begin, begin + 32 + (b * 37) % 96, end});
      rewards.push_back(hash_uniform(static_cast<std::uint64_t>(b), 17) < 0.5f ? 0.0f : 1.0f);
      group_ids.push_back(b / group);
    }
  }
};

/// Workspace of one credit_pipeline::run_from_qk on the pipeline problem (Hq = Hkv = H).
inline std::size_t pipeline_workspace_bytes(const rhythm::pipeline_params& params) {
  using P = pipeline_problem;
  return rhythm::cuda::credit_pipeline::workspace_size_from_qk({P::B, P::H, P::N}, P::H, P::d, params);
}

inline json bench_pipeline(cudaStream_t stream) {
  using P = pipeline_problem;
  std::printf("\nPipeline: B = %lld, H = %lld, N = %lld, d = %lld, bf16: credit_pipeline::run_from_qk "
              "(coupled_rhythm) vs head_signals_from_qk alone\n",
              static_cast<long long>(P::B), static_cast<long long>(P::H), static_cast<long long>(P::N),
              static_cast<long long>(P::d));
  json j = json::object();
  j.set("B", P::B).set("H", P::H).set("N", P::N).set("d", P::d).set("dtype", "bf16").set("shaping", "coupled_rhythm");
  const P problem;
  device_array<rhythm::bfloat16> q(P::B * P::H * P::N * P::d), k(P::B * P::H * P::N * P::d);
  fill(q, 21, -1.7f, 1.7f);
  fill(k, 23, -1.7f, 1.7f);
  device_array<rhythm::segment> segments(problem.segments);
  const device_view<const rhythm::bfloat16, 4> qv(q.get(), {P::B, P::H, P::N, P::d}), kv(k.get(), {P::B, P::H, P::N, P::d});
  const device_view<const rhythm::segment, 1> sv(segments.get(), {P::B});
  const rhythm::pipeline_params params{};
  settle();

  timing signals_time;
  json signals = guarded("pipeline signals", [&] {
    const std::size_t ws = rhythm::cuda::head_signals_from_qk_workspace_size(P::B, P::H, P::H, P::N, P::d, params.signals);
    cuda_call call(ws, stream);
    signal_outputs out(P::B, P::H, P::N);
    const timing t = time_calls(
        stream,
        [&] {
          rhythm::head_signals_from_qk(call.policy, qv, kv, sv, out.span_view(P::B, P::H), out.waad_view(P::B, P::H, P::N),
                                       out.fai_view(P::B, P::H, P::N), params.signals);
        },
        true);
    rhythm::cuda::throw_if_error(call.policy);
    signals_time = t;
    return t.to_json().set("workspace_bytes", ws);
  });
  j.set("signals", signals);
  timing pipeline_time;
  json whole = guarded("pipeline", [&] {
    device_array<float> rewards(problem.rewards), gamma(P::B * P::N), shaped(P::B * P::N);
    device_array<int64_t> group_ids(problem.group_ids);
    const std::size_t ws = pipeline_workspace_bytes(params);
    cuda_call call(ws, stream);
    const device_view<const float, 1> rv(rewards.get(), {P::B});
    const device_view<const int64_t, 1> gv(group_ids.get(), {P::B});
    const device_view<float, 2> gamma_view(gamma.get(), {P::B, P::N}), shaped_view(shaped.get(), {P::B, P::N});
    rhythm::cuda::credit_pipeline pipeline;
    settle();
    const timing t = time_calls(
        stream,
        [&] {
          static_cast<void>(pipeline.run_from_qk(call.policy, qv, kv, sv, rv, gv, rhythm::shaping::coupled_rhythm{},
                                                 gamma_view, shaped_view, params));
        },
        true);
    rhythm::cuda::throw_if_error(call.policy);
    pipeline_time = t;
    return t.to_json().set("workspace_bytes", ws);
  });
  j.set("pipeline", whole);
  if (signals_time.reps > 0 && pipeline_time.reps > 0) {
    const double s_ms = signals_time.median_ms, p_ms = pipeline_time.median_ms;
    const double s_wall = signals_time.wall_median_ms, p_wall = pipeline_time.wall_median_ms;
    j.set("pipeline_over_signals", p_ms / s_ms).set("after_signals_share", (p_ms - s_ms) / s_ms);
    j.set("pipeline_over_signals_wall", p_wall / s_wall).set("after_signals_share_wall", (p_wall - s_wall) / s_wall);
    std::printf("| signals ms | pipeline ms | pipeline/signals | after signals / signals | signals wall ms | "
                "pipeline wall ms | wall ratio |\n|---|---|---|---|---|---|---|\n");
    std::printf("| %.3f | %.3f | %.3f | %.1f %% | %.3f | %.3f | %.3f |\n", s_ms, p_ms, p_ms / s_ms,
                100 * (p_ms - s_ms) / s_ms, s_wall, p_wall, p_wall / s_wall);
  }
  return j;
}

// ---------------------------------------------------------------------------------------------------------------

inline std::vector<int64_t> parse_lengths(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(std::stoll(item));
  return out;
}

inline options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error("bench_cuda: " + a + " needs a value");
      return argv[++i];
    };
    if (a == "--parts") {
      o.parts.clear();
      std::stringstream in(next());
      for (std::string item; std::getline(in, item, ',');) o.parts.insert(item);
    } else if (a == "--lengths") {
      o.lengths = parse_lengths(next());
    } else if (a == "--max-seconds") {
      o.max_seconds = std::stod(next());
    } else if (a == "--help" || a == "-h") {
      std::printf("usage: bench_cuda [out.json] [--parts maps,qk,float,pipeline] [--lengths 4096,...] "
                  "[--max-seconds S]\n");
      std::exit(0);
    } else if (!a.starts_with("--")) {
      o.json_path = a;
    } else {
      throw std::runtime_error("bench_cuda: unknown option " + a);
    }
  }
  return o;
}

inline void write_file(const std::string& path, const json& j) {
  std::ofstream out(path);
  out << j.dump() << "\n";
  if (!out) std::fprintf(stderr, "bench_cuda: cannot write %s\n", path.c_str());
}

}  // namespace bench_cuda

int main(int argc, char** argv) {
  using namespace bench_cuda;
  const auto start = host_clock::now();
  options o;
  try {
    o = parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  json report = json::object();
  report.set("program", "bench/cuda/bench_cuda.cu")
      .set("rhythm_version", std::to_string(RHYTHM_VERSION_MAJOR) + "." + std::to_string(RHYTHM_VERSION_MINOR) + "." +
                                 std::to_string(RHYTHM_VERSION_PATCH));
  report.set("timing", "CUDA events, median of 10 after 3 warm-ups (3 after 1 when a call takes > 0.5 s); "
                       "each timed call queued behind a 2 ms spin kernel");
  report.set("built_with", json::object()
                               .set("nvcc", std::to_string(__CUDACC_VER_MAJOR__) + "." +
                                                std::to_string(__CUDACC_VER_MINOR__) + "." +
                                                std::to_string(__CUDACC_VER_BUILD__)));
  machine m;
  try {
    m = describe_machine();
  } catch (const std::exception& e) {
    report.set("error", std::string("no usable CUDA device: ") + e.what());
    write_file(o.json_path, report);
    std::fprintf(stderr, "bench_cuda: %s\n", e.what());
    return 1;
  }
  report.set("machine", machine_json(m));
  std::printf("GPU: %s (sm_%d%d, %d SMs), driver %s, runtime %s, nominal bandwidth %.2f TB/s (%s)\n", m.props.name,
              m.props.major, m.props.minor, m.props.multiProcessorCount, version_string(m.driver).c_str(),
              version_string(m.runtime).c_str(), m.nominal_bandwidth / 1e12, m.nominal_source.c_str());
  write_file(o.json_path, report);

  cudaStream_t stream = nullptr;
  check_cuda(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  const auto part = [&](const char* name, const std::function<json()>& body) {
    if (!o.parts.contains(name)) return;
    const auto t0 = host_clock::now();
    json j = guarded(name, body);
    report.set(name, j);
    report.set(std::string(name) + "_seconds", ms_since(t0) / 1e3);
    write_file(o.json_path, report);
    std::fflush(stdout);
  };
  part("maps", [&] { return bench_maps(m, stream); });
  part("qk", [&] {
    return bench_qk(o, stream, start, [&](const json& partial) { write_file(o.json_path, report.set("qk", partial)); });
  });
  part("float", [&] { return bench_float(o, stream, start); });
  part("pipeline", [&] { return bench_pipeline(stream); });
  const cudaError_t sticky = cudaDeviceSynchronize();
  report.set("final_cuda_status", std::string(cudaGetErrorName(sticky)));
  report.set("total_seconds", ms_since(start) / 1e3);
  write_file(o.json_path, report);
  cudaStreamDestroy(stream);
  std::printf("\nbench_cuda: wrote %s (%.1f s)\n", o.json_path.c_str(), ms_since(start) / 1e3);
  return sticky == cudaSuccess ? 0 : 1;
}
