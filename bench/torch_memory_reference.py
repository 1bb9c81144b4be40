#!/usr/bin/env python3
"""PyTorch reference for `mqa bench train -task translate`: peak GPU memory and step time of the
same encoder–decoder, trained one step per batch shape over the same list of shapes.

The model is mqa's translation preset (models/config.go Preset, models/model.go,
models/blocks.go, layers/): one embedding table shared by source and target and tied to the
output projection, lookups scaled by sqrt(d), sinusoidal positions (sin in even columns, cos in
odd ones; no parameters), pre-norm blocks without biases (LayerNorm with gain and bias, eps
1e-5) and no dropout. Encoder layer: x + Wo·attn(LN(x)) over the source's unpadded keys, then
x + W2·relu(W1·LN(x)); a final LayerNorm. Decoder layer: causal self-attention, cross-attention
over the encoder output (its unpadded keys), feed-forward, each pre-norm and residual; a final
LayerNorm. MQA and GQA widen d_ff to keep MHA's parameter count as models.MatchedFFDim does for
an encoder–decoder. Loss: cross-entropy with label smoothing 0.1 over non-pad targets (id 0);
AdamW (betas 0.9/0.98, eps 1e-9, weight decay 0.01 on matrices only) and gradient clipping at 1.

Attention is computed like mqa's graph and bench/torch_reference.py's default ("explicit")
path: the h query heads are grouped by their K/V head ([B, g, r·T, d_k] against [B, g, S, d_k]),
scores scaled, masked and softmaxed explicitly.

For each shape of --shapes in order (BxSxT: batch × source length × target length), one
training step on a random batch of that shape: rows padded after a length drawn from the upper
half of the shape's (the first row full), as `mqa bench train -task translate` does. The list is
visited --repeat times. Prints one JSON line with torch.cuda.max_memory_allocated() and
max_memory_reserved() over the whole run and the mean step time of the last visit.
--count-only builds the model on the CPU and prints its parameter count, without a GPU.
"""
import argparse, json, math, time

import torch
import torch.nn as nn
import torch.nn.functional as F

# d, decoder layers, encoder layers, heads, d_k, d_ff, max_len (models/config.go presets)
PRESETS = {"tiny": (64, 2, 2, 4, 16, 256, 128), "small": (256, 4, 4, 4, 64, 1024, 128),
           "base": (512, 6, 6, 8, 64, 2048, 256), "paper": (1024, 6, 6, 8, 128, 4096, 256)}


def sinusoidal(max_len, d):
    """The [max_len, d] table of layers.Sinusoidal: sin(p / 10000^(i/d)) in even columns i, cos in i+1."""
    pos = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
    angle = pos / torch.pow(10000.0, torch.arange(0, d, 2, dtype=torch.float64) / d)
    table = torch.zeros(max_len, d, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : d // 2])
    return table.float()


class Attention(nn.Module):
    def __init__(s, d, h, kv, dk):
        super().__init__()
        s.h, s.kv, s.dk = h, kv, dk
        s.q = nn.Linear(d, h * dk, bias=False)
        s.k = nn.Linear(d, kv * dk, bias=False)
        s.v = nn.Linear(d, kv * dk, bias=False)
        s.o = nn.Linear(h * dk, d, bias=False)

    def forward(s, x, mem, hidden):
        """x [B, T, d] attends to mem [B, S, d]; hidden (True: masked) broadcasts to [B, g, r·T, S]."""
        B, T, _ = x.shape
        S = mem.shape[1]
        g, r, dk = s.kv, s.h // s.kv, s.dk
        q = s.q(x).view(B, T, g, r, dk).permute(0, 2, 3, 1, 4).reshape(B, g, r * T, dk)
        k = s.k(mem).view(B, S, g, dk).transpose(1, 2)  # B g S dk
        v = s.v(mem).view(B, S, g, dk).transpose(1, 2)
        p = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(dk))  # B g rT S
        p = p.masked_fill(hidden, float("-inf")).softmax(-1)
        o = (p @ v).view(B, g, r, T, dk).permute(0, 3, 1, 2, 4).reshape(B, T, g * r * dk)
        return s.o(o)


