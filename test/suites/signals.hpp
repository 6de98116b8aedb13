#pragma once
// Signals from maps and from Q/K against the double-precision reference: a typed suite over the
// execution policy, reading and writing through rt::array (backend_memory.hpp), so that every
// backend instantiates the same bodies (INSTANTIATE_TYPED_TEST_SUITE_P(<backend>, Signals, <policies>)).
#include <cstdio>

#include "../test_util.hpp"

namespace signals_suite {
using namespace rt;

template <class P>
class Signals : public rt::backend_test<P> {};
TYPED_TEST_SUITE_P(Signals);

struct case_params {
  i64 B, H, N, W, lo, hi;  // hi < 0: unbounded
};

rhythm::signal_params to_params(const case_params& c) {
  return {.window = c.W, .horizon = {.lo = c.lo, .hi = c.hi < 0 ? rhythm::unbounded_horizon : c.hi}};
}

// Compares every output element with the reference computed from per-head maps.
template <class P>
void expect_matches_reference(const head_outputs<P>& outputs, const std::vector<ref::map>& maps,
                              const std::vector<rhythm::segment>& segs, const case_params& c, double tol) {
  const auto out = outputs.host();
  for (i64 b = 0; b < c.B; ++b)
    for (i64 h = 0; h < c.H; ++h) {
      const ref::map& A = maps[b * c.H + h];
      const auto g = to_ref(segs[b]);
      EXPECT_TRUE(close(out.span[b * c.H + h], ref::head_span(A, g), tol)) << "span b=" << b << " h=" << h;
      const auto w = ref::waad(A, g, c.W);
      const auto f = ref::fai(A, g, c.lo, c.hi);
      for (i64 t = 0; t < c.N; ++t) {
        EXPECT_TRUE(close(out.waad[(b * c.H + h) * c.N + t], w[t], tol)) << "waad b=" << b << " h=" << h << " t=" << t;
        EXPECT_TRUE(close(out.fai[(b * c.H + h) * c.N + t], f[t], tol)) << "fai b=" << b << " h=" << h << " s=" << t;
      }
    }
}

const case_params kCases[] = {
    {1, 1, 1, 10, 10, 100},  {2, 3, 7, 3, 1, 4},      {3, 4, 33, 10, 10, 100}, {2, 2, 70, 1, 0, 0},
    {1, 3, 130, 10, 10, 100}, {2, 2, 90, 200, 5, -1}, {1, 2, 150, 7, 20, 25},  {3, 1, 40, 10, 0, -1},
};

TYPED_TEST_P(Signals, MapsMatchReference) {
  using P = TypeParam;
  std::mt19937 rng(1234);
  for (const auto& c : kCases) {
    std::vector<rhythm::segment> segs;
    for (i64 b = 0; b < c.B; ++b) segs.push_back(random_segment(rng, c.N));
    random_maps maps(rng, c.B, c.H, c.N, segs);
    head_outputs<P> out(c.B, c.H, c.N);
    const auto policy = make_policy<P>();
    rhythm::head_signals_from_maps(policy, in<P>(maps.data, c.B, c.H, c.N, c.N), in<P>(segs), out.span, out.waad,
                                   out.fai, to_params(c));
    finish(policy);
    expect_matches_reference(out, maps.heads, segs, c, 1e-5);
  }
}

TYPED_TEST_P(Signals, MapsWithNonUnitStridesMatchContiguous) {
  using P = TypeParam;
  // The same maps stored transposed in memory ([B,H,s,t] layout) are read through strides.
  std::mt19937 rng(7);
  const case_params c{2, 3, 50, 10, 10, 100};
  std::vector<rhythm::segment> segs{random_segment(rng, c.N), random_segment(rng, c.N)};
  random_maps maps(rng, c.B, c.H, c.N, segs);
  std::vector<float> transposed(maps.data.size());
  for (i64 bh = 0; bh < c.B * c.H; ++bh)
    for (i64 t = 0; t < c.N; ++t)
      for (i64 s = 0; s < c.N; ++s) transposed[(bh * c.N + s) * c.N + t] = maps.data[(bh * c.N + t) * c.N + s];
  head_outputs<P> out(c.B, c.H, c.N);
  const auto policy = make_policy<P>();
  rhythm::head_signals_from_maps(
      policy, in_strided<P>(transposed, {c.B, c.H, c.N, c.N}, {c.H * c.N * c.N, c.N * c.N, 1, c.N}), in<P>(segs),
      out.span, out.waad, out.fai, to_params(c));
  finish(policy);
  expect_matches_reference(out, maps.heads, segs, c, 1e-5);
}

// Q/K inputs of element type T, with the double values the reference sees (the rounded ones).
template <class T>
struct random_qk {
  std::vector<T> q, k;
  std::vector<std::vector<std::vector<double>>> qd, kd;  // [b*H + h][t][c]
  random_qk(std::mt19937& rng, i64 B, i64 Hq, i64 Hkv, i64 N, i64 d, double sd) {
    auto fill = [&](i64 H, std::vector<T>& x, auto& xd) {
      auto f = random_floats(rng, B * H * N * d, sd);
      x.resize(f.size());
      xd.assign(B * H, std::vector<std::vector<double>>(N, std::vector<double>(d)));
      for (std::size_t i = 0; i < f.size(); ++i) {
        x[i] = T(f[i]);
        xd[i / (N * d)][(i / d) % N][i % d] = static_cast<float>(x[i]);
      }
    };
    fill(Hq, q, qd);
    fill(Hkv, k, kd);
  }
};

template <class T, class P>
void check_qk_against_reference(i64 B, i64 Hq, i64 Hkv, i64 N, i64 d, const case_params& c, double sd,
                                unsigned seed, P policy) {
  std::mt19937 rng(seed);
  std::vector<rhythm::segment> segs;
  for (i64 b = 0; b < B; ++b) segs.push_back(random_segment(rng, N));
  random_qk<T> x(rng, B, Hq, Hkv, N, d, sd);
  std::vector<ref::map> maps;
  for (i64 b = 0; b < B; ++b)
    for (i64 h = 0; h < Hq; ++h)
      maps.push_back(ref::softmax_map(x.qd[b * Hq + h], x.kd[b * Hkv + h / (Hq / Hkv)], to_ref(segs[b]),
                                      1.0 / std::sqrt(double(d))));
  head_outputs<P> out(B, Hq, N);
  rhythm::head_signals_from_qk(policy, in<P>(x.q, B, Hq, N, d), in<P>(x.k, B, Hkv, N, d), in<P>(segs), out.span,
                               out.waad, out.fai, to_params(c));
  finish(policy);
  case_params cc = c;
  cc.B = B, cc.H = Hq, cc.N = N;
  expect_matches_reference(out, maps, segs, cc, 1e-5);
}

TYPED_TEST_P(Signals, QKMatchesReferenceFloat) {
  const auto P = make_policy<TypeParam>();
  check_qk_against_reference<float>(2, 4, 4, 70, 16, {0, 0, 0, 10, 10, 100}, 1.0, 1, P);
  check_qk_against_reference<float>(1, 2, 2, 150, 64, {0, 0, 0, 10, 10, 100}, 1.0, 2, P);  // crosses tiles
  check_qk_against_reference<float>(3, 1, 1, 1, 8, {0, 0, 0, 10, 10, 100}, 1.0, 3, P);     // N = 1
  check_qk_against_reference<float>(1, 2, 1, 97, 3, {0, 0, 0, 200, 0, -1}, 2.0, 4, P);     // W > N, H_hi = inf
  check_qk_against_reference<float>(2, 3, 3, 66, 65, {0, 0, 0, 1, 30, 31}, 0.5, 5, P);     // odd d
}

TYPED_TEST_P(Signals, QKWithGroupedQueryAttention) {
  const auto P = make_policy<TypeParam>();
  check_qk_against_reference<float>(2, 8, 2, 60, 8, {0, 0, 0, 10, 10, 100}, 1.0, 11, P);  // 4 query heads per kv head
  check_qk_against_reference<float>(1, 6, 1, 45, 8, {0, 0, 0, 5, 3, 20}, 1.0, 12, P);     // multi-query
}

TYPED_TEST_P(Signals, QKHalfAndBfloat16AccumulateInFloat) {
  const auto P = make_policy<TypeParam>();
  check_qk_against_reference<rhythm::bfloat16>(2, 4, 2, 80, 32, {0, 0, 0, 10, 10, 100}, 1.0, 21, P);
  check_qk_against_reference<rhythm::half>(2, 4, 2, 80, 32, {0, 0, 0, 10, 10, 100}, 1.0, 22, P);
}

TYPED_TEST_P(Signals, QKAndMapsPathsAgree) {
  using P = TypeParam;
  // The Q/K path against the maps path fed with the float softmax maps of the same Q and K.
  std::mt19937 rng(99);
  const i64 B = 2, H = 4, N = 300, d = 64;
  const case_params c{B, H, N, 10, 10, 100};
  std::vector<rhythm::segment> segs{{0, 40, N}, {25, 100, N - 10}};
  random_qk<float> x(rng, B, H, H, N, d, 1.5);
  std::vector<float> maps(B * H * N * N, 0.0f);
  for (i64 bh = 0; bh < B * H; ++bh) {
    const auto A = ref::softmax_map(x.qd[bh], x.kd[bh], to_ref(segs[bh / H]), 1.0 / std::sqrt(double(d)));
    for (i64 t = 0; t < N; ++t)
      for (i64 s = 0; s < N; ++s) maps[(bh * N + t) * N + s] = static_cast<float>(A[t][s]);
  }
  head_outputs<P> maps_out(B, H, N), qk_out(B, H, N);
  const auto policy = make_policy<P>();
  rhythm::head_signals_from_maps(policy, in<P>(maps, B, H, N, N), in<P>(segs), maps_out.span, maps_out.waad,
                                 maps_out.fai, to_params(c));
  rhythm::head_signals_from_qk(policy, in<P>(x.q, B, H, N, d), in<P>(x.k, B, H, N, d), in<P>(segs), qk_out.span,
                               qk_out.waad, qk_out.fai, to_params(c));
  finish(policy);
  const auto from_maps = maps_out.host(), from_qk = qk_out.host();
  double worst = 0;
  auto agree = [&](const std::vector<float>& a, const std::vector<float>& b, const char* what) {
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_TRUE(close(a[i], b[i], 1e-5)) << what << " at " << i;
      worst = std::max(worst, std::abs(double(a[i]) - b[i]) / std::max(1.0, std::abs(double(b[i]))));
    }
  };
  agree(from_qk.span, from_maps.span, "span");
  agree(from_qk.waad, from_maps.waad, "waad");
  agree(from_qk.fai, from_maps.fai, "fai");
  std::printf("[ figure   ] maps vs Q/K path, N=%lld d=%lld: max |diff| / max(1, |value|) = %.3g\n", (long long)N,
              (long long)d, worst);
}

