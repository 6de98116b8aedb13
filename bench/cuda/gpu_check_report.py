#!/usr/bin/env python3
"""Merges what scripts/gpu-check left in its output folder into OUT/gpu-check.json and prints the
markdown rows for bench/RESULTS.md (machine, tests, sanitizers, maps path, Q/K path against flash
SDPA with the ratios rhythm/flash, float path, pipeline).

    python3 bench/cuda/gpu_check_report.py OUT [--nvcc PATH] [--elapsed SECONDS]

Reads OUT/steps/*.json (one per step: status, rc, seconds), OUT/logs/*.log, OUT/tests/*.json (gtest
JSON), OUT/bench_cuda.json and OUT/sdpa.json; any of them may be missing.
"""
import argparse
import datetime
import glob
import json
import os
import re
import subprocess
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        return {"error": "unreadable %s: %s" % (os.path.basename(path), e)}


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def tail(text, lines=40):
    return "\n".join(text.splitlines()[-lines:])


def machine_info(out, nvcc, bench, sdpa):
    info = {}
    smi = read_text(os.path.join(out, "logs", "info_gpu.log")).splitlines()
    if len(smi) >= 2 and "," in smi[1]:
        fields = [x.strip() for x in smi[1].split(",")]
        info.update(gpu=fields[0], driver=fields[1] if len(fields) > 1 else None,
                    gpu_memory=fields[2] if len(fields) > 2 else None)
    nvcc_text = read_text(os.path.join(out, "logs", "info_nvcc.log"))
    if not nvcc_text and nvcc:
        try:
            nvcc_text = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            nvcc_text = ""
    m = re.search(r"release [0-9.]+, V([0-9.]+)", nvcc_text)
    info["nvcc"] = m.group(1) if m else None
    git = read_text(os.path.join(out, "logs", "info_git.log")).splitlines()
    info["commit"] = git[0].strip() if git and re.fullmatch(r"[0-9a-f]{40}", git[0].strip()) else None
    info["uncommitted_files"] = max(0, len(git) - 1) if info["commit"] else None
    mach = (bench or {}).get("machine") or {}
    if mach:
        info.setdefault("gpu", mach.get("gpu"))
        info["cuda_driver_api"] = mach.get("driver_version")
        info["cuda_runtime"] = mach.get("runtime_version")
        info["compute_capability"] = mach.get("compute_capability")
        info["sm_count"] = mach.get("sm_count")
        info["nominal_bandwidth_tb_s"] = (mach.get("nominal_bandwidth_bytes_per_s") or 0) / 1e12
    if sdpa:
        info["torch"] = sdpa.get("torch")
        info["torch_cuda"] = sdpa.get("torch_cuda")
        info.setdefault("gpu", sdpa.get("gpu"))
    return info


def gtest_summary(out, name, log):
    """Counts of one gtest binary from its JSON, or from its log when it died before writing it."""
    data = load(os.path.join(out, "tests", name + ".json"))
    result = {"passed": 0, "failed": 0, "skipped": 0, "failed_tests": []}
    if isinstance(data, dict) and "testsuites" in data:
        for suite in data["testsuites"]:
            for test in suite.get("testsuite", []):
                full = "%s.%s" % (suite.get("name"), test.get("name"))
                if test.get("failures"):
                    result["failed"] += 1
                    result["failed_tests"].append(full)
                elif test.get("result") == "SKIPPED" or test.get("status") == "NOTRUN":
                    result["skipped"] += 1
                else:
                    result["passed"] += 1
        result["source"] = "gtest json"
        return result
    m = re.search(r"\[  PASSED  \] (\d+) test", log)
    result["passed"] = int(m.group(1)) if m else 0
    m = re.search(r"\[  SKIPPED \] (\d+) test", log)
    result["skipped"] = int(m.group(1)) if m else 0
    result["failed_tests"] = sorted(set(re.findall(r"\[  FAILED  \] ([\w/.]+)", log)))
    result["failed"] = len(result["failed_tests"])
    result["source"] = "log (no gtest json: the binary did not finish)"
    return result


