"""Top-K recommendations in the user's own ids: what comes after the evaluation.

Every model of the course scores items with ``model.score(data, users, split)``, a
``(len(users), n_items)`` tensor over *internal* 0-based ids. A recommendation list needs
three more things, done here once for every model:

1. the user's raw ids (``data.user_map``: raw -> internal) turned into internal ids, and the
   items back into raw ids (the inverse of ``data.item_map``);
2. the items the user has already seen taken out (their score set to -inf);
3. the k best of what is left, ties broken by the lower item id (``metrics.top_items``).

Users are scored in chunks of ``batch_size``, so memory stays at ``batch_size x n_items``
however many users are asked for. Every model class has the method ``model.recommend(data,
users, k, exclude)`` (the ``Recommender`` mixin), which calls :func:`recommend`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from .metrics import top_items
from .utils import eval_mode

EXCLUDE = ("seen", "train", None)
# the most floats one (users, items) block of scores may hold: 256 MB in float32. Scoring in
# chunks (the CLI, torchrun's evaluation, the training-row models) keeps under it.
SCORE_BUDGET = 2**26


def raw_ids(id_map: dict | None, n: int) -> np.ndarray:
    """(n,) raw id of each internal id 0..n-1, from a raw -> internal map (None: the ids themselves)."""
    if id_map is None:
        return np.arange(n)
    raw = np.empty(n, dtype=object)
    for r, i in id_map.items():
        raw[i] = r
    return raw


def raw_item_ids(data) -> np.ndarray:
    """(n_items,) raw id of each internal item id."""
    return raw_ids(data.item_map, data.n_items)


def internal_user_ids(data, users) -> np.ndarray:
    """Raw user ids (one id or a list) -> (U,) int64 internal ids; an unknown id is an error."""
    users = [users] if np.isscalar(users) or isinstance(users, str) else list(users)
    if data.user_map is None:
        bad = [u for u in users if not isinstance(u, (int, np.integer)) or not 0 <= u < data.n_users]
        if bad:
            raise ValueError(f"unknown user {bad[0]!r}: this data has no user_map, so users are "
                             f"the internal ids 0..{data.n_users - 1}")
        return np.asarray(users, dtype=np.int64)
    missing = [u for u in users if u not in data.user_map]
    if missing:
        some = list(data.user_map)[:5]
        raise ValueError(f"unknown user {missing[0]!r}: not in data.user_map "
                         f"({len(data.user_map):,} users, e.g. {some})")
    return np.asarray([data.user_map[u] for u in users], dtype=np.int64)


def top_unseen(scores: torch.Tensor, seen: torch.Tensor, k: int) -> torch.Tensor:
    """(U, k) ids of the k best items of each row of ``scores`` (U, I) that ``seen`` (U, I, bool)
    leaves in, best first, ties to the lower id; seen items score -inf, so a row with fewer than
    k unseen items ends with seen ones (drop them by their -inf score)."""
    return top_items(scores.masked_fill(seen, -torch.inf), k)


def seen_items(data, exclude: str | None) -> sp.csr_matrix | None:
    """(n_users, n_items) CSR of the items to leave out: train + valid + test ("seen"), train
    only ("train"), or None (leave nothing out)."""
    if exclude not in EXCLUDE:
        raise ValueError(f"exclude must be one of {EXCLUDE}, got {exclude!r}")
    if exclude is None:
        return None
    return data.train if exclude == "train" else (data.train + data.valid + data.test).tocsr()


@torch.no_grad()
def recommend(model, data, users, k: int = 10, exclude: str | None = "seen",
              batch_size: int = 1024) -> pd.DataFrame:
    """The top-``k`` items for each raw user id in ``users``, best first.

    Returns a DataFrame with one row per (user, rank): ``user`` and ``item`` in raw ids,
    ``rank`` 1..k and ``score`` (the model's score). The model scores with its test input
    (for the sequential models, the training sequence plus the validation item: everything
    known); ``exclude="seen"`` leaves out every item of the user in train, valid and test.
    A user with fewer than ``k`` items left gets a shorter list.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= data.n_items:
        raise ValueError(f"k must be an integer in [1, {data.n_items}], got {k!r}")
    internal = internal_user_ids(data, users)
    seen = seen_items(data, exclude)
    raw_users = np.asarray([users] if np.isscalar(users) or isinstance(users, str) else list(users),
                           dtype=object)
    raw_items = raw_item_ids(data)
    frames = []
    for start in range(0, len(internal), batch_size):
        chunk = internal[start:start + batch_size]
        with eval_mode(model):
            scores = model.score(data, torch.as_tensor(chunk), split="test").float().cpu()
        mask = torch.zeros_like(scores, dtype=torch.bool) if seen is None else torch.as_tensor(seen[chunk].toarray() != 0)
        scores = scores.masked_fill(mask, -torch.inf)
        top = top_unseen(scores, mask, k)                             # (U, k)
        frames.append(pd.DataFrame({
            "user": np.repeat(raw_users[start:start + batch_size], k),
            "rank": np.tile(np.arange(1, k + 1), len(chunk)),
            "item": raw_items[top.numpy().reshape(-1)],
            "score": scores.gather(1, top).numpy().reshape(-1),
        }))
    out = pd.concat(frames, ignore_index=True)
    return out[np.isfinite(out["score"])].reset_index(drop=True)   # fewer than k unseen items


class Recommender:
    """Mixin that gives a model ``recommend``; the model provides ``score(data, users, split)``."""

    def recommend(self, data, users, k: int = 10, exclude: str | None = "seen",
                  batch_size: int = 1024) -> pd.DataFrame:
        """Top-k items per raw user id, seen items left out: see :func:`tutorial_lib.recommend.recommend`."""
        return recommend(self, data, users, k=k, exclude=exclude, batch_size=batch_size)
