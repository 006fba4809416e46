"""Recipe for CFGAN (Chae et al., CIKM 2018) on ml-1m_clean / synthetic, tuned on validation.

    python benchmarks/reproduce.py cfgan --dataset ml-1m_clean --data-dir ../shared/datasets --seed 1
    python benchmarks/reproduce.py cfgan --dataset synthetic
    python benchmarks/recipes/cfgan.py --grid research/cfgan_grid.jsonl --data-dir ../shared/datasets

Protocol as for the DiffRec family (benchmarks/recipes/diffrec.py): full ranking, training
items masked for validation, training + validation items for test, validation every 5
epochs, test figures at the best validation Recall@20, stop after 20 epochs without
improvement. The JSON line adds ``valid_curve`` (validation Recall@20 at each evaluation)
and the last epoch's mean D(real) / D(fake): the training curve behind "GANs train unstably".

Settings: the released code's ML-1M architecture (G [I -> 300 -> I], D [2I -> 250 -> 1],
sigmoid hidden units, Adam), with alpha, the shares s_zr / s_pm and the learning rates chosen
by validation Recall@20 on ml-1m_clean (seed 1, the 8 GRID entries below, at most GRID_EPOCHS
epochs each, 15 CPU minutes in all; the release's own lr 1e-4 needs ~1500 epochs). Lines in
research/cfgan_grid.jsonl; best validation Recall@20 of each entry:

    0  ZP s 0.9/0.9, alpha 0.1, lr 1e-3, batch 256                  0.0611
    1  ZP s 0.9/0.9, alpha 1.0, lr 1e-3, batch 256                  0.0765
    2  ZP s 0.9/0.9, alpha 0.1, lr 1e-3 (D 1e-4), batch 256         0.0792
    3  ZP s 0.5/0.5, alpha 1.0, lr 3e-3, batch 64                   0.0884
    4  ZP s 0.9/0.9, alpha 0.1, lr 3e-3 (D 3e-4), batch 64          0.0802
    5  ZR s_zr 0.5 (no PM), alpha 1.0, lr 3e-3, batch 64            0.0908   <- ML1M
    6  ZP s 0.5/0.5, alpha 3.0, lr 3e-3, batch 64                   0.0869
    7  ZP s 0.5/0.5, alpha 1.0, lr 3e-3, weight decay 1e-4, batch 64  0.0898

(popularity: 0.0793). Entries 3, 5 and 7 differ by less than seed-to-seed noise is likely to.
On the synthetic world: SYNTHETIC (a smaller G and D, the same kind of setting).
"""
from __future__ import annotations

from tutorial_lib.cli.recipes import CFGAN_BASE as BASE  # the settings (GRID entry 5: ML1M)
from tutorial_lib.cli.recipes import CFGAN_ML1M as ML1M
from tutorial_lib.cli.recipes import CFGAN_ML1M_TRAIN as ML1M_TRAIN
from tutorial_lib.cli.recipes import CFGAN_SYNTHETIC as SYNTHETIC
from tutorial_lib.cli.recipes import CFGAN_SYNTHETIC_TRAIN as SYNTHETIC_TRAIN
from tutorial_lib.models.cfgan import CFGAN
from tutorial_lib.train import fit
from tutorial_lib.utils import seed_everything

try:
    from .tuning import curve_summary, main, recipe_line
except ImportError:              # run as a script: python benchmarks/recipes/cfgan.py --grid ...
    from tuning import curve_summary, main, recipe_line

EPOCHS = 1000                          # an upper limit; early stopping ends far sooner
GRID_EPOCHS = 30
# (model settings, training settings) tried on ml-1m_clean validation
GRID = [
    (dict(BASE, alpha=0.1), dict(lr=1e-3, batch_size=256)),
    (dict(BASE, alpha=1.0), dict(lr=1e-3, batch_size=256)),
    (dict(BASE, alpha=0.1, d_lr=1e-4), dict(lr=1e-3, batch_size=256)),
    (dict(BASE, alpha=1.0, s_zr=0.5, s_pm=0.5), dict(lr=3e-3, batch_size=64)),
    (dict(BASE, alpha=0.1, d_lr=3e-4), dict(lr=3e-3, batch_size=64)),
    (dict(BASE, alpha=1.0, s_zr=0.5, s_pm=0.0), dict(lr=3e-3, batch_size=64)),
    (dict(BASE, alpha=3.0, s_zr=0.5, s_pm=0.5), dict(lr=3e-3, batch_size=64)),
    (dict(BASE, alpha=1.0, s_zr=0.5, s_pm=0.5), dict(lr=3e-3, weight_decay=1e-4, batch_size=64)),
]


def run(data, model_cfg: dict, train_cfg: dict, *, seed: int, epochs: int, device="auto",
        eval_every: int = 5, progress: bool | int = False):
    """Train one CFGAN with ``fit``; return (model, History). progress: as in ``fit``."""
    seed_everything(seed)
    model = CFGAN(data.n_items, **model_cfg)
    h = fit(model, data, epochs=epochs, eval_every=eval_every, patience=20, eval_batch_size=2048,
            device=device, seed=seed, progress=progress, **train_cfg)
    return model, h


def summary(model, h) -> dict:
    """What a line records beyond the test metrics: the selection, the curves, the time, and the
    discriminator's last mean outputs on real and generated rows."""
    return {**curve_summary(h), "d_real_last": round(model.curves["d_real"][-1], 3),
            "d_fake_last": round(model.curves["d_fake"][-1], 3)}


def cfgan(args) -> dict:
    return recipe_line(args, run, summary, (ML1M, ML1M_TRAIN), (SYNTHETIC, SYNTHETIC_TRAIN), EPOCHS)


RECIPES = {"cfgan": cfgan}


if __name__ == "__main__":
    main("CFGAN", GRID, run, summary, GRID_EPOCHS)
