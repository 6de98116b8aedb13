"""Builds rhythm's Python package: the extension rhythm._C from the library's headers and its LibTorch
adapter (python/src/module.cpp), against the torch that runs the build.

    pip install ./python        # from the repository root, where torch is installed

The headers are read from the repository this directory sits in (../include, ../adapters/libtorch/include),
or from RHYTHM_INCLUDE_DIRS (paths separated by ':') when set. There is no pyproject.toml on purpose:
pip then builds in the running environment, with the torch that is already installed (no download of
build requirements, which an isolated build would need)."""
import os
from pathlib import Path

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

here = Path(__file__).resolve().parent
root = here.parent


def include_dirs():
    if os.environ.get("RHYTHM_INCLUDE_DIRS"):
        dirs = [Path(p) for p in os.environ["RHYTHM_INCLUDE_DIRS"].split(":")]
    else:
        dirs = [root / "include", root / "adapters" / "libtorch" / "include"]
    for header, where in (("rhythm/rhythm.hpp", dirs), ("rhythm/torch.hpp", dirs)):
        if not any((d / header).is_file() for d in where):
            raise SystemExit(f"rhythm: setup.py: expected {header} under {', '.join(map(str, dirs))} "
                             "(build from the repository, or set RHYTHM_INCLUDE_DIRS)")
    return [str(d) for d in dirs]


def version():
    text = (root / "include" / "rhythm" / "version.hpp").read_text() if (root / "include").is_dir() else ""
    parts = {}
    for name in ("MAJOR", "MINOR", "PATCH"):
        for line in text.splitlines():
            if line.startswith(f"#define RHYTHM_VERSION_{name} "):
                parts[name] = line.split()[2]
    return ".".join(parts.get(n, "0") for n in ("MAJOR", "MINOR", "PATCH"))


setup(
    name="rhythm",
    version=version(),
    description="Structure-aware credit assignment for RL of language models (preplan and anchor tokens from Q/K)",
    packages=["rhythm"],
    package_data={"rhythm": ["py.typed", "*.pyi"]},
    ext_modules=[
        CppExtension(
            "rhythm._C",
            [str(here / "src" / "module.cpp")],
            include_dirs=include_dirs(),
            extra_compile_args=["-std=c++20", "-O2", "-Wall", "-Wextra"],
        )
    ],
    cmdclass={"build_ext": BuildExtension},
    python_requires=">=3.9",
    zip_safe=False,
)