class FeedForward(nn.Module):
    def __init__(s, d, ff):
        super().__init__()
        s.fc1 = nn.Linear(d, ff, bias=False)
        s.fc2 = nn.Linear(ff, d, bias=False)

    def forward(s, x):
        return s.fc2(F.relu(s.fc1(x)))


class EncoderLayer(nn.Module):
    def __init__(s, d, h, kv, dk, ff):
        super().__init__()
        s.norm1, s.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        s.self_attn = Attention(d, h, kv, dk)
        s.ffn = FeedForward(d, ff)

    def forward(s, x, key_pad):
        h = s.norm1(x)
        x = x + s.self_attn(h, h, key_pad)
        return x + s.ffn(s.norm2(x))


class DecoderLayer(nn.Module):
    def __init__(s, d, h, kv, dk, ff):
        super().__init__()
        s.norm1, s.norm_cross, s.norm2 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        s.self_attn = Attention(d, h, kv, dk)
        s.cross_attn = Attention(d, h, kv, dk)
        s.ffn = FeedForward(d, ff)

    def forward(s, x, mem, causal, key_pad):
        h = s.norm1(x)
        x = x + s.self_attn(h, h, causal)
        x = x + s.cross_attn(s.norm_cross(x), mem, key_pad)
        return x + s.ffn(s.norm2(x))


class Seq2Seq(nn.Module):
    def __init__(s, vocab, d, layers, enc_layers, h, kv, dk, ff, max_len):
        super().__init__()
        s.d, s.r = d, h // kv
        s.embed = nn.Embedding(vocab, d)
        s.register_buffer("pos", sinusoidal(max_len, d), persistent=False)
        s.encoder = nn.ModuleList(EncoderLayer(d, h, kv, dk, ff) for _ in range(enc_layers))
        s.encoder_norm = nn.LayerNorm(d)
        s.decoder = nn.ModuleList(DecoderLayer(d, h, kv, dk, ff) for _ in range(layers))
        s.decoder_norm = nn.LayerNorm(d)
        nn.init.normal_(s.embed.weight, std=1 / math.sqrt(d))
        for m in s.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)

    def embed_tokens(s, ids):
        return s.embed(ids) * math.sqrt(s.d) + s.pos[: ids.shape[1]]

    def forward(s, src, src_lens, tgt_in, tgt_out):
        B, S = src.shape
        T = tgt_in.shape[1]
        key_pad = (torch.arange(S, device=src.device) >= src_lens[:, None])[:, None, None, :]  # B 1 1 S
        x = s.embed_tokens(src)
        for layer in s.encoder:
            x = layer(x, key_pad)
        mem = s.encoder_norm(x)
        causal = torch.ones(T, T, dtype=torch.bool, device=src.device).triu(1).repeat(s.r, 1)  # rows r·T
        y = s.embed_tokens(tgt_in)
        for layer in s.decoder:
            y = layer(y, mem, causal, key_pad)
        logits = F.linear(s.decoder_norm(y), s.embed.weight)  # tied output projection
        return F.cross_entropy(logits.reshape(B * T, -1).float(), tgt_out.reshape(-1), ignore_index=0, label_smoothing=0.1)


def matched_ff(d, h, kv, dk, ff, layers, enc_layers):
    """models.MatchedFFDim of an encoder–decoder: the K/V weights MQA/GQA drop from every attention
    block (encoder self, decoder self and cross) spread over the feed-forward blocks, rounded half up."""
    saved = 2 * d * (h - kv) * dk * (enc_layers + 2 * layers)
    unit = 2 * d * (enc_layers + layers)
    return ff + (2 * saved + unit) // (2 * unit)


