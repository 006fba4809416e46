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

from tutorial_lib.cli.recipes import LIGHTGCN_ML1M as ML1M
from tutorial_lib.cli.recipes import LIGHTGCN_ML1M_TRAIN as ML1M_TRAIN
from tutorial_lib.cli.recipes import LIGHTGCN_SYNTHETIC as SYNTHETIC
from tutorial_lib.cli.recipes import LIGHTGCN_SYNTHETIC_TRAIN as SYNTHETIC_TRAIN
from tutorial_lib.models.lightgcn_fast import FastLightGCN
from tutorial_lib.train import fit
from tutorial_lib.utils import seed_everything

try:
    from .tuning import curve_summary, main, recipe_line
except ImportError:              # run as a script: python benchmarks/recipes/lightgcn.py --grid ...
    from tuning import curve_summary, main, recipe_line

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


def summary(model, h) -> dict:
    """What a line records beyond the test metrics: the selection, the curve, the time."""
    return curve_summary(h)


def lightgcn(args) -> dict:
    return recipe_line(args, run, summary, (ML1M, ML1M_TRAIN), (SYNTHETIC, SYNTHETIC_TRAIN), EPOCHS)


RECIPES = {"lightgcn": lightgcn}


if __name__ == "__main__":
    main("LightGCN", GRID, run, summary, GRID_EPOCHS)
