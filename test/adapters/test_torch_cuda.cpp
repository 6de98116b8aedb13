// rhythm::torch on CUDA tensors (built with RHYTHM_TORCH_CUDA): credit_assigner and
// head_signals_from_* run on the tensors' device, on the current stream, and agree with the CPU:
// signals within 1e-5 max(1, |cpu|), everything downstream of them (roles, flags, advantages,
// gamma, shaped, counts, shares) bit for bit; a value error throws the CPU's rhythm::error.
// The device tests skip without a CUDA device; the masks-to-segments tensor ops are also checked
// on the CPU against segments_from_masks.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/torch.h>

#include <rhythm/torch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../test_util.hpp"

#if !defined(RHYTHM_TORCH_CUDA) || !RHYTHM_TORCH_CUDA
#error "test_torch_cuda.cpp needs rhythm::torch built with RHYTHM_TORCH_CUDA"
#endif

namespace {
using rt::i64;
namespace rtorch = rhythm::torch;

const c10::Device cuda0(c10::kCUDA, 0);

bool has_cuda() { return torch::cuda::is_available(); }

// The bytes of two tensors (on any device, same dtype) are identical.
bool same_bits(const at::Tensor& got, const at::Tensor& want) {
  const at::Tensor g = got.cpu().contiguous(), w = want.cpu().contiguous();
  return g.scalar_type() == w.scalar_type() && g.sizes() == w.sizes() &&
         std::memcmp(g.data_ptr(), w.data_ptr(), g.nbytes()) == 0;
}

// Every element of `got` is within 1e-5 max(1, |want|) of `want` (float32 tensors).
void expect_close(const at::Tensor& got, const at::Tensor& want, const char* what) {
  const at::Tensor g = got.cpu().contiguous(), w = want.cpu().contiguous();
  ASSERT_EQ(g.sizes(), w.sizes()) << what;
  const float* gp = g.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  int reported = 0;
  for (i64 i = 0; i < g.numel(); ++i) {
    const bool ok = std::abs(gp[i] - wp[i]) <= 1e-5f * std::max(1.0f, std::abs(wp[i])) || (gp[i] == wp[i]);
    if (!ok && reported++ < 5) ADD_FAILURE() << what << "[" << i << "]: got " << gp[i] << ", cpu " << wp[i];
  }
}

// A random batch: q [B, Hq, N, d], k [B, Hkv, N, d], segments with left and right padding and an
// empty response, rewards in two groups, entropies; maps from q and k (causal softmax over each
// sequence's real tokens, 0 elsewhere).
struct batch {
  static constexpr i64 B = 5, Hq = 4, Hkv = 2, N = 40, d = 16;
  at::Tensor q, k, maps, segments, rewards, group_ids, entropies, response_mask, attention_mask;
  explicit batch(unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<rhythm::segment> segs;
    for (i64 b = 0; b < B; ++b) segs.push_back(rt::random_segment(rng, N));
    segs[1] = {0, 12, N};
    segs[3] = {4, N - 6, N - 6};  // empty response
    segments = rtorch::segments_tensor(segs);
    const auto floats = [&](std::vector<i64> sizes, double scale) {
      i64 n = 1;
      for (const i64 s : sizes) n *= s;
      return torch::from_blob(rt::random_floats(rng, n, scale).data(), sizes, torch::kFloat).clone();
    };
    q = floats({B, Hq, N, d}, 1.5), k = floats({B, Hkv, N, d}, 1.5), entropies = floats({B, N}, 1.0).abs();
    rewards = torch::tensor({1.0f, 0.0f, 1.0f, 0.0f, 0.5f});
    group_ids = torch::tensor({7, 7, 7, -3, -3}, torch::kLong);
    const at::Tensor position = torch::arange(N);
    at::Tensor real = torch::zeros({B, N}, torch::kBool), response = real.clone();
    for (i64 b = 0; b < B; ++b) {
      const auto& s = segs[static_cast<std::size_t>(b)];
      real[b] = (position >= s.begin) & (position < s.end);
      response[b] = (position >= s.response_begin) & (position < s.end);
    }
    response_mask = response, attention_mask = real.to(torch::kInt32);
    const at::Tensor kq = k.repeat_interleave(Hq / Hkv, 1);
    at::Tensor logits = torch::matmul(q, kq.transpose(2, 3)) / std::sqrt(double(d));  // [B, Hq, t, s]
    const at::Tensor causal = position.unsqueeze(1) >= position.unsqueeze(0);           // [t, s]
    const at::Tensor keys = causal.unsqueeze(0) & real.unsqueeze(1);                   // [B, t, s]
    logits = logits.masked_fill(keys.logical_not().unsqueeze(1), -INFINITY);
    maps = torch::softmax(logits, -1).nan_to_num(0.0);
  }
  // Fresh copies (a test may write into them).
  static at::Tensor on(const at::Tensor& t, const c10::Device& device) { return t.to(device).clone(); }
  static at::Tensor on(const at::Tensor& t, const c10::Device& device, at::ScalarType type) {
    return t.to(device, type).clone();
  }
  rtorch::credit_batch qk(const c10::Device& device, at::ScalarType type, bool masks, bool with_entropies) const {
    rtorch::credit_batch x{.q = on(q, device, type), .k = on(k, device, type)};
    fill(x, device, masks, with_entropies);
    return x;
  }
  rtorch::credit_batch from_maps(const c10::Device& device, at::ScalarType type, bool masks, bool with_entropies) const {
    rtorch::credit_batch x{.maps = on(maps, device, type)};
    fill(x, device, masks, with_entropies);
    return x;
  }
  void fill(rtorch::credit_batch& x, const c10::Device& device, bool masks, bool with_entropies) const {
    if (masks) x.response_mask = on(response_mask, device), x.attention_mask = on(attention_mask, device);
    else x.segments = on(segments, device);
    x.rewards = on(rewards, device), x.group_ids = on(group_ids, device);
    if (with_entropies) x.entropies = on(entropies, device, torch::kBFloat16);
  }
};

// Every result on the device, the signals close to the CPU's, the rest bit for bit.
void expect_matches_cpu(const rtorch::credit_result& got, const rtorch::credit_result& cpu, const std::string& what) {
  SCOPED_TRACE(what);
  const auto& g = got.diagnostics;
  const auto& c = cpu.diagnostics;
  for (const at::Tensor* t : {&got.gamma, &got.shaped, &g.response_tokens, &g.preplan, &g.anchor, &g.dominated,
                              &g.intro, &g.mean_gamma, &g.amplified_share, &g.advantages, &g.flags, &g.waad, &g.fai,
                              &g.head_spans, &g.head_roles})
    EXPECT_TRUE(t->is_cuda());
  expect_close(g.head_spans, c.head_spans, "head_spans");
  expect_close(g.waad, c.waad, "waad");
  expect_close(g.fai, c.fai, "fai");
  EXPECT_TRUE(same_bits(g.advantages, c.advantages)) << "advantages";
  // Downstream of the signals: identical given identical roles and flags, which random inputs
  // give unless a selection ties within the signal tolerance (then the first line says so).
  ASSERT_TRUE(same_bits(g.head_roles, c.head_roles)) << "head roles differ (a span tie within the tolerance?)";
  ASSERT_TRUE(same_bits(g.flags, c.flags)) << "token flags differ (a threshold tie within the tolerance?)";
  EXPECT_TRUE(same_bits(got.gamma, cpu.gamma)) << "gamma";
  EXPECT_TRUE(same_bits(got.shaped, cpu.shaped)) << "shaped";
  for (const auto& [t, u] : {std::pair{&g.response_tokens, &c.response_tokens}, std::pair{&g.preplan, &c.preplan},
                             std::pair{&g.anchor, &c.anchor}, std::pair{&g.dominated, &c.dominated},
                             std::pair{&g.intro, &c.intro}, std::pair{&g.mean_gamma, &c.mean_gamma},
                             std::pair{&g.amplified_share, &c.amplified_share}}) {
    EXPECT_EQ(t->dim(), 0);
    EXPECT_TRUE(same_bits(*t, *u)) << *t << " vs " << *u;
  }
}

// The rhythm::error f throws (code and message); fails the test if it throws none or another type.
template <class F>
std::pair<rhythm::errc, std::string> rhythm_error(F&& f) {
  try {
    f();
  } catch (const rhythm::error& e) {
    return {e.code(), e.what()};
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected a rhythm::error, got: " << e.what();
    return {};
  }
  ADD_FAILURE() << "expected a rhythm::error, got none";
  return {};
}

// --- masks to segments by tensor ops (CPU, and the device when there is one) ---

TEST(TorchCudaMasks, TensorOpsAgreeWithSegmentsFromMasks) {
  std::mt19937 rng(5);
  std::vector<c10::Device> devices{c10::Device(c10::kCPU)};
  if (has_cuda()) devices.push_back(cuda0);
  for (int trial = 0; trial < 300; ++trial) {
    const i64 B = std::uniform_int_distribution<i64>(0, 4)(rng), N = std::uniform_int_distribution<i64>(0, 9)(rng);
    at::Tensor response = torch::zeros({B, N}, torch::kUInt8), real = response.clone();
    for (i64 b = 0; b < B && N > 0; ++b) {
      std::uniform_int_distribution<i64> pos(0, N);
      i64 begin = pos(rng), end = pos(rng);
      if (begin > end) std::swap(begin, end);
      const i64 rb = std::uniform_int_distribution<i64>(begin, end)(rng);
      real.select(0, b).narrow(0, begin, end - begin).fill_(1);
      response.select(0, b).narrow(0, rb, end - rb).fill_(rng() % 4 == 0 ? 3 : 1);
    }
    for (int flips = rng() % 3 == 0 ? 1 + int(rng() % 2) : 0; flips > 0 && B > 0 && N > 0; --flips) {
      at::Tensor m = rng() % 2 ? response : real;
      const i64 b = i64(rng() % B), t = i64(rng() % N);
      m[b][t] = 1 - m[b][t].item<int>() % 2;
    }
    const bool attention = rng() % 3 != 0;
    std::vector<rhythm::segment> want;
    bool valid = true;
    try {
      want = rtorch::segments_from_masks(response, attention ? real : at::Tensor());
    } catch (const rhythm::error&) {
      valid = false;
    }
    for (const auto& device : devices) {
      const auto [segments, ok] = rtorch::detail::segments_tensor_from_masks(
          response.to(device), attention ? real.to(device).to(torch::kBool) : at::Tensor(), device);
      ASSERT_EQ(ok.item<bool>(), valid) << "trial " << trial << "\n" << response << "\n" << real;
      EXPECT_EQ(segments.device(), device);
      if (valid) {
        EXPECT_TRUE(same_bits(segments, rtorch::segments_tensor(want))) << "trial " << trial;
      }
    }
  }
}

// --- on the device ---

class TorchCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!has_cuda()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(TorchCuda, CreditFromQKMatchesTheCpu) {
  const batch x(21);
  for (const auto type : {torch::kFloat, torch::kBFloat16, torch::kHalf})
    for (const bool masks : {false, true}) {
      rtorch::credit_assigner assign;  // coupled_rhythm
      const auto cpu = assign(x.qk(torch::kCPU, type, masks, false));
      const auto got = assign(x.qk(cuda0, type, masks, false));
      expect_matches_cpu(got, cpu, std::string("qk ") + c10::toString(type) + (masks ? " masks" : " segments"));
    }
  rhythm::pipeline_params pooled;
  pooled.pooled_groups = true;
  rtorch::credit_assigner entropy(rhythm::shaping::entropy{}, pooled);
  expect_matches_cpu(entropy(x.qk(cuda0, torch::kFloat, false, true)), entropy(x.qk(torch::kCPU, torch::kFloat, false, true)),
                     "qk entropy pooled");
}

TEST_F(TorchCuda, CreditFromMapsMatchesTheCpu) {
  const batch x(22);
  for (const auto type : {torch::kFloat, torch::kBFloat16, torch::kHalf}) {
    rtorch::credit_assigner assign(rhythm::shaping::global_anchor{});
    expect_matches_cpu(assign(x.from_maps(cuda0, type, true, false)), assign(x.from_maps(torch::kCPU, type, true, false)),
                       std::string("maps ") + c10::toString(type));
  }
  rtorch::credit_assigner entropy(rhythm::shaping::entropy{});
  expect_matches_cpu(entropy(x.from_maps(cuda0, torch::kFloat, false, true)),
                     entropy(x.from_maps(torch::kCPU, torch::kFloat, false, true)), "maps entropy");
}

TEST_F(TorchCuda, SameTensorsGiveBitIdenticalResults) {
  const batch x(23);
  rtorch::credit_assigner assign;
  const auto in = x.qk(cuda0, torch::kBFloat16, false, false);
  const auto a = assign(in), b = assign(in);
  EXPECT_TRUE(same_bits(a.gamma, b.gamma));
  EXPECT_TRUE(same_bits(a.shaped, b.shaped));
  EXPECT_TRUE(same_bits(a.diagnostics.waad, b.diagnostics.waad));
  // Non-contiguous q (a permuted copy) and host-side rewards, group ids and segments: the same.
  auto moved = x.qk(cuda0, torch::kBFloat16, false, false);
  moved.q = moved.q.permute({0, 2, 1, 3}).contiguous().permute({0, 2, 1, 3});
  moved.rewards = x.rewards, moved.group_ids = x.group_ids, moved.segments = x.segments;
  const auto c = assign(moved);
  EXPECT_TRUE(same_bits(a.gamma, c.gamma));
  EXPECT_TRUE(same_bits(a.diagnostics.flags, c.diagnostics.flags));
}

TEST_F(TorchCuda, RunsOnTheCurrentStream) {
  const batch x(24);
  rtorch::credit_assigner assign;
  auto in = x.qk(cuda0, torch::kFloat, false, false);
  const at::Tensor later_rewards = torch::tensor({0.0f, 1.0f, 0.25f, 1.0f, 0.0f}, cuda0);
  const auto want = assign({.q = in.q, .k = in.k, .segments = in.segments, .rewards = later_rewards,
                            .group_ids = in.group_ids});
  const c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, 0);
  {
    const c10::cuda::CUDAStreamGuard guard(side);
    // Work queued on `side` before the call: a long matmul chain, then new rewards. Reading the
    // rewards in stream order (on `side`) sees the new ones; a launch on another stream would
    // not wait for them.
    at::Tensor m = torch::randn({4096, 4096}, torch::TensorOptions().device(cuda0));
    for (int i = 0; i < 8; ++i) m = torch::matmul(m, m).clamp(-1, 1);
    in.rewards.copy_(later_rewards + 0 * m.sum());
    const auto got = assign(in);
    EXPECT_TRUE(same_bits(got.diagnostics.advantages, want.diagnostics.advantages));
    EXPECT_TRUE(same_bits(got.shaped, want.shaped));
    EXPECT_TRUE(side.query());  // the call waited for its stream
  }
}

