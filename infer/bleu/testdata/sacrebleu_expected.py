#!/usr/bin/env python3
"""Print sacreBLEU's reference values for the Go tests in infer/bleu.

Run from the repository root on a machine with sacrebleu installed:

    python3 infer/bleu/testdata/sacrebleu_expected.py | tee expected.txt

Files are read exactly like bleu.ReadLines does: split on "\n" only, drop
the empty string after a final "\n", strip one trailing "\r" per line.
Everything uses sacreBLEU's defaults (corpus_bleu / corpus_chrf with a
single reference stream).
"""
import json
import os
import sys

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

HERE = os.path.dirname(os.path.abspath(__file__))


def read_lines(path):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [l[:-1] if l.endswith("\r") else l for l in lines]


def report(name, hyps, refs):
    b = sacrebleu.corpus_bleu(hyps, [refs])
    c = sacrebleu.corpus_chrf(hyps, [refs])
    print(json.dumps({
        "set": name,
        "bleu": repr(b.score),
        "chrf": repr(c.score),
        "counts": list(b.counts),
        "totals": list(b.totals),
        "precisions": [repr(p) for p in b.precisions],
        "bp": repr(b.bp),
        "sys_len": b.sys_len,
        "ref_len": b.ref_len,
        "bleu_str": str(b),
        "chrf_str": str(c),
    }, ensure_ascii=False))


print("python", sys.version.replace("\n", " "))
print("sacrebleu", sacrebleu.__version__)
bm, cm = BLEU(), CHRF()
bm.corpus_score(["a"], [["a"]])
cm.corpus_score(["a"], [["a"]])
print("bleu_signature", bm.get_signature())
print("chrf_signature", cm.get_signature())
print("isspace", [hex(i) for i in range(0x110000) if chr(i).isspace()])

for name in ("small", "medium", "large"):
    report(name, read_lines(os.path.join(HERE, name + ".hyp")),
           read_lines(os.path.join(HERE, name + ".ref")))

SYNTHETIC = [
    ("perfect", ["the cat sat on the mat"], ["the cat sat on the mat"]),
    ("no_overlap", ["a b c d"], ["e f g h"]),
    ("brevity", ["the cat sat"], ["the cat sat on the mat"]),
    ("smoothing", ["the cat ate on a mat"], ["the cat sat on the mat"]),
    ("one_word", ["a"], ["a"]),
    ("empty_hyp", [""], ["a b"]),
    ("all_empty", ["", ""], ["", ""]),
    ("short_ref_chrf", ["abcdefgh"], ["ab"]),
    ("two_lines", ["the cat sat on the mat .", "a dog barked loudly"],
     ["the cat sat on a mat .", "the dog barked very loudly"]),
    ("longer_hyp", ["the the the the the the the"], ["the cat is on the mat"]),
]
for name, hyps, refs in SYNTHETIC:
    report(name, hyps, refs)

TOK_CASES = [
    "Hello, world!",
    "3,5 1.000 10-12 a-b 1- -1",
    "&amp;quot; &quot;x&quot; &lt;tag&gt; AT&amp;T & &am",
    "<skipped>hi<skip<skipped>ped>",
    "line-\nbreak\nnext",
    "a.b,c 1.a a.1 ,5 5, .. ,, 1,,2 a..b",
    "(parens) [brackets] {braces} $100 50% #tag @user ~tilde ^caret _under |pipe \\back `tick",
    "it's don't 'quoted' \"dq\"",
    "\u00a0nb\u2009thin\u3000ideo\u200bzw\x1cfs\x85nel\u2028ls\u180emvs",
    "¿Qué? ¡Sí! «comillas» “curly” — dash… é.",
    "  leading and trailing  ",
    "",
    "   ",
    "e.g. U.S.A. 3.14159 -5 5- x.",
    "1,000,000.00-2 9-9-9 .5.",
    "x--y 9--9 a+b=c <d> ;:?",
    "tab\there\r\nwin",
]
tok = Tokenizer13a()
for s in TOK_CASES:
    print("TOK", json.dumps([s, tok(s)]))