def parse_shapes(spec, max_len):
    shapes = []
    for part in spec.split(","):
        try:
            b, s, t = (int(x) for x in part.strip().split("x"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"--shapes {spec!r}: {part!r} is not BxSxT")
        if min(b, s, t) < 1 or max(s, t) > max_len:
            raise argparse.ArgumentTypeError(f"--shapes {spec!r}: {part!r} needs positive sizes and lengths at most {max_len}")
        shapes.append((b, s, t))
    return shapes


def random_batch(g, b, s, t, vocab):
    """Random ids in 1..vocab-1; each row padded (id 0) after a length in the upper half of the shape's, the first row full."""
    def lengths(n):
        lens = n - torch.randint(0, n // 2 + 1, (b,), generator=g)
        lens[0] = n
        return lens

    src_lens, tgt_lens = lengths(s), lengths(t)
    src = torch.randint(1, vocab, (b, s), generator=g)
    src[torch.arange(s) >= src_lens[:, None]] = 0
    tgt_in = torch.randint(1, vocab, (b, t), generator=g)
    tgt_out = torch.randint(1, vocab, (b, t), generator=g)
    pad = torch.arange(t) >= tgt_lens[:, None]
    tgt_in[pad] = 0
    tgt_out[pad] = 0
    return src, src_lens, tgt_in, tgt_out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="base", choices=sorted(PRESETS))
    ap.add_argument("--attn", default="mha", help="mha, mqa or gqa:G")
    ap.add_argument("--vocab", type=int, default=8192, help="shared by source and target")
    ap.add_argument("--shapes", default="32x64x64,32x128x128", help="BxSxT,... (batch x source length x target length)")
    ap.add_argument("--repeat", type=int, default=2, help="times the shapes are visited; the last visit is timed")
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--bf16", action="store_true", help="autocast matrix products to bf16")
    ap.add_argument("--count-only", action="store_true", help="print the parameter count (CPU) and stop")
    a = ap.parse_args()
    d, L, Le, h, dk, ff, max_len = PRESETS[a.preset]
    if a.attn in ("mha", "mqa"):
        kv = h if a.attn == "mha" else 1
    else:
        groups = a.attn.removeprefix("gqa:")
        kv = int(groups) if a.attn.startswith("gqa:") and groups.isdigit() else 0
        if not (1 <= kv <= h and h % kv == 0):
            ap.error(f"--attn {a.attn!r}: want mha, mqa or gqa:G with G dividing {h}")
    if kv != h:
        ff = matched_ff(d, h, kv, dk, ff, L, Le)
    if a.vocab < 4 or a.repeat < 1:
        ap.error("--vocab must be at least 4 and --repeat positive")
    try:
        shapes = parse_shapes(a.shapes, max_len)
    except argparse.ArgumentTypeError as e:
        ap.error(str(e))
    torch.manual_seed(0)
    if a.count_only:
        model = Seq2Seq(a.vocab, d, L, Le, h, kv, dk, ff, max_len)
        print(json.dumps({"impl": "torch", "task": "translate", "preset": a.preset, "attn": a.attn, "kv_heads": kv,
                          "ff_dim": ff, "vocab": a.vocab, "params": sum(p.numel() for p in model.parameters())}), flush=True)
        return
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    dev = "cuda"
    model = Seq2Seq(a.vocab, d, L, Le, h, kv, dk, ff, max_len).to(dev)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": other, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.98), eps=1e-9)
    g = torch.Generator().manual_seed(1)
    data = [tuple(x.to(dev) for x in random_batch(g, b, s, t, a.vocab)) for b, s, t in shapes]

    def step(batch):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.bf16):
            loss = model(*batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()  # one sync per step, as mqa's TrainStep

    first = last = None
    for visit in range(a.repeat):
        if visit == a.repeat - 1:
            torch.cuda.synchronize()
            start = time.time()
        for batch in data:
            last = step(batch)
            first = last if first is None else first
    torch.cuda.synchronize()
    per = (time.time() - start) / len(shapes)
    tokens = sum(b * t for b, _, t in shapes) / len(shapes)
    mode = "bf16" if a.bf16 else ("tf32" if a.tf32 else "fp32")
    print(json.dumps({"impl": "torch-eager", "torch": torch.__version__, "gpu": torch.cuda.get_device_name(),
                      "task": "translate", "preset": a.preset, "attn": a.attn, "kv_heads": kv, "ff_dim": ff,
                      "vocab": a.vocab, "math": mode, "params": sum(p.numel() for p in model.parameters()),
                      "shapes": len(shapes), "shape_list": ",".join(f"{b}x{s}x{t}" for b, s, t in shapes),
                      "repeat": a.repeat, "peak_allocated_bytes": torch.cuda.max_memory_allocated(),
                      "peak_reserved_bytes": torch.cuda.max_memory_reserved(), "ms_per_step": per * 1e3,
                      "tokens_per_s": tokens / per, "loss_first": first, "loss_last": last}), flush=True)


if __name__ == "__main__":
    main()
