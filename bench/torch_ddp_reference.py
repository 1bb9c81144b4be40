#!/usr/bin/env python3
"""PyTorch DDP reference for `mqa bench train -device cuda -gpus N`: the same models, data-parallel
over the same GPUs with NCCL, one batch per GPU per step (a fixed batch per GPU, as mqa's -gpus).

The LM is bench/torch_reference.py's (mqa's `bench train` LM), the translation model
bench/torch_memory_reference.py's (mqa's translation preset); both are imported from those files,
so the three scripts time one definition. The model is wrapped in DistributedDataParallel
(25 MB buckets, gradients as bucket views: the all-reduce overlaps the backward pass), then
trained like the single-GPU scripts: AdamW (betas 0.9/0.98, eps 1e-9, weight decay 0.01 on
matrices only), gradient clipping at 1, one loss.item() per step.

Run one process per GPU with torchrun, e.g. on 2 GPUs:

    torchrun --standalone --nproc_per_node 2 bench/torch_ddp_reference.py --task lm --preset base
    torchrun --standalone --nproc_per_node 2 bench/torch_ddp_reference.py --task translate --preset base \
        --shapes 32x64x64,32x128x128

NCCL_NVLS_ENABLE=0 (NVLink multicast off) is set unless already set. Rank 0 prints one JSON line
like `mqa bench train -json`, with "ranks" and tokens/s over all GPUs.
"""
import argparse, json, os, sys, time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_memory_reference as mt  # noqa: E402
import torch_reference as lm  # noqa: E402


def kv_heads(attn, h):
    if attn == "mha":
        return h
    if attn == "mqa":
        return 1
    groups = attn.removeprefix("gqa:")
    kv = int(groups) if attn.startswith("gqa:") and groups.isdigit() else 0
    if not (1 <= kv <= h and h % kv == 0):
        raise SystemExit(f"--attn {attn!r}: want mha, mqa or gqa:G with G dividing {h}")
    return kv


def build(a, dev):
    """The model and, per step of one visit, this rank's batch and its target tokens."""
    g = torch.Generator().manual_seed(1 + dist.get_rank())
    if a.task == "lm":
        d, L, h, dk, ff = lm.PRESETS[a.preset]
        kv = kv_heads(a.attn, h)
        if kv != h:
            ff = lm.matched_ff(d, h, kv, dk, ff)
        model = lm.LM(a.vocab, d, L, h, kv, dk, ff, a.seq, False)
        data = [(torch.randint(1, a.vocab, (a.batch, a.seq), generator=g),
                 torch.randint(1, a.vocab, (a.batch, a.seq), generator=g)) for _ in range(2)]
        steps = [(tuple(x.to(dev) for x in data[i % 2]), a.batch * a.seq) for i in range(a.steps)]
        return model.to(dev), kv, ff, steps
    d, L, Le, h, dk, ff, max_len = mt.PRESETS[a.preset]
    kv = kv_heads(a.attn, h)
    if kv != h:
        ff = mt.matched_ff(d, h, kv, dk, ff, L, Le)
    model = mt.Seq2Seq(a.vocab, d, L, Le, h, kv, dk, ff, max_len)
    steps = [(tuple(x.to(dev) for x in mt.random_batch(g, b, s, t, a.vocab)), b * t) for b, s, t in mt.parse_shapes(a.shapes, max_len)]
    return model.to(dev), kv, ff, steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="lm", choices=["lm", "translate"])
    ap.add_argument("--preset", default="base")
    ap.add_argument("--attn", default="mha")
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=32, help="lm: sequences per GPU per step")
    ap.add_argument("--seq", type=int, default=256, help="lm: tokens per sequence")
    ap.add_argument("--steps", type=int, default=30, help="lm: timed steps")
    ap.add_argument("--shapes", default="32x64x64,32x128x128", help="translate: BxSxT,... one step each per visit")
    ap.add_argument("--repeat", type=int, default=2, help="visits of the steps (lm: of --steps); the last is timed")
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--bf16", action="store_true", help="autocast matrix products to bf16")
    a = ap.parse_args()
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
    torch.cuda.set_device(dev)
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    torch.manual_seed(0)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
    model, kv, ff, steps = build(a, dev)
    ddp = DDP(model, device_ids=[dev.index], bucket_cap_mb=25, gradient_as_bucket_view=True)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": other, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.98), eps=1e-9)

    def step(batch):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=a.bf16):
            loss = ddp(*batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    first = last = None
    for visit in range(a.repeat):
        if visit == a.repeat - 1:
            torch.cuda.synchronize()
            dist.barrier()
            start = time.time()
        for batch, _ in steps:
            last = step(batch)
            first = last if first is None else first
    torch.cuda.synchronize()
    per = (time.time() - start) / len(steps)
    tokens = world * sum(n for _, n in steps) / len(steps)
    if rank == 0:
        mode = "bf16" if a.bf16 else ("tf32" if a.tf32 else "fp32")
        v = torch.cuda.nccl.version()  # a tuple in recent PyTorch, an int in older ones
        out = {"impl": "torch-ddp", "torch": torch.__version__, "nccl": ".".join(map(str, v)) if isinstance(v, tuple) else str(v),
               "gpu": torch.cuda.get_device_name(), "ranks": world, "task": a.task, "preset": a.preset, "attn": a.attn,
               "kv_heads": kv, "ff_dim": ff, "vocab": a.vocab, "math": mode, "params": sum(p.numel() for p in model.parameters()),
               "ms_per_step": per * 1e3, "tokens_per_s": tokens / per, "loss_first": first, "loss_last": last,
               "peak_allocated_bytes": torch.cuda.max_memory_allocated()}
        out.update({"batch": a.batch, "seq": a.seq} if a.task == "lm" else {"shape_list": a.shapes, "repeat": a.repeat})
        print(json.dumps(out), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
