#!/bin/bash
# GPU build and checks of mqa's CUDA backend (package cuda, build tag mqacuda).
#
#   scripts/gpu.sh setup    here, once (root): Debian's CUDA 11.8 headers and libraries
#                           (bookworm non-free nvidia-cuda-dev) and the link stubs that carry
#                           the CUDA 13 sonames of the GPU machine (../shared/cuda/make-stubs.sh)
#   scripts/gpu.sh vet      here: go vet -tags mqacuda ./... and an NVRTC compile of the kernels
#   scripts/gpu.sh build    here: .gpu/cuda.test and .gpu/mqa for the GPU machine
#   scripts/gpu.sh device   there (no Go): parity tests (training and decoding), compute-sanitizer
#                           memcheck/racecheck of the decode kernels at two sizes, the training
#                           benchmark against bench/torch_reference.py (SKIP_TRAIN=1 skips it) and
#                           the decode benchmark against bench/torch_decode_reference.py
#                           (SKIP_DECODE=1 skips it); JSON and logs under $OUT, tables last
#   scripts/gpu.sh ab BEFORE AFTER
#                           there: the base LM training step and the GPU decode step of two
#                           mqa binaries (e.g. a refactor's base and head), alternated twice in
#                           one call, one line per run (ms per step; µs per decode point)
#   scripts/gpu.sh study CORPUS STEPS LIMIT [compare flags]
#                           there: the base translation comparison on an embedded corpus, TF32
#                           with CUDA graphs, GPU decoding, every test sentence, stopped after
#                           LIMIT seconds; the report, results, plots and logs (no weights) in
#                           $OUT/CORPUS.tgz (BIN=path picks the mqa binary, default .gpu/mqa)
#
# Binaries travel gzipped (carry .gpu: the carried folder replaces the device's copy, so every
# call unpacks again); ab and study unpack .gpu/*.gz themselves.
#
# The build tag is mqacuda, not cuda: Gorgonia's own "cuda" tag would switch Gorgonia to its
# CUDA path (cuDNN 8, see DESIGN.md), which we do not use.
set -euo pipefail
cd "$(dirname "$0")/.."
STUBS=${STUBS:-/tmp/cuda13-stubs}
export CGO_LDFLAGS="-L$STUBS"

setup() {
	if ! [ -e /usr/include/cuda.h ]; then
		cat >/etc/apt/sources.list.d/nonfree.sources <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
		apt-get update -q && apt-get install -y -q --no-install-recommends nvidia-cuda-dev
	fi
	if [ -x ../shared/cuda/make-stubs.sh ]; then
		../shared/cuda/make-stubs.sh "$STUBS"
	else
		make_stubs "$STUBS"
	fi
}

# The same stubs as ../shared/cuda/make-stubs.sh, for checkouts without ../shared.
make_stubs() {
	mkdir -p "$1"
	for name in cublas cublasLt nvrtc; do
		src=$(ls /usr/lib/x86_64-linux-gnu/lib$name.so.1[0-9]* | head -1)
		nm -D --defined-only "$src" | awk '$2 ~ /^[TW]$/ {print $3}' | sed 's/@.*//' | sort -u |
			awk '{print "void " $1 "(void) {}"}' >"$1/$name.c"
		gcc -shared -fPIC -o "$1/lib$name.so" -Wl,-soname,lib$name.so.13 "$1/$name.c"
	done
}

