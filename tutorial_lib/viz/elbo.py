"""Notebook 02's pictures: the forward process checked by Monte Carlo, the ELBO's terms by step,
importance sampling of steps, per-step errors of two parameterisations."""
from __future__ import annotations

import numpy as np
import seaborn as sns

from .common import LEGEND_FONTSIZE, to_numpy
from .widgets import subplots


def plot_mc_check(t_steps, closed_mean, closed_std, chain_mean, chain_std, ax=None):
    """Closed-form mean/std of q(x_t|x_0) (lines) against Monte Carlo over the Markov chain (dots).

    All arguments (T,) over the steps ``t_steps``.
    """
    if ax is None:
        _, ax = subplots(figsize=(6, 3.2))
    t = to_numpy(t_steps)
    ax.plot(t, to_numpy(closed_mean), color="tab:blue", label="closed form: mean")
    ax.plot(t, to_numpy(closed_std), color="tab:orange", label="closed form: std")
    ax.scatter(t, to_numpy(chain_mean), s=12, color="tab:blue", marker="o", label="Markov chain (MC): mean")
    ax.scatter(t, to_numpy(chain_std), s=12, color="tab:orange", marker="s", label="Markov chain (MC): std")
    ax.set(xlabel="step $t$", title="$q(x_t \\mid x_0)$: one-shot formula vs $t$ small steps")
    ax.legend(fontsize=LEGEND_FONTSIZE, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))   # beside the curves
    return ax.figure


def _short(value: float) -> str:
    """1,794 for a large value, 1.2e-05 for a tiny one."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2g}"


def plot_elbo_terms(terms: dict, title: str = "", ax=None):
    """Bars per step: L_0 (reconstruction, t=1), L_{t-1} (denoising matching, t=2..T), L_T (prior).

    ``terms`` as returned by ``GaussianDiffusion.elbo_terms``. The reconstruction term is a
    negative log-density and may be negative for continuous data; drawn in its own colour.
    The y-axis is symlog, linear below 1e-3, where a bar is too short to see: the prior term's
    value is written in its legend entry and a red triangle marks the top of its bar.
    """
    den = to_numpy(terms["denoising_matching"]).ravel()
    T = len(den) + 1
    prior = float(terms["prior_matching"])
    if ax is None:
        _, ax = subplots(figsize=(9.5, 3.2))
    ax.bar([1], [terms["reconstruction"]], color="tab:green", label="reconstruction  $L_0$")
    ax.bar(np.arange(2, T + 1), den, color="tab:blue", label="denoising matching  $L_{t-1}$")
    ax.bar([T + 1], [prior], color="tab:red", label=f"prior matching  $L_T$ = {_short(prior)}")
    ax.plot([T + 1], [prior], marker="v", ms=7, color="tab:red", mec="k", ls="none", zorder=5)
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set(xlabel="step $t$ ($T+1$ = prior)", ylabel="nats per example", title=title)
    ax.legend(fontsize=LEGEND_FONTSIZE, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the bars
    ax.figure.tight_layout()
    return ax.figure


def plot_step_probabilities(snapshots, ax=None):
    """The StepSampler's p_t at several training steps: snapshots = [(step, p_t (T,)), ...]."""
    if ax is None:
        _, ax = subplots(figsize=(7, 3.2))
    colors = sns.color_palette("viridis", len(snapshots))
    for color, (step, p) in zip(colors, snapshots):
        p = to_numpy(p)
        ax.plot(np.arange(1, len(p) + 1), p, color=color, label=f"after {step} updates")
    ax.set(xlabel="step $t$", ylabel="$p_t$",
           title=r"importance sampling of steps: $p_t \propto \sqrt{E[L_t^2]}$")
    ax.legend(fontsize=LEGEND_FONTSIZE, frameon=False, ncol=2)
    return ax.figure


def plot_per_step(values_by_name: dict, ylabel: str, title: str = "", logy: bool = True, ax=None):
    """One line per name {name: (T,) values at steps t = 1..T}, e.g. per-step errors of two models."""
    if ax is None:
        _, ax = subplots(figsize=(6.5, 3.2))
    for name, values in values_by_name.items():
        v = to_numpy(values).ravel()
        ax.plot(np.arange(1, len(v) + 1), v, label=name)
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel="step $t$", ylabel=ylabel, title=title)
    ax.legend(fontsize=LEGEND_FONTSIZE, frameon=False)
    return ax.figure
