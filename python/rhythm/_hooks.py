"""Post-RoPE Q and K of chosen attention layers of a Llama/Qwen-style torch.nn.Module, by forward hooks.

What it assumes of the model (as Hugging Face's Llama, Mistral, Qwen2 and Qwen3 attention modules are):
- the decoder layers are a torch.nn.ModuleList named `layers` (e.g. `model.model.layers`), each with
  an attention submodule `self_attn`; or `layers` lists the attention modules themselves;
- an attention module has Linear `q_proj` and `k_proj` whose outputs are [B, N, H * d] (heads
  contiguous in the last axis), and a head dim `head_dim` (attribute, or `config.head_dim`, or
  `config.hidden_size // config.num_attention_heads`);
- RoPE is the rotate-half form q * cos + rotate_half(q) * sin with cos, sin = cos/sin(p * inv_freq)
  repeated twice, from a module named `rotary_emb` (on the attention module or anywhere in the model)
  with an `inv_freq` buffer [r / 2] and optional `attention_scaling`; when r < d only the first r
  dimensions rotate (partial rotary);
- positions are 0..N-1 unless `position_ids` [B, N] (or [N]) is given (left-padded batches: what the
  model got). Per-layer q/k norms applied after the projections (Qwen3's q_norm, k_norm) are applied
  when the attention module has them.
The hooks see every forward while installed; a capture holds the last forward's tensors. Run one
teacher-forced forward over the whole sequences (e.g. the pass that computes logp_old) inside it.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import torch


def _decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and name.split(".")[-1] == "layers":
            return module
    raise ValueError("rhythm.qk_hook: argument 'model': expected a module with a ModuleList named 'layers' "
                     "(or pass the attention modules as 'layers'), got none")


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
    for name, module in model.named_modules():
        if name.split(".")[-1] == "rotary_emb" and hasattr(module, "inv_freq"):
            return module
    raise ValueError("rhythm.qk_hook: expected a 'rotary_emb' module with an 'inv_freq' buffer in the model, got none")


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class QKCapture:
    """Forward hooks recording post-RoPE Q and K of chosen layers (see the module docstring).

    q  [B, L * Hq, N, d], k [B, L * Hkv, N, d]: the last forward's heads of the L chosen layers,
    stacked layer by layer on the head axis (query head h of layer l reads kv head h / (Hq / Hkv) of
    the same layer, as rhythm expects), detached, in the projections' dtype.
    Use as a context manager, or call remove() when done.
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
        self._rotary = [_rotary(model, a) for a in self._attention]
        self._head_dim = [_head_dim(a) for a in self._attention]
        self._outputs: List[Dict[str, torch.Tensor]] = [{} for _ in self._attention]
        self._handles = []
        for i, attention in enumerate(self._attention):
            for name in ("q", "k"):
                self._handles.append(getattr(attention, f"{name}_proj").register_forward_hook(self._recorder(i, name)))

    def _recorder(self, layer: int, name: str):
        def record(module: torch.nn.Module, inputs, output: torch.Tensor) -> None:
            self._outputs[layer][name] = output.detach()
        return record

    def _post_rope(self, layer: int, name: str) -> torch.Tensor:
        if name not in self._outputs[layer]:
            raise RuntimeError("rhythm.QKCapture: no forward has run through the chosen layers since the hooks "
                               "were installed")
        x = self._outputs[layer][name]
        attention, d = self._attention[layer], self._head_dim[layer]
        B, N = x.shape[0], x.shape[1]
        x = x.reshape(B, N, -1, d)
        norm = getattr(attention, f"{name}_norm", None)
        if isinstance(norm, torch.nn.Module):
            x = norm(x)
        rotary = self._rotary[layer]
        inv_freq = rotary.inv_freq.float()
        positions = self.position_ids if self.position_ids is not None else torch.arange(N, device=x.device)
        positions = positions.to(x.device).float().reshape(-1, N)  # [1 or B, N]
        angles = positions[..., None] * inv_freq.to(x.device)  # [., N, r / 2]
        angles = torch.cat((angles, angles), dim=-1)
        scaling = float(getattr(rotary, "attention_scaling", 1.0))
        cos = (angles.cos() * scaling).to(x.dtype)[:, :, None, :]  # [., N, 1, r]
        sin = (angles.sin() * scaling).to(x.dtype)[:, :, None, :]
        r = angles.shape[-1]
        rotated = x[..., :r] * cos + _rotate_half(x[..., :r]) * sin
        x = torch.cat((rotated, x[..., r:]), dim=-1) if r < d else rotated
        return x.transpose(1, 2)  # [B, H, N, d], a view

    @property
    def q(self) -> torch.Tensor:
        """[B, L * Hq, N, d] post-RoPE queries of the last forward."""
        return torch.cat([self._post_rope(i, "q") for i in range(len(self._attention))], dim=1)

    @property
    def k(self) -> torch.Tensor:
        """[B, L * Hkv, N, d] post-RoPE keys of the last forward."""
        return torch.cat([self._post_rope(i, "k") for i in range(len(self._attention))], dim=1)

    def clear(self) -> None:
        """Forget the recorded projections (the hooks stay)."""
        self._outputs = [{} for _ in self._attention]

    def remove(self) -> None:
        """Remove the hooks and forget the recorded projections."""
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
