"""Diffusion Recommenders, Step by Step: the library behind the notebooks.

One idea per module (where to look for what):

    schedules   beta_t schedules, alpha_bar_t, SNR                    (notebook 01)
    diffusion   q(x_t|x_0), q(x_{t-1}|x_t,x_0), p_theta, the ELBO       (notebook 02)
    step_sampler  StepSampler: uniform / importance sampling of t      (notebook 02)
    data        InteractionData, user-id checks, splits, from_dataframe (usual column names)
    datasets    the papers' splits, CSV / RecBole / MovieLens readers, load_course_data
    download    fetch(): checksum-verified downloads; data_root() ($TUTORIAL_DATA_DIR)
    synthetic   make_synthetic(): the offline world with its ground truth
    sequences   left-padded windows and leave-one-out inputs           (notebooks 06-07)
    metrics     full-ranking Recall / NDCG / HR / MRR / Precision @K
    train       one training loop for every model (progress, early stopping, resume)
    history     History: what a training run did (JSON-able, plottable)
    checkpoint  atomic checkpoint files, RNG state save / restore
    models/     diffrec, ldiffrec, tdiffrec, diffurec, seqdiffrec and the baselines
    analysis    what the figures show, computed (trajectories, noise ranks, sweeps, costs)
    beyond_accuracy  coverage, Gini, diversity, novelty, posterior collapse, latency (notebook 08)
    viz/        plots and widgets, one module per notebook (each widget has a static twin)
    notebook    record results in an executed notebook, read them back in tests
    cli         diffrec-tutorial: train any model on your data from the shell (recipes, --set)
    distributed data-parallel training under torchrun (DistributedDataParallel), bounded scoring

Sub-modules are imported lazily, so ``import tutorial_lib`` stays fast.
"""
from __future__ import annotations

import importlib

from .utils import device, seed_everything

__version__ = "0.1.0"
__all__ = ["device", "seed_everything", "schedules", "diffusion", "step_sampler", "data", "datasets",
           "download", "synthetic", "sequences", "metrics", "train", "history", "checkpoint", "models",
           "analysis", "beyond_accuracy", "viz", "notebook", "cli", "distributed"]

_LAZY = {"schedules", "diffusion", "step_sampler", "data", "datasets", "download", "synthetic", "sequences",
         "metrics", "train", "history", "checkpoint", "models", "analysis", "beyond_accuracy", "viz", "notebook",
         "cli", "distributed"}


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tutorial_lib' has no attribute {name!r}")