TEST_F(TorchCuda, ValueErrorsThrowTheCpuError) {
  const batch x(25);
  rtorch::credit_assigner assign;
  for (const auto type : {torch::kFloat, torch::kHalf}) {
    auto cpu = x.qk(torch::kCPU, type, false, false), dev = x.qk(cuda0, type, false, false);
    cpu.q[1][1][30][3] = NAN, dev.q[1][1][30][3] = NAN;  // row 1: real tokens [0, N)
    const auto want = rhythm_error([&] { assign(cpu); });
    const auto got = rhythm_error([&] { assign(dev); });
    EXPECT_EQ(got.first, want.first);
    EXPECT_EQ(got.second, want.second);
    EXPECT_NE(want.second.find("q"), std::string::npos) << want.second;
  }
  // An invalid mask (two response runs): the host's message, naming the row and position.
  auto cpu = x.qk(torch::kCPU, torch::kFloat, true, false), dev = x.qk(cuda0, torch::kFloat, true, false);
  cpu.response_mask[1][2] = true, dev.response_mask[1][2] = true;
  const auto want = rhythm_error([&] { assign(cpu); });
  EXPECT_EQ(rhythm_error([&] { assign(dev); }), want);
  // A metadata error of the core (rewards of the wrong length), thrown before any launch.
  cpu = x.qk(torch::kCPU, torch::kFloat, false, false), dev = x.qk(cuda0, torch::kFloat, false, false);
  cpu.rewards = cpu.rewards.narrow(0, 0, 3), dev.rewards = dev.rewards.narrow(0, 0, 3);
  EXPECT_EQ(rhythm_error([&] { assign(dev); }), rhythm_error([&] { assign(cpu); }));
  // After an error the next call starts afresh.
  expect_matches_cpu(assign(x.qk(cuda0, torch::kFloat, false, false)), assign(x.qk(torch::kCPU, torch::kFloat, false, false)),
                     "after errors");
}

