#pragma once
/// Warp-level tensor-core product `mma.sync.aligned.m16n8k16` (bf16 or f16 inputs, f32
/// accumulation, sm_80+) and the fragment layouts of the PTX ISA ("Matrix fragments for
/// mma.m16n8k16 with floating point type"). With g = lane / 4 and c = lane % 4:
///   A 16x16 (row-major), 8 halves in 4 registers: element i at row g + 8 ((i / 2) % 2), column 2c + i % 2 + 8 (i / 4)
///   B 16x8  (k x n),     4 halves in 2 registers: element i at k 2c + i % 2 + 8 (i / 2), column n = g
///   C 16x8  (f32),       4 floats:                element i at row g + 8 (i / 2), column 2c + i % 2
/// Register r holds elements 2r (low 16 bits) and 2r + 1 (high 16 bits), which are adjacent
/// columns of A and adjacent k of B, so each register is one 32-bit load from a row-major tile.
/// The index functions are host-callable so that a host test can check them against the ISA.
#include <cstdint>
#include <type_traits>

#include "../config.hpp"
#include "../core/dtypes.hpp"

namespace rhythm::cuda::detail::mma {

/// (row, column) of one fragment element; for B, row is k and column is n.
struct frag_index {
  int row, col;
};

RHYTHM_HOST_DEVICE constexpr frag_index a_index(int lane, int i) {
  return {lane / 4 + 8 * ((i / 2) % 2), 2 * (lane % 4) + i % 2 + 8 * (i / 4)};
}
RHYTHM_HOST_DEVICE constexpr frag_index b_index(int lane, int i) {
  return {2 * (lane % 4) + i % 2 + 8 * (i / 2), lane / 4};
}
RHYTHM_HOST_DEVICE constexpr frag_index c_index(int lane, int i) {
  return {lane / 4 + 8 * (i / 2), 2 * (lane % 4) + i % 2};
}

/// The 32 bits at p (two adjacent 16-bit elements; p 4-byte aligned).
template <class T>
RHYTHM_HOST_DEVICE inline std::uint32_t load_pair(const T* p) {
  static_assert(sizeof(T) == 2);
#if defined(__CUDA_ARCH__)
  return *reinterpret_cast<const std::uint32_t*>(p);
#else
  std::uint32_t v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
#endif
}

/// A fragment of rows [row0, row0 + 16), columns [k0, k0 + 16) of a row-major tile with `pitch`.
template <class T>
RHYTHM_HOST_DEVICE inline void load_a(const T* tile, int pitch, int row0, int k0, int lane, std::uint32_t (&a)[4]) {
  for (int r = 0; r < 4; ++r) {
    const frag_index x = a_index(lane, 2 * r);
    a[r] = load_pair(tile + (row0 + x.row) * pitch + k0 + x.col);
  }
}

/// B fragment with B[k][n] = tile[n0 + n][k0 + k]: the rows of a row-major tile are B's columns
/// (for S = Q K^T, the key tile is B).
template <class T>
RHYTHM_HOST_DEVICE inline void load_b_rows(const T* tile, int pitch, int n0, int k0, int lane, std::uint32_t (&b)[2]) {
  for (int r = 0; r < 2; ++r) {
    const frag_index x = b_index(lane, 2 * r);
    b[r] = load_pair(tile + (n0 + x.col) * pitch + k0 + x.row);
  }
}

#if defined(__CUDACC__)
/// c += A B for one 16x8x16 product; T is rhythm::bfloat16 or rhythm::half.
template <class T>
__device__ inline void mma_16816(float (&c)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (std::is_same_v<T, bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    static_assert(std::is_same_v<T, half>, "mma_16816 takes bfloat16 or half");
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
#else
  (void)c, (void)a, (void)b;
  __trap();  // rhythm's CUDA backend needs sm_80 or newer for 16-bit Q/K
#endif
}
#endif

}  // namespace rhythm::cuda::detail::mma
