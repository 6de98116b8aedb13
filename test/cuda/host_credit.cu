// Host test of the CUDA credit backend (rhythm/cuda/credit.cuh): its RHYTHM_HOST_DEVICE
// per-group, per-response and per-token functions, run on the CPU in the kernels' structure
// (checks -> smallest key -> decode, or compute -> stage -> commit), must give the CPU backend's
// results bit for bit and its errors (errc and message). No CUDA runtime call; no device needed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <rhythm/rhythm.hpp>
#include <rhythm/cuda/credit.cuh>

namespace {

using i64 = std::int64_t;
using rhythm::host_space;
using rhythm::segment;
using rhythm::view;
namespace cd = rhythm::cuda::detail;
namespace sh = rhythm::shaping;
using rhythm::cuda::error_key;
using rhythm::cuda::no_error;

constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();
constexpr float inf_f = std::numeric_limits<float>::infinity();

// What an operation did: its error (errc, message) or nothing.
struct outcome {
  bool failed = false;
  rhythm::errc code{};
  std::string message;
};

template <class F>
outcome run(F&& f) {
  try {
    f();
  } catch (const rhythm::error& e) {
    return {true, e.code(), e.what()};
  }
  return {};
}

void expect_same(const outcome& cpu, const outcome& dev) {
  EXPECT_EQ(cpu.failed, dev.failed) << "cpu: " << cpu.message << "\ndevice: " << dev.message;
  EXPECT_EQ(cpu.code, dev.code);
  EXPECT_EQ(cpu.message, dev.message);
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

template <class T>
std::vector<T> convert(const std::vector<float>& v) {
  std::vector<T> out;
  for (float x : v) out.push_back(T(x));
  return out;
}

// ------------------------------------------------------------ the device operations, emulated
// Each mirrors its kernels: the per-item checks reduce to the smallest key (atomicMin), the
// commit raises its decode or copies the staged results.

void raise_key(error_key key, const std::function<rhythm::value_error(error_key)>& decode) {
  if (key != no_error) rhythm::raise(decode(key));
}

template <class R>
void device_grpo(const rhythm::advantage_args<R, host_space>& a) {
  const i64 S = a.rewards.extent(0);
  error_key key = no_error;
  std::vector<float> staged(S);
  for (i64 i = 0; i < S; ++i) {
    const error_key k = cd::grpo_check(a, i);
    if (k != no_error) key = std::min(key, k);
    else staged[i] = cd::grpo_advantage(a, i);
  }
  raise_key(key, cd::grpo_decoder<host_space>());
  for (i64 i = 0; i < S; ++i) a.advantages(i) = staged[i];
}

template <class E>
void device_shaping(const rhythm::shaping_args<E, host_space>& a, const rhythm::shaping_rule& rule) {
  const i64 B = a.flags.extent(0), N = a.flags.extent(1);
  cd::check_device_rule(rule, a.options, a.entropies.data_handle() != nullptr || B * N == 0);
  error_key key = no_error;
  std::vector<float> staged(B * N, -123.0f);
  for (i64 b = 0; b < B; ++b) {
    const error_key k = cd::shaping_check(a, b);
    if (k != no_error) key = std::min(key, k);
    else cd::shape_response(a, rule, b, staged.data() + b * N + a.segments(b).response_begin);
  }
  raise_key(key, cd::shaping_decoder(a.segments, N));
  for (i64 i = 0; i < B * N; ++i) a.gamma(i / N, i % N) = a.segments(i / N).in_response(i % N) ? staged[i] : 1.0f;
}

void device_shaped(const rhythm::shaped_advantage_args<host_space>& a) {
  const i64 B = a.gamma.extent(0), N = a.gamma.extent(1);
  error_key key = no_error;
  for (i64 i = 0; i < B + B * N; ++i)
    key = std::min(key, i < B ? cd::shaped_sequence_check(a, i) : cd::shaped_token_check(a, (i - B) / N, (i - B) % N));
  raise_key(key, cd::shaped_decoder(a.segments, N));
  for (i64 i = 0; i < B * N; ++i) {
    const i64 b = i / N, t = i % N;
    a.out(b, t) = a.segments(b).in_response(t) ? a.gamma(b, t) * a.advantages(b) : 0.0f;
  }
}

rhythm::pipeline_diagnostics device_output(const rhythm::credit_output_args<host_space>& a) {
  const i64 B = a.gamma.extent(0), N = a.gamma.extent(1);
  error_key key = no_error;
  std::vector<cd::output_partial> partials(B);
  for (i64 b = 0; b < B; ++b) {
    const error_key k = cd::output_check(a, b);
    if (k != no_error) key = std::min(key, k);
    else partials[b] = cd::output_partial_of(a, b);
  }
  raise_key(key, cd::output_decoder(a.segments, N));
  const rhythm::pipeline_diagnostics d = cd::diagnostics_of(a, partials.data());
  for (i64 i = 0; i < B * N; ++i) {
    const i64 b = i / N, t = i % N;
    a.gamma_out(b, t) = a.gamma(b, t);
    a.shaped(b, t) = a.segments(b).in_response(t) ? a.gamma(b, t) * a.advantages(b) : 0.0f;
  }
  return d;
}

// ------------------------------------------------------------ random inputs

// Segments with left and right padding, empty responses, and whole-row responses.
std::vector<segment> random_segments(std::mt19937& rng, i64 B, i64 N) {
  std::vector<segment> s(B);
  for (auto& g : s) {
    std::uniform_int_distribution<i64> pos(0, N);
    i64 x[3] = {pos(rng), pos(rng), pos(rng)};
    std::sort(x, x + 3);
    const int kind = std::uniform_int_distribution<int>(0, 5)(rng);
    if (kind == 0) x[1] = x[2];  // empty response
    if (kind == 1) x[0] = 0, x[1] = 0, x[2] = N;
    g = {x[0], x[1], x[2]};
  }
  return s;
}

// Values with many ties (quantised), signed zeros, a wide range.
std::vector<float> tied_values(std::mt19937& rng, i64 n) {
  std::vector<float> v(n);
  std::uniform_int_distribution<int> pick(0, 9);
  std::normal_distribution<float> g(0.0f, 2.0f);
  for (auto& x : v) {
    const int c = pick(rng);
    x = c == 0 ? 0.0f : c == 1 ? -0.0f : c < 5 ? std::round(g(rng)) : g(rng);
  }
  return v;
}

struct credit_batch {
  i64 B, N;
  std::vector<segment> segs;
  std::vector<std::uint8_t> flags;
  std::vector<float> entropies, advantages;

  credit_batch(std::mt19937& rng, i64 B_, i64 N_) : B(B_), N(N_), segs(random_segments(rng, B_, N_)) {
    std::uniform_int_distribution<int> byte(0, 255);
    for (i64 i = 0; i < B * N; ++i) flags.push_back(static_cast<std::uint8_t>(byte(rng)));
    entropies = tied_values(rng, B * N);
    for (i64 b = 0; b < B; ++b)  // padding and prompt entropies are never read
      for (i64 t = 0; t < N; ++t)
        if (!segs[b].in_response(t) && byte(rng) < 64) entropies[b * N + t] = nan_f;
    std::normal_distribution<float> g(0.0f, 1.0f);
    for (i64 b = 0; b < B; ++b) advantages.push_back(byte(rng) < 40 ? 0.0f : g(rng));
  }
};

std::vector<rhythm::shaping_rule> builtin_rules() {
  std::vector<rhythm::shaping_rule> r = {
      sh::uniform{}.rule(),
      sh::local_chunk{}.rule(),
      sh::local_chunk{1.3}.rule(),
      sh::global_anchor{}.rule(),
      sh::global_anchor{2.7}.rule(),
      sh::coupled_rhythm{}.rule(),
      sh::coupled_rhythm{1.7, 0.3}.rule(),
      sh::coupled_rhythm{1.5, 1.0}.rule(),
      sh::entropy{}.rule(),
      sh::entropy{1.3, {0.1, false}}.rule(),
      sh::entropy{1.5, {0.5, true}}.rule(),
      sh::entropy{2.0, {1.0, false}}.rule(),
      sh::any::parse("coupled_rhythm").rule(),
  };
  for (std::uint64_t seed : {0ull, 1ull, 42ull, 0xdeadbeefcafeull, ~0ull})
    for (double q : {0.07, 0.4, 1.0}) r.push_back(sh::random{1.5, q, seed}.rule());
  return r;
}

// ------------------------------------------------------------ helpers of the kernels

TEST(HostCredit, RandomRankIsTheCpusPermutation) {
  // The device runs rhythm::random_rank itself (RHYTHM_HOST_DEVICE): check it is a permutation
  // and that the device's draw count equals the CPU's.
  for (std::uint64_t seed : {0ull, 7ull, 123456789ull, ~0ull})
    for (i64 b : {0, 1, 5, 1000003})
      for (i64 n : {1, 2, 3, 4, 5, 15, 16, 17, 63, 64, 65, 250}) {
        std::vector<int> seen(n, 0);
        for (i64 i = 0; i < n; ++i) {
          const i64 r = rhythm::random_rank(seed, b, i, n);
          ASSERT_TRUE(r >= 0 && r < n);
          ++seen[r];
        }
        EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; }));
      }
}

