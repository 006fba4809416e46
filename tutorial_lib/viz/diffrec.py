"""Notebook 03's pictures: DiffRec's denoising trajectory, as small multiples and as a widget.

DiffRec's inference (Algorithm 2) starts from the user's training row x_T = x_0 and runs the
T reverse steps, each taking the mean of p_theta(x_{t-1} | x_t). ``denoising_trajectory``
records every state; the figures show

* x_t over the items, sorted by the user's true preference (synthetic data) or by the final
  score, with the training clicks, the injected false-positive clicks and the held-out items
  marked;
* the top-K recommendations at that step (training items masked, as in evaluation) and
  which of them are held-out hits;
* where the false-positive clicks rank among the user's training clicks as denoising
  proceeds (100 % = ranked below every genuine click).

``draw_trajectory_step`` is the static twin of ``trajectory_explorer`` (core ipywidgets only).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .utils import eval_mode
from .viz import flush_cells_between_redraws, one_at_a_time, png, subplots


@dataclass
class Trajectory:
    """One user's reverse chain. states (T+1, I): states[k] is x at paper step T - k."""

    user: int
    states: np.ndarray
    order: np.ndarray          # item order for the x axis (true preference, else final score)
    train: np.ndarray          # item ids of the training row
    noise: np.ndarray          # item ids of injected false-positive clicks (subset of train)
    held_out: np.ndarray       # item ids of the user's held-out items in ``split``
    ordered_by: str
    split: str = "test"

    @property
    def T(self) -> int:
        return len(self.states) - 1


def _row_items(matrix, user: int) -> np.ndarray:
    return np.asarray(matrix[user].indices if hasattr(matrix, "indices") else np.nonzero(matrix[user])[0])


@torch.no_grad()
def denoising_trajectories(model, data, users, truth=None, split: str = "test") -> list[Trajectory]:
    """Run ``model`` (a DiffRec) from each user's training row, keeping every state.

    One batched reverse chain for all ``users``. truth: ``SyntheticTruth`` (optional):
    orders the items by true preference and marks the injected noise clicks.
    """
    if split not in ("valid", "test"):
        raise ValueError(f"unknown split {split!r}; choose 'valid' or 'test'")
    users = [int(u) for u in np.atleast_1d(np.asarray(users))]
    if any(not 0 <= u < data.n_users for u in users):
        raise ValueError(f"users must be in [0, {data.n_users}), got {users}")
    x0 = model.input_matrix(data)[torch.as_tensor(users, device=model.input_matrix(data).device)]
    with eval_mode(model):
        _, states = model.predict(x0, return_trajectory=True)      # (T+1, B, I)
    states = states.cpu().numpy()
    held = data.test if split == "test" else data.valid
    out = []
    for b, user in enumerate(users):
        if truth is not None:
            order, by = np.argsort(-truth.preference[user], kind="stable"), "true preference"
            noise = _row_items(truth.noise, user)
        else:
            order, by = np.argsort(-states[-1, b], kind="stable"), "final score"
            noise = np.zeros(0, dtype=np.int64)
        out.append(Trajectory(user, states[:, b], order, _row_items(data.train, user), noise,
                              _row_items(held, user), by, split))
    return out


def denoising_trajectory(model, data, user: int, truth=None, split: str = "test") -> Trajectory:
    """``denoising_trajectories`` for one user."""
    return denoising_trajectories(model, data, [user], truth, split)[0]


def top_k(traj: Trajectory, k_index: int, k: int = 10) -> list[tuple[int, float, bool]]:
    """The top-k unseen items of state ``k_index``: (item, score, is a held-out hit)."""
    x = traj.states[k_index].copy()
    x[traj.train] = -np.inf
    items = np.argsort(-x, kind="stable")[:min(k, len(x) - len(np.unique(traj.train)))]   # unseen only
    held = set(traj.held_out.tolist())
    return [(int(i), float(x[i]), int(i) in held) for i in items]


def noise_rank(traj: Trajectory) -> np.ndarray:
    """Per state: mean percentile of the noise clicks among the training clicks (T+1,).

    0 % = the noise clicks rank above every genuine click, 100 % = below all of them, 50 % =
    no better than chance (the input row, where every click is a tied 1); NaN when the user
    has no noise click.
    """
    if len(traj.noise) == 0:
        return np.full(traj.T + 1, np.nan)
    genuine = np.setdiff1d(traj.train, traj.noise)
    out = []
    for x in traj.states:
        n, g = x[traj.noise][:, None], x[genuine][None, :]
        below = ((n < g) + 0.5 * (n == g)).mean(1)          # share of genuine clicks above; ties half
        out.append(100 * below.mean())
    return np.asarray(out)


