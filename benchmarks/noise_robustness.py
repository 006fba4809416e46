"""Noise robustness on ml-1m_clean, as DiffRec's paper measures it: train on noisy data, test on clean.

    .venv/bin/python benchmarks/noise_robustness.py --seed 1 --out benchmarks/noise_robustness.jsonl
    .venv/bin/python benchmarks/noise_robustness.py --models diffrec ease --shares 0 0.2

Each user's training row gets round(share * n_u) random items the user never interacted with
(``tutorial_lib.analysis.robustness``); validation (early stopping, EASE's lambda) and test stay
clean. The models are the recipes of benchmarks/recipes/ (diffrec.py, cfgan.py, lightgcn.py) with
their ML-1M settings (LightGCN's graph is built from the noisy training rows). Appends one JSON line per (share, model, seed) to ``--out`` as it goes; each
line also holds the catalogue coverage@20 and the Gini index of exposure of the model's test
top-20 lists (``tutorial_lib.beyond_accuracy``), which notebook 08's claim 4 reads.
``--mask-only`` writes the control instead: one line per (model, share, seed) with
``mask_only_%``, what taking the draw's injected items off a clean model's lists alone is worth.
The recorded LightGCN lines ran with ``--epochs 150`` (each line records ``max_epochs``): a CPU
budget near the clean recipe runs' best epochs (50 to 155 over five seeds).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recipes.cfgan import ML1M, ML1M_TRAIN  # noqa: E402
from recipes.diffrec import DIFFREC, EPOCHS, LAMBDAS, MULTIVAE, MULTIVAE_TRAIN  # noqa: E402
from recipes.lightgcn import ML1M as LIGHTGCN, ML1M_TRAIN as LIGHTGCN_TRAIN  # noqa: E402
from tutorial_lib import beyond_accuracy as ba  # noqa: E402
from tutorial_lib.analysis.robustness import SHARES, mask_only, noise_robustness  # noqa: E402
from tutorial_lib.datasets import load_course_data  # noqa: E402
from tutorial_lib.models.cfgan import CFGAN  # noqa: E402
from tutorial_lib.models.diffrec_fast import FastDiffRec  # noqa: E402
from tutorial_lib.models.ease import EASE  # noqa: E402
from tutorial_lib.models.lightgcn_fast import FastLightGCN  # noqa: E402
from tutorial_lib.models.multivae import MultiVAE  # noqa: E402
from tutorial_lib.models.popularity import Popularity  # noqa: E402
from tutorial_lib.train import fit  # noqa: E402
from tutorial_lib.utils import seed_everything  # noqa: E402


def trainers(device: str, epochs: int) -> dict:
    """{name: trainer(data, seed) -> fitted model}, the recipes' ML-1M settings."""
    kw = dict(epochs=epochs, eval_every=5, patience=20, eval_batch_size=2048, device=device, progress=False)

    def trained(build, **train):
        def run(data, seed):
            seed_everything(seed)
            model = build(data)
            fit(model, data, seed=seed, **kw, **train)
            return model.cpu()
        return run

    return {"popularity": lambda data, seed: Popularity().fit(data),
            "ease": lambda data, seed: EASE.tune(data, LAMBDAS, progress=False)[0],
            "diffrec": trained(lambda d: FastDiffRec(d.n_items, **DIFFREC), lr=1e-3, batch_size=400),
            "multivae": trained(lambda d: MultiVAE(d.n_items, **MULTIVAE), **MULTIVAE_TRAIN),
            "cfgan": trained(lambda d: CFGAN(d.n_items, **ML1M), **ML1M_TRAIN),
            "lightgcn": trained(lambda d: FastLightGCN(d, **LIGHTGCN), optimizer="adam", **LIGHTGCN_TRAIN)}


def lists_measures(model, data, k: int = 20) -> dict:
    """Coverage@k and the Gini index of exposure of the model's test top-k lists."""
    lists = ba.top_k_lists(lambda u: model.score(data, u, "test"), data, k=k)
    return {f"coverage@{k}": ba.coverage(lists, data.n_items), f"gini@{k}": ba.gini(lists, data.n_items)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["popularity", "ease", "diffrec", "multivae"])
    p.add_argument("--shares", type=float, nargs="+", default=list(SHARES))
    p.add_argument("--seed", type=int, nargs="+", default=[1])
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir", default=None, help="default: $TUTORIAL_DATA_DIR, else data")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "noise_robustness.jsonl")
    p.add_argument("--mask-only", action="store_true",
                   help="instead, the mask confound alone (analysis.robustness.mask_only): each model trained "
                        "once per seed on clean data, evaluated with each draw's injected items off its lists")
    args = p.parse_args(argv)
    data = load_course_data("ml-1m_clean", root=args.data_dir)[0]
    chosen = {k: v for k, v in trainers(args.device, args.epochs).items() if k in args.models}

    def write(row):
        line = {**{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()},
                "dataset": "ml-1m_clean", "max_epochs": args.epochs, "device": args.device,
                "torch_threads": torch.get_num_threads(),
                "load_average_1m": round(os.getloadavg()[0], 2)}
        with open(args.out, "a") as f:
            f.write(json.dumps(line) + "\n")
        print(json.dumps(line), flush=True)

    if args.mask_only:
        for seed in args.seed:
            for name, train in chosen.items():
                table = mask_only(data, {(name, seed): train(data, seed)}, shares=args.shares)
                for row in table.to_dict(orient="records"):
                    write({**row, "seed": seed, "control": "mask only"})
        return None
    return noise_robustness(data, chosen, shares=args.shares, seeds=args.seed, callback=write,
                            measures=lists_measures)


if __name__ == "__main__":
    main()
