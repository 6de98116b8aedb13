// Token stage (include/rhythm/tokens): WAAD jumps, top-q, preplan/anchor/dominated/intro sets, peaks and
// rhythm statistics against the double-precision reference of reference_tokens.hpp, on hand-made
// sawtooth/stripe fixtures whose sets are known by construction, on properties, and on every error.
#include <rhythm/tokens/peaks.hpp>
#include <rhythm/tokens/token_sets.hpp>
#include <rhythm/tokens/top_q.hpp>

#include <string>

#include "reference_tokens.hpp"
#include "test_util.hpp"

namespace {
using namespace rt;
using u8 = std::uint8_t;
using rhythm::token_flag;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

template <class P>
class Tokens : public ::testing::Test {};
TYPED_TEST_SUITE(Tokens, host_policies);

// Token signals of a batch, [B, N]; NaN wherever the library must not read.
struct batch {
  i64 B, N;
  std::vector<rhythm::segment> segs;
  std::vector<float> waad, fai, entropy;
  batch(i64 b, i64 n) : B(b), N(n), waad(b * n, kNaN), fai(b * n, kNaN), entropy(b * n, kNaN) {}
  rhythm::view<const float, 2> view(const std::vector<float>& x) const { return {x.data(), {B, N}}; }
  std::vector<double> row(const std::vector<float>& x, i64 b) const { return {x.begin() + b * N, x.begin() + (b + 1) * N}; }
  std::vector<std::vector<double>> rows(const std::vector<float>& x) const {
    std::vector<std::vector<double>> r;
    for (i64 b = 0; b < B; ++b) r.push_back(row(x, b));
    return r;
  }
  std::vector<ref::seg> ref_segs() const {
    std::vector<ref::seg> r;
    for (const auto& s : segs) r.push_back(to_ref(s));
    return r;
  }
};

rhythm::token_params to_params(const ref::token_options& o) {
  return {.q = o.q,
          .bottom = o.bottom,
          .dominance_window = o.k,
          .dominance_threshold = o.median_delta ? rhythm::dominance_threshold_mode::median_delta
                                                : rhythm::dominance_threshold_mode::loc_threshold,
          .signals = {.horizon_lo = o.lo, .horizon_hi = o.hi < 0 ? rhythm::unbounded_horizon : o.hi}};
}

// Values k/64 with k uniform in [0, levels): exact in float, so jumps and medians are exact too; few
// levels give many ties. Sequence 1 has a response of length 1, sequence 2 an empty one. WAAD is NaN
// outside R; FAI is 1000 on the prompt (it would win any selection it leaked into) and, on the
// ineligible response tail, NaN (`tail_zero` false: never read by token_sets) or 0 (as head_signals writes).
batch random_batch(std::mt19937& rng, i64 B, i64 N, int levels, const ref::token_options& o, bool tail_zero) {
  batch x(B, N);
  for (i64 b = 0; b < B; ++b) x.segs.push_back(random_segment(rng, N));
  if (B > 1) x.segs[1].response_begin = x.segs[1].end - 1;
  if (B > 2) x.segs[2].response_begin = x.segs[2].end;
  std::uniform_int_distribution<int> level(0, levels - 1);
  for (i64 b = 0; b < B; ++b) {
    const auto g = to_ref(x.segs[b]);
    const auto eligible = ref::fai_eligible(g, N, o.lo, o.hi);
    for (i64 t = g.begin; t < g.response_begin; ++t) x.fai[b * N + t] = 1000.0f;
    for (i64 t = g.response_begin; t < g.end; ++t) {
      x.waad[b * N + t] = float(level(rng)) / 64.0f;
      x.fai[b * N + t] = eligible[t] ? float(level(rng)) / 64.0f : (tail_zero ? 0.0f : kNaN);
      x.entropy[b * N + t] = float(level(rng)) / 64.0f;
    }
  }
  return x;
}

// NaN-aware exact comparison of a float output with the reference value rounded to float.
::testing::AssertionResult same(float got, double want) {
  if ((std::isnan(got) && std::isnan(want)) || got == static_cast<float>(want)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "got " << got << ", want " << want;
}

struct set_outputs {
  std::vector<u8> flags;
  std::vector<float> thresholds;
};

template <class P>
set_outputs run_token_sets(P policy, const batch& x, const rhythm::token_params& p) {
  set_outputs o{std::vector<u8>(x.B * x.N, 0xAB), std::vector<float>(x.B * 4, -7.0f)};
  rhythm::token_sets(policy, x.view(x.waad), x.view(x.fai), rhythm::make_view(x.segs),
                     rhythm::make_view(o.flags, std::array<i64, 2>{x.B, x.N}),
                     rhythm::make_view(o.thresholds, std::array<i64, 2>{x.B, rhythm::token_threshold::count}), p);
  return o;
}

u8 ref_flags(const ref::sets& r, i64 t) {
  return u8((r.preplan[t] ? token_flag::preplan : 0) | (r.anchor[t] ? token_flag::anchor : 0) |
            (r.dominated[t] ? token_flag::dominated : 0) | (r.intro[t] ? token_flag::intro : 0));
}

void expect_sets_match(const batch& x, const set_outputs& o, const ref::token_options& opt, const std::string& what) {
  for (i64 b = 0; b < x.B; ++b) {
    const auto r = ref::token_sets(x.row(x.waad, b), x.row(x.fai, b), to_ref(x.segs[b]), opt);
    for (i64 t = 0; t < x.N; ++t) ASSERT_EQ(int(o.flags[b * x.N + t]), int(ref_flags(r, t))) << what << " b=" << b << " t=" << t;
    const float* th = &o.thresholds[b * 4];
    EXPECT_TRUE(same(th[rhythm::token_threshold::preplan], r.t_loc)) << what << " T_loc threshold b=" << b;
    EXPECT_TRUE(same(th[rhythm::token_threshold::anchor], r.t_glob)) << what << " T_glob threshold b=" << b;
    EXPECT_TRUE(same(th[rhythm::token_threshold::waad_median], r.tau_waad)) << what << " tau_waad b=" << b;
    EXPECT_TRUE(same(th[rhythm::token_threshold::jump], r.tau_delta)) << what << " tau_delta b=" << b;
  }
}

// Response-relative positions of sequence b whose flags carry `bit`; fails on any hit outside R.
std::vector<i64> members(const std::vector<u8>& flags, const batch& x, i64 b, u8 bit) {
  std::vector<i64> out;
  for (i64 t = 0; t < x.N; ++t)
    if (flags[b * x.N + t] & bit) {
      EXPECT_TRUE(x.segs[b].in_response(t)) << "bit " << int(bit) << " set outside R at b=" << b << " t=" << t;
      out.push_back(t - x.segs[b].response_begin);
    }
  return out;
}
using positions = std::vector<i64>;

// Two sequences whose 40-token responses carry the same sawtooth WAAD: chunks of 10 tokens, chunk c
// rising from 1 by c+1 per token and dropping back to 1 at the next chunk start. So Δ = c+1 inside
// chunk c, 9(c+1) at its last token (c < 3) and 0 at the last response token; the median WAAD is 9.5
// and the median Δ is 3. FAI has stripes at `stripes` (response-relative; values 0.75, 0.625, 0.5 in
// that order) over a floor of at most 5/64; with H_lo = 3 the last 3 tokens are ineligible (FAI 0).
// The prompt's FAI is 1000 and padding is NaN. Entropy is 2 at the Δ jumps 9, 19, 29 and 1 elsewhere.
batch sawtooth(const positions& stripes) {
  batch x(2, 50);
  x.segs = {{0, 6, 46}, {5, 8, 48}};
  const float stripe_values[] = {0.75f, 0.625f, 0.5f};
  for (i64 b = 0; b < 2; ++b) {
    const i64 rb = x.segs[b].response_begin;
    for (i64 t = x.segs[b].begin; t < rb; ++t) x.fai[b * 50 + t] = 1000.0f;
    for (i64 i = 0; i < 40; ++i) {
      x.waad[b * 50 + rb + i] = float(1 + (i / 10 + 1) * (i % 10));
      x.fai[b * 50 + rb + i] = i < 37 ? float(i % 5 + 1) / 64.0f : 0.0f;
      x.entropy[b * 50 + rb + i] = (i == 9 || i == 19 || i == 29) ? 2.0f : 1.0f;
    }
    for (std::size_t k = 0; k < stripes.size(); ++k) x.fai[b * 50 + rb + stripes[k]] = stripe_values[k];
  }
  return x;
}
const rhythm::token_params kSaw{.q = 0.075, .signals = {.horizon_lo = 3, .horizon_hi = 100}};  // k = 3 of 40 and of 37

// ---------------------------------------------------------------------------------------------- jumps

TYPED_TEST(Tokens, JumpsOfSawtooth) {
  const batch x = sawtooth({});
  std::vector<float> delta(x.B * x.N, -7.0f);
  rhythm::waad_jumps(make_policy<TypeParam>(), x.view(x.waad), rhythm::make_view(x.segs),
                     rhythm::make_view(delta, std::array<i64, 2>{x.B, x.N}));
  for (i64 b = 0; b < x.B; ++b)
    for (i64 t = 0; t < x.N; ++t) {
      const i64 i = t - x.segs[b].response_begin;
      float want = 0.0f;
      if (i >= 0 && i < 39) want = i % 10 == 9 ? float(9 * (i / 10 + 1)) : float(i / 10 + 1);
      EXPECT_EQ(delta[b * x.N + t], want) << "b=" << b << " t=" << t;
    }
}

TYPED_TEST(Tokens, JumpsMatchReference) {
  std::mt19937 rng(11);
  for (i64 N : {1, 2, 17, 200}) {
    const batch x = random_batch(rng, 4, N, 4096, {}, false);
    std::vector<float> delta(x.B * N, -7.0f);
    rhythm::waad_jumps(make_policy<TypeParam>(), x.view(x.waad), rhythm::make_view(x.segs),
                       rhythm::make_view(delta, std::array<i64, 2>{x.B, N}));
    for (i64 b = 0; b < x.B; ++b) {
      const auto want = ref::jumps(x.row(x.waad, b), to_ref(x.segs[b]));
      for (i64 t = 0; t < N; ++t) EXPECT_TRUE(same(delta[b * N + t], want[t])) << "N=" << N << " b=" << b << " t=" << t;
    }
  }
}

TYPED_TEST(Tokens, JumpsReadHalfPrecision) {
  std::mt19937 rng(12);
  const batch x = random_batch(rng, 3, 30, 256, {}, false);
  std::vector<rhythm::half> h(x.waad.size());
  for (std::size_t i = 0; i < h.size(); ++i) h[i] = rhythm::half(x.waad[i]);  // k/64 < 4: exact in half
  std::vector<float> from_half(x.waad.size()), from_float(x.waad.size());
  const auto P = make_policy<TypeParam>();
  rhythm::waad_jumps(P, rhythm::make_view(h, std::array<i64, 2>{3, 30}), rhythm::make_view(x.segs),
                     rhythm::make_view(from_half, std::array<i64, 2>{3, 30}));
  rhythm::waad_jumps(P, x.view(x.waad), rhythm::make_view(x.segs), rhythm::make_view(from_float, std::array<i64, 2>{3, 30}));
  EXPECT_EQ(from_half, from_float);
}

// ---------------------------------------------------------------------------------------------- top-q

template <class P>
std::pair<std::vector<u8>, std::vector<float>> run_top_q(P policy, const batch& x, const std::vector<float>& values,
                                                         const std::vector<u8>* eligible, rhythm::top_q_params p) {
  std::vector<u8> sel(x.B * x.N, 0xAB);
  std::vector<float> thr(x.B, -7.0f);
  auto sv = rhythm::make_view(sel, std::array<i64, 2>{x.B, x.N});
  if (eligible)
    rhythm::top_q(policy, x.view(values), rhythm::make_view(*eligible, std::array<i64, 2>{x.B, x.N}),
                  rhythm::make_view(x.segs), sv, rhythm::make_view(thr), p);
  else
    rhythm::top_q(policy, x.view(values), rhythm::make_view(x.segs), sv, rhythm::make_view(thr), p);
  return {sel, thr};
}

TYPED_TEST(Tokens, TopQMatchesReference) {
  std::mt19937 rng(21);
  const auto P = make_policy<TypeParam>();
  for (double q : {0.01, 0.4, 0.7, 1.0})
    for (bool bottom : {false, true})
      for (int levels : {2, 5, 4096})
        for (bool masked : {false, true}) {
          batch x = random_batch(rng, 5, 60, levels, {}, false);
          std::vector<u8> eligible(x.B * x.N);
          std::bernoulli_distribution coin(0.6);
          for (i64 i = 0; i < x.B * x.N; ++i) {
            eligible[i] = coin(rng) ? u8(1 + i % 7) : 0;  // any nonzero byte is eligible
            if (!eligible[i] && masked) x.waad[i] = kNaN;  // values at ineligible positions are never read
          }
          const auto [sel, thr] = run_top_q(P, x, x.waad, masked ? &eligible : nullptr, {.q = q, .bottom = bottom});
          for (i64 b = 0; b < x.B; ++b) {
            ref::set e(x.N, true);
            if (masked)
              for (i64 t = 0; t < x.N; ++t) e[t] = eligible[b * x.N + t] != 0;
            const auto r = ref::top_q(x.row(x.waad, b), e, to_ref(x.segs[b]), q, bottom);
            const std::string what = "q=" + std::to_string(q) + " bottom=" + std::to_string(bottom) +
                                     " levels=" + std::to_string(levels) + " masked=" + std::to_string(masked);
            EXPECT_TRUE(same(thr[b], r.threshold)) << what << " b=" << b;
            for (i64 t = 0; t < x.N; ++t) ASSERT_EQ(sel[b * x.N + t], u8(r.selected[t])) << what << " b=" << b << " t=" << t;
          }
        }
}

TYPED_TEST(Tokens, TopQSelectsExactlyCeilQnOfDistinctValues) {
  std::mt19937 rng(22);
  const auto P = make_policy<TypeParam>();
  for (double q : {0.05, 0.1, 0.3, 0.4, 0.5, 0.7, 0.9, 1.0})
    for (bool bottom : {false, true}) {
      batch x(6, 97);
      for (i64 b = 0; b < x.B; ++b) x.segs.push_back(random_segment(rng, x.N));
      std::vector<int> perm(x.N);
      std::iota(perm.begin(), perm.end(), 0);
      for (i64 b = 0; b < x.B; ++b) {
        std::shuffle(perm.begin(), perm.end(), rng);
        for (i64 t = x.segs[b].response_begin; t < x.segs[b].end; ++t) x.waad[b * x.N + t] = float(perm[t]);
      }
      const auto [sel, thr] = run_top_q(P, x, x.waad, nullptr, {.q = q, .bottom = bottom});
      for (i64 b = 0; b < x.B; ++b) {
        const i64 n = x.segs[b].response_length();
        i64 count = 0;
        for (i64 t = 0; t < x.N; ++t) count += sel[b * x.N + t];
        EXPECT_EQ(count, rhythm::top_q_count(q, n)) << "q=" << q << " n=" << n;
        EXPECT_EQ(count, std::max<i64>(1, i64(std::ceil(q * double(n) - 1e-9)))) << "q=" << q << " n=" << n;
      }
    }
  EXPECT_EQ(rhythm::top_q_count(0.07, 100), 7);    // 0.07 * 100 == 7.000000000000001 in binary
  EXPECT_EQ(rhythm::top_q_count(0.55, 100), 55);  // 55.00000000000001
  EXPECT_EQ(rhythm::top_q_count(0.4, 10), 4);
  EXPECT_EQ(rhythm::top_q_count(0.41, 10), 5);
  EXPECT_EQ(rhythm::top_q_count(1e-6, 10), 1);
  EXPECT_EQ(rhythm::top_q_count(0.4, 0), 0);
}

TYPED_TEST(Tokens, TopQEdgeCases) {
  const auto P = make_policy<TypeParam>();
  batch x(3, 8);
  x.segs = {{0, 2, 8}, {1, 5, 5}, {0, 7, 8}};  // all equal; empty response; response of length 1
  for (i64 t = 2; t < 8; ++t) x.waad[t] = 0.5f;
  x.waad[2 * 8 + 7] = -3.0f;
  for (bool bottom : {false, true}) {
    const auto [sel, thr] = run_top_q(P, x, x.waad, nullptr, {.q = 0.1, .bottom = bottom});
    for (i64 t = 0; t < 8; ++t) {
      EXPECT_EQ(sel[t], u8(t >= 2)) << "ties at the threshold are all selected, t=" << t;
      EXPECT_EQ(sel[8 + t], 0) << "empty response selects nothing";
      EXPECT_EQ(sel[16 + t], u8(t == 7)) << "a single token is its own top-q";
    }
    EXPECT_EQ(thr[0], 0.5f);
    EXPECT_TRUE(std::isnan(thr[1]));
    EXPECT_EQ(thr[2], -3.0f);
  }
  // Nothing eligible: nothing selected, NaN threshold.
  std::vector<u8> none(3 * 8, 0);
  const auto [sel, thr] = run_top_q(P, x, x.waad, &none, {});
  EXPECT_EQ(sel, std::vector<u8>(3 * 8, 0));
  for (float v : thr) EXPECT_TRUE(std::isnan(v));
}

TYPED_TEST(Tokens, TopQThroughStrides) {
  std::mt19937 rng(23);
  const batch x = random_batch(rng, 4, 50, 100, {}, false);
  std::vector<float> transposed(x.waad.size());  // [N, B] in memory
  for (i64 b = 0; b < x.B; ++b)
    for (i64 t = 0; t < x.N; ++t) transposed[t * x.B + b] = x.waad[b * x.N + t];
  std::vector<u8> sel(2 * x.B * x.N, 0xAB);  // every other byte
  std::vector<float> thr(3 * x.B, -7.0f);     // every third float
  rhythm::top_q(make_policy<TypeParam>(), rhythm::view<const float, 2>(transposed.data(), {x.B, x.N}, {1, x.B}),
                rhythm::make_view(x.segs), rhythm::view<u8, 2>(sel.data(), {x.B, x.N}, {2 * x.N, 2}),
                rhythm::view<float, 1>(thr.data(), {x.B}, {3}), {.q = 0.3});
  const auto [want_sel, want_thr] = run_top_q(rhythm::exec::seq{}, x, x.waad, nullptr, {.q = 0.3});
  for (i64 b = 0; b < x.B; ++b) {
    EXPECT_TRUE(same(thr[3 * b], want_thr[b])) << b;
    EXPECT_EQ(thr[3 * b + 1], -7.0f);
    for (i64 t = 0; t < x.N; ++t) {
      EXPECT_EQ(sel[2 * (b * x.N + t)], want_sel[b * x.N + t]);
      EXPECT_EQ(sel[2 * (b * x.N + t) + 1], 0xAB);
    }
  }
}

// ------------------------------------------------------------------------------------------ token sets

TYPED_TEST(Tokens, SawtoothAndStripesGiveTheSetsByConstruction) {
  const auto P = make_policy<TypeParam>();
  const batch x = sawtooth({11, 22, 5});
  struct expectation {
    rhythm::dominance_threshold_mode mode;
    i64 k;
    positions dominated, intro;
    float tau_delta;
  };
  using M = rhythm::dominance_threshold_mode;
  const expectation cases[] = {
      // 11: WAAD 3, window [8,10] holds Δ_9 = 9; 22: WAAD 7, window [19,21] holds Δ_19 = 18; 5: window Δ = 1.
      {M::loc_threshold, 3, {11, 22}, {9, 19}, 9.0f},
      {M::median_delta, 3, {11, 22}, {9, 19}, 3.0f},
      {M::loc_threshold, 1, {}, {}, 9.0f},     // Δ_10 = 2, Δ_21 = 3, Δ_4 = 1: all below 9
      {M::median_delta, 1, {22}, {21}, 3.0f},  // Δ_21 = 3 reaches the median jump 3
  };
  for (const auto& c : cases) {
    rhythm::token_params p = kSaw;
    p.dominance_window = c.k, p.dominance_threshold = c.mode;
    const auto o = run_token_sets(P, x, p);
    for (i64 b = 0; b < 2; ++b) {
      const std::string what = "mode=" + std::to_string(int(c.mode)) + " k=" + std::to_string(c.k) + " b=" + std::to_string(b);
      EXPECT_EQ(members(o.flags, x, b, token_flag::preplan), (positions{9, 19, 29})) << what;
      EXPECT_EQ(members(o.flags, x, b, token_flag::anchor), (positions{5, 11, 22})) << what;
      EXPECT_EQ(members(o.flags, x, b, token_flag::dominated), c.dominated) << what;
      EXPECT_EQ(members(o.flags, x, b, token_flag::intro), c.intro) << what;
      for (i64 t = 0; t < x.N; ++t) {
        EXPECT_TRUE(x.segs[b].in_response(t) || o.flags[b * x.N + t] == 0) << what << " t=" << t;
      }
      EXPECT_EQ(o.thresholds[b * 4 + rhythm::token_threshold::preplan], 9.0f) << what;
      EXPECT_EQ(o.thresholds[b * 4 + rhythm::token_threshold::anchor], 0.5f) << what;
      EXPECT_EQ(o.thresholds[b * 4 + rhythm::token_threshold::waad_median], 9.5f) << what;
      EXPECT_EQ(o.thresholds[b * 4 + rhythm::token_threshold::jump], c.tau_delta) << what;
    }
  }
}

TYPED_TEST(Tokens, TokenSetsMatchReference) {
  const ref::token_options options[] = {
      {0.4, false, 3, false, 10, 100}, {0.4, false, 3, true, 10, 100}, {0.4, true, 3, false, 10, 100},
      {0.4, true, 3, true, 10, 100},   {0.1, false, 1, false, 0, -1},  {0.7, false, 5, true, 3, 5},
      {1.0, false, 2, false, 1, 20},   {0.05, true, 10, false, 0, 0},  {0.25, false, 40, true, 2, -1},
  };
  struct size {
    i64 B, N;
    int levels;
  };
  const size sizes[] = {{4, 1, 2}, {5, 9, 3}, {6, 40, 4}, {4, 130, 4096}, {3, 300, 50}};
  std::mt19937 rng(31);
  const auto P = make_policy<TypeParam>();
  for (const auto& o : options)
    for (const auto& s : sizes) {
      const batch x = random_batch(rng, s.B, s.N, s.levels, o, false);
      const std::string what = "q=" + std::to_string(o.q) + " bottom=" + std::to_string(o.bottom) + " k=" +
                               std::to_string(o.k) + " median_delta=" + std::to_string(o.median_delta) +
                               " N=" + std::to_string(s.N) + " levels=" + std::to_string(s.levels);
      expect_sets_match(x, run_token_sets(P, x, to_params(o)), o, what);
    }
}

TYPED_TEST(Tokens, AllEqualSignalsSelectEverything) {
  const auto P = make_policy<TypeParam>();
  batch x(2, 30);
  x.segs = {{3, 5, 30}, {0, 12, 26}};
  for (i64 b = 0; b < 2; ++b)
    for (i64 t = x.segs[b].response_begin; t < x.segs[b].end; ++t) x.waad[b * 30 + t] = 0.25f, x.fai[b * 30 + t] = 0.125f;
  for (bool median_delta : {false, true}) {
    const ref::token_options o{0.4, false, 3, median_delta, 4, 100};
    const auto out = run_token_sets(P, x, to_params(o));
    expect_sets_match(x, out, o, "all equal");
    for (i64 b = 0; b < 2; ++b) {
      const auto& s = x.segs[b];
      for (i64 t = s.response_begin; t < s.end; ++t) {
        const u8 f = out.flags[b * 30 + t];
        EXPECT_TRUE(f & token_flag::preplan) << t;                                 // every Δ is 0: all tie
        EXPECT_EQ(bool(f & token_flag::anchor), t + 4 <= s.end - 1) << t;          // every eligible token
        EXPECT_EQ(bool(f & token_flag::dominated), t > s.response_begin && (f & token_flag::anchor)) << t;
      }
    }
  }
}

TYPED_TEST(Tokens, TokenSetsWithoutThresholdsAndThroughStrides) {
  std::mt19937 rng(32);
  const ref::token_options o{0.3, false, 3, true, 5, 50};
  const batch x = random_batch(rng, 5, 80, 30, o, false);
  const auto want = run_token_sets(rhythm::exec::seq{}, x, to_params(o));
  std::vector<u8> flags(x.B * x.N, 0xAB);
  rhythm::token_sets(make_policy<TypeParam>(), x.view(x.waad), x.view(x.fai), rhythm::make_view(x.segs),
                     rhythm::make_view(flags, std::array<i64, 2>{x.B, x.N}), to_params(o));
  EXPECT_EQ(flags, want.flags);
  // Inputs stored [N, B], flags as every other byte, thresholds transposed [4, B].
  std::vector<float> waad_t(x.waad.size()), fai_t(x.fai.size());
  for (i64 b = 0; b < x.B; ++b)
    for (i64 t = 0; t < x.N; ++t) waad_t[t * x.B + b] = x.waad[b * x.N + t], fai_t[t * x.B + b] = x.fai[b * x.N + t];
  std::vector<u8> flags2(2 * x.B * x.N, 0xAB);
  std::vector<float> thr(4 * x.B, -7.0f);
  rhythm::token_sets(make_policy<TypeParam>(), rhythm::view<const float, 2>(waad_t.data(), {x.B, x.N}, {1, x.B}),
                     rhythm::view<const float, 2>(fai_t.data(), {x.B, x.N}, {1, x.B}), rhythm::make_view(x.segs),
                     rhythm::view<u8, 2>(flags2.data(), {x.B, x.N}, {2 * x.N, 2}),
                     rhythm::view<float, 2>(thr.data(), {x.B, 4}, {1, x.B}), to_params(o));
  for (i64 i = 0; i < x.B * x.N; ++i) EXPECT_EQ(flags2[2 * i], want.flags[i]) << i;
  for (i64 b = 0; b < x.B; ++b)
    for (i64 c = 0; c < 4; ++c) EXPECT_TRUE(same(thr[c * x.B + b], want.thresholds[b * 4 + c])) << b << "," << c;
}

TYPED_TEST(Tokens, PreplanIsTopQOfTheJumps) {
  std::mt19937 rng(33);
  const auto P = make_policy<TypeParam>();
  const ref::token_options o{0.35, false, 3, false, 10, 100};
  const batch x = random_batch(rng, 6, 120, 4096, o, false);
  std::vector<float> delta(x.B * x.N);
  rhythm::waad_jumps(P, x.view(x.waad), rhythm::make_view(x.segs), rhythm::make_view(delta, std::array<i64, 2>{x.B, x.N}));
  const auto [sel, thr] = run_top_q(P, x, delta, nullptr, {.q = 0.35});
  const auto sets = run_token_sets(P, x, to_params(o));
  for (i64 i = 0; i < x.B * x.N; ++i) EXPECT_EQ(sel[i], u8(bool(sets.flags[i] & token_flag::preplan))) << i;
  for (i64 b = 0; b < x.B; ++b) EXPECT_TRUE(same(thr[b], sets.thresholds[b * 4])) << b;
}

// ----------------------------------------------------------------------------------------------- peaks

TYPED_TEST(Tokens, PeaksByHand) {
  const auto P = make_policy<TypeParam>();
  batch x(1, 12);
  x.segs = {{1, 2, 10}};
  const float v[] = {3, 1, 4, 4, 2, 5, 5, 5};  // at positions 2..9; outside R stays NaN
  for (i64 i = 0; i < 8; ++i) x.waad[2 + i] = v[i];
  auto run = [&](const std::vector<u8>& set, rhythm::peak_params p) {
    std::vector<u8> peaks(12, 0xAB);
    rhythm::local_peaks(P, x.view(x.waad), rhythm::make_view(set, std::array<i64, 2>{1, 12}), rhythm::make_view(x.segs),
                        rhythm::make_view(peaks, std::array<i64, 2>{1, 12}), p);
    return members(peaks, x, 0, 1);
  };
  std::vector<u8> all(12, 1);
  // 2: no left neighbour in R; 4: rises from 1, holds against the equal 4; 7: first of the 5-plateau.
  EXPECT_EQ(run(all, {}), (positions{0, 2, 5}));
  std::vector<u8> flags(12, token_flag::anchor);
  flags[4] = token_flag::preplan;
  EXPECT_EQ(run(flags, {.select_bits = token_flag::anchor}), (positions{0, 5}));  // 4 is not in the set
  EXPECT_EQ(run(flags, {.select_bits = token_flag::preplan}), (positions{2}));
}

TYPED_TEST(Tokens, PeaksMatchReference) {
  std::mt19937 rng(41);
  const auto P = make_policy<TypeParam>();
  for (int levels : {3, 20, 4096}) {
    const batch x = random_batch(rng, 5, 70, levels, {}, false);
    std::vector<u8> set(x.B * x.N), peaks(x.B * x.N, 0xAB);
    std::bernoulli_distribution coin(0.5);
    for (auto& s : set) s = coin(rng);
    rhythm::local_peaks(P, x.view(x.waad), rhythm::make_view(set, std::array<i64, 2>{x.B, x.N}), rhythm::make_view(x.segs),
                        rhythm::make_view(peaks, std::array<i64, 2>{x.B, x.N}));
    for (i64 b = 0; b < x.B; ++b) {
      ref::set in(x.N);
      for (i64 t = 0; t < x.N; ++t) in[t] = set[b * x.N + t];
      const auto want = ref::peaks(x.row(x.waad, b), in, to_ref(x.segs[b]));
      for (i64 t = 0; t < x.N; ++t) EXPECT_EQ(peaks[b * x.N + t], u8(want[t])) << "levels=" << levels << " b=" << b << " t=" << t;
    }
  }
}

// ---------------------------------------------------------------------------------------- rhythm stats

template <class P>
rhythm::rhythm_stats run_stats(P policy, const batch& x, const rhythm::rhythm_stats_params& p, bool entropy = true) {
  if (entropy)
    return rhythm::rhythm_statistics(policy, x.view(x.waad), x.view(x.fai), x.view(x.entropy), rhythm::make_view(x.segs), p);
  return rhythm::rhythm_statistics(policy, x.view(x.waad), x.view(x.fai), rhythm::make_view(x.segs), p);
}

TYPED_TEST(Tokens, StatsEveryFaiPeakFollowsAWaadPeak) {
  // WAAD peaks at the jumps 9, 19, 29; FAI stripes at 11, 22, 30 follow them within 3 tokens.
  const batch x = sawtooth({11, 22, 30});
  const rhythm::rhythm_stats_params p{.tokens = kSaw, .seed = 7};
  const auto s = run_stats(make_policy<TypeParam>(), x, p);
  EXPECT_EQ(s.response_tokens, 80);
  EXPECT_EQ(s.waad_peaks, 6);
  EXPECT_EQ(s.fai_peaks, 6);
  EXPECT_EQ(s.fai_peaks_following, 6);
  EXPECT_EQ(s.share, 1.0);
  // 3 random WAAD peaks among 40 tokens hit a 4-token window with probability 1 - C(36,3)/C(40,3).
  const double chance = 1.0 - (36.0 * 35 * 34) / (40.0 * 39 * 38);
  EXPECT_NEAR(s.baseline, chance, 0.08);
  EXPECT_EQ(s.lift, s.share / s.baseline);
  EXPECT_GT(s.lift, 2.0);
  EXPECT_EQ(s.entropy_at_waad_peaks, 2.0);
  EXPECT_DOUBLE_EQ(s.entropy_mean, 43.0 / 40.0);
  EXPECT_DOUBLE_EQ(s.entropy_ratio, 2.0 / (43.0 / 40.0));
  // A FAI peak 4 tokens after its WAAD peak does not follow it with k_follow = 3, but does with 4.
  const batch late = sawtooth({11, 23, 30});
  EXPECT_EQ(run_stats(make_policy<TypeParam>(), late, p).fai_peaks_following, 4);
  EXPECT_EQ(run_stats(make_policy<TypeParam>(), late, {.tokens = kSaw, .follow_window = 4}).fai_peaks_following, 6);
  // Without entropies the entropy fields are NaN.
  EXPECT_TRUE(std::isnan(run_stats(make_policy<TypeParam>(), x, p, false).entropy_mean));
}

TYPED_TEST(Tokens, StatsMatchReference) {
  std::mt19937 rng(51);
  const auto P = make_policy<TypeParam>();
  for (const ref::token_options o : {ref::token_options{0.4, false, 3, false, 10, 100},
                                     ref::token_options{0.2, false, 3, false, 2, -1},
                                     ref::token_options{0.3, true, 3, false, 5, 30}})
    for (i64 k_follow : {0, 3, 12}) {
      const batch x = random_batch(rng, 6, 150, 4096, o, true);
      const rhythm::rhythm_stats_params p{.tokens = to_params(o), .follow_window = k_follow, .shuffles = 3000, .seed = 3};
      const auto got = run_stats(P, x, p);
      const auto e = x.rows(x.entropy);
      const auto want = ref::rhythm_stats(x.rows(x.waad), x.rows(x.fai), &e, x.ref_segs(), o, k_follow);
      const std::string what = "q=" + std::to_string(o.q) + " k_follow=" + std::to_string(k_follow);
      EXPECT_EQ(got.response_tokens, want.response_tokens) << what;
      EXPECT_EQ(got.waad_peaks, want.waad_peaks) << what;
      EXPECT_EQ(got.fai_peaks, want.fai_peaks) << what;
      EXPECT_EQ(got.fai_peaks_following, want.following) << what;
      EXPECT_DOUBLE_EQ(got.share, want.share) << what;
      EXPECT_NEAR(got.baseline, want.expected_baseline, 0.02) << what;  // sd of the mean of 3000 draws < 0.01
      EXPECT_NEAR(got.entropy_at_waad_peaks, want.entropy_at_peaks, 1e-12) << what;
      EXPECT_NEAR(got.entropy_mean, want.entropy_mean, 1e-12) << what;
    }
}

TYPED_TEST(Tokens, StatsAreDeterministicForASeed) {
  std::mt19937 rng(52);
  const ref::token_options o{0.4, false, 3, false, 10, 100};
  const batch x = random_batch(rng, 7, 120, 4096, o, true);
  const rhythm::rhythm_stats_params p{.tokens = to_params(o), .seed = 42};
  const auto a = run_stats(make_policy<TypeParam>(), x, p);
  const auto b = run_stats(make_policy<TypeParam>(), x, p);
  const auto seq = run_stats(rhythm::exec::seq{}, x, p);
  const auto wide = run_stats(rhythm::exec::par{7}, x, p);
  for (const auto* s : {&b, &seq, &wide}) {
    EXPECT_EQ(a.baseline, s->baseline);
    EXPECT_EQ(a.fai_peaks_following, s->fai_peaks_following);
    EXPECT_EQ(a.entropy_at_waad_peaks, s->entropy_at_waad_peaks);
  }
  EXPECT_NE(run_stats(make_policy<TypeParam>(), x, {.tokens = to_params(o), .seed = 43}).baseline, a.baseline);
}

TYPED_TEST(Tokens, StatsOfEmptyResponsesAreNaN) {
  batch x(2, 6);
  x.segs = {{0, 6, 6}, {1, 3, 3}};
  const auto s = run_stats(make_policy<TypeParam>(), x, {});
  EXPECT_EQ(s.response_tokens + s.waad_peaks + s.fai_peaks, 0);
  EXPECT_TRUE(std::isnan(s.share) && std::isnan(s.baseline) && std::isnan(s.lift));
  EXPECT_TRUE(std::isnan(s.entropy_mean) && std::isnan(s.entropy_ratio));
}

// ---------------------------------------------------------------------------------------------- errors


// A valid small problem with every output pre-filled; each test breaks one thing.
struct problem {
  static constexpr i64 B = 2, N = 24;
  batch x{B, N};
  std::vector<u8> eligible = std::vector<u8>(B * N, 1);
  std::vector<u8> flags = std::vector<u8>(B * N, 0xAB), selected = flags, peaks = flags;
  std::vector<float> delta = std::vector<float>(B * N, -7.0f), thresholds = std::vector<float>(B * 4, -7.0f),
                     threshold = std::vector<float>(B, -7.0f);
  rhythm::token_params params{.signals = {.horizon_lo = 2, .horizon_hi = 10}};
  problem() {
    std::mt19937 rng(61);
    x.segs = {{0, 6, 24}, {3, 10, 20}};
    for (i64 b = 0; b < B; ++b)
      for (i64 t = x.segs[b].response_begin; t < x.segs[b].end; ++t)
        x.waad[b * N + t] = float(rng() % 100), x.fai[b * N + t] = float(rng() % 100), x.entropy[b * N + t] = 1.0f;
  }
  static auto v2(std::vector<u8>& v, i64 b = B, i64 n = N) { return rhythm::make_view(v, std::array<i64, 2>{b, n}); }
  static auto v2(std::vector<float>& v, i64 b = B, i64 n = N) { return rhythm::make_view(v, std::array<i64, 2>{b, n}); }
  auto segs() const { return rhythm::make_view(x.segs); }
  void sets() { rhythm::token_sets(rhythm::exec::par{2}, x.view(x.waad), x.view(x.fai), segs(), v2(flags), v2(thresholds, B, 4), params); }
  void top() {
    rhythm::top_q(rhythm::exec::par{2}, x.view(x.waad), v2(eligible), segs(), v2(selected), rhythm::make_view(threshold),
                  {.q = params.q, .bottom = params.bottom});
  }
  void jumps() { rhythm::waad_jumps(rhythm::exec::seq{}, x.view(x.waad), segs(), v2(delta)); }
  void peak(rhythm::peak_params p = {}) { rhythm::local_peaks(rhythm::exec::seq{}, x.view(x.waad), v2(eligible), segs(), v2(peaks), p); }
  rhythm::rhythm_stats stats(rhythm::rhythm_stats_params p = {}) {
    p.tokens = params;
    return rhythm::rhythm_statistics(rhythm::exec::par{2}, x.view(x.waad), x.view(x.fai), x.view(x.entropy), segs(), p);
  }
  bool untouched() const {
    for (auto* v : {&flags, &selected, &peaks})
      for (u8 f : *v) if (f != 0xAB) return false;
    for (auto* v : {&delta, &thresholds, &threshold})
      for (float f : *v) if (f != -7.0f) return false;
    return true;
  }
};

TEST(TokenErrors, ValidProblemPasses) {
  problem p;
  p.sets(), p.top(), p.jumps(), p.peak(), (void)p.stats();
  EXPECT_NE(p.flags, std::vector<u8>(problem::B * problem::N, 0xAB));
  EXPECT_NE(p.selected, p.peaks);
}

TEST(TokenErrors, QOutsideZeroOne) {
  for (double q : {0.0, 1.5, -0.1, double(kNaN)}) {
    problem p;
    p.params.q = q;
    expect_error([&] { p.sets(); }, rhythm::errc::bad_parameter, {"'params.q'", "a value in (0, 1]"});
    expect_error([&] { p.top(); }, rhythm::errc::bad_parameter, {"'params.q'", "(0, 1]"});
    expect_error([&] { (void)p.stats(); }, rhythm::errc::bad_parameter, {"'params.tokens.q'"});
    EXPECT_TRUE(p.untouched());
  }
  problem p;
  p.params.q = 0.0;
  expect_error([&] { p.sets(); }, rhythm::errc::bad_parameter, {"got 0.000000"});
  p.params.q = 1.5;
  expect_error([&] { p.top(); }, rhythm::errc::bad_parameter, {"got 1.500000"});
}

TEST(TokenErrors, BadTokenParams) {
  problem p;
  p.params.dominance_window = 0;
  expect_error([&] { p.sets(); }, rhythm::errc::bad_parameter, {"'params.dominance_window'", ">= 1", "got 0"});
  p.params.dominance_window = 3;
  p.params.dominance_threshold = static_cast<rhythm::dominance_threshold_mode>(7);
  expect_error([&] { p.sets(); }, rhythm::errc::bad_parameter, {"'params.dominance_threshold'", "got 7"});
  p.params.dominance_threshold = rhythm::dominance_threshold_mode::median_delta;
  p.params.signals.horizon_lo = -1;
  expect_error([&] { p.sets(); }, rhythm::errc::bad_parameter, {"'params.signals.horizon_lo'", "got -1"});
  p.params.signals.horizon_lo = 12;
  expect_error([&] { p.sets(); }, rhythm::errc::bad_parameter,
               {"'params.signals.horizon_hi'", ">= params.signals.horizon_lo = 12", "got 10"});
  expect_error([&] { (void)p.stats(); }, rhythm::errc::bad_parameter,
               {"'params.tokens.signals.horizon_hi'", ">= params.tokens.signals.horizon_lo = 12"});
  p.params.signals.horizon_lo = 2;
  expect_error([&] { (void)p.stats({.follow_window = -1}); }, rhythm::errc::bad_parameter, {"'params.follow_window'", "got -1"});
  expect_error([&] { (void)p.stats({.shuffles = 0}); }, rhythm::errc::bad_parameter, {"'params.shuffles'", ">= 1", "got 0"});
  expect_error([&] { p.peak({.select_bits = 0}); }, rhythm::errc::bad_parameter, {"'params.select_bits'"});
  EXPECT_TRUE(p.untouched());
}

TEST(TokenErrors, ShapeMismatches) {
  problem p;
  std::vector<float> f23(2 * 23, 0.0f);
  std::vector<u8> u23(2 * 23, 0xAB);
  const auto segs = p.segs();
  expect_error([&] { rhythm::token_sets(rhythm::exec::seq{}, p.x.view(p.x.waad), problem::v2(f23, 2, 23), segs, problem::v2(p.flags)); },
               rhythm::errc::shape_mismatch, {"'fai'", "[B, N] = [2, 24]", "got [2, 23]"});
  expect_error([&] { rhythm::token_sets(rhythm::exec::seq{}, p.x.view(p.x.waad), p.x.view(p.x.fai), segs, problem::v2(u23, 2, 23)); },
               rhythm::errc::shape_mismatch, {"'flags'", "[2, 23]"});
  expect_error(
      [&] {
        rhythm::token_sets(rhythm::exec::seq{}, p.x.view(p.x.waad), p.x.view(p.x.fai), segs, problem::v2(p.flags),
                           rhythm::view<float, 2>(p.thresholds.data(), {2, 3}));
      },
      rhythm::errc::shape_mismatch, {"'thresholds'", "[B, 4] = [2, 4]", "got [2, 3]"});
  expect_error(
      [&] {
        rhythm::top_q(rhythm::exec::seq{}, p.x.view(p.x.waad), segs, problem::v2(p.selected),
                      rhythm::view<float, 1>(p.threshold.data(), {1}));
      },
      rhythm::errc::shape_mismatch, {"'threshold'", "[B] = [2]", "got [1]"});
  expect_error(
      [&] {
        rhythm::top_q(rhythm::exec::seq{}, p.x.view(p.x.waad), problem::v2(u23, 2, 23), segs, problem::v2(p.selected),
                      rhythm::make_view(p.threshold));
      },
      rhythm::errc::shape_mismatch, {"'eligible'", "[2, 23]"});
  expect_error([&] { rhythm::waad_jumps(rhythm::exec::seq{}, p.x.view(p.x.waad), segs, problem::v2(f23, 2, 23)); },
               rhythm::errc::shape_mismatch, {"'delta'"});
  expect_error(
      [&] { (void)rhythm::rhythm_statistics(rhythm::exec::seq{}, p.x.view(p.x.waad), p.x.view(p.x.fai), problem::v2(f23, 2, 23), segs); },
      rhythm::errc::shape_mismatch, {"'entropy'"});
  expect_error(
      [&] {
        rhythm::local_peaks(rhythm::exec::seq{}, p.x.view(p.x.waad), problem::v2(p.eligible), segs,
                            rhythm::view<u8, 2>(p.peaks.data(), {1, 24}));
      },
      rhythm::errc::shape_mismatch, {"'peaks'", "got [1, 24]"});
  EXPECT_TRUE(p.untouched());
}

TEST(TokenErrors, BadSegments) {
  problem p;
  p.x.segs[1] = {5, 4, 20};
  expect_error([&] { p.sets(); }, rhythm::errc::bad_segment, {"'segments[1]'", "{5, 4, 20}"});
  expect_error([&] { p.top(); }, rhythm::errc::bad_segment, {"'segments[1]'"});
  expect_error([&] { p.jumps(); }, rhythm::errc::bad_segment, {"'segments[1]'"});
  expect_error([&] { p.peak(); }, rhythm::errc::bad_segment, {"'segments[1]'"});
  expect_error([&] { (void)p.stats(); }, rhythm::errc::bad_segment, {"'segments[1]'"});
  p.x.segs[1] = {3, 10, 25};
  expect_error([&] { p.sets(); }, rhythm::errc::bad_segment, {"'segments[1]'", "<= N = 24", "{3, 10, 25}"});
  p.x.segs.pop_back();
  expect_error([&] { p.sets(); }, rhythm::errc::shape_mismatch, {"'segments'", "1 segments for a batch of 2"});
  EXPECT_TRUE(p.untouched());
}

TEST(TokenErrors, NonFiniteValuesWhereTheyAreRead) {
  problem p;
  p.x.waad[1 * 24 + 12] = kNaN;  // sequence 1, response position 12
  expect_error([&] { p.sets(); }, rhythm::errc::non_finite, {"'waad'", "finite values", "sequence 1, position 12"});
  expect_error([&] { p.jumps(); }, rhythm::errc::non_finite, {"'waad'", "sequence 1, position 12"});
  expect_error([&] { p.top(); }, rhythm::errc::non_finite, {"'values'", "eligible response positions", "sequence 1, position 12"});
  expect_error([&] { p.peak(); }, rhythm::errc::non_finite, {"'values'", "sequence 1, position 12"});
  EXPECT_TRUE(p.untouched());
  p.eligible[1 * 24 + 12] = 0;
  EXPECT_NO_THROW(p.top());  // an ineligible value is never read
  problem q;
  q.x.fai[0 * 24 + 8] = INFINITY;
  expect_error([&] { q.sets(); }, rhythm::errc::non_finite, {"'fai'", "FAI-eligible", "sequence 0, position 8"});
  EXPECT_TRUE(q.untouched());
  q.x.fai[0 * 24 + 8] = 1.0f;
  q.x.fai[0 * 24 + 22] = kNaN;  // H_lo = 2: the last two response tokens are not eligible
  EXPECT_NO_THROW(q.sets());
  expect_error([&] { (void)q.stats(); }, rhythm::errc::non_finite, {"'fai'", "sequence 0, position 22"});  // a peak's neighbour
  problem r;
  r.x.entropy[1 * 24 + 19] = -INFINITY;
  expect_error([&] { (void)r.stats(); }, rhythm::errc::non_finite, {"'entropy'", "sequence 1, position 19"});
  EXPECT_TRUE(r.untouched());
}

TEST(TokenErrors, OverlappingOrBroadcastOutputs) {
  problem p;
  const auto segs = p.segs();
  expect_error(
      [&] {
        rhythm::token_sets(rhythm::exec::seq{}, p.x.view(p.x.waad), p.x.view(p.x.fai), segs,
                           rhythm::view<u8, 2>(reinterpret_cast<u8*>(p.x.fai.data()), {2, 24}));
      },
      rhythm::errc::aliasing, {"'flags'", "overlapping"});
  expect_error([&] { rhythm::waad_jumps(rhythm::exec::seq{}, p.x.view(p.x.waad), segs, problem::v2(p.x.waad)); },
               rhythm::errc::aliasing, {"'delta'"});
  expect_error(
      [&] {
        rhythm::top_q(rhythm::exec::seq{}, p.x.view(p.x.waad), segs, problem::v2(p.selected),
                      rhythm::view<float, 1>(reinterpret_cast<float*>(p.selected.data()), {2}));
      },
      rhythm::errc::aliasing, {"'threshold'"});
  expect_error(
      [&] {
        rhythm::token_sets(rhythm::exec::seq{}, p.x.view(p.x.waad), p.x.view(p.x.fai), segs,
                           rhythm::view<u8, 2>(p.flags.data(), {2, 24}, {0, 1}));
      },
      rhythm::errc::bad_stride, {"'flags'", "non-zero strides"});
  expect_error(
      [&] { rhythm::local_peaks(rhythm::exec::seq{}, p.x.view(p.x.waad), problem::v2(p.eligible), segs, problem::v2(p.eligible)); },
      rhythm::errc::aliasing, {"'peaks'"});
  EXPECT_TRUE(p.untouched());
}

}  // namespace
