#!/usr/bin/env python3
"""Flash-attention baseline of bench/cuda: PyTorch's scaled_dot_product_attention forward, causal,
with the flash backend forced (torch.nn.attention.sdpa_kernel), on the Q/K shapes of bench_cuda.cu:
bf16 Q [1, 32, N, 128], K and V [1, Hkv, N, 128] (enable_gqa=True where Hkv < Hq).

Time: CUDA events, median of 10 calls after 3 warm-ups, each call queued behind a GPU sleep so that
host launch latency is not counted (as bench_cuda does). Memory: torch.cuda.max_memory_allocated()
during one call minus the memory allocated before it (so it includes the output O [1, 32, N, 128]).
TFLOP/s: 4 d FLOPs per (query, key) pair of the causal triangle (QK^T and PV), every query head.

    python3 bench/cuda/sdpa_baseline.py --out sdpa.json [--lengths 4096,8192] [--hkv 32,8]
"""
import argparse
import json
import statistics
import sys
import time


def parse_list(text):
    return [int(x) for x in text.split(",") if x]


def time_calls(torch, call, warmups, reps, sleep_cycles):
    """Median, min and max of `reps` event-timed calls after `warmups` (3 after 1 for slow calls)."""
    t0 = time.perf_counter()
    call()
    torch.cuda.synchronize()
    if time.perf_counter() - t0 > 0.5:
        warmups, reps = 1, 3
    for _ in range(warmups - 1):
        call()
    torch.cuda.synchronize()
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(reps):
        if sleep_cycles:
            torch.cuda._sleep(sleep_cycles)
        begin.record()
        call()
        end.record()
        end.synchronize()
        times.append(begin.elapsed_time(end))
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times),
            "warmups": warmups, "reps": reps}


def run_case(torch, F, sdpa_kernel, backend, hq, hkv, n, d, args):
    row = {"dtype": "bf16", "B": 1, "Hq": hq, "Hkv": hkv, "N": n, "d": d, "causal": True, "backend": "flash"}
    row["flops"] = 4.0 * d * hq * n * (n + 1) / 2
    gen = torch.Generator(device="cuda").manual_seed(1234 + n + hkv)
    q = torch.randn(1, hq, n, d, device="cuda", dtype=torch.bfloat16, generator=gen)
    k = torch.randn(1, hkv, n, d, device="cuda", dtype=torch.bfloat16, generator=gen)
    v = torch.randn(1, hkv, n, d, device="cuda", dtype=torch.bfloat16, generator=gen)
    row["input_bytes"] = (q.numel() + k.numel() + v.numel()) * 2
    gqa = hkv != hq
    row["gqa"] = "none" if not gqa else "enable_gqa"
    kv = (k, v)
    with sdpa_kernel(backend):
        def call():
            if gqa and row["gqa"] == "enable_gqa":
                return F.scaled_dot_product_attention(q, kv[0], kv[1], is_causal=True, enable_gqa=True)
            return F.scaled_dot_product_attention(q, kv[0], kv[1], is_causal=True)

        try:
            call()
        except (RuntimeError, TypeError) as e:
            if not gqa:
                raise
            # Flash without native GQA in this build: expand K and V (outside the measured memory).
            row["gqa"] = "expanded (enable_gqa failed: %s)" % str(e).splitlines()[0][:200]
            kv = (k.repeat_interleave(hq // hkv, dim=1), v.repeat_interleave(hq // hkv, dim=1))
            call()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = call()
        torch.cuda.synchronize()
        row["peak_bytes"] = torch.cuda.max_memory_allocated() - base
        row["output_bytes"] = out.numel() * out.element_size()
        del out
        row["flash"] = time_calls(torch, call, args.warmups, args.reps, args.sleep_cycles)
    row["median_ms"] = row["flash"]["median_ms"]
    row["tflops"] = row["flops"] / (row["median_ms"] * 1e9)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="sdpa_baseline.json")
    ap.add_argument("--lengths", default="4096,8192,16384,32768")
    ap.add_argument("--hkv", default="32,8")
    ap.add_argument("--hq", type=int, default=32)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--warmups", type=int, default=3)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--sleep-cycles", type=int, default=4_000_000, help="GPU sleep before each timed call (0: none)")
    args = ap.parse_args()

    result = {"program": "bench/cuda/sdpa_baseline.py",
              "timing": "CUDA events, median of 10 after 3 warm-ups, each call queued behind torch.cuda._sleep",
              "memory": "max_memory_allocated during one call minus memory_allocated before it (includes O)"}

    def write():
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")

    try:
        import torch
        import torch.nn.functional as F
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except Exception as e:  # no torch, or one without torch.nn.attention
        result["error"] = "import failed: %s: %s" % (type(e).__name__, e)
        write()
        print(result["error"], file=sys.stderr)
        return 1
    result["torch"] = torch.__version__
    result["torch_cuda"] = torch.version.cuda
    result["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    if not torch.cuda.is_available():
        result["error"] = "torch.cuda.is_available() is False"
        write()
        print(result["error"], file=sys.stderr)
        return 1
    props = torch.cuda.get_device_properties(0)
    result["gpu"] = props.name
    result["compute_capability"] = "%d.%d" % (props.major, props.minor)
    if args.sleep_cycles and not hasattr(torch.cuda, "_sleep"):
        args.sleep_cycles = 0
    result["sleep_cycles"] = args.sleep_cycles
    result["cases"] = []
    print("| Hkv | N | flash ms | TFLOP/s | peak MiB | gqa |")
    print("|---|---|---|---|---|---|")
    for hkv in parse_list(args.hkv):
        for n in parse_list(args.lengths):
            try:
                row = run_case(torch, F, sdpa_kernel, SDPBackend.FLASH_ATTENTION, args.hq, hkv, n, args.d, args)
                print("| %d | %d | %.3f | %.1f | %.1f | %s |" % (hkv, n, row["median_ms"], row["tflops"],
                                                                 row["peak_bytes"] / 2**20, row["gqa"]), flush=True)
            except Exception as e:
                row = {"Hkv": hkv, "N": n, "error": ("%s: %s" % (type(e).__name__, e))[:1000]}
                print("| %d | %d | failed: %s |" % (hkv, n, row["error"][:200]), flush=True)
            result["cases"].append(row)
            torch.cuda.empty_cache()
            write()
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