# nvrtc_check compiles the kernel module (kernels.cu then decode.cu, as cuda/runtime.go joins them)
# with the local NVRTC (no GPU needed).
nvrtc_check() {
	local tmp
	tmp=$(mktemp -d)
	cat >"$tmp/check.c" <<'EOF'
#include <nvrtc.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char** argv) {
	FILE* f = fopen(argv[1], "rb"); if (!f) return 2;
	fseek(f, 0, SEEK_END); long n = ftell(f); fseek(f, 0, SEEK_SET);
	char* src = malloc(n + 1); if (fread(src, 1, n, f) != (size_t)n) return 2; src[n] = 0;
	nvrtcProgram p; nvrtcCreateProgram(&p, src, argv[1], 0, NULL, NULL);
	const char* opts[] = {"--gpu-architecture=compute_90", "--std=c++14"};
	nvrtcResult r = nvrtcCompileProgram(p, 2, opts);
	size_t ls; nvrtcGetProgramLogSize(p, &ls); char* log = malloc(ls + 1); nvrtcGetProgramLog(p, log);
	if (ls > 1) fprintf(stderr, "%s\n", log);
	if (r != NVRTC_SUCCESS) { fprintf(stderr, "nvrtc: %s\n", nvrtcGetErrorString(r)); return 1; }
	size_t ps; nvrtcGetPTXSize(p, &ps); printf("%s: %zu bytes of PTX\n", argv[1], ps); return 0;
}
EOF
	gcc -o "$tmp/check" "$tmp/check.c" -lnvrtc
	cat cuda/kernels/kernels.cu - cuda/kernels/decode.cu <<<"" >"$tmp/module.cu"
	"$tmp/check" "$tmp/module.cu"
	rm -rf "$tmp"
}

# train_bench: mqa bench train against bench/torch_reference.py (JSON lines in bench.jsonl).
train_bench() {
	B="${BENCH_ARGS:---preset base --batch 32 --seq 256 --steps 20 --warmup 3}"
	G=$(echo "$B" | sed 's/--/-/g')
	: >"$OUT/bench.jsonl"
	for attn in ${ATTNS:-mha mqa}; do
		for mode in ${MODES:-tf32 bf16 fp32}; do
			flag=""; [ "$mode" != fp32 ] && flag="-$mode"
			for graphs in ${GRAPHS:-false true}; do
				timeout 120 .gpu/mqa bench train -device cuda $G -attn $attn $flag -graphs=$graphs -json >>"$OUT/bench.jsonl" 2>>"$OUT/bench.err" || echo "mqa $attn $mode graphs=$graphs failed" | tee -a "$OUT/bench.err"
			done
			pflag=""; [ "$mode" != fp32 ] && pflag="--$mode"
			[ "${SKIP_TORCH:-0}" = 1 ] || timeout 120 python3 .gpu/torch_reference.py $B --attn $attn $pflag >>"$OUT/bench.jsonl" 2>>"$OUT/bench.err" || echo "torch $attn $mode failed" | tee -a "$OUT/bench.err"
		done
		for extra in ${TORCH_EXTRA:-}; do
			timeout 200 python3 .gpu/torch_reference.py $B --attn $attn --tf32 $(echo "$extra" | tr ',' ' ') >>"$OUT/bench.jsonl" 2>>"$OUT/bench.err" || echo "torch $attn $extra failed" | tee -a "$OUT/bench.err"
		done
	done
}

train_table() {
	python3 - "$OUT/bench.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
print(f"{'impl':22} {'attn':5} {'math':5} {'graphs':6} {'ms/step':>8} {'tokens/s':>10} {'TFLOP/s':>8} {'loss':>12}")
for r in rows:
    print(f"{r['impl']:22} {r['attn']:5} {r['math']:5} {str(r.get('cuda_graphs','')):6} {r['ms_per_step']:8.2f} {r['tokens_per_s']:10.0f} {r['tflops']:8.1f} {r['loss_first']:5.2f}>{r['loss_last']:5.2f}")
EOF
}

