"""Validation sweep for DiffRec on ml-1m_clean: which settings, among the paper's search space?

    python benchmarks/diffrec_sweep.py                  # every config in GRID, seed 1
    python benchmarks/diffrec_sweep.py --only 0 3 --seeds 1 2 3

The paper (section 4.1.3) searched noise scale, noise bounds, T and the learning rate and
reports one best setting; this script re-runs that search on *validation* Recall@20 (never
test) so that the recipe's choice can be checked. One JSON line per (config, seed) with the
validation figure that decides and the test figure at the best validation epoch, which is
reported, not used. Same protocol and training loop as ``reproduce.py diffrec``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from recipes.diffrec import DIFFREC, load  # noqa: E402

from tutorial_lib.models.diffrec import DiffRec  # noqa: E402
from tutorial_lib.train import fit  # noqa: E402
from tutorial_lib.utils import seed_everything  # noqa: E402

# (model overrides, training overrides): the paper's grid, one factor at a time around the
# released ML-1M setting (noise 0.005 / 0.005 / 0.01, T = 40, lr 1e-3)
GRID = [
    ({}, {}),
    ({"noise_scale": 0.001}, {}),
    ({"noise_scale": 0.01}, {}),
    ({"noise_scale": 0.0001}, {}),
    ({"noise_min": 0.001, "noise_max": 0.005}, {}),
    ({"noise_min": 0.0005, "noise_max": 0.005}, {}),
    ({"T": 10}, {}),
    ({"T": 5}, {}),
    ({"T": 100}, {}),
    ({}, {"lr": 5e-4}),
    ({}, {"lr": 1e-4}),
    ({"step_sampling": "uniform"}, {}),
]


def run(model_kw: dict, train_kw: dict, seed: int, data_dir: str, device: str) -> dict:
    args = argparse.Namespace(dataset="ml-1m_clean", data_dir=data_dir)
    data = load(args)
    seed_everything(seed)
    model = DiffRec(data.n_items, **{**DIFFREC, **model_kw})
    train = {**dict(lr=1e-3, weight_decay=0.0, batch_size=400, optimizer="adamw"), **train_kw}
    start = time.perf_counter()
    h = fit(model, data, epochs=1000, eval_every=5, patience=20, eval_batch_size=2048,
            device=device, seed=seed, progress=False, **train)
    return {"config": {**model_kw, **train_kw}, "seed": seed,
            "valid_recall@20": round(h.best_valid["recall@20"], 4),
            "test_recall@20": round(h.best_test["recall@20"], 4),
            "test_ndcg@20": round(h.best_test["ndcg@20"], 4), "best_epoch": h.best_epoch,
            "epochs": h.epochs, "seconds": round(time.perf_counter() - start, 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", type=int, nargs="*", help="indices into GRID (default: all)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument("--data-dir", default=str(HERE.parent.parent / "shared" / "datasets"))
    p.add_argument("--device", default="auto")
    a = p.parse_args(argv)
    for i in (a.only if a.only else range(len(GRID))):
        for seed in a.seeds:
            print(json.dumps({"index": i, **run(*GRID[i], seed, a.data_dir, a.device)}), flush=True)


if __name__ == "__main__":
    main()
