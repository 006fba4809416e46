"""Validation sweeps for DiffRec, L-DiffRec and T-DiffRec on ml-1m_clean: which settings do best?

    python research/diffrec_sweep.py                  # every DiffRec config in GRID, seed 1
    python research/diffrec_sweep.py --only 0 3 --seeds 1 2 3
    python research/diffrec_sweep.py --family ldiffrec --only 0 1   # L-DiffRec variants (LGRID)
    python research/diffrec_sweep.py --family tdiffrec --seeds 1 2 3   # T-DiffRec's w_min (TGRID)
    python research/diffrec_sweep.py --family ltdiffrec --only 3       # LT-DiffRec, w_min 0.4 (TGRID)
    python research/diffrec_sweep.py --only 0 --seeds 1 2 --sampler-rng own

The paper searched noise scale, noise bounds, T, the learning rate and the MLP size and reports one best
setting (for T-DiffRec only a range: w_min 0.1 to 0.5, w_max = 1); this script re-runs that search
on *validation* Recall@20 (never test) so that the recipe's choice can be checked. One JSON line
per (config, seed) with the validation figure that decides and the test figure at the best
validation epoch, which is reported, not used. Same protocol and training loop as ``reproduce.py
diffrec``; one difference: the sweep's optimizer is ``torch.optim.AdamW`` without the fused kernel
(``reproduce.py`` uses ``FastDiffRec.configure_optimizers``, fused since the fifth session), the same
update up to float rounding. The recorded sweep rows were all run this way.

``--sampler-rng own`` gives the step sampler its own CPU generator, seeded with the run's seed;
by default (``shared``, the library as it is) it draws from the global CPU generator, which on a
CPU also draws the noise and the dropout masks (on a GPU those come from CUDA's generator). Same
model, same distribution of draws, different random numbers: it asks whether sharing one stream
costs accuracy (LOG.md: it does not).
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))   # the recipes and reproduce.py

from recipes.diffrec import DIFFREC, load  # noqa: E402
from recipes.ldiffrec import LIGHTGCN  # noqa: E402
from reproduce import default_data_dir, processor, torch_version  # noqa: E402

from tutorial_lib.models.diffrec_fast import (FastDiffRec, FastLDiffRec, FastLTDiffRec,  # noqa: E402
                                              FastTDiffRec)
from tutorial_lib.models.ldiffrec import cluster_items, item_embeddings  # noqa: E402
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
    ({"dims": (1000,)}, {}),                  # ninth session: the paper's other MLP sizes
    ({"dims": (300,)}, {}),
    ({"first_beta": 1e-5}, {}),               # twelfth session: the released code's beta_fixed
                                              # (ablations.FirstBetaDiffRec, see diffrec_class)
]

# L-DiffRec around the released ML-1M setting: (model overrides, clustering overrides);
# clusters come from recipes.ldiffrec.LIGHTGCN (20 epochs) unless lightgcn_epochs says otherwise
LGRID = [
    ({}, {"lightgcn_epochs": 3}),                      # 2 clusters of a 3-epoch LightGCN
    ({}, {"n_clusters": 1}),                           # no clustering: one encoder
    ({}, {"lightgcn_epochs": 20}),                     # better-trained item embeddings
    ({"dropout": 0.5}, {"lightgcn_epochs": 3}),        # encoder input dropout as Mult-VAE's
    ({"lr_ae": 5e-4, "lr_denoiser": 1e-4}, {}),        # the released amazon-book/yelp rates
    ({"T": 100}, {}),                                  # the public run of the released code (LOG.md)
    ({}, {"lightgcn_epochs": 70}),                     # a converged LightGCN (best validation epoch)
    # thirteenth session, one GPU: the factors the paper tuned that no CPU session had varied
    ({"noise_scale": 0.001}, {}),                      # 7: less noise
    ({"noise_scale": 0.01}, {}),                       # 8: more noise
    ({"noise_scale": 0.1}, {}),                        # 9: much more (the latent is tanh-bounded)
    ({"lambda_": 0.01}, {}),                           # 10: diffusion loss weight
    ({"lambda_": 0.1}, {}),                            # 11
    ({}, {"n_clusters": 3}),                           # 12: more clusters
    ({}, {"n_clusters": 5}),                           # 13
    ({"encoder_dims": (600,)}, {}),                    # 14: a wider latent
    ({"T": 10}, {}),                                   # 15: fewer steps
]

# T-DiffRec: DiffRec's setting on time-weighted rows; the paper's range of w_min, 0.1 to 0.5 (w_max = 1).
# Entry 0 is the recipe's (reproduce.py tdiffrec). --family ltdiffrec runs the same w_min values on
# L-DiffRec's recipe (LGRID entry 2's clusters), entry 0 being reproduce.py ltdiffrec.
TGRID = [({"w_min": w}, {}) for w in (0.1, 0.2, 0.3, 0.4, 0.5)]


def diffrec_class(model_kw: dict) -> type:
    """The recipe's DiffRec class (``FastDiffRec``), or the ablation a GRID entry asks for."""
    if "first_beta" in model_kw:
        from ablations import FirstBetaDiffRec

        return FirstBetaDiffRec
    return FastDiffRec


