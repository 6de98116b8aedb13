#pragma once
/// Which layers to read attention from: `count` layers evenly spaced over the middle third
/// [floor(L/3), floor(2L/3)], rounded to the nearest layer, duplicates removed (36 layers, 5 -> 12,15,18,21,24).
#include <cmath>
#include <cstdint>
#include <vector>

#include "../core/checks.hpp"

namespace rhythm {

inline std::vector<std::int64_t> middle_third_layers(std::int64_t layers, std::int64_t count = 5) {
  detail::expects(layers >= 1, errc::bad_parameter, "layers", ">= 1", layers);
  detail::expects(count >= 1, errc::bad_parameter, "count", ">= 1", count);
  const std::int64_t lo = layers / 3, hi = (2 * layers) / 3;
  std::vector<std::int64_t> out;
  for (std::int64_t i = 0; i < count; ++i) {
    const double x = count == 1 ? 0.5 * double(lo + hi) : double(lo) + double(i) * double(hi - lo) / double(count - 1);
    const std::int64_t l = std::min<std::int64_t>(layers - 1, std::llround(x));
    if (out.empty() || out.back() != l) out.push_back(l);
  }
  return out;
}

}  // namespace rhythm
