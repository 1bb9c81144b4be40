#!/usr/bin/env python3
"""Write a parallel corpus with many sentence lengths, for testing memory over batch shapes.

Each output pair joins k consecutive pairs of a source<TAB>target file, k drawn uniformly from
1..K, one window starting at every input line, so the lengths spread from one sentence to K
(with --max-join 8 on bible.en-es: 1 to about 300 BPE tokens a side). Usage:

    bench/many_lengths.py IN.tsv OUT.tsv [--max-join 8] [--seed 1] [--limit N]
"""
import argparse, random

ap = argparse.ArgumentParser()
ap.add_argument("input")
ap.add_argument("output")
ap.add_argument("--max-join", type=int, default=8)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--limit", type=int, default=0, help="at most this many pairs (0: one per input line)")
a = ap.parse_args()
rng = random.Random(a.seed)
pairs = [l.rstrip("\n").split("\t") for l in open(a.input, encoding="utf-8") if "\t" in l]
n = len(pairs) if a.limit == 0 else min(a.limit, len(pairs))
with open(a.output, "w", encoding="utf-8") as out:
    for i in range(n):
        k = rng.randint(1, a.max_join)
        window = pairs[i:i + k]
        out.write(" ".join(p[0] for p in window) + "\t" + " ".join(p[1] for p in window) + "\n")
