// The naive LibTorch baseline (the only translation unit that includes torch). See naive_torch.hpp.
#include "naive_torch.hpp"

#include <torch/torch.h>
#include <torch/version.h>

#include <c10/core/Allocator.h>
#include <c10/util/ThreadLocalDebugInfo.h>

#include <chrono>
#include <cmath>
#include <limits>

#include "common.hpp"

namespace bench {
namespace {

/// LibTorch's CPU allocator reports every tensor allocation (+bytes) and release (-bytes) to the
/// MemoryReportingInfoBase installed as PROFILER_STATE debug info on the allocating thread; this one
/// forwards them to the benchmark's allocation tracker.
struct tracker_hook final : c10::MemoryReportingInfoBase {
  void reportMemoryUsage(void*, std::int64_t alloc_size, std::int64_t, std::int64_t, c10::Device) override {
    tracker().add(alloc_size);
  }
  bool memoryProfilingEnabled() const override { return true; }
};

std::vector<float> to_vector(const torch::Tensor& t) {
  const torch::Tensor c = t.contiguous().to(torch::kFloat);
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

}  // namespace

struct naive_runner::impl {
  torch::Tensor q, k;  // [B,H,N,d], [B,Hkv,N,d]; float or bfloat16
  std::int64_t B, H, Hkv, N, d;
  rhythm::segment seg;
  rhythm::signal_params params;
  torch::Tensor span, waad, fai;  // results of the last call

  void run() {
    c10::InferenceMode guard;
    span = waad = fai = torch::Tensor();
    const std::int64_t R = seg.end - seg.response_begin;
    const double scale = params.scale > 0.0f ? params.scale : 1.0 / std::sqrt(static_cast<double>(d));

    torch::Tensor qf = q, kf = k;
    if (qf.scalar_type() != torch::kFloat) {  // bf16 inputs: upcast, then the float path
      qf = qf.to(torch::kFloat);
      kf = kf.to(torch::kFloat);
    }
    if (Hkv != H) kf = kf.repeat_interleave(H / Hkv, 1);  // GQA: query head h reads kv head h / (H / Hkv)

    // The materialised map.
    torch::Tensor scores = torch::matmul(qf, kf.transpose(-2, -1));  // [B,H,N,N]
    scores.mul_(scale);
    const torch::Tensor pos = torch::arange(N, torch::TensorOptions().dtype(torch::kFloat));
    const torch::Tensor dist = pos.unsqueeze(1) - pos.unsqueeze(0);                  // [N,N]: t - s
    const torch::Tensor key_real = pos.ge(static_cast<double>(seg.begin));           // [N]: s >= begin
    scores.masked_fill_(dist.lt(0).logical_or(key_real.logical_not()), -std::numeric_limits<float>::infinity());
    const torch::Tensor A = torch::softmax(scores, -1);  // [B,H,N,N]; rows t < begin are NaN and never read
    scores = torch::Tensor();

    // Reductions over the response rows.
    const torch::Tensor Ar = A.narrow(2, seg.response_begin, R);                     // [B,H,R,N]
    const torch::Tensor Dr = dist.narrow(0, seg.response_begin, R);                  // [R,N]
    const torch::Tensor Dpos = Dr.clamp_min(0);
    span = (Ar * Dpos).sum(-1).mean(-1);                                              // [B,H]
    const torch::Tensor waad_r = (Ar * Dpos.clamp_max(static_cast<double>(params.window))).sum(-1);  // [B,H,R]
    const torch::Tensor band = Dr.ge(static_cast<double>(params.horizon.lo))
                                   .logical_and(Dr.le(static_cast<double>(params.horizon.hi)))
                                   .logical_and(key_real.unsqueeze(0))
                                   .to(torch::kFloat);                                // [R,N]
    const torch::Tensor colsum = (Ar * band).sum(2);                                 // [B,H,N]
    const torch::Tensor receivers = band.sum(0);                                     // [N]: |T(s)|
    fai = torch::where(receivers.gt(0), colsum / receivers.clamp_min(1), torch::zeros_like(colsum));
    waad = torch::zeros({B, H, N}, torch::TensorOptions().dtype(torch::kFloat));
    waad.narrow(2, seg.response_begin, R).copy_(waad_r);
  }
};

naive_runner::naive_runner(const std::vector<float>& q, const std::vector<float>& k, std::int64_t B, std::int64_t H,
                           std::int64_t Hkv, std::int64_t N, std::int64_t d, rhythm::segment seg,
                           rhythm::signal_params params, bool bf16)
    : impl_(std::make_unique<impl>()) {
  const auto dtype = bf16 ? torch::kBFloat16 : torch::kFloat;
  impl_->q = torch::from_blob(const_cast<float*>(q.data()), {B, H, N, d}, torch::kFloat).to(dtype, false, true);
  impl_->k = torch::from_blob(const_cast<float*>(k.data()), {B, Hkv, N, d}, torch::kFloat).to(dtype, false, true);
  impl_->B = B, impl_->H = H, impl_->Hkv = Hkv, impl_->N = N, impl_->d = d;
  impl_->seg = seg;
  impl_->params = params;
}

naive_runner::~naive_runner() = default;

void naive_runner::run() { impl_->run(); }

void naive_runner::release() { impl_->span = impl_->waad = impl_->fai = torch::Tensor(); }

naive_outputs naive_runner::outputs() const {
  return {to_vector(impl_->span), to_vector(impl_->waad), to_vector(impl_->fai)};
}

std::int64_t naive_runner::tracked_peak_bytes() {
  release();  // the previous call's results are not part of this call
  c10::DebugInfoGuard guard(c10::DebugInfoKind::PROFILER_STATE, std::make_shared<tracker_hook>());
  const std::int64_t base = tracker().reset_peak();
  impl_->run();
  return tracker().peak.load() - base;
}

void torch_set_threads(int threads) { torch::set_num_threads(threads); }
int torch_get_threads() { return torch::get_num_threads(); }

std::string torch_version_string() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

double torch_matmul_gflops() {
  c10::InferenceMode guard;
  const torch::Tensor a = torch::rand({512, 512}), b = torch::rand({512, 512});
  for (int i = 0; i < 3; ++i) torch::matmul(a, b);
  const int reps = 20;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) torch::matmul(a, b);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * 512.0 * 512.0 * 512.0 * reps / s * 1e-9;
}

}  // namespace bench
