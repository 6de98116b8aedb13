#pragma once
/// rhythm: structure-aware credit assignment for RL of language models (CPU umbrella header).
///
/// Includes every CPU stage in data-path order: core -> heads -> signals -> tokens -> credit. Never pulls a CUDA
/// header; for the CUDA backend include <rhythm/cuda.cuh> instead.
#include "config.hpp"
#include "error.hpp"
#include "version.hpp"

#include "core/dtypes.hpp"
#include "core/execution.hpp"
#include "core/memory_space.hpp"
#include "core/segments.hpp"
#include "core/tensor.hpp"

#include "heads/head_groups.hpp"
#include "heads/layer_selection.hpp"

#include "signals/params.hpp"
#include "signals/head_signals.hpp"
#include "signals/group_signals.hpp"

#include "tokens/token_flags.hpp"
#include "tokens/top_q.hpp"
#include "tokens/token_sets.hpp"
#include "tokens/peaks.hpp"

#include "credit/advantages.hpp"
#include "credit/shaping.hpp"
#include "credit/ppo_objective.hpp"
#include "pipeline.hpp"
