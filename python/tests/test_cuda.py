"""The module on CUDA tensors: the same results as on the CPU (within the CUDA backend's tolerance),
the same errors, everything on the device. Skipped without a CUDA device; scripts/gpu-check runs this
file as a script (no pytest there) against a build with RHYTHM_PYTHON_CUDA=1."""
import torch

import rhythm
from batches import make_batch

try:
    import pytest
    pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
except ImportError:
    pytest = None


def on_device(batch):
    return {k: v.cuda() for k, v in batch.items()}


def test_credit_on_device_matches_the_cpu():
    for dtype in (torch.float32, torch.bfloat16):
        batch = make_batch(B=16, Hq=8, Hkv=2, N=160, d=64, dtype=dtype, layout="permuted", seed=1)
        credit = rhythm.CreditAssigner()
        host, device = credit(**batch), credit(**on_device(batch))
        assert device.gamma.is_cuda and device.shaped_advantages.is_cuda
        assert all(t.is_cuda for t in device.diagnostics.values())
        for key in ("waad", "fai", "head_spans"):
            torch.testing.assert_close(device.diagnostics[key].cpu(), host.diagnostics[key], rtol=1e-4, atol=1e-5)
        assert torch.equal(device.diagnostics["advantages"].cpu(), host.diagnostics["advantages"])
        # token sets: near-ties may fall either way between backends; nearly all tokens agree
        same = (device.diagnostics["flags"].cpu() == host.diagnostics["flags"]).float().mean()
        assert same > 0.99, float(same)
        if rhythm.cuda_kernels:
            assert float(device.diagnostics["mean_gamma"]) > 1


def test_signals_on_device_match_the_cpu():
    batch = make_batch(B=4, Hq=8, Hkv=4, N=200, d=64, dtype=torch.float16, seed=2)
    segments = rhythm.segments_from_masks(batch["response_mask"])
    host = rhythm.head_signals(batch["q"], batch["k"], segments)
    device = rhythm.head_signals(batch["q"].cuda(), batch["k"].cuda(), segments)
    for h, d in zip(host, device):
        assert d.is_cuda
        torch.testing.assert_close(d.cpu(), h, rtol=1e-4, atol=1e-5)


def test_errors_on_device_are_the_cpu_errors():
    batch = make_batch(seed=3)
    batch["q"][1, 2, 40, 3] = float("nan")
    messages = []
    for inputs in (batch, on_device(batch)):
        try:
            rhythm.CreditAssigner()(**inputs)
        except rhythm.Error as error:
            messages.append((error.errc, str(error)))
    assert len(messages) == 2 and messages[0] == messages[1] and messages[0][0] == "non_finite"


if __name__ == "__main__":
    if not torch.cuda.is_available():
        raise SystemExit("test_cuda.py: no CUDA device")
    print(f"rhythm {rhythm.__version__}, cuda_kernels {rhythm.cuda_kernels}, torch {torch.__version__}, "
          f"{torch.cuda.get_device_name()}")
    tests = [(name, f) for name, f in sorted(globals().items()) if name.startswith("test_")]
    for name, f in tests:
        f()
        print("ok", name)
    if not rhythm.cuda_kernels:
        raise SystemExit("test_cuda.py: the module was built without the CUDA backend (RHYTHM_PYTHON_CUDA=1)")
