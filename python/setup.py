"""Builds rhythm's Python package: the extension rhythm._C from the library's headers and its LibTorch
adapter (python/src/module.cpp), against the torch that runs the build.

    pip install ./python        # from the repository root, where torch is installed

The headers are read from the repository this directory sits in (../include, ../adapters/libtorch/include),
or from RHYTHM_INCLUDE_DIRS (paths separated by ':') when set. RHYTHM_PYTHON_CUDA=1 also compiles the
adapter's device path with nvcc (needs a torch with CUDA and CUDA_HOME): CUDA tensors then run rhythm's
CUDA backend on torch's current stream instead of a host round trip. Default 0 until a GPU run has
checked it (scripts/gpu-check does). There is no pyproject.toml on purpose:
pip then builds in the running environment, with the torch that is already installed (no download of
build requirements, which an isolated build would need)."""
import os
from pathlib import Path

from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

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


def with_cuda():
    setting = os.environ.get("RHYTHM_PYTHON_CUDA", "0")
    if setting not in ("0", "1"):
        raise SystemExit(f"rhythm: setup.py: RHYTHM_PYTHON_CUDA: expected 0 or 1, got {setting!r}")
    if setting == "1":
        import torch
        if torch.version.cuda is None or CUDA_HOME is None:
            raise SystemExit("rhythm: setup.py: RHYTHM_PYTHON_CUDA=1: expected a torch with CUDA and nvcc (CUDA_HOME), "
                             f"got torch.version.cuda={torch.version.cuda}, CUDA_HOME={CUDA_HOME}")
    return setting == "1"


def extension():
    # gnu++20 as CMake compiles the C++ adapter: GCC contracts a * b + c into FMA in GNU mode only, and
    # the agreement tests compare the module with the adapter bit for bit (the AVX2/AVX-512 kernels have FMA)
    cxx = ["-std=gnu++20", "-O2", "-Wall", "-Wextra"]
    if not with_cuda():
        return CppExtension("rhythm._C", [str(here / "src" / "module.cpp")], include_dirs=include_dirs(),
                            extra_compile_args=cxx)
    # the launchers (nvcc, no ATen) and the current-stream lookup, as CMake's rhythm_torch_cuda builds them
    src = root / "adapters" / "libtorch" / "src"
    return CUDAExtension("rhythm._C", [str(here / "src" / "module.cpp"), str(src / "cuda_stream.cpp"),
                                       str(src / "cuda_launch.cu")],
                         include_dirs=include_dirs(), define_macros=[("RHYTHM_TORCH_CUDA", "1")],
                         extra_compile_args={"cxx": cxx, "nvcc": ["-std=c++20", "-O3"]})


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
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension},
    python_requires=">=3.9",
    zip_safe=False,
)
