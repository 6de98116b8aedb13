#pragma once
// Token stage (include/rhythm/tokens): WAAD jumps, top-q, preplan/anchor/dominated/intro sets and
// peaks against the double-precision reference of reference_tokens.hpp and on hand-made
// sawtooth/stripe fixtures whose sets are known by construction: a typed suite over the execution
// policy through rt::array (backend_memory.hpp), instantiated by each backend.
#include <rhythm/tokens/peaks.hpp>
#include <rhythm/tokens/token_sets.hpp>
#include <rhythm/tokens/top_q.hpp>

#include <string>

#include "../reference_tokens.hpp"
#include "../test_util.hpp"

namespace tokens_suite {
using namespace rt;
using u8 = std::uint8_t;
using rhythm::token_flag;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr u8 bit(token_flag f) { return rhythm::bits(f); }

template <class P>
class Tokens : public rt::backend_test<P> {};
TYPED_TEST_SUITE_P(Tokens);

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

inline rhythm::token_params to_params(const ref::token_options& o) {
  return {.selection = {.q = o.q, .bottom = o.bottom},
          .dominance = {.window = o.k,
                        .threshold = o.median_delta ? rhythm::dominance_threshold_mode::median_delta
                                                    : rhythm::dominance_threshold_mode::loc_threshold},
          .horizon = {.lo = o.lo, .hi = o.hi < 0 ? rhythm::unbounded_horizon : o.hi}};
}

// Values k/64 with k uniform in [0, levels): exact in float, so jumps and medians are exact too; few
// levels give many ties. Sequence 1 has a response of length 1, sequence 2 an empty one. WAAD is NaN
// outside R; FAI is 1000 on the prompt (it would win any selection it leaked into) and, on the
// ineligible response tail, NaN (`tail_zero` false: never read by token_sets) or 0 (as head_signals writes).
inline batch random_batch(std::mt19937& rng, i64 B, i64 N, int levels, const ref::token_options& o, bool tail_zero) {
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
inline ::testing::AssertionResult same(float got, double want) {
  if ((std::isnan(got) && std::isnan(want)) || got == static_cast<float>(want)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "got " << got << ", want " << want;
}

struct set_outputs {
  std::vector<u8> flags;
  std::vector<float> thresholds;
};

template <class P>
set_outputs run_token_sets(P policy, const batch& x, const rhythm::token_params& p) {
  auto flags = out<P>(u8{0xAB}, x.B, x.N);
  auto thresholds = out<P>(-7.0f, x.B, rhythm::token_threshold::count);
  rhythm::token_sets(policy, in<P>(x.waad, x.B, x.N), in<P>(x.fai, x.B, x.N), in<P>(x.segs), flags, thresholds, p);
  finish(policy);
  return {flags.host(), thresholds.host()};
}

inline u8 ref_flags(const ref::sets& r, i64 t) {
  return u8((r.preplan[t] ? bit(token_flag::preplan) : 0) | (r.anchor[t] ? bit(token_flag::anchor) : 0) |
            (r.dominated[t] ? bit(token_flag::dominated) : 0) | (r.intro[t] ? bit(token_flag::intro) : 0));
}

inline void expect_sets_match(const batch& x, const set_outputs& o, const ref::token_options& opt, const std::string& what) {
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
inline std::vector<i64> members(const std::vector<u8>& flags, const batch& x, i64 b, u8 bits) {
  std::vector<i64> found;
  for (i64 t = 0; t < x.N; ++t)
    if (flags[b * x.N + t] & bits) {
      EXPECT_TRUE(x.segs[b].in_response(t)) << "bits " << int(bits) << " set outside R at b=" << b << " t=" << t;
      found.push_back(t - x.segs[b].response_begin);
    }
  return found;
}
inline std::vector<i64> members(const std::vector<u8>& flags, const batch& x, i64 b, token_flag f) {
  return members(flags, x, b, bit(f));
}
using positions = std::vector<i64>;

// Two sequences whose 40-token responses carry the same sawtooth WAAD: chunks of 10 tokens, chunk c
// rising from 1 by c+1 per token and dropping back to 1 at the next chunk start. So Δ = c+1 inside
// chunk c, 9(c+1) at its last token (c < 3) and 0 at the last response token; the median WAAD is 9.5
// and the median Δ is 3. FAI has stripes at `stripes` (response-relative; values 0.75, 0.625, 0.5 in
// that order) over a floor of at most 5/64; with H_lo = 3 the last 3 tokens are ineligible (FAI 0).
// The prompt's FAI is 1000 and padding is NaN. Entropy is 2 at the Δ jumps 9, 19, 29 and 1 elsewhere.
inline batch sawtooth(const positions& stripes) {
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
inline const rhythm::token_params kSaw{.selection = {.q = 0.075}, .horizon = {.lo = 3, .hi = 100}};  // k = 3 of 40 and of 37

// ---------------------------------------------------------------------------------------------- jumps

template <class P>
std::vector<float> run_jumps(P policy, const batch& x, const std::vector<float>& waad) {
  auto delta = out<P>(-7.0f, x.B, x.N);
  rhythm::waad_jumps(policy, in<P>(waad, x.B, x.N), in<P>(x.segs), delta);
  finish(policy);
  return delta.host();
}

TYPED_TEST_P(Tokens, JumpsOfSawtooth) {
  const batch x = sawtooth({});
  const auto delta = run_jumps(make_policy<TypeParam>(), x, x.waad);
  for (i64 b = 0; b < x.B; ++b)
    for (i64 t = 0; t < x.N; ++t) {
      const i64 i = t - x.segs[b].response_begin;
      float want = 0.0f;
      if (i >= 0 && i < 39) want = i % 10 == 9 ? float(9 * (i / 10 + 1)) : float(i / 10 + 1);
      EXPECT_EQ(delta[b * x.N + t], want) << "b=" << b << " t=" << t;
    }
}

TYPED_TEST_P(Tokens, JumpsMatchReference) {
  std::mt19937 rng(11);
  for (i64 N : {1, 2, 17, 200}) {
    const batch x = random_batch(rng, 4, N, 4096, {}, false);
    const auto delta = run_jumps(make_policy<TypeParam>(), x, x.waad);
    for (i64 b = 0; b < x.B; ++b) {
      const auto want = ref::jumps(x.row(x.waad, b), to_ref(x.segs[b]));
      for (i64 t = 0; t < N; ++t) EXPECT_TRUE(same(delta[b * N + t], want[t])) << "N=" << N << " b=" << b << " t=" << t;
    }
  }
}

TYPED_TEST_P(Tokens, JumpsReadHalfPrecision) {
  using P = TypeParam;
  std::mt19937 rng(12);
  const batch x = random_batch(rng, 3, 30, 256, {}, false);
  std::vector<rhythm::half> h(x.waad.size());
  for (std::size_t i = 0; i < h.size(); ++i) h[i] = rhythm::half(x.waad[i]);  // k/64 < 4: exact in half
  const auto policy = make_policy<P>();
  auto from_half = out<P>(-7.0f, 3, 30);
  rhythm::waad_jumps(policy, in<P>(h, 3, 30), in<P>(x.segs), from_half);
  finish(policy);
  EXPECT_EQ(from_half.host(), run_jumps(policy, x, x.waad));
}

// ---------------------------------------------------------------------------------------------- top-q

template <class P>
std::pair<std::vector<u8>, std::vector<float>> run_top_q(P policy, const batch& x, const std::vector<float>& values,
                                                         const std::vector<u8>* eligible, rhythm::top_q_params p) {
  auto sel = out<P>(u8{0xAB}, x.B, x.N);
  auto thr = out<P>(-7.0f, x.B);
  if (eligible)
    rhythm::top_q(policy, in<P>(values, x.B, x.N), in<P>(*eligible, x.B, x.N), in<P>(x.segs), sel, thr, p);
  else
    rhythm::top_q(policy, in<P>(values, x.B, x.N), in<P>(x.segs), sel, thr, p);
  finish(policy);
  return {sel.host(), thr.host()};
}

TYPED_TEST_P(Tokens, TopQMatchesReference) {
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

TYPED_TEST_P(Tokens, TopQSelectsExactlyCeilQnOfDistinctValues) {
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

TYPED_TEST_P(Tokens, TopQEdgeCases) {
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

TYPED_TEST_P(Tokens, TopQThroughStrides) {
  using P = TypeParam;
  std::mt19937 rng(23);
  const batch x = random_batch(rng, 4, 50, 100, {}, false);
  std::vector<float> transposed(x.waad.size());  // [N, B] in memory
  for (i64 b = 0; b < x.B; ++b)
    for (i64 t = 0; t < x.N; ++t) transposed[t * x.B + b] = x.waad[b * x.N + t];
  auto sel_out = out_strided<P>(std::vector<u8>(2 * x.B * x.N, 0xAB), {x.B, x.N}, {2 * x.N, 2});  // every other byte
  auto thr_out = out_strided<P>(std::vector<float>(3 * x.B, -7.0f), {x.B}, {3});                   // every third float
  const auto policy = make_policy<P>();
  rhythm::top_q(policy, in_strided<P>(transposed, {x.B, x.N}, {1, x.B}), in<P>(x.segs), sel_out, thr_out, {.q = 0.3});
  finish(policy);
  const auto sel = sel_out.host();
  const auto thr = thr_out.host();
  const auto [want_sel, want_thr] = run_top_q(policy, x, x.waad, nullptr, {.q = 0.3});
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

TYPED_TEST_P(Tokens, SawtoothAndStripesGiveTheSetsByConstruction) {
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
    p.dominance = {.window = c.k, .threshold = c.mode};
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

TYPED_TEST_P(Tokens, TokenSetsMatchReference) {
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

TYPED_TEST_P(Tokens, AllEqualSignalsSelectEverything) {
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
        EXPECT_TRUE(f & bit(token_flag::preplan)) << t;                            // every Δ is 0: all tie
        EXPECT_EQ(bool(f & bit(token_flag::anchor)), t + 4 <= s.end - 1) << t;     // every eligible token
        EXPECT_EQ(bool(f & bit(token_flag::dominated)), t > s.response_begin && (f & bit(token_flag::anchor))) << t;
      }
    }
  }
}

TYPED_TEST_P(Tokens, TokenSetsWithoutThresholdsAndThroughStrides) {
  using P = TypeParam;
  std::mt19937 rng(32);
  const ref::token_options o{0.3, false, 3, true, 5, 50};
  const batch x = random_batch(rng, 5, 80, 30, o, false);
  const auto policy = make_policy<P>();
  const auto want = run_token_sets(policy, x, to_params(o));
  auto flags = out<P>(rhythm::token_flag{0xAB}, x.B, x.N);
  rhythm::token_sets(policy, in<P>(x.waad, x.B, x.N), in<P>(x.fai, x.B, x.N), in<P>(x.segs), flags, to_params(o));
  finish(policy);
  for (i64 i = 0; i < x.B * x.N; ++i) EXPECT_EQ(rhythm::bits(flags.host()[i]), want.flags[i]) << i;
  // Inputs stored [N, B], flags as every other byte, thresholds transposed [4, B].
  std::vector<float> waad_t(x.waad.size()), fai_t(x.fai.size());
  for (i64 b = 0; b < x.B; ++b)
    for (i64 t = 0; t < x.N; ++t) waad_t[t * x.B + b] = x.waad[b * x.N + t], fai_t[t * x.B + b] = x.fai[b * x.N + t];
  auto flags_out = out_strided<P>(std::vector<u8>(2 * x.B * x.N, 0xAB), {x.B, x.N}, {2 * x.N, 2});
  auto thr_out = out_strided<P>(std::vector<float>(4 * x.B, -7.0f), {x.B, 4}, {1, x.B});
  rhythm::token_sets(policy, in_strided<P>(waad_t, {x.B, x.N}, {1, x.B}), in_strided<P>(fai_t, {x.B, x.N}, {1, x.B}),
                     in<P>(x.segs), flags_out, thr_out, to_params(o));
  finish(policy);
  const auto flags2 = flags_out.host();
  const auto thr = thr_out.host();
  for (i64 i = 0; i < x.B * x.N; ++i) EXPECT_EQ(flags2[2 * i], want.flags[i]) << i;
  for (i64 b = 0; b < x.B; ++b)
    for (i64 c = 0; c < 4; ++c) EXPECT_TRUE(same(thr[c * x.B + b], want.thresholds[b * 4 + c])) << b << "," << c;
}

TYPED_TEST_P(Tokens, PreplanIsTopQOfTheJumps) {
  std::mt19937 rng(33);
  const auto P = make_policy<TypeParam>();
  const ref::token_options o{0.35, false, 3, false, 10, 100};
  const batch x = random_batch(rng, 6, 120, 4096, o, false);
  const auto delta = run_jumps(P, x, x.waad);
  const auto [sel, thr] = run_top_q(P, x, delta, nullptr, {.q = 0.35});
  const auto sets = run_token_sets(P, x, to_params(o));
  for (i64 i = 0; i < x.B * x.N; ++i) EXPECT_EQ(sel[i], u8(bool(sets.flags[i] & bit(token_flag::preplan)))) << i;
  for (i64 b = 0; b < x.B; ++b) EXPECT_TRUE(same(thr[b], sets.thresholds[b * 4])) << b;
}

// ----------------------------------------------------------------------------------------------- peaks

template <class P, class Set>
std::vector<u8> run_peaks(P policy, const batch& x, const std::vector<Set>& set, rhythm::peak_params p = {}) {
  auto peaks = out<P>(u8{0xAB}, x.B, x.N);
  rhythm::local_peaks(policy, in<P>(x.waad, x.B, x.N), in<P>(set, x.B, x.N), in<P>(x.segs), peaks, p);
  finish(policy);
  return peaks.host();
}

TYPED_TEST_P(Tokens, PeaksByHand) {
  const auto P = make_policy<TypeParam>();
  batch x(1, 12);
  x.segs = {{1, 2, 10}};
  const float v[] = {3, 1, 4, 4, 2, 5, 5, 5};  // at positions 2..9; outside R stays NaN
  for (i64 i = 0; i < 8; ++i) x.waad[2 + i] = v[i];
  auto run = [&](const auto& set, rhythm::peak_params p) { return members(run_peaks(P, x, set, p), x, 0, 1); };
  std::vector<u8> all(12, 1);
  // 2: no left neighbour in R; 4: rises from 1, holds against the equal 4; 7: first of the 5-plateau.
  EXPECT_EQ(run(all, {}), (positions{0, 2, 5}));
  std::vector<token_flag> flags(12, token_flag::anchor);
  flags[4] = token_flag::preplan;
  EXPECT_EQ(run(flags, {.select_bits = token_flag::anchor}), (positions{0, 5}));  // 4 is not in the set
  EXPECT_EQ(run(flags, {.select_bits = token_flag::preplan}), (positions{2}));
}

TYPED_TEST_P(Tokens, PeaksMatchReference) {
  std::mt19937 rng(41);
  const auto P = make_policy<TypeParam>();
  for (int levels : {3, 20, 4096}) {
    const batch x = random_batch(rng, 5, 70, levels, {}, false);
    std::vector<u8> set(x.B * x.N);
    std::bernoulli_distribution coin(0.5);
    for (auto& s : set) s = coin(rng);
    const auto peaks = run_peaks(P, x, set);
    for (i64 b = 0; b < x.B; ++b) {
      ref::set in(x.N);
      for (i64 t = 0; t < x.N; ++t) in[t] = set[b * x.N + t];
      const auto want = ref::peaks(x.row(x.waad, b), in, to_ref(x.segs[b]));
      for (i64 t = 0; t < x.N; ++t) EXPECT_EQ(peaks[b * x.N + t], u8(want[t])) << "levels=" << levels << " b=" << b << " t=" << t;
    }
  }
}

REGISTER_TYPED_TEST_SUITE_P(Tokens, JumpsOfSawtooth, JumpsMatchReference, JumpsReadHalfPrecision, TopQMatchesReference,
                            TopQSelectsExactlyCeilQnOfDistinctValues, TopQEdgeCases, TopQThroughStrides,
                            SawtoothAndStripesGiveTheSetsByConstruction, TokenSetsMatchReference,
                            AllEqualSignalsSelectEverything, TokenSetsWithoutThresholdsAndThroughStrides,
                            PreplanIsTopQOfTheJumps, PeaksByHand, PeaksMatchReference);

}  // namespace tokens_suite
