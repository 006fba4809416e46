"""Notebook 07's pictures: Du et al.'s extra transitions, the MSE/KL check, step-efficient inference.

* ``draw_transitions``      the chain i -> h_0 -> ... -> h_T and back, with the history as condition
* ``plot_kl_vs_mse``        per step: the KL terms, the weighted MSE, and the weight the
                            simplified objective drops
* ``plot_inference_sweep``  accuracy vs s (one step) and vs K (from s = T), from
                            ``analysis.inference_sweep``, hit rates with their binomial band
* ``draw_inference``        static twin of ``inference_explorer``: one user's p(i | h0_hat) from
                            (s, K), its target marked, next to the sweep with (s, K) marked
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from ..analysis import binomial_band, user_probabilities
from .common import LEGEND_FONTSIZE, to_numpy
from .widgets import live_output, snapshot, subplots


# =========================================================================== the chain
def _box(ax, x, y, text, color, w=0.95, h=0.5):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05",
                                fc=color, ec="0.3", lw=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=11)


def _arrow(ax, a, b, label, color, rad=-0.35, label_at=None):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=12, color=color,
                                 connectionstyle=f"arc3,rad={rad}"))
    above = (b[0] - a[0]) * rad < 0                 # left-to-right with rad < 0 bends upwards
    mid = label_at or ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + (0.55 if above else -0.55))
    ax.text(*mid, label, ha="center", va="center", fontsize=8, color=color)


def draw_transitions(ax=None):
    """Du et al.'s diffusion: discrete item -> hidden vectors -> item probabilities (a diagram)."""
    if ax is None:
        _, ax = subplots(figsize=(11, 4))
    xs = {"i": 0, "h0": 2, "h1": 4, "ht": 6.2, "hT": 8.4, "out": 10.4}
    _box(ax, xs["i"], 0, "item $i_{n+1}$", "#f6d5a8")
    for k, lab in (("h0", "$h_0$"), ("h1", "$h_1$"), ("ht", "$h_t$"), ("hT", "$h_T$")):
        _box(ax, xs[k], 0, lab, "#cfe3f5", w=0.8)
    _box(ax, xs["out"], 0, "$p(i \\mid h_0)$", "#f6d5a8", w=1.2)
    ax.text(5.1, 0, "...", ha="center", va="center", fontsize=14)
    ax.text(7.3, 0, "...", ha="center", va="center", fontsize=14)
    fwd, rev = "#b5523b", "#2f6f9f"
    _arrow(ax, (0.5, 0.3), (1.6, 0.3), "$q(h_0|i)=\\mathcal{N}(\\mathrm{EMB}(i),\\beta_1 I)$", fwd)
    _arrow(ax, (2.4, 0.3), (3.6, 0.3), "$q(h_1|h_0)$", fwd)
    _arrow(ax, (6.6, 0.3), (8.0, 0.3), "$q(h_t|h_{t-1})$", fwd)
    _arrow(ax, (8.0, -0.3), (6.6, -0.3), "$p_\\theta(h_{t-1}|h_t, s)$", rev)
    _arrow(ax, (3.6, -0.3), (2.4, -0.3), "$p_\\theta(h_0|h_1, s)$", rev)
    _arrow(ax, (2.0, -0.3), (10.4, -0.3), "rounding: softmax$(W h_0 + b)$", rev, rad=0.2,
           label_at=(9.6, -1.45))
    _box(ax, 6.2, -2.6, "history $s=(i_1,\\dots,i_n)$, clean", "#e3efd9", w=3.2)
    ax.annotate("", xy=(6.2, -0.3), xytext=(6.2, -2.3), arrowprops=dict(arrowstyle="-|>", color="0.4", ls="--"))
    ax.text(6.35, -1.8, "condition of the\nTransformer $f_\\theta$", fontsize=8, color="0.35", va="center")
    ax.text(5, 1.45, "forward (fixed): only the target item is noised", color=fwd, ha="center", fontsize=9)
    ax.text(5, -3.3, "reverse (learned): $\\hat h_0 = f_\\theta(h_t, t, s)$", color=rev, ha="center", fontsize=9)
    ax.set(xlim=(-0.8, 11.3), ylim=(-3.5, 1.7))
    ax.axis("off")
    return ax.figure


