// Host test of the CUDA heads and tokens backends (cuda/heads.cuh, cuda/tokens.cuh), without a
// device: an emulated backend runs the kernels' item functions in plain loops over a host
// workspace of exactly `*_workspace_size` bytes (filled with garbage first), keeps the smallest
// error key as atomicMin would, decodes it as the commit kernel does, and commits. Every public
// stage call is made twice, with exec::seq (the CPU oracle) and with the emulation, and the
// outputs (bit for bit) or the errors (errc and message) must agree.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <rhythm/rhythm.hpp>
#include <rhythm/cuda/heads.cuh>
#include <rhythm/cuda/tokens.cuh>

namespace {

using i64 = std::int64_t;
using rhythm::segment;
using rhythm::cuda::error_key;
using rhythm::cuda::no_error;
namespace hr = rhythm::cuda::detail::head_rows;
namespace tr = rhythm::cuda::detail::token_rows;

struct emulated {};  // the policy of the emulated CUDA backend

/// Host bytes standing in for the device workspace: `size` bytes, 256-aligned, filled with garbage.
struct host_workspace {
  std::vector<std::byte> bytes;
  rhythm::cuda::detail::workspace_carver carver;
  explicit host_workspace(std::size_t size) : bytes(size + 256, std::byte{0xa7}), carver(aligned(bytes.data())) {}
  static std::byte* aligned(std::byte* p) {
    const auto u = reinterpret_cast<std::uintptr_t>(p);
    return p + (256 - u % 256) % 256;
  }
};

/// One "launch" of a check kernel: the smallest key any item reported.
template <class Item>
error_key min_key(i64 items, Item item) {
  error_key slot = no_error;
  for (i64 i = 0; i < items; ++i) slot = std::min(slot, static_cast<error_key>(item(i)));
  return slot;
}

/// The commit rule: a failed check raises the decoded error (the device records it, and
/// throw_if_error raises it), else the commit items run.
template <class Decode, class Item>
void commit(error_key slot, Decode decode, i64 items, Item item) {
  if (slot != no_error) rhythm::raise(decode(slot));
  for (i64 i = 0; i < items; ++i) item(i);
}

}  // namespace

namespace rhythm {
template <>
struct backend<emulated> {
  using memory_space = host_space;
  using H = host_space;

