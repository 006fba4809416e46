"""What the trained baselines' recipes share (recipes/cfgan.py, recipes/lightgcn.py): the JSON
line of one run (``recipe_line``) and the validation grid (``write_grid``, ``main``).

    python benchmarks/recipes/cfgan.py --grid research/cfgan_grid.jsonl --data-dir ../shared/datasets

Each GRID entry (model settings, training settings) is trained once on ml-1m_clean and appended
to the file as one JSON line: the settings, the recipe's ``summary`` (validation curve, best
epoch, seconds) and the test Recall@20, which is kept for the record and never used to choose.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from tutorial_lib.datasets import load_course_data
from tutorial_lib.utils import device as pick_device

KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def curve_summary(h) -> dict:
    """What a line records of a History beyond the test metrics: the selection, the curve, the time."""
    return {"valid_recall@20": round(h.best_valid["recall@20"], 4), "best_epoch": h.best_epoch,
            "epochs": h.epochs, "valid_curve": [round(m["recall@20"], 4) for _, m in h.valid],
            "train_seconds": round(h.train_seconds, 2), "eval_seconds": round(h.eval_seconds, 2),
            "seconds_per_epoch": round(h.seconds_per_epoch, 3)}


def recipe_line(args, run, summary, ml1m: tuple, synthetic: tuple, epochs: int) -> dict:
    """``reproduce.py``'s line for one run: ``run`` with the (model, training) settings ``ml1m``
    or ``synthetic`` (by ``args.dataset``), test metrics at the best validation epoch."""
    data = load_course_data(args.dataset, root=args.data_dir)[0]
    model_cfg, train_cfg = synthetic if args.dataset == "synthetic" else ml1m
    model, h = run(data, model_cfg, train_cfg, seed=args.seed, epochs=args.epochs or (2 if args.fast else epochs),
                   device=args.device, eval_every=1 if args.fast else 5,
                   progress=args.log_every or not args.no_progress)
    return {"model": args.model, "dataset": args.dataset,
            **{k: round(h.best_test[k], 4) for k in KEYS}, **summary(model, h),
            "device": str(pick_device(args.device)), "seed": args.seed,
            "cpu_seconds": round(time.process_time(), 1), "torch_threads": torch.get_num_threads(),
            "load_average_1m": round(os.getloadavg()[0], 2)}


def write_grid(out: Path, data_dir: str, grid, run, summary, *, epochs: int, entries=None,
               seed: int = 1) -> None:
    """Train ``run(data, model_cfg, train_cfg, seed=, epochs=) -> (model, History)`` for each
    entry of ``grid`` (all, or the indices ``entries``); append one line each to ``out``."""
    data = load_course_data("ml-1m_clean", root=data_dir)[0]
    for i in entries if entries is not None else range(len(grid)):
        model_cfg, train_cfg = grid[i]
        cpu = time.process_time()
        model, h = run(data, model_cfg, train_cfg, seed=seed, epochs=epochs)
        line = {"entry": i, **{k: list(v) if isinstance(v, tuple) else v for k, v in model_cfg.items()},
                **train_cfg, "seed": seed, **summary(model, h),
                "test_recall@20": round(h.best_test["recall@20"], 4),
                "cpu_seconds": round(time.process_time() - cpu, 1), "torch": torch.__version__}
        with open(out, "a") as f:
            f.write(json.dumps(line) + "\n")
        print(json.dumps(line), flush=True)


def main(name: str, grid, run, summary, epochs: int, argv=None) -> None:
    """The command line of a recipe file: ``--grid FILE [--entries I ...] [--data-dir DIR]``."""
    p = argparse.ArgumentParser(description=f"{name}'s tuning grid on ml-1m_clean validation")
    p.add_argument("--grid", type=Path, required=True, help="JSON lines file to append to")
    p.add_argument("--entries", type=int, nargs="*", default=None, help="GRID indices (default all)")
    p.add_argument("--data-dir", default=None, help="default: $TUTORIAL_DATA_DIR, else data")
    a = p.parse_args(argv)
    write_grid(a.grid, a.data_dir, grid, run, summary, epochs=epochs, entries=a.entries)
