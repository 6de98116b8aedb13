#pragma once
/// Internals shared by the credit stage: shape, output and aliasing checks, the per-response
/// top-q selection of DESIGN §3, and the seeded draw without replacement of the `random` control.
///
/// Everything here lives in rhythm::detail::credit and may change without notice.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <numeric>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "../tokens/common.hpp"
#include "../core/dtypes.hpp"
#include "../core/segments.hpp"
#include "../core/tensor.hpp"
#include "../error.hpp"

namespace rhythm::detail::credit {

/// Element i of a rank-1 view and element (i, j) of a rank-2 view (raw, not widened).
template <strided_tensor V>
decltype(auto) at(const V& v, std::int64_t i) {
  return v.data_handle()[i * v.stride(0)];
}
template <strided_tensor V>
decltype(auto) at(const V& v, std::int64_t i, std::int64_t j) {
  return v.data_handle()[i * v.stride(0) + j * v.stride(1)];
}

/// Element widened to float (float, bfloat16, half).
template <strided_tensor V, class... I>
float value_at(const V& v, I... idx) {
  return to_float(at(v, static_cast<std::int64_t>(idx)...));
}

/// Throws errc::shape_mismatch unless v has the extents `want` ("[B, N] = [2, 7]" in the message).
template <strided_tensor V>
void require_extents(const V& v, const char* name, std::initializer_list<std::int64_t> want, const char* layout) {
  bool ok = true;
  std::size_t r = 0;
  for (auto e : want) ok &= v.extent(r++) == e;
  if (ok) return;
  std::string w = "[";
  r = 0;
  for (auto e : want) w += (r++ ? ", " : "") + std::to_string(e);
  fail(errc::shape_mismatch, name, std::string(layout) + " = " + w + "]", shape_string(v));
}

/// Compile-time: `V` is a writable view of `T`; run time: no stride 0 over an extent > 1.
template <class T, strided_tensor V>
void require_output(const V& v, const char* name) {
  static_assert(std::is_same_v<element_of<V>, T>, "rhythm: this output must be a writable (non-const) view of its type");
  for (std::size_t r = 0; r < V::rank(); ++r)
    require(v.extent(r) <= 1 || v.stride(r) != 0, errc::bad_stride, name,
            "non-zero strides (an output element may not be written twice)", "stride 0 on dimension " + std::to_string(r));
}

/// Throws errc::aliasing if the output overlaps any of the inputs.
template <strided_tensor Out, strided_tensor... Inputs>
void require_disjoint(const Out& out, const char* name, const Inputs&... inputs) {
  require(!(may_overlap(out, inputs) || ...), errc::aliasing, name, "memory disjoint from the inputs",
          "overlapping memory");
}

/// Throws errc::non_finite naming `name` and the position.
[[noreturn]] inline void fail_non_finite(const char* name, double v, const std::string& where) {
  fail(errc::non_finite, name, "finite values", std::to_string(v) + " at " + where);
}

/// Throws errc::non_finite unless every response position of the [B, N] view `v` is finite.
template <strided_tensor V, strided_tensor S>
void require_finite_in_responses(const V& v, const S& segments, const char* name) {
  for (std::int64_t b = 0; b < v.extent(0); ++b) {
    const segment g = segment_at(segments, b);
    for (std::int64_t t = g.response_begin; t < g.end; ++t) {
      const float x = value_at(v, b, t);
      if (!std::isfinite(x))
        fail_non_finite(name, x, "sequence " + std::to_string(b) + ", position " + std::to_string(t));
    }
  }
}

/// Checks shared by the policies: gamma_amp >= 1 (finite), q in (0, 1], alpha in [0, 1].
inline void check_gamma_amp(double gamma_amp) {
  require(gamma_amp >= 1.0 && gamma_amp <= std::numeric_limits<double>::max(), errc::bad_parameter,
          "params.gamma_amp", "a finite value >= 1", gamma_amp);
}
inline void check_q(double q) {
  require(q > 0.0 && q <= 1.0, errc::bad_parameter, "params.q", "a value in (0, 1]", q);
}
inline void check_alpha(double alpha) {
  require(alpha >= 0.0 && alpha <= 1.0, errc::bad_parameter, "params.alpha", "a value in [0, 1]", alpha);
}

using rhythm::top_q_count;

/// Top-q of one response over all its values: the tokens stage's rule (DESIGN §3), on a span.
inline void select_top_q(std::span<const float> values, double q, bool bottom, std::span<std::uint8_t> selected,
                         std::vector<float>& scratch) {
  scratch.resize(values.size());
  rhythm::detail::tokens::select_top_q(values.data(), nullptr, static_cast<std::int64_t>(values.size()),
                                       top_q_params{q, bottom}, scratch.data(), selected.data());
}

/// splitmix64 (Steele, Lea, Flood 2014): a small, portable generator whose stream is fixed by
/// its 64-bit state, so draws are identical on every platform and standard library.
struct splitmix64 {
  std::uint64_t state;
  std::uint64_t next() noexcept {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, range), range >= 1, unbiased (rejects the 2^64 mod range lowest values).
  std::uint64_t below(std::uint64_t range) noexcept {
    const std::uint64_t reject = (std::uint64_t(0) - range) % range;
    for (;;)
      if (const std::uint64_t x = next(); x >= reject) return x % range;
  }
};

/// The generator of sequence `sequence` under `seed`: its state mixes both, so streams of
/// different (seed, sequence) pairs are unrelated.
inline splitmix64 sequence_generator(std::uint64_t seed, std::int64_t sequence) noexcept {
  splitmix64 s{seed};
  const std::uint64_t a = s.next();
  splitmix64 t{static_cast<std::uint64_t>(sequence) ^ 0x632be59bd9b4e019ull};
  return splitmix64{a ^ t.next()};
}

/// Marks exactly k of the n = selected.size() positions, drawn uniformly without replacement
/// (partial Fisher-Yates) from `gen`; the rest are 0. O(n).
inline void draw_without_replacement(splitmix64& gen, std::int64_t k, std::span<std::uint8_t> selected,
                                     std::vector<std::int64_t>& scratch) {
  const auto n = static_cast<std::int64_t>(selected.size());
  scratch.resize(static_cast<std::size_t>(n));
  std::iota(scratch.begin(), scratch.end(), std::int64_t(0));
  std::fill(selected.begin(), selected.end(), std::uint8_t(0));
  for (std::int64_t i = 0; i < k; ++i) {
    const auto j = i + static_cast<std::int64_t>(gen.below(static_cast<std::uint64_t>(n - i)));
    std::swap(scratch[i], scratch[j]);
    selected[scratch[i]] = 1;
  }
}

}  // namespace rhythm::detail::credit
