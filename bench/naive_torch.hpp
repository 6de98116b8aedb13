#pragma once
// The naive LibTorch baseline, behind a torch-free interface (torch is compiled in naive_torch.cpp only).
//
// What it computes per call (the paper's system: the attention map is materialised, then reduced):
//   scores = (Q K^T) * scale                         [B, H, N, N] float
//   scores[t, s] = -inf where s > t or s < begin     (causal and left-padding mask, in place)
//   A = softmax(scores, -1)                           [B, H, N, N] float (scores released after)
//   span = mean_{t in R} sum_s A[t,s] (t - s)
//   waad = sum_s A[t,s] min(t - s, W)                 for t in R
//   fai  = (sum_{t in R, H_lo <= t-s <= H_hi} A[t,s]) / |T(s)|, 0 where |T(s)| = 0
// with ordinary torch ops (each elementwise product of a [B,H,|R|,N] slice allocates its temporary).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <rhythm/core/segments.hpp>
#include <rhythm/core/signal_types.hpp>

namespace bench {

struct naive_outputs {
  std::vector<float> span;  // [B*H]
  std::vector<float> waad;  // [B*H*N]
  std::vector<float> fai;   // [B*H*N]
};

class naive_runner {
 public:
  /// q [B,H,N,d], k [B,Hkv,N,d] row-major floats; copied into torch tensors (as bfloat16 if `bf16`,
  /// in which case run() upcasts them to float first). Every sequence uses `seg`.
  naive_runner(const std::vector<float>& q, const std::vector<float>& k, std::int64_t B, std::int64_t H,
               std::int64_t Hkv, std::int64_t N, std::int64_t d, rhythm::segment seg, rhythm::signal_params params,
               bool bf16);
  ~naive_runner();
  naive_runner(const naive_runner&) = delete;
  naive_runner& operator=(const naive_runner&) = delete;

  /// One call of the naive path; its results are kept until the next call or release().
  void run();
  /// Drops the kept results.
  void release();
  naive_outputs outputs() const;
  /// Peak extra bytes of one call: torch tensor storage reported to the profiler hook plus operator new.
  std::int64_t tracked_peak_bytes();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

void torch_set_threads(int threads);
int torch_get_threads();
std::string torch_version_string();
/// GFLOP/s of a 512 x 512 float matmul through LibTorch (tells OpenBLAS from the reference BLAS).
double torch_matmul_gflops();

}  // namespace bench