def sanitizer_summary(log, status):
    """errors/hazards from compute-sanitizer's summary line; 'unavailable' when it printed none."""
    m = re.search(r"ERROR SUMMARY: (\d+) error", log)
    r = re.search(r"RACECHECK SUMMARY: (\d+) hazards? displayed \((\d+) errors?, (\d+) warnings?\)", log)
    if r:
        return {"result": "clean" if int(r.group(2)) == 0 else "hazards", "hazards": int(r.group(1)),
                "errors": int(r.group(2)), "warnings": int(r.group(3))}
    if m:
        return {"result": "clean" if int(m.group(1)) == 0 else "errors", "errors": int(m.group(1))}
    if status == "timeout":
        return {"result": "timeout"}
    return {"result": "unavailable", "reason": tail(log, 8)}


def fmt(x, digits=2):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if abs(x) >= 100:
        return "%.0f" % x
    return ("%." + str(digits) + "f") % x


def mib(x):
    return None if x is None else x / 2**20


def markdown(info, steps, tests, sanitizers, bench, sdpa, comparison):
    lines = []
    day = datetime.date.today().isoformat()
    lines.append("### GPU run %s: %s" % (day, info.get("gpu") or "unknown GPU"))
    lines.append("")
    lines.append("- Machine: %s (sm_%s, %s SMs, %s), driver %s (CUDA %s), runtime %s, nvcc %s; PyTorch %s (CUDA %s); "
                 "commit %s%s." % (
                     info.get("gpu"), (info.get("compute_capability") or "?").replace(".", ""), info.get("sm_count"),
                     info.get("gpu_memory"), info.get("driver"), info.get("cuda_driver_api"),
                     info.get("cuda_runtime"), info.get("nvcc"), info.get("torch"), info.get("torch_cuda"),
                     (info.get("commit") or "?")[:12],
                     " + %d uncommitted files" % info["uncommitted_files"] if info.get("uncommitted_files") else ""))
    if tests:
        parts = ["%s %d passed, %d failed, %d skipped%s" % (
            n, t["passed"], t["failed"], t["skipped"],
            " (failed: %s)" % ", ".join(t["failed_tests"][:8]) if t["failed_tests"] else "") for n, t in tests.items()]
        lines.append("- Tests: " + "; ".join(parts) + ".")
    else:
        lines.append("- Tests: none ran (see the build steps).")
    if sanitizers:
        parts = []
        for n, s in sanitizers.items():
            text = s["result"]
            if "hazards" in s:
                text += " (%d hazards, %d errors)" % (s["hazards"], s["errors"])
            elif "errors" in s and s["result"] != "clean":
                text += " (%d errors)" % s["errors"]
            parts.append("%s: %s" % (n, text))
        lines.append("- compute-sanitizer (first test of each suite): " + "; ".join(parts) + ".")
    bad = ["%s %s" % (s["name"], s["status"]) for s in steps if s["status"] not in ("ok",)]
    if bad:
        lines.append("- Steps not ok: " + ", ".join(bad) + ".")
    lines.append("")

    bench = bench or {}
    maps = bench.get("maps")
    if isinstance(maps, list) and maps:
        lines.append("Maps path: head_signals_from_maps, B = 2 (segments {0, 256, N} and {1024, 1536, N-512}), GB/s = "
                     "1e9 bytes/s of the lower-triangle elements read; read rows = a read-only kernel over exactly "
                     "those elements, read flat = the same byte count contiguously")
        lines.append("| dtype | maps | GB read | rhythm ms | rhythm GB/s | read rows GB/s | read flat GB/s | "
                     "rhythm/read rows | rhythm/read flat | rhythm of nominal |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for c in maps:
            if "dtype" not in c:
                lines.append("| failed: %s |" % c.get("error", "?")[:200])
                continue
            r = c.get("rhythm") or {}
            lines.append("| %s | [%d, %d, %d, %d] | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                c["dtype"], c["B"], c["H"], c["N"], c["N"], fmt(c["bytes_read"] / 1e9, 3),
                fmt(r.get("median_ms"), 3) if "median_ms" in r else "failed: " + str(r.get("error", "?"))[:120],
                fmt(c.get("rhythm_gbps")), fmt(c.get("read_rows_gbps")), fmt(c.get("read_flat_gbps")),
                fmt(c.get("rhythm_over_read_rows")), fmt(c.get("rhythm_over_read_flat")),
                "%.1f %%" % (100 * c["rhythm_share_of_nominal"]) if c.get("rhythm_share_of_nominal") else "-"))
        lines.append("")
    elif isinstance(maps, dict):
        lines.append("Maps path: failed: %s" % maps.get("error"))
        lines.append("")

    if comparison:
        lines.append("Q/K path: head_signals_from_qk (bf16, B = 1, Hq = 32, d = 128, segment {0, 256, N}) vs PyTorch "
                     "flash SDPA forward (causal, whole sequence); pass-1 TFLOP/s = 2 d per (response row, key) pair "
                     "over the whole call's time; memory = rhythm workspace + outputs vs flash peak allocation "
                     "(including O)")
        lines.append("| Hkv | N | H_hi | rhythm ms | flash ms | time rhythm/flash | pass-1 TFLOP/s | flash TFLOP/s | "
                     "rhythm workspace MiB | rhythm MiB (ws + out) | flash peak MiB | mem rhythm/flash |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for c in comparison:
            if c.get("error"):
                what = c["error"] if c["error"].startswith("skipped") else "failed: " + c["error"]
                lines.append("| %s | %s | %s | %s |||||||||" % (c["Hkv"], c["N"], c["H_hi"], what[:160]))
                continue
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                c["Hkv"], c["N"], c["H_hi"], fmt(c.get("rhythm_ms"), 3), fmt(c.get("flash_ms"), 3),
                fmt(c.get("time_rhythm_over_flash"), 3), fmt(c.get("pass1_tflops"), 1), fmt(c.get("flash_tflops"), 1),
                fmt(mib(c.get("workspace_bytes"))), fmt(mib(c.get("rhythm_bytes"))), fmt(mib(c.get("flash_peak_bytes"))),
                fmt(c.get("mem_rhythm_over_flash"), 3)))
        lines.append("")

    flt = bench.get("float")
    if isinstance(flt, dict):
        if flt.get("ran"):
            lines.append("Float path (f32 Q, K [1, 32, 32768, 128], H_hi = 100): runs, %s ms, pass-1 %s TFLOP/s, "
                         "workspace %s MiB." % (fmt(flt.get("median_ms"), 1), fmt(flt.get("pass1_tflops"), 1),
                                                fmt(mib(flt.get("workspace_bytes")))))
        elif flt.get("skipped"):
            lines.append("Float path (f32 Q, K [1, 32, 32768, 128], H_hi = 100): skipped (%s)." % flt["skipped"])
        else:
            lines.append("Float path (f32 Q, K [1, 32, 32768, 128], H_hi = 100): does not run: %s."
                         % str(flt.get("error") or (flt.get("rhythm") or {}).get("error"))[:300])
        lines.append("")

    pipe = bench.get("pipeline")
    if isinstance(pipe, dict):
        s, p = pipe.get("signals") or {}, pipe.get("pipeline") or {}
        lines.append("Pipeline: rhythm::cuda::credit_pipeline::run_from_qk (coupled_rhythm) vs head_signals_from_qk "
                     "alone, bf16 Q, K [128, 20, 512, 64]; GPU time (events) and host wall time (call + sync)")
        lines.append("| signals ms | pipeline ms | pipeline/signals | stages after signals / signals | "
                     "signals wall ms | pipeline wall ms | wall pipeline/signals |")
        lines.append("|---|---|---|---|---|---|---|")
        if "median_ms" in s and "median_ms" in p:
            lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                fmt(s["median_ms"], 3), fmt(p["median_ms"], 3), fmt(pipe.get("pipeline_over_signals"), 3),
                "%.1f %%" % (100 * pipe["after_signals_share"]) if "after_signals_share" in pipe else "-",
                fmt(s.get("wall_median_ms"), 3), fmt(p.get("wall_median_ms"), 3),
                fmt(pipe.get("pipeline_over_signals_wall"), 3)))
        else:
            lines.append("| %s | %s ||||||" % (s.get("median_ms", "failed: %s" % str(s.get("error"))[:120]),
                                              p.get("median_ms", "failed: %s" % str(p.get("error"))[:120])))
        lines.append("")
    if bench.get("error"):
        lines.append("bench_cuda: %s" % bench["error"])
    if sdpa and sdpa.get("error"):
        lines.append("SDPA baseline: %s" % sdpa["error"])
    return "\n".join(lines).rstrip() + "\n"


