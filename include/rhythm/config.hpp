#pragma once
/// Build configuration shared by every rhythm header.
///
/// RHYTHM_HOST_DEVICE marks small functions that CUDA kernels call as well as host code
/// (element conversions, segment arithmetic). It expands to nothing under a plain C++ compiler.
#include "version.hpp"

#if defined(__CUDACC__)
#define RHYTHM_HOST_DEVICE __host__ __device__
#else
#define RHYTHM_HOST_DEVICE
#endif

#if __cplusplus < 202002L && !defined(_MSVC_LANG)
#error "rhythm needs C++20 (compile with -std=c++20 or link the rhythm::rhythm CMake target)"
#endif
