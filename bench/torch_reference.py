#!/usr/bin/env python3
"""PyTorch reference for `mqa bench train`: the same decoder-only LM, timed on the same GPU.

The model matches mqa's benchmark config (models/blocks.go, layers/): token embedding scaled
by sqrt(d) plus a learned position table, pre-norm blocks x + Wo·attn(LN(x)) and
x + W2·relu(W1·LN(x)) without biases (LayerNorm with gain and bias, eps 1e-5), a final
LayerNorm, an untied head without bias, cross-entropy over non-pad targets (id 0), AdamW
(betas 0.9/0.98, eps 1e-9, weight decay 0.01 on matrices only) and gradient clipping at 1.

Attention is computed like mqa's graph: the h query heads are grouped by their K/V head
([B, g, r·T, d_k] against [B, g, T, d_k]: one batched product, K/V read once per group),
scores scaled, causally masked and softmaxed explicitly ("explicit"). --sdpa uses
F.scaled_dot_product_attention instead (flash attention: a different algorithm, reported
separately). --compile wraps the model in torch.compile.

Prints one JSON line like `mqa bench train -json`.
"""
import argparse, json, math, time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {"tiny": (64, 2, 4, 16, 256), "small": (256, 4, 4, 64, 1024),
           "base": (512, 6, 8, 64, 2048), "paper": (1024, 6, 8, 128, 4096)}


class Block(nn.Module):
    def __init__(s, d, h, kv, dk, ff, sdpa):
        super().__init__()
        s.h, s.kv, s.dk, s.sdpa = h, kv, dk, sdpa
        s.norm1, s.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        s.q = nn.Linear(d, h * dk, bias=False)
        s.k = nn.Linear(d, kv * dk, bias=False)
        s.v = nn.Linear(d, kv * dk, bias=False)
        s.o = nn.Linear(h * dk, d, bias=False)
        s.fc1 = nn.Linear(d, ff, bias=False)
        s.fc2 = nn.Linear(ff, d, bias=False)

    def attn(s, x, mask):
        B, T, _ = x.shape
        g, r, dk = s.kv, s.h // s.kv, s.dk
        q = s.q(x).view(B, T, g, r, dk)
        k = s.k(x).view(B, T, g, dk).transpose(1, 2)  # B g T dk
        v = s.v(x).view(B, T, g, dk).transpose(1, 2)
        if s.sdpa:
            q = q.permute(0, 2, 3, 1, 4).reshape(B, g * r, T, dk)
            k = k.repeat_interleave(r, dim=1) if r > 1 else k.expand(B, g * r, T, dk)
            v = v.repeat_interleave(r, dim=1) if r > 1 else v.expand(B, g * r, T, dk)
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # B h T dk
            o = o.transpose(1, 2).reshape(B, T, g * r * dk)
        else:
            q = q.permute(0, 2, 3, 1, 4).reshape(B, g, r * T, dk)
            p = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(dk))  # B g rT T
            p = p.masked_fill(mask, float("-inf")).softmax(-1)
            o = (p @ v).view(B, g, r, T, dk).permute(0, 3, 1, 2, 4).reshape(B, T, g * r * dk)
        return s.o(o)

    def forward(s, x, mask):
        x = x + s.attn(s.norm1(x), mask)
        return x + s.fc2(F.relu(s.fc1(s.norm2(x))))


class LM(nn.Module):
    def __init__(s, vocab, d, layers, h, kv, dk, ff, maxlen, sdpa):
        super().__init__()
        s.d = d
        s.embed = nn.Embedding(vocab, d)
        s.pos = nn.Embedding(maxlen, d)
        s.blocks = nn.ModuleList(Block(d, h, kv, dk, ff, sdpa) for _ in range(layers))
        s.norm = nn.LayerNorm(d)
        s.head = nn.Linear(d, vocab, bias=False)
        s.r = h // kv

    def forward(s, tokens, targets):
        B, T = tokens.shape
        x = s.embed(tokens) * math.sqrt(s.d) + s.pos(torch.arange(T, device=tokens.device))
        causal = torch.ones(T, T, dtype=torch.bool, device=tokens.device).triu(1)
        mask = causal.repeat(s.r, 1)  # rows r·T: query position = row mod T
        for b in s.blocks:
            x = b(x, mask)
        logits = s.head(s.norm(x))
        return F.cross_entropy(logits.view(B * T, -1).float(), targets.view(-1), ignore_index=0)


def matched_ff(d, h, kv, dk, ff):
    return ff + round(2 * d * (h - kv) * dk / (2 * d))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="base")
    ap.add_argument("--attn", default="mha")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--bf16", action="store_true", help="autocast matrix products to bf16")
    ap.add_argument("--sdpa", action="store_true")
    ap.add_argument("--compile", action="store_true")
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    d, L, h, dk, ff = PRESETS[a.preset]
    kv = {"mha": h, "mqa": 1}.get(a.attn) or int(a.attn.split(":")[1])
    if kv != h:
        ff = matched_ff(d, h, kv, dk, ff)
    dev = "cuda"
    torch.manual_seed(0)
    model = LM(a.vocab, d, L, h, kv, dk, ff, a.seq, a.sdpa).to(dev)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": other, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    fwd = torch.compile(model) if a.compile else model
    g = torch.Generator(device=dev).manual_seed(1)
    data = [(torch.randint(1, a.vocab, (a.batch, a.seq), device=dev, generator=g),
             torch.randint(1, a.vocab, (a.batch, a.seq), device=dev, generator=g)) for _ in range(2)]

    def step(i):
        tok, tgt = data[i % 2]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.bf16):
            loss = fwd(tok, tgt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()  # one sync per step, as mqa's TrainStep

    t0 = time.time()
    first = step(0)
    for i in range(1, a.warmup):
        step(i)
    torch.cuda.synchronize()
    warm_s = time.time() - t0
    start = time.time()
    for i in range(a.steps):
        last = step(i)
    torch.cuda.synchronize()
    per = (time.time() - start) / a.steps
    tokens = a.batch * a.seq
    hk, kvd = h * dk, kv * dk
    per_tok = L * (d * hk + 2 * d * kvd + hk * d + 2 * d * ff) + d * a.vocab
    flops = 3 * (2 * per_tok * tokens + L * 4 * a.batch * a.seq * a.seq * hk)
    mode = "bf16" if a.bf16 else ("tf32" if a.tf32 else "fp32")
    impl = "torch-" + ("compile" if a.compile else "eager") + ("-sdpa" if a.sdpa else "")
    print(json.dumps({"impl": impl, "torch": torch.__version__, "gpu": torch.cuda.get_device_name(), "preset": a.preset,
                      "attn": a.attn, "kv_heads": kv, "ff_dim": ff, "batch": a.batch, "seq": a.seq, "math": mode,
                      "params": sum(p.numel() for p in model.parameters()), "ms_per_step": per * 1e3,
                      "tokens_per_s": tokens / per, "flops_per_step": flops, "tflops": flops / per / 1e12,
                      "warmup_s": warm_s, "loss_first": first, "loss_last": last}), flush=True)


if __name__ == "__main__":
    main()
