// The three adapters agree: the same random maps and Q/K placed in a row-major Eigen::Tensor, an
// xt::xarray and an at::Tensor give identical per-head signals and identical gamma and shaped
// advantages from rhythm::credit_pipeline (exact equality: the core reads the same values through
// the same strides, whichever adapter made the view).
#include <rhythm/eigen.hpp>
#include <rhythm/torch.hpp>
#include <rhythm/xtensor.hpp>

#include <cstring>
#include <vector>

#include <xtensor/xadapt.hpp>

#include "../test_util.hpp"

namespace {
using namespace rt;
using rhythm::make_view;

constexpr i64 B = 6, H = 4, Hkv = 2, N = 64, d = 16;
using row_major4 = Eigen::Tensor<float, 4, Eigen::RowMajor>;

// One batch of data in plain vectors.
struct data {
  std::vector<rhythm::segment> segs;
  std::vector<float> q, k, maps, rewards{1, 0, 1, 1, 0, 0};
  std::vector<std::int64_t> ids{0, 0, 0, 5, 5, 5};
  explicit data(unsigned seed) {
    std::mt19937 rng(seed);
    for (i64 b = 0; b < B; ++b) segs.push_back(random_segment(rng, N));
    segs[0] = {0, 16, N};
    q = random_floats(rng, B * H * N * d, 1.5);
    k = random_floats(rng, B * Hkv * N * d, 1.5);
    // Random causal row-stochastic maps (padding and the upper triangle zero here: every adapter
    // holds the same bytes anyway).
    maps.assign(B * H * N * N, 0.0f);
    std::exponential_distribution<float> e(1.0f);
    for (i64 b = 0; b < B; ++b)
      for (i64 h = 0; h < H; ++h)
        for (i64 t = segs[b].begin; t < segs[b].end; ++t) {
          float* row = &maps[((b * H + h) * N + t) * N];
          float sum = 0;
          for (i64 s = segs[b].begin; s <= t; ++s) sum += row[s] = e(rng);
          for (i64 s = segs[b].begin; s <= t; ++s) row[s] /= sum;
        }
  }
};

template <class T>
std::vector<T> narrow_to(const std::vector<float>& v) {
  std::vector<T> out;
  for (float x : v) out.push_back(T(x));
  return out;
}

// The same elements in each library's container (row-major everywhere).
template <class EigenT, class T>
Eigen::Tensor<EigenT, 4, Eigen::RowMajor> eigen_tensor(const std::vector<T>& v, i64 a, i64 b, i64 c, i64 e) {
  static_assert(sizeof(EigenT) == sizeof(T));
  Eigen::Tensor<EigenT, 4, Eigen::RowMajor> t(a, b, c, e);
  std::memcpy(static_cast<void*>(t.data()), v.data(), v.size() * sizeof(T));
  return t;
}
template <class T>
xt::xarray<T> xt_array(const std::vector<T>& v, i64 a, i64 b, i64 c, i64 e) {
  auto x = xt::xarray<T>::from_shape({std::size_t(a), std::size_t(b), std::size_t(c), std::size_t(e)});
  std::memcpy(x.data(), v.data(), v.size() * sizeof(T));
  return x;
}
template <class T>
at::Tensor torch_tensor(const std::vector<T>& v, i64 a, i64 b, i64 c, i64 e) {
  return at::from_blob(const_cast<T*>(v.data()), {a, b, c, e}, rhythm::torch::scalar_type_of<T>()).clone();
}

// Signals read back into plain vectors, indexed [b, h] and [b, h, t].
struct signals {
  std::vector<float> span, waad, fai;
  template <class Span, class Waad, class Fai>
  static signals read(Span&& span_at, Waad&& waad_at, Fai&& fai_at) {
    signals s;
    for (i64 b = 0; b < B; ++b)
      for (i64 h = 0; h < H; ++h) {
        s.span.push_back(span_at(b, h));
        for (i64 t = 0; t < N; ++t) s.waad.push_back(waad_at(b, h, t)), s.fai.push_back(fai_at(b, h, t));
      }
    return s;
  }
};

signals of(const rhythm::eigen::head_signals& r) {
  return signals::read([&](i64 b, i64 h) { return r.span(b, h); }, [&](i64 b, i64 h, i64 t) { return r.waad(b, h, t); },
                       [&](i64 b, i64 h, i64 t) { return r.fai(b, h, t); });
}
signals of(const rhythm::xt::head_signals& r) {
  return signals::read([&](i64 b, i64 h) { return r.span(b, h); }, [&](i64 b, i64 h, i64 t) { return r.waad(b, h, t); },
                       [&](i64 b, i64 h, i64 t) { return r.fai(b, h, t); });
}
signals of(const rhythm::torch::head_signal_tensors& r) {
  const auto span = r.span.accessor<float, 2>();
  const auto waad = r.waad.accessor<float, 3>(), fai = r.fai.accessor<float, 3>();
  return signals::read([&](i64 b, i64 h) { return span[b][h]; }, [&](i64 b, i64 h, i64 t) { return waad[b][h][t]; },
                       [&](i64 b, i64 h, i64 t) { return fai[b][h][t]; });
}

void expect_equal(const signals& a, const signals& b, const char* what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(a.span, b.span);
  EXPECT_EQ(a.waad, b.waad);
  EXPECT_EQ(a.fai, b.fai);
}

template <class EigenT, class T>
void check_qk_signals(const data& x) {
  const auto qv = narrow_to<T>(x.q), kv = narrow_to<T>(x.k);
  const auto qe = eigen_tensor<EigenT>(qv, B, H, N, d), ke = eigen_tensor<EigenT>(kv, B, Hkv, N, d);
  const auto qx = xt_array(qv, B, H, N, d), kx = xt_array(kv, B, Hkv, N, d);
  const auto e = of(rhythm::eigen::head_signals_from_qk(rhythm::exec::par{2}, qe, ke, x.segs));
  const auto s = of(rhythm::xt::head_signals_from_qk(rhythm::exec::par{2}, qx, kx, x.segs));
  const auto t = of(rhythm::torch::head_signals_from_qk(torch_tensor(qv, B, H, N, d), torch_tensor(kv, B, Hkv, N, d),
                                                        x.segs, {}, 2));
  expect_equal(e, s, "eigen vs xtensor");
  expect_equal(e, t, "eigen vs torch");
  EXPECT_GT(*std::max_element(t.waad.begin(), t.waad.end()), 0.0f);
}

TEST(AdaptersAgree, SignalsFromQK) {
  const data x(1);
  check_qk_signals<float, float>(x);
  check_qk_signals<Eigen::bfloat16, rhythm::bfloat16>(x);
  check_qk_signals<Eigen::half, rhythm::half>(x);
}

TEST(AdaptersAgree, SignalsFromMaps) {
  const data x(2);
  const rhythm::signal_params p{.window = 5, .horizon = {.lo = 3, .hi = 30}};
  const auto me = eigen_tensor<float>(x.maps, B, H, N, N);
  const auto mx = xt_array(x.maps, B, H, N, N);
  const auto e = of(rhythm::eigen::head_signals_from_maps(rhythm::exec::seq{}, me, x.segs, p));
  const auto s = of(rhythm::xt::head_signals_from_maps(rhythm::exec::seq{}, mx, x.segs, p));
  const auto t = of(rhythm::torch::head_signals_from_maps(torch_tensor(x.maps, B, H, N, N), x.segs, p, 1));
  expect_equal(e, s, "eigen vs xtensor");
  expect_equal(e, t, "eigen vs torch");
}

// gamma and shaped of credit_pipeline runs fed by each adapter's views, as [B, N] row-major vectors.
struct credit {
  std::vector<float> gamma, shaped;
  std::int64_t anchors = 0;
};

template <bool FromMaps>
void check_pipeline(const data& x) {
  const rhythm::pipeline_params params{.signals = {.window = 6, .horizon = {.lo = 4, .hi = 40}}};
  const auto policy = rhythm::exec::par{2};
  const rhythm::shaping::coupled_rhythm shaping{};

  // Eigen: tensors for the attention, vectors for rewards and ids, a row-major matrix for gamma.
  credit e;
  {
    const auto me = eigen_tensor<float>(x.maps, B, H, N, N);
    const auto qe = eigen_tensor<float>(x.q, B, H, N, d), ke = eigen_tensor<float>(x.k, B, Hkv, N, d);
    const Eigen::VectorXf rewards = Eigen::Map<const Eigen::VectorXf>(x.rewards.data(), B);
    const Eigen::Matrix<std::int64_t, Eigen::Dynamic, 1> ids =
        Eigen::Map<const Eigen::Matrix<std::int64_t, Eigen::Dynamic, 1>>(x.ids.data(), B);
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> gamma(B, N), shaped(B, N);
    rhythm::credit_pipeline pipe;
    rhythm::pipeline_diagnostics diag;
    if constexpr (FromMaps)
      diag = pipe.run_from_maps(policy, rhythm::eigen::view(me), make_view(x.segs), rhythm::eigen::view(rewards),
                                rhythm::eigen::view(ids), shaping, rhythm::eigen::view(gamma),
                                rhythm::eigen::view(shaped), params);
    else
      diag = pipe.run_from_qk(policy, rhythm::eigen::view(qe), rhythm::eigen::view(ke), make_view(x.segs),
                              rhythm::eigen::view(rewards), rhythm::eigen::view(ids), shaping,
                              rhythm::eigen::view(gamma), rhythm::eigen::view(shaped), params);
    e = {{gamma.data(), gamma.data() + B * N}, {shaped.data(), shaped.data() + B * N}, diag.anchor};
  }
  // xtensor: xarrays throughout.
  credit s;
  {
    const auto mx = xt_array(x.maps, B, H, N, N);
    const auto qx = xt_array(x.q, B, H, N, d), kx = xt_array(x.k, B, Hkv, N, d);
    const xt::xarray<float> rewards = xt::adapt(x.rewards, {std::size_t(B)});
    const xt::xarray<std::int64_t> ids = xt::adapt(x.ids, {std::size_t(B)});
    xt::xarray<float> gamma = xt::zeros<float>({std::size_t(B), std::size_t(N)}), shaped = gamma;
    rhythm::credit_pipeline pipe;
    rhythm::pipeline_diagnostics diag;
    if constexpr (FromMaps)
      diag = pipe.run_from_maps(policy, rhythm::xt::view<4>(mx), make_view(x.segs), rhythm::xt::view<1>(rewards),
                                rhythm::xt::view<1>(ids), shaping, rhythm::xt::view<2>(gamma),
                                rhythm::xt::view<2>(shaped), params);
    else
      diag = pipe.run_from_qk(policy, rhythm::xt::view<4>(qx), rhythm::xt::view<4>(kx), make_view(x.segs),
                              rhythm::xt::view<1>(rewards), rhythm::xt::view<1>(ids), shaping,
                              rhythm::xt::view<2>(gamma), rhythm::xt::view<2>(shaped), params);
    s = {{gamma.data(), gamma.data() + B * N}, {shaped.data(), shaped.data() + B * N}, diag.anchor};
  }
  // LibTorch: credit_assigner, tensors in and out.
  credit t;
  {
    const at::Tensor rewards = at::from_blob(const_cast<float*>(x.rewards.data()), {B}, at::kFloat).clone();
    const at::Tensor ids = at::from_blob(const_cast<std::int64_t*>(x.ids.data()), {B}, at::kLong).clone();
    const at::Tensor segments = rhythm::torch::segments_tensor(x.segs);
    rhythm::torch::credit_assigner assign(shaping, params, 2);
    rhythm::torch::credit_result r;
    if constexpr (FromMaps)
      r = assign({.maps = torch_tensor(x.maps, B, H, N, N), .segments = segments, .rewards = rewards,
                  .group_ids = ids});
    else
      r = assign({.q = torch_tensor(x.q, B, H, N, d), .k = torch_tensor(x.k, B, Hkv, N, d), .segments = segments,
                  .rewards = rewards, .group_ids = ids});
    t = {{r.gamma.data_ptr<float>(), r.gamma.data_ptr<float>() + B * N},
         {r.shaped.data_ptr<float>(), r.shaped.data_ptr<float>() + B * N},
         r.diagnostics.values().anchor};
  }
  EXPECT_EQ(e.gamma, s.gamma);
  EXPECT_EQ(e.gamma, t.gamma);
  EXPECT_EQ(e.shaped, s.shaped);
  EXPECT_EQ(e.shaped, t.shaped);
  EXPECT_EQ(e.anchors, s.anchors);
  EXPECT_EQ(e.anchors, t.anchors);
  EXPECT_GT(e.anchors, 0);
  EXPECT_GT(*std::max_element(e.gamma.begin(), e.gamma.end()), 1.0f) << "some tokens are amplified";
}

TEST(AdaptersAgree, CreditPipelineFromQK) { check_pipeline<false>(data(3)); }
TEST(AdaptersAgree, CreditPipelineFromMaps) { check_pipeline<true>(data(4)); }

}  // namespace
