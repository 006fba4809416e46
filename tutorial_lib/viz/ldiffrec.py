"""Pictures for notebooks 04 (L-DiffRec) and 05 (T-DiffRec).

04: item embeddings projected to 2-D and coloured by KMeans cluster; a user's latent code
before and after the reverse chain; parameters and memory against the number of items.
05: one user's clicks over time against their drifting interests; T-DiffRec's weights and
what they do to the recommendations (``time_weight_explorer``, with its static twin
``draw_time_weights``). Core ipywidgets only; every function returns a Figure.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from .utils import in_eval_mode
from .viz import _np, live_output, subplots


# =========================================================================== 04 L-DiffRec
def plot_item_clusters(item_embeddings, clusters, true_clusters=None, ax=None):
    """Item embeddings (I, e) projected on their first two principal components, coloured
    by cluster (I,); with ``true_clusters`` (synthetic data) a second panel colours by those."""
    from sklearn.decomposition import PCA

    xy = PCA(n_components=2, random_state=0).fit_transform(_np(item_embeddings))   # tensors too (GPU, grad)
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
    fig = axes[0].figure
    fig.tight_layout()
    return fig


def parameter_table(models: dict) -> pd.DataFrame:
    """Parameters of each model's parts: {name: model} -> rows (model, part, parameters)."""
    rows = []
    for name, model in models.items():
        for part, module in model.named_children():
            n = sum(p.numel() for p in module.parameters())
            if n:
                rows.append({"model": name, "part": part, "parameters": n})
    return pd.DataFrame(rows)


def plot_latent_code(z0, z_hat, latent_dims, ax=None):
    """A user's latent code z_0 = mu(x) and the denoised code after the reverse chain (d,),
    with the per-cluster blocks of size latent_dims shaded."""
    z0, z_hat = (np.asarray(torch.as_tensor(z).detach().cpu()).ravel() for z in (z0, z_hat))
    if ax is None:
        _, ax = subplots(figsize=(8, 3))
    start = 0
    for c, d in enumerate(latent_dims):
        ax.axvspan(start - 0.5, start + d - 0.5, color=f"C{c}", alpha=0.08)
        ax.text(start + d / 2, 1.02, f"cluster {c} ({d} dims)", transform=ax.get_xaxis_transform(),
                ha="center", fontsize=9)
        start += d
    ax.plot(z0, lw=1, color="black", label="z_0 = mu(x) (encoder)")
    ax.plot(z_hat, lw=1, color="tab:red", alpha=0.8, label="denoised z_0 (reverse chain)")
    ax.set(xlabel="latent unit", ylabel="value", xlim=(-0.5, len(z0) - 0.5))
    ax.legend(loc="lower right", fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


def plot_scaling(rows, axes=None):
    """Parameters and peak memory against the number of items (log-log), one line per model.

    rows: records with keys model, n_items, parameters, peak_mb (benchmarks/ldiffrec_scaling.py).
    """
    df = pd.DataFrame(rows)
    if axes is None:
        _, axes = subplots(1, 2, figsize=(10, 3.5))
    for ax, col, label in zip(axes, ("parameters", "peak_mb"), ("parameters", "memory of one training step (MB)")):
        sns.lineplot(df, x="n_items", y=col, hue="model", marker="o", ax=ax)
        ax.set(xscale="log", yscale="log", xlabel="number of items I", ylabel=label, title=label)
        ax.set_xticks(sorted(df["n_items"].unique()), [f"{n:,}" for n in sorted(df["n_items"].unique())])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    fig = axes[0].figure
    fig.tight_layout()
    return fig


# =========================================================================== 05 T-DiffRec
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
                label=f"w_{k + 1}(tau): interest {k + 1} (cluster {interests[k]})")
        hits = which == k
        ax.scatter(days[hits], np.full(hits.sum(), 1.02 + 0.04 * k), color=f"C{k}", marker="|", s=120)
    noise = which == -1
    ax.scatter(days[noise], np.full(noise.sum(), 1.02 + 0.04 * len(interests)), color="tab:red",
               marker="x", s=30, label="click outside the interests (noise)")
    ax.set(xlabel="day", ylabel="interest weight", title=f"user {user}: clicks (ticks, top) and drifting interests",
           ylim=(0, 1.1 + 0.04 * len(interests)))
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    ax.figure.tight_layout()
    return ax.figure


