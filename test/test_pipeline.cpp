// The one-call pipeline against the stages called one by one, on every host backend.
#include "test_util.hpp"

namespace {
using namespace rt;

template <class P>
class Pipeline : public ::testing::Test {};
TYPED_TEST_SUITE(Pipeline, host_policies);

// A batch of 2 groups x 3 samples with Q/K, their float softmax maps, rewards and group ids.
struct batch {
  static constexpr i64 B = 6, H = 4, Hkv = 2, N = 90, d = 16;
  std::vector<rhythm::segment> segs;
  std::vector<float> q, k, maps, rewards{1, 0, 1, 0, 0, 1};
  std::vector<std::int64_t> ids{7, 7, 7, -3, -3, -3};
  explicit batch(unsigned seed) {
    std::mt19937 rng(seed);
    for (i64 b = 0; b < B; ++b) segs.push_back(random_segment(rng, N));
    segs[1] = {0, 20, N};  // no padding
    q = random_floats(rng, B * H * N * d, 1.5);
    k = random_floats(rng, B * Hkv * N * d, 1.5);
    maps.assign(B * H * N * N, 0.0f);
    for (i64 b = 0; b < B; ++b)
      for (i64 h = 0; h < H; ++h) {
        std::vector<std::vector<double>> qd(N, std::vector<double>(d)), kd = qd;
        for (i64 t = 0; t < N; ++t)
          for (i64 c = 0; c < d; ++c) {
            qd[t][c] = q[((b * H + h) * N + t) * d + c];
            kd[t][c] = k[((b * Hkv + h / 2) * N + t) * d + c];
          }
        const auto A = ref::softmax_map(qd, kd, to_ref(segs[b]), 1.0 / std::sqrt(double(d)));
        for (i64 t = 0; t < N; ++t)
          for (i64 s = 0; s < N; ++s) maps[((b * H + h) * N + t) * N + s] = static_cast<float>(A[t][s]);
      }
  }
  auto maps_view() const { return rhythm::make_view(maps, B, H, N, N); }
  auto q_view() const { return rhythm::make_view(q, B, H, N, d); }
  auto k_view() const { return rhythm::make_view(k, B, Hkv, N, d); }
};

struct outputs {
  std::vector<float> gamma = std::vector<float>(batch::B * batch::N, -7.0f);
  std::vector<float> shaped = std::vector<float>(batch::B * batch::N, -7.0f);
  auto gamma_view() { return rhythm::make_view(gamma, batch::B, batch::N); }
  auto shaped_view() { return rhythm::make_view(shaped, batch::B, batch::N); }
};

// The stages one by one, exactly as DESIGN §1 chains them.
template <class P, class Shaping>
outputs by_stages(P policy, const batch& x, const Shaping& shaping, const rhythm::pipeline_params& p) {
  const i64 B = batch::B, H = batch::H, N = batch::N;
  head_outputs<P> h(B, H, N);
  rhythm::head_signals_from_maps(policy, x.maps_view(), rhythm::make_view(x.segs), h.span, h.waad,
                                 h.fai, p.signals);
  std::vector<rhythm::head_role> roles(B * H);
  auto rv = rhythm::make_view(roles, B, H);
  rhythm::head_groups(policy, h.span, rv, p.groups);
  std::vector<float> waad(B * N), fai(B * N), adv(B);
  auto wv = rhythm::make_view(waad, B, N);
  auto fv = rhythm::make_view(fai, B, N);
  rhythm::group_mean(policy, h.waad, rv, rhythm::head_role::local, wv);
  rhythm::group_mean(policy, h.fai, rv, rhythm::head_role::global, fv);
  std::vector<rhythm::token_flag> flags(B * N);
  auto flv = rhythm::make_view(flags, B, N);
  rhythm::token_sets(policy, wv, fv, rhythm::make_view(x.segs), flv, p.tokens());
  rhythm::grpo_advantages(policy, rhythm::make_view(x.rewards), rhythm::make_view(x.ids), rhythm::make_view(adv),
                          p.advantages);
  outputs o;
  rhythm::shaping_factors(policy, shaping, flv, rhythm::make_view(x.segs), rhythm::make_view(adv), o.gamma_view(),
                          p.shaping);
  rhythm::shaped_advantages(policy, o.gamma_view(), rhythm::make_view(adv), rhythm::make_view(x.segs), o.shaped_view());
  return o;
}

TYPED_TEST(Pipeline, FromMapsEqualsTheStagesOneByOne) {
  const batch x(1);
  const auto P = make_policy<TypeParam>();
  const rhythm::pipeline_params params{.signals = {.window = 8, .horizon = {.lo = 5, .hi = 40}}};
  const auto want = by_stages(P, x, rhythm::shaping::coupled_rhythm{}, params);
  rhythm::credit_pipeline pipe({batch::B, batch::H, batch::N});
  outputs got;
  const auto diag = pipe.run_from_maps(P, x.maps_view(), rhythm::make_view(x.segs), rhythm::make_view(x.rewards),
                                       rhythm::make_view(x.ids), rhythm::shaping::coupled_rhythm{}, got.gamma_view(),
                                       got.shaped_view(), params);
  EXPECT_EQ(got.gamma, want.gamma);
  EXPECT_EQ(got.shaped, want.shaped);
  // Diagnostics agree with the flags and gamma they summarise.
  i64 tokens = 0, preplan = 0, anchor = 0, dominated = 0, intro = 0, amplified = 0;
  double gamma_sum = 0;
  for (i64 b = 0; b < batch::B; ++b)
    for (i64 t = x.segs[b].response_begin; t < x.segs[b].end; ++t) {
      const auto f = pipe.flags()(b, t);
      using rhythm::token_flag;
      ++tokens, preplan += any(f & token_flag::preplan), anchor += any(f & token_flag::anchor),
          dominated += any(f & token_flag::dominated), intro += any(f & token_flag::intro);
      gamma_sum += got.gamma[b * batch::N + t];
      amplified += got.gamma[b * batch::N + t] > 1.0f;
    }
  EXPECT_EQ(diag.response_tokens, tokens);
  EXPECT_EQ(diag.preplan, preplan);
  EXPECT_EQ(diag.anchor, anchor);
  EXPECT_EQ(diag.dominated, dominated);
  EXPECT_EQ(diag.intro, intro);
  EXPECT_GT(preplan, 0);
  EXPECT_GT(anchor, 0);
  EXPECT_DOUBLE_EQ(diag.mean_gamma, gamma_sum / double(tokens));
  EXPECT_DOUBLE_EQ(diag.amplified_share, double(amplified) / double(tokens));
}

TYPED_TEST(Pipeline, FromQKMatchesFromMaps) {
  // Same attention by both routes: signals agree to 1e-5, and so gamma wherever no selection sits
  // on a near-tie; with these seeds the sets come out identical.
  const batch x(2);
  const auto P = make_policy<TypeParam>();
  rhythm::credit_pipeline from_maps, from_qk;
  outputs a, b;
  from_maps.run_from_maps(P, x.maps_view(), rhythm::make_view(x.segs), rhythm::make_view(x.rewards),
                          rhythm::make_view(x.ids), rhythm::shaping::global_anchor{}, a.gamma_view(), a.shaped_view());
  from_qk.run_from_qk(P, x.q_view(), x.k_view(), rhythm::make_view(x.segs), rhythm::make_view(x.rewards),
                      rhythm::make_view(x.ids), rhythm::shaping::global_anchor{}, b.gamma_view(), b.shaped_view());
  for (i64 i = 0; i < batch::B * batch::N; ++i) {
    EXPECT_TRUE(close(from_qk.waad().data_handle()[i], from_maps.waad().data_handle()[i], 1e-5)) << i;
    EXPECT_TRUE(close(from_qk.fai().data_handle()[i], from_maps.fai().data_handle()[i], 1e-5)) << i;
  }
  EXPECT_EQ(a.gamma, b.gamma);
}

TYPED_TEST(Pipeline, UniformGivesPlainGrpoAndBuffersAreReused) {
  const batch x(3);
  const auto P = make_policy<TypeParam>();
  rhythm::credit_pipeline pipe;  // unsized: grows on the first run
  outputs o;
  for (int run = 0; run < 2; ++run)
    pipe.run_from_qk(P, x.q_view(), x.k_view(), rhythm::make_view(x.segs), rhythm::make_view(x.rewards),
                     rhythm::make_view(x.ids), rhythm::shaping::uniform{}, o.gamma_view(), o.shaped_view());
  for (i64 b = 0; b < batch::B; ++b)
    for (i64 t = 0; t < batch::N; ++t) {
      const bool r = x.segs[b].in_response(t);
      EXPECT_EQ(o.gamma[b * batch::N + t], 1.0f);
      EXPECT_EQ(o.shaped[b * batch::N + t], r ? pipe.advantages()(b) : 0.0f);
    }
  // Group {1, 0, 1}: mean 2/3, unbiased std 0.57735: advantage of a correct sample = 0.57735.
  EXPECT_NEAR(pipe.advantages()(0), (1.0 - 2.0 / 3.0) / (std::sqrt(1.0 / 3.0) + 1e-6), 1e-6);
}

// Sequences of length 0: nothing to shape and no error (empty buffers have stride 0 somewhere).
TYPED_TEST(Pipeline, LengthZeroFindsNothing) {
  const auto P = make_policy<TypeParam>();
  const i64 B = 3, H = 4, Hkv = 2, d = 16;
  const std::vector<float> q, k, maps, rewards{1, 0, 1};
  const std::vector<std::int64_t> ids{0, 0, 0};
  const std::vector<rhythm::segment> segs(B, rhythm::segment{0, 0, 0});
  std::vector<float> gamma, shaped;
  rhythm::credit_pipeline pipe;
  const auto from_qk = pipe.run_from_qk(P, rhythm::make_view(q, B, H, 0, d), rhythm::make_view(k, B, Hkv, 0, d),
                                        rhythm::make_view(segs), rhythm::make_view(rewards), rhythm::make_view(ids),
                                        rhythm::shaping::coupled_rhythm{}, rhythm::make_view(gamma, B, 0),
                                        rhythm::make_view(shaped, B, 0));
  const auto from_maps = pipe.run_from_maps(P, rhythm::make_view(maps, B, H, 0, 0), rhythm::make_view(segs),
                                            rhythm::make_view(rewards), rhythm::make_view(ids),
                                            rhythm::shaping::coupled_rhythm{}, rhythm::make_view(gamma, B, 0),
                                            rhythm::make_view(shaped, B, 0), {.pooled_groups = true});
  for (const auto& diag : {from_qk, from_maps}) {
    EXPECT_EQ(diag.response_tokens, 0);
    EXPECT_EQ(diag.preplan + diag.anchor, 0);
    EXPECT_EQ(diag.mean_gamma, 1.0);
  }
}

TYPED_TEST(Pipeline, PooledGroupsGiveOneRankingForTheBatch) {
  const batch x(4);
  const auto P = make_policy<TypeParam>();
  rhythm::credit_pipeline pipe;
  outputs o;
  pipe.run_from_maps(P, x.maps_view(), rhythm::make_view(x.segs), rhythm::make_view(x.rewards),
                     rhythm::make_view(x.ids), rhythm::shaping::local_chunk{}, o.gamma_view(), o.shaped_view(),
                     {.pooled_groups = true});
  std::vector<rhythm::head_role> want(batch::H);
  rhythm::pooled_head_groups(P, pipe.head_spans(), rhythm::make_view(want));
  for (i64 b = 0; b < batch::B; ++b)
    for (i64 h = 0; h < batch::H; ++h) EXPECT_EQ(pipe.head_roles()(b, h), want[h]) << b << " " << h;
}

TEST(PipelineErrors, NothingIsWrittenOnError) {
  const batch x(5);
  rhythm::credit_pipeline pipe;
  outputs o;
  auto untouched = [&] {
    return std::all_of(o.gamma.begin(), o.gamma.end(), [](float v) { return v == -7.0f; }) &&
           std::all_of(o.shaped.begin(), o.shaped.end(), [](float v) { return v == -7.0f; });
  };
  auto run = [&](const auto& rewards, const auto& shaped, const rhythm::pipeline_params& p) {
    pipe.run_from_qk(rhythm::exec::seq{}, x.q_view(), x.k_view(), rhythm::make_view(x.segs), rewards,
                     rhythm::make_view(x.ids), rhythm::shaping::coupled_rhythm{}, o.gamma_view(), shaped, p);
  };
  auto expect = [&](auto&& f, rhythm::errc code, const char* fragment) {
    try {
      f();
      ADD_FAILURE() << "no error";
    } catch (const rhythm::error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
    EXPECT_TRUE(untouched());
  };
  std::vector<float> short_shaped(batch::B * (batch::N - 1));
  expect([&] { run(rhythm::make_view(x.rewards), rhythm::make_view(short_shaped, batch::B, batch::N - 1), {}); },
         rhythm::errc::shape_mismatch, "'shaped'");
  std::vector<float> five(5, 1.0f);
  expect([&] { run(rhythm::make_view(five), o.shaped_view(), {}); }, rhythm::errc::shape_mismatch, "'rewards'");
  expect([&] { run(rhythm::make_view(x.rewards), o.shaped_view(), {.selection = {.q = 0.0}}); },
         rhythm::errc::bad_parameter, "'params.selection.q'");
  std::vector<float> nan_rewards = x.rewards;
  nan_rewards[2] = std::nanf("");
  expect([&] { run(rhythm::make_view(nan_rewards), o.shaped_view(), {}); }, rhythm::errc::non_finite, "'rewards'");
  expect([&] { run(rhythm::make_view(x.rewards), o.gamma_view(), {}); }, rhythm::errc::aliasing, "gamma, shaped");
  const rhythm::view<float, 2> broadcast(o.shaped.data(), {batch::B, batch::N}, {0, 1});
  expect([&] { run(rhythm::make_view(x.rewards), broadcast, {}); }, rhythm::errc::bad_stride, "'shaped'");
  // rewards read from the buffer that shaped writes (its -7s are finite: only the overlap is wrong)
  expect([&] { run(rhythm::make_view(o.shaped.data(), batch::B), o.shaped_view(), {}); }, rhythm::errc::aliasing,
         "'shaped'");
}

}  // namespace
