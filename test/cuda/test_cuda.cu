// The CPU's typed suites (test/suites/*.hpp), instantiated for rhythm::exec::cuda: the same test
// bodies, reading and writing through device buffers (rt::memory<device_space>), with value errors
// turned into rhythm::error by rt::finish (cuda::throw_if_error). Without a CUDA device every test
// here reports skipped; with one (scripts/gpu-check) they compare the CUDA backend with the
// double-precision reference exactly as the CPU backend is compared.
#include <gtest/gtest.h>

#include <memory>
#include <rhythm/cuda.cuh>

#include "../backend_memory.hpp"

namespace rt {

inline void cuda_ok(cudaError_t e, const char* what) { rhythm::cuda::detail::check_cuda(e, what); }

inline bool device_present() {
  static const bool present = [] {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  }();
  return present;
}

template <>
inline bool available<rhythm::exec::cuda>() {
  return device_present();
}

template <>
struct memory<rhythm::device_space> {
  template <class T>
  struct storage {
    std::shared_ptr<T> elements;
    std::size_t count = 0;
    T* data() const { return elements.get(); }
  };
  template <class T>
  static storage<T> upload(const std::vector<T>& host) {
    if (!device_present()) return {};  // the test is skipped before any body runs
    T* p = nullptr;
    cuda_ok(cudaMalloc(&p, std::max<std::size_t>(host.size(), 1) * sizeof(T)), "cudaMalloc");
    storage<T> s{std::shared_ptr<T>(p, [](T* q) { cudaFree(q); }), host.size()};
    cuda_ok(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy (upload)");
    return s;
  }
  template <class T>
  static std::vector<T> download(const storage<T>& s) {
    std::vector<T> host(s.count);
    cuda_ok(cudaMemcpy(host.data(), s.data(), s.count * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy (download)");
    return host;
  }
};

// One workspace and one status for the whole test program, on the legacy default stream: every
// test problem here needs far less than 64 MiB.
template <>
inline rhythm::exec::cuda make_policy<rhythm::exec::cuda>() {
  constexpr std::int64_t bytes = std::int64_t{64} << 20;
  static std::byte* workspace = [] {
    void* p = nullptr;
    cuda_ok(cudaMalloc(&p, bytes), "cudaMalloc (workspace)");
    return static_cast<std::byte*>(p);
  }();
  static rhythm::value_error* status = [] {
    void* p = nullptr;
    cuda_ok(cudaMalloc(&p, sizeof(rhythm::value_error)), "cudaMalloc (status)");
    return static_cast<rhythm::value_error*>(p);
  }();
  const rhythm::exec::cuda policy{nullptr, rhythm::view<std::byte, 1, rhythm::device_space>(workspace, {bytes}), status};
  rhythm::cuda::clear_status(policy);
  return policy;
}

inline void finish(const rhythm::exec::cuda& policy) { rhythm::cuda::throw_if_error(policy); }

}  // namespace rt

#include "../suites/credit.hpp"
#include "../suites/signals.hpp"
#include "../suites/tokens.hpp"
#include "../suites/value_errors.hpp"

namespace rt {
using device_policies = ::testing::Types<rhythm::exec::cuda>;
}
namespace signals_suite {
INSTANTIATE_TYPED_TEST_SUITE_P(Cuda, Signals, rt::device_policies);
}
namespace tokens_suite {
INSTANTIATE_TYPED_TEST_SUITE_P(Cuda, Tokens, rt::device_policies);
}
namespace credit_suite {
INSTANTIATE_TYPED_TEST_SUITE_P(Cuda, Credit, rt::device_policies);
}
namespace value_errors_suite {
INSTANTIATE_TYPED_TEST_SUITE_P(Cuda, ValueErrors, rt::device_policies);
}

// rhythm::cuda::credit_pipeline against the host pipeline on the same problem, and a CUDA graph
// capture of one run replayed twice with bit-identical results.
namespace {
using rt::i64;

template <class T>
rt::array<rhythm::exec::cuda, const T, 1> upload(const std::vector<T>& v) {
  return rt::in<rhythm::exec::cuda>(v);
}

struct pipeline_problem {
  static constexpr i64 B = 6, H = 4, Hkv = 2, N = 90, d = 16;
  std::vector<rhythm::segment> segs;
  std::vector<float> q, k, rewards{1, 0, 1, 0, 0, 1};
  std::vector<std::int64_t> ids{7, 7, 7, -3, -3, -3};
  pipeline_problem() {
    std::mt19937 rng(5);
    for (i64 b = 0; b < B; ++b) segs.push_back(rt::random_segment(rng, N));
    q = rt::random_floats(rng, B * H * N * d, 1.5);
    k = rt::random_floats(rng, B * Hkv * N * d, 1.5);
  }
};

class CudaPipeline : public rt::backend_test<rhythm::exec::cuda> {};

TEST_F(CudaPipeline, FromQKEqualsTheHostPipeline) {
  using P = rhythm::exec::cuda;
  const pipeline_problem x;
  const i64 B = x.B, N = x.N;
  const rhythm::pipeline_params params{.signals = {.window = 8, .horizon = {.lo = 5, .hi = 40}}};
  std::vector<float> gamma(B * N, -7.0f), shaped(B * N, -7.0f);
  rhythm::credit_pipeline host;
  const auto want = host.run_from_qk(rhythm::exec::seq{}, rhythm::make_view(x.q, B, x.H, N, x.d),
                                     rhythm::make_view(x.k, B, x.Hkv, N, x.d), rhythm::make_view(x.segs),
                                     rhythm::make_view(x.rewards), rhythm::make_view(x.ids),
                                     rhythm::shaping::coupled_rhythm{}, rhythm::make_view(gamma, B, N),
                                     rhythm::make_view(shaped, B, N), params);

  const auto policy = rt::make_policy<P>();
  const std::size_t need = rhythm::cuda::credit_pipeline::workspace_size_from_qk(rhythm::pipeline_shape{B, x.H, N}, x.Hkv, x.d, params);
  ASSERT_LE(need, std::size_t{64} << 20);
  auto g = rt::out<P>(-7.0f, B, N), s = rt::out<P>(-7.0f, B, N);
  rhythm::cuda::credit_pipeline device;
  device.run_from_qk(policy, rt::in<P>(x.q, B, x.H, N, x.d), rt::in<P>(x.k, B, x.Hkv, N, x.d), upload(x.segs),
                     upload(x.rewards), upload(x.ids), rhythm::shaping::coupled_rhythm{}, g, s, params);
  rt::finish(policy);
  EXPECT_EQ(g.host(), gamma);
  const auto sh = s.host();
  for (i64 i = 0; i < B * N; ++i) EXPECT_FLOAT_EQ(sh[i], shaped[i]) << "at " << i;
  rhythm::pipeline_diagnostics diag;
  rt::cuda_ok(cudaMemcpy(&diag, device.diagnostics(), sizeof diag, cudaMemcpyDeviceToHost), "diagnostics");
  EXPECT_EQ(diag.response_tokens, want.response_tokens);
  EXPECT_EQ(diag.anchor, want.anchor);
  EXPECT_EQ(diag.preplan, want.preplan);
  EXPECT_EQ(diag.dominated, want.dominated);
  EXPECT_NEAR(diag.mean_gamma, want.mean_gamma, 1e-12);
}

TEST_F(CudaPipeline, AGraphCaptureReplaysBitForBit) {
  using P = rhythm::exec::cuda;
  const pipeline_problem x;
  const i64 B = x.B, N = x.N;
  cudaStream_t stream;
  rt::cuda_ok(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  auto policy = rt::make_policy<P>();
  rt::cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize");  // the status cleared on the default stream
  policy.stream = stream;
  const auto q = rt::in<P>(x.q, B, x.H, N, x.d), k = rt::in<P>(x.k, B, x.Hkv, N, x.d);
  const auto segs = upload(x.segs);
  const auto rewards = upload(x.rewards);
  const auto ids = upload(x.ids);
  auto g = rt::out<P>(-7.0f, B, N), s = rt::out<P>(-7.0f, B, N);
  rhythm::cuda::credit_pipeline pipeline;
  cudaGraph_t graph;
  rt::cuda_ok(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
  pipeline.run_from_qk(policy, q, k, segs, rewards, ids, rhythm::shaping::coupled_rhythm{}, g, s);
  rt::cuda_ok(cudaStreamEndCapture(stream, &graph), "cudaStreamEndCapture");
  cudaGraphExec_t exec;
  rt::cuda_ok(cudaGraphInstantiate(&exec, graph, 0), "cudaGraphInstantiate");
  std::vector<float> first, first_gamma;
  for (int replay = 0; replay < 2; ++replay) {
    rt::cuda_ok(cudaGraphLaunch(exec, stream), "cudaGraphLaunch");
    rhythm::cuda::throw_if_error(policy);
    if (replay == 0) first = s.host(), first_gamma = g.host();
    else EXPECT_TRUE(s.host() == first && g.host() == first_gamma) << "the replay differs";
  }
  auto g2 = rt::out<P>(-7.0f, B, N), s2 = rt::out<P>(-7.0f, B, N);
  pipeline.run_from_qk(policy, q, k, segs, rewards, ids, rhythm::shaping::coupled_rhythm{}, g2, s2);
  rhythm::cuda::throw_if_error(policy);
  EXPECT_TRUE(s2.host() == first && g2.host() == first_gamma) << "the graph differs from a direct run";
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}
}  // namespace