// kth_value's accessor (a host lambda cannot be called from a host-device function).
struct values_at {
  const float* v;
  RHYTHM_HOST_DEVICE float operator()(i64 i) const { return v[i]; }
};

TEST(HostCredit, KthValueIsNthElement) {
  std::mt19937 rng(11);
  for (int rep = 0; rep < 400; ++rep) {
    const i64 n = std::uniform_int_distribution<i64>(1, 40)(rng);
    std::vector<float> v = tied_values(rng, n);
    if (rep % 7 == 0) v.assign(n, 0.5f);  // all equal
    if (rep % 11 == 0) v[0] = std::numeric_limits<float>::max(), v[n - 1] = -std::numeric_limits<float>::denorm_min();
    for (bool bottom : {false, true})
      for (i64 k = 1; k <= n; ++k) {
        std::vector<float> s = v;
        if (bottom) std::nth_element(s.begin(), s.begin() + (k - 1), s.end());
        else std::nth_element(s.begin(), s.begin() + (k - 1), s.end(), std::greater<float>());
        const float got = cd::kth_value(values_at{v.data()}, n, k, bottom);
        EXPECT_EQ(got, s[k - 1]);  // as floats: -0 == +0, which selects the same tokens
      }
  }
}

TEST(HostCredit, LowestBitExponent) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<std::uint32_t> bits;
  for (int rep = 0; rep < 20000; ++rep) {
    const float x = rhythm::detail::bits_as<float>(bits(rng));
    if (!std::isfinite(x) || x == 0.0f) continue;
    const int e = cd::lowest_bit_exponent(x);
    const double m = std::ldexp(static_cast<double>(x), -e);  // exact: an odd integer
    EXPECT_EQ(m, std::trunc(m));
    EXPECT_EQ(std::fmod(std::fabs(m), 2.0), 1.0) << x;
  }
  EXPECT_EQ(cd::lowest_bit_exponent(1.0f), 0);
  EXPECT_EQ(cd::lowest_bit_exponent(1.5f), -1);
  EXPECT_EQ(cd::lowest_bit_exponent(std::numeric_limits<float>::denorm_min()), -149);
}

