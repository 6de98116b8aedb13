// Consumer smoke test of the installed adapters: the same uniform map through Eigen, xtensor and LibTorch.
#include <cstdio>

#include <rhythm/eigen.hpp>
#include <rhythm/torch.hpp>
#include <rhythm/xtensor.hpp>

int main() {
  const std::int64_t N = 16;
  const at::Tensor maps = at::tril(at::ones({1, 1, N, N})) / at::arange(1, N + 1, at::kFloat).view({1, 1, N, 1});
  const std::vector<rhythm::segment> segs{{0, 4, N}};
  const auto t = rhythm::torch::head_signals_from_maps(maps, segs);
  Eigen::Tensor<float, 4, Eigen::RowMajor> em(1, 1, N, N);
  std::copy(maps.data_ptr<float>(), maps.data_ptr<float>() + N * N, em.data());
  const auto e = rhythm::eigen::head_signals_from_maps(rhythm::exec::seq{}, em, segs, {});
  xt::xarray<float> xm = xt::zeros<float>({1, 1, int(N), int(N)});
  std::copy(maps.data_ptr<float>(), maps.data_ptr<float>() + N * N, xm.data());
  const auto x = rhythm::xt::head_signals_from_maps(rhythm::exec::seq{}, xm, segs, {});
  const float a = t.waad[0][0][4].item<float>(), b = e.waad(0, 0, 4), c = x.waad(0, 0, 4);
  const bool ok = a == b && b == c && a > 1.9999f && a < 2.0001f;  // (4+3+2+1+0)/5
  std::printf("rhythm adapters consumer: waad[4] = %g, %g, %g (%s)\n", a, b, c, ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