# =========================================================================== MSE vs KL
def plot_kl_vs_mse(steps, kl, weighted_mse, weight, axes=None):
    """Per paper step: KL and weighted MSE (should coincide) and the dropped weight (log)."""
    steps, kl, weighted_mse, weight = (to_numpy(x).astype(float) for x in (steps, kl, weighted_mse, weight))
    if axes is None:
        _, axes = subplots(1, 2, figsize=(10, 3.2))
    axes[0].plot(steps, kl, lw=3, alpha=0.5, label=r"KL$(q(h_{t-1} \mid h_t, h_0)\,\|\,p_\theta)$")
    axes[0].plot(steps, weighted_mse, "k--", lw=1,
                 label=r"$\frac{1}{2}(\mathrm{SNR}(t-1) - \mathrm{SNR}(t))\,\|\hat h_0 - h_0\|^2$")
    axes[0].set(xlabel="step $t$", ylabel="per example", yscale="log", title="the KL is a weighted MSE")
    axes[0].legend(fontsize=LEGEND_FONTSIZE, frameon=False)
    axes[1].plot(steps, weight)
    axes[1].set(xlabel="step $t$", ylabel="weight", yscale="log", title="the weight the simplified loss drops")
    axes[0].figure.tight_layout()
    return axes[0].figure


# =========================================================================== inference
def _metric_label(sweep: pd.DataFrame, metric: str) -> str:
    """'validation HR@10 (higher is better)': the sweep's split, when it names one, and the metric."""
    split = {"valid": "validation ", "test": "test "}.get(sweep.attrs.get("split"), "")
    return f"{split}{metric.upper()} (higher is better)"


def plot_inference_sweep(sweep: pd.DataFrame, metric: str = "hr@10", mark=None, axes=None,
                         n_users: int | None = None):
    """Left: metric vs start step s (one reverse step). Right: metric vs steps K from s = T.

    The axis labels name the split when the sweep does (``sweep.attrs["split"]``, as
    ``analysis.inference_sweep`` sets it). A hit rate gets its 95 % binomial band (rate +- 1.96
    SE) over the ``n_users`` evaluated users (default: the sweep's ``users`` column), shaded
    around each curve: two settings whose bands overlap may differ by chance. The legend sits
    below the panels; ``mark`` = (s, K) draws a dotted line at that setting."""
    if axes is None:
        _, axes = subplots(1, 2, figsize=(10, 3.9))
    fig = axes[0].figure
    T = sweep["start_step"].max()
    one = sweep[sweep["steps"] == 1].sort_values("start_step")
    many = sweep[sweep["start_step"] == T].sort_values("steps")
    label = _metric_label(sweep, metric)
    if n_users is None and "users" in sweep:
        n_users = int(sweep["users"].iloc[0])
    band = metric.startswith("hr@") and n_users is not None
    top = 1.15 * sweep[metric].max()
    handles = []
    for ax, rows, x in ((axes[0], one, "start_step"), (axes[1], many, "steps")):
        (line,) = ax.plot(rows[x], rows[metric], "o-", color="C0")
        if band:
            low, high = binomial_band(rows[metric].to_numpy(), n_users)
            patch = ax.fill_between(rows[x], low, high, color="C0", alpha=0.15, lw=0)
            top = max(top, 1.05 * high.max())
    handles += [line] + ([patch] if band else [])
    line.set_label(label.replace(" (higher is better)", ""))
    if band:
        patch.set_label(f"95 % binomial band ($\\pm 1.96$ SE, {n_users} users)")
    axes[0].set(xlabel=r"start step $s$ ($h_s \sim \mathcal{N}(0, I)$, one step to $\hat h_0$)", ylabel=label,
                title=r"predicting $h_0$ directly from step $s$", ylim=(0, top))
    axes[1].set(xscale="log", xlabel=f"reverse steps $K$ from $s$ = {T}", ylabel=label, title="more steps",
                ylim=(0, top))
    twin = axes[1].twinx()
    handles += twin.plot(many["steps"], many["seconds"], "s:", color="0.5", label="seconds to score all users")
    twin.set_ylabel("seconds to score all users", color="0.5")
    twin.set_ylim(0, None)
    twin.grid(False)                                   # one grid: the left axis's
    if mark is not None:
        s, n = mark
        if n == 1:
            axes[0].axvline(s, color="C3", ls=":")
        if s == T:
            axes[1].axvline(n, color="C3", ls=":")
        handles.append(Line2D([], [], color="C3", ls=":", label=f"chosen: s = {s}, K = {n}"))
    fig.tight_layout(rect=(0, 0.1, 1, 1))              # the legend's room, below the panels
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0), ncol=len(handles),
               frameon=False, fontsize=LEGEND_FONTSIZE)
    return fig


