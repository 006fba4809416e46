"""Notebook 03's pictures: DiffRec's denoising trajectory, as small multiples and as a widget.

The trajectories come from ``tutorial_lib.analysis`` (``denoising_trajectory``); the figures show

* x_t on the user's training clicks (the injected false-positive clicks marked) and on the
  top-K unseen items at that step (training items masked, as in evaluation; the held-out hits
  among them in green), the items ordered by the user's true preference (synthetic data) or by
  the final score; no other item is drawn;
* the top-K list at that step and which of them are held-out hits;
* where the false-positive clicks rank among the user's training clicks as denoising
  proceeds (100 % = ranked below every genuine click), ``plot_noise_rank`` for many users with
  other models as reference lines, and ``plot_ablation`` for a grid of training settings.

``draw_trajectory_step`` is the static twin of ``trajectory_explorer`` (core ipywidgets only).
"""
from __future__ import annotations

import numpy as np

from ..analysis import Trajectory, denoising_trajectory, noise_rank, top_k
from .common import LEGEND_FONTSIZE
from .widgets import install_thread_guards, one_at_a_time, png, snapshot, subplots

NOISE_RANK_LABEL = "noise clicks' percentile among\nthe user's clicks (up = better)"
REFERENCE_COLORS = {"EASE": "tab:green", "Mult-VAE": "tab:purple"}      # the same in every figure
OTHER_COLORS = ("tab:orange", "tab:olive", "tab:cyan", "tab:brown")


def _reference_lines(ax, references: dict | None) -> None:
    """Dashed horizontal lines {name: value}; EASE and Mult-VAE keep one colour across figures."""
    others = iter(OTHER_COLORS * 4)
    for name, value in (references or {}).items():
        ax.axhline(value, color=REFERENCE_COLORS.get(name) or next(others), ls="--", lw=1.4, label=name)


def _step_label(traj: Trajectory, k_index: int) -> str:
    t = traj.T - k_index
    return f"$x_{{{t}}}$" + (" (input)" if k_index == 0 else " (output)" if k_index == traj.T else "")


def _draw_state(traj: Trajectory, k_index: int, ax, k: int = 10, legend: bool = True) -> None:
    """The user's clicks and the top-k unseen items at state ``k_index``, nothing else. Where every
    unseen item still ties (the input row), there is no top-k yet and none is drawn."""
    x = traj.states[k_index]
    pos = np.empty_like(traj.order)
    pos[traj.order] = np.arange(len(traj.order))
    genuine = np.setdiff1d(traj.train, traj.noise)
    ax.scatter(pos[genuine], x[genuine], s=36, color="tab:blue", ec="white", lw=0.6, label="training click",
               zorder=3)
    if len(traj.noise):
        ax.scatter(pos[traj.noise], x[traj.noise], s=90, marker="X", color="tab:red", ec="white", lw=0.6,
                   label="injected noise click", zorder=4)
    unseen = np.setdiff1d(np.arange(len(x)), traj.train)
    if len(unseen) and np.ptp(x[unseen]) > 0:
        rows = top_k(traj, k_index, k)
        for hit, color, name in ((False, "0.15", f"top-{k} unseen item"),
                                 (True, "tab:green", f"top-{k} unseen, held-out ({traj.split}) hit")):
            items = np.asarray([i for i, _, h in rows if h == hit], dtype=np.int64)
            if len(items):
                ax.scatter(pos[items], x[items], s=70, marker="D", color=color, ec="white", lw=0.8,
                           label=name, zorder=5)
    else:
        ax.text(0.98, 0.5, "unseen items all tie:\nno top-k yet", transform=ax.transAxes, ha="right",
                va="center", fontsize=8, color="0.3")
    ax.set(title=_step_label(traj, k_index), xlabel=f"item's rank by {traj.ordered_by}")
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=LEGEND_FONTSIZE, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2,
                  frameon=False)                                         # below: never over a click


def draw_trajectory_step(traj: Trajectory, k_index: int = 0, k: int = 10):
    """The explorer's figure at state ``k_index``: x_t, top-k, noise rank. The default 0 is the
    input, where the explorer's slider starts; ``traj.T`` is the output (the scores)."""
    if not 0 <= k_index <= traj.T:
        raise ValueError(f"k_index must be in [0, {traj.T}], got {k_index}")
    fig, axes = subplots(1, 3, figsize=(13, 3.6), gridspec_kw={"width_ratios": [3, 1.3, 1.6]})
    _draw_state(traj, k_index, axes[0], k)
    axes[0].set_ylabel("value of $x_t$")
    rows = top_k(traj, k_index, k)
    axes[1].axis("off")
    text = "\n".join(f"{r + 1:2d}. item {i:5d}  {s:+.3f}{'  HIT' if hit else ''}"
                     for r, (i, s, hit) in enumerate(rows))
    axes[1].text(0, 1, f"top-{k} unseen at {_step_label(traj, k_index)}\n\n{text}", va="top",
                 family="monospace", fontsize=8)
    ranks = noise_rank(traj)
    if np.isnan(ranks).all():
        axes[2].text(0.5, 0.5, "no injected noise clicks\nfor this user", ha="center", va="center")
        axes[2].axis("off")
    else:
        axes[2].plot(np.arange(traj.T, -1, -1), ranks, marker="o", ms=4, color="tab:red")
        axes[2].axvline(traj.T - k_index, color="black", ls=":")
        axes[2].axhline(50, color="grey", ls="--", lw=1)
        axes[2].invert_xaxis()
        axes[2].set(xlabel="step $t$ (reverse: left to right)", ylabel=NOISE_RANK_LABEL,
                    title="this user's noise clicks", ylim=(0, 100))
    fig.tight_layout()
    return fig


