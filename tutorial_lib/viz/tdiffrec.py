"""Notebook 05's pictures: one user's clicks over time against their drifting interests, and
T-DiffRec's weights with what they do to the recommendations (``time_weight_explorer``, with
its static twin ``draw_time_weights``). Core ipywidgets only; every function returns a Figure.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..analysis import recommend
from .common import LEGEND_FONTSIZE
from .ldiffrec import plot_seed_runs  # noqa: F401  (notebook 05 compares seeds as 04 does)
from .widgets import live_output, snapshot, subplots


def plot_interest_drift(data, truth, user: int, ax=None):
    """One synthetic user's training clicks over time, by which interest they belong to,
    over the true interest weights w_k(tau)."""
    seq, days = data.sequences[user], np.asarray(data.timestamps[user], dtype=float)
    interests = truth.user_clusters[user]
    which = np.full(len(seq), -1)
    for k, c in enumerate(interests):
        which[truth.item_clusters[seq] == c] = k
    if ax is None:
        _, ax = subplots(figsize=(8, 3.2))
    grid = np.linspace(0, 1, 100)
    w = truth.interest_weights(grid)
    t0, t1 = truth.time_window[user]
    for k in range(len(interests)):
        ax.plot(t0 + grid * (t1 - t0), w[:, k], color=f"C{k}", lw=2,
                label=rf"$w_{k + 1}(\tau)$: interest {k + 1} (cluster {interests[k]})")
        hits = which == k
        ax.scatter(days[hits], np.full(hits.sum(), 1.02 + 0.04 * k), color=f"C{k}", marker="|", s=120)
    noise = which == -1
    ax.scatter(days[noise], np.full(noise.sum(), 1.02 + 0.04 * len(interests)), color="tab:red",
               marker="x", s=30, label="click outside the interests (noise)")
    ax.set(xlabel="day", ylabel="interest weight", title=f"user {user}: clicks (ticks, top) and drifting interests",
           ylim=(0, 1.1 + 0.04 * len(interests)))
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=LEGEND_FONTSIZE)
    ax.figure.tight_layout()
    return ax.figure


def draw_time_weights(model, data, user: int, w_min: float = 0.1, w_max: float = 1.0,
                      truth=None, k: int = 20):
    """Static twin of ``time_weight_explorer``: the user's weights w_m (left) and, for that
    weighted input, which interest the model's top-k recommendations belong to (right).

    With ``truth`` the bars of both panels are coloured by interest, and a legend right of the
    panels names the colours (interest 1 is the early one, the last the late one)."""
    from matplotlib.patches import Patch

    from ..models.tdiffrec import time_weights

    fig, (ax_w, ax_r) = subplots(1, 2, figsize=(12.5, 3.4), gridspec_kw={"width_ratios": [3, 2]})
    try:
        weights = time_weights(data, w_min, w_max)
    except ValueError as err:          # e.g. w_min > w_max from the sliders: say why
        fig.text(0.5, 0.5, str(err), ha="center", va="center", wrap=True)
        return fig
    row = weights[user]
    order = np.argsort(np.asarray(data.timestamps[user], dtype=float), kind="stable") \
        if data.timestamps is not None else np.arange(len(data.sequences[user]))
    items = data.sequences[user][order]
    w = np.asarray(row[0, items].todense()).ravel()
    ax_w.bar(np.arange(1, len(w) + 1), w, color=[_color(n) for n in _interest_labels(truth, user, items)])
    ax_w.set(xlabel="click $m$ (oldest to newest)", ylabel="weight $w_m$", ylim=(0, 1.05),
             title=rf"user {user}: $w_\mathrm{{min}}$ = {w_min:.2f}, $w_\mathrm{{max}}$ = {w_max:.2f}")
    top = recommend(model, torch.as_tensor(row.toarray()[0], dtype=torch.float32), data.train[user].indices, k)
    counts = pd.Series(_interest_labels(truth, user, top)).value_counts()
    counts = counts.reindex(_label_order(truth), fill_value=0)
    ax_r.barh(counts.index[::-1], counts.values[::-1], color=[_color(n) for n in counts.index[::-1]])
    ax_r.set(xlabel=f"items among the top {k}", title="what the model recommends")
    if truth is None:
        fig.tight_layout()
        return fig
    fig.tight_layout(rect=(0, 0, 0.83, 1))                  # the legend's room, right of the panels
    fig.legend(handles=[Patch(color=_color(label), label=_legend_label(label, truth))
                        for label in _label_order(truth)],
               title="bar colour", loc="center left", bbox_to_anchor=(0.83, 0.5), frameon=False,
               fontsize=LEGEND_FONTSIZE)
    return fig


def _legend_label(label: str, truth) -> str:
    """'interest 1' -> 'interest 1 (early)', the last interest '(late)', 'other' spelled out."""
    if label == "other":
        return "outside the user's\ninterests"
    k, K = int(label.split()[-1]), truth.user_clusters.shape[1]
    return label + (" (early)" if k == 1 else " (late)" if k == K else "")


def _label_order(truth) -> list[str]:
    if truth is None:
        return ["items"]
    K = truth.user_clusters.shape[1]
    return [f"interest {k + 1}" for k in range(K)] + ["other"]


def _interest_labels(truth, user, items) -> list[str]:
    """'interest k' for each item in the user's k-th interest cluster, else 'other'."""
    if truth is None:
        return ["items"] * len(items)
    out = []
    for c in truth.item_clusters[items]:
        k = np.flatnonzero(truth.user_clusters[user] == c)
        out.append(f"interest {k[0] + 1}" if len(k) else "other")
    return out


def _color(label: str) -> str:
    """'interest k' -> colour C(k-1), as in plot_interest_drift; anything else grey."""
    return f"C{int(label.split()[-1]) - 1}" if label.startswith("interest ") else "grey"


def time_weight_explorer(model, data, user: int, truth=None, k: int = 20):
    """Sliders for w_min and w_max redraw ``draw_time_weights`` from an eval-mode copy of
    ``model`` made now (``widgets.snapshot``). Needs a live kernel."""
    import ipywidgets as widgets

    model = snapshot(model)
    controls = dict(w_min=widgets.FloatSlider(value=0.1, min=0.05, max=1.0, step=0.05, description="w_min"),
                    w_max=widgets.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="w_max"))
    out = live_output(lambda w_min, w_max: draw_time_weights(model, data, user, w_min, w_max, truth, k), controls)
    return widgets.VBox([widgets.HBox(list(controls.values())), out])
