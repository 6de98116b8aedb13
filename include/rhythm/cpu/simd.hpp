#pragma once
/// Four-lane float packs for the CPU kernels, on GNU vector extensions (GCC, Clang): compares and
/// selects on packs vectorise under the default -ftrapping-math, where the same scalar code does
/// not. 16-byte packs are the x86-64 and AArch64 baseline, so their use is the same in every
/// translation unit whatever -m flags it has (the auto-vectorised loops still use AVX when enabled).
/// The operations are those of simd_ops.inc, which the Q/K kernel also compiles at 8 and 16 lanes for
/// AVX2 and AVX-512 (qk_signals.hpp).
#include <bit>
#include <cstdint>
#include <cstring>
#include <utility>

#if !defined(__GNUC__)
#error "rhythm's CPU backend needs GCC or Clang (GNU vector extensions)"
#endif

namespace rhythm::cpu::simd {

#define RHYTHM_SIMD_WIDTH 4
#include "simd_ops.inc"
#undef RHYTHM_SIMD_WIDTH

typedef pack f4;

}  // namespace rhythm::cpu::simd
