#!/bin/bash
# Checks `mqa export -format hf` against Hugging Face transformers, on the CPU (the GPU
# machine has Python with torch, transformers, tokenizers and safetensors; no Go).
#
#   go build -o .gpu/mqa ./cmd/mqa          here (a plain CPU build is enough)
#   scripts/hf_check.sh [MQA_BINARY]        there; MQA_BINARY defaults to .gpu/mqa
#
# It trains five tiny language models (150 steps each, side by side on the CPU), exports each with
# mqa export -reference (mqa's logits and greedy continuations of 8 prompts), and runs
# bench/hf_export_check.py on them: Llama exports of MHA, GQA-2 and MQA models
# (-norm rms -positions rope -activation swiglu), GPT-2 (the preset's MHA, LayerNorm,
# sinusoidal, ReLU) and GPTBigCode (MQA, LayerNorm, learned positions, GELU). The table goes
# to standard output and the JSON to $OUT/hf_check.json (OUT defaults to runs/hf-check).
set -euo pipefail
cd "$(dirname "$0")/.."
mqa=${1:-.gpu/mqa}
out=${OUT:-runs/hf-check}
steps=${STEPS:-150}
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

prompts=$work/prompts.txt
cat >"$prompts" <<'PROMPTS'
The
It was a
In the beginning of the year
She said that the
The city of London is
In 1999, the company
However, there are many
Text with </s> and <s> in it
PROMPTS

model() { # NAME then training flags
	local name=$1
	shift
	if ! "$mqa" train -preset tiny -steps "$steps" -vocab 600 -seq 32 -batch 8 -eval-every "$steps" -ckpt-every "$steps" \
		-keep 1 -out "$work/$name" "$@" 2>"$out/$name.train.log"; then
		tail -5 "$out/$name.train.log"
		exit 1
	fi
	"$mqa" export -ckpt "$work/$name" -format hf -out "$work/$name-hf" -reference "$prompts" -max 20
}
rope=(-norm rms -positions rope -activation swiglu)
pids=()
model llama-mha -attn mha "${rope[@]}" &
pids+=($!)
model llama-gqa2 -attn gqa:2 "${rope[@]}" &
pids+=($!)
model llama-mqa -attn mqa "${rope[@]}" &
pids+=($!)
model gpt2-mha -attn mha &
pids+=($!)
model bigcode-mqa -attn mqa -positions learned -activation gelu &
pids+=($!)
for pid in "${pids[@]}"; do
	wait "$pid"
done

python3 bench/hf_export_check.py --mqa "$mqa" --work "$work" --test data/corpora/lm-en.test.txt.gz \
	--json "$out/hf_check.json" --max-new 20 llama-mha:4 llama-gqa2:2 llama-mqa:1 gpt2-mha:4 bigcode-mqa:1
