// Token stage on the host backends: the typed suite of suites/tokens.hpp, the rhythm statistics
// (host-only) and every error of the token primitives.
#include "suites/tokens.hpp"

namespace tokens_suite {
INSTANTIATE_TYPED_TEST_SUITE_P(Host, Tokens, rt::host_policies);

template <class P>
class TokenStats : public ::testing::Test {};
TYPED_TEST_SUITE(TokenStats, rt::host_policies);

// ---------------------------------------------------------------------------------------- rhythm stats

template <class P>
rhythm::rhythm_stats run_stats(P policy, const batch& x, const rhythm::rhythm_stats_params& p, bool entropy = true) {
  if (entropy)
    return rhythm::rhythm_statistics(policy, x.view(x.waad), x.view(x.fai), x.view(x.entropy), rhythm::make_view(x.segs), p);
  return rhythm::rhythm_statistics(policy, x.view(x.waad), x.view(x.fai), rhythm::make_view(x.segs), p);
}

TYPED_TEST(TokenStats, EveryFaiPeakFollowsAWaadPeak) {
  // WAAD peaks at the jumps 9, 19, 29; FAI stripes at 11, 22, 30 follow them within 3 tokens.
  const batch x = sawtooth({11, 22, 30});
  const rhythm::rhythm_stats_params p{.selection = kSaw.selection, .horizon = kSaw.horizon, .seed = 7};
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
  EXPECT_EQ(run_stats(make_policy<TypeParam>(), late, {.selection = kSaw.selection, .horizon = kSaw.horizon, .follow_window = 4}).fai_peaks_following, 6);
  // Without entropies the entropy fields are NaN.
  EXPECT_TRUE(std::isnan(run_stats(make_policy<TypeParam>(), x, p, false).entropy_mean));
}

TYPED_TEST(TokenStats, MatchReference) {
  std::mt19937 rng(51);
  const auto P = make_policy<TypeParam>();
  for (const ref::token_options o : {ref::token_options{0.4, false, 3, false, 10, 100},
                                     ref::token_options{0.2, false, 3, false, 2, -1},
                                     ref::token_options{0.3, true, 3, false, 5, 30}})
    for (i64 k_follow : {0, 3, 12}) {
      const batch x = random_batch(rng, 6, 150, 4096, o, true);
      const auto t = to_params(o);
      const rhythm::rhythm_stats_params p{
          .selection = t.selection, .horizon = t.horizon, .follow_window = k_follow, .shuffles = 3000, .seed = 3};
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

TYPED_TEST(TokenStats, AreDeterministicForASeed) {
  std::mt19937 rng(52);
  const ref::token_options o{0.4, false, 3, false, 10, 100};
  const batch x = random_batch(rng, 7, 120, 4096, o, true);
  const auto t = to_params(o);
  const rhythm::rhythm_stats_params p{.selection = t.selection, .horizon = t.horizon, .seed = 42};
  const auto a = run_stats(make_policy<TypeParam>(), x, p);
  const auto b = run_stats(make_policy<TypeParam>(), x, p);
  const auto seq = run_stats(rhythm::exec::seq{}, x, p);
  const auto wide = run_stats(rhythm::exec::par{7}, x, p);
  for (const auto* s : {&b, &seq, &wide}) {
    EXPECT_EQ(a.baseline, s->baseline);
    EXPECT_EQ(a.fai_peaks_following, s->fai_peaks_following);
    EXPECT_EQ(a.entropy_at_waad_peaks, s->entropy_at_waad_peaks);
  }
  EXPECT_NE(run_stats(make_policy<TypeParam>(), x, {.selection = t.selection, .horizon = t.horizon, .seed = 43}).baseline,
            a.baseline);
}

TYPED_TEST(TokenStats, OfEmptyResponsesAreNaN) {
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
  rhythm::token_params params{.horizon = {.lo = 2, .hi = 10}};
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
                  params.selection);
  }
  void jumps() { rhythm::waad_jumps(rhythm::exec::seq{}, x.view(x.waad), segs(), v2(delta)); }
  void peak(rhythm::peak_params p = {}) { rhythm::local_peaks(rhythm::exec::seq{}, x.view(x.waad), v2(eligible), segs(), v2(peaks), p); }
  rhythm::rhythm_stats stats(rhythm::rhythm_stats_params p = {}) {
    p.selection = params.selection, p.horizon = params.horizon;
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
    p.params.selection.q = q;
    expect_error([&] { p.sets(); }, rhythm::errc::bad_parameter, {"'params.selection.q'", "a value in (0, 1]"});
    expect_error([&] { p.top(); }, rhythm::errc::bad_parameter, {"'params.q'", "(0, 1]"});
    expect_error([&] { (void)p.stats(); }, rhythm::errc::bad_parameter, {"'params.selection.q'"});
    EXPECT_TRUE(p.untouched());
  }
  problem p;
  p.params.selection.q = 0.0;
  expect_error([&] { p.sets(); }, rhythm::errc::bad_parameter, {"got 0.000000"});
  p.params.selection.q = 1.5;
  expect_error([&] { p.top(); }, rhythm::errc::bad_parameter, {"got 1.500000"});
}

TEST(TokenErrors, BadTokenParams) {
  problem p;
  p.params.dominance.window = 0;
  expect_error([&] { p.sets(); }, rhythm::errc::bad_parameter, {"'params.dominance.window'", ">= 1", "got 0"});
  p.params.dominance.window = 3;
  p.params.dominance.threshold = static_cast<rhythm::dominance_threshold_mode>(7);
  expect_error([&] { p.sets(); }, rhythm::errc::bad_parameter, {"'params.dominance.threshold'", "got 7"});
  p.params.dominance.threshold = rhythm::dominance_threshold_mode::median_delta;
  p.params.horizon.lo = -1;
  expect_error([&] { p.sets(); }, rhythm::errc::bad_parameter, {"'params.horizon.lo'", "got -1"});
  p.params.horizon.lo = 12;
  expect_error([&] { p.sets(); }, rhythm::errc::bad_parameter,
               {"'params.horizon.hi'", ">= params.horizon.lo = 12", "got 10"});
  expect_error([&] { (void)p.stats(); }, rhythm::errc::bad_parameter,
               {"'params.horizon.hi'", ">= params.horizon.lo = 12"});
  p.params.horizon.lo = 2;
  expect_error([&] { (void)p.stats({.follow_window = -1}); }, rhythm::errc::bad_parameter, {"'params.follow_window'", "got -1"});
  expect_error([&] { (void)p.stats({.shuffles = 0}); }, rhythm::errc::bad_parameter, {"'params.shuffles'", ">= 1", "got 0"});
  expect_error([&] { p.peak({.select_bits = rhythm::token_flag::none}); }, rhythm::errc::bad_parameter, {"'params.select_bits'"});
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

// Segment and value errors of token_sets, top_q and waad_jumps are the typed suite
// suites/value_errors.hpp (test_errors.cpp); rhythm_statistics runs on the host only.
TEST(TokenErrors, StatisticsCheckSegmentsAndValues) {
  problem p;
  p.x.segs[1] = {5, 4, 20};
  expect_error([&] { (void)p.stats(); }, rhythm::errc::bad_segment, {"'segments[1]'", "{5, 4, 20}"});
  expect_error([&] { p.peak(); }, rhythm::errc::bad_segment, {"'segments[1]'"});
  p.x.segs.pop_back();
  expect_error([&] { p.sets(); }, rhythm::errc::shape_mismatch, {"'segments'", "1 segments for a batch of 2"});
  problem q;
  q.x.waad[1 * 24 + 12] = kNaN;  // sequence 1, response position 12
  expect_error([&] { q.peak(); }, rhythm::errc::non_finite, {"'values'", "sequence 1, position 12"});
  problem r;
  r.x.fai[0 * 24 + 22] = kNaN;  // not FAI-eligible (H_lo = 2), but a peak's neighbour
  expect_error([&] { (void)r.stats(); }, rhythm::errc::non_finite, {"'fai'", "sequence 0, position 22"});
  problem e;
  e.x.entropy[1 * 24 + 19] = -INFINITY;
  expect_error([&] { (void)e.stats(); }, rhythm::errc::non_finite, {"'entropy'", "sequence 1, position 19"});
  for (const problem* x : {&p, &q, &r, &e}) EXPECT_TRUE(x->untouched());
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

}  // namespace tokens_suite
