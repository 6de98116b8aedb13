#pragma once
// Value errors, the checks a backend makes on the elements it reads (segment ranges, NaN/Inf, an
// empty head group): the error code, a message naming the argument, the expectation and the first
// offending place in item order, and every output left untouched. A typed suite over the execution
// policy through rt::array (backend_memory.hpp): a device backend records the error in its status
// and rt::finish turns it into the same rhythm::error.
#include <rhythm/credit/advantages.hpp>
#include <rhythm/credit/policies.hpp>
#include <rhythm/credit/shaping.hpp>
#include <rhythm/heads/head_groups.hpp>
#include <rhythm/signals/group_signals.hpp>
#include <rhythm/signals/head_signals.hpp>
#include <rhythm/tokens/token_sets.hpp>
#include <rhythm/tokens/top_q.hpp>

#include "../test_util.hpp"

namespace value_errors_suite {
using namespace rt;
using rhythm::head_role;
using rhythm::token_flag;
constexpr float kFill = -7.0f;
inline const float kNaN = std::numeric_limits<float>::quiet_NaN();

template <class P>
class ValueErrors : public rt::backend_test<P> {};
TYPED_TEST_SUITE_P(ValueErrors);

template <class T>
bool all_equal(const std::vector<T>& v, T x) {
  return std::all_of(v.begin(), v.end(), [&](T y) { return y == x; });
}

// Runs `f` (a primitive then rt::finish) and expects the error as expect_error does.
template <class P, class F>
void expect_value_error(P policy, F&& f, rhythm::errc code, std::initializer_list<const char*> fragments) {
  expect_error([&] { f(), finish(policy); }, code, fragments);
}

// A valid head-signal problem: B = 2 sequences, H = 4 query heads over Hkv = 2 key heads, N = 24.
struct signal_problem {
  static constexpr i64 B = 2, H = 4, Hkv = 2, N = 24, d = 8;
  std::vector<rhythm::segment> segs{{0, 6, 24}, {3, 10, 20}};
  std::vector<float> maps, q, k;
  signal_problem() {
    std::mt19937 rng(1);
    maps = random_maps(rng, B, H, N, segs).data;
    q = random_floats(rng, B * H * N * d);
    k = random_floats(rng, B * Hkv * N * d);
  }
  enum path { from_maps, from_qk };
  template <class P>
  head_outputs<P> run(P policy, path path, const rhythm::signal_params& p = {}) const {
    head_outputs<P> o(B, H, N, kFill);
    launch(policy, path, o, p);
    return o;
  }
  template <class P>
  void launch(P policy, path path, head_outputs<P>& o, const rhythm::signal_params& p = {}) const {
    if (path == from_maps)
      rhythm::head_signals_from_maps(policy, in<P>(maps, B, H, N, N), in<P>(segs), o.span, o.waad, o.fai, p);
    else
      rhythm::head_signals_from_qk(policy, in<P>(q, B, H, N, d), in<P>(k, B, Hkv, N, d), in<P>(segs), o.span, o.waad,
                                   o.fai, p);
    finish(policy);
  }
  // Expects the error from the path, and every output untouched.
  template <class P>
  void expect(P policy, path path, rhythm::errc code, std::initializer_list<const char*> fragments) const {
    head_outputs<P> o(B, H, N, kFill);
    expect_error([&] { launch(policy, path, o); }, code, fragments);
    const auto h = o.host();
    EXPECT_TRUE(all_equal(h.span, kFill) && all_equal(h.waad, kFill) && all_equal(h.fai, kFill))
        << "an output was written";
  }
};

constexpr auto kMaps = signal_problem::from_maps;
constexpr auto kQK = signal_problem::from_qk;

TYPED_TEST_P(ValueErrors, ValidSignalProblemsWriteEveryOutput) {
  const auto P = make_policy<TypeParam>();
  const signal_problem p;
  for (const auto& o : {p.run(P, kMaps).host(), p.run(P, kQK).host()}) {
    EXPECT_FALSE(std::any_of(o.span.begin(), o.span.end(), [](float x) { return x == kFill; }));
    EXPECT_FALSE(std::any_of(o.waad.begin(), o.waad.end(), [](float x) { return x == kFill; }));
  }
}

TYPED_TEST_P(ValueErrors, NonFiniteMapsNameTheFirstRow) {
  const auto P = make_policy<TypeParam>();
  signal_problem p;
  p.maps[((1 * 4 + 2) * 24 + 15) * 24 + 7] = kNaN;  // sequence 1, head 2, row 15
  p.expect(P, kMaps, rhythm::errc::non_finite, {"'maps'", "finite", "sequence 1, head 2, row 15"});
  p.maps[((0 * 4 + 0) * 24 + 6) * 24 + 0] = INFINITY;  // earlier in item order
  p.expect(P, kMaps, rhythm::errc::non_finite, {"'maps'", "sequence 0, head 0, row 6"});
  EXPECT_NO_THROW((void)p.run(P, kMaps, {.check_finite = false}));
}

TYPED_TEST_P(ValueErrors, NonFiniteQOrKNameTheHead) {
  const auto P = make_policy<TypeParam>();
  signal_problem p;
  p.q[((1 * 4 + 3) * 24 + 12) * 8 + 2] = kNaN;
  p.expect(P, kQK, rhythm::errc::non_finite, {"'q'", "finite", "sequence 1, head 3"});
  signal_problem r;
  r.k[((0 * 2 + 1) * 24 + 3) * 8 + 0] = -INFINITY;  // kv head 1 is read by query heads 2 and 3
  r.expect(P, kQK, rhythm::errc::non_finite, {"'k'", "finite", "sequence 0, head 2"});
}

TYPED_TEST_P(ValueErrors, NonFinitePaddingIsNotRead) {
  const auto P = make_policy<TypeParam>();
  signal_problem p;
  p.q[((1 * 4 + 0) * 24 + 22) * 8] = kNaN;  // sequence 1 ends at 20
  p.k[((1 * 2 + 0) * 24 + 1) * 8] = INFINITY;   // and begins at 3
  EXPECT_NO_THROW((void)p.run(P, kQK));
}

TYPED_TEST_P(ValueErrors, BadSegmentsInSignals) {
  const auto P = make_policy<TypeParam>();
  signal_problem p;
  p.segs[1] = {5, 4, 20};
  p.expect(P, kMaps, rhythm::errc::bad_segment,
           {"'segments[1]'", "begin <= response_begin <= end <= N = 24", "{5, 4, 20}"});
  p.segs[1] = {3, 10, 20};
  p.segs[0] = {0, 6, 25};
  p.expect(P, kQK, rhythm::errc::bad_segment, {"'segments[0]'", "{0, 6, 25}"});
}

// The order a device backend must reproduce: segments first, then the values; the Q/K path checks
// q then k per (sequence, head), the first such item with a bad row wins.
TYPED_TEST_P(ValueErrors, ChecksRunInAFixedOrder) {
  const auto P = make_policy<TypeParam>();
  signal_problem p;
  p.q[((0 * 4 + 0) * 24 + 8) * 8] = kNaN;  // sequence 0
  p.segs[1] = {5, 4, 20};
  p.expect(P, kQK, rhythm::errc::bad_segment, {"'segments[1]'"});
  p.segs[1] = {3, 10, 20};
  p.q[((0 * 4 + 0) * 24 + 8) * 8] = 1.0f;
  p.q[((1 * 4 + 1) * 24 + 12) * 8] = kNaN;  // q in sequence 1 comes after
  p.k[((0 * 2 + 0) * 24 + 2) * 8] = kNaN;   // k in sequence 0 (heads 0 and 1)
  p.expect(P, kQK, rhythm::errc::non_finite, {"'k'", "sequence 0, head 0, row 2"});
  p.q[((0 * 4 + 0) * 24 + 20) * 8] = kNaN;  // within one item q comes first
  p.expect(P, kQK, rhythm::errc::non_finite, {"'q'", "sequence 0, head 0, row 20"});
}

TYPED_TEST_P(ValueErrors, NaNSpanInHeadGroups) {
  const auto P = make_policy<TypeParam>();
  auto roles = out<TypeParam>(head_role::local, i64(1), i64(3));
  expect_value_error(
      P, [&] { rhythm::head_groups(P, in<TypeParam>(std::vector<float>{1.0f, kNaN, 2.0f}, 1, 3), roles); },
      rhythm::errc::non_finite, {"'spans'", "head 1"});
  EXPECT_TRUE(all_equal(roles.host(), head_role::local));
}

TYPED_TEST_P(ValueErrors, EmptyGroupInGroupMean) {
  const auto P = make_policy<TypeParam>();
  auto mean = out<TypeParam>(kFill, 2, 5);
  const std::vector<head_role> roles{head_role::local, head_role::global, head_role::local, head_role::local};
  expect_value_error(
      P,
      [&] {
        rhythm::group_mean(P, in<TypeParam>(std::vector<float>(2 * 2 * 5, 1.0f), 2, 2, 5), in<TypeParam>(roles, 2, 2),
                           head_role::global, mean);
      },
      rhythm::errc::bad_parameter, {"'roles'", "none in sequence 1"});
  EXPECT_TRUE(all_equal(mean.host(), kFill));
}

// A valid token problem: B = 2, N = 24, signals on the responses.
struct token_problem {
  static constexpr i64 B = 2, N = 24;
  std::vector<rhythm::segment> segs{{0, 6, 24}, {3, 10, 20}};
  std::vector<float> waad = std::vector<float>(B * N, kNaN), fai = waad;
  std::vector<std::uint8_t> eligible = std::vector<std::uint8_t>(B * N, 1);
  rhythm::token_params params{.horizon = {.lo = 2, .hi = 10}};
  token_problem() {
    std::mt19937 rng(61);
    for (i64 b = 0; b < B; ++b)
      for (i64 t = segs[b].response_begin; t < segs[b].end; ++t)
        waad[b * N + t] = float(rng() % 100), fai[b * N + t] = float(rng() % 100);
  }
  // Runs token_sets, waad_jumps and top_q; expects each to fail with `code` and fragments
  // (`top_q_fragments` for top_q, whose input is named 'values'), outputs untouched.
  template <class P>
  void expect(P policy, rhythm::errc code, std::initializer_list<const char*> sets_fragments,
              std::initializer_list<const char*> top_q_fragments) const {
    auto flags = out<P>(token_flag::any, B, N);
    auto thresholds = out<P>(kFill, B, i64(4));
    auto delta = out<P>(kFill, B, N);
    auto selected = out<P>(std::uint8_t{0xAB}, B, N);
    auto threshold = out<P>(kFill, B);
    const auto w = in<P>(waad, B, N), f = in<P>(fai, B, N);
    const auto s = in<P>(segs);
    expect_value_error(policy, [&] { rhythm::token_sets(policy, w, f, s, flags, thresholds, params); }, code,
                       sets_fragments);
    expect_value_error(policy, [&] { rhythm::waad_jumps(policy, w, s, delta); }, code, sets_fragments);
    expect_value_error(
        policy, [&] { rhythm::top_q(policy, w, in<P>(eligible, B, N), s, selected, threshold, params.selection); },
        code, top_q_fragments);
    EXPECT_TRUE(all_equal(flags.host(), token_flag::any));
    EXPECT_TRUE(all_equal(thresholds.host(), kFill) && all_equal(delta.host(), kFill) &&
                all_equal(threshold.host(), kFill));
    EXPECT_TRUE(all_equal(selected.host(), std::uint8_t{0xAB}));
  }
};

TYPED_TEST_P(ValueErrors, BadSegmentsInTokens) {
  const auto P = make_policy<TypeParam>();
  token_problem p;
  p.segs[1] = {5, 4, 20};
  p.expect(P, rhythm::errc::bad_segment, {"'segments[1]'", "{5, 4, 20}"}, {"'segments[1]'"});
  p.segs[1] = {3, 10, 25};
  p.expect(P, rhythm::errc::bad_segment, {"'segments[1]'", "<= N = 24", "{3, 10, 25}"}, {"'segments[1]'"});
}

TYPED_TEST_P(ValueErrors, NonFiniteTokenSignalsWhereTheyAreRead) {
  const auto P = make_policy<TypeParam>();
  token_problem p;
  p.waad[1 * 24 + 12] = kNaN;  // sequence 1, response position 12
  p.expect(P, rhythm::errc::non_finite, {"'waad'", "finite values", "sequence 1, position 12"},
           {"'values'", "eligible response positions", "sequence 1, position 12"});
  token_problem q;
  q.fai[0 * 24 + 8] = INFINITY;  // FAI is read by token_sets only
  auto flags = out<TypeParam>(token_flag::any, 2, 24);
  expect_value_error(
      P, [&] { rhythm::token_sets(P, in<TypeParam>(q.waad, 2, 24), in<TypeParam>(q.fai, 2, 24), in<TypeParam>(q.segs), flags, q.params); },
      rhythm::errc::non_finite, {"'fai'", "FAI-eligible", "sequence 0, position 8"});
  EXPECT_TRUE(all_equal(flags.host(), token_flag::any));
  q.fai[0 * 24 + 8] = 1.0f;
  q.fai[0 * 24 + 22] = kNaN;  // H_lo = 2: the last two response tokens are not eligible
  EXPECT_NO_THROW(rhythm::token_sets(P, in<TypeParam>(q.waad, 2, 24), in<TypeParam>(q.fai, 2, 24),
                                     in<TypeParam>(q.segs), flags, q.params);
                  finish(P));
  token_problem r;
  r.waad[1 * 24 + 12] = kNaN;
  r.eligible[1 * 24 + 12] = 0;  // an ineligible value is never read by top_q
  auto selected = out<TypeParam>(std::uint8_t{0}, 2, 24);
  auto threshold = out<TypeParam>(kFill, 2);
  EXPECT_NO_THROW(rhythm::top_q(P, in<TypeParam>(r.waad, 2, 24), in<TypeParam>(r.eligible, 2, 24),
                                in<TypeParam>(r.segs), selected, threshold);
                  finish(P));
}

TYPED_TEST_P(ValueErrors, NonFiniteRewardsNameTheIndex) {
  const auto P = make_policy<TypeParam>();
  auto adv = out<TypeParam>(kFill, 5);
  const std::vector<i64> ids{1, 1, 2, 2, 2};
  for (float bad : {kNaN, -INFINITY})
    expect_value_error(
        P,
        [&] {
          rhythm::grpo_advantages(P, in<TypeParam>(std::vector<float>{1, 2, 3, bad, 5}), in<TypeParam>(ids), adv);
        },
        rhythm::errc::non_finite, {"'rewards'", "finite", "index 3"});
  EXPECT_TRUE(all_equal(adv.host(), kFill));
}

TYPED_TEST_P(ValueErrors, NonFiniteOrBadInputsOfShaping) {
  const auto P = make_policy<TypeParam>();
  constexpr i64 B = 3, N = 10;
  std::vector<rhythm::segment> segs{{0, 4, 10}, {2, 5, 9}, {0, 0, 6}};
  const std::vector<token_flag> flags(B * N, token_flag::preplan | token_flag::anchor);
  std::vector<float> entropy(B * N, 1.0f), adv{1.0f, -1.0f, 0.5f};
  auto gamma = out<TypeParam>(kFill, B, N);
  const auto run = [&](const auto& policy) {
    rhythm::shaping_factors(P, policy, in<TypeParam>(flags, B, N), in<TypeParam>(entropy, B, N), in<TypeParam>(segs),
                            in<TypeParam>(adv), gamma);
  };
  adv[2] = kNaN;
  expect_value_error(P, [&] { run(rhythm::shaping::uniform{}); }, rhythm::errc::non_finite, {"'advantages'", "sequence 2"});
  adv[2] = 0.5f;
  entropy[1 * N + 6] = INFINITY;
  expect_value_error(P, [&] { run(rhythm::shaping::uniform{}); }, rhythm::errc::non_finite,
                     {"'entropies'", "sequence 1, position 6"});
  entropy[1 * N + 6] = 1.0f;
  segs[1] = {2, 5, 11};
  expect_value_error(P, [&] { run(rhythm::shaping::uniform{}); }, rhythm::errc::bad_segment, {"'segments[1]'", "{2, 5, 11}"});
  EXPECT_TRUE(all_equal(gamma.host(), kFill));
  segs[1] = {2, 5, 9};
  entropy[1 * N + 9] = kNaN;  // past the end of sequence 1: not read
  EXPECT_NO_THROW(run(rhythm::shaping::entropy{}); finish(P));
}

REGISTER_TYPED_TEST_SUITE_P(ValueErrors, ValidSignalProblemsWriteEveryOutput, NonFiniteMapsNameTheFirstRow,
                            NonFiniteQOrKNameTheHead, NonFinitePaddingIsNotRead, BadSegmentsInSignals, ChecksRunInAFixedOrder,
                            NaNSpanInHeadGroups, EmptyGroupInGroupMean, BadSegmentsInTokens,
                            NonFiniteTokenSignalsWhereTheyAreRead, NonFiniteRewardsNameTheIndex,
                            NonFiniteOrBadInputsOfShaping);

}  // namespace value_errors_suite
