"""Shared fixtures: the C++ adapter run on the same tensors as the module
(test/python/adapter_reference.cpp, path in RHYTHM_PYTHON_REFERENCE; scripts/python-test sets it)."""
import os
import subprocess
from pathlib import Path

import pytest
import torch


@pytest.fixture(scope="session")
def reference_program():
    path = os.environ.get("RHYTHM_PYTHON_REFERENCE")
    if not path or not Path(path).is_file():
        pytest.fail("RHYTHM_PYTHON_REFERENCE must name the built rhythm_python_reference (scripts/python-test "
                    f"builds it and sets it); got {path!r}")
    return path


@pytest.fixture
def cpp(reference_program, tmp_path):
    """cpp(call, **arguments) -> the C++ adapter's results (a dict of tensors, or 'error'/'errc')."""
    def run(call, **arguments):
        case = {"call": call}
        for key, value in arguments.items():
            if isinstance(value, tuple):  # horizon
                case[key + "_lo"], case[key + "_hi"] = value[0], -1 if value[1] is None else value[1]
            elif value is not None:
                case[key] = value
        torch.save(case, tmp_path / "case.pt")
        subprocess.run([reference_program, str(tmp_path / "case.pt"), str(tmp_path / "out.pt")], check=True)
        return torch.load(tmp_path / "out.pt")
    return run
