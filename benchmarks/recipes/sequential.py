"""Recipes for DiffuRec (Li, Sun & Li, TOIS 2023) and SASRec on amazon_beauty / synthetic.

    python benchmarks/reproduce.py diffurec --dataset amazon_beauty --device cuda
    python benchmarks/reproduce.py sasrec   --dataset amazon_beauty --device cuda
    python benchmarks/reproduce.py diffurec --dataset synthetic --fast
    python benchmarks/recipes/sequential.py speed diffurec --batches 5    # s/epoch on this machine
    python benchmarks/recipes/sequential.py grid sasrec --device cuda --epochs 60   # SASRec tuning
    python benchmarks/recipes/sequential.py evalseeds diffurec --checkpoint build/diffurec.pt --seeds 1 2 3
                                                          # test spread over inference noise

Protocol (shared/reference/published_results.md beside the repo): DiffuRec's leave-one-out split of
Amazon Beauty (validation = second last item, test = last, test input = training sequence +
validation item), full ranking over all 12,101 items, HR and NDCG @5/10/20 averaged over
users exactly (not per-batch means, as the released code does), x100 ("scale": 100).
Two protocols, both reported:
* ``hr@10`` ...         the paper's: history NOT masked (seen items stay in the ranking)
* ``masked_hr@10`` ...  the usual one: training (and for test, validation) items masked
Model selection: validation NDCG@10 under the paper's protocol, every ``eval_every`` epochs,
stop after ``patience`` evaluations without improvement; test at the best validation epoch.

DiffuRec: the paper's settings (hidden 128, length 50, 4 blocks x 4 heads, dropout 0.1,
embedding dropout 0.3, T = 32 trunc-linear, lambda ~ N(0.001, 0.001^2) (mean, std 0.001), Adam lr 1e-3, batch 512,
StepLR x0.1 every 100 epochs as released, 500 epochs, eval every 20, patience 5).
SASRec: full-softmax cross-entropy and the SASRec paper's settings for the sparse Amazon
data (Adam lr 1e-3, batch 128, 2 blocks, 1 head, dropout 0.5, length 50), hidden 64 instead of
50. ``grid sasrec`` re-checks hidden and dropout on Beauty's validation NDCG@10 (SASREC_GRID);
at 43–56 s per CPU epoch (4 configs x up to 200 epochs) that grid is a GPU job and has not been run yet: SASRec's figures in
RESULTS.md are the recipe's setting, already above the published ones.

Speed: big evaluation batches on CUDA; everywhere the exact savings of the library
(last-position-only final block, padding trimmed, length-sorted chunks on CPU). DiffuRec trains in
fp32 on every device: its batches are launch-bound on a GPU, and bf16 autocast (which adds cast
kernels) measured slower on an H200, 5.1 against 3.9 s per epoch; on this CPU it gained only 1.25x.
SASRec keeps the library's default (bf16 autocast on CUDA), which has not been compared.
``speed`` times a fixed number of training batches at the paper's settings and extrapolates to
one epoch (labelled so), with the load average to show CPU contention. Its ``--amp`` defaults to
what the recipe trains with (fp32 for DiffuRec, the library default for SASRec).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from tutorial_lib.cli.recipes import (DIFFUREC, DIFFUREC_TRAIN, FAST_DIFFUREC, FAST_SASREC,  # the settings
                                      FAST_SASREC_TRAIN, FAST_TRAIN, SASREC, SASREC_TRAIN)
from tutorial_lib.data import InteractionData
from tutorial_lib.datasets import load_diffurec_pkl
from tutorial_lib.metrics import MetricAccumulator
from tutorial_lib.models.diffurec import DiffuRec
from tutorial_lib.models.sasrec import SASRec
from tutorial_lib.sequences import SequenceBatches, loo_synthetic, next_item_windows
from tutorial_lib.train import fit
from tutorial_lib.utils import device as pick_device
from tutorial_lib.utils import seed_everything

KS = (5, 10, 20)
KEYS = [f"{m}@{k}" for m in ("hr", "ndcg") for k in KS]
SASREC_GRID = [dict(SASREC, hidden=h, dropout=p) for h in (64, 128) for p in (0.2, 0.5)]


def subsample_users(data: InteractionData, n_users: int, seed: int = 0) -> InteractionData:
    """The same data restricted to ``n_users`` random users (all items kept)."""
    users = np.sort(np.random.default_rng(seed).choice(data.n_users, n_users, replace=False))
    return InteractionData(train=data.train[users], valid=data.valid[users], test=data.test[users],
                           sequences=[data.sequences[u] for u in users],
                           name=f"{data.name}[{n_users} users]")


def load(args) -> InteractionData:
    if args.dataset == "amazon_beauty":
        data = load_diffurec_pkl(Path(args.data_dir) / "amazon_beauty" / "dataset.pkl")
        return subsample_users(data, 1500, seed=0) if args.fast else data
    if args.dataset == "synthetic":
        return loo_synthetic(seed=0)[0]
    raise ValueError(f"the sequential recipes run on amazon_beauty or synthetic, not {args.dataset!r}")


def _eval_batch(dev) -> int:
    return 4096 if dev.type == "cuda" else 1024


def _test_both_protocols(model, data, dev) -> dict:
    """Test metrics x100 under the paper's protocol (unmasked) and the masked one.

    One pass: each batch of users is scored once (one reverse chain for DiffuRec) and ranked twice,
    as ``metrics.evaluate_both`` does; kept apart because its equal-sized batches decide which user
    gets which inference noise, so the recorded figures stay exactly reproducible.
    """
    model.eval()
    paper, masked = MetricAccumulator(KS), MetricAccumulator(KS)
    seen = (data.train + data.valid).tocsr()
    users = np.flatnonzero(np.diff(data.test.indptr) > 0)
    with torch.no_grad():
        for batch in np.array_split(users, max(1, -(-len(users) // _eval_batch(dev)))):
            scores = model.score(data, torch.as_tensor(batch), "test")
            paper.update(scores, data.test[batch], users=batch)
            masked.update(scores, data.test[batch], exclude=seen[batch], users=batch)
    p, m = paper.compute(), masked.compute()
    return {**{k: round(100 * p[k], 4) for k in KEYS}, **{"masked_" + k: round(100 * m[k], 4) for k in KEYS}}


def _train(model, data, args, train: dict, optimizer):
    dev = pick_device(args.device)
    epochs = args.epochs or train["epochs"]
    if dev.type == "cpu" and not args.fast and args.dataset == "amazon_beauty" and args.epochs is None:
        print(f"note: {epochs} epochs of {args.model} on a CPU take hours; use --device cuda "
              f"or --epochs N", file=sys.stderr)
    hist = fit(model, data, epochs=epochs, lr=train["lr"], batch_size=train["batch_size"],
               optimizer=optimizer, eval_every=min(train["eval_every"], epochs),
               patience=train["patience"], metric="ndcg@10", ks=KS, eval_batch_size=_eval_batch(dev),
               mask_history=False, test=False, device=dev, seed=args.seed,
               progress=args.log_every or not args.no_progress,
               **_pieces(args))
    return hist, dev


def _pieces(args) -> dict:
    """fit's checkpoint / resume / time_limit from --checkpoint and --time-limit."""
    path = getattr(args, "checkpoint", None)
    if path is None:
        return {}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return {"checkpoint": path, "resume": True, "time_limit": getattr(args, "time_limit", None)}


