"""Recipe for Du et al.'s sequential diffusion recommender (SeqDiffRec) on amazon_beauty / synthetic.

    python benchmarks/reproduce.py seqdiffrec --dataset amazon_beauty --device cuda
    python benchmarks/reproduce.py seqdiffrec --dataset synthetic --fast

Protocol: DiffuRec's (../../shared/reference/published_results.md), so the numbers sit beside
DiffuRec's and SASRec's: leave-one-out, the test input is the training sequence plus the
validation item, full ranking over all items, history NOT masked (``hr@K``, ``ndcg@K``,
x100). The same test ranking with the history masked is reported as ``masked_hr@K`` etc.
Averages are over users (DiffuRec's released code averages per-batch means).
Model selection: validation HR@10, evaluated every ``EVAL_EVERY`` epochs, stop after
``PATIENCE`` evaluations without improvement; test numbers at the best validation epoch.

Settings. No official code or hyper-parameter table we could use: ours follow DiffuRec's
budget where it applies (hidden 128, L = 50, Adam lr 1e-3, batch 512, dropout 0.1) with a
2-block, 2-head denoiser, T = 200 linear betas (Ho et al., rescaled), importance-sampled
steps, and inference from h_T in INFERENCE_STEPS reverse steps (notebook 07 shows the
trade-off). Set OMP_NUM_THREADS=1 when the CPU cores are shared.
"""
from __future__ import annotations

import time
from pathlib import Path

from tutorial_lib.data import load_diffurec_pkl
from tutorial_lib.metrics import evaluate
from tutorial_lib.models.seqdiffrec import SeqDiffRec
from tutorial_lib.sequences import loo_synthetic
from tutorial_lib.train import fit
from tutorial_lib.utils import seed_everything

KS = (5, 10, 20)
KEYS = [f"{m}@{k}" for m in ("hr", "ndcg") for k in KS]
EPOCHS, EVAL_EVERY, PATIENCE = 500, 20, 5               # DiffuRec's budget (patience in evaluations)
BEAUTY = dict(hidden=128, max_len=50, n_layers=2, n_heads=2, dropout=0.1, T=200, schedule="linear",
              inference_steps=5)
BEAUTY_TRAIN = dict(lr=1e-3, batch_size=512, optimizer="adam")
# the synthetic world is small (600 users x 400 items): a smaller net and a larger step size
SYNTHETIC = dict(hidden=64, max_len=50, n_layers=1, n_heads=2, dropout=0.1, T=200, schedule="linear",
                 inference_steps=5)
SYNTHETIC_TRAIN = dict(lr=5e-3, batch_size=256, optimizer="adam")


def load(args):
    if args.dataset == "amazon_beauty":
        return load_diffurec_pkl(Path(args.data_dir) / "amazon_beauty" / "dataset.pkl")
    if args.dataset == "synthetic":
        return loo_synthetic(seed=0)[0]
    raise ValueError(f"the SeqDiffRec recipe runs on amazon_beauty or synthetic, not {args.dataset!r}")


def seqdiffrec(args) -> dict:
    data = load(args)
    seed_everything(args.seed)
    beauty = args.dataset == "amazon_beauty"
    model = SeqDiffRec(data.n_items, seed=args.seed, **(BEAUTY if beauty else SYNTHETIC))
    epochs = args.epochs or (2 if args.fast else (EPOCHS if beauty else 40))
    every = 1 if args.fast else (EVAL_EVERY if beauty else 4)
    h = fit(model, data, epochs=epochs, eval_every=min(every, epochs), patience=PATIENCE * every,
            metric="hr@10", ks=KS, mask_history=False, eval_batch_size=1024, device=args.device,
            seed=args.seed, progress=not args.no_progress, **(BEAUTY_TRAIN if beauty else SYNTHETIC_TRAIN))
    start = time.perf_counter()
    model.eval()
    masked = evaluate(lambda u: model.score(data, u, "test"), data, "test", ks=KS, mask_history=True,
                      batch_size=1024)
    eval_seconds = h.eval_seconds + time.perf_counter() - start
    return {"model": args.model, "dataset": args.dataset,
            **{k: round(100 * h.best_test[k], 4) for k in KEYS},
            **{f"masked_{k}": round(100 * masked[k], 4) for k in KEYS},
            "valid_hr@10": round(100 * h.best_valid["hr@10"], 4), "protocol": "unmasked (masked_*: history masked)",
            "best_epoch": h.best_epoch, "epochs": h.epochs, "train_seconds": round(h.train_seconds, 2),
            "eval_seconds": round(eval_seconds, 2), "seconds_per_epoch": round(h.seconds_per_epoch, 3),
            "device": h.device, "seed": args.seed,
            "n_params": sum(p.numel() for p in model.parameters()),
            "inference": {"start_step": model.start_step, "inference_steps": model.inference_steps}}


RECIPES = {"seqdiffrec": seqdiffrec}
