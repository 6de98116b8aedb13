#pragma once
/// Checkpoints: one file holding everything a run needs to continue bit for bit.
///
///   model        parameters and buffers (model.hpp's names)
///   optimizer    AdamW's moments and step counts (absent in a warm-start checkpoint)
///   state        phase ("warm_start" or "rl"), the next step, the problem generator (std::mt19937_64
///                in its text form), the sampling generator's state, and the model's shape (checked on load)
///
/// Writes are atomic: the archive goes to `path.tmp`, which is then renamed over `path`, so a crash
/// leaves either the previous checkpoint or the new one, never half of one. Loading maps every tensor
/// to the model's device (a CPU warm start can start a CUDA run).
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>

#include "model.hpp"

namespace grpo {

/// The non-tensor part of a checkpoint.
struct run_state {
  std::string phase = "warm_start";  ///< what the checkpoint ends: "warm_start" or "rl"
  std::int64_t step = 0;             ///< the next step of that phase
  std::mt19937_64 problem_rng;       ///< draws training problems
  ::torch::Tensor sampling_state;    ///< the rollout generator's state (at::Generator::get_state)
};

namespace detail {

inline std::string shape_key(const model_config& c) {
  return "vocab " + std::to_string(c.vocab_size) + ", d_model " + std::to_string(c.d_model) + ", layers " +
         std::to_string(c.n_layers) + ", heads " + std::to_string(c.n_heads) + "/" + std::to_string(c.n_kv_heads) +
         ", mlp " + std::to_string(c.mlp_hidden_size()) + ", max_seq_len " + std::to_string(c.max_seq_len);
}

}  // namespace detail

/// Writes model, optimizer (when given) and state to `path` atomically.
inline void save_checkpoint(const std::string& path, transformer& model, ::torch::optim::Optimizer* optimizer,
                            const run_state& state) {
  ::torch::serialize::OutputArchive archive, model_archive, optimizer_archive;
  model->save(model_archive);
  archive.write("model", model_archive);
  if (optimizer) {
    optimizer->save(optimizer_archive);
    archive.write("optimizer", optimizer_archive);
  }
  std::ostringstream rng;
  rng << state.problem_rng;
  archive.write("phase", ::c10::IValue(state.phase));
  archive.write("step", ::c10::IValue(state.step));
  archive.write("problem_rng", ::c10::IValue(rng.str()));
  archive.write("sampling_state", state.sampling_state);
  archive.write("model_shape", ::c10::IValue(detail::shape_key(model->config)));
  const std::filesystem::path target(path), temporary(path + ".tmp");
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path());
  try {
    archive.save_to(temporary.string());
    std::filesystem::rename(temporary, target);
  } catch (...) {
    std::filesystem::remove(temporary);
    throw;
  }
}

/// Reads a checkpoint into `model` (whose shape must match the one saved), `optimizer` (when given;
/// the checkpoint must then hold one) and returns the state. std::runtime_error naming the file otherwise.
inline run_state load_checkpoint(const std::string& path, transformer& model, ::torch::optim::Optimizer* optimizer) {
  if (!std::filesystem::is_regular_file(path)) throw std::runtime_error("checkpoint '" + path + "': no such file");
  ::torch::serialize::InputArchive archive;
  archive.load_from(path, model->embedding->weight.device());
  ::c10::IValue value;
  archive.read("model_shape", value);
  const auto expected = detail::shape_key(model->config);
  if (value.toStringRef() != expected)
    throw std::runtime_error("checkpoint '" + path + "': model shape " + value.toStringRef() +
                             " differs from the configured " + expected);
  ::torch::serialize::InputArchive model_archive, optimizer_archive;
  archive.read("model", model_archive);
  model->load(model_archive);
  if (optimizer) {
    if (!archive.try_read("optimizer", optimizer_archive))
      throw std::runtime_error("checkpoint '" + path + "': holds no optimizer state (a warm-start checkpoint: use "
                               "--init-from, not --resume)");
    optimizer->load(optimizer_archive);
  }
  run_state state;
  archive.read("phase", value);
  state.phase = value.toStringRef();
  archive.read("step", value);
  state.step = value.toInt();
  archive.read("problem_rng", value);
  std::istringstream rng(value.toStringRef());
  rng >> state.problem_rng;
  archive.read("sampling_state", state.sampling_state);
  return state;
}

}  // namespace grpo