TEST(HostCredit, WorkspaceSizes) {
  EXPECT_EQ(rhythm::cuda::grpo_advantages_workspace_size(0), 256u);
  EXPECT_EQ(rhythm::cuda::grpo_advantages_workspace_size(10), 256u + 40u);
  EXPECT_EQ(rhythm::cuda::shaping_factors_workspace_size(3, 7), 256u + 84u);
  EXPECT_EQ(rhythm::cuda::shaped_advantages_workspace_size(3, 7), 8u);
  EXPECT_EQ(sizeof(cd::output_partial), 72u);
  EXPECT_EQ(rhythm::cuda::credit_output_workspace_size(0, 5), 256u + sizeof(rhythm::pipeline_diagnostics));
  EXPECT_EQ(sizeof(rhythm::pipeline_diagnostics), 56u);
  EXPECT_EQ(rhythm::cuda::credit_output_workspace_size(4, 5), 256u + 512u + sizeof(rhythm::pipeline_diagnostics));
}

// ------------------------------------------------------------ grpo_advantages

// rewards: normal, all equal, binary, or huge (catastrophic cancellation).
std::vector<float> rt_rewards(std::mt19937& rng, i64 S, int rep) {
  std::vector<float> r(S);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (auto& x : r) {
    switch (rep % 4) {
      case 0: x = g(rng); break;
      case 1: x = 0.25f; break;
      case 2: x = g(rng) > 0 ? 1.0f : 0.0f; break;
      default: x = 1e6f + g(rng); break;
    }
  }
  return r;
}

