"""Where the time of an mqa training step goes on the GPU: GEMMs, our other kernels, and gaps.

Input: the CSV that `ncu --csv --metrics gpu__time_duration.sum` prints for a run of
`mqa bench train -graphs=false`, and that benchmark's JSON line (its ms per step, measured
without the profiler). Kernels are grouped as GEMM (cuBLAS: names with gemm, cutlass, xmma or
sm90) or by our kernel's name; steps are counted by k_xent_reduce, which runs once per
forward pass. gaps = measured ms/step - kernel ms/step (launch overhead and idle GPU time).

usage: python3 ncu_split.py NCU_CSV BENCH_JSON  -> a table on stdout, one JSON line last
"""
import csv
import json
import sys
from collections import defaultdict

UNIT_US = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3, "s": 1e6, "second": 1e6}


def kernel_times(csv_path):
    """(kernel name, µs) of every launch in an `ncu --csv --metrics gpu__time_duration.sum` CSV."""
    with open(csv_path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]  # ncu mixes the program's output in
    rows = []
    for r in csv.DictReader(lines):
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        if r["Metric Unit"] not in UNIT_US:
            sys.exit(f"unknown time unit {r['Metric Unit']!r} in the ncu CSV")
        rows.append((r["Kernel Name"], float(r["Metric Value"].replace(",", "")) * UNIT_US[r["Metric Unit"]]))
    return rows


def kernel_class(name):
    low = name.lower()
    if any(k in low for k in ("gemm", "gemv", "cutlass", "xmma", "sm90")):
        return "GEMM (cuBLAS)"
    return name.split("(")[0].strip()


def main(csv_path, bench_path):
    rows = [(name, us / 1e3) for name, us in kernel_times(csv_path)]  # ms
    steps = sum(1 for name, _ in rows if name.startswith("k_xent_reduce"))
    if steps == 0:
        sys.exit("no k_xent_reduce launch found: was this an mqa training run?")
    bench = json.loads(next(l for l in open(bench_path) if l.strip().startswith("{")))
    per = defaultdict(float)
    for name, ms in rows:
        per[kernel_class(name)] += ms / steps
    kernels = sum(per.values())
    step = bench["ms_per_step"]
    gemm = per.get("GEMM (cuBLAS)", 0.0)
    print(f"{steps} steps profiled; measured {step:.2f} ms/step without the profiler")
    print(f"{'class':28} {'ms/step':>8} {'share':>6}")
    for cls, ms in sorted(per.items(), key=lambda kv: -kv[1]):
        print(f"{cls:28} {ms:8.3f} {100 * ms / step:5.1f}%")
    print(f"{'gaps (step - kernels)':28} {step - kernels:8.3f} {100 * (step - kernels) / step:5.1f}%")
    print(json.dumps({"attn": bench.get("attn"), "math": bench.get("math"), "ms_per_step": step,
                      "gemm_ms": gemm, "other_kernels_ms": kernels - gemm, "gaps_ms": step - kernels,
                      "steps_profiled": steps}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
