// Bit-identity probe: the same cases through the pipeline of an earlier commit's API (-DOLD, as at
// 058e61c) and of this tree's; prints one FNV-1a hash per output per case. scripts/compare-results/run.
#include <rhythm/rhythm.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

using i64 = std::int64_t;

struct hasher {
  std::uint64_t h = 1469598103934665603ull;
  template <class T>
  void add(const T& x) {
    unsigned char b[sizeof(T)];
    std::memcpy(b, &x, sizeof(T));
    for (unsigned char c : b) h = (h ^ c) * 1099511628211ull;
  }
};
template <class V>
std::uint64_t hash_of(const V& v) {
  hasher h;
  if constexpr (V::rank() == 1)
    for (i64 i = 0; i < v.extent(0); ++i) h.add(v(i));
  else if constexpr (V::rank() == 2)
    for (i64 i = 0; i < v.extent(0); ++i)
      for (i64 j = 0; j < v.extent(1); ++j) h.add(v(i, j));
  else
    for (i64 i = 0; i < v.extent(0); ++i)
      for (i64 j = 0; j < v.extent(1); ++j)
        for (i64 k = 0; k < v.extent(2); ++k) h.add(v(i, j, k));
  return h.h;
}

struct data {
  i64 B = 8, H = 6, Hkv = 3, N = 150, d = 16;
  std::vector<rhythm::segment> segs;
  std::vector<float> q, k, maps, rewards, entropies;
  std::vector<rhythm::bfloat16> qb, kb;
  std::vector<rhythm::half> mh;
  std::vector<i64> ids;
  explicit data(unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> g(0.0f, 1.3f);
    std::exponential_distribution<double> e(1.0);
    for (i64 b = 0; b < B; ++b) {
      const i64 left = rng() % 20, right = rng() % 20, len = N - left - right, prompt = rng() % (len / 2);
      segs.push_back({left, left + prompt, left + len});
      rewards.push_back(float(rng() % 2));
      ids.push_back(b / 4);
    }
    segs[3] = {5, 60, 60};  // an empty response
    for (i64 i = 0; i < B * H * N * d; ++i) q.push_back(g(rng));
    for (i64 i = 0; i < B * Hkv * N * d; ++i) k.push_back(g(rng));
    for (float x : q) qb.push_back(rhythm::bfloat16(x));
    for (float x : k) kb.push_back(rhythm::bfloat16(x));
    maps.assign(B * H * N * N, 0.0f);
    for (i64 b = 0; b < B; ++b)
      for (i64 h = 0; h < H; ++h)
        for (i64 t = segs[b].begin; t < segs[b].end; ++t) {
          double sum = 0;
          std::vector<double> w;
          for (i64 s = segs[b].begin; s <= t; ++s) w.push_back(e(rng) * (rng() % 20 == 0 ? 40.0 : 1.0)), sum += w.back();
          for (i64 s = segs[b].begin; s <= t; ++s) maps[((b * H + h) * N + t) * N + s] = float(w[s - segs[b].begin] / sum);
        }
    for (float x : maps) mh.push_back(rhythm::half(x));
    for (i64 i = 0; i < B * N; ++i) entropies.push_back(float(rng() % 64) / 16.0f);
  }
};

struct config {
  i64 W, lo, hi;
  double f, q;
  bool pooled, bottom, median_delta, dr_grpo;
  rhythm::sign_mode sign;
  bool mean_preserving;
  double floor;
};

rhythm::pipeline_params params_of(const config& c) {
  rhythm::pipeline_params p;
#ifdef OLD
  p.signals = {.window = c.W, .horizon_lo = c.lo, .horizon_hi = c.hi};
  p.tokens = {.q = c.q, .bottom = c.bottom, .dominance_window = 3,
              .dominance_threshold = c.median_delta ? rhythm::dominance_threshold_mode::median_delta
                                                    : rhythm::dominance_threshold_mode::loc_threshold};
#else
  p.signals = {.window = c.W, .horizon = {.lo = c.lo, .hi = c.hi}};
  p.selection = {.q = c.q, .bottom = c.bottom};
  p.dominance = {.window = 3, .threshold = c.median_delta ? rhythm::dominance_threshold_mode::median_delta
                                                           : rhythm::dominance_threshold_mode::loc_threshold};
#endif
  p.groups = {.fraction = c.f};
  p.pooled_groups = c.pooled;
  p.advantages.std_normalise = !c.dr_grpo;
  p.shaping.sign = c.sign;
  p.shaping.mean_preserving = c.mean_preserving;
  p.shaping.floor = c.floor;
  return p;
}

