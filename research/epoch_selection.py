"""How much does picking the epoch on *test* inflate a figure? (DiffRec family, ml-1m_clean)

    python research/epoch_selection.py diffrec --seeds 1 2 3 4 5
    python research/epoch_selection.py ldiffrec --seeds 1 2 3

Trains the recipe of ``reproduce.py`` for DiffRec, T-DiffRec or L-DiffRec (same settings,
same protocol: validate every 5 epochs, stop after 20 epochs without improvement) but scores
the test split at *every* evaluation, then prints one JSON line per seed with two test
figures from the same run:

* ``selected_on_valid``: test at the best validation Recall@20, the protocol's figure;
* ``selected_on_test``: the best test Recall@20 over the evaluations, and the NDCG@20 of that
  same epoch: what a paper would report if it (wrongly) picked the epoch on test. It bounds
  what epoch choice alone can explain *within runs that stop as the protocol stops them*
  (epochs after the early stop are never scored); it is not a result.

Nothing here tunes on test: the point is to measure how far apart the two are, next to the
papers' figures (benchmarks/RESULTS.md; the runs: LOG.md).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))   # the recipes and reproduce.py

from recipes.diffrec import DIFFREC, EPOCHS, SYNTHETIC_DIFFREC, load  # noqa: E402
from recipes.ldiffrec import SYNTHETIC_LR, W_MAX, W_MIN, item_clusters  # noqa: E402
from reproduce import default_data_dir  # noqa: E402

from tutorial_lib.models.diffrec_fast import FastDiffRec, FastLDiffRec, FastTDiffRec  # noqa: E402
from tutorial_lib.train import fit  # noqa: E402
from tutorial_lib.utils import seed_everything  # noqa: E402

KEYS = ("recall@20", "ndcg@20")


def build(name: str, data, args):
    """The recipe's model for ``name`` (reproduce.py's settings)."""
    seed_everything(args.seed)
    if name == "diffrec":
        return FastDiffRec(data.n_items, **(SYNTHETIC_DIFFREC if args.dataset == "synthetic" else DIFFREC))
    if name == "tdiffrec":
        return FastTDiffRec(data.n_items, w_min=W_MIN, w_max=W_MAX)
    clusters, _ = item_clusters(data, args)
    seed_everything(args.seed)
    return FastLDiffRec(data.n_items, clusters=clusters, **(SYNTHETIC_LR if args.dataset == "synthetic" else {}))


def one_run(name: str, data, args) -> dict:
    model = build(name, data, args)
    start = time.perf_counter()
    h = fit(model, data, epochs=args.epochs or EPOCHS, lr=1e-3, batch_size=400, eval_every=5,
            patience=20, test=True, device=args.device, seed=args.seed, progress=False,
            eval_batch_size=2048 if name == "diffrec" else 1024)     # as the recipes (same figures)
    tests = dict(h.test)
    oracle_epoch = max(tests, key=lambda e: tests[e]["recall@20"])
    return {"model": name, "dataset": args.dataset, "seed": args.seed,
            "selected_on_valid": {"epoch": h.best_epoch, **{k: round(h.best_test[k], 4) for k in KEYS}},
            "selected_on_test": {"epoch": oracle_epoch, **{k: round(tests[oracle_epoch][k], 4) for k in KEYS}},
            "test_recall@20_by_epoch": {e: round(m["recall@20"], 4) for e, m in h.test},
            "valid_recall@20_by_epoch": {e: round(m["recall@20"], 4) for e, m in h.valid},
            "epochs": h.epochs, "wall_seconds": round(time.perf_counter() - start, 1), "device": h.device}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=("diffrec", "tdiffrec", "ldiffrec"))
    p.add_argument("--dataset", default="ml-1m_clean", choices=("ml-1m_clean", "synthetic"))
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument("--epochs", type=int, default=None, help="cap (default: the recipe's 1000)")
    p.add_argument("--device", default="auto")
    a = p.parse_args(argv)
    for seed in a.seeds:
        args = SimpleNamespace(dataset=a.dataset, data_dir=a.data_dir, seed=seed, device=a.device,
                               fast=False, no_progress=True, epochs=a.epochs)
        data = load(args)
        print(json.dumps(one_run(a.model, data, args)), flush=True)


if __name__ == "__main__":
    main()