# sanitize: compute-sanitizer memcheck and racecheck of the decode kernels (the tensor-core and
# the CUDA-core split kernels with 1 and 3 splits and the planned split count, the tensor-core
# one also with fewer blocks than items, the in-kernel combine and cache append, reference
# kernel; f32 and bf16 K/V) at two sizes, and memcheck of two whole cached-decoding parity runs
# (gather, argmax, top-k and sampling kernels, grouped GEMMs).
sanitize() {
	SAN=/usr/local/cuda/bin/compute-sanitizer
	: >"$OUT/sanitizer.log"
	: >"$OUT/sanitizer.txt"
	for size in small large; do
		for tool in memcheck racecheck; do
			echo "== $tool $size" >>"$OUT/sanitizer.log"
			if (cd cuda && MQA_DECODE_SIZE=$size timeout 240 $SAN --tool $tool --error-exitcode 9 ../.gpu/cuda.test \
				-test.run 'TestDecodeAttentionKernel$' -test.count=1 >>"$OUT/sanitizer.log" 2>&1); then
				echo "sanitizer $tool $size: pass" | tee -a "$OUT/sanitizer.txt"
			else
				echo "sanitizer $tool $size: FAIL (see sanitizer.log)" | tee -a "$OUT/sanitizer.txt"
			fi
		done
	done
	echo "== memcheck parity" >>"$OUT/sanitizer.log"
	if (cd cuda && timeout 240 $SAN --tool memcheck --error-exitcode 9 ../.gpu/cuda.test \
		-test.run 'TestDecodeParityCPU/(lm-gelu|translate-swiglu).*/^(fp32-fp32-fast|bf16-bf16-fast)$' -test.count=1 >>"$OUT/sanitizer.log" 2>&1); then
		echo "sanitizer memcheck parity: pass" | tee -a "$OUT/sanitizer.txt"
	else
		echo "sanitizer memcheck parity: FAIL (see sanitizer.log)" | tee -a "$OUT/sanitizer.txt"
	fi
}

# decode_bench (issue 6): mqa bench decode -device cuda (FP32 and BF16 caches) and the PyTorch
# decode reference (FP32, BF16), same preset, attention variants, batches and contexts.
decode_bench() {
	local P=${DECODE_PRESET:-base} A=${DECODE_ATTN:-mha,gqa:2,mqa} Bs=${DECODE_BATCH:-1,8,64,256,1024}
	local Cs=${DECODE_CONTEXT:-128,1024,4096} S=${DECODE_STEPS:-20}
	timeout "${DECODE_TIMEOUT:-420}" .gpu/mqa bench decode -device cuda -preset "$P" -attn "$A" -batch "$Bs" -context "$Cs" \
		-steps "$S" -cache "${DECODE_CACHE:-fp32,bf16}" -host-steps "${DECODE_HOST_STEPS:-5}" -json >"$OUT/decode.json" 2>"$OUT/decode.err" ||
		echo "mqa bench decode failed (rc $?), see decode.err" | tee -a "$OUT/decode.err"
	tail -n 3 "$OUT/decode.err"
	: >"$OUT/decode_torch.jsonl"
	[ "${SKIP_TORCH:-0}" = 1 ] && return 0
	for dt in ${DECODE_TORCH_DTYPES:-fp32 bf16}; do
		timeout "${DECODE_TORCH_TIMEOUT:-300}" python3 .gpu/torch_decode_reference.py --preset "$P" --attn "$A" --batch "$Bs" \
			--context "$Cs" --steps "$S" --dtype "$dt" >>"$OUT/decode_torch.jsonl" 2>>"$OUT/decode_torch.err" ||
			echo "torch decode $dt failed or timed out (rc $?)" | tee -a "$OUT/decode_torch.err"
	done
	return 0
}

