"""Plots and widgets for the notebooks: one module per notebook, plus what they share.

    common      set_style, plot_metric_bars (every notebook), to_numpy
    widgets     show / png / subplots, live_output, the locks, snapshot: the explorers' plumbing
    feedback    00  true preference against observed clicks
    schedules   01  beta_t, alpha_bar_t, SNR; forward marginals; ``schedule_explorer``
    elbo        02  Monte Carlo check, ELBO terms, step probabilities, per-step errors
    diffrec     03  the denoising trajectory; ``trajectory_explorer``
    ldiffrec    04  item clusters, latent codes, scaling with the number of items
    tdiffrec    05  drifting interests, time weights; ``time_weight_explorer``
    diffurec    06  items as distributions, the reverse path; ``reverse_explorer``; diversity
    seqdiffrec  07  the transitions, KL vs MSE, inference sweeps; ``inference_explorer``

Every function returns a ``Figure`` (or draws into the ``ax`` it is given), so it works headless,
in HTML exports and in tests. Every widget has a *static twin*: the function behind it, called
at the default slider values, draws the same figure without a kernel (widget state is lost in
headless runs: papermill#400, nbconvert#1214). Only core ipywidgets are used. What a figure
shows is computed in ``tutorial_lib.analysis``. Importing any of this changes no global state of
matplotlib or IPython; ``set_style()`` and the first explorer built do, when called.

    from tutorial_lib import viz
    viz.set_style()
    viz.diffrec.trajectory_explorer(model, data, truth)     # sub-modules load on first use
"""
from __future__ import annotations

import importlib

from .common import plot_metric_bars, set_style

MODULES = ("common", "widgets", "feedback", "schedules", "elbo", "diffrec", "ldiffrec", "tdiffrec",
           "diffurec", "seqdiffrec")
__all__ = ["plot_metric_bars", "set_style", *MODULES]


def __getattr__(name):
    if name in MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'tutorial_lib.viz' has no attribute {name!r}")
