#!/bin/bash
# GPU memory over many batch shapes (issue 14), on the GPU machine, after `scripts/gpu.sh build`
# here, the binaries gzipped into .gpu/ with the start-of-work binary as .gpu/mqa-old.gz, and the
# corpus .gpu/ml.{train,valid,test}.tsv.gz written by bench/many_lengths.py (base translation,
# sentences of 1 to 6 joined bible.en-es verses: many batch shapes up to 256 tokens).
#
#   scripts/memory_study.sh train NAME BINARY TIMEOUT [mqa train flags...]
#       trains the base MHA translation model 2,000 steps (TF32, CUDA graphs) while nvidia-smi
#       samples the card's used memory every second; writes $OUT/NAME.{log,jsonl,mem.csv}
#   scripts/memory_study.sh table NAME...      memory against steps, and the peaks
#   scripts/memory_study.sh bench BINARY...    base LM `mqa bench train` (TF32 graphs), one JSON line each
#   scripts/memory_study.sh torch              the shapes of $OUT/new.log through `mqa bench train -task translate`
#                                              and bench/torch_memory_reference.py: peak memory side by side
set -uo pipefail
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH=/usr/local/cuda/lib64 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/ml
for f in .gpu/*.gz; do [ -e "${f%.gz}" ] || gunzip -k "$f"; done
chmod +x .gpu/mqa .gpu/mqa-old .gpu/cuda.test 2>/dev/null

train() {
	local name=$1 bin=$2 limit=$3
	shift 3
	rm -rf "/tmp/ml/$name"
	nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader,nounits -lms 1000 >"$OUT/$name.mem.csv" &
	local smi=$!
	date +%s.%N >"$OUT/$name.start"
	MQA_CUDA_MATH=tf32 MQA_CUDA_GRAPHS=1 timeout "$limit" "$bin" train -task translate -train .gpu/ml.train.tsv \
		-valid .gpu/ml.valid.tsv -test .gpu/ml.test.tsv -preset base -attn mha -steps 2000 -eval-every 500 \
		-device cuda -out "/tmp/ml/$name" "$@" >"$OUT/$name.log" 2>&1
	echo "rc $?" >>"$OUT/$name.log"
	kill $smi
	cp "/tmp/ml/$name/train.jsonl" "$OUT/$name.jsonl" 2>/dev/null
	tr '\r' '\n' <"$OUT/$name.log" | grep -v '%|' | tail -n 6
}

table() {
	python3 - "$OUT" "$@" <<'PY'
import datetime, json, sys
out, names = sys.argv[1], sys.argv[2:]
for name in names:
    start = float(open(f"{out}/{name}.start").read())
    mem = []
    for line in open(f"{out}/{name}.mem.csv"):
        ts, used = [x.strip() for x in line.split(",")]
        mem.append((datetime.datetime.strptime(ts, "%Y/%m/%d %H:%M:%S.%f").timestamp(), int(used)))
    try:
        log = [json.loads(l) for l in open(f"{out}/{name}.jsonl")]
    except FileNotFoundError:
        log = []
    steps = [(datetime.datetime.fromisoformat(e["time"]).timestamp(), e["step"], e.get("peak_gpu_bytes")) for e in log if "loss" in e]
    rc = [l.strip() for l in open(f"{out}/{name}.log") if l.startswith("rc ")]
    print(f"== {name}: {len(steps)} steps logged, {rc[-1] if rc else '?'}; nvidia-smi peak {max(u for _, u in mem)} MiB")
    if steps and steps[-1][2]:
        print(f"   allocator peak (train.jsonl, last step) {steps[-1][2] / 2**20:.0f} MiB")
    # the card's used memory every 5 s (and at every change over 1 GiB) with the step reached then
    print("   seconds   step  used MiB")
    last = None
    for i, (t, used) in enumerate(mem):
        if i % 5 == 0 or last is None or abs(used - last) > 1024 or i == len(mem) - 1:
            step = max([s for (ts, s, _) in steps if ts <= t], default=0)
            print(f"   {t - start:7.0f} {step:6d} {used:9d}")
            last = used
PY
}

bench() {
	for bin in "$@"; do
		for attn in mha mqa; do
			MQA_CUDA_MATH=tf32 timeout 120 "$bin" bench train -device cuda -preset base -batch 32 -seq 256 -steps 20 -warmup 3 \
				-attn "$attn" -tf32 -graphs=true -json | sed "s|^{|{\"binary\":\"$bin\",|"
		done
	done
}

torch() {
	local shapes
	shapes=$(grep -o 'batch×source×target): [0-9x,]*' "$OUT/new.log" | head -1 | cut -d' ' -f2)
	vocab=$(grep -o 'vocab [0-9]*' "$OUT/new.log" | head -1 | cut -d' ' -f2)
	for attn in mha mqa; do
		MQA_CUDA_MATH=tf32 timeout 120 .gpu/mqa bench train -device cuda -task translate -preset base -attn "$attn" -vocab "$vocab" \
			-tf32 -graphs -shapes "$shapes" -repeat 2 -json
		timeout 120 python3 bench/torch_memory_reference.py --preset base --attn "$attn" --vocab "$vocab" --tf32 --shapes "$shapes" --repeat 2
	done
}

"$@"
