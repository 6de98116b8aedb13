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
    capture.position_ids = torch.arange(9) + 3  # shifted positions rotate differently
    assert not torch.allclose(capture.q, q)
    capture.remove()
    with pytest.raises(RuntimeError, match="no forward"):
        capture.q


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

