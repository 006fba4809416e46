r"""Beyond accuracy: what the recommendation lists cover, how they spread exposure, how
diverse and novel they are; posterior collapse in a VAE; the cost of inference.

Lists are ``(U, K)`` int arrays of internal item ids, best first (:func:`top_k_lists`). With
I items, c_i the number of lists that hold item i, and L_u the list of user u:

    coverage@K   = |{i : c_i > 0}| / I
    Gini         = sum_{j=1..I} (2j - I - 1) c_(j) / (I sum_i c_i)     c_(1) <= ... <= c_(I)
    ILD(L_u)     = 2 / (K (K - 1)) sum_{i < j in L_u} (1 - cos(f_i, f_j))     averaged over u
    novelty(L_u) = 1 / K sum_{i in L_u} -log2 p_i,   p_i = share of users with i in train

Gini is 0 when every item is shown equally often and (I - 1) / I when one item takes all
exposure. Posterior collapse (Mult-VAE's q(z|x) = N(mu(x), diag sigma^2(x)), d latent units):

    KL_d          = mean_u 1/2 (mu_ud^2 + sigma_ud^2 - log sigma_ud^2 - 1)
    active unit d : A_d = Cov_u(E_q[z_d]) = Var_u(mu_ud) > 0.01     (Burda et al. 2016)

A collapsed unit has KL_d ~ 0 and A_d ~ 0: q(z_d|x) is the prior for every user.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from .metrics import top_items
from .utils import eval_mode


def _lists(lists, n_items: int) -> np.ndarray:
    """Check ``lists`` (U, K) of item ids in [0, n_items); return it as an int64 array."""
    a = np.asarray(lists.cpu() if torch.is_tensor(lists) else lists)
    if a.ndim != 2 or a.shape[1] < 1 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"lists must be a (U, K) integer array of item ids, got shape {a.shape}, "
                         f"dtype {a.dtype}")
    if a.size and (a.min() < 0 or a.max() >= n_items):
        raise ValueError(f"item ids must lie in [0, {n_items}), got {a.min()}..{a.max()}")
    return a.astype(np.int64)


@torch.no_grad()
def top_k_lists(score_fn: Callable[[torch.Tensor], torch.Tensor], data, k: int = 20,
                split: str = "test", batch_size: int = 1024) -> np.ndarray:
    """(n_users, k) top-k item ids per user, masked as ``metrics.evaluate`` masks: ``split=
    "valid"`` leaves out train items, ``"test"`` train + valid items. ``score_fn(users)`` ->
    (B, n_items), e.g. ``lambda u: model.score(data, u, "test")``."""
    if split not in ("valid", "test"):
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")
    seen = (data.train if split == "valid" else data.train + data.valid).tocsr()
    out = []
    for start in range(0, data.n_users, batch_size):
        users = torch.arange(start, min(start + batch_size, data.n_users))
        scores = score_fn(users).float().cpu().clone()
        scores[torch.as_tensor(seen[users.numpy()].toarray() != 0)] = -torch.inf
        out.append(top_items(scores, k).numpy())
    return np.concatenate(out)


def exposure(lists, n_items: int) -> np.ndarray:
    """(n_items,) c_i: how many of the lists (U, K) hold item i."""
    a = _lists(lists, n_items)
    return np.bincount(a.ravel(), minlength=n_items)


def coverage(lists, n_items: int) -> float:
    """Catalogue coverage@K of lists (U, K): the share of the n_items items in any list."""
    return float((exposure(lists, n_items) > 0).mean())


def gini(lists, n_items: int) -> float:
    """Gini index of the exposure counts c_i over all n_items items (0: equal exposure)."""
    c = np.sort(exposure(lists, n_items)).astype(np.float64)
    if c.sum() == 0:
        raise ValueError("the lists are empty: no exposure to measure")
    j = np.arange(1, n_items + 1)
    return float(((2 * j - n_items - 1) * c).sum() / (n_items * c.sum()))


def intra_list_diversity(lists, item_features) -> float:
    """Mean over users of the mean pairwise cosine distance 1 - cos(f_i, f_j) in each list.

    lists (U, K) with K >= 2; item_features (n_items, F): embeddings or 0/1 features (an item
    with a zero feature vector has cosine 0 to every item).
    """
    f = torch.as_tensor(np.asarray(item_features), dtype=torch.float64)
    if f.dim() != 2:
        raise ValueError(f"item_features must be (n_items, F), got shape {tuple(f.shape)}")
    a = torch.as_tensor(_lists(lists, len(f)))
    k = a.shape[1]
    if k < 2:
        raise ValueError("intra-list diversity needs lists of at least 2 items")
    unit = torch.nn.functional.normalize(f, dim=1)[a]                  # (U, K, F)
    cos = unit @ unit.transpose(1, 2)                                  # (U, K, K)
    off_diagonal = cos.sum((1, 2)) - cos.diagonal(dim1=1, dim2=2).sum(1)
    return float((1 - off_diagonal / (k * (k - 1))).mean())


def item_popularity(train) -> np.ndarray:
    """(n_items,) p_i = share of users with item i in ``train`` (U, I), 0/1 CSR or dense."""
    x = train if sp.issparse(train) else sp.csr_matrix(np.asarray(train))
    return np.asarray((x != 0).sum(axis=0)).ravel() / x.shape[0]


def novelty(lists, popularity) -> float:
    """Mean self-information -log2 p_i of the listed items (bits); popularity (n_items,) in
    (0, 1], e.g. :func:`item_popularity`. A listed item with p_i = 0 is an error."""
    p = np.asarray(popularity, dtype=np.float64)
    a = _lists(lists, len(p))
    listed = p[a]
    if (listed <= 0).any() or (p > 1).any():
        raise ValueError("popularity must lie in (0, 1] for every listed item (an item no user "
                         "has in train has infinite self-information); smooth it, e.g. (c + 1) / (U + 1)")
    return float(-np.log2(listed).mean())


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """(d,) KL_d = mean over users of KL(N(mu_ud, sigma_ud^2) || N(0, 1)); mu, logvar (U, d)."""
    if mu.shape != logvar.shape or mu.dim() != 2:
        raise ValueError(f"mu and logvar must both be (U, d), got {tuple(mu.shape)}, {tuple(logvar.shape)}")
    return (0.5 * (mu ** 2 + logvar.exp() - logvar - 1)).mean(0)


def unit_activity(mu: torch.Tensor) -> torch.Tensor:
    """(d,) A_d = Var_u(mu_ud), the variance over users (U - 1 in the denominator) of the
    posterior means mu (U, d), U >= 2."""
    if mu.dim() != 2 or len(mu) < 2:
        raise ValueError(f"mu must be (U, d) with U >= 2, got shape {tuple(mu.shape)}")
    return mu.var(0, unbiased=True)


def active_units(mu: torch.Tensor, threshold: float = 0.01) -> int:
    """How many latent units have A_d > threshold (Burda et al.'s 0.01); mu (U, d)."""
    return int((unit_activity(mu) > threshold).sum())


@torch.no_grad()
def vae_posterior(model, data, batch_size: int = 2048) -> tuple[torch.Tensor, torch.Tensor]:
    """mu, logvar (n_users, d) of a Mult-VAE's q(z|x) on every user's clean training row."""
    x = model.input_matrix(data)
    with eval_mode(model):
        parts = [model.encode(x[i:i + batch_size], dropout=False) for i in range(0, len(x), batch_size)]
    return torch.cat([m for m, _ in parts]).cpu(), torch.cat([v for _, v in parts]).cpu()


def inference_ms_per_user(model, data, users=None, repeats: int = 3, split: str = "test",
                          **setting) -> float:
    """Median wall-clock milliseconds per user of ``model.score(data, users, split)``.

    ``setting``: model attributes set for the timing and restored afterwards, e.g.
    ``sampling_steps=10`` or ``diffusion=<a respaced process>``. users: ids (default all).
    One untimed call first (warm-up); a score cache (``_scores``) is cleared before each call.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    missing = [k for k in setting if not hasattr(model, k)]
    if missing:
        raise ValueError(f"{type(model).__name__} has no attribute {missing[0]!r} to set")
    users = torch.arange(data.n_users) if users is None else torch.as_tensor(users)
    before = {k: getattr(model, k) for k in setting}
    times = []
    try:
        for k, v in setting.items():
            setattr(model, k, v)
        with eval_mode(model):
            for i in range(repeats + 1):
                if hasattr(model, "_scores"):
                    model._scores = None
                start = time.perf_counter()
                model.score(data, users, split=split)
                times.append(time.perf_counter() - start)
    finally:
        for k, v in before.items():
            setattr(model, k, v)
    return 1000 * float(np.median(times[1:])) / len(users)


def ms_per_user_by_setting(model, data, name: str, values: Sequence, users=None,
                           repeats: int = 3) -> dict:
    """{value: :func:`inference_ms_per_user` with attribute ``name`` = value}, e.g. the number
    of reverse steps of a diffusion model against its cost per user."""
    return {v: inference_ms_per_user(model, data, users, repeats, **{name: v}) for v in values}


__all__ = ["active_units", "coverage", "exposure", "gini", "inference_ms_per_user", "intra_list_diversity",
           "item_popularity", "kl_per_dimension", "ms_per_user_by_setting", "novelty", "top_k_lists",
           "unit_activity", "vae_posterior"]