  static void head_groups(emulated, const head_group_args<H>& a) {
    const i64 B = a.spans.extent(0), Hd = a.spans.extent(1);
    host_workspace ws(cuda::head_groups_workspace_size(B, Hd));
    if (B * Hd == 0) return;
    const auto w = hr::plan_head_groups(ws.carver, B, Hd);
    const error_key slot = min_key(B * Hd, [&](i64 i) { return hr::head_groups_item(a, w, i); });
    commit(slot, hr::spans_decoder{Hd}, B * Hd, [&](i64 i) { a.roles(i / Hd, i % Hd) = w.roles[i]; });
  }
  static void pooled_head_groups(emulated, const pooled_head_group_args<H>& a) {
    const i64 B = a.spans.extent(0), Hd = a.spans.extent(1);
    host_workspace ws(cuda::pooled_head_groups_workspace_size(B, Hd));
    if (Hd == 0) return;
    const auto w = hr::plan_pooled_head_groups(ws.carver, Hd);
    const error_key slot = min_key(Hd, [&](i64 h) { return hr::pooled_sum_item(a, w, h); });
    for (i64 h = 0; h < Hd; ++h) hr::pooled_role_item(a, w, h);
    commit(slot, hr::spans_decoder{Hd}, Hd, [&](i64 h) { a.roles(h) = w.roles[h]; });
  }
  static void group_mean(emulated, const group_mean_args<H>& a) {
    const i64 B = a.per_head.extent(0), N = a.per_head.extent(2);
    host_workspace ws(cuda::group_mean_workspace_size(B, a.per_head.extent(1), N));
    if (B == 0) return;
    hr::plan_group_mean(ws.carver);
    const error_key slot = min_key(B, [&](i64 b) { return hr::group_check_item(a, b); });
    commit(slot, hr::empty_group_decoder{}, B * N, [&](i64 i) { hr::group_mean_item(a, i); });
  }
  template <class T>
  static void waad_jumps(emulated, const waad_jumps_args<T, H>& a) {
    const i64 B = a.waad.extent(0), N = a.waad.extent(1);
    host_workspace ws(cuda::waad_jumps_workspace_size(B, N));
    if (B == 0) return;
    tr::plan_slot(ws.carver);
    const error_key slot = min_key(B * std::max<i64>(N, 1), [&](i64 i) { return tr::check_response_item(a.waad, a.segments, i); });
    commit(slot, tr::values_decoder(a.segments, N, value_argument::waad, value_scope::response), B * N,
           [&](i64 i) { tr::waad_jumps_item(a, i); });
  }
  template <class T>
  static void local_peaks(emulated, const local_peaks_args<T, H>& a) {
    const i64 B = a.values.extent(0), N = a.values.extent(1);
    host_workspace ws(cuda::local_peaks_workspace_size(B, N));
    if (B == 0) return;
    tr::plan_slot(ws.carver);
    const error_key slot =
        min_key(B * std::max<i64>(N, 1), [&](i64 i) { return tr::check_response_item(a.values, a.segments, i); });
    commit(slot, tr::values_decoder(a.segments, N, value_argument::values, value_scope::response), B * N,
           [&](i64 i) { tr::local_peaks_item(a, i); });
  }
  template <class T>
  static void top_q(emulated, const top_q_args<T, H>& a) {
    const i64 B = a.values.extent(0), N = a.values.extent(1);
    host_workspace ws(cuda::top_q_workspace_size(B, N));
    if (B == 0) return;
    const auto w = tr::plan_top_q(ws.carver, B, N);
    const error_key slot = min_key(B, [&](i64 b) { return tr::top_q_sequence(a, w, b); });
    commit(slot, tr::values_decoder(a.segments, N, value_argument::values, value_scope::eligible_response),
           tr::commit_items(a), [&](i64 i) { tr::top_q_commit_item(a, w, i); });
  }
  template <class W, class F>
  static void token_sets(emulated, const token_sets_args<W, F, H>& a) {
    const i64 B = a.waad.extent(0), N = a.waad.extent(1);
    host_workspace ws(cuda::token_sets_workspace_size(B, N));
    if (B == 0) return;
    const auto w = tr::plan_token_sets(ws.carver, B, N);
    const error_key slot = min_key(B, [&](i64 b) { return tr::token_sets_sequence(a, w, b); });
    commit(slot, tr::token_sets_decoder(a), tr::commit_items(a), [&](i64 i) { tr::token_sets_commit_item(a, w, i); });
  }
};
}  // namespace rhythm