def train_kwargs(overrides: dict) -> dict:
    """fit's settings of the DiffRec recipe with a GRID entry's training overrides."""
    return {**dict(lr=1e-3, weight_decay=0.0, batch_size=400, optimizer="adamw"), **overrides}


def own_sampler_generator(model, seed: int) -> None:
    """Make ``model.sampler`` draw its steps from a CPU generator of its own, seeded with ``seed``.

    ``fit`` seeds its batch-order generator with the same seed, so the first batch's steps and
    the first epoch's user order are read from one stream of numbers (as a multinomial and as a
    permutation); the streams part after that. Kept so that the recorded runs repeat."""
    generator = torch.Generator().manual_seed(seed)
    model.sampler.sample = functools.partial(model.sampler.sample, generator=generator)


def _summary(config: dict, seed: int, h, start: float) -> dict:
    return {"config": config, "seed": seed, "device": h.device, "processor": processor(h.device),
            "torch": torch_version(),
            "valid_recall@20": round(h.best_valid["recall@20"], 4),
            "test_recall@20": round(h.best_test["recall@20"], 4),
            "test_ndcg@20": round(h.best_test["ndcg@20"], 4), "best_epoch": h.best_epoch,
            "epochs": h.epochs, "seconds": round(time.perf_counter() - start, 1)}


def run_ldiffrec(model_kw: dict, cluster_kw: dict, seed: int, data_dir: str, device: str,
                 sampler_rng: str = "shared", model_cls: type = FastLDiffRec) -> dict:
    """One L-DiffRec run (``model_cls=FastLTDiffRec``: LT-DiffRec) of the recipe with overrides."""
    data = load(argparse.Namespace(dataset="ml-1m_clean", data_dir=data_dir))
    start = time.perf_counter()
    gcn = dict(LIGHTGCN, epochs=cluster_kw.get("lightgcn_epochs", LIGHTGCN["epochs"]))
    n_clusters = cluster_kw.get("n_clusters", 2)
    emb = (item_embeddings(data, device=device, seed=seed, progress=False, **gcn) if n_clusters > 1
           else np.zeros((data.n_items, 1)))                       # one cluster: nothing to embed
    clusters = cluster_items(emb, n_clusters, seed=seed)
    seed_everything(seed)
    model = model_cls(data.n_items, clusters=clusters, **model_kw)
    if sampler_rng == "own":
        own_sampler_generator(model, seed)
    h = fit(model, data, epochs=1000, lr=1e-3, batch_size=400, eval_every=5, patience=20,
            device=device, seed=seed, progress=False)
    return {**_summary({**model_kw, **cluster_kw}, seed, h, start),
            "cluster_sizes": model.vae.cluster_sizes, "sampler_rng": sampler_rng}


def run(model_kw: dict, train_kw: dict, seed: int, data_dir: str, device: str,
        sampler_rng: str = "shared", model_cls: type | None = None) -> dict:
    """One DiffRec run (``model_cls=FastTDiffRec``: one T-DiffRec run) of the recipe with overrides."""
    args = argparse.Namespace(dataset="ml-1m_clean", data_dir=data_dir)
    data = load(args)
    seed_everything(seed)
    model = (model_cls or diffrec_class(model_kw))(data.n_items, **{**DIFFREC, **model_kw})
    if sampler_rng == "own":
        own_sampler_generator(model, seed)
    train = train_kwargs(train_kw)
    start = time.perf_counter()
    h = fit(model, data, epochs=1000, eval_every=5, patience=20, eval_batch_size=2048,
            device=device, seed=seed, progress=False, **train)
    return {**_summary({**model_kw, **train_kw}, seed, h, start), "sampler_rng": sampler_rng}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--family", choices=["diffrec", "ldiffrec", "tdiffrec", "ltdiffrec"], default="diffrec")
    p.add_argument("--only", type=int, nargs="*", help="indices into GRID / LGRID / TGRID (default: all)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1])
    p.add_argument("--data-dir", default=default_data_dir())
    p.add_argument("--device", default="auto")
    p.add_argument("--sampler-rng", choices=["shared", "own"], default="shared",
                   help="the step sampler's generator: the global one (the library's way) or its own")
    a = p.parse_args(argv)
    grid, runner = {"diffrec": (GRID, run), "ldiffrec": (LGRID, run_ldiffrec),
                    "tdiffrec": (TGRID, functools.partial(run, model_cls=FastTDiffRec)),
                    "ltdiffrec": (TGRID, functools.partial(run_ldiffrec, model_cls=FastLTDiffRec))}[a.family]
    for i in (a.only if a.only else range(len(grid))):
        for seed in a.seeds:
            row = runner(*grid[i], seed, a.data_dir, a.device, a.sampler_rng)
            print(json.dumps({"family": a.family, "index": i, **row}), flush=True)


if __name__ == "__main__":
    main()
