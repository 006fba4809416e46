"""Notebook 06's pictures: items as distributions, the reverse process among items, diversity.

* ``ItemMap``              a 2-D PCA of the item embeddings, to draw vectors among items
* ``draw_forward_clouds``  q(x_t | e_i) for a few items at a few steps: an item is a cloud
* ``reverse_path``         one user's reverse chain: states x_t and predictions x0_hat per step
* ``draw_reverse``         static twin of ``reverse_explorer``: x0_hat at a step among the items,
                           the true next item and the top-K at that step
* ``reverse_explorer``     slider over the reverse step (core ipywidgets)
* ``rank_by_step``         HR@K of x0_hat after each reverse step, over many users
* ``sample_diversity``     several reverse runs per user: distinct items, hit of any run
* ``plot_diversity``       those numbers next to SASRec's single list
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA

from .metrics import user_ids
from .sequences import eval_inputs
from .utils import eval_mode, in_eval_mode
from .viz import live_output, subplots


def held_out_targets(data, users, split: str = "test") -> np.ndarray:
    """The one held-out item of each user (leave-one-out); (len(users),). A clear error for
    users with none or several (their ranks would be scored against another user's target)."""
    held = (data.test if split == "test" else data.valid).tocsr()
    users = user_ids(list(users), data.n_users)
    counts = np.diff(held.indptr)[users]
    if (counts != 1).any():
        bad = users[counts != 1]
        raise ValueError(f"{len(bad)} users have not exactly one {split} item (first: user {bad[0]} with "
                         f"{counts[counts != 1][0]}); pass users of a leave-one-out split")
    return held.indices[held.indptr[users]]


class ItemMap:
    """PCA of the item embeddings e_1..e_I (PAD excluded) to 2-D; ``project`` maps any (N, d)."""

    def __init__(self, model):
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
                       label=f"x_t, t = {s}" if j == 0 else None)
        ax.scatter(*item_map.xy[item], marker="*", s=250, c="crimson", ec="k", zorder=5,
                   label=f"e_i ({len(items)} items)" if j == 0 else None)
    ax.set(title="an item as a distribution: q(x_t | e_i)", xlabel="PC 1", ylabel="PC 2")
    legend = ax.legend(fontsize=7, loc="best")
    for handle in legend.legend_handles:
        handle.set_sizes([25])
        handle.set_alpha(1)
    return ax.figure


@torch.no_grad()
@in_eval_mode
def reverse_path(model, data, user: int, split: str = "test", seed: int = 0) -> dict:
    """One user's reverse chain from x_T ~ N(0, I), seeded.

    Returns states (T + 1, d) x_T..x_0, x0_hat (T, d) per step, scores (T, I) = x0_hat . e_i,
    the target item and the input window.
    """
    dev = model.item_emb.weight.device
    w = eval_inputs(data, split, [user], model.max_len).to(dev)
    g = torch.Generator(device=dev).manual_seed(seed)
    _, states, preds = model.reverse(w, g, return_trajectory=True)
    truth = (data.test if split == "test" else data.valid)[user].indices
    return {"states": states[:, 0].float().cpu(), "x0_hat": preds[:, 0].float().cpu(),
            "scores": model.logits(preds[:, 0]).float().cpu(), "target": int(truth[0]) if len(truth) else None,
            "window": w[0].cpu()}


