"""Notebook 04's pictures: L-DiffRec's item clusters, a user's latent code before and after the
reverse chain, parameters and memory against the number of items.

The numbers behind them (``parameter_table``, ``training_cost``) are in ``tutorial_lib.analysis``.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
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
        if a.get_legend() is not None:
            sns.move_legend(a, "best", fontsize=LEGEND_FONTSIZE, title="cluster", title_fontsize=LEGEND_FONTSIZE)
    fig = axes[0].figure
    fig.tight_layout()
    return fig


def plot_latent_code(z0, z_hat, latent_dims, ax=None):
    """A user's latent code z_0 = mu(x) and the denoised code after the reverse chain (d,),
    with the per-cluster blocks of size latent_dims shaded."""
    z0, z_hat = to_numpy(z0).ravel(), to_numpy(z_hat).ravel()
    if ax is None:
        _, ax = subplots(figsize=(8, 3))
    start = 0
    for c, d in enumerate(latent_dims):
        ax.axvspan(start - 0.5, start + d - 0.5, color=f"C{c}", alpha=0.08)
        ax.text(start + d / 2, 1.02, f"cluster {c} ({d} dims)", transform=ax.get_xaxis_transform(),
                ha="center", fontsize=9)
        start += d
    ax.plot(z0, lw=1, color="black", label=r"$z_0 = \mu(x)$ (encoder)")
    ax.plot(z_hat, lw=1, color="tab:red", alpha=0.8, label=r"denoised $\hat z_0$ (reverse chain)")
    ax.set(xlabel="latent unit", ylabel="value", xlim=(-0.5, len(z0) - 0.5))
    ax.legend(loc="lower right", fontsize=LEGEND_FONTSIZE)
    ax.figure.tight_layout()
    return ax.figure


def plot_scaling(rows, axes=None):
    """Parameters and peak memory against the number of items (log-log), one line per model.

    rows: records with keys model, n_items, parameters, peak_mb (``analysis.training_cost``).
    """
    df = pd.DataFrame(rows)
    if axes is None:
        _, axes = subplots(1, 2, figsize=(10, 3.5))
    for ax, col, label in zip(axes, ("parameters", "peak_mb"), ("parameters", "memory of one training step (MB)")):
        sns.lineplot(df, x="n_items", y=col, hue="model", marker="o", ax=ax)
        ax.set(xscale="log", yscale="log", xlabel="number of items $I$", ylabel=label, title=label)
        ax.set_xticks(sorted(df["n_items"].unique()), [f"{n:,}" for n in sorted(df["n_items"].unique())])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        if ax.get_legend() is not None:
            sns.move_legend(ax, "best", fontsize=LEGEND_FONTSIZE, title_fontsize=LEGEND_FONTSIZE)
    fig = axes[0].figure
    fig.tight_layout()
    return fig
