#pragma once
// Helpers shared by the tests: random inputs with fixed seeds, error expectations, and (through
// backend_memory.hpp) the backends to run each test on.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <rhythm/rhythm.hpp>

#include "backend_memory.hpp"
#include "reference.hpp"

namespace rt {

using i64 = std::int64_t;

inline ref::seg to_ref(const rhythm::segment& s) { return {s.begin, s.response_begin, s.end}; }

// A random segment of a sequence padded to N: left or right padding, a prompt, a non-empty response.
inline rhythm::segment random_segment(std::mt19937& rng, i64 N) {
  std::uniform_int_distribution<i64> pad(0, N / 4);
  const i64 left = pad(rng), right = pad(rng);
  const i64 len = std::max<i64>(1, N - left - right);
  const i64 prompt = std::uniform_int_distribution<i64>(0, len - 1)(rng);
  return {left, left + prompt, left + len};
}

// Random causal row-stochastic maps [B,H,N,N] over each sequence's real keys; every entry the
// library must not read (padding rows and columns, the upper triangle) is NaN.
struct random_maps {
  std::vector<float> data;
  std::vector<ref::map> heads;  // [b*H + h], the same values in double
  random_maps(std::mt19937& rng, i64 B, i64 H, i64 N, const std::vector<rhythm::segment>& segs) {
    data.assign(B * H * N * N, std::numeric_limits<float>::quiet_NaN());
    std::exponential_distribution<double> e(1.0);
    std::bernoulli_distribution spike(0.05);
    for (i64 b = 0; b < B; ++b)
      for (i64 h = 0; h < H; ++h) {
        ref::map A(N, std::vector<double>(N, 0.0));
        for (i64 t = segs[b].begin; t < segs[b].end; ++t) {
          std::vector<float> w;
          double sum = 0;
          for (i64 s = segs[b].begin; s <= t; ++s) {
            const double x = e(rng) * (spike(rng) ? 50.0 : 1.0);
            w.push_back(static_cast<float>(x));
            sum += x;
          }
          for (i64 s = segs[b].begin; s <= t; ++s) {
            const float v = static_cast<float>(w[s - segs[b].begin] / sum);
            data[((b * H + h) * N + t) * N + s] = v;
            A[t][s] = v;  // the reference sees exactly the float values
          }
        }
        heads.push_back(std::move(A));
      }
  }
};

inline std::vector<float> random_floats(std::mt19937& rng, i64 n, double sd = 1.0) {
  std::normal_distribution<float> g(0.0f, static_cast<float>(sd));
  std::vector<float> v(n);
  for (auto& x : v) x = g(rng);
  return v;
}

// Runs `f`, expects a rhythm::error with `code` whose message contains every fragment.
template <class F>
void expect_error(F&& f, rhythm::errc code, std::initializer_list<const char*> fragments) {
  try {
    f();
    ADD_FAILURE() << "no rhythm::error thrown";
  } catch (const rhythm::error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    for (const char* frag : fragments) EXPECT_NE(std::string(e.what()).find(frag), std::string::npos) << e.what();
  }
}

// |got - want| <= tol * max(1, |want|)
inline ::testing::AssertionResult close(double got, double want, double tol) {
  if (std::abs(got - want) <= tol * std::max(1.0, std::abs(want))) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "got " << got << ", want " << want << " (diff " << std::abs(got - want) << ")";
}

// Outputs of head_signals_* for a batch, in the memory of backend P, each element `fill` until written.
template <class P>
struct head_outputs {
  i64 B, H, N;
  array<P, float, 2> span;
  array<P, float, 3> waad, fai;
  head_outputs(i64 b, i64 h, i64 n, float fill = -7.0f)
      : B(b), H(h), N(n), span(out<P>(fill, b, h)), waad(out<P>(fill, b, h, n)), fai(out<P>(fill, b, h, n)) {}
  struct values {
    std::vector<float> span, waad, fai;
  };
  values host() const { return {span.host(), waad.host(), fai.host()}; }
};

}  // namespace rt