decode_table() {
	python3 - "$OUT/decode.json" "$OUT/decode_torch.jsonl" <<'EOF'
import json, sys
try:
    res = json.load(open(sys.argv[1]))
except Exception as e:
    print("no mqa decode results:", e)
    res = {"rows": []}
torch = [json.loads(l) for l in open(sys.argv[2]) if l.strip().startswith("{")]
print(f"decode: {res.get('gpu', '?')}; copy {res.get('copy_gbps', 0):.0f} GB/s, read {res.get('read_gbps', 0):.0f} GB/s (floor: {res.get('floor_bandwidth', '?')})")
tk = {(r["attn"], r["cache_dtype"], r["batch"], r["context"], r["impl"]): r["us_per_step"] for r in torch if "us_per_step" in r}
mha = {(r["cache_dtype"], r["batch"], r["context"]): r["us_per_step"] for r in res["rows"] if r["attn"] == "mha"}
def f(x, w=11, p=1):
    return f"{x:{w}.{p}f}" if x else " " * (w - 1) + "-"
print(f"{'attn':6} {'cache':5} {'batch':>5} {'ctx':>5} {'mqa µs':>9} {'floor µs':>9} {'×floor':>7} {'GB/s':>6} {'torch-graph':>11} {'torch-eager':>11} {'mqa/graph':>9} {'MHA/this':>8} {'search µs':>9}")
for r in res["rows"]:
    k = (r["attn"], r["cache_dtype"], r["batch"], r["context"])
    g, e = tk.get(k + ("torch-graph",)), tk.get(k + ("torch-eager",))
    m = mha.get((r["cache_dtype"], r["batch"], r["context"]))
    print(f"{r['attn']:6} {r['cache_dtype']:5} {r['batch']:5} {r['context']:5} {r['us_per_step']:9.1f} {r['floor_us']:9.1f} "
          f"{r['ratio_to_floor']:7.2f} {r['achieved_gbps']:6.0f} {f(g)} {f(e)} {f(r['us_per_step'] / g if g else 0, 9, 2)} "
          f"{f(m / r['us_per_step'] if m else 0, 8, 2)} {f(r.get('host_us_per_step', 0), 9, 0)}")
for s in res.get("skipped") or []:
    print("mqa skipped:", s)
for r in torch:
    if "skipped" in r:
        print("torch skipped:", r["attn"], r["cache_dtype"], r["batch"], r["context"], r["skipped"])
EOF
}

# train_profile (PROFILE=1): where a training step's time goes — Nsight Compute times every
# kernel of a short un-captured bench train run; bench/ncu_split.py groups them into GEMMs,
# our kernels and gaps against the step time measured without the profiler.
train_profile() {
	B="${BENCH_ARGS:---preset base --batch 32 --seq 256}"
	G=$(echo "$B" | sed 's/--/-/g')
	for attn in ${ATTNS:-mha mqa}; do
		timeout 120 .gpu/mqa bench train -device cuda $G -attn $attn -tf32 -graphs=false -steps 10 -warmup 3 -json >"$OUT/profile-$attn.json" 2>>"$OUT/profile.err"
		timeout 300 /usr/local/cuda/bin/ncu --csv --clock-control none --cache-control none --metrics gpu__time_duration.sum \
			.gpu/mqa bench train -device cuda $G -attn $attn -tf32 -graphs=false -steps 2 -warmup 1 -json >"$OUT/ncu-$attn.csv" 2>>"$OUT/profile.err" ||
			echo "ncu $attn failed (rc $?)" | tee -a "$OUT/profile.err"
		python3 bench/ncu_split.py "$OUT/ncu-$attn.csv" "$OUT/profile-$attn.json" | tee "$OUT/split-$attn.txt"
	done
}

