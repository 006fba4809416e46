"""Recipe for LightGCN (He et al., SIGIR 2020) as a recommender on ml-1m_clean / synthetic.

    python benchmarks/reproduce.py lightgcn --dataset ml-1m_clean --data-dir ../shared/datasets --seed 1
    python benchmarks/reproduce.py lightgcn --dataset synthetic
    python benchmarks/recipes/lightgcn.py --grid research/lightgcn_grid.jsonl --data-dir ../shared/datasets

Protocol as for the DiffRec family (benchmarks/recipes/diffrec.py): full ranking, training
items masked for validation, training + validation items for test, validation every 5
epochs, test figures at the best validation Recall@20, stop after 20 epochs without
improvement.

Settings: the LightGCN paper's model (64 dimensions, BPR with one uniform negative per
training pair, Adam), with the L2 weight, the learning rate, the batch size and the number of
layers chosen by validation Recall@20 on ml-1m_clean (seed 1, the GRID entries below, at most
GRID_EPOCHS epochs each). Lines in research/lightgcn_grid.jsonl; best validation Recall@20:

    0  3 layers, reg 1e-4, lr 1e-2, batch 8192     0.1114  (best epoch 70)
    1  3 layers, reg 1e-3, lr 1e-2, batch 8192     0.1150  (best epoch 145 of 150)   <- ML1M
    2  2 layers, reg 1e-4, lr 1e-2, batch 8192     0.1095  (best epoch 30)
    3  3 layers, reg 1e-4, lr 5e-3, batch 2048     0.1104  (best epoch 40)

(Seed 1's validation Recall@20 of the others: Mult-VAE 0.1121, DiffRec 0.1127.) The stronger L2
weight wins but learns slowly: at 150 epochs its validation still creeps up, so the recipe's
runs go on to their early stop. The release's own settings (lr 1e-3, batch 2048, up to 1000
epochs) cost FastLightGCN about 18 s an epoch on one CPU thread here; the grid keeps to settings a CPU
finishes. The model is ``FastLightGCN`` (tutorial_lib/models/lightgcn_fast.py): the plain
LightGCN with SciPy's sparse product on the CPU, the same numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from tutorial_lib.cli.recipes import LIGHTGCN_ML1M as ML1M
from tutorial_lib.cli.recipes import LIGHTGCN_ML1M_TRAIN as ML1M_TRAIN
from tutorial_lib.cli.recipes import LIGHTGCN_SYNTHETIC as SYNTHETIC
from tutorial_lib.cli.recipes import LIGHTGCN_SYNTHETIC_TRAIN as SYNTHETIC_TRAIN
from tutorial_lib.datasets import load_course_data
from tutorial_lib.models.lightgcn_fast import FastLightGCN
from tutorial_lib.train import fit
from tutorial_lib.utils import device as pick_device
from tutorial_lib.utils import seed_everything

KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
EPOCHS = 1000                          # an upper limit; early stopping ends far sooner
GRID_EPOCHS = 150
# (model settings, training settings) tried on ml-1m_clean validation
GRID = [
    (dict(dim=64, layers=3, reg=1e-4), dict(lr=1e-2, batch_size=8192)),
    (dict(dim=64, layers=3, reg=1e-3), dict(lr=1e-2, batch_size=8192)),
    (dict(dim=64, layers=2, reg=1e-4), dict(lr=1e-2, batch_size=8192)),
    (dict(dim=64, layers=3, reg=1e-4), dict(lr=5e-3, batch_size=2048)),
]


def run(data, model_cfg: dict, train_cfg: dict, *, seed: int, epochs: int, device="auto",
        eval_every: int = 5, progress: bool | int = False):
    """Train one LightGCN with ``fit``; return (model, History). progress: as in ``fit``."""
    seed_everything(seed)
    model = FastLightGCN(data, **model_cfg)
    h = fit(model, data, epochs=epochs, eval_every=eval_every, patience=20, eval_batch_size=2048,
            optimizer="adam", device=device, seed=seed, progress=progress, **train_cfg)
    return model, h


def summary(h) -> dict:
    """What a line records beyond the test metrics: the selection, the curve, the time."""
    return {"valid_recall@20": round(h.best_valid["recall@20"], 4), "best_epoch": h.best_epoch,
            "epochs": h.epochs, "valid_curve": [round(m["recall@20"], 4) for _, m in h.valid],
            "train_seconds": round(h.train_seconds, 2), "eval_seconds": round(h.eval_seconds, 2),
            "seconds_per_epoch": round(h.seconds_per_epoch, 3)}


def lightgcn(args) -> dict:
    data = load_course_data(args.dataset, root=args.data_dir)[0]
    synthetic = args.dataset == "synthetic"
    model_cfg, train_cfg = (SYNTHETIC, SYNTHETIC_TRAIN) if synthetic else (ML1M, ML1M_TRAIN)
    epochs = args.epochs or (2 if args.fast else EPOCHS)
    model, h = run(data, model_cfg, train_cfg, seed=args.seed, epochs=epochs, device=args.device,
                   eval_every=1 if args.fast else 5, progress=args.log_every or not args.no_progress)
    return {"model": args.model, "dataset": args.dataset,
            **{k: round(h.best_test[k], 4) for k in KEYS}, **summary(h),
            "device": str(pick_device(args.device)), "seed": args.seed,
            "cpu_seconds": round(time.process_time(), 1), "torch_threads": torch.get_num_threads(),
            "load_average_1m": round(os.getloadavg()[0], 2)}


RECIPES = {"lightgcn": lightgcn}


def grid(out: Path, data_dir: str, entries=None, seed: int = 1) -> None:
    """Append one JSON line per GRID entry (validation only is used to choose) to ``out``."""
    data = load_course_data("ml-1m_clean", root=data_dir)[0]
    for i in entries if entries is not None else range(len(GRID)):
        model_cfg, train_cfg = GRID[i]
        cpu = time.process_time()
        model, h = run(data, model_cfg, train_cfg, seed=seed, epochs=GRID_EPOCHS)
        line = {"entry": i, **model_cfg, **train_cfg, "seed": seed, **summary(h),
                "test_recall@20": round(h.best_test["recall@20"], 4),
                "cpu_seconds": round(time.process_time() - cpu, 1), "torch": torch.__version__}
        with open(out, "a") as f:
            f.write(json.dumps(line) + "\n")
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="LightGCN's tuning grid on ml-1m_clean validation")
    p.add_argument("--grid", type=Path, required=True, help="JSON lines file to append to")
    p.add_argument("--entries", type=int, nargs="*", default=None, help="GRID indices (default all)")
    p.add_argument("--data-dir", default=None, help="default: $TUTORIAL_DATA_DIR, else data")
    a = p.parse_args()
    sys.exit(grid(a.grid, a.data_dir, a.entries))
