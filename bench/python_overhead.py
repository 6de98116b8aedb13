"""The Python module's overhead over the C++ adapter on the same batch, in one process.

    build/python-venv/bin/python bench/python_overhead.py [--repeats 7]

Times rhythm.CreditAssigner called from Python against the same assigner's C++ call loop
(rhythm._C.CreditAssigner.time_per_call: the C++ adapter, no Python between calls) on one batch of
post-RoPE Q/K (B = 64, Hq = 20, Hkv = 4, N = 512, d = 64, float32, the permuted views a model's
projections give), interleaved, with --threads CPU threads (default: all), and prints the median of
each and their ratio; then the same for a tiny batch (B 2, H 2, N 32), where the fixed cost per
call shows, and that cost as a share of the large call (on a shared machine the large call alone
varies by tens of percent from call to call, far more than the binding costs)."""
import argparse
import os
import statistics
import time

import torch

import rhythm


def batch(B, Hq, Hkv, N, d, group=8):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(B, N, Hq, d, generator=g).permute(0, 2, 1, 3)
    k = torch.randn(B, N, Hkv, d, generator=g).permute(0, 2, 1, 3)
    mask = torch.zeros(B, N, dtype=torch.bool)
    mask[:, N // 8:] = True
    rewards = torch.randint(0, 2, (B,), generator=g).float()
    return dict(q=q, k=k, response_mask=mask, rewards=rewards, group_ids=torch.arange(B) // group)


def measure(shape, repeats, calls, threads):
    inputs = batch(*shape)
    credit = rhythm.CreditAssigner(threads=threads)
    credit(**inputs)  # warm-up: buffers sized

    def from_python():
        start = time.perf_counter()
        for _ in range(calls):
            credit(**inputs)
        return (time.perf_counter() - start) / calls

    def from_cpp():
        return credit._assigner.time_per_call(inputs["q"], inputs["k"], inputs["response_mask"], inputs["rewards"],
                                              inputs["group_ids"], calls)

    python, cpp = [], []
    for i in range(repeats):  # interleaved, each first in every other pair
        if i % 2:
            cpp.append(from_cpp()), python.append(from_python())
        else:
            python.append(from_python()), cpp.append(from_cpp())
    p, c = statistics.median(python), statistics.median(cpp)
    spread = (max(cpp) - min(cpp)) / c
    print(f"B {shape[0]} Hq {shape[1]} Hkv {shape[2]} N {shape[3]} d {shape[4]}: Python {p * 1e3:.3f} ms, "
          f"C++ {c * 1e3:.3f} ms per call (medians of {repeats} x {calls}; C++ min..max spread {100 * spread:.0f} %); "
          f"Python / C++ = {p / c:.4f} ({1e6 * (p - c):+.1f} us)")
    return p, c


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    print(f"rhythm {rhythm.__version__}, torch {torch.__version__}, CreditAssigner(threads={args.threads})")
    _, large = measure((64, 20, 4, 512, 64), args.repeats, 1, args.threads)
    python, cpp = measure((2, 2, 2, 32, 16), args.repeats, 200, args.threads)
    # The large call's own noise is far above the binding's cost; the tiny batch measures that cost.
    print(f"fixed cost of a call from Python: {1e6 * (python - cpp):.1f} us = "
          f"{100 * (python - cpp) / large:.4f} % of the large batch's C++ call")


if __name__ == "__main__":
    main()