def compare(bench, sdpa):
    """One row per Q/K case of bench_cuda, with the flash case of the same (Hkv, N)."""
    flash = {}
    for c in (sdpa or {}).get("cases", []) or []:
        flash[(c.get("Hkv"), c.get("N"))] = c
    rows = []
    for c in (bench or {}).get("qk", []) if isinstance((bench or {}).get("qk"), list) else []:
        row = {"Hkv": c.get("Hkv"), "N": c.get("N"), "H_hi": c.get("H_hi")}
        if c.get("skipped"):
            row["error"] = "skipped: " + c["skipped"]
        elif not c.get("ran"):
            row["error"] = str(c.get("error") or (c.get("rhythm") or {}).get("error") or "did not run")
        else:
            row.update(rhythm_ms=c.get("median_ms"), pass1_tflops=c.get("pass1_tflops"),
                       workspace_bytes=c.get("workspace_bytes"),
                       rhythm_bytes=(c.get("workspace_bytes") or 0) + (c.get("output_bytes") or 0))
        f = flash.get((c.get("Hkv"), c.get("N")))
        if f and "median_ms" in f:
            row.update(flash_ms=f["median_ms"], flash_tflops=f.get("tflops"), flash_peak_bytes=f.get("peak_bytes"),
                       flash_gqa=f.get("gqa"))
            if row.get("rhythm_ms"):
                row["time_rhythm_over_flash"] = row["rhythm_ms"] / f["median_ms"]
                if f.get("peak_bytes"):
                    row["mem_rhythm_over_flash"] = row["rhythm_bytes"] / f["peak_bytes"]
        elif f:
            row["flash_error"] = f.get("error")
        rows.append(row)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--nvcc", default="nvcc")
    ap.add_argument("--elapsed", type=float, default=None)
    args = ap.parse_args()
    out = args.out

    steps = []
    for path in glob.glob(os.path.join(out, "steps", "*.json")):
        s = load(path)
        if isinstance(s, dict) and "name" in s:
            log = read_text(os.path.join(out, "logs", s["name"] + ".log"))
            if s["status"] != "ok":
                s["log_tail"] = tail(log)
            steps.append(s)
    steps.sort(key=lambda s: (s.get("ended_at_second", 0), s["name"]))

    bench = load(os.path.join(out, "bench_cuda.json"))
    sdpa = load(os.path.join(out, "sdpa.json"))
    info = machine_info(out, args.nvcc, bench, sdpa)

    tests, sanitizers = {}, {}
    for s in steps:
        log = read_text(os.path.join(out, "logs", s["name"] + ".log"))
        if s["name"].startswith("test_"):
            tests[s["name"][5:]] = dict(gtest_summary(out, s["name"][5:], log), status=s["status"])
        elif s["name"].startswith("sanitizer_") and s["status"] != "skipped":
            sanitizers[s["name"][len("sanitizer_"):]] = dict(sanitizer_summary(log, s["status"]), status=s["status"], rc=s["rc"])

    comparison = compare(bench, sdpa)
    text = markdown(info, steps, tests, sanitizers, bench, sdpa, comparison)
    merged = {
        "generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "elapsed_seconds": args.elapsed,
        "machine": info,
        "steps": steps,
        "tests": tests,
        "sanitizers": sanitizers,
        "comparison_qk_vs_flash": comparison,
        "bench_cuda": bench,
        "sdpa_baseline": sdpa,
        "markdown": text,
    }
    with open(os.path.join(out, "gpu-check.json"), "w") as f:
        json.dump(merged, f, indent=1)
        f.write("\n")
    sys.stdout.write(text)
    print("\nsteps: %d ok, %d not ok; wrote %s" % (sum(s["status"] == "ok" for s in steps),
                                                  sum(s["status"] != "ok" for s in steps),
                                                  os.path.join(out, "gpu-check.json")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
