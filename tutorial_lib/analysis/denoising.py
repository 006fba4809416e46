"""DiffRec's reverse chain for a few users, step by step, and where recommendations fall among
the synthetic world's interests (notebooks 03 and 05).

DiffRec's inference (Algorithm 2) starts from the user's training row x_T = x_0 and runs the
T reverse steps, each taking the mean of p_theta(x_{t-1} | x_t). ``denoising_trajectories``
keeps every state; ``top_k`` lists a state's best unseen items; ``noise_rank`` says where the
injected false-positive clicks of the synthetic world rank among the user's training clicks,
and ``scores_noise_rank`` says the same of any model's scores (EASE, Mult-VAE, one reverse step).
``interest_shares`` splits any model's top-k lists by the users' true early and late interests.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..recommend import top_unseen
from ..utils import eval_mode, in_eval_mode


@dataclass
class Trajectory:
    """One user's reverse chain. states (T+1, I): states[k] is x at paper step T - k."""

    user: int
    states: np.ndarray
    order: np.ndarray          # (I,) item order for a plot's x axis (true preference, else final score)
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
    rows = model.input_matrix(data)
    x0 = rows[torch.as_tensor(users, device=rows.device)]
    with eval_mode(model):
        _, states = model.predict(x0, return_trajectory=True)      # (T+1, B, I)
    states = states.float().cpu().numpy()
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

    0 % = the noise clicks rank above every genuine click, 100 % = below all of them (what a
    denoiser should reach), 50 % = no better than chance (the input row, where every click is
    a tied 1); NaN when the user has no noise click.
    """
    if len(traj.noise) == 0:
        return np.full(traj.T + 1, np.nan)
    return np.asarray([click_percentile(x, traj.train, traj.noise) for x in traj.states])


def click_percentile(scores: np.ndarray, train: np.ndarray, noise: np.ndarray) -> float:
    """Mean percentile (0-100) of the ``noise`` clicks among the genuine ``train`` clicks under
    ``scores`` (I,): for each noise click, the share of genuine clicks scored above it (ties
    count half). 100 = below every genuine click; NaN without noise or genuine clicks."""
    genuine = np.setdiff1d(train, noise)
    if len(noise) == 0 or len(genuine) == 0:
        return float("nan")
    n, g = scores[noise][:, None], scores[genuine][None, :]
    return float(100 * ((n < g) + 0.5 * (n == g)).mean())


def scores_noise_rank(scores, data, truth, users) -> float:
    """``click_percentile`` of any model's ``scores`` (len(users), I) for ``users``, averaged over
    the users with noise clicks: where EASE, Mult-VAE or one denoiser call put the injected clicks."""
    scores = scores.detach().float().cpu().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
    users = [int(u) for u in np.atleast_1d(np.asarray(users))]
    if scores.shape != (len(users), data.n_items):
        raise ValueError(f"scores must have shape ({len(users)}, {data.n_items}), got {scores.shape}")
    ranks = [click_percentile(row, _row_items(data.train, u), _row_items(truth.noise, u))
             for row, u in zip(scores, users)]
    ranks = [r for r in ranks if not np.isnan(r)]
    if not ranks:
        raise ValueError("none of these users has an injected noise click")
    return float(np.mean(ranks))


def interest_shares(scores, data, truth, users, k: int = 20, split: str = "test") -> dict[str, float]:
    """Where any model's top-k lists fall among the synthetic world's interests.

    scores (len(users), I) for ``users``; the history is masked as ``metrics.evaluate`` masks it
    on ``split`` (train for "valid", train + valid for "test"). For each user, the share of the
    top-k items in the user's late interest (``truth.user_clusters[u, -1]``), in an earlier one
    (any other of the user's clusters) and outside them ("other"); returns the means over the
    users, {"late", "early", "other"}, which sum to 1.
    """
    if split not in ("valid", "test"):
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
    scores = scores.detach().float().cpu() if isinstance(scores, torch.Tensor) else torch.as_tensor(
        np.asarray(scores, dtype=np.float32))
    users = np.array([int(u) for u in np.atleast_1d(np.asarray(users))], dtype=int)
    if scores.shape != (len(users), data.n_items):
        raise ValueError(f"scores must have shape ({len(users)}, {data.n_items}), got {tuple(scores.shape)}")
    if not 0 < k <= data.n_items:
        raise ValueError(f"k must be in 1..{data.n_items}, got {k}")
    history = data.train if split == "valid" else data.train + data.valid
    seen = torch.as_tensor(history[users].toarray() > 0)
    top = top_unseen(scores, seen, k).numpy()                            # (U, k), best first
    unseen = ~np.take_along_axis(seen.numpy(), top, axis=1)               # a row with < k unseen items
    clusters = truth.item_clusters[top]                                   # (U, k)
    interests = truth.user_clusters[users]                                # (U, K), the late one last
    late = clusters == interests[:, -1:]
    early = (clusters[:, :, None] == interests[:, None, :-1]).any(axis=2)
    n = unseen.sum(axis=1)
    keep = n > 0
    if not keep.any():
        raise ValueError("none of these users has an unseen item to recommend")
    share = lambda hit: float(((hit & unseen).sum(axis=1)[keep] / n[keep]).mean())
    out = {"late": share(late), "early": share(early)}
    out["other"] = share(~late & ~early)
    return out


@torch.no_grad()
def mean_noise_rank(model, data, truth, users) -> np.ndarray:
    """``noise_rank`` averaged over ``users`` (those with noise clicks); shape (T+1,)."""
    curves = [noise_rank(traj) for traj in denoising_trajectories(model, data, users, truth)]
    curves = [c for c in curves if not np.isnan(c).all()]
    if not curves:
        raise ValueError("none of these users has an injected noise click")
    return np.mean(curves, axis=0)


@in_eval_mode
def recommend(model, row: torch.Tensor, seen: np.ndarray, k: int = 10) -> np.ndarray:
    """Top-k item ids (k,) for one input row (I,) through ``model.predict``, ``seen`` items left
    out (so at most I - len(seen) items); the masking is ``recommend.top_unseen``'s, as for
    ``model.recommend``, which takes users instead of a row."""
    with torch.no_grad():
        scores = model.predict(row.reshape(1, -1).to(next(model.parameters()).device))[0].float().cpu()
    mask = torch.zeros(len(scores), dtype=torch.bool)
    mask[torch.as_tensor(seen, dtype=torch.long)] = True
    n = min(k, len(scores) - int(mask.sum()))
    return top_unseen(scores[None], mask[None], n)[0].numpy()
