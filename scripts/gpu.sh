#!/bin/bash
# GPU build and checks of mqa's CUDA backend (package cuda, build tag mqacuda).
#
#   scripts/gpu.sh setup    here, once (root): Debian's CUDA 11.8 headers and libraries
#                           (bookworm non-free nvidia-cuda-dev) and the link stubs that carry
#                           the CUDA 13 sonames of the GPU machine (../shared/cuda/make-stubs.sh)
#   scripts/gpu.sh vet      here: go vet -tags mqacuda ./... and an NVRTC compile of the kernels
#   scripts/gpu.sh build    here: .gpu/cuda.test and .gpu/mqa for the GPU machine
#   scripts/gpu.sh device   there (no Go): parity tests, then the training benchmark of mqa
#                           and of the PyTorch reference; JSON lines and logs under $OUT
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

# nvrtc_check compiles cuda/kernels/*.cu with the local NVRTC (no GPU needed).
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
	for f in cuda/kernels/*.cu; do "$tmp/check" "$f"; done
	rm -rf "$tmp"
}

case "${1:-}" in
setup) setup ;;
vet)
	go vet -tags mqacuda ./...
	nvrtc_check
	;;
build)
	mkdir -p .gpu
	go test -c -tags mqacuda -ldflags="-s -w" -o .gpu/cuda.test ./cuda
	go build -tags mqacuda -ldflags="-s -w" -o .gpu/mqa ./cmd/mqa
	cp bench/torch_reference.py .gpu/
	readelf -d .gpu/mqa | grep NEEDED
	;;
device)
	export LD_LIBRARY_PATH=/usr/local/cuda/lib64 PYTHONUNBUFFERED=1
	OUT=${OUT:-/tmp/out}
	mkdir -p "$OUT"
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
	if [ "${SKIP_TESTS:-0}" != 1 ]; then
		(cd cuda && timeout "${TEST_TIMEOUT:-240}" ../.gpu/cuda.test -test.v -test.count=1 ${TEST_RUN:+-test.run "$TEST_RUN"} 2>&1) | tee "$OUT/tests.log" | grep -v "^=== RUN" || true
	fi
	B="${BENCH_ARGS:---preset base --batch 32 --seq 256 --steps 20 --warmup 3}"
	G=$(echo "$B" | sed 's/--/-/g')
	: >"$OUT/bench.jsonl"
	for attn in ${ATTNS:-mha mqa}; do
		for mode in ${MODES:-tf32 fp32}; do
			flag=""; [ "$mode" = tf32 ] && flag="-tf32"
			for graphs in ${GRAPHS:-false true}; do
				timeout 120 .gpu/mqa bench train -device cuda $G -attn $attn $flag -graphs=$graphs -json >>"$OUT/bench.jsonl" 2>>"$OUT/bench.err" || echo "mqa $attn $mode graphs=$graphs failed" | tee -a "$OUT/bench.err"
			done
			pflag=""; [ "$mode" = tf32 ] && pflag="--tf32"
			[ "${SKIP_TORCH:-0}" = 1 ] || timeout 120 python3 .gpu/torch_reference.py $B --attn $attn $pflag >>"$OUT/bench.jsonl" 2>>"$OUT/bench.err" || echo "torch $attn $mode failed" | tee -a "$OUT/bench.err"
		done
		for extra in ${TORCH_EXTRA:-}; do
			timeout 200 python3 .gpu/torch_reference.py $B --attn $attn --tf32 $(echo "$extra" | tr ',' ' ') >>"$OUT/bench.jsonl" 2>>"$OUT/bench.err" || echo "torch $attn $extra failed" | tee -a "$OUT/bench.err"
		done
	done
	python3 - "$OUT/bench.jsonl" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
print(f"{'impl':22} {'attn':5} {'math':5} {'graphs':6} {'ms/step':>8} {'tokens/s':>10} {'TFLOP/s':>8} {'loss':>12}")
for r in rows:
    print(f"{r['impl']:22} {r['attn']:5} {r['math']:5} {str(r.get('cuda_graphs','')):6} {r['ms_per_step']:8.2f} {r['tokens_per_s']:10.0f} {r['tflops']:8.1f} {r['loss_first']:5.2f}>{r['loss_last']:5.2f}")
EOF
	;;
*)
	echo "usage: scripts/gpu.sh setup|vet|build|device" >&2
	exit 2
	;;
esac
