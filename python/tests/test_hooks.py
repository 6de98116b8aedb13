"""rhythm.qk_hook records the post-RoPE Q and K the model itself used."""
import importlib.util
from pathlib import Path

import pytest
import torch

import rhythm

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python" / "grpo_step.py"


def load_example():
    spec = importlib.util.spec_from_file_location("grpo_step", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example():
    return load_example()


def model_qk(model, layers):
    """The post-RoPE q, k the attention modules computed in their last forward, stacked on the head axis."""
    pairs = [model.layers[i].self_attn.last_qk for i in layers]
    return torch.cat([p[0] for p in pairs], dim=1), torch.cat([p[1] for p in pairs], dim=1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_capture_equals_the_model_own_q_and_k(example, dtype):
    torch.manual_seed(0)
    model = example.TinyDecoder().to(dtype)
    layers = [1, 3]
    for i in layers:
        model.layers[i].self_attn.last_qk = ()
    tokens = torch.randint(0, len(example.VOCAB), (3, 21))
    with torch.no_grad(), rhythm.qk_hook(model, layers) as capture:
        model(tokens)
    q, k = model_qk(model, layers)
    assert capture.q.shape == (3, 8, 21, 16) and capture.k.shape == (3, 4, 21, 16)
    assert capture.q.dtype == dtype
    assert torch.equal(capture.q, q) and torch.equal(capture.k, k)
    # the hooks are gone after the block; the capture stays readable
    model(tokens[:, :5])
    assert capture.q.shape[2] == 21


def test_layers_as_modules_and_position_ids(example):
    torch.manual_seed(1)
    model = example.TinyDecoder()
    model.layers[2].self_attn.last_qk = ()
    tokens = torch.randint(0, len(example.VOCAB), (2, 9))
    capture = rhythm.qk_hook(model, [model.layers[2].self_attn], position_ids=torch.arange(9))
    with torch.no_grad():
        model(tokens)
    q, k = model_qk(model, [2])
    assert torch.equal(capture.q, q) and torch.equal(capture.k, k)
    capture.position_ids = torch.arange(9) + 3  # shifted positions rotate differently (next forward)
    with torch.no_grad():
        model(tokens)
    assert not torch.allclose(capture.q, q)
    capture.remove()
    with pytest.raises(RuntimeError, match="no forward"):
        capture.q


class Rotary(torch.nn.Module):
    """Hugging Face's model-level rotary embedding: cos, sin [B, N, r] in x's dtype, scaled."""

    def __init__(self, rotary_dim, scaling):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / 10000 ** (torch.arange(0, rotary_dim, 2).float() / rotary_dim))
        self.attention_scaling = scaling

    def forward(self, x, position_ids):
        angles = position_ids[:, :, None].float() * self.inv_freq
        angles = torch.cat((angles, angles), dim=-1)
        return (angles.cos() * self.attention_scaling).to(x.dtype), (angles.sin() * self.attention_scaling).to(x.dtype)


class RMSNorm(torch.nn.Module):
    """Hugging Face's: normalised in float32, back to the input dtype, times a random weight."""

    def __init__(self, dim):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(dim))

    def forward(self, x):
        y = x.float()
        return self.weight * (y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype)


class QwenLikeAttention(torch.nn.Module):
    """Per-head q/k norms before a partial rotary embedding given by the model, as Qwen3 and Phi do."""

    def __init__(self, dim=32, heads=4, kv_heads=2, head_dim=8):
        super().__init__()
        self.head_dim = head_dim
        self.q_proj = torch.nn.Linear(dim, heads * head_dim, bias=True)
        self.k_proj = torch.nn.Linear(dim, kv_heads * head_dim, bias=True)
        self.q_norm, self.k_norm = RMSNorm(head_dim), RMSNorm(head_dim)

    def forward(self, hidden, cos, sin):
        B, N, _ = hidden.shape
        q = self.q_norm(self.q_proj(hidden).view(B, N, -1, self.head_dim)).transpose(1, 2)
        k = self.k_norm(self.k_proj(hidden).view(B, N, -1, self.head_dim)).transpose(1, 2)
        cos, sin = cos[:, None], sin[:, None]
        r = cos.shape[-1]
        rotate = lambda x: torch.cat((x[..., :r] * cos + rotate_half(x[..., :r]) * sin, x[..., r:]), dim=-1)
        self.last = (rotate(q), rotate(k))
        return hidden


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class QwenLike(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Module() for _ in range(3))
        for layer in self.layers:
            layer.self_attn = QwenLikeAttention()
        self.rotary_emb = Rotary(rotary_dim=4, scaling=0.7)

    def forward(self, hidden, position_ids):
        cos, sin = self.rotary_emb(hidden, position_ids)
        for layer in self.layers:
            hidden = layer.self_attn(hidden, cos, sin)
        return hidden


