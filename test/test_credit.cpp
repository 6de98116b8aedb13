// Credit stage on the host backends: the typed suite of suites/credit.hpp, user shaping policies
// (host only), the PPO-clip reference objective (host only), and one test per rejected input with
// outputs left untouched.
#include "suites/credit.hpp"

namespace credit_suite {
INSTANTIATE_TYPED_TEST_SUITE_P(Host, Credit, rt::host_policies);

template <class P>
class CreditHost : public ::testing::Test {};
TYPED_TEST_SUITE(CreditHost, rt::host_policies);

// A user policy: reads everything the context offers and records it per sequence.
struct recorded {
  std::int64_t sequence = -1, response_begin = -1;
  float advantage = 0;
  std::vector<rhythm::token_flag> flags;
  std::vector<float> entropies;
};
struct recording_policy {
  std::vector<recorded>* log;  // one slot per sequence: no two threads write the same slot
  void shape(const rhythm::shaping_context& ctx, std::span<float> gamma) const {
    (*log)[ctx.sequence] = {ctx.sequence,
                            ctx.response_begin,
                            ctx.advantage,
                            {ctx.flags.begin(), ctx.flags.end()},
                            {ctx.entropies.begin(), ctx.entropies.end()}};
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

TYPED_TEST(CreditHost, UserPolicyWorks) {
  std::mt19937 rng(19);
  const shaping_batch x(rng, 6, 30);
  for (bool with_entropies : {false, true}) {
    std::vector<recorded> log(x.B);
    std::vector<float> g(x.B * x.N, kUntouched);
    const auto gv = make_view(g, std::array<i64, 2>{x.B, x.N});
    const rhythm::shaping_options o{.mean_preserving = true};
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
      for (i64 i = 0; i < n; ++i) EXPECT_EQ(rhythm::bits(log[b].flags[i]), x.flags[b * x.N + s.response_begin + i]);
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
    return rhythm::ppo_clip_objective(policy, make_view(lp_new, B, N), make_view(lp_old, B, N), make_view(adv, B, N),
                                      make_view(segs), p);
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

TYPED_TEST(CreditHost, PpoObjectiveMatchesReference) {
  check_ppo<float>(make_policy<TypeParam>(), 21, 0.3);
  check_ppo<float>(make_policy<TypeParam>(), 22, 2.0);  // far off-policy: many clipped tokens
  check_ppo<rhythm::bfloat16>(make_policy<TypeParam>(), 23, 0.3);
}

TYPED_TEST(CreditHost, PpoAggregationsDifferOnlyByWeighting) {
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

TYPED_TEST(CreditHost, PpoOfABatchWithoutResponsesIsZero) {
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
    expect_error([&] { p.run(sh::entropy{.selection = {.q = q}}); }, rhythm::errc::bad_parameter,
                 {"'params.selection.q'", "(0, 1]"});
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

}  // namespace credit_suite