def draw_inference(model, data, user: int, start_step: int | None = None, inference_steps: int | None = None,
                   sweep: pd.DataFrame | None = None, split: str = "test", k: int = 10):
    """Static twin of :func:`inference_explorer`: one user's top-k p(i | h0_hat) from (s, K).

    Defaults are the model's own (``model.start_step``, ``model.inference_steps``), as the explorer's.
    """
    s = model.start_step if start_step is None else start_step
    inference_steps = model.inference_steps if inference_steps is None else inference_steps
    p = user_probabilities(model, data, user, s, inference_steps, split)
    truth = data.test if split == "test" else data.valid
    target = set(truth.indices[truth.indptr[user]:truth.indptr[user + 1]].tolist())
    if sweep is not None and f"hr@{k}" not in sweep:
        raise ValueError(f"the sweep has no hr@{k} column (it has {[c for c in sweep if c.startswith('hr@')]}): "
                         "pass the k it was computed with")
    top = np.argsort(-p, kind="stable")[:min(k, len(p))]
    n_panels = 2 if sweep is not None else 1
    fig, axes = subplots(1, n_panels, figsize=(5.2 * n_panels, 3.2), squeeze=False)
    ax = axes[0, 0]
    colors = ["C3" if i in target else "C0" for i in top]
    ax.bar(range(len(top)), p[top], color=colors)
    ax.set_xticks(range(len(top)), [str(i) for i in top], rotation=60, fontsize=7)
    rank = int((p > max(p[list(target)])).sum()) + 1 if target else None
    ax.set(xlabel="item (red = the held-out target)", ylabel=r"$p(i \mid \hat h_0)$",
           title=f"user {user}: s = {s}, K = {inference_steps}" + (f"; target rank {rank}" if rank else ""))
    if sweep is not None:
        one = sweep[sweep["steps"] == 1].sort_values("start_step")
        axes[0, 1].plot(one["start_step"], one[f"hr@{k}"], "o-")
        axes[0, 1].axvline(s, color="C3", ls=":")
        axes[0, 1].set(xlabel="start step $s$", ylabel=_metric_label(sweep, f"hr@{k}"), ylim=(0, None),
                       title="all users, one reverse step")
    fig.tight_layout()
    return fig


def inference_explorer(model, data, users=None, sweep: pd.DataFrame | None = None, split: str = "test"):
    """Sliders for the start step s and the number of reverse steps K, a user picker (ipywidgets).
    Redraws from an eval-mode copy of ``model`` made now (``widgets.snapshot``)."""
    import ipywidgets as widgets

    model = snapshot(model)
    users = list(range(min(data.n_users, 20))) if users is None else [int(u) for u in users]
    s = widgets.IntSlider(value=model.start_step, min=1, max=model.T, description="start step s")
    n = widgets.IntSlider(value=model.inference_steps, min=1, description="steps K",
                          max=min(max(25, model.inference_steps), model.T))   # opens at the model's K, as the twin
    u = widgets.Dropdown(options=users, value=users[0], description="user")

    def draw(start_step, inference_steps, user):
        return draw_inference(model, data, user, start_step, min(inference_steps, start_step), sweep, split)

    out = live_output(draw, {"start_step": s, "inference_steps": n, "user": u})
    return widgets.VBox([widgets.HBox([s, n, u]), out])
