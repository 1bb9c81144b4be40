"""Checks models exported by `mqa export -format hf` against Hugging Face transformers.

Run by scripts/hf_check.sh, which trains the models and exports them with
`-reference PROMPTS` (mqa's own logits and greedy continuations). For each model
NAME:KV (its export in WORK/NAME-hf, its run in WORK/NAME) this checks, on the CPU in FP32:

  - transformers loads it with AutoModelForCausalLM and AutoTokenizer, no code of ours;
  - the config's K/V heads equal KV, and so do the K/V projection's rows and the cache
    that generate() keeps (Llama): K/V heads are never replicated;
  - the logits on every prompt position match mqa's within --tol (max |difference|);
  - greedy generate() continues each prompt with exactly mqa's tokens, and its text is
    what `mqa generate` prints;
  - the Hugging Face tokenizer gives the ids of `mqa tokenize -tok` on every line of the
    test split (--test) and on a few hard strings (special-token text, long runs, white space).

It prints a table and writes everything as JSON (--json); the exit status is 1 if any
check fails.
"""

import argparse
import gzip
import json
import os
import subprocess
import sys

import tokenizers
import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

# One line each (no \n or \r: mqa tokenize reads lines).
HARD_STRINGS = [
    "</s> <s> <pad> are plain text here",
    "a" * 300,
    " " + "é" * 300,
    "x" + " " * 200 + "y",
    "tabs\tand\x0bvertical\x0cfeed \u00a0no-break\u3000ideographic\u2028line-separator \u0085next-line",
    "naïve café e\u0301t\u00e9 日本語 テキスト 😀 ½ Ⅻ 1,234.5",
    "--> ... !!! ??? (parens) [brackets] {braces}",
    "",
]


def mqa_tokenize(mqa, tokenizer_json, lines):
    """Runs `mqa tokenize -tok` on lines (one output line of ids per input line)."""
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    out = subprocess.run([mqa, "tokenize", "-tok", tokenizer_json], input=data, capture_output=True, check=True)
    rows = out.stdout.decode("utf-8").split("\n")
    assert rows[-1] == "", "mqa tokenize output does not end with a newline"
    rows = rows[:-1]
    assert len(rows) == len(lines), f"mqa tokenize gave {len(rows)} lines for {len(lines)}"
    return [[int(x) for x in r.split()] for r in rows]


def cache_kv_heads(past):
    """K/V heads of layer 0's cached keys ([batch, kv heads, length, head_dim]), if readable."""
    try:
        keys = past.layers[0].keys  # transformers 5 Cache
    except (AttributeError, IndexError, TypeError):
        try:
            keys = past[0][0]
        except (IndexError, TypeError, KeyError):
            return None
    return int(keys.shape[1]) if keys is not None and keys.dim() == 4 else None


