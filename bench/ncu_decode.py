"""Where the time of an mqa decode step goes on the GPU, kernel by kernel.

Input: the CSV that `ncu --csv --metrics gpu__time_duration.sum` prints for a run of
`mqa bench decode -device cuda` over one point with -host-steps 0. Steps are counted by
k_argmax_advance (once per step of the device loop); what runs before the first step (the
weights' bf16 copies made at upload, the bandwidth probes, the cache fills) is left out: the
first step starts at the first k_gather (the embedding; a translation's encoder too). Kernels are grouped as GEMM (cuBLAS) or by our kernel's name. Compare the total with
the step time the benchmark measures without the profiler: the rest is launch gaps.

usage: python3 ncu_decode.py NCU_CSV  -> a table on stdout, one JSON line last
"""
import json
import sys
from collections import defaultdict

from ncu_split import kernel_class, kernel_times

SETUP = ("k_copy4", "k_read4", "k_fill_hash")


def main(csv_path):
    rows = kernel_times(csv_path)
    first = next((i for i, (name, _) in enumerate(rows) if name.startswith("k_gather")), len(rows))
    rows = [(name, us) for name, us in rows[first:] if not name.startswith(SETUP)]
    steps = sum(1 for name, _ in rows if name.startswith("k_argmax_advance"))
    if steps == 0:
        sys.exit("no k_argmax_advance launch found: was this an mqa bench decode run?")
    per, count = defaultdict(float), defaultdict(int)
    for name, us in rows:
        per[kernel_class(name)] += us / steps
        count[kernel_class(name)] += 1
    total = sum(per.values())
    print(f"{steps} steps, {len(rows) / steps:.0f} kernels per step, {total:.1f} µs of kernels per step")
    for k, us in sorted(per.items(), key=lambda kv: -kv[1]):
        print(f"  {k:40s} {us:9.1f} µs  {100 * us / total:5.1f} %  ({count[k] / steps:.0f} per step)")
    print(json.dumps({"steps": steps, "kernel_us_per_step": total, "by_kernel_us": per}))


if __name__ == "__main__":
    main(*sys.argv[1:])
