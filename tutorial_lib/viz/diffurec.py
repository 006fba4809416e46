"""Notebook 06's pictures: items as distributions, the reverse process among items, diversity.

* ``ItemMap``              a 2-D PCA of the item embeddings, to draw vectors among items
* ``draw_forward_clouds``  q(x_t | e_i) for a few items at a few steps: an item is a cloud
* ``draw_reverse``         static twin of ``reverse_explorer``: x0_hat at a step among the items,
                           the true next item and the top-K at that step (ranked by dot product)
* ``reverse_explorer``     slider over the reverse step (core ipywidgets)
* ``plot_rank_by_step``    HR@K of x0_hat after each reverse step, with its binomial band
* ``plot_diversity``       several reverse runs per user next to SASRec's single list

The numbers (``reverse_path``, ``rank_by_step``, ``sample_diversity``) are in ``tutorial_lib.analysis``.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.ticker import MaxNLocator

from ..analysis import binomial_band, reverse_path
from .common import LEGEND_FONTSIZE
from .widgets import live_output, snapshot, subplots

DOT = r"$\hat x_0 \cdot e_i$"


class ItemMap:
    """PCA of the item embeddings e_1..e_I (PAD excluded) to 2-D; ``project`` maps any (N, d)."""

    def __init__(self, model):
        from sklearn.decomposition import PCA

        self.items = model.item_emb.weight[1:].detach().float().cpu().numpy()      # (I, d)
        self.pca = PCA(n_components=2, random_state=0).fit(self.items)
        self.xy = self.pca.transform(self.items)                                      # (I, 2)

    def project(self, x) -> np.ndarray:
        x = torch.as_tensor(x).detach().float().cpu().numpy()
        return self.pca.transform(x.reshape(-1, self.items.shape[1]))


def draw_forward_clouds(model, items=(0, 1, 2), steps=None, n: int = 200, seed: int = 0,
                        item_map: ItemMap | None = None, ax=None):
    """Samples of q(x_t | e_i) = N(sqrt(alpha_bar_t) e_i, (1 - alpha_bar_t) I) in the item map.

    steps are 1-based (paper) steps, default (1, T/4, T/2, T). The larger t, the wider and more
    central each cloud: the item becomes a distribution that overlaps its neighbours', which
    DiffuRec exploits.
    """
    T = model.T
    steps = sorted({1, max(1, T // 4), max(1, T // 2), T}) if steps is None else list(steps)
    if any(not 1 <= s <= T for s in steps):
        raise ValueError(f"steps are 1-based and must lie in [1, {T}] for this model, got {steps}")
    item_map = item_map or ItemMap(model)
    if ax is None:
        _, ax = subplots(figsize=(6, 5))
    ax.scatter(*item_map.xy.T, s=4, c="0.85", label="item embeddings")
    g = torch.Generator().manual_seed(seed)
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(steps)))
    e = model.item_emb.weight.detach().float().cpu()
    for j, item in enumerate(items):
        x0 = e[item + 1].expand(n, -1)
        for c, s in zip(colors, steps):
            t = torch.full((n,), s - 1)
            xt = model.diffusion.q_sample(x0, t, generator=g)            # buffers follow x0 (CPU)
            ax.scatter(*item_map.project(xt).T, s=3, color=c, alpha=0.35,
                       label=f"$x_t$, $t$ = {s}" if j == 0 else None)
        ax.scatter(*item_map.xy[item], marker="*", s=250, c="crimson", ec="k", zorder=5,
                   label=f"$e_i$ ({len(items)} items)" if j == 0 else None)
    ax.set(title=r"an item as a distribution: $q(x_t \mid e_i)$", xlabel="PC 1", ylabel="PC 2")
    legend = ax.legend(fontsize=LEGEND_FONTSIZE, loc="best")
    for handle in legend.legend_handles:
        handle.set_sizes([25])
        handle.set_alpha(1)
    return ax.figure


def draw_reverse(model, data, user: int = 0, step: int | None = None, top_k: int = 10, seed: int = 0,
                 item_map: ItemMap | None = None, path: dict | None = None, ax=None):
    """The predicted target x0_hat after ``step`` reverse steps (default all T) among the items.

    Grey: all item embeddings (2-D PCA). Purple dashed line: the chain's state x_t, from the
    noise x_T (a cross) to this step. Blue line: x0_hat over the steps so far; when every step
    predicts nearly the same x0_hat it hides under the big dot, and its legend entry says so.
    Orange: the top-K items by the dot product x0_hat . e_i at this step. Red star: the true next
    item, with its rank by that dot product. DiffuRec ranks by the dot product, not by distance:
    an item far from x0_hat in the picture can rank high (a long e_i), and the PCA hides d - 2
    directions.
    """
    item_map = item_map or ItemMap(model)
    path = path or reverse_path(model, data, user, seed=seed)
    T = len(path["x0_hat"])
    step = T if step is None else int(np.clip(step, 1, T))
    if ax is None:
        _, ax = subplots(figsize=(6.5, 5))
    ax.scatter(*item_map.xy.T, s=4, c="0.85")
    history = path["window"][path["window"] > 0].numpy() - 1
    ax.scatter(*item_map.xy[history].T, s=18, c="tab:green", label="history items", zorder=3)
    states = item_map.project(path["states"][:step + 1])                   # x_T, ..., the state now
    ax.plot(*states.T, "--o", ms=2.5, lw=1, c="tab:purple", alpha=0.7, zorder=4,
            label=r"$x_t$, the chain's state (from $x_T$ = noise)")
    ax.scatter(*states[0], marker="x", s=50, c="tab:purple", zorder=4)
    xy = item_map.project(path["x0_hat"][:step])
    still = np.abs(xy - xy[-1]).max() < 0.02 * np.ptp(item_map.xy)          # the path hides under one dot
    ax.plot(*xy.T, "-o", ms=3, c="tab:blue", alpha=0.7, zorder=5,
            label=r"$\hat x_0$, steps so far" + (" (all under the big dot)" if still else ""))
    ax.scatter(*xy[-1], s=120, c="tab:blue", ec="k", zorder=6, label=rf"$\hat x_0$ after {step}/{T} steps")
    top = torch.topk(path["scores"][step - 1], top_k).indices.numpy()
    ax.scatter(*item_map.xy[top].T, s=40, facecolors="none", ec="tab:orange", lw=1.5, zorder=4,
               label=f"top-{top_k} by {DOT}")
    title = f"user {user}: reverse step {step} of {T}"
    if path["target"] is not None:
        rank = int(path["target_rank"][step - 1])
        ax.scatter(*item_map.xy[path["target"]], marker="*", s=260, c="crimson", ec="k", zorder=7,
                   label=f"true next item (rank {rank} by {DOT})")
        title += f", true item at rank {rank}"
    ax.set(title=title + "\nranked by the dot product, not by distance in this map",
           xlabel="PC 1", ylabel="PC 2")
    ax.legend(fontsize=LEGEND_FONTSIZE, loc="best")
    return ax.figure


def reverse_explorer(model, data, users=range(10), top_k: int = 10, seed: int = 0):
    """Slider over the reverse step and a user picker; ``draw_reverse`` is its static twin.
    Redraws from an eval-mode copy of ``model`` made now (``widgets.snapshot``)."""
    import ipywidgets as widgets

    model = snapshot(model)
    item_map = ItemMap(model)
    cache: dict[int, dict] = {}
    step = widgets.IntSlider(value=model.T, min=1, max=model.T, description="step")
    user = widgets.Dropdown(options=list(users), value=list(users)[0], description="user")
    k = widgets.IntSlider(value=top_k, min=1, max=50, description="top-K")

    def draw(step, user, k):
        if user not in cache:
            cache[user] = reverse_path(model, data, user, seed=seed)
        return draw_reverse(model, data, user, step, k, seed, item_map, cache[user])

    out = live_output(draw, {"step": step, "user": user, "k": k})
    return widgets.VBox([widgets.HBox([step, user, k]), out])


def plot_rank_by_step(by_step: pd.DataFrame, metric: str = "hr@10", ax=None):
    """``metric`` of x0_hat after each reverse step (``analysis.rank_by_step``), the y-axis from
    0, with the 95 % binomial band of the last step's rate over the same number of users: a
    wiggle inside the band is a user or two, not a trend."""
    if ax is None:
        _, ax = subplots(figsize=(6.5, 3.2))
    n = int(by_step["users"].iloc[0])
    ax.plot(by_step["step"], by_step[metric], marker="o", ms=4, label=f"{metric}, {n} users")
    top = 1.3 * by_step[metric].max()
    if metric.startswith("hr@"):
        low, high = binomial_band(by_step[metric].iloc[-1], n)
        ax.axhspan(low, high, color="tab:blue", alpha=0.12, label="95 % binomial band (last step)")
        top = max(top, 1.15 * high)
    ax.set(xlabel="reverse steps taken", ylabel=metric.upper(), ylim=(0, max(0.05, top)),
           title=rf"{metric.upper()} of $\hat x_0$ after each reverse step")
    ax.legend(fontsize=LEGEND_FONTSIZE, loc="lower right")
    ax.figure.tight_layout()
    return ax.figure


def plot_diversity(df: pd.DataFrame, n_samples: int, k: int = 10, axes=None):
    """Left: distinct items over n_samples top-K lists per user (``analysis.sample_diversity``;
    its first model is the sampled one). Right: HR@K of one run vs any run, from 0, with 95 %
    binomial error bars over the users (rate +- 1.96 SE), named in the legend."""
    if axes is None:
        _, axes = subplots(1, 2, figsize=(10.5, 3.5))
    sampled = df.model.iloc[0]
    distinct = df[df.model == sampled]["distinct"]
    lo, hi = min(k, distinct.min()), max(k, distinct.max())
    axes[0].hist(distinct, bins=np.arange(lo, hi + 2) - 0.5, color="tab:blue", alpha=0.8, label=sampled)
    for name in df.model.unique():
        if name != sampled:
            axes[0].axvline(k, color="tab:orange", lw=2, label=f"{name}: always {k}")
    axes[0].set(xlabel=f"distinct items in {n_samples} top-{k} lists", ylabel="users",
                title="diversity across samples", xlim=(lo - 1, hi + 1))
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].legend(fontsize=LEGEND_FONTSIZE)
    means = df.groupby("model", sort=False)[["hit_one", "hit_any"]].mean()
    n_users = df.groupby("model", sort=False).size()
    x = np.arange(len(means))
    for j, (col, label, color) in enumerate((("hit_one", "one list", "tab:blue"),
                                             ("hit_any", f"any of {n_samples} lists", "tab:green"))):
        low, high = binomial_band(means[col].to_numpy(), n_users.to_numpy())
        axes[1].bar(x + (j - 0.5) * 0.38, means[col], 0.38, color=color, label=label,
                    yerr=[means[col] - low, high - means[col]], capsize=3)
    users = f"{n_users.iloc[0]} users" if n_users.nunique() == 1 else "users per model"
    axes[1].errorbar([np.nan], [np.nan], yerr=[np.nan], fmt="none", ecolor="black", capsize=3,
                     label=f"error bars: 95 % binomial\nband ($\\pm 1.96$ SE, {users})")         # names the error bars
    axes[1].set_xticks(x, means.index)
    axes[1].set(ylabel=f"HR@{k}", ylim=(0, None), title=f"one list vs any of {n_samples} lists")
    axes[1].legend(fontsize=LEGEND_FONTSIZE, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    axes[0].figure.tight_layout()
    return axes[0].figure
