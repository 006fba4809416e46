"""Notebook 00's picture: implicit feedback as a noisy view of a user's preferences."""
from __future__ import annotations

import numpy as np
import seaborn as sns

from .common import LEGEND_FONTSIZE, to_numpy
from .widgets import subplots


def plot_preference_vs_clicks(preference, observed, false_pos=None, false_neg=None, title=None):
    """Heatmaps side by side: true preference (users x items) and the observed clicks.

    preference (U, I) true (possibly graded) preference; observed (U, I) 0/1 clicks;
    false_pos / false_neg (U, I) bool masks of injected noise, outlined in the clicks panel
    (red x: clicked but not preferred; blue o: preferred, exposed, not clicked).
    """
    from matplotlib.colors import PowerNorm

    preference, observed = to_numpy(preference), to_numpy(observed)
    if preference.shape != observed.shape or preference.ndim != 2:
        raise ValueError(f"preference and observed must be 2-D of one shape, got "
                         f"{preference.shape} and {observed.shape}")
    fig, axes = subplots(1, 2, figsize=(11, 0.35 * preference.shape[0] + 1.5), sharey=True)
    sns.heatmap(preference, ax=axes[0], cmap="viridis", cbar=True, xticklabels=False,
                norm=PowerNorm(0.5, vmin=0, vmax=float(preference.max())))
    axes[0].set(title="true preference (square-root colour scale)", xlabel="item", ylabel="user")
    sns.heatmap(observed, ax=axes[1], cmap="Greys", cbar=False, xticklabels=False, vmin=0, vmax=1)
    axes[1].set(title="observed clicks (training)", xlabel="item")
    for mask, marker, color, label in ((false_pos, "x", "tab:red", "false positive (noise click)"),
                                       (false_neg, "o", "tab:blue", "false negative (missed)")):
        if mask is not None:
            u, i = np.nonzero(to_numpy(mask))
            style = dict(facecolors="none", edgecolors=color) if marker == "o" else dict(c=color)
            axes[1].scatter(i + 0.5, u + 0.5, marker=marker, s=25, label=label, **style)
    if false_pos is not None or false_neg is not None:
        axes[1].legend(loc="upper right", bbox_to_anchor=(1.0, -0.09), ncol=2, fontsize=LEGEND_FONTSIZE,
                       frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