def _result(args, model, data, hist, dev, extra=None) -> dict:
    t0 = time.perf_counter()
    test = _test_both_protocols(model, data, dev)
    eval_seconds = hist.eval_seconds + time.perf_counter() - t0
    subset = {} if data.name == args.dataset else {"data": data.name}     # e.g. a --fast subsample
    return {"model": args.model, "dataset": args.dataset, **subset, **test, "scale": 100,
            "protocol": "hr@K/ndcg@K: history not masked (DiffuRec's); masked_*: history masked",
            # null (valid JSON, unlike NaN) while a paused run has not been validated yet
            "valid_ndcg@10": round(100 * hist.best_valid["ndcg@10"], 4) if hist.best_valid else None,
            "best_epoch": hist.best_epoch, "epochs": hist.epochs,
            "train_seconds": round(hist.train_seconds, 1), "eval_seconds": round(eval_seconds, 1),
            "seconds_per_epoch": round(hist.seconds_per_epoch, 2), "device": str(dev),
            "seed": args.seed, "n_params": sum(p.numel() for p in model.parameters()),
            "paused": hist.paused,
            **(extra or {}), "torch_threads": torch.get_num_threads(),
            "load_average_1m": round(os.getloadavg()[0], 2)}


def _diffurec(n_items: int, config: dict, dev, eval_seed: int = 0) -> DiffuRec:
    """The recipe's DiffuRec for ``dev``: length chunks on CPU only, and fp32 on every device
    (bf16 autocast measured slower on an H200, 5.1 vs 3.9 s per epoch, RESULTS.md)."""
    return DiffuRec(n_items, **config, chunk_size=None if dev.type == "cuda" else 64, amp=False,
                    eval_seed=eval_seed)


