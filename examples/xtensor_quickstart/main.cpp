// rhythm with xtensor: attention maps built with xtensor expressions -> per-head signals (returned
// as xtensors) -> head groups and group WAAD / FAI written into xtensors -> saved to .npy and read
// back. The response is written in chunks of 8 tokens, each opened by an "anchor": heads 0-1 attend
// within the query's own chunk (near-sighted), heads 2-3 to the anchors wherever they are (far-sighted).
#include <cstdio>
#include <filesystem>

#include <xtensor/xbuilder.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include <rhythm/xtensor.hpp>

int main() {
  const std::size_t B = 1, H = 4, N = 48, prompt = 12;
  const ::xt::xarray<double> pos = ::xt::arange<double>(double(N));
  const auto t = ::xt::view(pos, ::xt::all(), ::xt::newaxis());  // query position, a column
  const auto s = ::xt::view(pos, ::xt::newaxis(), ::xt::all());  // key position, a row
  const auto causal = ::xt::cast<double>(s <= t);
  const double p0 = double(prompt);
  const auto chunk_start = ::xt::where(t >= p0, p0 + 8.0 * ::xt::floor((t - p0) / 8.0), 0.0);  // of the query's chunk
  const auto own_chunk = ::xt::cast<double>(s >= chunk_start);
  const ::xt::xarray<double> anchor = ::xt::cast<double>(s >= p0 && ::xt::equal(::xt::fmod(s - p0, 8.0), 0.0));

  ::xt::xtensor<float, 4> maps = ::xt::zeros<float>({B, H, N, N});  // [B, H, N, N]
  for (std::size_t h = 0; h < H; ++h) {
    ::xt::xarray<double> w;
    if (h < 2) w = causal * (0.05 + 3.95 * own_chunk) * ::xt::exp(-0.2 * double(h) * (t - s));
    else w = causal * (0.1 + (8.0 + double(h)) * anchor);
    const ::xt::xarray<double> row_sums = ::xt::sum(w, {1}, ::xt::keep_dims);  // [N, 1]
    ::xt::view(maps, 0, h) = ::xt::cast<float>(w / row_sums);                  // rows sum to 1
  }
  const std::vector<rhythm::segment> segments{{0, prompt, N}};
  const rhythm::signal_params params{.window = 10, .horizon = {.lo = 4, .hi = 100}};
  const auto policy = rhythm::exec::par{2};

  const rhythm::xt::head_signals sig = rhythm::xt::head_signals_from_maps(policy, maps, segments, params);
  ::xt::xtensor<std::uint8_t, 2> roles = ::xt::zeros<std::uint8_t>({B, H});
  rhythm::head_groups(policy, rhythm::xt::view(sig.span), rhythm::xt::view(roles), {.fraction = 0.3});
  ::xt::xtensor<float, 2> local_waad = ::xt::zeros<float>({B, N}), global_fai = ::xt::zeros<float>({B, N});
  rhythm::group_mean(policy, rhythm::xt::view(sig.waad), rhythm::xt::view(roles), rhythm::head_role::local,
                     rhythm::xt::view(local_waad));
  rhythm::group_mean(policy, rhythm::xt::view(sig.fai), rhythm::xt::view(roles), rhythm::head_role::global,
                     rhythm::xt::view(global_fai));

  // Save the maps and the group signals as .npy (numpy.load reads them), then read the maps back.
  const auto dir = std::filesystem::temp_directory_path() / "rhythm_xtensor_quickstart";
  std::filesystem::create_directories(dir);
  rhythm::xt::save_npy((dir / "maps.npy").string(), maps);
  rhythm::xt::save_npy((dir / "local_waad.npy").string(), local_waad);
  rhythm::xt::save_npy((dir / "global_fai.npy").string(), global_fai);
  const ::xt::xarray<float> reloaded = rhythm::xt::load_npy<float>((dir / "maps.npy").string());
  const auto again = rhythm::xt::head_signals_from_maps(policy, reloaded, segments, params);

  std::printf("rhythm %s with xtensor: B=%zu H=%zu N=%zu; wrote %s/{maps,local_waad,global_fai}.npy\n",
              rhythm::version_string, B, H, N, dir.c_str());
  std::printf("reloaded maps %s, signals from them %s\n\n", reloaded == maps ? "equal" : "DIFFER",
              again.waad == sig.waad && again.fai == sig.fai ? "equal" : "DIFFER");
  for (std::size_t h = 0; h < H; ++h)
    std::printf("head %zu  span %6.2f  %s%s\n", h, sig.span(0, h),
                roles(0, h) & rhythm::bits(rhythm::head_role::local) ? "local " : "",
                roles(0, h) & rhythm::bits(rhythm::head_role::global) ? "global" : "");
  std::printf("\n  t  anchor  WAAD(local)  FAI(global)\n");
  for (std::size_t i = prompt; i < N; ++i) {
    std::printf("%3zu  %s  %9.3f  ", i, anchor(0, i) > 0 ? "  *   " : "      ", local_waad(0, i));
    if (rhythm::fai_eligible(std::int64_t(i), std::int64_t(prompt), std::int64_t(N), params.horizon))
      std::printf("%9.4f\n", global_fai(0, i));
    else
      std::printf("      -\n");
  }
}
