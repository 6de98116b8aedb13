// Consumer smoke test: signals of a uniform causal map through the installed headers.
#include <cstdio>
#include <vector>

#include <rhythm/rhythm.hpp>

int main() {
  const std::int64_t N = 16;
  std::vector<float> maps(N * N, 0.0f);
  for (std::int64_t t = 0; t < N; ++t)
    for (std::int64_t s = 0; s <= t; ++s) maps[t * N + s] = 1.0f / float(t + 1);
  std::vector<rhythm::segment> segs{{0, 4, N}};
  std::vector<float> span(1), waad(N), fai(N);
  rhythm::head_signals_from_maps(rhythm::exec::par{2}, rhythm::make_view(maps, 1, 1, N, N), rhythm::make_view(segs),
                                 rhythm::make_view(span, 1, 1), rhythm::make_view(waad, 1, 1, N),
                                 rhythm::make_view(fai, 1, 1, N));
  // Row t of a uniform map has WAAD = mean over s of min(t - s, 10); at t = 4: (4+3+2+1+0)/5 = 2.
  const bool ok = waad[4] > 1.9999f && waad[4] < 2.0001f;
  std::printf("rhythm %s consumer: waad[4] = %g (%s)\n", rhythm::version_string, waad[4], ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