@torch.no_grad()
def mean_noise_rank(model, data, truth, users) -> np.ndarray:
    """``noise_rank`` averaged over ``users`` (those with noise clicks); shape (T+1,)."""
    curves = [noise_rank(traj) for traj in denoising_trajectories(model, data, users, truth)]
    curves = [c for c in curves if not np.isnan(c).all()]
    if not curves:
        raise ValueError("none of these users has an injected noise click")
    return np.mean(curves, axis=0)


def _step_label(traj: Trajectory, k_index: int) -> str:
    t = traj.T - k_index
    return f"x_{t}" + (" (input)" if k_index == 0 else " (output)" if k_index == traj.T else "")


def _draw_state(traj: Trajectory, k_index: int, ax, k: int = 10, legend: bool = True) -> None:
    x = traj.states[k_index][traj.order]
    pos = np.empty_like(traj.order)
    pos[traj.order] = np.arange(len(traj.order))
    ax.plot(x, color="0.6", lw=0.7)
    genuine = np.setdiff1d(traj.train, traj.noise)
    ax.scatter(pos[genuine], traj.states[k_index][genuine], s=10, color="tab:blue", label="training click")
    if len(traj.noise):
        ax.scatter(pos[traj.noise], traj.states[k_index][traj.noise], s=28, marker="x",
                   color="tab:red", label="injected noise click")
    ax.scatter(pos[traj.held_out], traj.states[k_index][traj.held_out], s=26, facecolors="none",
               edgecolors="tab:green", label=f"held-out ({traj.split}) item")
    top = [i for i, _, _ in top_k(traj, k_index, k)]
    ax.scatter(pos[top], traj.states[k_index][top], s=60, marker="|", color="black", label=f"top-{k}")
    ax.set(title=_step_label(traj, k_index), xlabel=f"items, by {traj.ordered_by}")
    if legend:
        ax.legend(fontsize=7, loc="upper right")


def draw_trajectory_step(traj: Trajectory, k_index: int = 0, k: int = 10):
    """The explorer's figure at state ``k_index``: x_t, top-k, noise rank. The default 0 is the
    input, where the explorer's slider starts; ``traj.T`` is the output (the scores)."""
    if not 0 <= k_index <= traj.T:
        raise ValueError(f"k_index must be in [0, {traj.T}], got {k_index}")
    fig, axes = subplots(1, 3, figsize=(13, 3.4), gridspec_kw={"width_ratios": [3, 1.2, 1.6]})
    _draw_state(traj, k_index, axes[0], k)
    axes[0].set_ylabel("value of x_t")
    rows = top_k(traj, k_index, k)
    axes[1].axis("off")
    text = "\n".join(f"{r + 1:2d}. item {i:5d}  {s:+.3f}{'  HIT' if hit else ''}"
                     for r, (i, s, hit) in enumerate(rows))
    axes[1].text(0, 1, f"top-{k} unseen at {_step_label(traj, k_index)}\n\n{text}", va="top",
                 family="monospace", fontsize=8)
    ranks = noise_rank(traj)
    steps = np.arange(traj.T, -1, -1)
    if np.isnan(ranks).all():
        axes[2].text(0.5, 0.5, "no injected noise clicks\nfor this user", ha="center", va="center")
        axes[2].axis("off")
    else:
        axes[2].plot(steps, ranks, marker=".", color="tab:red")
        axes[2].axvline(traj.T - k_index, color="black", ls=":")
        axes[2].invert_xaxis()
        axes[2].set(xlabel="step t (reverse: left to right)", ylabel="percentile among clicks",
                    title="noise clicks sink", ylim=(0, 100))
    fig.tight_layout()
    return fig


def draw_trajectory_grid(traj: Trajectory, n: int = 4, k: int = 10):
    """Small multiples: ``n`` states from input to output, evenly spaced (static overview)."""
    idx = np.unique(np.linspace(0, traj.T, n).round().astype(int))
    fig, axes = subplots(1, len(idx), figsize=(3.4 * len(idx), 3), sharey=True)
    for j, (ax, k_index) in enumerate(zip(np.atleast_1d(axes), idx)):
        _draw_state(traj, int(k_index), ax, k, legend=j == len(idx) - 1)
    fig.suptitle(f"user {traj.user}: the reverse chain from the training row to the scores", y=1.02)
    fig.tight_layout()
    return fig


def trajectory_explorer(model, data, truth=None, users=None, k: int = 10):
    """A user dropdown and a step slider; redraws ``draw_trajectory_step``. Needs a kernel.

    The figure is shown as an ``ipywidgets.Image`` (PNG bytes), which every front end and
    headless runner renders the same way.
    """
    import ipywidgets as widgets

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
        label.value = f"showing {_step_label(traj, step.value)}"
        image.value = png(draw_trajectory_step(traj, step.value, k))

    user_box.observe(redraw, names="value")
    step.observe(redraw, names="value")
    redraw()
    flush_cells_between_redraws()
    return widgets.VBox([widgets.HBox([user_box, step, label]), image])
