"""examples/python/grpo_step.py runs: as a script, and its main() takes one GRPO step with credit."""
import subprocess
import sys

import torch

from test_hooks import EXAMPLE, load_example


def test_example_script_runs():
    done = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "PPO-clip loss" in done.stdout and "anchors" in done.stdout


def test_example_step_learns_from_credit():
    example = load_example()
    result = example.main(seed=0, verbose=False)
    assert 0 < result["reward"] < 1  # groups with differing rewards: a learning signal
    assert torch.isfinite(torch.tensor(result["loss"])) and result["grad_norm"] > 0
    assert result["preplan"] > 0 and result["anchor"] > 0 and result["mean_gamma"] > 1
    assert result["q_shape"] == (32, 8, 52, 16) and result["k_shape"] == (32, 4, 52, 16)