@in_eval_mode
def recommend(model, row: torch.Tensor, seen: np.ndarray, k: int = 10) -> np.ndarray:
    """Top-k items for one input row (I,) through ``model.predict``, seen items masked."""
    with torch.no_grad():
        scores = model.predict(row.reshape(1, -1).to(next(model.parameters()).device))[0].cpu()
    scores[torch.as_tensor(seen, dtype=torch.long)] = -torch.inf
    return torch.topk(scores, min(k, len(scores) - len(np.unique(seen)))).indices.numpy()   # unseen only


def draw_time_weights(model, data, user: int, w_min: float = 0.1, w_max: float = 1.0,
                      truth=None, k: int = 20):
    """Static twin of ``time_weight_explorer``: the user's weights w_m (left) and, for that
    weighted input, which interest the model's top-k recommendations belong to (right)."""
    from .models.tdiffrec import time_weights

    fig, (ax_w, ax_r) = subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [3, 2]})
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
    colors = _interest_colors(truth, user, items)
    ax_w.bar(np.arange(1, len(w) + 1), w, color=colors)
    ax_w.set(xlabel="click m (oldest to newest)", ylabel="weight w_m", ylim=(0, 1.05),
             title=f"user {user}: w_min={w_min:.2f}, w_max={w_max:.2f}")
    top = recommend(model, torch.as_tensor(row.toarray()[0], dtype=torch.float32), data.train[user].indices, k)
    labels = _interest_labels(truth, user, top)
    counts = pd.Series(labels).value_counts().reindex(_label_order(truth, user), fill_value=0)
    colors = [_color(name) for name in counts.index]
    ax_r.barh(counts.index[::-1], counts.values[::-1], color=colors[::-1])
    ax_r.set(xlabel=f"items among the top {k}", title="what the model recommends")
    fig.tight_layout()
    return fig


def _label_order(truth, user):
    if truth is None:
        return ["items"]
    K = truth.user_clusters.shape[1]
    return [f"interest {k + 1}" for k in range(K)] + ["other"]


def _interest_labels(truth, user, items) -> list[str]:
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


def _interest_colors(truth, user, items) -> list[str]:
    return [_color(n) for n in _interest_labels(truth, user, items)]


def time_weight_explorer(model, data, user: int, truth=None, k: int = 20):
    """Sliders for w_min and w_max redraw ``draw_time_weights``. Needs a live kernel."""
    import ipywidgets as widgets

    controls = dict(w_min=widgets.FloatSlider(value=0.1, min=0.05, max=1.0, step=0.05, description="w_min"),
                    w_max=widgets.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="w_max"))
    out = live_output(lambda w_min, w_max: draw_time_weights(model, data, user, w_min, w_max, truth, k), controls)
    return widgets.VBox([widgets.HBox(list(controls.values())), out])


def training_cost(model, x: torch.Tensor) -> dict:
    """What one training step of ``model`` on batch x (B, I) holds in memory, in MB.

    ``weights_mb``: parameters + their gradients (4 + 4 bytes each, float32);
    ``activations_mb``: the tensors autograd saves for the backward pass (counted once per
    storage with ``torch.autograd.graph.saved_tensors_hooks``; the weights it saves too are
    already in ``weights_mb``). Adam's two moments would add another 8 bytes per parameter.
    """
    seen: dict[int, int] = {}
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(t):
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            storage = t.untyped_storage()
            if storage.data_ptr() not in weights:
                seen[storage.data_ptr()] = storage.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model.loss(x)
    loss.backward()
    model.zero_grad(set_to_none=True)
    params = sum(p.numel() for p in model.parameters())
    return {"parameters": params, "weights_mb": 8 * params / 2 ** 20,
            "activations_mb": sum(seen.values()) / 2 ** 20}
