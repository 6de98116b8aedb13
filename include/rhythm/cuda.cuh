#pragma once
/// The CUDA umbrella: everything of <rhythm/rhythm.hpp> plus the CUDA backend (exec::cuda) and
/// rhythm::cuda::credit_pipeline. The only way to enable exec::cuda; compile with nvcc (C++20).
#include "rhythm.hpp"
#include "cuda/backend.cuh"
#include "cuda/pipeline.cuh"
#include "cuda/runtime.cuh"