TYPED_TEST_P(Signals, EdgeCases) {
  using P = TypeParam;
  const auto policy = make_policy<P>();
  // Rows whose mass sits on the first real token: WAAD_t = min(t - begin, W), span = mean (t - begin),
  // FAI is 1 on the first token (when it has receivers) and 0 elsewhere.
  const i64 N = 30, begin = 4, rb = 9, end = 26;
  std::vector<float> maps(N * N, 0.0f);
  for (i64 t = begin; t < end; ++t) maps[t * N + begin] = 1.0f;
  std::vector<rhythm::segment> segs{{begin, rb, end}};
  head_outputs<P> outputs(1, 1, N);
  const rhythm::signal_params p{.window = 10, .horizon = {.lo = 10, .hi = 100}};
  rhythm::head_signals_from_maps(policy, in<P>(maps, 1, 1, N, N), in<P>(segs), outputs.span, outputs.waad, outputs.fai,
                                 p);
  finish(policy);
  const auto out = outputs.host();
  double span = 0;
  for (i64 t = 0; t < N; ++t) {
    EXPECT_FLOAT_EQ(out.waad[t], t >= rb && t < end ? float(std::min<i64>(t - begin, 10)) : 0.0f) << t;
    EXPECT_FLOAT_EQ(out.fai[t], t == begin ? 1.0f : 0.0f) << t;
    if (t >= rb && t < end) span += double(t - begin);
  }
  EXPECT_FLOAT_EQ(out.span[0], float(span / double(end - rb)));
  // Tokens within H_lo of the end have no receivers: FAI 0 and not eligible.
  EXPECT_FALSE(rhythm::fai_eligible(end - 10, rb, end, p.horizon));
  EXPECT_TRUE(rhythm::fai_eligible(end - 11, rb, end, p.horizon));

  // A response of length 1, with W >= N: the map row is uniform over [0, t].
  const i64 M = 5;
  std::vector<float> uni(M * M, 0.0f);
  for (i64 t = 0; t < M; ++t)
    for (i64 s = 0; s <= t; ++s) uni[t * M + s] = 1.0f / float(t + 1);
  std::vector<rhythm::segment> one{{0, M - 1, M}};
  head_outputs<P> out1(1, 1, M);
  rhythm::head_signals_from_maps(policy, in<P>(uni, 1, 1, M, M), in<P>(one), out1.span, out1.waad, out1.fai,
                                 {.window = 50, .horizon = {.lo = 0, .hi = rhythm::unbounded_horizon}});
  finish(policy);
  const auto o1 = out1.host();
  EXPECT_FLOAT_EQ(o1.waad[M - 1], 2.0f);  // mean of 4,3,2,1,0
  EXPECT_FLOAT_EQ(o1.span[0], 2.0f);
  for (i64 s = 0; s < M; ++s) EXPECT_FLOAT_EQ(o1.fai[s], 0.2f) << s;  // the single receiver t = 4

  // An empty response: every output is zero.
  std::vector<rhythm::segment> empty{{0, M, M}};
  head_outputs<P> out2(1, 1, M);
  rhythm::head_signals_from_maps(policy, in<P>(uni, 1, 1, M, M), in<P>(empty), out2.span, out2.waad, out2.fai);
  finish(policy);
  const auto o2 = out2.host();
  EXPECT_EQ(o2.span[0], 0.0f);
  for (i64 t = 0; t < M; ++t) EXPECT_EQ(o2.waad[t] + o2.fai[t], 0.0f);
}

