#pragma once
/// rhythm::torch: the LibTorch adapter (CMake target rhythm::torch). CUDA tensors are accepted by
/// the tensor-level functions and copied to the host until the CUDA backend is wired in.
///
///   credit_assigner                      the whole pipeline per step: gamma, shaped, diagnostics      torch/credit.hpp
///   ppo_clip_loss                        PPO-clip loss from torch ops (autograd into logp_new)        torch/ppo.hpp
///   head_signals_from_maps / _from_qk    tensors in, span/WAAD/FAI tensors out                        torch/credit.hpp
///   segments_from_masks, response_mask   masks <-> segments                                           torch/credit.hpp, ppo.hpp
///   view<T, Rank>(tensor, name)          an at::Tensor as a rhythm::view, every foreign-type check   torch/view.hpp
///   segments_arg, segments_tensor        segments as int64 [B, 3] tensors or std::vector<segment>     torch/view.hpp
///
/// Careful inside namespace rhythm: `torch::` there means rhythm::torch; write ::torch:: or ::at::
/// for LibTorch. Includes ATen only (<ATen/ATen.h>), not <torch/torch.h>.
#include "torch/credit.hpp"
#include "torch/ppo.hpp"
#include "torch/view.hpp"