# unpack gunzips the carried binaries in .gpu.
unpack() {
	for f in .gpu/*.gz; do gunzip -kf "$f"; done
	chmod +x .gpu/mqa* .gpu/cuda.test* 2>/dev/null || true
}

# ab BEFORE AFTER: training and decoding steps of two binaries, alternated.
ab() {
	export LD_LIBRARY_PATH=/usr/local/cuda/lib64
	unpack
	for _ in 1 2; do
		for bin in "$1" "$2"; do
			for attn in mha mqa; do
				timeout 60 "$bin" bench train -device cuda -preset base -batch 32 -seq 256 -steps 30 -warmup 5 -attn $attn -tf32 -graphs -json 2>/dev/null |
					tail -n 1 | python3 -c "import json, sys; r = json.load(sys.stdin); print('$bin train', r['attn'], f\"{r['ms_per_step']:.2f} ms/step\")"
			done
			timeout 90 "$bin" bench decode -device cuda -preset base -attn mha,mqa -batch 1,64,1024 -context 128,4096 -steps 20 -cache fp32 -json 2>/dev/null |
				python3 -c "import json, sys; r = json.load(sys.stdin); print('$bin decode µs', ' '.join(f\"{x['attn']}/{x['batch']}/{x['context']}:{x['us_per_step']:.0f}\" for x in r['rows']))"
		done
	done
}

# study CORPUS STEPS LIMIT [compare flags]: the base translation comparison (issue 19).
study() {
	export LD_LIBRARY_PATH=/usr/local/cuda/lib64 PYTHONUNBUFFERED=1
	OUT=${OUT:-/tmp/out}
	mkdir -p "$OUT"
	unpack
	local corpus=$1 steps=$2 limit=$3
	shift 3
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
	MQA_CUDA_MATH=tf32 MQA_CUDA_GRAPHS=1 timeout "$limit" "${BIN:-.gpu/mqa}" compare -device cuda -decode-device cuda -preset base \
		-tasks translate -mt-corpus "$corpus" -steps "$steps" -bleu-lines 0 -decode-batch 1024 -out "/tmp/study/$corpus" "$@" >"$OUT/$corpus.log" 2>&1
	echo "compare rc $?"
	grep -E "^\[compare" "$OUT/$corpus.log" | tail -n 20 || true
	(cd /tmp/study && find "$corpus" -type f ! -name '*.safetensors' -size -4M | tar czf "$OUT/$corpus.tgz" -T -)
	grep -A 4 "^## What" "/tmp/study/$corpus/report.md" 2>/dev/null || true
}

device() {
	export LD_LIBRARY_PATH=/usr/local/cuda/lib64 PYTHONUNBUFFERED=1
	OUT=${OUT:-/tmp/out}
	mkdir -p "$OUT"
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
	if [ "${SKIP_TESTS:-0}" != 1 ]; then
		(cd cuda && timeout "${TEST_TIMEOUT:-300}" ../.gpu/cuda.test -test.v -test.count=1 ${TEST_RUN:+-test.run "$TEST_RUN"} 2>&1) |
			tee "$OUT/tests.log" | grep -E "^(--- |FAIL|ok|PASS|panic)" || true
	fi
	[ "${SKIP_SANITIZER:-0}" = 1 ] || sanitize
	[ "${SKIP_TRAIN:-0}" = 1 ] || train_bench
	[ "${SKIP_DECODE:-0}" = 1 ] || decode_bench
	if [ "${PROFILE:-0}" = 1 ]; then train_profile; fi
	[ "${SKIP_TRAIN:-0}" = 1 ] || train_table
	[ "${SKIP_DECODE:-0}" = 1 ] || decode_table
}

case "${1:-}" in
setup) setup ;;
vet)
	go vet -tags mqacuda ./...
	nvrtc_check
	;;
build)
	mkdir -p .gpu
	go test -c -tags mqacuda -buildvcs=true -ldflags="-s -w" -o .gpu/cuda.test ./cuda
	go build -tags mqacuda -buildvcs=true -ldflags="-s -w" -o .gpu/mqa ./cmd/mqa
	cp bench/torch_reference.py bench/torch_decode_reference.py .gpu/
	readelf -d .gpu/mqa | grep NEEDED
	;;
device) device ;;
ab) ab "$2" "$3" ;;
study)
	shift
	study "$@"
	;;
*)
	echo "usage: scripts/gpu.sh setup|vet|build|device|ab BEFORE AFTER|study CORPUS STEPS LIMIT [flags]" >&2
	exit 2
	;;
esac
