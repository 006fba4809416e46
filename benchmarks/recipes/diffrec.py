"""Recipes for DiffRec (Wang et al., SIGIR 2023) and its baselines on ml-1m_clean / synthetic.

    python benchmarks/reproduce.py diffrec    --dataset ml-1m_clean
    python benchmarks/reproduce.py ease       --dataset ml-1m_clean
    python benchmarks/reproduce.py multivae   --dataset ml-1m_clean --device cuda
    python benchmarks/reproduce.py popularity --dataset synthetic

Protocol (shared/reference/published_results.md beside the repo): full ranking over all items, the
input is the user's training row, validation masks training items, test masks training +
validation items, Recall@K = hits / |held-out items|. Trained models are validated every 5
epochs; the reported test numbers are those at the best validation Recall@20; training stops
after 20 epochs without improvement.

DiffRec: the paper's best ML-1M settings (AdamW lr 1e-3, weight decay 0, batch 400, dims
[200, 600], step embedding 10, x0-prediction, T = 40, linear-var 0.005 / 0.005 / 0.01, SNR
reweighting, importance-sampled steps, inference from the un-noised row, all T reverse steps).

Baselines, tuned on the validation split of ml-1m_clean (never on test):
* EASE: lambda from a log grid (LAMBDAS) chosen by validation Recall@20 inside the recipe,
  so the reported test figure is the one at the best validation lambda.
* Mult-VAE: the paper's architecture [I -> 600 -> 200], tanh, input dropout 0.5, Adam
  lr 1e-3, batch 500, KL weight annealed linearly to anneal_cap over total_anneal_steps.
  Compared on validation Recall@20 (seed 1): (anneal_cap, total_anneal_steps) =
  (0.2, 2,000) 0.1121, (0.2, 20,000) 0.1114, (0.5, 2,000) 0.1114; MULTIVAE holds the winner.
  (The paper's 200,000 steps suit ML-20M; on ML-1M's 12 updates per epoch beta would stay ~0.)

Speed on a CPU: DiffRec is ``FastDiffRec`` (tutorial_lib/models/diffrec_fast.py), the same
model with exact shortcuts: valid and test share one reverse chain per evaluation, the
deterministic chain runs in the denoiser's first hidden layer, training uses a fused AdamW
kernel and draws the input-dropout mask with torch.rand. Set OMP_NUM_THREADS=1 when the
cores are shared: two OpenMP threads fighting other jobs can be several times slower than one.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from tutorial_lib.cli.recipes import (DIFFREC, EPOCHS, LAMBDAS, MULTIVAE, MULTIVAE_TRAIN,  # noqa: F401
                                      SYNTHETIC_DIFFREC, SYNTHETIC_MULTIVAE)
from tutorial_lib.datasets import load_diffrec_npy
from tutorial_lib.synthetic import make_synthetic
from tutorial_lib.metrics import evaluate
from tutorial_lib.models.diffrec_fast import FastDiffRec
from tutorial_lib.models.ease import EASE
from tutorial_lib.models.multivae import MultiVAE
from tutorial_lib.models.popularity import Popularity
from tutorial_lib.train import fit
from tutorial_lib.utils import device as pick_device
from tutorial_lib.utils import seed_everything

KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
# the settings (DIFFREC, MULTIVAE, LAMBDAS, the SYNTHETIC_* ones) live in tutorial_lib/cli/recipes.py,
# which `diffrec-tutorial train` reads too


def load(args):
    if args.dataset == "ml-1m_clean":
        return load_diffrec_npy(Path(args.data_dir) / "ml-1m_clean")
    if args.dataset == "synthetic":
        return make_synthetic(seed=0)[0]
    raise ValueError(f"the DiffRec-family recipes run on ml-1m_clean or synthetic, not {args.dataset!r}")


def _result(args, test: dict, device=None, **extra) -> dict:
    # cpu_seconds (this process, all threads) and the 1-minute load average tell a run on a
    # shared machine apart from one on an idle machine: wall time alone does not.
    return {"model": args.model, "dataset": args.dataset, **{k: round(test[k], 4) for k in KEYS},
            **extra, "device": device or str(pick_device(args.device)), "seed": args.seed,
            "cpu_seconds": round(time.process_time(), 1), "torch_threads": torch.get_num_threads(),
            "load_average_1m": round(os.getloadavg()[0], 2)}


def _closed_form(args, model, data, extra=None) -> dict:
    start = time.perf_counter()
    model.fit(data)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    valid = evaluate(lambda u: model.score(data, u, "valid"), data, "valid")
    test = evaluate(lambda u: model.score(data, u, "test"), data, "test")
    # the closed forms fit and score with NumPy / SciPy / CPU torch whatever --device says
    return _result(args, test, device="cpu", **{"valid_recall@20": round(valid["recall@20"], 4)}, best_epoch=0,
                   train_seconds=round(train_seconds, 2),
                   eval_seconds=round(time.perf_counter() - start, 2), seconds_per_epoch=0.0,
                   **(extra or {}))


def popularity(args) -> dict:
    return _closed_form(args, Popularity(), load(args))


def ease(args) -> dict:
    """EASE with lambda chosen on validation Recall@20 over LAMBDAS."""
    data = load(args)
    best, valid = EASE.tune(data, LAMBDAS[:2] if args.fast else LAMBDAS, progress=not args.no_progress)
    best = best.lam
    return _closed_form(args, EASE(best), data,
                        {"lambda": best, "valid_by_lambda": {str(k): round(v, 4) for k, v in valid.items()}})


def _trained(args, model, data, epochs: int, **train) -> dict:
    epochs = args.epochs or (2 if args.fast else epochs)
    h = fit(model, data, epochs=epochs, eval_every=1 if args.fast else 5, patience=20,
            eval_batch_size=2048, device=args.device, seed=args.seed,
            progress=args.log_every or not args.no_progress, **train)
    return _result(args, h.best_test, **{"valid_recall@20": round(h.best_valid["recall@20"], 4)},
                   best_epoch=h.best_epoch, epochs=h.epochs,
                   train_seconds=round(h.train_seconds, 2), eval_seconds=round(h.eval_seconds, 2),
                   seconds_per_epoch=round(h.seconds_per_epoch, 3))


def multivae(args) -> dict:
    data = load(args)
    seed_everything(args.seed)
    cfg = SYNTHETIC_MULTIVAE if args.dataset == "synthetic" else MULTIVAE
    model = MultiVAE(data.n_items, **cfg)
    train = dict(MULTIVAE_TRAIN, lr=1e-2) if args.dataset == "synthetic" else MULTIVAE_TRAIN
    return _trained(args, model, data, EPOCHS, **train)


def diffrec(args) -> dict:
    data = load(args)
    seed_everything(args.seed)
    cfg = SYNTHETIC_DIFFREC if args.dataset == "synthetic" else DIFFREC
    model = FastDiffRec(data.n_items, **cfg)
    return _trained(args, model, data, EPOCHS, lr=1e-3, weight_decay=0.0, batch_size=400,
                    optimizer=None)         # the model's own: AdamW, fused (FastDiffRec.configure_optimizers)


RECIPES = {"popularity": popularity, "ease": ease, "multivae": multivae, "diffrec": diffrec}