template <class R>
outcome check_grpo(const std::vector<float>& rewards_f, const std::vector<i64>& ids, rhythm::advantage_params params) {
  const std::vector<R> rewards = convert<R>(rewards_f);
  const i64 S = static_cast<i64>(rewards.size());
  std::vector<float> cpu(S, -7.0f), dev(S, -7.0f);
  const auto args = [&](std::vector<float>& out) {
    return rhythm::advantage_args<R, host_space>{view<const R, 1>(rewards.data(), {S}),
                                                 view<const i64, 1>(ids.data(), {S}), view<float, 1>(out.data(), {S}),
                                                 params};
  };
  const outcome c = run([&] { rhythm::cpu::grpo_advantages(1, args(cpu)); });
  const outcome d = run([&] { device_grpo(args(dev)); });
  expect_same(c, d);
  EXPECT_TRUE(same_bits(cpu, dev));
  return c;
}

template <class R>
void grpo_suite(std::uint32_t seed) {
  std::mt19937 rng(seed);
  for (int rep = 0; rep < 60; ++rep) {
    const i64 S = std::uniform_int_distribution<i64>(0, 70)(rng);
    const i64 labels = std::uniform_int_distribution<i64>(1, 12)(rng);
    std::vector<i64> ids(S);
    for (auto& g : ids) g = std::uniform_int_distribution<i64>(-3, labels)(rng) * 1000003;  // sparse, negative
    std::vector<float> rewards = rt_rewards(rng, S, rep);
    for (bool std_normalise : {true, false})
      for (float eps : {1e-6f, 0.5f, 1e-30f}) check_grpo<R>(rewards, ids, {std_normalise, eps});
  }
}

TEST(HostCredit, GrpoAdvantagesFloat) { grpo_suite<float>(1); }
TEST(HostCredit, GrpoAdvantagesBfloat16) { grpo_suite<rhythm::bfloat16>(2); }
TEST(HostCredit, GrpoAdvantagesHalf) { grpo_suite<rhythm::half>(3); }

TEST(HostCredit, GrpoEdgeCases) {
  check_grpo<float>({}, {}, {});
  check_grpo<float>({3.0f}, {5}, {});                                  // a group of one
  check_grpo<float>({1, 2, 3, 4}, {0, 1, 2, 3}, {});                   // all alone
  check_grpo<float>({2, 2, 2, 2}, {9, 9, 9, 9}, {});                   // equal rewards
  check_grpo<float>({1, 0, 1, 0, 5}, {4, 4, -4, -4, 4}, {false, 1e-6f});  // Dr. GRPO
}