TYPED_TEST_P(Signals, GroupMeanEqualsSignalsOfTheAveragedMap) {
  using P = TypeParam;
  std::mt19937 rng(5);
  const case_params c{2, 5, 60, 10, 10, 100};
  std::vector<rhythm::segment> segs{random_segment(rng, c.N), random_segment(rng, c.N)};
  random_maps maps(rng, c.B, c.H, c.N, segs);
  head_outputs<P> out(c.B, c.H, c.N);
  const auto policy = make_policy<P>();
  rhythm::head_signals_from_maps(policy, in<P>(maps.data, c.B, c.H, c.N, c.N), in<P>(segs), out.span, out.waad,
                                 out.fai, to_params(c));
  auto role_out = rt::out<P>(rhythm::head_role::none, c.B, c.H);
  rhythm::head_groups(policy, out.span, role_out, {.fraction = 0.4});
  auto local_out = rt::out<P>(-7.0f, c.B, c.N), global_out = rt::out<P>(-7.0f, c.B, c.N);
  rhythm::group_mean(policy, out.waad, role_out, rhythm::head_role::local, local_out);
  rhythm::group_mean(policy, out.fai, role_out, rhythm::head_role::global, global_out);
  finish(policy);
  const auto roles = role_out.host();
  const auto local_waad = local_out.host(), global_fai = global_out.host();
  for (i64 b = 0; b < c.B; ++b) {
    std::vector<double> spans;
    for (i64 h = 0; h < c.H; ++h) spans.push_back(ref::head_span(maps.heads[b * c.H + h], to_ref(segs[b])));
    const auto want_roles = ref::head_groups(spans, 0.4);
    ref::map loc(c.N, std::vector<double>(c.N, 0.0)), glob = loc;  // averaged maps, built only here
    double nl = 0, ng = 0;
    for (i64 h = 0; h < c.H; ++h) {
      EXPECT_EQ(rhythm::bits(roles[b * c.H + h]), want_roles[h]) << "b=" << b << " h=" << h;
      const bool l = want_roles[h] & 1, g = want_roles[h] & 2;
      nl += l, ng += g;
      for (i64 t = 0; t < c.N; ++t)
        for (i64 s = 0; s < c.N; ++s) {
          if (l) loc[t][s] += maps.heads[b * c.H + h][t][s];
          if (g) glob[t][s] += maps.heads[b * c.H + h][t][s];
        }
    }
    for (auto& row : loc)
      for (auto& v : row) v /= nl;
    for (auto& row : glob)
      for (auto& v : row) v /= ng;
    const auto w = ref::waad(loc, to_ref(segs[b]), c.W);
    const auto f = ref::fai(glob, to_ref(segs[b]), c.lo, c.hi);
    for (i64 t = 0; t < c.N; ++t) {
      EXPECT_TRUE(close(local_waad[b * c.N + t], w[t], 1e-5)) << "t=" << t;
      EXPECT_TRUE(close(global_fai[b * c.N + t], f[t], 1e-5)) << "s=" << t;
    }
  }
}

REGISTER_TYPED_TEST_SUITE_P(Signals, MapsMatchReference, MapsWithNonUnitStridesMatchContiguous, QKMatchesReferenceFloat,
                            QKWithGroupedQueryAttention, QKHalfAndBfloat16AccumulateInFloat, QKAndMapsPathsAgree,
                            EdgeCases, GroupMeanEqualsSignalsOfTheAveragedMap);

}  // namespace signals_suite
