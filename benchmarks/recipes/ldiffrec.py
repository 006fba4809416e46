"""Recipes for L-DiffRec, T-DiffRec and LT-DiffRec (Wang et al., SIGIR 2023) on ml-1m_clean.

    python benchmarks/reproduce.py ldiffrec  --dataset ml-1m_clean
    python benchmarks/reproduce.py tdiffrec  --dataset ml-1m_clean --device cuda
    python benchmarks/reproduce.py ltdiffrec --dataset synthetic --fast

Protocol (shared/reference/published_results.md beside the repo): full ranking, training items
masked for validation, training + validation items for test; validate every 5 epochs, keep
the best validation Recall@20, stop after 20 epochs without improvement.

Settings: L-DiffRec as in the paper (2 clusters of LightGCN item embeddings, encoder [300],
MLP [300], lambda 0.03, T = 40, noise 0.005 / 0.005 / 0.02, lr 1e-3 / 5e-4, batch 400).
T-DiffRec is DiffRec's best ML-1M setting (AdamW lr 1e-3, dims [200, 600], T = 40, noise
0.005 / 0.005 / 0.01) on time-weighted rows, w_min 0.1 .. w_max 1 (linear in time order).
LT-DiffRec is L-DiffRec on the same weighted rows. ``--fast`` is a smoke run, not the paper.
The models are the ``Fast*`` classes of tutorial_lib/models/diffrec_fast.py: the same models
with exact speed shortcuts (T-DiffRec: all of DiffRec's; L-DiffRec: the denoiser's input dropout
drawn with torch.rand).
"""
from __future__ import annotations

import time

from tutorial_lib.cli.recipes import EPOCHS, LIGHTGCN, SYNTHETIC_LR, W_MAX, W_MIN  # the settings
from tutorial_lib.models.diffrec_fast import FastLDiffRec, FastLTDiffRec, FastTDiffRec
from tutorial_lib.models.ldiffrec import cluster_items, item_embeddings
from tutorial_lib.train import fit
from tutorial_lib.utils import seed_everything

from .diffrec import load  # the same data: ml-1m_clean or the synthetic default


def item_clusters(data, args, n_clusters: int = 2):
    """LightGCN item embeddings (a short seeded run) -> KMeans labels; and the seconds it took."""
    start = time.perf_counter()
    kw = dict(LIGHTGCN, epochs=1 if args.fast else LIGHTGCN["epochs"])
    emb = item_embeddings(data, device=args.device, seed=args.seed, progress=not args.no_progress, **kw)
    return cluster_items(emb, n_clusters, seed=args.seed), time.perf_counter() - start


def run(model, data, args, epochs: int, lr: float = 1e-3, extra: dict | None = None) -> dict:
    epochs = args.epochs or (2 if args.fast else epochs)
    h = fit(model, data, epochs=epochs, lr=lr, batch_size=400, eval_every=1 if args.fast else 5,
            patience=20, device=args.device, seed=args.seed,
            progress=args.log_every or not args.no_progress)
    result = {"model": args.model, "dataset": args.dataset,
              **{k: round(h.best_test[k], 4) for k in ("recall@10", "recall@20", "ndcg@10", "ndcg@20")},
              "valid_recall@20": round(h.best_valid["recall@20"], 4),
              "best_epoch": h.best_epoch, "epochs": h.epochs,
              "train_seconds": round(h.train_seconds, 2), "eval_seconds": round(h.eval_seconds, 2),
              "seconds_per_epoch": round(h.seconds_per_epoch, 3), "device": h.device, "seed": args.seed,
              "parameters": sum(p.numel() for p in model.parameters())}
    return {**result, **(extra or {})}


def _latent(model_cls, args, **kw):
    seed_everything(args.seed)
    data = load(args)
    clusters, seconds = item_clusters(data, args)
    lrs = SYNTHETIC_LR if args.dataset == "synthetic" else {}
    seed_everything(args.seed)
    model = model_cls(data.n_items, clusters=clusters, **lrs, **kw)
    extra = {"cluster_sizes": model.vae.cluster_sizes, "lightgcn_seconds": round(seconds, 2)}
    return run(model, data, args, EPOCHS, extra=extra)


def ldiffrec(args) -> dict:
    return _latent(FastLDiffRec, args)


def ltdiffrec(args) -> dict:
    return _latent(FastLTDiffRec, args, w_min=W_MIN, w_max=W_MAX)


def tdiffrec(args) -> dict:
    seed_everything(args.seed)
    data = load(args)
    model = FastTDiffRec(data.n_items, dims=(200, 600), w_min=W_MIN, w_max=W_MAX)   # the paper's MLP
    return run(model, data, args, EPOCHS, extra={"w_min": W_MIN, "w_max": W_MAX})


RECIPES = {"ldiffrec": ldiffrec, "tdiffrec": tdiffrec, "ltdiffrec": ltdiffrec}
