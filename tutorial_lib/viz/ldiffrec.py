"""Notebook 04's pictures: L-DiffRec's item clusters, a user's latent code before and after the
reverse chain, parameters, memory and inference cost against the number of items, and a
comparison of models trained with several seeds (notebooks 04 and 05).

The numbers behind them (``parameter_table``, ``training_cost``, ``inference_macs``) are in
``tutorial_lib.analysis``.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.ticker import EngFormatter, LogLocator
import numpy as np
import pandas as pd
import seaborn as sns

from .common import LEGEND_FONTSIZE, to_numpy
from .widgets import subplots


def plot_item_clusters(item_embeddings, clusters, true_clusters=None, ax=None):
    """Item embeddings (I, e) projected on their first two principal components, coloured
    by cluster (I,); with ``true_clusters`` (synthetic data) a second panel colours by those."""
    from sklearn.decomposition import PCA

    xy = PCA(n_components=2, random_state=0).fit_transform(to_numpy(item_embeddings))   # tensors too (GPU, grad)
    panels = [("KMeans cluster (L-DiffRec)", clusters)]
    if true_clusters is not None:
        panels.append(("true item cluster (synthetic world)", true_clusters))
    if ax is None:
        _, ax = subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    axes = np.atleast_1d(ax).ravel()
    for a, (title, labels) in zip(axes, panels):
        sns.scatterplot(x=xy[:, 0], y=xy[:, 1], hue=np.asarray(labels), palette="tab10", s=12,
                        linewidth=0, ax=a, legend=len(np.unique(labels)) <= 10)
        a.set(xlabel="PC 1", ylabel="PC 2", title=title)
        if a.get_legend() is not None:                 # beside the panel, never over the points
            sns.move_legend(a, "upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize=LEGEND_FONTSIZE,
                            title="cluster", title_fontsize=LEGEND_FONTSIZE, markerscale=1.5)
    fig = axes[0].figure
    fig.tight_layout()
    return fig


def plot_latent_code(z0, z_hat, latent_dims, ax=None):
    """A user's latent code z_0 = mu(x) and the denoised code after the reverse chain (d,),
    with the per-cluster blocks of size latent_dims shaded."""
    z0, z_hat = to_numpy(z0).ravel(), to_numpy(z_hat).ravel()
    if ax is None:
        _, ax = subplots(figsize=(8, 3.4))
    start = 0
    for c, d in enumerate(latent_dims):
        ax.axvspan(start - 0.5, start + d - 0.5, color=f"C{c}", alpha=0.08)
        ax.text(start + d / 2, 1.02, f"cluster {c} ({d} dims)", transform=ax.get_xaxis_transform(),
                ha="center", fontsize=9)
        start += d
    ax.plot(z0, lw=1, color="black", label=r"$z_0 = \mu(x)$ (encoder)")
    ax.plot(z_hat, lw=1, color="tab:red", alpha=0.8, label=r"denoised $\hat z_0$ (reverse chain)")
    ax.set(xlabel="latent unit", ylabel="value", xlim=(-0.5, len(z0) - 0.5))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False, fontsize=LEGEND_FONTSIZE)
    ax.figure.tight_layout()
    return ax.figure


SCALING_PANELS = {"parameters": ("parameters", "parameters (lower is better)"),
                  "peak_mb": ("memory of one training step", "MB (lower is better)"),
                  "macs": ("multiply-adds to score one user", "multiply-adds (lower is better)")}


def plot_scaling(rows, axes=None):
    """Parameters, peak memory and (when given) inference multiply-adds against the number of
    items (log-log), one line per model; each panel says that lower is better.

    rows: records with keys model, n_items, parameters, peak_mb and optionally macs
    (``analysis.training_cost``, ``analysis.inference_macs``).
    """
    df = pd.DataFrame(rows)
    panels = [col for col in SCALING_PANELS if col in df]
    if axes is None:
        _, axes = subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    axes = np.atleast_1d(axes).ravel()
    ticks = sorted(df["n_items"].unique())
    for ax, col in zip(axes, panels):
        sns.lineplot(df, x="n_items", y=col, hue="model", marker="o", ax=ax)
        title, ylabel = SCALING_PANELS[col]
        ax.set(xscale="log", yscale="log", xlabel="number of items $I$", ylabel=ylabel, title=title)
        ax.set_xticks(ticks, [f"{n:,}" for n in ticks])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(EngFormatter(sep=""))      # 1M, 2M, 5M rather than 10^6
        ax.yaxis.set_minor_formatter(plt.NullFormatter())
        if ax is not axes[len(panels) - 1]:
            ax.get_legend().remove()                   # one legend, beside the last panel
    sns.move_legend(axes[len(panels) - 1], "upper left", bbox_to_anchor=(1.01, 1), frameon=False,
                    fontsize=LEGEND_FONTSIZE, title="model", title_fontsize=LEGEND_FONTSIZE)
    fig = axes[0].figure
    fig.tight_layout()
    return fig


def plot_seed_runs(runs: dict, metrics=("recall@20", "ndcg@20"), axes=None):
    """One dot per training seed and a bar for the mean, per model and metric.

    runs: {model name: [metrics dict of one seed, ...]} (e.g. each ``History.best_test``).
    Models go down the y-axis, so long names never collide; the x-axis says higher is better.
    """
    metrics = list(metrics)
    df = pd.DataFrame([{"model": name, "seed": i, **run} for name, seeds in runs.items()
                       for i, run in enumerate(seeds)])
    missing = [m for m in metrics if m not in df]
    if missing:
        raise ValueError(f"no {missing[0]!r} in the runs; their keys: {sorted(set(df) - {'model', 'seed'})}")
    if axes is None:
        _, axes = subplots(1, len(metrics), figsize=(4.4 * len(metrics), 0.45 * len(runs) + 1.4),
                           sharey=True, squeeze=False)
    axes = np.atleast_1d(axes).ravel()
    axes[0].invert_yaxis()                     # first model on top (the y-axis is shared)
    for ax, metric in zip(axes, metrics):
        means = df.groupby("model", sort=False)[metric].mean()
        ax.barh(means.index, means.values, color="lightgrey", label="mean")
        ax.scatter(df[metric], df["model"], color="black", s=14, zorder=3, label="one seed")
        ax.set(xlabel=f"test {metric} (higher is better)", xlim=(0, 1.1 * df[metric].max()))
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False, fontsize=LEGEND_FONTSIZE)
    fig = axes[0].figure
    fig.tight_layout()
    return fig
