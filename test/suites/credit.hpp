#pragma once
// Credit stage: GRPO advantages, the built-in shaping policies and factors, and shaped advantages,
// against the double reference (reference_credit.hpp) and by property: a typed suite over the
// execution policy through rt::array (backend_memory.hpp), instantiated by each backend.
#include <rhythm/credit/advantages.hpp>
#include <rhythm/credit/policies.hpp>
#include <rhythm/credit/ppo_objective.hpp>
#include <rhythm/credit/shaping.hpp>

#include <algorithm>
#include <bit>
#include <set>
#include <string>

#include "../reference_credit.hpp"
#include "../test_util.hpp"

namespace credit_suite {
using namespace rt;
namespace rc = ref_credit;
namespace sh = rhythm::shaping;
using rhythm::make_view;

constexpr float kUntouched = -7.0f;
inline const float kNaN = std::numeric_limits<float>::quiet_NaN();

template <class P>
class Credit : public rt::backend_test<P> {};
TYPED_TEST_SUITE_P(Credit);

template <class P>
std::vector<float> run_advantages(P policy, const std::vector<float>& rewards, const std::vector<i64>& ids,
                                  const rhythm::advantage_params& params = {}) {
  auto out = rt::out<P>(kUntouched, i64(rewards.size()));
  rhythm::grpo_advantages(policy, in<P>(rewards), in<P>(ids), out, params);
  finish(policy);
  return out.host();
}

// ---------------------------------------------------------------------------------------------
// GRPO advantages

// Groups with arbitrary int64 labels (negative, extreme, sparse), of sizes 1..8, shuffled
// together; half the groups have binary rewards (as from a verifier), half continuous ones.
struct grouped_rewards {
  std::vector<float> rewards;
  std::vector<i64> ids;
  grouped_rewards(std::mt19937& rng, int groups) {
    std::uniform_int_distribution<int> size(1, 8);
    std::uniform_int_distribution<i64> label(std::numeric_limits<i64>::min(), std::numeric_limits<i64>::max());
    std::bernoulli_distribution coin(0.5);
    std::normal_distribution<float> normal(0.5f, 2.0f);
    for (int g = 0; g < groups; ++g) {
      const i64 id = g == 0 ? std::numeric_limits<i64>::min() : g == 1 ? -3 : label(rng);
      const bool binary = coin(rng);
      for (int i = size(rng); i-- > 0;) {
        ids.push_back(id);
        rewards.push_back(binary ? float(coin(rng)) : normal(rng));
      }
    }
    std::vector<std::size_t> perm(ids.size());
    std::iota(perm.begin(), perm.end(), std::size_t(0));
    std::shuffle(perm.begin(), perm.end(), rng);
    auto r = rewards;
    auto d = ids;
    for (std::size_t i = 0; i < perm.size(); ++i) rewards[i] = r[perm[i]], ids[i] = d[perm[i]];
  }
};

TYPED_TEST_P(Credit, AdvantagesMatchReference) {
  std::mt19937 rng(5);
  for (int groups : {1, 2, 9, 40}) {
    const grouped_rewards g(rng, groups);
    const std::vector<double> rd(g.rewards.begin(), g.rewards.end());
    for (bool normalise : {true, false}) {
      const auto out = run_advantages(make_policy<TypeParam>(), g.rewards, g.ids, {.std_normalise = normalise});
      const auto want = rc::grpo_advantages(rd, g.ids, normalise, 1e-6);
      for (std::size_t i = 0; i < out.size(); ++i)
        EXPECT_TRUE(close(out[i], want[i], 1e-6)) << "groups=" << groups << " norm=" << normalise << " i=" << i;
    }
  }
}

TYPED_TEST_P(Credit, AdvantagesThroughStridesAndCustomEpsilon) {
  using P = TypeParam;
  std::mt19937 rng(6);
  const grouped_rewards g(rng, 12);
  const i64 S = i64(g.rewards.size());
  std::vector<float> spaced(2 * S, kNaN);
  for (i64 i = 0; i < S; ++i) spaced[2 * i] = g.rewards[i];
  auto out_strided3 = out_strided<P>(std::vector<float>(3 * S, kUntouched), {S}, {3});
  const auto policy = make_policy<P>();
  rhythm::grpo_advantages(policy, in_strided<P>(spaced, {S}, {2}), in<P>(g.ids), out_strided3, {.epsilon = 0.5f});
  finish(policy);
  const auto out = out_strided3.host();
  const auto want = rc::grpo_advantages(std::vector<double>(g.rewards.begin(), g.rewards.end()), g.ids, true, 0.5);
  for (i64 i = 0; i < S; ++i) {
    EXPECT_TRUE(close(out[3 * i], want[i], 1e-6)) << i;
    EXPECT_EQ(out[3 * i + 1], kUntouched);  // between the strided elements: not written
  }
}

TYPED_TEST_P(Credit, AdvantagesOfSingletonsAndConstantGroupsAreZero) {
  const std::vector<float> r{5.0f, 1.0f, 1.0f, 1.0f, 2.0f, 0.0f, 1.0f, 0.0f, 1.0f};
  const std::vector<i64> ids{3, 7, 7, 7, -1, 9, 9, 9, 9};
  for (bool normalise : {true, false}) {
    const auto out = run_advantages(make_policy<TypeParam>(), r, ids, {.std_normalise = normalise});
    for (int i : {0, 1, 2, 3, 4}) EXPECT_EQ(out[i], 0.0f) << i;  // group of one; constant group
    // {0, 1, 0, 1}: mean 0.5, unbiased std sqrt(1/3)
    const float want = normalise ? float(0.5 / (std::sqrt(1.0 / 3.0) + 1e-6)) : 0.5f;
    EXPECT_FLOAT_EQ(out[5], -want);
    EXPECT_FLOAT_EQ(out[6], want);
  }
}

TYPED_TEST_P(Credit, DrGrpoOnlyCentres) {
  const std::vector<float> r{1.0f, 2.0f, 6.0f};
  const std::vector<i64> ids{4, 4, 4};
  const auto out = run_advantages(make_policy<TypeParam>(), r, ids, {.std_normalise = false});
  EXPECT_EQ(out, (std::vector<float>{-2.0f, -1.0f, 3.0f}));
}

// ---------------------------------------------------------------------------------------------
// Shaping factors

// A batch for the shaping tests: random segments plus an empty response and a response of one
// token; random flag bits at response positions (any combination, dominated without anchor too)
// and garbage elsewhere; entropies with many ties, NaN outside responses; advantages with zeros.
struct shaping_batch {
  i64 B, N;
  std::vector<rhythm::segment> segs;
  std::vector<std::uint8_t> flags;
  std::vector<float> entropy, adv;
  shaping_batch(std::mt19937& rng, i64 b, i64 n) : B(b), N(n), flags(b * n), entropy(b * n, kNaN), adv(b) {
    std::bernoulli_distribution pre(0.3), anc(0.3), dom(0.2), intro(0.15), zero(0.2);
    std::uniform_int_distribution<int> byte(0, 255), level(0, 5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (i64 s = 0; s < B; ++s) {
      segs.push_back(s == 1 ? rhythm::segment{2, 7, 7} : s == 2 ? rhythm::segment{0, N - 1, N} : random_segment(rng, N));
      for (i64 t = 0; t < N; ++t) {
        std::uint8_t& f = flags[s * N + t];
        if (!segs[s].in_response(t)) {
          f = std::uint8_t(byte(rng));
          continue;
        }
        f = (pre(rng) ? 1 : 0) | (anc(rng) ? 2 : 0) | (dom(rng) ? 4 : 0) | (intro(rng) ? 8 : 0);
        entropy[s * N + t] = 0.5f * float(level(rng));
      }
      adv[s] = zero(rng) ? 0.0f : normal(rng);
    }
    adv[0] = 1.25f, adv[3 % B] = -0.75f;  // both signs always present
  }
  auto flags_view() const { return make_view(flags, B, N); }
  auto entropy_view() const { return make_view(entropy, B, N); }

  template <class P, class S>
  std::vector<float> gamma(P policy, const S& shaping, const rhythm::shaping_options& o = {}) const {
    auto g = out<P>(kUntouched, B, N);
    rhythm::shaping_factors(policy, shaping, in<P>(flags, B, N), in<P>(entropy, B, N), in<P>(segs), in<P>(adv), g, o);
    finish(policy);
    return g.host();
  }

  // The reference's gamma of the whole batch; `drawn` is the random policy's plain-run gamma.
  std::vector<double> reference(const rc::policy& p, const rc::options& o, const std::vector<float>& drawn) const {
    std::vector<double> g(B * N, 1.0);
    for (i64 s = 0; s < B; ++s) {
      std::vector<unsigned> f;
      std::vector<double> e;
      std::vector<bool> d;
      for (i64 t = segs[s].response_begin; t < segs[s].end; ++t) {
        f.push_back(flags[s * N + t]);
        e.push_back(entropy[s * N + t]);
        d.push_back(!drawn.empty() && drawn[s * N + t] != 1.0f);
      }
      const auto r = rc::apply_options(rc::raw_gamma(p, f, e, d, o.bottom), adv[s], o);
      for (std::size_t i = 0; i < r.size(); ++i) g[s * N + segs[s].response_begin + i] = r[i];
    }
    return g;
  }
};

inline rhythm::shaping_options to_options(const rc::options& o) {
  const rhythm::sign_mode s[] = {rhythm::sign_mode::both, rhythm::sign_mode::positive, rhythm::sign_mode::negative};
  return {.sign = s[int(o.s)], .floor = o.floor, .mean_preserving = o.mean_preserving};
}

// Every built-in policy, in several parameterisations, with its reference description:
// f(policy(bottom), reference), `bottom` reaching the policies that select by themselves (entropy).
template <class F>
void for_each_policy(F&& f) {
  using k = rc::kind;
  const auto fixed = [](auto p) { return [p](bool) { return p; }; };
  f(fixed(sh::uniform{}), rc::policy{k::uniform});
  f(fixed(sh::local_chunk{}), rc::policy{k::local_chunk});
  f(fixed(sh::local_chunk{.gamma_amp = 2.0}), rc::policy{k::local_chunk, 2.0});
  f(fixed(sh::global_anchor{}), rc::policy{k::global_anchor});
  f(fixed(sh::global_anchor{.gamma_amp = 1.25}), rc::policy{k::global_anchor, 1.25});
  f(fixed(sh::coupled_rhythm{}), rc::policy{k::coupled_rhythm});
  f(fixed(sh::coupled_rhythm{.gamma_amp = 2.0, .alpha = 0.3}), rc::policy{k::coupled_rhythm, 2.0, 0.3});
  f(fixed(sh::coupled_rhythm{.alpha = 0.0}), rc::policy{k::coupled_rhythm, 1.5, 0.0});
  f(fixed(sh::coupled_rhythm{.gamma_amp = 3.0, .alpha = 1.0}), rc::policy{k::coupled_rhythm, 3.0, 1.0});
  f(fixed(sh::random{}), rc::policy{k::random});
  f(fixed(sh::random{.gamma_amp = 3.0, .q = 0.15, .seed = 42}), rc::policy{k::random, 3.0, 0.5, 0.15});
  const auto entropy = [](double gamma_amp, double q) {
    return [=](bool bottom) { return sh::entropy{.gamma_amp = gamma_amp, .selection = {.q = q, .bottom = bottom}}; };
  };
  f(entropy(1.5, 0.4), rc::policy{k::entropy});
  f(entropy(1.5, 0.25), rc::policy{k::entropy, 1.5, 0.5, 0.25});
  f(entropy(2.0, 1.0), rc::policy{k::entropy, 2.0, 0.5, 1.0});
  f(entropy(1.5, 0.01), rc::policy{k::entropy, 1.5, 0.5, 0.01});
}

TYPED_TEST_P(Credit, ShapingMatchesReferenceForEveryPolicyAndOption) {
  std::mt19937 rng(11);
  const shaping_batch x(rng, 7, 48);
  const auto P = make_policy<TypeParam>();
  int cases = 0;
  for_each_policy([&](const auto& policy, const rc::policy& rp) {
    const auto drawn = rp.k == rc::kind::random ? x.gamma(P, policy(false)) : std::vector<float>{};
    for (auto s : {rc::sign::both, rc::sign::positive, rc::sign::negative})
      for (bool bottom : {false, true})
        for (double floor : {0.0, 1.1})
          for (bool mean : {false, true}) {
            const rc::options o{s, bottom, floor, mean};
            const auto got = x.gamma(P, policy(bottom), to_options(o));
            const auto want = x.reference(rp, o, drawn);
            ++cases;
            for (i64 b = 0; b < x.B; ++b)
              for (i64 t = 0; t < x.N; ++t) {
                const float g = got[b * x.N + t];
                if (!x.segs[b].in_response(t)) {
                  ASSERT_EQ(g, 1.0f) << "outside the response b=" << b << " t=" << t;
                  continue;
                }
                ASSERT_TRUE(close(g, want[b * x.N + t], 2e-6))
                    << "policy " << int(rp.k) << " sign " << int(s) << " bottom " << bottom << " floor " << floor
                    << " mean " << mean << " b=" << b << " t=" << t;
              }
          }
  });
  EXPECT_EQ(cases, 15 * 24);
}

TYPED_TEST_P(Credit, ShapingThroughStridedViewsMatchesContiguous) {
  using P = TypeParam;
  std::mt19937 rng(12);
  const shaping_batch x(rng, 5, 30);
  const i64 B = x.B, N = x.N;
  // flags and entropies stored [N, B]; gamma written [N, B] as well
  std::vector<std::uint8_t> ft(B * N);
  std::vector<float> et(B * N);
  for (i64 b = 0; b < B; ++b)
    for (i64 t = 0; t < N; ++t) ft[t * B + b] = x.flags[b * N + t], et[t * B + b] = x.entropy[b * N + t];
  const sh::coupled_rhythm policy{.alpha = 0.3};
  const auto exec = make_policy<P>();
  auto g = out_strided<P>(std::vector<float>(B * N, kUntouched), {B, N}, {1, B});
  rhythm::shaping_factors(exec, policy, in_strided<P>(ft, {B, N}, {1, B}), in_strided<P>(et, {B, N}, {1, B}),
                          in<P>(x.segs), in<P>(x.adv), g, {.mean_preserving = true});
  finish(exec);
  const auto gt = g.host();
  const auto want = x.gamma(exec, policy, {.mean_preserving = true});
  for (i64 b = 0; b < B; ++b)
    for (i64 t = 0; t < N; ++t) EXPECT_EQ(gt[t * B + b], want[b * N + t]) << b << " " << t;
}

TYPED_TEST_P(Credit, UniformGivesTheAdvantageBitForBit) {
  std::mt19937 rng(13);
  const shaping_batch x(rng, 6, 40);
  for (const rhythm::shaping_options& o :
       {rhythm::shaping_options{}, rhythm::shaping_options{.mean_preserving = true},
        rhythm::shaping_options{.floor = 0.5}, rhythm::shaping_options{.sign = rhythm::sign_mode::positive}}) {
    using P = TypeParam;
    const auto policy = make_policy<P>();
    const auto gamma = x.gamma(policy, sh::uniform{}, o);
    auto shaped_out = out<P>(kUntouched, x.B, x.N);
    rhythm::shaped_advantages(policy, in<P>(gamma, x.B, x.N), in<P>(x.adv), in<P>(x.segs), shaped_out);
    finish(policy);
    const auto shaped = shaped_out.host();
    for (i64 b = 0; b < x.B; ++b)
      for (i64 t = 0; t < x.N; ++t) {
        const float want = x.segs[b].in_response(t) ? x.adv[b] : 0.0f;
        ASSERT_EQ(std::bit_cast<std::uint32_t>(shaped[b * x.N + t]), std::bit_cast<std::uint32_t>(want)) << b << " " << t;
      }
  }
}

// Checks that every response gamma is within tolerance of one of `allowed`.
inline void expect_values_in(const shaping_batch& x, const std::vector<float>& g, const std::vector<double>& allowed,
                      const char* what) {
  for (i64 b = 0; b < x.B; ++b)
    for (i64 t = x.segs[b].response_begin; t < x.segs[b].end; ++t) {
      const double v = g[b * x.N + t];
      EXPECT_TRUE(std::any_of(allowed.begin(), allowed.end(), [&](double a) { return std::abs(v - a) <= 1e-6; }))
          << what << ": " << v << " at b=" << b << " t=" << t;
    }
}

TYPED_TEST_P(Credit, GammaTakesOnlyTheValuesItsPolicyAllows) {
  std::mt19937 rng(14);
  const shaping_batch x(rng, 8, 60);
  const auto P = make_policy<TypeParam>();
  for (double amp : {1.5, 2.0, 1.0})
    for (double alpha : {0.5, 0.2, 0.0, 1.0}) {
      const double b = amp - 1;
      const auto g = x.gamma(P, sh::coupled_rhythm{.gamma_amp = amp, .alpha = alpha});
      expect_values_in(x, g, {1, 1 + b, 1 + (1 - alpha) * b, 1 + alpha * b, 1 + b + alpha * b, 1 + b}, "coupled_rhythm");
      for (const auto& v : {x.gamma(P, sh::local_chunk{.gamma_amp = amp}), x.gamma(P, sh::global_anchor{.gamma_amp = amp}),
                            x.gamma(P, sh::random{.gamma_amp = amp}), x.gamma(P, sh::entropy{.gamma_amp = amp})})
        expect_values_in(x, v, {1.0, amp}, "single-set policy");
    }
  expect_values_in(x, x.gamma(P, sh::uniform{}), {1.0}, "uniform");
  // gamma_amp = 1 switches every policy off
  for (const auto& v : {x.gamma(P, sh::coupled_rhythm{.gamma_amp = 1.0}), x.gamma(P, sh::entropy{.gamma_amp = 1.0})})
    for (float g : v) EXPECT_EQ(g, 1.0f);
}

TYPED_TEST_P(Credit, SignModeLeavesTheOtherSignAtOne) {
  std::mt19937 rng(15);
  const shaping_batch x(rng, 9, 40);
  const auto P = make_policy<TypeParam>();
  const sh::coupled_rhythm policy{.gamma_amp = 2.0};
  const rhythm::shaping_options base{.floor = 1.2, .mean_preserving = true};  // options do not reach the other sign
  const auto both = x.gamma(P, policy, base);
  for (auto mode : {rhythm::sign_mode::positive, rhythm::sign_mode::negative}) {
    auto o = base;
    o.sign = mode;
    const auto g = x.gamma(P, policy, o);
    int shaped = 0, left = 0;
    for (i64 b = 0; b < x.B; ++b) {
      const float a = x.adv[b];
      const bool selected = mode == rhythm::sign_mode::positive ? a > 0.0f : a < 0.0f;  // A == 0: neither
      (selected ? shaped : left) += 1;
      for (i64 t = 0; t < x.N; ++t) EXPECT_EQ(g[b * x.N + t], selected ? both[b * x.N + t] : 1.0f) << b << " " << t;
    }
    EXPECT_GT(shaped, 0);
    EXPECT_GT(left, 0);
  }
}

TYPED_TEST_P(Credit, RandomIsSeededDeterministicAndDrawsExactlyCeilQN) {
  std::mt19937 rng(16);
  shaping_batch x(rng, 6, 100);
  x.segs[4] = {0, 0, 100};  // n = 100: q = 0.07 must give 7 (the binary product is 7.000000000000001)
  std::fill(x.entropy.begin() + 400, x.entropy.begin() + 500, 1.0f);
  const auto P = make_policy<TypeParam>();
  for (double q : {0.07, 0.4, 0.15, 1.0}) {
    const sh::random policy{.q = q, .seed = 3};
    const auto g = x.gamma(P, policy);
    EXPECT_EQ(g, x.gamma(P, policy)) << "same seed, same draw";
    EXPECT_EQ(g, x.gamma(rhythm::exec::seq{}, policy)) << "independent of the backend";
    for (i64 b = 0; b < x.B; ++b) {
      const i64 n = x.segs[b].response_length();
      i64 drawn = 0;
      for (i64 t = 0; t < x.N; ++t) drawn += g[b * x.N + t] != 1.0f;
      EXPECT_EQ(drawn, rc::top_q_count(q, n)) << "q=" << q << " b=" << b << " n=" << n;
    }
    if (q < 1.0) {
      EXPECT_NE(g, x.gamma(P, sh::random{.q = q, .seed = 4})) << "another seed, another draw";
    }
  }
  EXPECT_EQ(rhythm::top_q_count(0.07, 100), 7);
  // Uniformity: over 3000 seeds (and sequences) each of 10 positions is drawn about q = 0.3 of the
  // time, and each of the 45 pairs about k(k-1)/(n(n-1)) = 6/90 of the time, as by a uniform 3-subset.
  using S = TypeParam;
  const i64 B = 30;
  const std::vector<rhythm::segment> ten(B, rhythm::segment{0, 0, 10});
  const std::vector<std::uint8_t> flags(B * 10, 0);
  const std::vector<float> adv(B, 1.0f);
  std::vector<int> count(10, 0), pairs(100, 0);
  for (std::uint64_t seed = 0; seed < 100; ++seed) {
    auto g_out = out<S>(kUntouched, B, i64(10));
    rhythm::shaping_factors(P, sh::random{.q = 0.3, .seed = seed}, in<S>(flags, B, 10), in<S>(ten), in<S>(adv), g_out);
    finish(P);
    const auto g = g_out.host();
    for (i64 b = 0; b < B; ++b)
      for (int i = 0; i < 10; ++i) {
        count[i] += g[b * 10 + i] != 1.0f;
        for (int j = 0; j < i; ++j) pairs[i * 10 + j] += g[b * 10 + i] != 1.0f && g[b * 10 + j] != 1.0f;
      }
  }
  for (int i = 0; i < 10; ++i) EXPECT_NEAR(count[i], 900, 4 * 25.1) << "position " << i;  // sd sqrt(3000 .3 .7)
  for (int i = 0; i < 10; ++i)
    for (int j = 0; j < i; ++j) EXPECT_NEAR(pairs[i * 10 + j], 200, 4 * 13.7) << i << "," << j;  // sd sqrt(3000 p (1-p))
}

TYPED_TEST_P(Credit, EntropyTopQIsTieInclusiveAndBottomSelectsLowest) {
  const std::vector<rhythm::segment> segs{{0, 2, 12}};
  // response entropies: 0 1 2 3 3 3 4 5 6 7 (n = 10); q = 0.4: k = 4, 4th largest = 4 -> {4,5,6,7}
  const std::vector<float> ent{kNaN, kNaN, 0, 1, 2, 3, 3, 3, 4, 5, 6, 7};
  const std::vector<std::uint8_t> flags(12, 0);
  const std::vector<float> adv{-1.0f};
  using P = TypeParam;
  auto run = [&](double q, bool bottom) {
    const auto policy = make_policy<P>();
    auto g = out<P>(kUntouched, 1, 12);
    rhythm::shaping_factors(policy, sh::entropy{.gamma_amp = 2.0, .selection = {.q = q, .bottom = bottom}},
                            in<P>(flags, 1, 12), in<P>(ent, 1, 12), in<P>(segs), in<P>(adv), g);
    finish(policy);
    return g.host();
  };
  EXPECT_EQ(run(0.4, false), (std::vector<float>{1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2}));
  // q = 0.5: k = 5, 5th largest = 3, ties inclusive: 7 tokens
  EXPECT_EQ(run(0.5, false), (std::vector<float>{1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2}));
  // bottom, q = 0.4: 4th smallest = 3, ties inclusive: {0,1,2,3,3,3}
  EXPECT_EQ(run(0.4, true), (std::vector<float>{1, 1, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1}));
}

TYPED_TEST_P(Credit, MeanPreservingGivesMeanOnePerResponse) {
  std::mt19937 rng(17);
  const shaping_batch x(rng, 8, 50);
  for_each_policy([&](const auto& policy, const rc::policy&) {
    for (bool bottom : {false, true}) {
      const auto g = x.gamma(make_policy<TypeParam>(), policy(bottom), {.mean_preserving = true});
      for (i64 b = 0; b < x.B; ++b) {
        if (x.segs[b].response_length() == 0) continue;
        double sum = 0;
        for (i64 t = x.segs[b].response_begin; t < x.segs[b].end; ++t) sum += g[b * x.N + t];
        EXPECT_NEAR(sum / double(x.segs[b].response_length()), 1.0, 1e-6) << "b=" << b;
      }
    }
  });
}

TYPED_TEST_P(Credit, FloorIsRespected) {
  std::mt19937 rng(18);
  const shaping_batch x(rng, 8, 50);
  // gamma_amp 4 with mean-preserving pushes unselected tokens far below 1; the floor holds them.
  for (double floor : {0.8, 1.3}) {
    const auto g =
        x.gamma(make_policy<TypeParam>(), sh::local_chunk{.gamma_amp = 4.0}, {.floor = floor, .mean_preserving = true});
    int at_floor = 0;
    for (i64 b = 0; b < x.B; ++b)
      for (i64 t = x.segs[b].response_begin; t < x.segs[b].end; ++t) {
        EXPECT_GE(g[b * x.N + t], float(floor));
        at_floor += g[b * x.N + t] == float(floor);
      }
    EXPECT_GT(at_floor, 0) << "the floor binds somewhere";
  }
}

TYPED_TEST_P(Credit, ShapedAdvantagesMatchReference) {
  std::mt19937 rng(20);
  const i64 B = 6, N = 35;
  std::vector<rhythm::segment> segs;
  for (i64 b = 0; b < B; ++b) segs.push_back(b == 2 ? rhythm::segment{0, 35, 35} : random_segment(rng, N));
  std::vector<float> gamma(B * N, kNaN), adv = random_floats(rng, B);
  std::uniform_real_distribution<float> u(0.5f, 3.0f);
  for (i64 b = 0; b < B; ++b)
    for (i64 t = segs[b].response_begin; t < segs[b].end; ++t) gamma[b * N + t] = u(rng);
  using P = TypeParam;
  const auto policy = make_policy<P>();
  auto out_arr = rt::out<P>(kUntouched, B, N);
  rhythm::shaped_advantages(policy, in<P>(gamma, B, N), in<P>(adv), in<P>(segs), out_arr);
  finish(policy);
  const auto out = out_arr.host();
  for (i64 b = 0; b < B; ++b)
    for (i64 t = 0; t < N; ++t) {
      if (segs[b].in_response(t)) EXPECT_TRUE(close(out[b * N + t], double(gamma[b * N + t]) * adv[b], 1e-6));
      else EXPECT_EQ(out[b * N + t], 0.0f);
    }
}

REGISTER_TYPED_TEST_SUITE_P(Credit, AdvantagesMatchReference, AdvantagesThroughStridesAndCustomEpsilon, AdvantagesOfSingletonsAndConstantGroupsAreZero, DrGrpoOnlyCentres, ShapingMatchesReferenceForEveryPolicyAndOption, ShapingThroughStridedViewsMatchesContiguous, UniformGivesTheAdvantageBitForBit, GammaTakesOnlyTheValuesItsPolicyAllows, SignModeLeavesTheOtherSignAtOne, RandomIsSeededDeterministicAndDrawsExactlyCeilQN, EntropyTopQIsTieInclusiveAndBottomSelectsLowest, MeanPreservingGivesMeanOnePerResponse, FloorIsRespected, ShapedAdvantagesMatchReference);

}  // namespace credit_suite
