// Error messages of bad parameters through an earlier commit's API (-DOLD, as at 058e61c) and this tree's.
#include <rhythm/rhythm.hpp>

#include <cstdio>
#include <vector>

using i64 = std::int64_t;
template <class F>
void show(const char* what, F f) {
  try {
    f();
    std::printf("%-28s no error\n", what);
  } catch (const rhythm::error& e) {
    std::printf("%-28s [%d] %s\n", what, int(e.code()), e.what());
  }
}

int main() {
  const i64 B = 2, H = 2, N = 8;
  std::vector<float> maps(B * H * N * N, 0.0f), gamma(B * N), shaped(B * N), rewards{1, 0}, w(B * N, 1.0f),
      f(B * N, 1.0f), thr(B), adv{1, -1};
  for (i64 i = 0; i < B * H * N; ++i) maps[i * N] = 1.0f;
  std::vector<i64> ids{0, 0};
  std::vector<rhythm::segment> segs{{0, 2, 8}, {0, 3, 8}};
  std::vector<std::uint8_t> sel(B * N), flags8(B * N, 3);
  const auto m = rhythm::make_view(maps, std::array<i64, 4>{B, H, N, N});
  const auto s = rhythm::make_view(segs);
  const auto g2 = rhythm::make_view(gamma, std::array<i64, 2>{B, N});
  const auto s2 = rhythm::make_view(shaped, std::array<i64, 2>{B, N});
  const auto wv = rhythm::make_view(w, std::array<i64, 2>{B, N});
  const auto fv = rhythm::make_view(f, std::array<i64, 2>{B, N});
  const auto r = rhythm::make_view(rewards);
  const auto g = rhythm::make_view(ids);
  rhythm::credit_pipeline pipe;
  namespace sh = rhythm::shaping;
  const auto run = [&](const rhythm::pipeline_params& p) {
    pipe.run_from_maps(rhythm::exec::seq{}, m, s, r, g, sh::coupled_rhythm{}, g2, s2, p);
  };
  rhythm::pipeline_params p;
  p = {}; p.signals.window = 0; show("pipeline window 0", [&] { run(p); });
#ifdef OLD
  p = {}; p.signals.horizon_lo = 20; p.signals.horizon_hi = 5; show("pipeline horizon lo>hi", [&] { run(p); });
  p = {}; p.tokens.q = 0; show("pipeline q 0", [&] { run(p); });
  p = {}; p.tokens.dominance_window = 0; show("pipeline dominance 0", [&] { run(p); });
#else
  p = {}; p.signals.horizon = {20, 5}; show("pipeline horizon lo>hi", [&] { run(p); });
  p = {}; p.selection.q = 0; show("pipeline q 0", [&] { run(p); });
  p = {}; p.dominance.window = 0; show("pipeline dominance 0", [&] { run(p); });
#endif
  p = {}; p.groups.fraction = 0; show("pipeline fraction 0", [&] { run(p); });
  p = {}; p.advantages.epsilon = 0; show("pipeline epsilon 0", [&] { run(p); });
  p = {}; p.shaping.floor = -1; show("pipeline floor -1", [&] { run(p); });
  p = {}; p.shaping.floor = 1e300; show("pipeline floor 1e300", [&] { run(p); });
  p = {}; p.shaping.sign = rhythm::sign_mode(7); show("pipeline sign 7", [&] { run(p); });
  show("pipeline alpha 2", [&] { pipe.run_from_maps(rhythm::exec::seq{}, m, s, r, g, sh::coupled_rhythm{.alpha = 2}, g2, s2, {}); });
  show("pipeline gamma_amp 0.5", [&] { pipe.run_from_maps(rhythm::exec::seq{}, m, s, r, g, sh::local_chunk{.gamma_amp = 0.5}, g2, s2, {}); });
  show("pipeline gamma_amp 1e300", [&] { pipe.run_from_maps(rhythm::exec::seq{}, m, s, r, g, sh::local_chunk{.gamma_amp = 1e300}, g2, s2, {}); });
  show("pipeline random q 0", [&] { pipe.run_from_maps(rhythm::exec::seq{}, m, s, r, g, sh::random{.q = 0}, g2, s2, {}); });
  const auto ev = rhythm::make_view(f, std::array<i64, 2>{B, N});
#ifdef OLD
  show("pipeline entropy q 0", [&] { pipe.run_from_maps(rhythm::exec::seq{}, m, s, r, g, ev, sh::entropy{.q = 0}, g2, s2, {}); });
  rhythm::token_params tp; tp.q = 0;
  show("token_sets q 0", [&] { rhythm::token_sets(rhythm::exec::seq{}, wv, fv, s, rhythm::make_view(flags8, std::array<i64, 2>{B, N}), tp); });
  tp = {}; tp.dominance_window = 0;
  show("token_sets dominance 0", [&] { rhythm::token_sets(rhythm::exec::seq{}, wv, fv, s, rhythm::make_view(flags8, std::array<i64, 2>{B, N}), tp); });
  tp = {}; tp.signals.horizon_lo = -1;
  show("token_sets horizon lo -1", [&] { rhythm::token_sets(rhythm::exec::seq{}, wv, fv, s, rhythm::make_view(flags8, std::array<i64, 2>{B, N}), tp); });
  show("top_q q 0", [&] { rhythm::top_q(rhythm::exec::seq{}, wv, s, rhythm::make_view(sel, std::array<i64, 2>{B, N}), rhythm::make_view(thr), {.q = 0}); });
  rhythm::rhythm_stats_params sp; sp.tokens.q = 0;
  show("stats q 0", [&] { (void)rhythm::rhythm_statistics(rhythm::exec::seq{}, wv, fv, s, sp); });
  show("signals horizon lo -1", [&] { std::vector<float> a(B * H), b(B * H * N), c(B * H * N);
    rhythm::head_signals_from_maps(rhythm::exec::seq{}, m, s, rhythm::make_view(a, std::array<i64, 2>{B, H}), rhythm::make_view(b, std::array<i64, 3>{B, H, N}), rhythm::make_view(c, std::array<i64, 3>{B, H, N}), {.horizon_lo = -1}); });
#else
  show("pipeline entropy q 0", [&] { pipe.run_from_maps(rhythm::exec::seq{}, m, s, r, g, ev, sh::entropy{.selection = {.q = 0}}, g2, s2, {}); });
  std::vector<rhythm::token_flag> fl(B * N);
  rhythm::token_params tp; tp.selection.q = 0;
  show("token_sets q 0", [&] { rhythm::token_sets(rhythm::exec::seq{}, wv, fv, s, rhythm::make_view(fl, B, N), tp); });
  tp = {}; tp.dominance.window = 0;
  show("token_sets dominance 0", [&] { rhythm::token_sets(rhythm::exec::seq{}, wv, fv, s, rhythm::make_view(fl, B, N), tp); });
  tp = {}; tp.horizon.lo = -1;
  show("token_sets horizon lo -1", [&] { rhythm::token_sets(rhythm::exec::seq{}, wv, fv, s, rhythm::make_view(fl, B, N), tp); });
  show("top_q q 0", [&] { rhythm::top_q(rhythm::exec::seq{}, wv, s, rhythm::make_view(sel, B, N), rhythm::make_view(thr), {.q = 0}); });
  rhythm::rhythm_stats_params sp; sp.selection.q = 0;
  show("stats q 0", [&] { (void)rhythm::rhythm_statistics(rhythm::exec::seq{}, wv, fv, s, sp); });
  show("signals horizon lo -1", [&] { std::vector<float> a(B * H), b(B * H * N), c(B * H * N);
    rhythm::head_signals_from_maps(rhythm::exec::seq{}, m, s, rhythm::make_view(a, B, H), rhythm::make_view(b, B, H, N), rhythm::make_view(c, B, H, N), {.horizon = {.lo = -1}}); });
#endif
}
