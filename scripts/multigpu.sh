#!/bin/bash
# Data-parallel training on several GPUs: checks and scaling, run on the GPU machine after
# `scripts/gpu.sh build` here (it uses .gpu/mqa and .gpu/cuda.test).
#
#   scripts/multigpu.sh [N...]   GPU counts to time (default: 1 2, and 4 where 4 are visible)
#
# 1. TestNCCLAllReduce and TestDataParallelGPUs on the most GPUs asked for (tests.log).
# 2. Scaling with a fixed batch per GPU (scaling.jsonl): mqa bench train -gpus N and PyTorch
#    DDP (bench/torch_ddp_reference.py) on the base LM and the base translation model.
# 3. The loss curve of one global batch on 1 and N GPUs (curve-*/train.jsonl): whole
#    micro-batches dealt (-accum N) and rows split (-accum 1).
# MATH=tf32|bf16 picks the arithmetic of both (default fp32); OUT the output folder.
set -euo pipefail
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-/usr/local/cuda/lib64} PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
if [ -z "${MQA_NCCL_LIB:-}" ]; then
	MQA_NCCL_LIB=$(python3 -c 'import nvidia.nccl, os; print(os.path.join(nvidia.nccl.__path__[0], "lib", "libnccl.so.2"))' 2>/dev/null || true)
	export MQA_NCCL_LIB
fi
echo "MQA_NCCL_LIB=$MQA_NCCL_LIB" | tee "$OUT/env.txt"
visible=$(nvidia-smi -L | wc -l)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$OUT/env.txt"
counts=${*:-1 2}
if [ $# -eq 0 ] && [ "$visible" -ge 4 ]; then counts="1 2 4"; fi
most=$(echo $counts | tr ' ' '\n' | sort -n | tail -1)
flag=""; pflag=""
if [ "${MATH:-fp32}" != fp32 ]; then flag="-$MATH"; pflag="--$MATH"; fi

(cd cuda && MQA_TEST_GPUS=$most timeout 300 ../.gpu/cuda.test -test.v -test.count=1 -test.run 'TestNCCLAllReduce|TestDataParallelGPUs' 2>&1) |
	tee "$OUT/tests.log" | grep -E "^(--- |FAIL|ok|PASS|panic)|bandwidth|GPUs:" || true

SHAPES=${SHAPES:-32x64x64,32x128x128,16x256x256}
: >"$OUT/scaling.jsonl"
for n in $counts; do
	timeout 300 .gpu/mqa bench train -device cuda -preset base -gpus "$n" $flag -steps 20 -warmup 3 -json >>"$OUT/scaling.jsonl" 2>>"$OUT/scaling.err" || echo "mqa lm $n GPUs failed" | tee -a "$OUT/scaling.err"
	timeout 300 .gpu/mqa bench train -device cuda -task translate -preset base -shapes "$SHAPES" -gpus "$n" $flag -json >>"$OUT/scaling.jsonl" 2>>"$OUT/scaling.err" || echo "mqa translate $n GPUs failed" | tee -a "$OUT/scaling.err"
	[ "${SKIP_TORCH:-0}" = 1 ] && continue
	for task in lm translate; do
		timeout 300 python3 -m torch.distributed.run --standalone --nproc_per_node "$n" bench/torch_ddp_reference.py --task $task --preset base \
			--steps 20 --shapes "$SHAPES" $pflag >>"$OUT/scaling.jsonl" 2>>"$OUT/scaling.err" || echo "torch $task $n GPUs failed" | tee -a "$OUT/scaling.err"
	done
done
python3 - "$OUT/scaling.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
base = {}
print(f"{'impl':12} {'task':9} {'GPUs':>4} {'ms/step':>9} {'tokens/s':>10} {'scaling':>8}")
for r in rows:
    task, n = r.get("task", "lm"), r.get("ranks", 1)
    key = (r["impl"], task)
    if n == 1:
        base[key] = r["tokens_per_s"]
    s = r["tokens_per_s"] / base[key] if key in base else float("nan")
    print(f"{r['impl']:12} {task:9} {n:4} {r['ms_per_step']:9.2f} {r['tokens_per_s']:10.0f} {s:7.2f}x")
PY

if [ "$most" -gt 1 ]; then
	for accum in "$most" 1; do
		for n in 1 "$most"; do
			timeout 600 .gpu/mqa train -device cuda -gpus "$n" -preset small -steps 200 -accum "$accum" -seed 3 -eval-every 100 -ckpt-every 200 \
				-out "$OUT/curve-accum$accum-gpus$n" 2>"$OUT/curve-accum$accum-gpus$n.err" || echo "curve accum $accum on $n GPUs failed" | tee -a "$OUT/curve.err"
		done
		python3 - "$OUT/curve-accum$accum-gpus1/train.jsonl" "$OUT/curve-accum$accum-gpus$most/train.jsonl" "$accum" <<'PY'
import json, sys
def losses(p):
    return {e["step"]: e["loss"] for e in map(json.loads, open(p)) if "loss" in e}
a, b = losses(sys.argv[1]), losses(sys.argv[2])
rel = [abs(b[s] - a[s]) / abs(a[s]) for s in a if s in b]
print(f"loss curve, -accum {sys.argv[3]}: {len(rel)} steps, worst relative difference {max(rel):.2e}, at step 200 {a.get(200)} vs {b.get(200)}")
PY
	done
fi
