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
  auto A = rhythm::make_view(maps, std::array<std::int64_t, 4>{B, H, N, N});
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
  std::vector<std::uint8_t> roles(B * H);
  const rhythm::signal_params params{.window = 10, .horizon_lo = 4, .horizon_hi = 100};  // short trace: H_lo = 4
  const auto policy = rhythm::exec::par{2};
  auto BH = std::array<std::int64_t, 2>{B, H};
  auto BHN = std::array<std::int64_t, 3>{B, H, N};
  auto BN = std::array<std::int64_t, 2>{B, N};
  rhythm::head_signals_from_maps(policy, A, rhythm::make_view(segments), rhythm::make_view(span, BH),
                                 rhythm::make_view(waad, BHN), rhythm::make_view(fai, BHN), params);
  rhythm::head_groups(policy, rhythm::make_view(span, BH), rhythm::make_view(roles, BH), {.fraction = 0.3});
  rhythm::group_mean(policy, rhythm::make_view(waad, BHN), rhythm::make_view(roles, BH), rhythm::head_role::local,
                     rhythm::make_view(group_waad, BN));
  rhythm::group_mean(policy, rhythm::make_view(fai, BHN), rhythm::make_view(roles, BH), rhythm::head_role::global,
                     rhythm::make_view(group_fai, BN));

  std::printf("rhythm %s quickstart: %lld tokens, response from %lld, W=%lld, H_lo=%lld, H_hi=%lld\n\n",
              rhythm::version_string, (long long)N, (long long)seg.response_begin, (long long)params.window,
              (long long)params.horizon_lo, (long long)params.horizon_hi);
  for (std::int64_t h = 0; h < H; ++h)
    std::printf("head %lld  span %6.2f  %s%s\n", (long long)h, span[h], roles[h] & rhythm::head_role::local ? "local " : "",
                roles[h] & rhythm::head_role::global ? "global" : "");
  std::printf("\n  t  tok   WAAD(local)  FAI(global)\n");
  for (std::int64_t t = seg.response_begin; t < N; ++t) {
    const bool eligible = rhythm::fai_eligible(t, seg.response_begin, seg.end, params);
    std::printf("%3lld   %c   %9.3f   ", (long long)t, text[t], group_waad[t]);
    if (eligible) std::printf("%9.4f\n", group_fai[t]);
    else std::printf("      -\n");
  }
}