TEST(HostCredit, GrpoErrors) {
  std::mt19937 rng(5);
  for (float bad : {nan_f, inf_f, -inf_f}) {
    for (i64 at : {0, 3, 9}) {
      std::vector<float> r = rt_rewards(rng, 10, 0);
      std::vector<i64> ids = {0, 0, 1, 1, 2, 2, 3, 3, 4, 4};
      r[at] = bad;
      if (at == 3) r[7] = nan_f;  // the first one is blamed
      EXPECT_TRUE(check_grpo<float>(r, ids, {}).failed);
      EXPECT_TRUE(check_grpo<rhythm::half>(r, ids, {}).failed);
    }
  }
  // a half overflow: finite as float, Inf as half
  EXPECT_EQ(check_grpo<rhythm::half>({1.0f, 70000.0f}, {0, 0}, {}).code, rhythm::errc::non_finite);
}

// ------------------------------------------------------------ shaping_factors

template <class E>
outcome check_shaping(const credit_batch& x, const std::vector<E>* entropies, const rhythm::shaping_rule& rule,
                   rhythm::shaping_options options) {
  const i64 B = x.B, N = x.N;
  std::vector<float> cpu(B * N, -7.0f), dev(B * N, -7.0f);
  const auto args = [&](std::vector<float>& out) {
    return rhythm::shaping_args<E, host_space>{
        view<const std::uint8_t, 2>(x.flags.data(), {B, N}),
        entropies ? view<const E, 2>(entropies->data(), {B, N}) : view<const E, 2>(),
        view<const segment, 1>(x.segs.data(), {B}),
        view<const float, 1>(x.advantages.data(), {B}),
        view<float, 2>(out.data(), {B, N}),
        options};
  };
  const outcome c = run([&] { rhythm::cpu::shaping_factors(1, args(cpu), rule); });
  const outcome d = run([&] { device_shaping(args(dev), rule); });
  expect_same(c, d);
  EXPECT_TRUE(same_bits(cpu, dev));
  return c;
}

template <class E>
void shaping_suite(std::uint32_t seed) {
  std::mt19937 rng(seed);
  const auto rules = builtin_rules();
  int cases = 0;
  for (int rep = 0; rep < 6; ++rep) {
    const i64 B = std::uniform_int_distribution<i64>(0, 9)(rng), N = std::uniform_int_distribution<i64>(0, 40)(rng);
    const credit_batch x(rng, B, N);
    const std::vector<E> entropies = convert<E>(x.entropies);
    for (const auto& rule : rules)
      for (auto sign : {rhythm::sign_mode::both, rhythm::sign_mode::positive, rhythm::sign_mode::negative})
        for (double floor : {0.0, 0.9, 1.2})
          for (bool mean_preserving : {false, true}) {
            check_shaping<E>(x, &entropies, rule, {sign, floor, mean_preserving});
            if (!rule.needs_entropies()) check_shaping<E>(x, nullptr, rule, {sign, floor, mean_preserving});
            ++cases;
          }
  }
  EXPECT_GT(cases, 1000);
}

TEST(HostCredit, ShapingFactorsFloat) { shaping_suite<float>(21); }
TEST(HostCredit, ShapingFactorsBfloat16) { shaping_suite<rhythm::bfloat16>(22); }
TEST(HostCredit, ShapingFactorsHalf) { shaping_suite<rhythm::half>(23); }

TEST(HostCredit, ShapingFactorsLongResponses) {
  std::mt19937 rng(24);
  const credit_batch x(rng, 4, 700);
  for (const auto& rule : builtin_rules())
    for (bool mp : {false, true}) check_shaping<float>(x, &x.entropies, rule, {rhythm::sign_mode::both, 0.0, mp});
}

