"""How DiffRec and L-DiffRec grow with the number of items: parameters and peak memory.

    python research/ldiffrec_scaling.py                         # 1k, 10k, 100k items, CPU
    python research/ldiffrec_scaling.py --items 100000 --device cuda

For each item count I, one training step (forward + backward, no optimizer state) of a
batch of synthetic users (``--batch-size`` rows with ``--clicks`` random clicks each, a
Zipf-like popularity) through each model with the paper's ML-1M sizes:

    DiffRec    MLP I+10 -> 600 -> 200 -> 600 -> I                         ~ 1200 I weights
    L-DiffRec  C = 2 encoders I_c -> 2 d_c (d = 300), one decoder 300 -> I,
               latent MLP 300+10 -> 300 -> 300                              ~  600 I weights

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above what was allocated before the
model was built; on the CPU each measurement runs in a fresh process and reports its peak
resident set size (``resource.getrusage``) above the level reached after imports.
Prints a table, then one JSON line per (model, I).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import time

import numpy as np
import torch

MODELS = ("diffrec", "ldiffrec")


def build(name: str, n_items: int):
    from tutorial_lib.models.diffrec import DiffRec
    from tutorial_lib.models.ldiffrec import LDiffRec

    if name == "diffrec":
        return DiffRec(n_items, dims=(200, 600))
    return LDiffRec(n_items, clusters=np.arange(n_items) % 2, encoder_dims=(300,), mlp_dims=(300,))


def synthetic_batch(n_items: int, batch_size: int, clicks: int, seed: int = 0) -> torch.Tensor:
    """(batch_size, n_items) binary rows, ``clicks`` distinct items each, popularity ~ 1/rank."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1)
    x = np.zeros((batch_size, n_items), dtype=np.float32)
    for row in x:
        row[rng.choice(n_items, size=min(clicks, n_items), replace=False, p=p / p.sum())] = 1.0
    return torch.from_numpy(x)


def step(model, x: torch.Tensor) -> float:
    """One forward + backward pass; returns its seconds."""
    start = time.perf_counter()
    model.train()
    loss = model.loss(x)
    loss.backward()
    if x.is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _rss_mb() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS)
    scale = 1 / 1024 ** 2 if sys.platform == "darwin" else 1 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _measure_cpu(name, n_items, batch_size, clicks, queue):
    torch.set_num_threads(max(1, torch.get_num_threads()))
    x = synthetic_batch(n_items, batch_size, clicks)
    base = _rss_mb()
    model = build(name, n_items)
    params = sum(p.numel() for p in model.parameters())
    seconds = step(model, x)
    queue.put({"parameters": params, "peak_mb": _rss_mb() - base, "step_seconds": seconds})


def measure(name: str, n_items: int, batch_size: int, clicks: int, device: torch.device) -> dict:
    if device.type == "cuda":
        x = synthetic_batch(n_items, batch_size, clicks).to(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        model = build(name, n_items).to(device)
        params = sum(p.numel() for p in model.parameters())
        step(model, x)                                  # warm-up (kernels, allocator)
        model.zero_grad(set_to_none=True)
        torch.cuda.reset_peak_memory_stats(device)
        seconds = step(model, x)
        out = {"parameters": params, "peak_mb": (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20,
               "step_seconds": seconds}
        del model, x
        torch.cuda.empty_cache()
        return out
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_measure_cpu, args=(name, n_items, batch_size, clicks, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--batch-size", type=int, default=400)
    p.add_argument("--clicks", type=int, default=50)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    from tutorial_lib.utils import device as pick_device

    device = pick_device(args.device)
    rows = []
    for n_items in args.items:
        for name in MODELS:
            r = measure(name, n_items, args.batch_size, args.clicks, device)
            rows.append({"model": name, "n_items": n_items, "parameters": r["parameters"],
                         "peak_mb": round(r["peak_mb"], 1), "step_seconds": round(r["step_seconds"], 3),
                         "batch_size": args.batch_size, "device": str(device)})
    print(f"{'items':>8} {'model':>9} {'parameters':>12} {'peak MB':>9} {'step s':>7}")
    for r in rows:
        print(f"{r['n_items']:>8,} {r['model']:>9} {r['parameters']:>12,} {r['peak_mb']:>9.1f} "
              f"{r['step_seconds']:>7.3f}")
    for r in rows:
        print(json.dumps(r))
    return rows


if __name__ == "__main__":
    main()