def check_model(args, name, want_kv, test_lines):
    hf_dir = os.path.join(args.work, name + "-hf")
    ckpt = os.path.join(args.work, name)
    row = {"model": name, "failures": []}
    fail = row["failures"].append
    with open(os.path.join(hf_dir, "config.json")) as f:
        cfg = json.load(f)
    row["architecture"] = cfg["architectures"][0]
    heads = cfg.get("num_attention_heads", cfg.get("n_head"))
    if cfg["model_type"] == "llama":
        kv = cfg["num_key_value_heads"]
    elif cfg["model_type"] == "gpt_bigcode":
        kv = 1 if cfg.get("multi_query") else heads
    else:
        kv = heads
    row["heads"], row["kv_heads"] = heads, kv
    if kv != want_kv:
        fail(f"config has {kv} K/V heads, want {want_kv}")

    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    model.eval()
    tok = AutoTokenizer.from_pretrained(hf_dir)
    if cfg["model_type"] == "llama":
        attn = model.model.layers[0].self_attn
        rows = attn.k_proj.weight.shape[0]
        row["k_proj_rows"] = rows
        if rows != want_kv * cfg["head_dim"]:
            fail(f"k_proj has {rows} rows, want {want_kv} × {cfg['head_dim']}")

    with open(os.path.join(hf_dir, "reference.json")) as f:
        ref = json.load(f)
    row["prompts"] = len(ref["prompts"])
    row["max_abs_logit_diff"] = 0.0
    row["greedy_equal"] = row["generate_text_equal"] = row["prompt_ids_equal"] = 0
    row["cache_kv_heads"] = None
    for p in ref["prompts"]:
        ids = tok(p["text"], add_special_tokens=False)["input_ids"]
        if ids == p["ids"]:
            row["prompt_ids_equal"] += 1
        else:
            fail(f"prompt {p['text']!r}: tokenizer ids {ids}, mqa {p['ids']}")
        x = torch.tensor([p["ids"]])
        with torch.no_grad():
            out = model(x, use_cache=True)
        diff = (out.logits[0] - torch.tensor(p["logits"])).abs().max().item()
        row["max_abs_logit_diff"] = max(row["max_abs_logit_diff"], diff)
        if row["cache_kv_heads"] is None:
            row["cache_kv_heads"] = cache_kv_heads(out.past_key_values)
        with torch.no_grad():
            gen = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=args.max_new,
                                 do_sample=False, eos_token_id=2, pad_token_id=0)
        new = gen[0, x.shape[1]:].tolist()
        if 2 in new:
            new = new[: new.index(2)]
        if new == p["greedy"]:
            row["greedy_equal"] += 1
        else:
            fail(f"prompt {p['text']!r}: generate() gave {new}, mqa {p['greedy']}")
        printed = subprocess.run([args.mqa, "generate", "-ckpt", ckpt, "-prompt", p["text"], "-max", str(args.max_new)],
                                 capture_output=True, check=True).stdout
        printed = printed[:-1] if printed.endswith(b"\n") else printed
        hf_text = tok.decode(new, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if printed.decode("utf-8", "replace") == hf_text:
            row["generate_text_equal"] += 1
        else:
            fail(f"prompt {p['text']!r}: mqa generate printed {printed!r}, transformers decoded {hf_text!r}")
    if row["max_abs_logit_diff"] > args.tol:
        fail(f"logits differ by up to {row['max_abs_logit_diff']:.3g} > {args.tol}")
    if cfg["model_type"] == "llama" and row["cache_kv_heads"] not in (None, want_kv):
        fail(f"generate's cache holds {row['cache_kv_heads']} K/V heads, want {want_kv}")

    lines = test_lines + HARD_STRINGS
    want = mqa_tokenize(args.mqa, os.path.join(hf_dir, "tokenizer.json"), lines)
    got = tok(lines, add_special_tokens=False)["input_ids"]
    bad = [i for i in range(len(lines)) if got[i] != want[i]]
    row["tokenizer_lines"], row["tokenizer_lines_equal"] = len(lines), len(lines) - len(bad)
    for i in bad[:5]:
        fail(f"tokenizer line {i + 1} {lines[i][:60]!r}: transformers {got[i][:20]}…, mqa {want[i][:20]}…")
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mqa", required=True, help="the mqa binary")
    ap.add_argument("--work", required=True, help="directory with NAME (run) and NAME-hf (export) per model")
    ap.add_argument("--test", required=True, help="the LM test split (.txt or .txt.gz)")
    ap.add_argument("--json", required=True, help="where to write the results")
    ap.add_argument("--max-new", type=int, default=20, help="greedy tokens per prompt (as given to mqa export -max)")
    ap.add_argument("--tol", type=float, default=1e-4, help="largest allowed |logit difference|")
    ap.add_argument("models", nargs="+", help="NAME:KV, the expected K/V heads")
    args = ap.parse_args()
    torch.manual_seed(0)
    opener = gzip.open if args.test.endswith(".gz") else open
    with opener(args.test, "rt", encoding="utf-8", newline="") as f:
        test_lines = [line.rstrip("\r") for line in f.read().split("\n")]
    if test_lines and test_lines[-1] == "":
        test_lines.pop()

    rows = []
    for spec in args.models:
        name, kv = spec.rsplit(":", 1)
        try:
            rows.append(check_model(args, name, int(kv), test_lines))
        except Exception as e:  # a model that does not load is a failed row, not a crash
            rows.append({"model": name, "failures": [f"{type(e).__name__}: {e}"]})
    result = {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
              "torch": torch.__version__, "tolerance": args.tol, "rows": rows}
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(result, f, indent=2)

    print(f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}, torch {torch.__version__} (CPU, FP32)")
    head = f"{'model':<12} {'architecture':<22} {'heads':>5} {'kv':>3} {'cache kv':>8} {'max |Δlogit|':>12} {'greedy =':>8} {'text =':>7} {'tokenizer lines =':>18}  result"
    print(head)
    print("-" * len(head))
    for r in rows:
        if "architecture" not in r:
            print(f"{r['model']:<12} FAILED: {r['failures'][0]}")
            continue
        print(f"{r['model']:<12} {r['architecture']:<22} {r['heads']:>5} {r['kv_heads']:>3} {str(r['cache_kv_heads']):>8} "
              f"{r['max_abs_logit_diff']:>12.2e} {r['greedy_equal']:>4}/{r['prompts']:<3} {r['generate_text_equal']:>3}/{r['prompts']:<3} "
              f"{r['tokenizer_lines_equal']:>8}/{r['tokenizer_lines']:<9}  {'ok' if not r['failures'] else 'FAIL'}")
    failed = [r for r in rows if r["failures"]]
    for r in failed:
        for msg in r["failures"][:10]:
            print(f"  {r['model']}: {msg}")
    print(f"results: {args.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