TEST(HostCredit, ShapingErrors) {
  std::mt19937 rng(25);
  const auto rule = sh::entropy{}.rule();
  const auto coupled = sh::coupled_rhythm{}.rule();
  for (int rep = 0; rep < 40; ++rep) {
    credit_batch x(rng, 6, 12);
    x.segs[2] = {1, 3, 11};
    x.segs[4] = {0, 5, 12};
    for (i64 i = 0; i < 6 * 12; ++i)  // NaN only where no response reads it
      x.entropies[i] = !x.segs[i / 12].in_response(i % 12) ? nan_f : std::isnan(x.entropies[i]) ? 0.5f : x.entropies[i];
    const int what = rep % 8;
    if (what == 0) x.segs[3] = {2, 1, 5};                       // begin > response_begin
    if (what == 1) x.segs[5] = {0, 0, 13};                      // end > N
    if (what == 2) x.entropies[2 * 12 + 7] = nan_f;             // in a response
    if (what == 3) x.entropies[4 * 12 + 11] = -inf_f, x.advantages[0] = nan_f;  // entropies first
    if (what == 4) x.advantages[3] = inf_f;
    if (what == 5) x.segs[5] = {-1, 0, 3}, x.entropies[2 * 12 + 4] = nan_f;    // segments first
    if (what == 6) x.entropies[2 * 12 + 0] = nan_f;             // prompt: not read
    if (what == 7) x.entropies[4 * 12 + 6] = 1e30f;             // finite as float, bfloat16; Inf as half
    const outcome o = check_shaping<float>(x, &x.entropies, rule, {});
    EXPECT_EQ(o.failed, what <= 5) << what;
    if (what == 0 || what == 1 || what == 5) EXPECT_EQ(o.code, rhythm::errc::bad_segment);
    if (what == 2 || what == 3) EXPECT_NE(o.message.find("'entropies'"), std::string::npos) << o.message;
    if (what == 4) EXPECT_NE(o.message.find("'advantages'"), std::string::npos) << o.message;
    const auto h = convert<rhythm::half>(x.entropies);
    check_shaping<rhythm::half>(x, &h, rule, {});
    const auto bf = convert<rhythm::bfloat16>(x.entropies);
    check_shaping<rhythm::bfloat16>(x, &bf, coupled, {rhythm::sign_mode::negative, 0.5, true});
    check_shaping<float>(x, nullptr, coupled, {});
  }
}

TEST(HostCredit, DeviceRuleChecks) {
  // Built-ins always pass; a hand-made rule that could write bad gamma is refused up front.
  rhythm::shaping_options mp{rhythm::sign_mode::both, 0.0, true};
  for (const auto& rule : builtin_rules()) {
    EXPECT_NO_THROW(cd::check_device_rule(rule, {}, true));
    EXPECT_NO_THROW(cd::check_device_rule(rule, mp, true));
  }
  rhythm::shaping_rule bad;
  bad.by_flags[3] = nan_f;
  const outcome e = run([&] { cd::check_device_rule(bad, {}, false); });
  EXPECT_EQ(e.code, rhythm::errc::non_finite);
  bad.by_flags[3] = -1.0f;
  EXPECT_EQ(run([&] { cd::check_device_rule(bad, {}, false); }).code, rhythm::errc::bad_parameter);
  bad.by_flags[3] = 0.0f;
  EXPECT_FALSE(run([&] { cd::check_device_rule(bad, {}, false); }).failed);
  EXPECT_EQ(run([&] { cd::check_device_rule(bad, mp, false); }).code, rhythm::errc::bad_parameter);
  // the same message as the stage's missing-entropies error
  std::mt19937 rng(26);
  const credit_batch x(rng, 2, 5);
  std::vector<float> gamma(10);
  const outcome stage = run([&] {
    rhythm::shaping_factors(rhythm::exec::seq{}, sh::entropy{}, view<const std::uint8_t, 2>(x.flags.data(), {2, 5}),
                            view<const segment, 1>(x.segs.data(), {2}), view<const float, 1>(x.advantages.data(), {2}),
                            view<float, 2>(gamma.data(), {2, 5}));
  });
  const outcome dev = run([&] { cd::check_device_rule(sh::entropy{}.rule(), {}, false); });
  expect_same(stage, dev);
}

// ------------------------------------------------------------ shaped_advantages