namespace {

constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();
constexpr float inf_f = std::numeric_limits<float>::infinity();

template <class T>
std::vector<T> convert(const std::vector<float>& v) {
  std::vector<T> out;
  out.reserve(v.size());
  for (float x : v) out.push_back(T(x));
  return out;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

/// The outcome of one call: "ok" or the error's code and message.
template <class F>
std::string outcome(F&& f) {
  try {
    f();
    return "ok";
  } catch (const rhythm::error& e) {
    return std::string(rhythm::to_string(e.code())) + ": " + e.what();
  }
}

// ---- inputs ---------------------------------------------------------------------------------------

/// Segments of B sequences padded to N, cycling through the shapes that matter: left and right
/// padding, no prompt, empty responses, responses of length 1 and 2, the whole row.
std::vector<segment> make_segments(std::mt19937& rng, i64 B, i64 N) {
  std::vector<segment> s(B);
  for (i64 b = 0; b < B; ++b) {
    const int shape = static_cast<int>((b + rng()) % 7);
    const i64 begin = std::uniform_int_distribution<i64>(0, N / 3)(rng);
    const i64 end = std::uniform_int_distribution<i64>(begin, N)(rng);
    const i64 rb = std::uniform_int_distribution<i64>(begin, end)(rng);
    switch (shape) {
      case 0: s[b] = {0, 0, N}; break;
      case 1: s[b] = {begin, end, end}; break;                                       // empty response
      case 2: s[b] = {begin, std::max<i64>(begin, end - 1), end}; break;             // length <= 1
      case 3: s[b] = {begin, std::max<i64>(begin, end - 2), end}; break;             // length <= 2
      case 4: s[b] = {0, std::min<i64>(N, rb), N}; break;                            // no padding
      default: s[b] = {begin, rb, end}; break;
    }
  }
  return s;
}

/// Values [B, N]: drawn from a small set (many ties), normal, all equal, or a set with negatives;
/// NaN outside the responses (never read there).
std::vector<float> make_values(std::mt19937& rng, i64 B, i64 N, const std::vector<segment>& segs, int kind) {
  static const float ties[] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f};
  static const float signed_ties[] = {-2.0f, -1.0f, -0.5f, 0.0f, 0.5f, 1.0f};
  std::vector<float> v(B * N, nan_f);
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (i64 b = 0; b < B; ++b)
    for (i64 t = segs[b].response_begin; t < segs[b].end; ++t) {
      float& x = v[b * N + t];
      switch (kind) {
        case 0: x = ties[rng() % 6]; break;
        case 1: x = g(rng); break;
        case 2: x = 1.25f; break;
        default: x = signed_ties[rng() % 6]; break;
      }
    }
  return v;
}

/// FAI [B, N] from values: NaN where it is not read (outside the FAI-eligible response tokens).
std::vector<float> mask_fai(std::vector<float> v, i64 B, i64 N, const std::vector<segment>& segs,
                            const rhythm::fai_horizon& h) {
  for (i64 b = 0; b < B; ++b)
    for (i64 t = 0; t < N; ++t)
      if (!segs[b].in_response(t) || !rhythm::fai_eligible(t, segs[b].response_begin, segs[b].end, h))
        v[b * N + t] = nan_f;
  return v;
}

/// Puts NaN or Inf at a few random response positions of v (for the error paths).
void poison(std::mt19937& rng, std::vector<float>& v, i64 N, const std::vector<segment>& segs, int count) {
  for (int c = 0; c < count; ++c) {
    const i64 b = rng() % segs.size();
    if (segs[b].response_length() == 0) continue;
    const i64 t = segs[b].response_begin + static_cast<i64>(rng() % segs[b].response_length());
    v[b * N + t] = (rng() % 2) ? nan_f : -inf_f;
  }
}

// ---- order statistics on plain buffers ------------------------------------------------------------

TEST(HostTokens, OrderKeyIsMonotoneAndInvertible) {
  const float xs[] = {-inf_f, -std::numeric_limits<float>::max(), -1.0f, -std::numeric_limits<float>::denorm_min(),
                      -0.0f,  0.0f, std::numeric_limits<float>::denorm_min(), 1e-30f, 1.0f,
                      std::numeric_limits<float>::max(), inf_f};
  for (std::size_t i = 0; i < std::size(xs); ++i) {
    const float back = tr::float_of_key(tr::order_key(xs[i]));
    EXPECT_EQ(std::memcmp(&back, &xs[i], 4), 0) << i;
    if (i > 0) EXPECT_LT(tr::order_key(xs[i - 1]), tr::order_key(xs[i])) << i;
  }
}

TEST(HostTokens, SelectRankIsTheSortedValue) {
  std::mt19937 rng(11);
  for (int round = 0; round < 300; ++round) {
    const i64 n = 1 + rng() % 40;
    std::vector<float> v(n);
    std::vector<std::uint8_t> m(n);
    for (i64 i = 0; i < n; ++i) {
      v[i] = round % 2 ? static_cast<float>(static_cast<int>(rng() % 5) - 2) : std::normal_distribution<float>()(rng);
      m[i] = rng() % 3 != 0;
    }
    for (const bool masked : {false, true}) {
      std::vector<float> sorted;
      for (i64 i = 0; i < n; ++i)
        if (!masked || m[i]) sorted.push_back(v[i]);
      std::sort(sorted.begin(), sorted.end());
      for (i64 r = 0; r < static_cast<i64>(sorted.size()); ++r)
        EXPECT_EQ(tr::select_rank(v.data(), masked ? m.data() : nullptr, n, r), sorted[r]);
    }
  }
}

TEST(HostTokens, RowFunctionsMatchTheCpu) {
  std::mt19937 rng(12);
  for (int round = 0; round < 400; ++round) {
    const i64 n = rng() % 30;
    std::vector<float> v(n), sort(n);
    std::vector<std::uint8_t> m(n), sel(n), sel_cpu(n);
    const int kind = round % 4;
    for (i64 i = 0; i < n; ++i) {
      v[i] = kind == 0 ? float(rng() % 4) : kind == 1 ? std::normal_distribution<float>()(rng) : kind == 2 ? -0.0f : 7.0f;
      m[i] = rng() % 4 != 0;
    }
    // medians
    const double med = tr::median_of(v.data(), n), med_cpu = rhythm::cpu::median_of(v.data(), n, sort.data());
    EXPECT_EQ(std::memcmp(&med, &med_cpu, 8), 0) << med << " vs " << med_cpu;
    // top-q thresholds and selections
    for (const double q : {0.01, 0.07, 0.3, 0.4, 0.5, 1.0})
      for (const bool bottom : {false, true})
        for (const bool masked : {false, true}) {
          const rhythm::top_q_params p{q, bottom};
          const std::uint8_t* e = masked ? m.data() : nullptr;
          const float th = tr::top_q_threshold(v.data(), e, n, p);
          for (i64 i = 0; i < n; ++i) sel[i] = (!e || e[i]) && tr::selected_by(v[i], th, bottom);
          const float th_cpu = rhythm::cpu::select_top_q(v.data(), e, n, p, sort.data(), sel_cpu.data());
          EXPECT_EQ(std::memcmp(&th, &th_cpu, 4), 0) << th << " vs " << th_cpu;
          EXPECT_TRUE(same_bits(sel, sel_cpu));
        }
  }
}

// ---- the operations against exec::seq -------------------------------------------------------------

/// What the comparisons exercised (so that a test cannot pass by exercising nothing).
struct coverage {
  int errors[8] = {};   // by errc
  int flag_bits[16] = {};  // token_flag bit i set somewhere in a compared output
  int fai_errors = 0, waad_errors = 0;
  void note(const std::string& outcome_text) {
    fai_errors += outcome_text.find("argument 'fai'") != std::string::npos;
    waad_errors += outcome_text.find("argument 'waad'") != std::string::npos;
    for (const auto code : {rhythm::errc::bad_segment, rhythm::errc::non_finite, rhythm::errc::bad_parameter})
      if (outcome_text.rfind(rhythm::to_string(code), 0) == 0) ++errors[static_cast<int>(code)];
  }
  void note_flags(const std::vector<std::uint8_t>& f) {
    for (auto x : f)
      for (int i = 0; i < 4; ++i) flag_bits[i] += x != 0x5a && (x >> i & 1);
  }
};
coverage seen;

/// token_sets through both backends: identical flags and thresholds, or identical errors with
/// both outputs untouched.
template <class W, class F>
void compare_token_sets(const std::vector<float>& waad32, const std::vector<float>& fai32,
                        const std::vector<segment>& segs, i64 B, i64 N, const rhythm::token_params& p,
                        bool with_thresholds, const char* where) {
  const auto waad = convert<W>(waad32);
  const auto fai = convert<F>(fai32);
  const auto wv = rhythm::make_view(waad, B, N);
  const auto fv = rhythm::make_view(fai, B, N);
  const auto sv = rhythm::make_view(segs);
  std::vector<std::uint8_t> flags[2] = {std::vector<std::uint8_t>(B * N, 0x5a), std::vector<std::uint8_t>(B * N, 0x5a)};
  std::vector<float> th[2] = {std::vector<float>(B * 4, -7.0f), std::vector<float>(B * 4, -7.0f)};
  const auto run = [&](auto policy, int o) {
    return outcome([&] {
      if (with_thresholds)
        rhythm::token_sets(policy, wv, fv, sv, rhythm::make_view(flags[o], B, N), rhythm::make_view(th[o], B, 4), p);
      else
        rhythm::token_sets(policy, wv, fv, sv, rhythm::make_view(flags[o], B, N), p);
    });
  };
  const std::string cpu = run(rhythm::exec::seq{}, 0), cuda = run(emulated{}, 1);
  EXPECT_EQ(cpu, cuda) << where;
  seen.note(cpu), seen.note_flags(flags[0]);
  EXPECT_TRUE(same_bits(flags[0], flags[1])) << where;
  EXPECT_TRUE(same_bits(th[0], th[1])) << where;
  if (cpu != "ok") {
    EXPECT_TRUE(std::all_of(flags[1].begin(), flags[1].end(), [](auto x) { return x == 0x5a; })) << where;
  }
}

template <class T>
void compare_top_q(const std::vector<float>& values32, const std::vector<std::uint8_t>* eligible,
                   const std::vector<segment>& segs, i64 B, i64 N, const rhythm::top_q_params& p, const char* where) {
  const auto values = convert<T>(values32);
  const auto vv = rhythm::make_view(values, B, N);
  const auto sv = rhythm::make_view(segs);
  std::vector<std::uint8_t> sel[2] = {std::vector<std::uint8_t>(B * N, 0x5a), std::vector<std::uint8_t>(B * N, 0x5a)};
  std::vector<float> th[2] = {std::vector<float>(B, -7.0f), std::vector<float>(B, -7.0f)};
  const auto run = [&](auto policy, int o) {
    return outcome([&] {
      if (eligible)
        rhythm::top_q(policy, vv, rhythm::make_view(*eligible, B, N), sv, rhythm::make_view(sel[o], B, N),
                      rhythm::make_view(th[o]), p);
      else
        rhythm::top_q(policy, vv, sv, rhythm::make_view(sel[o], B, N), rhythm::make_view(th[o]), p);
    });
  };
  const std::string cpu = run(rhythm::exec::seq{}, 0), cuda = run(emulated{}, 1);
  EXPECT_EQ(cpu, cuda) << where;
  seen.note(cpu);
  EXPECT_TRUE(same_bits(sel[0], sel[1])) << where;
  EXPECT_TRUE(same_bits(th[0], th[1])) << where;
}

template <class T>
void compare_jumps_and_peaks(const std::vector<float>& values32, const std::vector<segment>& segs, i64 B, i64 N,
                             std::mt19937& rng, const char* where) {
  const auto values = convert<T>(values32);
  const auto vv = rhythm::make_view(values, B, N);
  const auto sv = rhythm::make_view(segs);
  std::vector<float> delta[2] = {std::vector<float>(B * N, -7.0f), std::vector<float>(B * N, -7.0f)};
  std::string cpu = outcome([&] { rhythm::waad_jumps(rhythm::exec::seq{}, vv, sv, rhythm::make_view(delta[0], B, N)); });
  std::string cuda = outcome([&] { rhythm::waad_jumps(emulated{}, vv, sv, rhythm::make_view(delta[1], B, N)); });
  EXPECT_EQ(cpu, cuda) << where;
  seen.note(cpu);
  EXPECT_TRUE(same_bits(delta[0], delta[1])) << where;

  std::vector<std::uint8_t> selected(B * N);
  for (auto& s : selected) s = static_cast<std::uint8_t>(rng() % 16);
  for (const auto bits_ : {rhythm::token_flag::any, rhythm::token_flag::preplan, rhythm::token_flag::anchor}) {
    std::vector<std::uint8_t> peaks[2] = {std::vector<std::uint8_t>(B * N, 0x5a), std::vector<std::uint8_t>(B * N, 0x5a)};
    const rhythm::peak_params pp{bits_};
    const auto sel = rhythm::make_view(selected, B, N);
    cpu = outcome([&] { rhythm::local_peaks(rhythm::exec::seq{}, vv, sel, sv, rhythm::make_view(peaks[0], B, N), pp); });
    cuda = outcome([&] { rhythm::local_peaks(emulated{}, vv, sel, sv, rhythm::make_view(peaks[1], B, N), pp); });
    EXPECT_EQ(cpu, cuda) << where;
    EXPECT_TRUE(same_bits(peaks[0], peaks[1])) << where;
  }
}

const rhythm::fai_horizon horizons[] = {{10, 100}, {0, 0}, {1, 4}, {0, rhythm::unbounded_horizon}, {3, 3}};

TEST(HostTokens, TokenSetsMatchTheCpu) {
  seen = {};  // each test counts what it exercised itself (ctest runs them one by one)
  std::mt19937 rng(21);
  int cases = 0;
  for (const i64 B : {1, 3, 8})
    for (const i64 N : {0, 1, 2, 7, 40}) {
      for (int round = 0; round < 6; ++round) {
        const auto segs = make_segments(rng, B, N);
        const auto& h = horizons[(round + N) % std::size(horizons)];
        const auto waad = make_values(rng, B, N, segs, round % 4);
        const auto fai = mask_fai(make_values(rng, B, N, segs, (round + 1) % 4), B, N, segs, h);
        for (const double q : {0.01, 0.4, 1.0})
          for (const bool bottom : {false, true})
            for (const auto mode : {rhythm::dominance_threshold_mode::loc_threshold,
                                    rhythm::dominance_threshold_mode::median_delta}) {
              const rhythm::token_params p{{q, bottom}, {round % 3 == 0 ? 1 : (round % 3 == 1 ? 3 : 1000), mode}, h};
              const std::string where = "B " + std::to_string(B) + " N " + std::to_string(N) + " round " +
                                        std::to_string(round) + " q " + std::to_string(q);
              compare_token_sets<float, float>(waad, fai, segs, B, N, p, true, where.c_str());
              compare_token_sets<float, float>(waad, fai, segs, B, N, p, false, where.c_str());
              ++cases;
            }
        const rhythm::token_params p{};
        compare_token_sets<rhythm::bfloat16, rhythm::half>(waad, fai, segs, B, N, p, true, "bf16/half");
        compare_token_sets<rhythm::half, rhythm::bfloat16>(waad, fai, segs, B, N, p, true, "half/bf16");
      }
    }
  EXPECT_GT(cases, 1000);
  for (int i = 0; i < 4; ++i) EXPECT_GT(seen.flag_bits[i], 100) << "token_flag bit " << i;
}

TEST(HostTokens, TokenSetsLongResponses) {
  std::mt19937 rng(22);
  const i64 B = 4, N = 600;
  for (int round = 0; round < 8; ++round) {
    const auto segs = make_segments(rng, B, N);
    const auto waad = make_values(rng, B, N, segs, round % 4);
    const auto fai = mask_fai(make_values(rng, B, N, segs, (round + 2) % 4), B, N, segs, {10, 100});
    for (const bool bottom : {false, true})
      for (const auto mode : {rhythm::dominance_threshold_mode::loc_threshold, rhythm::dominance_threshold_mode::median_delta})
        compare_token_sets<float, float>(waad, fai, segs, B, N, {{0.4, bottom}, {3, mode}, {10, 100}}, true, "long");
  }
}

TEST(HostTokens, TokenSetsErrorsMatchTheCpu) {
  seen = {};  // each test counts what it exercised itself (ctest runs them one by one)
  std::mt19937 rng(23);
  const i64 B = 6, N = 24;
  for (int round = 0; round < 200; ++round) {
    auto segs = make_segments(rng, B, N);
    const rhythm::fai_horizon h = horizons[round % std::size(horizons)];
    auto waad = make_values(rng, B, N, segs, 0);
    auto fai = mask_fai(make_values(rng, B, N, segs, 1), B, N, segs, h);
    std::vector<float> fai_raw = fai;  // poison eligible and non-eligible positions alike
    switch (round % 5) {
      case 0: poison(rng, waad, N, segs, 2); break;
      case 1: poison(rng, fai_raw, N, segs, 3); break;
      case 2: poison(rng, waad, N, segs, 1), poison(rng, fai_raw, N, segs, 2); break;
      case 3: poison(rng, waad, N, segs, 1), segs[rng() % B].end = N + 1 + rng() % 3; break;
      default: {
        poison(rng, fai_raw, N, segs, 2);
        segment& s = segs[rng() % B];
        s.response_begin = s.end + 1;  // response_begin > end
      }
    }
    compare_token_sets<float, float>(waad, fai_raw, segs, B, N, {{0.4, false}, {3, {}}, h}, round % 2, "errors");
    compare_token_sets<rhythm::half, rhythm::bfloat16>(waad, fai_raw, segs, B, N, {{0.4, true}, {3, {}}, h}, true,
                                                       "errors 16");
  }
  EXPECT_GT(seen.errors[int(rhythm::errc::bad_segment)], 100);
  EXPECT_GT(seen.errors[int(rhythm::errc::non_finite)], 100);
  EXPECT_GT(seen.fai_errors, 50);
  EXPECT_GT(seen.waad_errors, 50);
}

TEST(HostTokens, TokenSetsEdgeCases) {
  // B = 0, empty row, all responses empty, all -0.0, one-token responses, a very large WAAD jump (Inf Delta)
  compare_token_sets<float, float>({}, {}, {}, 0, 5, {}, true, "B = 0");
  compare_token_sets<float, float>({}, {}, {{0, 0, 0}, {0, 0, 0}}, 2, 0, {}, true, "N = 0");
  compare_token_sets<float, float>({}, {}, {{0, 0, 0}, {0, 0, 1}}, 2, 0, {}, true, "N = 0, bad segment");
  const i64 N = 6;
  std::vector<segment> segs = {{0, 6, 6}, {2, 5, 5}, {0, 5, 6}, {0, 0, 6}, {1, 3, 6}};
  const i64 B = static_cast<i64>(segs.size());
  std::vector<float> neg_zero(B * N, -0.0f), big(B * N, 0.0f);
  for (i64 i = 0; i < B * N; ++i) big[i] = (i % 2) ? 3e38f : -3e38f;
  for (const auto mode : {rhythm::dominance_threshold_mode::loc_threshold, rhythm::dominance_threshold_mode::median_delta})
    for (const rhythm::fai_horizon h : {rhythm::fai_horizon{0, 2}, rhythm::fai_horizon{0, 0}}) {
      compare_token_sets<float, float>(neg_zero, neg_zero, segs, B, N, {{0.4, false}, {1, mode}, h}, true, "-0");
      compare_token_sets<float, float>(big, big, segs, B, N, {{0.4, false}, {2, mode}, h}, true, "Inf jumps");
      compare_token_sets<float, float>(big, big, segs, B, N, {{0.5, true}, {2, mode}, h}, true, "Inf jumps, bottom");
    }
}

TEST(HostTokens, TopQMatchesTheCpu) {
  std::mt19937 rng(31);
  for (const i64 B : {0, 1, 5})
    for (const i64 N : {0, 1, 3, 33}) {
      for (int round = 0; round < 8; ++round) {
        const auto segs = make_segments(rng, B, N);
        auto values = make_values(rng, B, N, segs, round % 4);
        std::vector<std::uint8_t> eligible(B * N);
        for (i64 i = 0; i < B * N; ++i) {
          eligible[i] = rng() % 3 ? static_cast<std::uint8_t>(1 + rng() % 200) : 0;
          if (!eligible[i] && rng() % 2) values[i] = nan_f;  // not read where not eligible
        }
        std::vector<float> all_read = values;
        for (auto& x : all_read) if (std::isnan(x)) x = 0.25f;
        for (const double q : {1e-6, 0.07, 0.4, 1.0})
          for (const bool bottom : {false, true}) {
            compare_top_q<float>(values, &eligible, segs, B, N, {q, bottom}, "masked");
            compare_top_q<float>(all_read, nullptr, segs, B, N, {q, bottom}, "unmasked");
          }
        compare_top_q<rhythm::bfloat16>(values, &eligible, segs, B, N, {0.3, false}, "bf16");
        compare_top_q<rhythm::half>(all_read, nullptr, segs, B, N, {0.3, true}, "half");
      }
    }
}

TEST(HostTokens, TopQErrorsMatchTheCpu) {
  std::mt19937 rng(32);
  const i64 B = 5, N = 16;
  for (int round = 0; round < 150; ++round) {
    auto segs = make_segments(rng, B, N);
    auto values = make_values(rng, B, N, segs, 1);
    std::vector<std::uint8_t> eligible(B * N);
    for (auto& e : eligible) e = rng() % 2;
    poison(rng, values, N, segs, 1 + round % 3);
    if (round % 4 == 3) segs[rng() % B].begin = -1;
    compare_top_q<float>(values, &eligible, segs, B, N, {0.4, false}, "masked errors");
    compare_top_q<rhythm::bfloat16>(values, nullptr, segs, B, N, {0.4, true}, "unmasked errors");
  }
}

TEST(HostTokens, JumpsAndPeaksMatchTheCpu) {
  std::mt19937 rng(41);
  for (const i64 B : {0, 1, 4})
    for (const i64 N : {0, 1, 2, 19}) {
      for (int round = 0; round < 8; ++round) {
        auto segs = make_segments(rng, B, N);
        auto values = make_values(rng, B, N, segs, round % 4);
        compare_jumps_and_peaks<float>(values, segs, B, N, rng, "clean");
        compare_jumps_and_peaks<rhythm::half>(values, segs, B, N, rng, "half");
        compare_jumps_and_peaks<rhythm::bfloat16>(values, segs, B, N, rng, "bf16");
        if (B > 0) {
          poison(rng, values, N, segs, 1 + round % 3);
          if (round % 3 == 2) segs[rng() % B].end = N + 1;
          compare_jumps_and_peaks<float>(values, segs, B, N, rng, "errors");
          compare_jumps_and_peaks<rhythm::bfloat16>(values, segs, B, N, rng, "errors bf16");
        }
      }
    }
}

// ---- heads ------------------------------------------------------------------------------------------

void compare_head_groups(const std::vector<float>& spans, i64 B, i64 H, double fraction, const char* where) {
  const auto sv = rhythm::make_view(spans, B, H);
  const rhythm::head_group_params p{fraction};
  std::vector<rhythm::head_role> roles[2] = {std::vector<rhythm::head_role>(B * H, rhythm::head_role{7}),
                                             std::vector<rhythm::head_role>(B * H, rhythm::head_role{7})};
  std::string cpu = outcome([&] { rhythm::head_groups(rhythm::exec::seq{}, sv, rhythm::make_view(roles[0], B, H), p); });
  std::string cuda = outcome([&] { rhythm::head_groups(emulated{}, sv, rhythm::make_view(roles[1], B, H), p); });
  EXPECT_EQ(cpu, cuda) << where;
  seen.note(cpu);
  EXPECT_TRUE(same_bits(roles[0], roles[1])) << where;

  std::vector<std::uint8_t> pooled[2] = {std::vector<std::uint8_t>(H, 7), std::vector<std::uint8_t>(H, 7)};
  cpu = outcome([&] { rhythm::pooled_head_groups(rhythm::exec::seq{}, sv, rhythm::make_view(pooled[0]), p); });
  cuda = outcome([&] { rhythm::pooled_head_groups(emulated{}, sv, rhythm::make_view(pooled[1]), p); });
  EXPECT_EQ(cpu, cuda) << where;
  EXPECT_TRUE(same_bits(pooled[0], pooled[1])) << where;
}

TEST(HostHeads, HeadGroupsMatchTheCpu) {
  seen = {};  // each test counts what it exercised itself (ctest runs them one by one)
  std::mt19937 rng(51);
  for (const i64 B : {0, 1, 3, 9})
    for (const i64 H : {0, 1, 2, 5, 32}) {
      for (int round = 0; round < 6; ++round) {
        std::vector<float> spans(B * H);
        for (auto& s : spans)
          s = round % 3 == 0 ? float(rng() % 4) : round % 3 == 1 ? std::exponential_distribution<float>(0.1f)(rng) : 2.5f;
        for (const double f : {0.01, 0.3, 0.5, 0.7, 1.0}) compare_head_groups(spans, B, H, f, "clean");
        if (B * H > 0) {
          for (int c = 0; c < 1 + round % 3; ++c) spans[rng() % spans.size()] = (rng() % 2) ? nan_f : inf_f;
          compare_head_groups(spans, B, H, 0.3, "errors");
        }
      }
    }
  EXPECT_GT(seen.errors[int(rhythm::errc::non_finite)], 60);
}

void compare_group_mean(const std::vector<float>& per_head, const std::vector<std::uint8_t>& roles, i64 B, i64 H,
                        i64 N, rhythm::head_role group, bool pooled, const char* where) {
  const auto pv = rhythm::make_view(per_head, B, H, N);
  std::vector<float> out[2] = {std::vector<float>(B * N, -7.0f), std::vector<float>(B * N, -7.0f)};
  const auto run = [&](auto policy, int o) {
    return outcome([&] {
      if (pooled) rhythm::group_mean(policy, pv, rhythm::make_view(roles.data(), H), group, rhythm::make_view(out[o], B, N));
      else rhythm::group_mean(policy, pv, rhythm::make_view(roles, B, H), group, rhythm::make_view(out[o], B, N));
    });
  };
  const std::string cpu = run(rhythm::exec::seq{}, 0), cuda = run(emulated{}, 1);
  EXPECT_EQ(cpu, cuda) << where;
  EXPECT_TRUE(same_bits(out[0], out[1])) << where;
}

TEST(HostHeads, GroupMeanMatchesTheCpu) {
  std::mt19937 rng(52);
  int errors = 0;
  for (const i64 B : {0, 1, 4})
    for (const i64 H : {0, 1, 3, 17})
      for (const i64 N : {0, 1, 13}) {
        for (int round = 0; round < 6; ++round) {
          std::vector<float> per_head(B * H * N);
          for (auto& x : per_head) x = std::normal_distribution<float>(0.0f, 3.0f)(rng);
          if (round == 5 && !per_head.empty()) per_head[0] = nan_f;  // not checked: propagates as on the CPU
          std::vector<std::uint8_t> roles(B * H);
          for (auto& r : roles) r = static_cast<std::uint8_t>(rng() % (round < 2 ? 4 : 2));
          for (const auto g : {rhythm::head_role::local, rhythm::head_role::global}) {
            compare_group_mean(per_head, roles, B, H, N, g, false, "per sequence");
            if (B > 0) compare_group_mean(per_head, roles, B, H, N, g, true, "pooled");
            errors += outcome([&] {
              std::vector<float> out(B * N);
              rhythm::group_mean(emulated{}, rhythm::make_view(per_head, B, H, N), rhythm::make_view(roles, B, H), g,
                                 rhythm::make_view(out, B, N));
            }) != "ok";
          }
        }
      }
  EXPECT_GT(errors, 20);  // the empty-group path was exercised
}

}  // namespace