def run_diffurec(args) -> dict:
    seed_everything(args.seed)
    data = load(args)
    small = args.fast or args.dataset == "synthetic"
    config, train = (FAST_DIFFUREC, FAST_TRAIN) if small else (DIFFUREC, DIFFUREC_TRAIN)
    model = _diffurec(data.n_items, config, pick_device(args.device), eval_seed=args.seed)
    hist, dev = _train(model, data, args, train, optimizer=None)     # Adam + StepLR (the model's)
    return _result(args, model, data, hist, dev, {"config": config})


def run_sasrec(args) -> dict:
    seed_everything(args.seed)
    data = load(args)
    small = args.fast or args.dataset == "synthetic"
    config, train = (FAST_SASREC, FAST_SASREC_TRAIN) if small else (SASREC, SASREC_TRAIN)
    model = SASRec(data.n_items, **config)
    hist, dev = _train(model, data, args, train, optimizer="adam")
    return _result(args, model, data, hist, dev, {"config": config})


RECIPES = {"diffurec": run_diffurec, "sasrec": run_sasrec}


# ---------------------------------------------------------------------------------------- speed
def time_batches(model_name: str, data: InteractionData, n_batches: int, device="auto",
                 amp: bool | None = None, chunk_size: int | None = 64, warmup: int = 1) -> dict:
    """Seconds per training batch at the paper's settings, extrapolated to one epoch.

    Wall and process CPU time both: on a shared machine CPU time / threads is the better
    estimate of what an idle machine would take (it does not count waiting for a core).
    """
    dev = pick_device(device)
    seed_everything(0)
    if model_name == "diffurec":
        model = DiffuRec(data.n_items, **DIFFUREC, chunk_size=chunk_size, amp=amp).to(dev)
        n_samples, batch_size = len(SequenceBatches(data)), DIFFUREC_TRAIN["batch_size"]
    else:
        model = SASRec(data.n_items, **SASREC, chunk_size=chunk_size, amp=amp).to(dev)
        n_samples, batch_size = len(next_item_windows(data)[0]), SASREC_TRAIN["batch_size"]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = model.batches(data, batch_size, torch.Generator().manual_seed(0))
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def step():
        from tutorial_lib.train import to_device
        loss = model.loss(to_device(next(batches), dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    sync()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n_batches):
        step()
    sync()
    wall, cpu = (time.perf_counter() - wall) / n_batches, (time.process_time() - cpu) / n_batches
    per_epoch = -(-n_samples // batch_size)
    threads = torch.get_num_threads()
    return {"model": model_name, "timed_batches": n_batches, "batches_per_epoch": per_epoch,
            "seconds_per_batch": round(wall, 3),
            "seconds_per_epoch_extrapolated": round(wall * per_epoch, 1),
            "cpu_seconds_per_batch": round(cpu, 3),
            "cpu_seconds_per_epoch_over_threads": round(cpu * per_epoch / threads, 1) if dev.type == "cpu" else None,
            "device": str(dev), "amp": bool(amp if amp is not None else dev.type == "cuda"),
            "chunk_size": chunk_size, "torch_threads": threads,
            "n_params": sum(p.numel() for p in model.parameters()),
            "load_average_1m": round(os.getloadavg()[0], 2)}


def sasrec_grid(data: InteractionData, epochs: int, device="auto", seed: int = 1):
    """Train every SASREC_GRID config; yield its validation NDCG@10 / HR@10 (x100, unmasked).

    Selection is on validation only; the test split is never looked at here.
    """
    dev = pick_device(device)
    for config in SASREC_GRID:
        seed_everything(seed)
        model = SASRec(data.n_items, **config)
        hist = fit(model, data, epochs=epochs, lr=SASREC_TRAIN["lr"], batch_size=SASREC_TRAIN["batch_size"],
                   optimizer="adam", eval_every=SASREC_TRAIN["eval_every"], patience=SASREC_TRAIN["patience"],
                   metric="ndcg@10", ks=KS, eval_batch_size=_eval_batch(dev), mask_history=False,
                   test=False, device=dev, seed=seed, progress=False)
        yield {"grid": "sasrec", "config": config, "best_epoch": hist.best_epoch,
               "valid_ndcg@10": round(100 * hist.best_valid["ndcg@10"], 4),
               "valid_hr@10": round(100 * hist.best_valid["hr@10"], 4),
               "seconds_per_epoch": round(hist.seconds_per_epoch, 2), "device": str(dev)}


def eval_seeds(data: InteractionData, checkpoint: str, seeds, device="auto", config: dict = DIFFUREC):
    """Test metrics (x100, both protocols) of a checkpoint's best model under several eval seeds.

    DiffuRec's ranking comes from a reverse chain started at noise, so its test figure depends on
    the inference noise: this measures that spread with the trained weights held fixed.
    """
    dev = pick_device(device)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model = _diffurec(data.n_items, config, dev)
    model.load_state_dict(state["best_model"])
    model.to(dev)
    for s in seeds:
        model.eval_seed = s
        t0 = time.perf_counter()
        row = _test_both_protocols(model, data, dev)
        yield {"model": "diffurec", "checkpoint_epoch": state["epoch"],
               "best_epoch": state["history"]["best_epoch"], "eval_seed": s, **row,
               "eval_seconds": round(time.perf_counter() - t0, 1), "device": str(dev)}


def main(argv=None):
    p = argparse.ArgumentParser(description="time training batches at the paper's settings, tune SASRec, "
                                            "or re-evaluate a DiffuRec checkpoint under several eval seeds")
    p.add_argument("command", choices=["speed", "grid", "evalseeds"])
    p.add_argument("model", choices=["diffurec", "sasrec"])
    p.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[3] / "shared" / "datasets"))
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--device", default="auto")
    p.add_argument("--amp", choices=["recipe", "auto", "on", "off"], default="recipe",
                   help="bf16 autocast: recipe = as reproduce.py trains (off for diffurec, auto for "
                        "sasrec); auto = on for CUDA only")
    p.add_argument("--chunk-size", type=int, default=64, help="0 = no length chunks")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--epochs", type=int, default=60, help="grid: epochs per config")
    p.add_argument("--checkpoint", help="evalseeds: a fit() checkpoint of the DiffuRec recipe")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="evalseeds: eval seeds")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    data = load_diffurec_pkl(Path(a.data_dir) / "amazon_beauty" / "dataset.pkl")
    if a.command == "evalseeds":
        if a.model != "diffurec" or not a.checkpoint:
            raise SystemExit("evalseeds: diffurec with --checkpoint PATH")
        for row in eval_seeds(data, a.checkpoint, a.seeds, a.device):
            print(json.dumps(row), flush=True)
        return
    if a.command == "grid":
        if a.model != "sasrec":
            raise SystemExit("grid: only sasrec (DiffuRec uses the paper's settings)")
        for row in sasrec_grid(data, a.epochs, a.device):
            print(json.dumps(row), flush=True)
        return
    amp = {"auto": None, "on": True, "off": False}.get(a.amp, False if a.model == "diffurec" else None)
    print(json.dumps(time_batches(a.model, data, a.batches, a.device, amp, a.chunk_size or None)))


if __name__ == "__main__":
    main()
