"""DiffuRec and SeqDiffRec at inference (notebooks 06 and 07): one user's reverse path, HR/NDCG@K
after each reverse step, how much repeated sampling varies the top-K, whether the order of the
history matters, and the accuracy and time of fewer reverse steps. Every number is a
leave-one-out number: one held-out item per user.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from ..data import user_ids
from ..metrics import evaluate, topk_metrics
from ..sequences import PAD, eval_inputs
from ..utils import eval_mode, in_eval_mode


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


def target_ranks(scores: torch.Tensor, targets) -> np.ndarray:
    """Rank (1 = best) of each row's target among all items by score; ties count in the
    target's favour. scores (B, I), targets (B,) item ids -> (B,)."""
    targets = torch.as_tensor(np.asarray(targets), dtype=torch.long, device=scores.device)
    return ((scores > scores.gather(1, targets[:, None])).sum(1) + 1).cpu().numpy()


@torch.no_grad()
@in_eval_mode
def reverse_path(model, data, user: int, split: str = "test", seed: int = 0) -> dict:
    """One user's DiffuRec reverse chain from x_T ~ N(0, I), seeded.

    Returns states (T + 1, d) x_T..x_0, x0_hat (T, d) per step, scores (T, I) = x0_hat . e_i
    (the dot products DiffuRec ranks by), the target item, its rank by those scores after each
    step (T,) and the input window (L,).
    """
    dev = model.item_emb.weight.device
    w = eval_inputs(data, split, [user], model.max_len).to(dev)
    g = torch.Generator(device=dev).manual_seed(seed)
    _, states, preds = model.reverse(w, g, return_trajectory=True)
    truth = (data.test if split == "test" else data.valid)[user].indices
    scores = model.logits(preds[:, 0]).float().cpu()
    target = int(truth[0]) if len(truth) else None
    ranks = target_ranks(scores, [target] * len(scores)) if target is not None else None
    return {"states": states[:, 0].float().cpu(), "x0_hat": preds[:, 0].float().cpu(), "scores": scores,
            "target": target, "target_rank": ranks, "window": w[0].cpu()}


@torch.no_grad()
@in_eval_mode
def rank_by_step(model, data, users, ks=(10,), split: str = "test", seed: int = 0) -> pd.DataFrame:
    """HR@K and NDCG@K (``metrics.topk_metrics``, history not masked) of x0_hat after each
    reverse step of DiffuRec, over ``users``: one row per step 1..T, with the number of users."""
    users = user_ids(list(users), data.n_users)
    targets = held_out_targets(data, users, split)
    truth = sp.csr_matrix((np.ones(len(users)), (np.arange(len(users)), targets)),
                          shape=(len(users), data.n_items))
    dev = model.item_emb.weight.device
    w = eval_inputs(data, split, users, model.max_len).to(dev)
    _, _, preds = model.reverse(w, torch.Generator(device=dev).manual_seed(seed), return_trajectory=True)
    rows = []
    for step, x0_hat in enumerate(preds, start=1):
        m = topk_metrics(model.logits(x0_hat).float().cpu(), truth, ks)
        rows.append({"step": step, **{f"{name}@{k}": m[f"{name}@{k}"] for k in ks for name in ("hr", "ndcg")},
                     "users": m["n_users"]})
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
    df = pd.DataFrame({"model": type(model).__name__, "user": users, **rows})
    df["coverage"] = df["distinct"] / (n_samples * k)
    if baseline is not None:
        with eval_mode(baseline):
            top = torch.topk(baseline.score(data, torch.as_tensor(users), split), k).indices.cpu().numpy()
        hit = (top == truth[:, None]).any(1).astype(float)
        base = pd.DataFrame({"model": type(baseline).__name__, "user": users, "distinct": k,
                             "hit_one": hit, "hit_any": hit, "coverage": 1.0 / n_samples})
        df = pd.concat([df, base], ignore_index=True)
    return df


