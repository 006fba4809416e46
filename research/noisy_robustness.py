"""DiffRec vs Mult-VAE (and EASE) as false-positive clicks are injected into the training data.

    python research/noisy_robustness.py                       # noise 0, 0.1, 0.2, 0.4
    python research/noisy_robustness.py --noise 0 0.3 --seeds 0 1 --device cuda

The synthetic world (tutorial_lib.synthetic.make_synthetic) adds ``noise_frac`` of each user's
training clicks as false positives: popular items outside the user's interest clusters.
Validation and test hold clean clicks only, so the test metrics measure how well each model
recovers the true preferences from noisy input (the paper's "noisy training" setting, where
DiffRec's test set is clean too). Models use the synthetic settings of
benchmarks/recipes/diffrec.py, with early stopping on validation Recall@20.

Prints one JSON line per (noise, model, seed), then a table of test Recall@20 / NDCG@20 and
each model's relative drop from the clean (noise 0) data.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))   # the recipes

from recipes.diffrec import (LAMBDAS, MULTIVAE_TRAIN, SYNTHETIC_DIFFREC,  # noqa: E402
                             SYNTHETIC_MULTIVAE)
from tutorial_lib.synthetic import make_synthetic  # noqa: E402
from tutorial_lib.metrics import evaluate  # noqa: E402
from tutorial_lib.models.diffrec_fast import FastDiffRec  # noqa: E402
from tutorial_lib.models.ease import EASE  # noqa: E402
from tutorial_lib.models.multivae import MultiVAE  # noqa: E402
from tutorial_lib.train import fit  # noqa: E402
from tutorial_lib.utils import seed_everything  # noqa: E402


def train_and_test(name: str, data, args, seed: int) -> dict:
    seed_everything(seed)
    kw = dict(epochs=args.epochs, eval_every=5, patience=20, batch_size=100, device=args.device,
              seed=seed, progress=False)
    if name == "DiffRec":
        hist = fit(FastDiffRec(data.n_items, **SYNTHETIC_DIFFREC), data, lr=1e-3, **kw)
        return hist.best_test
    if name == "Mult-VAE":
        train = dict(MULTIVAE_TRAIN, lr=1e-2, batch_size=100)
        hist = fit(MultiVAE(data.n_items, **SYNTHETIC_MULTIVAE), data,
                   **{**kw, **train})
        return hist.best_test
    ease, _ = EASE.tune(data, LAMBDAS, progress=False)
    return evaluate(lambda u: ease.score(data, u), data, "test")


def main(argv=None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.4])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--models", nargs="+", default=["DiffRec", "Mult-VAE", "EASE"])
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    rows = []
    for noise in args.noise:
        for seed in args.seeds:
            data, _ = make_synthetic(noise_frac=noise, seed=seed)
            for name in args.models:
                start = time.perf_counter()
                test = train_and_test(name, data, args, seed)
                row = {"noise_frac": noise, "model": name, "seed": seed,
                       "recall@20": round(test["recall@20"], 4), "ndcg@20": round(test["ndcg@20"], 4),
                       "seconds": round(time.perf_counter() - start, 1)}
                print(json.dumps(row), flush=True)
                rows.append(row)
    df = pd.DataFrame(rows).groupby(["model", "noise_frac"])[["recall@20", "ndcg@20"]].mean()
    clean = df.xs(0.0, level="noise_frac") if 0.0 in args.noise else None
    if clean is not None:
        drop = 100 * (1 - df["recall@20"] / clean["recall@20"].reindex(df.index, level="model"))
        df["recall@20 drop %"] = drop.round(1)
    print(df.unstack("model").to_string())
    return df


if __name__ == "__main__":
    main()