def draw_trajectory_grid(traj: Trajectory, n: int = 4, k: int = 10):
    """Small multiples: ``n`` states from input to output, evenly spaced (static overview)."""
    idx = np.unique(np.linspace(0, traj.T, n).round().astype(int))
    fig, axes = subplots(1, len(idx), figsize=(3.4 * len(idx), 3.2), sharey=True)
    for j, (ax, k_index) in enumerate(zip(np.atleast_1d(axes), idx)):
        _draw_state(traj, int(k_index), ax, k, legend=False)
    np.atleast_1d(axes)[0].set_ylabel("value of $x_t$")
    legend = {}                                      # every kind of marker once, from any panel
    for ax in np.atleast_1d(axes):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    handles, labels = list(legend.values()), list(legend)
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=LEGEND_FONTSIZE,
               frameon=False, bbox_to_anchor=(0.5, -0.08))
    fig.suptitle(f"user {traj.user}: the reverse chain from the training row to the scores", y=1.02)
    fig.tight_layout()
    return fig


def plot_noise_rank(curve, references: dict | None = None, ax=None):
    """The mean noise-click percentile per reverse step (``analysis.mean_noise_rank``, (T+1,)),
    chance at 50 %, and optional reference models {name: percentile} (e.g. EASE, Mult-VAE
    scored on the same users) as horizontal lines. Up is better: noise clicks ranked lower."""
    curve = np.asarray(curve, dtype=float)
    T = len(curve) - 1
    if ax is None:
        _, ax = subplots(figsize=(8.5, 3.2))
    ax.plot(np.arange(T, -1, -1), curve, marker="o", ms=4, color="tab:red", label="DiffRec, by reverse step")
    ax.axhline(50, color="grey", ls=":", label="chance (all clicks tie at the input)")
    _reference_lines(ax, references)
    ax.invert_xaxis()
    ax.set(xlabel="reverse step $t$ (left to right)", ylabel=NOISE_RANK_LABEL, ylim=(0, 100),
           title="where injected noise clicks rank")
    ax.legend(fontsize=LEGEND_FONTSIZE, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.figure.tight_layout()
    return ax.figure


def plot_ablation(rows, references: dict | None = None, scale_labels: dict | None = None):
    """Two panels over a grid of training settings: the noise clicks' percentile (left) and test
    Recall@20 (right), one bar per setting, its value written on it. rows: dicts with keys
    ``"input dropout"``, ``"noise scale"``, ``"noise rank"`` and ``"recall@20"``; references:
    {name: percentile} drawn as lines on the left panel; scale_labels: {noise scale: tick label}
    (default the number). Up is better on both panels."""
    import pandas as pd
    import seaborn as sns

    df = pd.DataFrame(list(rows))
    missing = {"input dropout", "noise scale", "noise rank", "recall@20"} - set(df.columns)
    if missing:
        raise ValueError(f"rows lack {sorted(missing)}; they have {sorted(df.columns)}")
    df["noise scale $s$"] = df["noise scale"].map(lambda v: (scale_labels or {}).get(v, f"{v:g}"))
    df["input dropout"] = df["input dropout"].map(lambda v: f"input dropout {v:g}")
    fig, axes = subplots(1, 2, figsize=(10, 3.4))
    for ax, column, label, fmt in ((axes[0], "noise rank", NOISE_RANK_LABEL, "%.1f"),
                                   (axes[1], "recall@20", "test Recall@20 (up = better)", "%.3f")):
        sns.barplot(df, x="noise scale $s$", y=column, hue="input dropout", ax=ax, palette="Blues_r")
        for bars in ax.containers:
            ax.bar_label(bars, fmt=fmt, fontsize=8, padding=2)
        ax.set(ylabel=label, ylim=(0, 100) if column == "noise rank" else (0, 1.15 * df[column].max()))
        ax.get_legend().remove()
    _reference_lines(axes[0], references)
    axes[0].axhline(50, color="grey", ls=":", label="chance")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=LEGEND_FONTSIZE,
               frameon=False)
    fig.tight_layout()
    return fig


def trajectory_explorer(model, data, truth=None, users=None, k: int = 10):
    """A user dropdown and a step slider; redraws ``draw_trajectory_step``. Needs a kernel.

    Redraws from an eval-mode copy of ``model`` made now (``widgets.snapshot``). The figure is
    shown as an ``ipywidgets.Image`` (PNG bytes), which every front end and headless runner
    renders the same way.
    """
    import ipywidgets as widgets

    install_thread_guards()
    model = snapshot(model)
    users = list(range(min(data.n_users, 20))) if users is None else [int(u) for u in users]
    cache: dict[int, Trajectory] = {}

    def traj_of(user: int) -> Trajectory:
        if user not in cache:
            cache[user] = denoising_trajectory(model, data, user, truth)
        return cache[user]

    user_box = widgets.Dropdown(options=users, value=users[0], description="user")
    T = traj_of(users[0]).T
    step = widgets.IntSlider(value=0, min=0, max=T, description="reverse step", continuous_update=False,
                             style={"description_width": "initial"})     # the whole label, not "reverse st..."
    label = widgets.Label()
    image = widgets.Image(format="png")

    @one_at_a_time
    def redraw(*_):
        traj = traj_of(user_box.value)
        label.value = f"showing x_{traj.T - step.value}" + \
            (" (input)" if step.value == 0 else " (output)" if step.value == traj.T else "")
        image.value = png(draw_trajectory_step(traj, step.value, k))

    user_box.observe(redraw, names="value")
    step.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([user_box, step, label]), image])