def _reordered(windows: torch.Tensor, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Each window (B, L) with its earlier items shuffled (the last stays last), and with its last
    item swapped for a random earlier one. Left padding stays in place."""
    shuffled, swapped = windows.clone(), windows.clone()
    for row in range(len(windows)):
        real = (windows[row] != PAD).nonzero()[:, 0]                   # positions of real items
        earlier = real[:-1]
        shuffled[row, earlier] = windows[row, earlier[torch.from_numpy(rng.permutation(len(earlier)))]]
        j = int(earlier[rng.integers(len(earlier))])
        swapped[row, [j, -1]] = windows[row, [-1, j]]
    return shuffled, swapped


@torch.no_grad()
@in_eval_mode
def order_blindness(model, data, users, split: str = "test", seed: int = 0) -> dict:
    """Does DiffuRec's Approximator see the order of a history? One call from pure noise
    (x_T at t = T, as the first reverse step) on each user's window as it is, with its earlier
    items shuffled, and with its last item swapped for an earlier one, with the same x_T and
    lambda draws; and on the window as it is with other lambda draws (the noise floor).
    Returns the mean relative change ||x0_hat' - x0_hat|| / ||x0_hat|| over ``users`` for
    ``"other lambda"``, ``"shuffled"`` and ``"last swapped"``. Users need at least two items."""
    dev = model.item_emb.weight.device
    windows = eval_inputs(data, split, user_ids(list(users), data.n_users), model.max_len)
    if ((windows != PAD).sum(1) < 2).any():
        raise ValueError("every user needs at least two input items to reorder")
    x_T = torch.randn(len(windows), model.hidden, generator=torch.Generator().manual_seed(seed)).to(dev)
    t = torch.full((len(windows),), model.T - 1, device=dev)

    def x0_hat(w, lambda_seed=seed):
        w = w.to(dev)
        gen = torch.Generator(device=dev).manual_seed(lambda_seed)       # the same lambda draws
        return model.approximator(model.embed(w), w == PAD, x_T, t, gen).float()

    base = x0_hat(windows)
    shuffled, swapped = _reordered(windows, np.random.default_rng(seed))
    change = lambda x: ((x - base).norm(dim=1) / base.norm(dim=1)).mean().item()
    return {"other lambda": change(x0_hat(windows, seed + 1)), "shuffled": change(x0_hat(shuffled)),
            "last swapped": change(x0_hat(swapped))}


@in_eval_mode
def inference_sweep(model, data, start_steps=(), step_counts=(), split: str = "test", k: int = 10,
                    mask_history: bool = False, progress: bool = False, grid: str = "cross") -> pd.DataFrame:
    """Evaluate SeqDiffRec's inference settings (start step s, reverse steps K) on ``split``.

    ``grid="cross"``: (s, 1) for each s in start_steps and (T, K) for each K in step_counts;
    ``grid="full"``: that cross and every (s, K) with s in start_steps, K in step_counts and
    K <= s. Choose a setting on ``split="valid"``, then score test once at it.
    Returns a DataFrame with columns start_step, steps, hr@k, ndcg@k, seconds and users (the
    number of users evaluated, the n of a binomial band; one row each; ``.attrs["split"]``
    names the split). ``progress``: a tqdm bar over the settings (each is a full evaluation of
    ``split``).
    """
    if split not in ("valid", "test"):
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
    if grid not in ("cross", "full"):
        raise ValueError(f"grid must be 'cross' or 'full', got {grid!r}")
    settings = [(int(s), 1) for s in start_steps] + [(model.T, int(n)) for n in step_counts]
    if grid == "full":
        settings += [(int(s), int(n)) for s in start_steps for n in step_counts if int(n) <= int(s)]
    rows = []
    for s, n in tqdm(dict.fromkeys(settings), desc="inference settings", disable=not progress, leave=False):
        start = time.perf_counter()
        r = evaluate(lambda u: model.score(data, u, split, start_step=s, inference_steps=n), data, split,
                     ks=(k,), mask_history=mask_history)
        rows.append({"start_step": s, "steps": n, f"hr@{k}": r[f"hr@{k}"], f"ndcg@{k}": r[f"ndcg@{k}"],
                     "seconds": time.perf_counter() - start, "users": r["n_users"]})
    sweep = pd.DataFrame(rows)
    sweep.attrs["split"] = split
    return sweep


@in_eval_mode
def user_probabilities(model, data, user: int, start_step: int, inference_steps: int,
                       split: str = "test") -> np.ndarray:
    """p(i | h0_hat) over items for one user (n_items,), with SeqDiffRec's seeded h_s."""
    scores = model.score(data, torch.tensor([user]), split, start_step=start_step, inference_steps=inference_steps)
    return torch.softmax(scores[0].float(), 0).cpu().numpy()
