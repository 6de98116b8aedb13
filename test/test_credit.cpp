// Credit stage: GRPO advantages, shaping policies and factors, shaped advantages and the PPO-clip
// objective, against the double reference (reference_credit.hpp) and by property, on every host
// backend; then one test per rejected input, with outputs left untouched.
#include <rhythm/credit/advantages.hpp>
#include <rhythm/credit/policies.hpp>
#include <rhythm/credit/ppo_objective.hpp>
#include <rhythm/credit/shaping.hpp>

#include <algorithm>
#include <bit>
#include <set>
#include <string>

#include "reference_credit.hpp"
#include "test_util.hpp"

namespace {
using namespace rt;
namespace rc = ref_credit;
namespace sh = rhythm::shaping;
using rhythm::make_view;

constexpr float kUntouched = -7.0f;
const float kNaN = std::numeric_limits<float>::quiet_NaN();

template <class P>
class Credit : public ::testing::Test {};
TYPED_TEST_SUITE(Credit, host_policies);

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

TYPED_TEST(Credit, AdvantagesMatchReference) {
  std::mt19937 rng(5);
  for (int groups : {1, 2, 9, 40}) {
    const grouped_rewards g(rng, groups);
    const std::vector<double> rd(g.rewards.begin(), g.rewards.end());
    for (bool normalise : {true, false}) {
      std::vector<float> out(g.rewards.size(), kUntouched);
      rhythm::grpo_advantages(make_policy<TypeParam>(), make_view(g.rewards), make_view(g.ids), make_view(out),
                              {.std_normalise = normalise});
      const auto want = rc::grpo_advantages(rd, g.ids, normalise, 1e-6);
      for (std::size_t i = 0; i < out.size(); ++i)
        EXPECT_TRUE(close(out[i], want[i], 1e-6)) << "groups=" << groups << " norm=" << normalise << " i=" << i;
    }
  }
}

TYPED_TEST(Credit, AdvantagesThroughStridesAndCustomEpsilon) {
  std::mt19937 rng(6);
  const grouped_rewards g(rng, 12);
  const i64 S = i64(g.rewards.size());
  std::vector<float> spaced(2 * S, kNaN), out(3 * S, kUntouched);
  for (i64 i = 0; i < S; ++i) spaced[2 * i] = g.rewards[i];
  rhythm::grpo_advantages(make_policy<TypeParam>(), rhythm::view<const float, 1>(spaced.data(), {S}, {2}),
                          make_view(g.ids), rhythm::view<float, 1>(out.data(), {S}, {3}), {.epsilon = 0.5f});
  const auto want = rc::grpo_advantages(std::vector<double>(g.rewards.begin(), g.rewards.end()), g.ids, true, 0.5);
  for (i64 i = 0; i < S; ++i) {
    EXPECT_TRUE(close(out[3 * i], want[i], 1e-6)) << i;
    EXPECT_EQ(out[3 * i + 1], kUntouched);  // between the strided elements: not written
  }
}

TYPED_TEST(Credit, AdvantagesOfSingletonsAndConstantGroupsAreZero) {
  const std::vector<float> r{5.0f, 1.0f, 1.0f, 1.0f, 2.0f, 0.0f, 1.0f, 0.0f, 1.0f};
  const std::vector<i64> ids{3, 7, 7, 7, -1, 9, 9, 9, 9};
  for (bool normalise : {true, false}) {
    std::vector<float> out(r.size(), kUntouched);
    rhythm::grpo_advantages(make_policy<TypeParam>(), make_view(r), make_view(ids), make_view(out),
                            {.std_normalise = normalise});
    for (int i : {0, 1, 2, 3, 4}) EXPECT_EQ(out[i], 0.0f) << i;  // group of one; constant group
    // {0, 1, 0, 1}: mean 0.5, unbiased std sqrt(1/3)
    const float want = normalise ? float(0.5 / (std::sqrt(1.0 / 3.0) + 1e-6)) : 0.5f;
    EXPECT_FLOAT_EQ(out[5], -want);
    EXPECT_FLOAT_EQ(out[6], want);
  }
}

TYPED_TEST(Credit, DrGrpoOnlyCentres) {
  const std::vector<float> r{1.0f, 2.0f, 6.0f};
  const std::vector<i64> ids{4, 4, 4};
  std::vector<float> out(3);
  rhythm::grpo_advantages(make_policy<TypeParam>(), make_view(r), make_view(ids), make_view(out),
                          {.std_normalise = false});
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
  auto flags_view() const { return make_view(flags, std::array<i64, 2>{B, N}); }
  auto entropy_view() const { return make_view(entropy, std::array<i64, 2>{B, N}); }

  template <class P, class S>
  std::vector<float> gamma(P policy, const S& shaping, const rhythm::shaping_options& o = {}) const {
    std::vector<float> g(B * N, kUntouched);
    rhythm::shaping_factors(policy, shaping, flags_view(), entropy_view(), make_view(segs), make_view(adv),
                            make_view(g, std::array<i64, 2>{B, N}), o);
    return g;
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

rhythm::shaping_options to_options(const rc::options& o) {
  const rhythm::sign_mode s[] = {rhythm::sign_mode::both, rhythm::sign_mode::positive, rhythm::sign_mode::negative};
  return {.sign = s[int(o.s)], .bottom = o.bottom, .floor = o.floor, .mean_preserving = o.mean_preserving};
}

// Every built-in policy, in several parameterisations, with its reference description.
template <class F>
void for_each_policy(F&& f) {
  using k = rc::kind;
  f(sh::uniform{}, rc::policy{k::uniform});
  f(sh::local_chunk{}, rc::policy{k::local_chunk});
  f(sh::local_chunk{.gamma_amp = 2.0}, rc::policy{k::local_chunk, 2.0});
  f(sh::global_anchor{}, rc::policy{k::global_anchor});
  f(sh::global_anchor{.gamma_amp = 1.25}, rc::policy{k::global_anchor, 1.25});
  f(sh::coupled_rhythm{}, rc::policy{k::coupled_rhythm});
  f(sh::coupled_rhythm{.gamma_amp = 2.0, .alpha = 0.3}, rc::policy{k::coupled_rhythm, 2.0, 0.3});
  f(sh::coupled_rhythm{.alpha = 0.0}, rc::policy{k::coupled_rhythm, 1.5, 0.0});
  f(sh::coupled_rhythm{.gamma_amp = 3.0, .alpha = 1.0}, rc::policy{k::coupled_rhythm, 3.0, 1.0});
  f(sh::random{}, rc::policy{k::random});
  f(sh::random{.gamma_amp = 3.0, .q = 0.15, .seed = 42}, rc::policy{k::random, 3.0, 0.5, 0.15});
  f(sh::entropy{}, rc::policy{k::entropy});
  f(sh::entropy{.q = 0.25}, rc::policy{k::entropy, 1.5, 0.5, 0.25});
  f(sh::entropy{.gamma_amp = 2.0, .q = 1.0}, rc::policy{k::entropy, 2.0, 0.5, 1.0});
  f(sh::entropy{.q = 0.01}, rc::policy{k::entropy, 1.5, 0.5, 0.01});
}

TYPED_TEST(Credit, ShapingMatchesReferenceForEveryPolicyAndOption) {
  std::mt19937 rng(11);
  const shaping_batch x(rng, 7, 48);
  const auto P = make_policy<TypeParam>();
  int cases = 0;
  for_each_policy([&](const auto& policy, const rc::policy& rp) {
    const auto drawn = rp.k == rc::kind::random ? x.gamma(P, policy) : std::vector<float>{};
    for (auto s : {rc::sign::both, rc::sign::positive, rc::sign::negative})
      for (bool bottom : {false, true})
        for (double floor : {0.0, 1.1})
          for (bool mean : {false, true}) {
            const rc::options o{s, bottom, floor, mean};
            const auto got = x.gamma(P, policy, to_options(o));
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

TYPED_TEST(Credit, ShapingThroughStridedViewsMatchesContiguous) {
  std::mt19937 rng(12);
  const shaping_batch x(rng, 5, 30);
  const i64 B = x.B, N = x.N;
  // flags and entropies stored [N, B]; gamma written [N, B] as well
  std::vector<std::uint8_t> ft(B * N);
  std::vector<float> et(B * N), gt(B * N, kUntouched);
  for (i64 b = 0; b < B; ++b)
    for (i64 t = 0; t < N; ++t) ft[t * B + b] = x.flags[b * N + t], et[t * B + b] = x.entropy[b * N + t];
  const sh::coupled_rhythm policy{.alpha = 0.3};
  rhythm::shaping_factors(make_policy<TypeParam>(), policy, rhythm::view<const std::uint8_t, 2>(ft.data(), {B, N}, {1, B}),
                          rhythm::view<const float, 2>(et.data(), {B, N}, {1, B}), make_view(x.segs), make_view(x.adv),
                          rhythm::view<float, 2>(gt.data(), {B, N}, {1, B}), {.mean_preserving = true});
  const auto want = x.gamma(rhythm::exec::seq{}, policy, {.mean_preserving = true});
  for (i64 b = 0; b < B; ++b)
    for (i64 t = 0; t < N; ++t) EXPECT_EQ(gt[t * B + b], want[b * N + t]) << b << " " << t;
}

TYPED_TEST(Credit, UniformGivesTheAdvantageBitForBit) {
  std::mt19937 rng(13);
  const shaping_batch x(rng, 6, 40);
  for (const rhythm::shaping_options& o :
       {rhythm::shaping_options{}, rhythm::shaping_options{.mean_preserving = true},
        rhythm::shaping_options{.floor = 0.5}, rhythm::shaping_options{.sign = rhythm::sign_mode::positive}}) {
    const auto gamma = x.gamma(make_policy<TypeParam>(), sh::uniform{}, o);
    std::vector<float> shaped(x.B * x.N, kUntouched);
    rhythm::shaped_advantages(make_policy<TypeParam>(), make_view(gamma, std::array<i64, 2>{x.B, x.N}),
                              make_view(x.adv), make_view(x.segs), make_view(shaped, std::array<i64, 2>{x.B, x.N}));
    for (i64 b = 0; b < x.B; ++b)
      for (i64 t = 0; t < x.N; ++t) {
        const float want = x.segs[b].in_response(t) ? x.adv[b] : 0.0f;
        ASSERT_EQ(std::bit_cast<std::uint32_t>(shaped[b * x.N + t]), std::bit_cast<std::uint32_t>(want)) << b << " " << t;
      }
  }
}

// Checks that every response gamma is within tolerance of one of `allowed`.
void expect_values_in(const shaping_batch& x, const std::vector<float>& g, const std::vector<double>& allowed,
                      const char* what) {
  for (i64 b = 0; b < x.B; ++b)
    for (i64 t = x.segs[b].response_begin; t < x.segs[b].end; ++t) {
      const double v = g[b * x.N + t];
      EXPECT_TRUE(std::any_of(allowed.begin(), allowed.end(), [&](double a) { return std::abs(v - a) <= 1e-6; }))
          << what << ": " << v << " at b=" << b << " t=" << t;
    }
}

TYPED_TEST(Credit, GammaTakesOnlyTheValuesItsPolicyAllows) {
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

TYPED_TEST(Credit, SignModeLeavesTheOtherSignAtOne) {
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

TYPED_TEST(Credit, RandomIsSeededDeterministicAndDrawsExactlyCeilQN) {
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
  EXPECT_EQ(rhythm::detail::credit::top_q_count(0.07, 100), 7);
  // Uniformity: over 3000 seeds each of 10 positions is drawn about q = 0.3 of the time.
  const std::vector<rhythm::segment> one{{0, 0, 10}};
  const std::vector<std::uint8_t> flags(10, 0);
  const std::vector<float> adv{1.0f};
  std::vector<int> count(10, 0);
  for (std::uint64_t seed = 0; seed < 3000; ++seed) {
    std::vector<float> g(10);
    rhythm::shaping_factors(P, sh::random{.q = 0.3, .seed = seed}, make_view(flags, std::array<i64, 2>{1, 10}),
                            make_view(one), make_view(adv), make_view(g, std::array<i64, 2>{1, 10}));
    for (int i = 0; i < 10; ++i) count[i] += g[i] != 1.0f;
  }
  for (int i = 0; i < 10; ++i) EXPECT_NEAR(count[i], 900, 4 * 25.1) << "position " << i;  // sd sqrt(3000 .3 .7)
}

TYPED_TEST(Credit, EntropyTopQIsTieInclusiveAndBottomSelectsLowest) {
  const std::vector<rhythm::segment> segs{{0, 2, 12}};
  // response entropies: 0 1 2 3 3 3 4 5 6 7 (n = 10); q = 0.4: k = 4, 4th largest = 4 -> {4,5,6,7}
  const std::vector<float> ent{kNaN, kNaN, 0, 1, 2, 3, 3, 3, 4, 5, 6, 7};
  const std::vector<std::uint8_t> flags(12, 0);
  const std::vector<float> adv{-1.0f};
  auto run = [&](double q, bool bottom) {
    std::vector<float> g(12);
    rhythm::shaping_factors(make_policy<TypeParam>(), sh::entropy{.gamma_amp = 2.0, .q = q},
                            make_view(flags, std::array<i64, 2>{1, 12}), make_view(ent, std::array<i64, 2>{1, 12}),
                            make_view(segs), make_view(adv), make_view(g, std::array<i64, 2>{1, 12}),
                            {.bottom = bottom});
    return g;
  };
  EXPECT_EQ(run(0.4, false), (std::vector<float>{1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2}));
  // q = 0.5: k = 5, 5th largest = 3, ties inclusive: 7 tokens
  EXPECT_EQ(run(0.5, false), (std::vector<float>{1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2}));
  // bottom, q = 0.4: 4th smallest = 3, ties inclusive: {0,1,2,3,3,3}
  EXPECT_EQ(run(0.4, true), (std::vector<float>{1, 1, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1}));
}

TYPED_TEST(Credit, MeanPreservingGivesMeanOnePerResponse) {
  std::mt19937 rng(17);
  const shaping_batch x(rng, 8, 50);
  for_each_policy([&](const auto& policy, const rc::policy&) {
    for (bool bottom : {false, true}) {
      const auto g = x.gamma(make_policy<TypeParam>(), policy, {.bottom = bottom, .mean_preserving = true});
      for (i64 b = 0; b < x.B; ++b) {
        if (x.segs[b].response_length() == 0) continue;
        double sum = 0;
        for (i64 t = x.segs[b].response_begin; t < x.segs[b].end; ++t) sum += g[b * x.N + t];
        EXPECT_NEAR(sum / double(x.segs[b].response_length()), 1.0, 1e-6) << "b=" << b;
      }
    }
  });
}

TYPED_TEST(Credit, FloorIsRespected) {
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

// A user policy: reads everything the context offers and records it per sequence.
struct recorded {
  std::int64_t sequence = -1, response_begin = -1;
  float advantage = 0;
  std::vector<std::uint8_t> flags;
  std::vector<float> entropies;
  bool bottom = false;
};
struct recording_policy {
  std::vector<recorded>* log;  // one slot per sequence: no two threads write the same slot
  void shape(const rhythm::shaping_context& ctx, std::span<float> gamma) const {
    (*log)[ctx.sequence] = {ctx.sequence,
                            ctx.response_begin,
                            ctx.advantage,
                            {ctx.flags.begin(), ctx.flags.end()},
                            {ctx.entropies.begin(), ctx.entropies.end()},
                            ctx.bottom};
    for (std::size_t i = 0; i < gamma.size(); ++i) gamma[i] = i < 3 ? 2.0f : 1.0f;  // the first three tokens
  }
};
static_assert(rhythm::shaping_policy<recording_policy>);
struct no_shape {};
struct wrong_signature {
  void shape(std::span<float>) const {}
};
struct mutating {
  void shape(const rhythm::shaping_context&, std::span<float>) {}  // not const
};
static_assert(!rhythm::shaping_policy<no_shape> && !rhythm::shaping_policy<wrong_signature> &&
              !rhythm::shaping_policy<mutating> && !rhythm::shaping_policy<int>);

TYPED_TEST(Credit, UserPolicyWorks) {
  std::mt19937 rng(19);
  const shaping_batch x(rng, 6, 30);
  for (bool with_entropies : {false, true}) {
    std::vector<recorded> log(x.B);
    std::vector<float> g(x.B * x.N, kUntouched);
    const auto gv = make_view(g, std::array<i64, 2>{x.B, x.N});
    const rhythm::shaping_options o{.bottom = true, .mean_preserving = true};
    if (with_entropies)
      rhythm::shaping_factors(make_policy<TypeParam>(), recording_policy{&log}, x.flags_view(), x.entropy_view(),
                              make_view(x.segs), make_view(x.adv), gv, o);
    else
      rhythm::shaping_factors(make_policy<TypeParam>(), recording_policy{&log}, x.flags_view(), make_view(x.segs),
                              make_view(x.adv), gv, o);
    for (i64 b = 0; b < x.B; ++b) {
      const auto& s = x.segs[b];
      const i64 n = s.response_length();
      if (n == 0) {
        EXPECT_EQ(log[b].sequence, -1) << "not called for an empty response";
        continue;
      }
      EXPECT_EQ(log[b].sequence, b);
      EXPECT_EQ(log[b].response_begin, s.response_begin);
      EXPECT_EQ(log[b].advantage, x.adv[b]);
      EXPECT_TRUE(log[b].bottom);
      EXPECT_EQ(log[b].flags, std::vector<std::uint8_t>(x.flags.begin() + b * x.N + s.response_begin,
                                                        x.flags.begin() + b * x.N + s.end));
      if (with_entropies)
        EXPECT_EQ(log[b].entropies, std::vector<float>(x.entropy.begin() + b * x.N + s.response_begin,
                                                       x.entropy.begin() + b * x.N + s.end));
      else
        EXPECT_TRUE(log[b].entropies.empty());
      const double mean = (2.0 * double(std::min<i64>(3, n)) + double(std::max<i64>(0, n - 3))) / double(n);
      for (i64 i = 0; i < n; ++i)
        EXPECT_FLOAT_EQ(g[b * x.N + s.response_begin + i], float((i < 3 ? 2.0 : 1.0) / mean)) << b << " " << i;
    }
  }
}

TYPED_TEST(Credit, ShapedAdvantagesMatchReference) {
  std::mt19937 rng(20);
  const i64 B = 6, N = 35;
  std::vector<rhythm::segment> segs;
  for (i64 b = 0; b < B; ++b) segs.push_back(b == 2 ? rhythm::segment{0, 35, 35} : random_segment(rng, N));
  std::vector<float> gamma(B * N, kNaN), adv = random_floats(rng, B), out(B * N, kUntouched);
  std::uniform_real_distribution<float> u(0.5f, 3.0f);
  for (i64 b = 0; b < B; ++b)
    for (i64 t = segs[b].response_begin; t < segs[b].end; ++t) gamma[b * N + t] = u(rng);
  rhythm::shaped_advantages(make_policy<TypeParam>(), make_view(gamma, std::array<i64, 2>{B, N}), make_view(adv),
                            make_view(segs), make_view(out, std::array<i64, 2>{B, N}));
  for (i64 b = 0; b < B; ++b)
    for (i64 t = 0; t < N; ++t) {
      if (segs[b].in_response(t)) EXPECT_TRUE(close(out[b * N + t], double(gamma[b * N + t]) * adv[b], 1e-6));
      else EXPECT_EQ(out[b * N + t], 0.0f);
    }
}

// ---------------------------------------------------------------------------------------------
// PPO-clip objective

template <class T>
struct ppo_batch {
  i64 B, N;
  std::vector<rhythm::segment> segs;
  std::vector<T> lp_new, lp_old;
  std::vector<float> adv;
  ppo_batch(std::mt19937& rng, i64 b, i64 n, double drift)
      : B(b), N(n), lp_new(b * n, T(kNaN)), lp_old(b * n, T(kNaN)), adv(b * n, kNaN) {
    std::uniform_real_distribution<float> old(-5.0f, -0.05f);
    std::normal_distribution<float> step(0.0f, float(drift)), a(0.0f, 1.5f);
    std::bernoulli_distribution zero(0.1);
    for (i64 s = 0; s < B; ++s) {
      segs.push_back(s == 1 ? rhythm::segment{3, 9, 9} : random_segment(rng, N));
      for (i64 t = segs[s].response_begin; t < segs[s].end; ++t) {
        const float o = old(rng);
        lp_old[s * N + t] = T(o);
        lp_new[s * N + t] = T(o + step(rng));
        adv[s * N + t] = zero(rng) ? 0.0f : a(rng);
      }
    }
  }
  rc::ppo_out reference(double eps, double eps_high, bool token_mean) const {
    std::vector<std::vector<double>> n(B), o(B), a(B);
    for (i64 s = 0; s < B; ++s)
      for (i64 t = segs[s].response_begin; t < segs[s].end; ++t) {
        n[s].push_back(float(lp_new[s * N + t]));
        o[s].push_back(float(lp_old[s * N + t]));
        a[s].push_back(adv[s * N + t]);
      }
    return rc::ppo_clip(n, o, a, eps, eps_high, token_mean);
  }
  template <class P>
  rhythm::ppo_result run(P policy, const rhythm::ppo_params& p) const {
    return rhythm::ppo_clip_objective(policy, make_view(lp_new, std::array<i64, 2>{B, N}),
                                      make_view(lp_old, std::array<i64, 2>{B, N}),
                                      make_view(adv, std::array<i64, 2>{B, N}), make_view(segs), p);
  }
};

template <class T, class P>
void check_ppo(P policy, unsigned seed, double drift) {
  std::mt19937 rng(seed);
  const ppo_batch<T> x(rng, 9, 40, drift);
  for (auto [eps, eps_high] : {std::pair{0.2, 0.2}, std::pair{0.1, 0.28}, std::pair{0.0, 0.0}, std::pair{1.0, 5.0}})
    for (auto agg : {rhythm::ppo_aggregation::seq_mean_token_mean, rhythm::ppo_aggregation::token_mean}) {
      const auto got = x.run(policy, {.epsilon = eps, .epsilon_high = eps_high, .aggregation = agg});
      const auto want = x.reference(eps, eps_high, agg == rhythm::ppo_aggregation::token_mean);
      EXPECT_TRUE(close(got.loss, want.loss, 1e-12)) << eps << " " << eps_high << " " << int(agg);
      EXPECT_DOUBLE_EQ(got.clip_fraction, want.clip_fraction) << eps << " " << eps_high;
      EXPECT_TRUE(close(got.mean_ratio, want.mean_ratio, 1e-12));
      EXPECT_EQ(got.tokens, want.tokens);
      if (eps == 0.2) {
        EXPECT_GT(got.clip_fraction, 0.0) << "the drift clips some tokens";
      }
    }
}

TYPED_TEST(Credit, PpoObjectiveMatchesReference) {
  check_ppo<float>(make_policy<TypeParam>(), 21, 0.3);
  check_ppo<float>(make_policy<TypeParam>(), 22, 2.0);  // far off-policy: many clipped tokens
  check_ppo<rhythm::bfloat16>(make_policy<TypeParam>(), 23, 0.3);
}

TYPED_TEST(Credit, PpoAggregationsDifferOnlyByWeighting) {
  // One sequence of 1 token and one of 3: seq-mean-token-mean weighs them equally.
  const std::vector<rhythm::segment> segs{{0, 3, 4}, {0, 1, 4}};
  const std::vector<float> zero(8, 0.0f), adv{kNaN, kNaN, kNaN, 4.0f, kNaN, 1.0f, 1.0f, 1.0f};
  auto run = [&](rhythm::ppo_aggregation a) {
    return rhythm::ppo_clip_objective(make_policy<TypeParam>(), make_view(zero, std::array<i64, 2>{2, 4}),
                                      make_view(zero, std::array<i64, 2>{2, 4}), make_view(adv, std::array<i64, 2>{2, 4}),
                                      make_view(segs), {.aggregation = a});
  };
  const auto s = run(rhythm::ppo_aggregation::seq_mean_token_mean), t = run(rhythm::ppo_aggregation::token_mean);
  EXPECT_DOUBLE_EQ(s.loss, -(4.0 + 1.0) / 2);
  EXPECT_DOUBLE_EQ(t.loss, -(4.0 + 3.0) / 4);
  EXPECT_EQ(s.tokens, 4);
  EXPECT_DOUBLE_EQ(s.mean_ratio, 1.0);
  EXPECT_DOUBLE_EQ(s.clip_fraction, 0.0);
}

TYPED_TEST(Credit, PpoOfABatchWithoutResponsesIsZero) {
  const std::vector<rhythm::segment> segs{{0, 4, 4}, {1, 3, 3}};
  const std::vector<float> v(8, kNaN);
  const auto r = rhythm::ppo_clip_objective(make_policy<TypeParam>(), make_view(v, std::array<i64, 2>{2, 4}),
                                            make_view(v, std::array<i64, 2>{2, 4}),
                                            make_view(v, std::array<i64, 2>{2, 4}), make_view(segs));
  EXPECT_EQ(r.tokens, 0);
  EXPECT_EQ(r.loss, 0.0);
  EXPECT_EQ(r.clip_fraction, 0.0);
  EXPECT_EQ(r.mean_ratio, 0.0);
}

// ---------------------------------------------------------------------------------------------
// Errors: the code, a message naming argument, expectation and what was given; outputs untouched.


// A valid small shaping problem; each test breaks one thing.
struct shaping_problem {
  static constexpr i64 B = 3, N = 10;
  std::vector<rhythm::segment> segs{{0, 4, 10}, {2, 5, 9}, {0, 0, 6}};
  std::vector<std::uint8_t> flags = std::vector<std::uint8_t>(B * N, 3);
  std::vector<float> entropy = std::vector<float>(B * N, 1.0f), adv{1.0f, -1.0f, 0.5f},
                     gamma = std::vector<float>(B * N, kUntouched);
  template <class S>
  void run(const S& shaping, const rhythm::shaping_options& o = {}) {
    rhythm::shaping_factors(rhythm::exec::par{2}, shaping, make_view(flags, std::array<i64, 2>{B, N}),
                            make_view(entropy, std::array<i64, 2>{B, N}), make_view(segs), make_view(adv),
                            make_view(gamma, std::array<i64, 2>{B, N}), o);
  }
  bool untouched() const {
    return std::all_of(gamma.begin(), gamma.end(), [](float g) { return g == kUntouched; });
  }
};

TEST(CreditErrors, ValidProblemPasses) {
  shaping_problem p;
  p.run(sh::coupled_rhythm{});
  EXPECT_FALSE(p.untouched());
}

TEST(CreditErrors, QOutsideZeroOne) {
  for (double q : {0.0, -0.1, 1.5, double(kNaN)}) {
    shaping_problem p;
    expect_error([&] { p.run(sh::entropy{.q = q}); }, rhythm::errc::bad_parameter, {"'params.q'", "(0, 1]"});
    expect_error([&] { p.run(sh::random{.q = q}); }, rhythm::errc::bad_parameter, {"'params.q'"});
    EXPECT_TRUE(p.untouched());
  }
}

TEST(CreditErrors, AlphaOutsideZeroOne) {
  for (double alpha : {-0.1, 1.1, double(kNaN)}) {
    shaping_problem p;
    expect_error([&] { p.run(sh::coupled_rhythm{.alpha = alpha}); }, rhythm::errc::bad_parameter,
                 {"'params.alpha'", "[0, 1]"});
    EXPECT_TRUE(p.untouched());
  }
}

TEST(CreditErrors, GammaAmpBelowOne) {
  shaping_problem p;
  expect_error([&] { p.run(sh::local_chunk{.gamma_amp = 0.9}); }, rhythm::errc::bad_parameter,
               {"'params.gamma_amp'", ">= 1", "got 0.9"});
  expect_error([&] { p.run(sh::global_anchor{.gamma_amp = INFINITY}); }, rhythm::errc::bad_parameter,
               {"'params.gamma_amp'"});
  expect_error([&] { p.run(sh::coupled_rhythm{.gamma_amp = 0.0}); }, rhythm::errc::bad_parameter, {"'params.gamma_amp'"});
  EXPECT_TRUE(p.untouched());
}

TEST(CreditErrors, BadOptions) {
  shaping_problem p;
  expect_error([&] { p.run(sh::uniform{}, {.floor = -0.5}); }, rhythm::errc::bad_parameter,
               {"'options.floor'", "finite value >= 0", "got -0.5"});
  expect_error([&] { p.run(sh::uniform{}, {.floor = INFINITY}); }, rhythm::errc::bad_parameter, {"'options.floor'"});
  expect_error([&] { p.run(sh::uniform{}, {.sign = static_cast<rhythm::sign_mode>(7)}); }, rhythm::errc::bad_parameter,
               {"'options.sign'", "got 7"});
  EXPECT_TRUE(p.untouched());
}

TEST(CreditErrors, AdvantagesLengthMismatch) {
  shaping_problem p;
  p.adv.pop_back();
  expect_error([&] { p.run(sh::uniform{}); }, rhythm::errc::shape_mismatch, {"'advantages'", "[B] = [3]", "[2]"});
  EXPECT_TRUE(p.untouched());
}

TEST(CreditErrors, GammaShapeMismatch) {
  shaping_problem p;
  expect_error(
      [&] {
        rhythm::shaping_factors(rhythm::exec::seq{}, sh::uniform{}, make_view(p.flags, std::array<i64, 2>{3, 10}),
                                make_view(p.segs), make_view(p.adv), make_view(p.gamma, std::array<i64, 2>{3, 9}));
      },
      rhythm::errc::shape_mismatch, {"'gamma'", "[B, N] = [3, 10]", "[3, 9]"});
  EXPECT_TRUE(p.untouched());
}

TEST(CreditErrors, EntropiesShapeMismatch) {
  shaping_problem p;
  expect_error(
      [&] {
        rhythm::shaping_factors(rhythm::exec::seq{}, sh::entropy{}, make_view(p.flags, std::array<i64, 2>{3, 10}),
                                make_view(p.entropy, std::array<i64, 2>{2, 10}), make_view(p.segs), make_view(p.adv),
                                make_view(p.gamma, std::array<i64, 2>{3, 10}));
      },
      rhythm::errc::shape_mismatch, {"'entropies'", "[2, 10]"});
  EXPECT_TRUE(p.untouched());
}

TEST(CreditErrors, EntropyPolicyWithoutEntropies) {
  shaping_problem p;
  expect_error(
      [&] {
        rhythm::shaping_factors(rhythm::exec::seq{}, sh::entropy{}, make_view(p.flags, std::array<i64, 2>{3, 10}),
                                make_view(p.segs), make_view(p.adv), make_view(p.gamma, std::array<i64, 2>{3, 10}));
      },
      rhythm::errc::shape_mismatch, {"'entropies'", "none"});
  EXPECT_TRUE(p.untouched());
}

TEST(CreditErrors, NonFiniteAdvantageOrEntropy) {
  shaping_problem p;
  p.adv[2] = kNaN;
  expect_error([&] { p.run(sh::uniform{}); }, rhythm::errc::non_finite, {"'advantages'", "sequence 2"});
  p.adv[2] = 0.5f;
  p.entropy[1 * 10 + 6] = INFINITY;
  expect_error([&] { p.run(sh::uniform{}); }, rhythm::errc::non_finite, {"'entropies'", "sequence 1, position 6"});
  EXPECT_TRUE(p.untouched());
  p.entropy[1 * 10 + 6] = 1.0f;
  p.entropy[1 * 10 + 9] = kNaN;  // past the end of sequence 1: not read
  EXPECT_NO_THROW(p.run(sh::entropy{}));
}

TEST(CreditErrors, BadSegment) {
  shaping_problem p;
  p.segs[1] = {2, 5, 11};
  expect_error([&] { p.run(sh::uniform{}); }, rhythm::errc::bad_segment, {"'segments[1]'", "{2, 5, 11}"});
  EXPECT_TRUE(p.untouched());
}

TEST(CreditErrors, GammaOverlapsAnInput) {
  shaping_problem p;
  expect_error(
      [&] {
        rhythm::shaping_factors(rhythm::exec::seq{}, sh::entropy{}, make_view(p.flags, std::array<i64, 2>{3, 10}),
                                make_view(p.entropy, std::array<i64, 2>{3, 10}), make_view(p.segs), make_view(p.adv),
                                make_view(p.entropy, std::array<i64, 2>{3, 10}));
      },
      rhythm::errc::aliasing, {"'gamma'", "overlapping"});
}

struct writes {
  float value;
  void shape(const rhythm::shaping_context&, std::span<float> gamma) const {
    for (float& g : gamma) g = value;
  }
};
struct validated {
  void validate() const { rhythm::detail::fail(rhythm::errc::bad_parameter, "params.depth", "> 0", "0"); }
  void shape(const rhythm::shaping_context&, std::span<float>) const {}
};

TEST(CreditErrors, UserPolicyMisbehaves) {
  shaping_problem p;
  expect_error([&] { p.run(writes{kNaN}); }, rhythm::errc::non_finite,
               {"'policy'", "finite gamma >= 0", "sequence 0, position 4"});
  expect_error([&] { p.run(writes{-1.0f}); }, rhythm::errc::bad_parameter, {"'policy'", "-1"});
  expect_error([&] { p.run(writes{0.0f}, {.mean_preserving = true}); }, rhythm::errc::bad_parameter,
               {"'policy'", "positive mean", "sequence 0"});
  expect_error([&] { p.run(validated{}); }, rhythm::errc::bad_parameter, {"'params.depth'"});
  EXPECT_TRUE(p.untouched());
  p.run(writes{0.0f});  // gamma 0 is allowed without mean-preserving
  EXPECT_EQ(p.gamma[5], 0.0f);
}

TEST(CreditErrors, RewardsAndGroupIdsMismatch) {
  std::vector<float> r{1, 2, 3, 4, 5}, out(5, kUntouched);
  std::vector<i64> ids{1, 1, 2, 2};
  expect_error([&] { rhythm::grpo_advantages(rhythm::exec::seq{}, make_view(r), make_view(ids), make_view(out)); },
               rhythm::errc::shape_mismatch, {"'group_ids'", "[S] = [5]", "[4]"});
  ids.push_back(3);
  std::vector<float> small(4, kUntouched);
  expect_error([&] { rhythm::grpo_advantages(rhythm::exec::seq{}, make_view(r), make_view(ids), make_view(small)); },
               rhythm::errc::shape_mismatch, {"'advantages'", "[4]"});
  EXPECT_EQ(out, std::vector<float>(5, kUntouched));
  EXPECT_EQ(small, std::vector<float>(4, kUntouched));
}

TEST(CreditErrors, NonFiniteReward) {
  std::vector<float> r{1, 2, 3, kNaN, 5}, out(5, kUntouched);
  std::vector<i64> ids{1, 1, 2, 2, 2};
  expect_error([&] { rhythm::grpo_advantages(rhythm::exec::par{2}, make_view(r), make_view(ids), make_view(out)); },
               rhythm::errc::non_finite, {"'rewards'", "finite", "index 3"});
  r[3] = -INFINITY;
  expect_error([&] { rhythm::grpo_advantages(rhythm::exec::seq{}, make_view(r), make_view(ids), make_view(out)); },
               rhythm::errc::non_finite, {"'rewards'", "index 3"});
  EXPECT_EQ(out, std::vector<float>(5, kUntouched));
}

TEST(CreditErrors, AdvantageEpsilonAndAliasing) {
  std::vector<float> r{1, 2, 3}, out(3, kUntouched);
  std::vector<i64> ids{1, 1, 1};
  expect_error(
      [&] { rhythm::grpo_advantages(rhythm::exec::seq{}, make_view(r), make_view(ids), make_view(out), {.epsilon = 0}); },
      rhythm::errc::bad_parameter, {"'params.epsilon'", "> 0"});
  expect_error([&] { rhythm::grpo_advantages(rhythm::exec::seq{}, make_view(r), make_view(ids), make_view(r)); },
               rhythm::errc::aliasing, {"'advantages'"});
  EXPECT_EQ(out, std::vector<float>(3, kUntouched));
  EXPECT_EQ(r, (std::vector<float>{1, 2, 3}));
}

TEST(CreditErrors, ShapedAdvantages) {
  shaping_problem p;
  std::vector<float> g(30, 1.0f), out(30, kUntouched);
  auto run = [&](const std::vector<float>& gamma, std::vector<float>& o, i64 n_out = 10) {
    rhythm::shaped_advantages(rhythm::exec::par{2}, make_view(gamma, std::array<i64, 2>{3, 10}), make_view(p.adv),
                              make_view(p.segs), make_view(o, std::array<i64, 2>{3, n_out}));
  };
  g[2 * 10 + 3] = kNaN;
  expect_error([&] { run(g, out); }, rhythm::errc::non_finite, {"'gamma'", "sequence 2, position 3"});
  g[2 * 10 + 3] = 1.0f;
  g[2 * 10 + 8] = kNaN;  // past the end of sequence 2: not read
  expect_error([&] { run(g, out, 9); }, rhythm::errc::shape_mismatch, {"'out'", "[3, 9]"});
  expect_error([&] { run(g, g); }, rhythm::errc::aliasing, {"'out'"});
  p.adv[0] = INFINITY;
  expect_error([&] { run(g, out); }, rhythm::errc::non_finite, {"'advantages'", "sequence 0"});
  EXPECT_EQ(out, std::vector<float>(30, kUntouched));
  p.adv[0] = 1.0f;
  EXPECT_NO_THROW(run(g, out));
}

TEST(CreditErrors, PpoObjective) {
  std::mt19937 rng(30);
  ppo_batch<float> x(rng, 3, 12, 0.3);
  expect_error([&] { x.run(rhythm::exec::seq{}, {.epsilon = 1.5}); }, rhythm::errc::bad_parameter,
               {"'params.epsilon'", "[0, 1]", "got 1.5"});
  expect_error([&] { x.run(rhythm::exec::seq{}, {.epsilon_high = -0.1}); }, rhythm::errc::bad_parameter,
               {"'params.epsilon_high'"});
  expect_error([&] { x.run(rhythm::exec::seq{}, {.aggregation = static_cast<rhythm::ppo_aggregation>(5)}); },
               rhythm::errc::bad_parameter, {"'params.aggregation'"});
  const i64 t = x.segs[2].response_begin;
  x.lp_new[2 * 12 + t] = kNaN;
  expect_error([&] { x.run(rhythm::exec::par{2}, {}); }, rhythm::errc::non_finite,
               {"'logp_new'", ("sequence 2, position " + std::to_string(t)).c_str()});
  x.lp_new[2 * 12 + t] = -1.0f;
  x.adv[2 * 12 + t] = INFINITY;
  expect_error([&] { x.run(rhythm::exec::seq{}, {}); }, rhythm::errc::non_finite, {"'shaped_adv'"});
  expect_error(
      [&] {
        rhythm::ppo_clip_objective(rhythm::exec::seq{}, make_view(x.lp_new, std::array<i64, 2>{3, 12}),
                                   make_view(x.lp_old, std::array<i64, 2>{3, 11}),
                                   make_view(x.adv, std::array<i64, 2>{3, 12}), make_view(x.segs));
      },
      rhythm::errc::shape_mismatch, {"'logp_old'", "[B, N] = [3, 12]", "[3, 11]"});
}

}  // namespace