def draw_reverse(model, data, user: int = 0, step: int | None = None, top_k: int = 10, seed: int = 0,
                 item_map: ItemMap | None = None, path: dict | None = None, ax=None):
    """The predicted target x0_hat after ``step`` reverse steps (default all T) among the items.

    Grey: all item embeddings (2-D PCA). Blue line: x0_hat over the steps so far. Orange: the
    top-K items of x0_hat . e_i at this step. Red star: the true next item (with its rank).
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
    xy = item_map.project(path["x0_hat"][:step])
    ax.plot(*xy.T, "-o", ms=3, c="tab:blue", alpha=0.7, label="x0_hat, steps so far")
    ax.scatter(*xy[-1], s=120, c="tab:blue", ec="k", zorder=6, label=f"x0_hat after {step}/{T} steps")
    scores = path["scores"][step - 1]
    top = torch.topk(scores, top_k).indices.numpy()
    ax.scatter(*item_map.xy[top].T, s=40, facecolors="none", ec="tab:orange", lw=1.5, zorder=4,
               label=f"top-{top_k} at this step")
    title = f"user {user}: reverse step {step} of {T}"
    if path["target"] is not None:
        rank = int((scores > scores[path["target"]]).sum()) + 1
        ax.scatter(*item_map.xy[path["target"]], marker="*", s=260, c="crimson", ec="k", zorder=7,
                   label=f"true next item (rank {rank})")
        title += f", true item at rank {rank}"
    ax.set(title=title, xlabel="PC 1", ylabel="PC 2")
    ax.legend(fontsize=7, loc="best")
    return ax.figure


def reverse_explorer(model, data, users=range(10), top_k: int = 10, seed: int = 0):
    """Slider over the reverse step and a user picker; ``draw_reverse`` is its static twin."""
    import ipywidgets as widgets

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


@torch.no_grad()
@in_eval_mode
def rank_by_step(model, data, users, ks=(10,), split: str = "test", seed: int = 0) -> pd.DataFrame:
    """HR@K (history not masked) of x0_hat after each of the T reverse steps, over ``users``."""
    dev = model.item_emb.weight.device
    users = torch.as_tensor(list(users))
    w = eval_inputs(data, split, users, model.max_len).to(dev)
    truth = torch.as_tensor(held_out_targets(data, users.numpy(), split))
    _, _, preds = model.reverse(w, torch.Generator(device=dev).manual_seed(seed), return_trajectory=True)
    rows = []
    for s, x0 in enumerate(preds, start=1):
        scores = model.logits(x0).float().cpu()
        rank = (scores > scores.gather(1, truth[:, None])).sum(1) + 1
        rows.append({"step": s, **{f"hr@{k}": float((rank <= k).float().mean()) for k in ks},
                     "mean_rank": float(rank.float().mean())})
    return pd.DataFrame(rows)


@torch.no_grad()
@in_eval_mode
def sample_diversity(model, data, users, n_samples: int = 8, k: int = 10, split: str = "test",
                     baseline=None, seed: int = 0) -> pd.DataFrame:
    """Run the reverse chain ``n_samples`` times per user (different noise) and compare top-K lists.

    Per user: ``distinct`` items in the union of the top-K lists, ``coverage`` = distinct /
    (n_samples * K), ``hit_one`` = HR@K of the first run, ``hit_any`` = the target in any run's
    top-K. A deterministic ``baseline`` (e.g. SASRec) gives one list: distinct = K.
    """
    users = list(users)
    truth = held_out_targets(data, users, split)
    tops = []
    for r in range(n_samples):
        gen = torch.Generator(device=model.item_emb.weight.device).manual_seed(seed * 7919 + r)
        scores = model.score(data, torch.as_tensor(users), split, generator=gen)
        tops.append(torch.topk(scores, k).indices.cpu().numpy())
    tops = np.stack(tops, axis=1)                                                   # (U, R, K)
    rows = {"distinct": [len(np.unique(t)) for t in tops],
            "hit_one": (tops[:, 0] == truth[:, None]).any(1).astype(float),
            "hit_any": (tops == truth[:, None, None]).any((1, 2)).astype(float)}
    df = pd.DataFrame({"model": "DiffuRec", "user": users, **rows})
    df["coverage"] = df["distinct"] / (n_samples * k)
    if baseline is not None:
        with eval_mode(baseline):
            top = torch.topk(baseline.score(data, torch.as_tensor(users), split), k).indices.cpu().numpy()
        hit = (top == truth[:, None]).any(1).astype(float)
        base = pd.DataFrame({"model": type(baseline).__name__, "user": users, "distinct": k,
                             "hit_one": hit, "hit_any": hit, "coverage": 1.0 / n_samples})
        df = pd.concat([df, base], ignore_index=True)
    return df


def plot_diversity(df: pd.DataFrame, n_samples: int, k: int = 10, axes=None):
    """Left: distinct items over n_samples top-K lists per user. Right: HR@K of one run vs any run."""
    if axes is None:
        _, axes = subplots(1, 2, figsize=(10, 3.5))
    diff = df[df.model == "DiffuRec"]["distinct"]
    axes[0].hist(diff, bins=np.arange(k, n_samples * k + 2) - 0.5, color="tab:blue", alpha=0.8, label="DiffuRec")
    for name in df.model.unique():
        if name != "DiffuRec":
            axes[0].axvline(k, color="tab:orange", lw=2, label=f"{name}: always {k}")
    axes[0].set(xlabel=f"distinct items in {n_samples} top-{k} lists", ylabel="users", title="diversity across samples")
    axes[0].legend(fontsize=8)
    means = df.groupby("model")[["hit_one", "hit_any"]].mean()
    means.plot.bar(ax=axes[1], rot=0, color=["tab:blue", "tab:green"])
    axes[1].set(ylabel=f"HR@{k}", title=f"one list vs any of {n_samples} lists")
    axes[0].figure.tight_layout()
    return axes[0].figure
