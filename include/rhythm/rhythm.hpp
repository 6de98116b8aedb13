#pragma once
/// rhythm: structure-aware credit assignment for RL of language models (CPU umbrella header).
///
/// Includes the core vocabulary, the CPU backend (exec::seq, exec::par) and every stage in data-path
/// order: heads -> signals -> tokens -> credit -> pipeline. Never pulls a CUDA header; for the CUDA
/// backend include <rhythm/cuda.cuh> instead.
#include "config.hpp"
#include "error.hpp"
#include "version.hpp"

#include "core/bits.hpp"
#include "core/checks.hpp"
#include "core/dtypes.hpp"
#include "core/execution.hpp"
#include "core/memory_space.hpp"
#include "core/segments.hpp"
#include "core/status.hpp"
#include "core/tensor.hpp"
#include "core/head_types.hpp"
#include "core/signal_types.hpp"
#include "core/token_types.hpp"
#include "core/credit_types.hpp"

#include "cpu/backend.hpp"

#include "heads/head_groups.hpp"
#include "heads/layer_selection.hpp"

#include "signals/head_signals.hpp"
#include "signals/group_signals.hpp"

#include "tokens/top_q.hpp"
#include "tokens/token_sets.hpp"
#include "tokens/peaks.hpp"

#include "credit/advantages.hpp"
#include "credit/policies.hpp"
#include "credit/shaping_policy.hpp"
#include "credit/shaping.hpp"
#include "credit/ppo_objective.hpp"
#include "pipeline.hpp"
