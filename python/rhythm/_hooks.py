"""Post-RoPE Q and K of chosen attention layers of a Llama/Qwen-style torch.nn.Module, by forward hooks.

What it assumes of the model (as Hugging Face's Llama, Mistral, Qwen2 and Qwen3 attention modules are):
- the decoder layers are the one torch.nn.ModuleList named `layers` whose layers have `self_attn`
  (e.g. `model.model.layers`; a model with several, such as a vision tower beside the decoder, must
  pass the attention modules themselves as `layers`);
- an attention module has Linear `q_proj` and `k_proj` whose outputs are [B, N, H * d] (heads
  contiguous in the last axis), and a head dim `head_dim` (attribute, or `config.head_dim`, or
  `config.hidden_size // config.num_attention_heads`);
- RoPE is the rotate-half form q * cos + rotate_half(q) * sin with cos, sin = cos/sin(p * inv_freq)
  repeated twice, in the dtype of the attention's input (as under autocast), from a module named
  `rotary_emb` (on the attention module, or the one in the model) with an `inv_freq` buffer [r / 2]
  and optional `attention_scaling`; when r < d only the first r dimensions rotate (partial rotary).
  Models with several rotary embeddings (Gemma 3's local and global ones) are not supported;
- per-head norms after the projections (Qwen3's q_norm, k_norm over d) are applied when the attention
  module has them; a norm over all heads (OLMo 2's, over H * d) is rejected;
- positions are 0..N-1 unless `position_ids` [B, N] or [N] is set before the forward (what the model
  got, e.g. for left-padded batches where the caller passes position ids).
Q and K are computed in the hooks, during the forward (no gradient), and kept for the last forward
through the chosen layers. Run one teacher-forced forward over the whole sequences (e.g. the pass that
computes logp_old) inside the capture.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import torch


def _decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    found = [(name, module) for name, module in model.named_modules()
             if isinstance(module, torch.nn.ModuleList) and name.split(".")[-1] == "layers"
             and len(module) > 0 and hasattr(module[0], "self_attn")]
    if len(found) != 1:
        raise ValueError("rhythm.qk_hook: argument 'model': expected one ModuleList named 'layers' whose layers "
                         "have 'self_attn' (or pass the attention modules as 'layers'), got "
                         + (", ".join(name for name, _ in found) if found else "none"))
    return found[0][1]


def _head_dim(attention: torch.nn.Module) -> int:
    if isinstance(getattr(attention, "head_dim", None), int):
        return attention.head_dim
    config = getattr(attention, "config", None)
    if isinstance(getattr(config, "head_dim", None), int):
        return config.head_dim
    if config is not None and hasattr(config, "hidden_size") and hasattr(config, "num_attention_heads"):
        return config.hidden_size // config.num_attention_heads
    raise ValueError("rhythm.qk_hook: expected the attention module to have 'head_dim' or a config giving it, got "
                     f"{type(attention).__name__} without either")


def _rotary(model: torch.nn.Module, attention: torch.nn.Module) -> torch.nn.Module:
    if hasattr(getattr(attention, "rotary_emb", None), "inv_freq"):
        return attention.rotary_emb
    found = [name for name, module in model.named_modules() if "rotary_emb" in name.split(".")[-1]]
    if len(found) != 1 or not hasattr(model.get_submodule(found[0]), "inv_freq"):
        raise ValueError("rhythm.qk_hook: expected one 'rotary_emb' module with an 'inv_freq' buffer in the model, "
                         "got " + (", ".join(found) if found else "none"))
    return model.get_submodule(found[0])


def _norm(attention: torch.nn.Module, name: str, head_dim: int) -> Optional[torch.nn.Module]:
    norm = getattr(attention, f"{name}_norm", None)
    if not isinstance(norm, torch.nn.Module):
        return None
    weight = getattr(norm, "weight", None)
    if weight is not None and weight.shape[-1] != head_dim:
        raise ValueError(f"rhythm.qk_hook: expected '{name}_norm' over the head dim {head_dim}, got a norm over "
                         f"{weight.shape[-1]} (a norm over all heads is not supported)")
    return norm


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class QKCapture:
    """Forward hooks computing post-RoPE Q and K of chosen layers (see the module docstring).

    q  [B, L * Hq, N, d], k [B, L * Hkv, N, d]: the last forward's heads of the L chosen layers,
    stacked layer by layer on the head axis (query head h of layer l reads kv head h / (Hq / Hkv) of
    the same layer, as rhythm expects), without gradient, in the dtype the model's RoPE gives.
    position_ids: [B, N] or [N] positions of the next forward (None: 0..N-1).
    Use as a context manager (hooks removed at exit, the tensors stay), or call remove() when done.
    """

    def __init__(self, model: torch.nn.Module, layers: Sequence[Union[int, torch.nn.Module]],
                 position_ids: Optional[torch.Tensor] = None):
        if len(layers) == 0:
            raise ValueError("rhythm.qk_hook: argument 'layers': expected at least one layer, got none")
        decoder = None
        self._attention: List[torch.nn.Module] = []
        for layer in layers:
            if isinstance(layer, int):
                decoder = decoder if decoder is not None else _decoder_layers(model)
                if not -len(decoder) <= layer < len(decoder):
                    raise ValueError(f"rhythm.qk_hook: argument 'layers': expected indices in [0, {len(decoder)}), "
                                     f"got {layer}")
                layer = decoder[layer]
            attention = getattr(layer, "self_attn", layer)
            for name in ("q_proj", "k_proj"):
                if not isinstance(getattr(attention, name, None), torch.nn.Module):
                    raise ValueError(f"rhythm.qk_hook: expected an attention module with '{name}', got "
                                     f"{type(attention).__name__}")
            self._attention.append(attention)
        self.position_ids = position_ids
        self._head_dim = [_head_dim(a) for a in self._attention]
        self._rotary = [_rotary(model, a) for a in self._attention]
        self._norms = [{n: _norm(a, n, d) for n in ("q", "k")} for a, d in zip(self._attention, self._head_dim)]
        self._outputs: List[Dict[str, torch.Tensor]] = [{} for _ in self._attention]
        self._handles = []
        for i, attention in enumerate(self._attention):
            for name in ("q", "k"):
                self._handles.append(getattr(attention, f"{name}_proj").register_forward_hook(self._recorder(i, name)))

    def _recorder(self, layer: int, name: str):
        def record(module: torch.nn.Module, inputs, output: torch.Tensor) -> None:
            with torch.no_grad():
                self._outputs[layer][name] = self._post_rope(layer, name, output, inputs[0].dtype)
        return record

    def _post_rope(self, layer: int, name: str, x: torch.Tensor, rope_dtype: torch.dtype) -> torch.Tensor:
        """[B, H, N, d] post-RoPE heads of a projection's output x [B, N, H * d]."""
        d, rotary = self._head_dim[layer], self._rotary[layer]
        B, N = x.shape[0], x.shape[1]
        x = x.reshape(B, N, -1, d)
        norm = self._norms[layer][name]
        if norm is not None:
            x = norm(x)
        positions = self.position_ids if self.position_ids is not None else torch.arange(N, device=x.device)
        positions = positions.to(x.device).float().reshape(-1, N)  # [1 or B, N]
        angles = positions[..., None] * rotary.inv_freq.float().to(x.device)  # [., N, r / 2]
        angles = torch.cat((angles, angles), dim=-1)
        scaling = float(getattr(rotary, "attention_scaling", 1.0))
        cos = (angles.cos() * scaling).to(rope_dtype)[:, :, None, :]  # [., N, 1, r]
        sin = (angles.sin() * scaling).to(rope_dtype)[:, :, None, :]
        r = angles.shape[-1]
        rotated = x[..., :r] * cos + _rotate_half(x[..., :r]) * sin
        x = torch.cat((rotated, x[..., r:].to(rotated.dtype)), dim=-1) if r < d else rotated
        return x.transpose(1, 2)  # [B, H, N, d], a view

    def _stacked(self, name: str) -> torch.Tensor:
        if any(name not in outputs for outputs in self._outputs):
            raise RuntimeError("rhythm.QKCapture: no forward has run through the chosen layers since the hooks "
                               "were installed")
        return torch.cat([outputs[name] for outputs in self._outputs], dim=1)

    @property
    def q(self) -> torch.Tensor:
        """[B, L * Hq, N, d] post-RoPE queries of the last forward."""
        return self._stacked("q")

    @property
    def k(self) -> torch.Tensor:
        """[B, L * Hkv, N, d] post-RoPE keys of the last forward."""
        return self._stacked("k")

    def clear(self) -> None:
        """Forget the recorded tensors (the hooks stay)."""
        self._outputs = [{} for _ in self._attention]

    def remove(self) -> None:
        """Remove the hooks and forget the recorded tensors."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.clear()

    def __enter__(self) -> "QKCapture":
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:  # the tensors stay readable after the block
            handle.remove()
        self._handles = []


def qk_hook(model: torch.nn.Module, layers: Sequence[Union[int, torch.nn.Module]],
            position_ids: Optional[torch.Tensor] = None) -> QKCapture:
    """Install forward hooks that capture post-RoPE Q and K of `layers` (indices into the model's
    decoder layers, or attention modules) of a Llama/Qwen-style model; see QKCapture and this
    module's docstring for what is assumed. Usable as a context manager (hooks removed at exit,
    the captured tensors stay readable)."""
    return QKCapture(model, layers, position_ids)