@pytest.mark.parametrize("autocast", [False, True])
def test_norms_partial_rotary_scaling_positions_and_autocast(autocast):
    torch.manual_seed(3)
    model = QwenLike()
    hidden = torch.randn(2, 11, 32)
    position_ids = torch.stack([torch.arange(11), torch.arange(11) + 5])  # [B, N]: a left-padded row
    context = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else torch.no_grad()
    with context, rhythm.qk_hook(model, [0, 2], position_ids=position_ids) as capture:
        model(hidden, position_ids)
    q = torch.cat([model.layers[i].self_attn.last[0] for i in (0, 2)], dim=1)
    k = torch.cat([model.layers[i].self_attn.last[1] for i in (0, 2)], dim=1)
    assert capture.q.shape == (2, 8, 11, 8) and capture.k.shape == (2, 4, 11, 8)
    assert capture.q.dtype == q.dtype and not capture.q.requires_grad
    assert torch.equal(capture.q, q.detach()) and torch.equal(capture.k, k.detach())


def test_ambiguous_models_are_rejected():
    model = QwenLike()
    model.vision = torch.nn.Module()
    model.vision.layers = torch.nn.ModuleList([torch.nn.Module()])
    model.vision.layers[0].self_attn = QwenLikeAttention()
    with pytest.raises(ValueError, match="one ModuleList named 'layers'.*got layers, vision.layers"):
        rhythm.qk_hook(model, [0])
    rhythm.qk_hook(model, [model.layers[0].self_attn]).remove()  # explicit modules are fine
    model.rotary_emb_local = Rotary(rotary_dim=8, scaling=1.0)
    with pytest.raises(ValueError, match="one 'rotary_emb'.*rotary_emb, rotary_emb_local"):
        rhythm.qk_hook(model, [model.layers[0].self_attn])
    del model.rotary_emb_local
    model.layers[1].self_attn.q_norm = torch.nn.LayerNorm(32)  # over all heads
    with pytest.raises(ValueError, match="'q_norm' over the head dim 8"):
        rhythm.qk_hook(model, [model.layers[1].self_attn])


def test_capture_feeds_the_credit_assigner(example):
    torch.manual_seed(2)
    model = example.TinyDecoder()
    tokens = torch.randint(0, len(example.VOCAB), (4, 40))
    with torch.no_grad(), rhythm.qk_hook(model, [2, 3]) as capture:
        model(tokens)
    mask = torch.zeros(4, 40, dtype=torch.bool)
    mask[:, 5:] = True
    out = rhythm.CreditAssigner()(q=capture.q, k=capture.k, response_mask=mask, rewards=[1.0, 0.0, 1.0, 0.0],
                                  group_ids=[0, 0, 1, 1])
    assert out.gamma.shape == (4, 40) and float(out.diagnostics["mean_gamma"]) > 1


def test_hook_errors(example):
    model = example.TinyDecoder()
    with pytest.raises(ValueError, match="layers"):
        rhythm.qk_hook(model, [])
    with pytest.raises(ValueError, match="indices"):
        rhythm.qk_hook(model, [6])
    with pytest.raises(ValueError, match="q_proj"):
        rhythm.qk_hook(model, [model.norm])
    with pytest.raises(ValueError, match="ModuleList named 'layers'"):
        rhythm.qk_hook(torch.nn.Sequential(model.layers[0]), [0])

