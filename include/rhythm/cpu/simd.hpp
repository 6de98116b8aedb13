#pragma once
/// Four-lane float packs for the CPU kernels, on GNU vector extensions (GCC, Clang): compares and
/// selects on packs vectorise under the default -ftrapping-math, where the same scalar code does
/// not. 16-byte packs are the x86-64 and AArch64 baseline, so their use is the same in every
/// translation unit whatever -m flags it has (the auto-vectorised loops still use AVX when enabled).
#include <bit>
#include <cstdint>
#include <cstring>

#if !defined(__GNUC__)
#error "rhythm's CPU backend needs GCC or Clang (GNU vector extensions)"
#endif

namespace rhythm::cpu::simd {

inline constexpr int width = 4;
typedef float f4 __attribute__((vector_size(16)));
typedef std::int32_t i4 __attribute__((vector_size(16)));
typedef std::uint32_t u4 __attribute__((vector_size(16)));

inline f4 load(const float* p) {
  f4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, f4 v) { std::memcpy(p, &v, sizeof v); }
inline f4 splat(float x) { return f4{x, x, x, x}; }
/// {start, start + 1, start + 2, start + 3}
inline f4 iota(float start) { return f4{start, start + 1.0f, start + 2.0f, start + 3.0f}; }
inline float sum(f4 v) { return (v[0] + v[1]) + (v[2] + v[3]); }
inline float max(f4 v) {
  const float a = v[0] > v[1] ? v[0] : v[1], b = v[2] > v[3] ? v[2] : v[3];
  return a > b ? a : b;
}

/// 2^x per lane with plain arithmetic. Exactly 0 for x < -126 (and -inf); relative error below
/// 2e-7 on [-126, 127]; NaN lanes give unspecified finite values (callers reject NaN inputs first).
inline f4 exp2(f4 x) {
  const i4 underflow = x < -126.0f;
  x = underflow ? splat(-126.0f) : x;
  x = x > 127.0f ? splat(127.0f) : x;
  const f4 shifted = x + 12582912.0f;  // 1.5 * 2^23: the sum's low mantissa bits hold round(x)
  const f4 f = x - (shifted - 12582912.0f);  // in [-0.5, 0.5]
  // Taylor series of e^(f ln 2) to degree 7: truncation error < 1e-8 on |f| <= 0.5.
  f4 r = splat(1.5252733804059841e-05f);
  r = r * f + 1.5403530393381610e-04f;
  r = r * f + 1.3333558146428443e-03f;
  r = r * f + 9.6181291076284772e-03f;
  r = r * f + 5.5504108664821580e-02f;
  r = r * f + 2.4022650695910071e-01f;
  r = r * f + 6.9314718055994531e-01f;
  r = r * f + 1.0f;
  const u4 n = std::bit_cast<u4>(shifted) - 0x4B400000u;  // round(x), two's complement
  return underflow ? splat(0.0f) : r * std::bit_cast<f4>((n + 127u) << 23);
}

inline float exp2(float x) { return exp2(splat(x))[0]; }

}  // namespace rhythm::cpu::simd
