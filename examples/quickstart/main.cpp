// rhythm quickstart: attention maps in a std::vector -> per-head signals -> head groups ->
// group WAAD and FAI per token, printed. The maps are a small hand-made example: four heads over
// a 48-token trace whose response is written in chunks; near-sighted heads attend within the
// current chunk (a sawtooth of attention distance), far-sighted heads attend to the chunk openers.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <rhythm/rhythm.hpp>

int main() {
  const std::string text = "Q:3,7,9->30?|A:7*3=21,21+9=30;check 7*3+9=30 ok";
  const std::int64_t B = 1, H = 4, N = static_cast<std::int64_t>(text.size());
  const rhythm::segment seg{0, 13, N};  // prompt "Q:3,7,9->30?|", then the response
  std::vector<float> maps(B * H * N * N, 0.0f);
  auto A = rhythm::make_view(maps, B, H, N, N);
  auto chunk_start = [&](std::int64_t t) {  // a chunk opens after ':', ',', ';' and ' '
    while (t > seg.response_begin && std::string(":,; ").find(text[t - 1]) == std::string::npos) --t;
    return t;
  };
  for (std::int64_t h = 0; h < H; ++h)
    for (std::int64_t t = 0; t < N; ++t) {
      std::vector<double> w(t + 1);
      for (std::int64_t s = 0; s <= t; ++s) {
        if (h < 2) w[s] = (s >= chunk_start(t) ? 4.0 : 0.05) * std::exp(-0.2 * double(h) * double(t - s));
        else w[s] = (s == chunk_start(s) && s >= seg.response_begin ? 6.0 : 0.2) + (s < 13 ? 0.5 * h : 0.0);
      }
      double z = 0;
      for (double x : w) z += x;
      for (std::int64_t s = 0; s <= t; ++s) A(0, h, t, s) = static_cast<float>(w[s] / z);
    }

  std::vector<rhythm::segment> segments{seg};
  std::vector<float> span(B * H), waad(B * H * N), fai(B * H * N), group_waad(B * N), group_fai(B * N);
  std::vector<rhythm::head_role> roles(B * H);
  const rhythm::signal_params params{.window = 10, .horizon = {.lo = 4, .hi = 100}};  // short trace: H_lo = 4
  const auto policy = rhythm::exec::par{2};
  rhythm::head_signals_from_maps(policy, A, rhythm::make_view(segments), rhythm::make_view(span, B, H),
                                 rhythm::make_view(waad, B, H, N), rhythm::make_view(fai, B, H, N), params);
  rhythm::head_groups(policy, rhythm::make_view(span, B, H), rhythm::make_view(roles, B, H), {.fraction = 0.3});
  rhythm::group_mean(policy, rhythm::make_view(waad, B, H, N), rhythm::make_view(roles, B, H), rhythm::head_role::local,
                     rhythm::make_view(group_waad, B, N));
  rhythm::group_mean(policy, rhythm::make_view(fai, B, H, N), rhythm::make_view(roles, B, H), rhythm::head_role::global,
                     rhythm::make_view(group_fai, B, N));

  std::printf("rhythm %s quickstart: %lld tokens, response from %lld, W=%lld, H_lo=%lld, H_hi=%lld\n\n",
              rhythm::version_string, (long long)N, (long long)seg.response_begin, (long long)params.window,
              (long long)params.horizon.lo, (long long)params.horizon.hi);
  for (std::int64_t h = 0; h < H; ++h)
    std::printf("head %lld  span %6.2f  %s%s\n", (long long)h, span[h],
                any(roles[h] & rhythm::head_role::local) ? "local " : "",
                any(roles[h] & rhythm::head_role::global) ? "global" : "");
  std::printf("\n  t  tok   WAAD(local)  FAI(global)\n");
  for (std::int64_t t = seg.response_begin; t < N; ++t) {
    const bool eligible = rhythm::fai_eligible(t, seg.response_begin, seg.end, params.horizon);
    std::printf("%3lld   %c   %9.3f   ", (long long)t, text[t], group_waad[t]);
    if (eligible) std::printf("%9.4f\n", group_fai[t]);
    else std::printf("      -\n");
  }
}