outcome check_shaped(const std::vector<float>& gamma, const std::vector<float>& adv, const std::vector<segment>& segs,
                  i64 B, i64 N) {
  std::vector<float> cpu(B * N, -7.0f), dev(B * N, -7.0f);
  const auto args = [&](std::vector<float>& out) {
    return rhythm::shaped_advantage_args<host_space>{
        view<const float, 2>(gamma.data(), {B, N}), view<const float, 1>(adv.data(), {B}),
        view<const segment, 1>(segs.data(), {B}), view<float, 2>(out.data(), {B, N})};
  };
  const outcome c = run([&] { rhythm::cpu::shaped_advantages(1, args(cpu)); });
  const outcome d = run([&] { device_shaped(args(dev)); });
  expect_same(c, d);
  EXPECT_TRUE(same_bits(cpu, dev));
  return c;
}

TEST(HostCredit, ShapedAdvantages) {
  std::mt19937 rng(31);
  int errors = 0;
  for (int rep = 0; rep < 200; ++rep) {
    const i64 B = std::uniform_int_distribution<i64>(0, 7)(rng), N = std::uniform_int_distribution<i64>(0, 20)(rng);
    credit_batch x(rng, B, N);
    std::vector<float> gamma = tied_values(rng, B * N);
    for (i64 b = 0; b < B; ++b)
      for (i64 t = 0; t < N; ++t)
        if (!x.segs[b].in_response(t) && rep % 2) gamma[b * N + t] = nan_f;  // not read
    const int what = rep % 10;
    if (B > 1 && what == 1) x.segs[B - 1] = {0, 2, N + 1};
    if (B > 1 && what == 2) x.advantages[B - 1] = nan_f;
    if (B > 1 && what == 3) {
      x.advantages[B - 1] = inf_f;
      x.segs[0] = {0, 0, N};
      if (N > 0) gamma[N - 1] = nan_f;  // the advantages come first
    }
    if (B > 0 && N > 0 && what == 4) {
      x.segs[B - 1] = {0, 0, N};
      gamma[(B - 1) * N + N / 2] = -inf_f;
    }
    const outcome o = check_shaped(gamma, x.advantages, x.segs, B, N);
    if (B > 1 && (what == 1 || what == 2 || what == 3)) EXPECT_TRUE(o.failed);
    if (B > 1 && what == 3) EXPECT_NE(o.message.find("'advantages'"), std::string::npos) << o.message;
    if (B > 0 && N > 0 && what == 4) EXPECT_NE(o.message.find("'gamma'"), std::string::npos) << o.message;
    errors += o.failed;
  }
  EXPECT_GT(errors, 30);
}

// ------------------------------------------------------------ credit_output

outcome check_output(const credit_batch& x, const std::vector<float>& gamma) {
  const i64 B = x.B, N = x.N;
  std::vector<float> cpu_g(B * N, -7.0f), cpu_s(B * N, -7.0f), dev_g(B * N, -7.0f), dev_s(B * N, -7.0f);
  const auto args = [&](std::vector<float>& g, std::vector<float>& s) {
    return rhythm::credit_output_args<host_space>{
        view<const float, 2>(gamma.data(), {B, N}), view<const float, 1>(x.advantages.data(), {B}),
        view<const std::uint8_t, 2>(x.flags.data(), {B, N}), view<const segment, 1>(x.segs.data(), {B}),
        view<float, 2>(g.data(), {B, N}), view<float, 2>(s.data(), {B, N})};
  };
  rhythm::pipeline_diagnostics c{}, d{};
  const outcome o = run([&] { c = rhythm::cpu::credit_output(1, args(cpu_g, cpu_s)); });
  expect_same(o, run([&] { d = device_output(args(dev_g, dev_s)); }));
  EXPECT_TRUE(same_bits(cpu_g, dev_g));
  EXPECT_TRUE(same_bits(cpu_s, dev_s));
  if (o.failed) return o;  // no diagnostics on error (and an optimiser may have half-built c)
  EXPECT_EQ(c.response_tokens, d.response_tokens);
  EXPECT_EQ(c.preplan, d.preplan);
  EXPECT_EQ(c.anchor, d.anchor);
  EXPECT_EQ(c.dominated, d.dominated);
  EXPECT_EQ(c.intro, d.intro);
  EXPECT_TRUE(same_bits(c.mean_gamma, d.mean_gamma)) << c.mean_gamma << " " << d.mean_gamma;
  EXPECT_TRUE(same_bits(c.amplified_share, d.amplified_share));
  return o;
}

