#!/usr/bin/env python3
"""PyTorch reference for `mqa bench decode -device cuda`: the same LM's cached greedy decoding.

The model is mqa's preset LM as the GPU benchmark builds it (models.Preset, random weights):
token embedding scaled by sqrt(d) plus sinusoidal positions, pre-norm blocks
x + Wo·attn(LN(x)) and x + W2·relu(W1·LN(x)) without biases (LayerNorm eps 1e-5), a final
LayerNorm and the output projection tied to the embedding. MQA/GQA widen d_ff to keep the
parameter count of MHA (d_ff + (h − kv)·d_k for a decoder-only LM), as mqa does.

Decoding uses a static cache per layer, K and V [B, kv, maxLen, d_k] with maxLen = context +
steps + 2: each step writes the new row at the current position (index_copy_) and attends over
the whole static cache with the positions after the current one masked (the usual static-cache
formulation; it reads maxLen rows where mqa reads only the filled ones, so maxLen is kept just
above the context). The h query heads are grouped by K/V head ([B, kv, r, d_k] against
[B, kv, T, d_k]), so K/V are read once per group as in mqa. The next token is the argmax,
chosen on the GPU and fed back there (no host round trip), as in mqa's timed loop.

Timed: eager (`torch-eager`) and the step captured once into a CUDA graph and replayed
(`torch-graph`), `--steps` steps after a warm-up, with CUDA events. --dtype bf16 runs weights,
cache and arithmetic in bf16 (mqa's bf16 mode keeps fp32 weights and stores only the cache in
bf16: compare like with like). Prints one JSON line per point, like the rows of
`mqa bench decode -device cuda -json`.
"""
import argparse, json, math

import torch
import torch.nn.functional as F

PRESETS = {"tiny": (64, 2, 4, 16, 256), "small": (256, 4, 4, 64, 1024),
           "base": (512, 6, 8, 64, 2048), "paper": (1024, 6, 8, 128, 4096)}