TEST_F(TorchCuda, HeadSignalsMatchTheCpu) {
  const batch x(26);
  for (const auto type : {torch::kFloat, torch::kBFloat16}) {
    const auto cpu = rtorch::head_signals_from_qk(x.q.to(type), x.k.to(type), x.segments);
    const auto got = rtorch::head_signals_from_qk(x.q.to(cuda0, type), x.k.to(cuda0, type), x.segments.to(cuda0));
    EXPECT_TRUE(got.span.is_cuda() && got.waad.is_cuda() && got.fai.is_cuda());
    expect_close(got.span, cpu.span, "qk span");
    expect_close(got.waad, cpu.waad, "qk waad");
    expect_close(got.fai, cpu.fai, "qk fai");
    const auto cpu_m = rtorch::head_signals_from_maps(x.maps.to(type), x.segments);
    const auto got_m = rtorch::head_signals_from_maps(x.maps.to(cuda0, type), x.segments);
    EXPECT_TRUE(got_m.span.is_cuda());
    expect_close(got_m.span, cpu_m.span, "maps span");
    expect_close(got_m.waad, cpu_m.waad, "maps waad");
    expect_close(got_m.fai, cpu_m.fai, "maps fai");
  }
  at::Tensor q = x.q.to(cuda0).clone();
  q[1][0][x.N - 1][0] = NAN;
  at::Tensor qc = x.q.clone();
  qc[1][0][x.N - 1][0] = NAN;
  EXPECT_EQ(rhythm_error([&] { rtorch::head_signals_from_qk(q, x.k.to(cuda0), x.segments); }),
            rhythm_error([&] { rtorch::head_signals_from_qk(qc, x.k, x.segments); }));
}

}  // namespace