TEST(HostCredit, CreditOutputFromShaping) {
  std::mt19937 rng(41);
  for (int rep = 0; rep < 30; ++rep) {
    const i64 B = std::uniform_int_distribution<i64>(0, 8)(rng), N = std::uniform_int_distribution<i64>(0, 50)(rng);
    const credit_batch x(rng, B, N);
    const auto rules = builtin_rules();
    const auto& rule = rules[rep % rules.size()];
    std::vector<float> gamma(B * N);
    rhythm::cpu::shaping_factors(
        1,
        rhythm::shaping_args<float, host_space>{
            view<const std::uint8_t, 2>(x.flags.data(), {B, N}), view<const float, 2>(x.entropies.data(), {B, N}),
            view<const segment, 1>(x.segs.data(), {B}), view<const float, 1>(x.advantages.data(), {B}),
            view<float, 2>(gamma.data(), {B, N}), {rhythm::sign_mode::both, rep % 3 ? 0.0 : 0.95, rep % 2 == 1}},
        rule);
    check_output(x, gamma);
  }
}

TEST(HostCredit, CreditOutputRoundingSums) {
  // gamma whose running sum rounds (the exact shortcut does not apply), and non-finite gamma
  std::mt19937 rng(42);
  for (int rep = 0; rep < 40; ++rep) {
    const credit_batch x(rng, 5, 30);
    std::vector<float> gamma = tied_values(rng, 5 * 30);
    std::uniform_int_distribution<int> pick(0, 30);
    for (auto& y : gamma) {
      const int c = pick(rng);
      if (c == 0) y = 1e30f;
      if (c == 1) y = -1e30f;
      if (c == 2) y = 3e-38f;
      if (c == 3) y = 1.0f / 3.0f;
      if (c == 4 && rep % 5 == 0) y = rep % 10 ? inf_f : nan_f;
    }
    check_output(x, gamma);
  }
  for (int rep = 0; rep < 20; ++rep) {  // exact sums of fractional values
    const credit_batch x(rng, 7, 33);
    std::vector<float> gamma(7 * 33);
    std::uniform_real_distribution<float> u(0.5f, 2.0f);
    for (auto& y : gamma) y = u(rng);
    check_output(x, gamma);
  }
}

TEST(HostCredit, CreditOutputEdgesAndErrors) {
  std::mt19937 rng(43);
  for (auto [B, N] : {std::pair<i64, i64>{0, 0}, {0, 5}, {3, 0}, {1, 1}}) {
    const credit_batch x(rng, B, N);
    check_output(x, std::vector<float>(B * N, 1.5f));
  }
  credit_batch x(rng, 4, 9);
  x.segs[2] = {3, 2, 9};
  EXPECT_EQ(check_output(x, std::vector<float>(36, 1.0f)).code, rhythm::errc::bad_segment);
  x.segs[1] = {0, 0, 10};
  EXPECT_NE(check_output(x, std::vector<float>(36, 1.0f)).message.find("segments[1]"), std::string::npos);
}

TEST(HostCredit, CreditOutputSumOrderMatters) {
  // (a + b) + c != a + (b + c): summing per-sequence sums would differ; the running sum is taken.
  std::mt19937 rng(44);
  credit_batch x(rng, 2, 2);
  x.segs = {{0, 1, 2}, {0, 0, 2}};
  const std::vector<float> gamma = {0.0f, 1e-8f, 16777216.0f, -16777216.0f};
  check_output(x, gamma);
}

}  // namespace