def sinusoidal(max_len, d, device, dtype):
    pos = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(0, d, 2, dtype=torch.float64)
    angle = pos / torch.pow(10000.0, i / d)
    pe = torch.zeros(max_len, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : d // 2])
    return pe.to(device=device, dtype=dtype)


class DecodeLM:
    """Weights as plain tensors (x @ W with W [in, out], as mqa's Linear)."""

    def __init__(s, vocab, d, layers, h, kv, dk, ff, max_len, device, dtype, seed=0):
        g = torch.Generator(device="cpu").manual_seed(seed)

        def xavier(i, o):
            a = math.sqrt(6.0 / (i + o))
            return ((torch.rand(i, o, generator=g) * 2 - 1) * a).to(device=device, dtype=dtype)

        s.d, s.h, s.kv, s.dk, s.r = d, h, kv, dk, h // kv
        s.embed = (torch.randn(vocab, d, generator=g) / math.sqrt(d)).to(device=device, dtype=dtype)
        s.pe = sinusoidal(max_len, d, device, dtype)
        s.layers = []
        for _ in range(layers):
            s.layers.append(dict(
                ln1=(torch.ones(d, device=device, dtype=dtype), torch.zeros(d, device=device, dtype=dtype)),
                ln2=(torch.ones(d, device=device, dtype=dtype), torch.zeros(d, device=device, dtype=dtype)),
                wq=xavier(d, h * dk), wk=xavier(d, kv * dk), wv=xavier(d, kv * dk), wo=xavier(h * dk, d),
                w1=xavier(d, ff), w2=xavier(ff, d)))
        s.lnf = (torch.ones(d, device=device, dtype=dtype), torch.zeros(d, device=device, dtype=dtype))

    def params(s):
        n = s.embed.numel() + s.lnf[0].numel() * 2
        for l in s.layers:
            n += sum(t.numel() for k, t in l.items() if k.startswith("w")) + 4 * s.d
        return n

    def step(s, tokens, pos, kcache, vcache, mask_row):
        """One greedy step for all rows at position pos (a 1-element long tensor): writes the
        new K/V rows, returns the argmax tokens."""
        B = tokens.shape[0]
        scale = 1.0 / math.sqrt(s.dk)
        x = s.embed[tokens] * math.sqrt(s.d) + s.pe.index_select(0, pos)
        # mask_row[t] = 0 for t ≤ pos, −inf after
        for i, l in enumerate(s.layers):
            hN = F.layer_norm(x, (s.d,), *l["ln1"], eps=1e-5)
            q = (hN @ l["wq"]).view(B, s.kv, s.r, s.dk)
            k = (hN @ l["wk"]).view(B, s.kv, 1, s.dk)
            v = (hN @ l["wv"]).view(B, s.kv, 1, s.dk)
            kcache[i].index_copy_(2, pos, k)
            vcache[i].index_copy_(2, pos, v)
            sc = torch.matmul(q, kcache[i].transpose(-1, -2)) * scale + mask_row  # B kv r T
            p = sc.softmax(-1)
            o = torch.matmul(p, vcache[i]).reshape(B, s.h * s.dk)
            x = x + o @ l["wo"]
            x = x + F.relu(F.layer_norm(x, (s.d,), *l["ln2"], eps=1e-5) @ l["w1"]) @ l["w2"]
        logits = F.layer_norm(x, (s.d,), *s.lnf, eps=1e-5) @ s.embed.t()
        return logits.argmax(-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="base")
    ap.add_argument("--attn", default="mha,gqa:2,mqa")
    ap.add_argument("--batch", default="1,8,64,256,1024")
    ap.add_argument("--context", default="128,1024,4096")
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--modes", default="eager,graph")
    ap.add_argument("--mem-fraction", type=float, default=0.85)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    dev = "cuda"
    dtype = torch.float32 if a.dtype == "fp32" else torch.bfloat16
    elem = 4 if a.dtype == "fp32" else 2
    d, L, h, dk, ff0 = PRESETS[a.preset]
    contexts = [int(c) for c in a.context.split(",")]
    for attn in a.attn.split(","):
        kv = {"mha": h, "mqa": 1}.get(attn) or int(attn.split(":")[1])
        ff = ff0 + (h - kv) * dk
        for B in [int(b) for b in a.batch.split(",")]:
            for ctx in contexts:
                max_len = ctx + a.steps + 8
                base = {"impl": "", "torch": torch.__version__, "gpu": torch.cuda.get_device_name(), "preset": a.preset,
                        "task": "lm", "attn": attn, "kv_heads": kv, "ff_dim": ff, "batch": B, "beam": 1, "context": ctx,
                        "cache_dtype": a.dtype, "weight_dtype": a.dtype}
                cache_bytes = 2 * L * B * kv * max_len * dk * elem
                free, _ = torch.cuda.mem_get_info()
                if cache_bytes + B * a.vocab * 4 * 2 > a.mem_fraction * free:
                    print(json.dumps({**base, "skipped": f"needs {cache_bytes / 2**20:.0f} MiB of cache, {free / 2**20:.0f} MiB free"}), flush=True)
                    continue
                torch.cuda.empty_cache()
                try:
                    m = DecodeLM(a.vocab, d, L, h, kv, dk, ff, max_len, dev, dtype)
                    base["params"] = m.params()
                    g = torch.Generator(device=dev).manual_seed(1)
                    kc = [(torch.rand(B, kv, max_len, dk, device=dev, generator=g) * 2 - 1).to(dtype) for _ in range(L)]
                    vc = [(torch.rand(B, kv, max_len, dk, device=dev, generator=g) * 2 - 1).to(dtype) for _ in range(L)]
                    tokens = torch.randint(3, a.vocab, (B,), device=dev, generator=g)
                    pos = torch.tensor([ctx - 2], device=dev, dtype=torch.long)
                    ar = torch.arange(max_len, device=dev)
                    neg = torch.tensor(float("-inf"), device=dev, dtype=dtype)
                    zero = torch.tensor(0.0, device=dev, dtype=dtype)

                    def one():
                        mask_row = torch.where(ar <= pos, zero, neg)
                        nxt = m.step(tokens, pos, kc, vc, mask_row)
                        tokens.copy_(nxt)
                        pos.add_(1)

                    for mode in a.modes.split(","):
                        pos.fill_(ctx - 2)
                        run = one
                        if mode == "graph":
                            s = torch.cuda.Stream()
                            s.wait_stream(torch.cuda.current_stream())
                            with torch.cuda.stream(s):
                                for _ in range(2):
                                    one()
                            torch.cuda.current_stream().wait_stream(s)
                            pos.fill_(ctx - 2)
                            graph = torch.cuda.CUDAGraph()
                            with torch.cuda.graph(graph):
                                one()
                            pos.fill_(ctx - 2)
                            run = graph.replay
                        with torch.no_grad():
                            for _ in range(2):  # warm-up: positions ctx−2, ctx−1
                                run()
                            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                            start.record()
                            for _ in range(a.steps):
                                run()
                            end.record()
                            torch.cuda.synchronize()
                        us = start.elapsed_time(end) * 1e3 / a.steps
                        vis = ctx + (a.steps - 1) / 2
                        wbytes = elem * m.params()  # every weight once (the tied embedding is the head)
                        kvb = int(2 * L * B * kv * dk * (vis * elem + 4))
                        print(json.dumps({**base, "impl": "torch-" + mode, "us_per_step": us, "us_per_token": us / B,
                                          "weight_bytes_per_step": wbytes, "kv_bytes_per_step": kvb,
                                          "bytes_per_step": wbytes + kvb, "kv_rows_read": max_len}), flush=True)
                        if mode == "graph":
                            del graph
                    del m, kc, vc
                except torch.cuda.OutOfMemoryError as e:
                    print(json.dumps({**base, "skipped": "out of memory: " + str(e).split("\n")[0]}), flush=True)
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