template <class P, class Run>
void report(const char* what, rhythm::credit_pipeline& pipe, Run run, const data& x) {
  std::vector<float> gamma(x.B * x.N, -7.0f), shaped(x.B * x.N, -7.0f);
  const auto gv = rhythm::make_view(gamma, std::array<i64, 2>{x.B, x.N});
  const auto sv = rhythm::make_view(shaped, std::array<i64, 2>{x.B, x.N});
  const auto d = run(gv, sv);
  hasher dh;
  dh.add(d.response_tokens), dh.add(d.preplan), dh.add(d.anchor), dh.add(d.dominated), dh.add(d.intro);
  dh.add(d.mean_gamma), dh.add(d.amplified_share);
  std::printf("%s gamma %016llx shaped %016llx flags %016llx waad %016llx fai %016llx spans %016llx roles %016llx "
              "adv %016llx headwaad %016llx headfai %016llx diag %016llx\n",
              what, (unsigned long long)hash_of(gv), (unsigned long long)hash_of(sv),
              (unsigned long long)hash_of(pipe.flags()), (unsigned long long)hash_of(pipe.waad()),
              (unsigned long long)hash_of(pipe.fai()), (unsigned long long)hash_of(pipe.head_spans()),
              (unsigned long long)hash_of(pipe.head_roles()), (unsigned long long)hash_of(pipe.advantages()),
              (unsigned long long)hash_of(pipe.head_waad()), (unsigned long long)hash_of(pipe.head_fai()),
              (unsigned long long)dh.h);
}

template <class P>
void cases(P policy, const char* pname) {
  const config configs[] = {
      {10, 10, 100, 0.3, 0.4, false, false, false, false, rhythm::sign_mode::both, false, 0.0},
      {4, 0, 0, 0.5, 0.2, true, false, true, true, rhythm::sign_mode::positive, true, 0.0},
      {20, 3, rhythm::unbounded_horizon, 0.7, 1.0, false, true, false, false, rhythm::sign_mode::negative, false, 1.2},
      {1, 25, 40, 0.1, 0.05, true, false, true, false, rhythm::sign_mode::both, true, 0.5},
  };
  namespace sh = rhythm::shaping;
  int ci = 0;
  for (unsigned seed : {1u, 2u})
    for (const auto& c : configs) {
      const data x(seed);
      const auto p = params_of(c);
      const auto qv = rhythm::make_view(x.q, std::array<i64, 4>{x.B, x.H, x.N, x.d});
      const auto kv = rhythm::make_view(x.k, std::array<i64, 4>{x.B, x.Hkv, x.N, x.d});
      const auto qbv = rhythm::make_view(x.qb, std::array<i64, 4>{x.B, x.H, x.N, x.d});
      const auto kbv = rhythm::make_view(x.kb, std::array<i64, 4>{x.B, x.Hkv, x.N, x.d});
      const auto mv = rhythm::make_view(x.maps, std::array<i64, 4>{x.B, x.H, x.N, x.N});
      const auto mhv = rhythm::make_view(x.mh, std::array<i64, 4>{x.B, x.H, x.N, x.N});
      const auto ev = rhythm::make_view(x.entropies, std::array<i64, 2>{x.B, x.N});
      const auto s = rhythm::make_view(x.segs);
      const auto r = rhythm::make_view(x.rewards);
      const auto g = rhythm::make_view(x.ids);
      rhythm::credit_pipeline pipe;
      char name[128];
      const auto each = [&](const char* policy_name, const auto& shaping) {
        std::snprintf(name, sizeof name, "%s seed%u cfg%d %s qk32", pname, seed, ci, policy_name);
        report<P>(name, pipe, [&](auto gv, auto sv) { return pipe.run_from_qk(policy, qv, kv, s, r, g, shaping, gv, sv, p); }, x);
        std::snprintf(name, sizeof name, "%s seed%u cfg%d %s qkbf16", pname, seed, ci, policy_name);
        report<P>(name, pipe, [&](auto gv, auto sv) { return pipe.run_from_qk(policy, qbv, kbv, s, r, g, shaping, gv, sv, p); }, x);
        std::snprintf(name, sizeof name, "%s seed%u cfg%d %s maps32", pname, seed, ci, policy_name);
        report<P>(name, pipe, [&](auto gv, auto sv) { return pipe.run_from_maps(policy, mv, s, r, g, shaping, gv, sv, p); }, x);
        std::snprintf(name, sizeof name, "%s seed%u cfg%d %s mapshalf", pname, seed, ci, policy_name);
        report<P>(name, pipe, [&](auto gv, auto sv) { return pipe.run_from_maps(policy, mhv, s, r, g, shaping, gv, sv, p); }, x);
      };
      each("uniform", sh::uniform{});
      each("local_chunk", sh::local_chunk{.gamma_amp = 1.7});
      each("global_anchor", sh::global_anchor{.gamma_amp = 1.3});
      each("coupled", sh::coupled_rhythm{.gamma_amp = 1.5, .alpha = 0.3});
      // entropy: top-q / bottom-q of the token entropies
      for (bool bottom : {false, true}) {
#ifdef OLD
        const sh::entropy e{.gamma_amp = 1.4, .q = 0.3};
        auto pe = p;
        pe.shaping.bottom = bottom;
#else
        const sh::entropy e{.gamma_amp = 1.4, .selection = {.q = 0.3, .bottom = bottom}};
        const auto pe = p;
#endif
        std::snprintf(name, sizeof name, "%s seed%u cfg%d entropy%d", pname, seed, ci, int(bottom));
        report<P>(name, pipe, [&](auto gv, auto sv) { return pipe.run_from_qk(policy, qv, kv, s, r, g, ev, e, gv, sv, pe); }, x);
      }
      ++ci;
    }
}

int main() {
  cases(rhythm::exec::seq{}, "seq");
  cases(rhythm::exec::par{3}, "par3");
}
