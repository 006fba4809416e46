r"""Full-ranking top-K metrics: Precision, Recall, NDCG, HR and MRR @K.

Every item is ranked for every user (no sampled negatives). Items the user already
consumed (``exclude``, usually the training history) are pushed to the end of the list
and can never count as hits. For one user let :math:`R` be the set of relevant
(held-out) items, :math:`\mathrm{rel}_r \in \{0, 1\}` say whether the item at rank
:math:`r = 1, 2, \dots` is in :math:`R`, and :math:`K' = \min(K, I)` (a K larger than
the number of items :math:`I` is clamped to :math:`I`; the key keeps the K asked for):

.. math::

    \mathrm{Precision@}K = \frac{1}{K'} \sum_{r=1}^{K'} \mathrm{rel}_r \qquad
    \mathrm{Recall@}K = \frac{1}{|R|} \sum_{r=1}^{K'} \mathrm{rel}_r

    \mathrm{NDCG@}K = \frac{\sum_{r=1}^{K'} \mathrm{rel}_r / \log_2(r + 1)}
                           {\sum_{r=1}^{\min(|R|, K')} 1 / \log_2(r + 1)}

    \mathrm{HR@}K = \mathbb{1}[\exists\, r \le K' : \mathrm{rel}_r = 1] \qquad
    \mathrm{MRR@}K = \max_{r \le K'} \mathrm{rel}_r / r

Recall divides by :math:`|R|`, not :math:`\min(K, |R|)` (RecBole, Cornac, DiffRec); with a
single held-out item (leave-one-out) HR@K equals Recall@K. Each metric is averaged over the
users that have at least one relevant item; users without ground truth are *skipped*, not
counted as zero, and ``n_users`` reports how many were evaluated. (DiffRec's released code
divides by every user, so users without ground truth count as zero there. The two agree on
its ml-1m_clean split and on every leave-one-out split, where every user has held-out items;
on other data, compare ``n_users`` with the number of users.)

Ties: ``torch.topk`` does not order equal scores reproducibly, so :func:`top_items` falls
back to a stable descending sort wherever a tie matters: among equal scores the lower item
index ranks first. A model that scores
every item the same therefore recommends items 0, 1, 2, ...

Averages: :class:`MetricAccumulator` sums per-user values over batches and divides by the
number of evaluated users once at the end. DiffuRec's released code instead averages the
per-batch means, which weighs users in a smaller last batch more; the two agree only when
every batch has the same number of evaluated users.

Protocols (:func:`evaluate`): DiffRec masks the training items when validating and the
training + validation items when testing (``mask_history=True``); DiffuRec's released
code masks nothing (``mask_history=False``). Say which one a number uses;
:func:`evaluate_both` gives both from one scoring pass.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from .data import as_ids

METRICS = ("precision", "recall", "ndcg", "hr", "mrr")
SPLITS = ("valid", "test")


def metric_names(ks: Iterable[int]) -> list[str]:
    """The keys :func:`topk_metrics` returns for ``ks``, e.g. ``["precision@10", ...]``."""
    return [f"{m}@{k}" for k in _check_ks(ks) for m in METRICS]


def _check_ks(ks) -> tuple[int, ...]:
    ks = (ks,) if isinstance(ks, (int, np.integer)) else tuple(ks)
    if not ks:
        raise ValueError("ks is empty; pass at least one cut-off, e.g. ks=(10, 20)")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
            raise ValueError(f"every K in ks must be a positive integer, got {k!r}")
    if len(set(int(k) for k in ks)) != len(ks):
        raise ValueError(f"ks repeats a cut-off: {ks!r}; give each K once")
    return tuple(int(k) for k in ks)


def _check_users(users, n_users: int) -> np.ndarray:
    """User ids as a 1-D int64 array: integers in [0, n_users), each at most once."""
    users = as_ids(users)
    if users.size == 0:
        return users
    if users.ndim != 1 or users.min() < 0 or users.max() >= n_users:
        raise ValueError(f"users must be a 1-D array of ids in [0, {n_users}), got {users!r}")
    if len(np.unique(users)) != len(users):
        raise ValueError("users repeats ids: each user would be counted once per repeat")
    return users.astype(np.int64)


def _as_bool(x, shape: tuple[int, int], name: str, device) -> torch.Tensor:
    """A dense ``(U, I)`` bool tensor from a 0/1 tensor, array or scipy sparse matrix."""
    if sp.issparse(x):
        x = x.toarray()
    x = torch.as_tensor(x, device=device)
    if tuple(x.shape) != shape:
        raise ValueError(f"{name} has shape {tuple(x.shape)} but scores have shape {shape}")
    return x != 0


def top_items(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``(U, k)`` of each row's k highest scores, best first; ties: lower index first.

    ``torch.topk`` is fast but orders equal scores arbitrarily, and a full stable sort is
    exact but ~6x slower. So: topk for every row, then a stable sort only for the rows
    where a tie could change the answer (repeated values in the top k, or more than one
    item sharing the k-th value). Continuous model scores almost never tie.
    """
    values, idx = scores.topk(k, dim=1)
    tied = (scores == values[:, -1:]).sum(1) > 1
    tied |= (values[:, 1:] == values[:, :-1]).any(1)
    if tied.any():
        rows = tied.nonzero().squeeze(1)
        idx[rows] = torch.sort(scores[rows], dim=1, descending=True, stable=True).indices[:, :k]
    return idx


def per_user_topk(scores: torch.Tensor, truth, ks: Sequence[int] = (10, 20),
                  exclude=None) -> dict[str, torch.Tensor]:
    """Every metric for every evaluated user (the building block of the averages).

    Args:
        scores: ``(U, I)`` float scores, higher = ranked earlier; NaN is an error.
        truth: ``(U, I)`` relevant items: bool / 0-1 tensor, array or scipy sparse.
        ks: cut-offs K.
        exclude: ``(U, I)`` items to rank last and never count as hits (the history).
    Returns:
        ``{"user": (n,) row indices of the evaluated users, "n_relevant": (n,),
        "recall@10": (n,), ...}``, float64 CPU tensors; ``n`` counts the rows
        with at least one relevant item.
    """
    ks = _check_ks(ks)
    scores = torch.as_tensor(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D (users, items) tensor, got shape {tuple(scores.shape)}")
    if scores.shape[1] == 0:
        raise ValueError("scores have no item columns: there is nothing to rank")
    if not scores.is_floating_point():
        scores = scores.float()
    if torch.isnan(scores).any():
        raise ValueError(f"scores contain {int(torch.isnan(scores).sum())} NaN values; "
                         "check the model (diverged training?)")
    shape, dev = tuple(scores.shape), scores.device
    n_items = shape[1]
    relevant = _as_bool(truth, shape, "truth", dev)
    n_relevant = relevant.sum(1)
    keep = n_relevant > 0
    users = keep.nonzero().squeeze(1)
    scores, relevant = scores[keep], relevant[keep]
    n_relevant = n_relevant[keep].cpu().double()
    out = {"user": users.cpu(), "n_relevant": n_relevant}
    if exclude is not None:
        excluded = _as_bool(exclude, shape, "exclude", dev)[keep]
        scores = scores.masked_fill(excluded, float("-inf"))

    k_max = min(max(ks), n_items)
    ranked = top_items(scores, k_max)
    hit = relevant.gather(1, ranked)
    if exclude is not None:
        hit &= ~excluded.gather(1, ranked)
    hit = hit.cpu().double()          # (n, k_max); ranking ran on the device, sums in float64
    rank = torch.arange(1, k_max + 1, dtype=torch.float64)              # 1, 2, ...
    discount = 1.0 / torch.log2(rank + 1)
    ideal = torch.cumsum(discount, 0)                 # ideal[j] = IDCG with j+1 relevant items

    for k in ks:
        kk = min(k, n_items)
        h = hit[:, :kk]
        hits = h.sum(1)
        n_ideal = n_relevant.clamp(max=kk).long()
        out[f"precision@{k}"] = hits / kk
        out[f"recall@{k}"] = hits / n_relevant
        out[f"ndcg@{k}"] = (h * discount[:kk]).sum(1) / ideal[n_ideal - 1]
        out[f"hr@{k}"] = (hits > 0).double()
        out[f"mrr@{k}"] = (h / rank[:kk]).amax(1)          # 1 / rank of the first hit
    return out


def topk_metrics(scores: torch.Tensor, truth, ks: Sequence[int] = (10, 20), exclude=None,
                 per_user: bool = False):
    """Precision / Recall / NDCG / HR / MRR @K averaged over users with ground truth.

    Args:
        scores: ``(U, I)`` float scores (higher = better).
        truth: ``(U, I)`` relevant items (bool / 0-1 tensor or scipy CSR).
        ks: cut-offs; a K larger than ``I`` is clamped to ``I``.
        exclude: ``(U, I)`` items masked to -inf before ranking (the history), or None.
        per_user: also return the per-user values (for histograms, exact sums).
    Returns:
        ``{"precision@10": float, ..., "n_users": int}``; users with no relevant item are
        skipped. With ``per_user=True`` a pair ``(means, per_user)`` where ``per_user`` maps
        the same names (plus ``"user"``, the row index) to ``(n_users,)`` NumPy arrays.
    """
    acc = MetricAccumulator(ks)
    acc.update(scores, truth, exclude)
    return (acc.compute(), acc.per_user()) if per_user else acc.compute()


class MetricAccumulator:
    """Exact means over many batches: sums per-user values, divides once at the end.

    >>> acc = MetricAccumulator(ks=(10, 20))
    >>> for users, scores, truth in batches:          # doctest: +SKIP
    ...     acc.update(scores, truth, exclude, users=users)
    >>> acc.compute()                                  # doctest: +SKIP

    Unlike averaging per-batch means (DiffuRec's released code), every evaluated user
    weighs the same whatever the batch sizes.
    """

    def __init__(self, ks: Sequence[int] = (10, 20)):
        self.ks = _check_ks(ks)
        self.names = metric_names(self.ks)
        self.sums = dict.fromkeys(self.names, 0.0)
        self.n_users = 0
        self._parts: list[dict[str, np.ndarray]] = []

    def update(self, scores: torch.Tensor, truth, exclude=None, users=None) -> None:
        """Add one batch. ``users``: ``(B,)`` global ids of the rows (default 0..B-1)."""
        if users is not None:
            users = as_ids(users)
        per = per_user_topk(scores, truth, self.ks, exclude)
        for name in self.names:
            self.sums[name] += float(per[name].sum())
        self.n_users += len(per["user"])
        part = {k: v.cpu().numpy() for k, v in per.items()}
        if users is not None:
            if len(users) != len(torch.as_tensor(scores)):
                raise ValueError(f"users has {len(users)} ids but scores have {len(scores)} rows")
            part["user"] = users[part["user"]]
        self._parts.append(part)

    def compute(self) -> dict[str, float]:
        """Means over all evaluated users so far, plus ``n_users``."""
        if self.n_users == 0:
            raise ValueError("no user with ground truth was evaluated; nothing to average")
        out = {name: s / self.n_users for name, s in self.sums.items()}
        out["n_users"] = self.n_users
        return out

    def per_user(self) -> dict[str, np.ndarray]:
        """Per-user values of every metric, concatenated over batches, with ``"user"`` ids."""
        if not self._parts:
            return {k: np.zeros(0) for k in ["user", "n_relevant", *self.names]}
        return {k: np.concatenate([p[k] for p in self._parts]) for k in self._parts[0]}


def _split_matrices(data, split: str, mask_history: bool):
    """(truth, exclude) CSR matrices of the DiffRec protocol for ``split``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    truth = data.valid if split == "valid" else data.test
    if not mask_history:
        return truth.tocsr(), None
    exclude = data.train if split == "valid" else data.train + data.valid
    return truth.tocsr(), exclude.tocsr()


def evaluate(score_fn: Callable[[torch.Tensor], torch.Tensor], data, split: str = "valid",
             ks: Sequence[int] = (10, 20), batch_size: int = 1024, mask_history: bool = True,
             device=None, users=None, per_user: bool = False, progress: bool = False):
    """Full-ranking evaluation of ``score_fn`` on ``data``'s valid or test split.

    Args:
        score_fn: ``users -> (B, I)`` scores; receives a CPU int64 tensor of user ids.
        data: an ``InteractionData`` (``train``, ``valid``, ``test`` CSR matrices).
        split: ``"valid"`` (truth ``data.valid``, masks ``train``) or ``"test"`` (truth
            ``data.test``, masks ``train + valid``): the DiffRec protocol.
        ks: cut-offs.
        batch_size: users per call of ``score_fn``; truth and mask are made dense per batch.
        mask_history: False ranks seen items too (DiffuRec's released protocol).
        device: where the ranking runs (default: wherever ``score_fn`` returns scores).
        users: ids to evaluate (default all); those without truth in ``split`` are skipped.
        per_user: also return per-user arrays, as :func:`topk_metrics` does.
        progress: show a tqdm bar over batches.
    Returns:
        ``{"recall@20": float, ..., "n_users": int}`` (and per-user arrays if asked).
    """
    (acc,) = _evaluate(score_fn, data, split, ks, batch_size, (mask_history,), device, users, progress)
    return (acc.compute(), acc.per_user()) if per_user else acc.compute()


def evaluate_both(score_fn: Callable[[torch.Tensor], torch.Tensor], data, split: str = "test",
                  ks: Sequence[int] = (10, 20), batch_size: int = 1024, device=None, users=None,
                  progress: bool = False) -> tuple[dict[str, float], dict[str, float]]:
    """:func:`evaluate` under both protocols from one call of ``score_fn`` per batch.

    For models whose scoring is the expensive part (DiffuRec's reverse chain): the same
    scores are ranked twice, history not masked (DiffuRec's released protocol) and masked.
    Returns ``(unmasked, masked)``, each as :func:`evaluate` returns it.
    """
    unmasked, masked = _evaluate(score_fn, data, split, ks, batch_size, (False, True), device,
                                 users, progress)
    return unmasked.compute(), masked.compute()


def _evaluate(score_fn, data, split, ks, batch_size, mask_options, device, users, progress):
    """The loop behind :func:`evaluate`: one accumulator per ``mask_history`` option."""
    pairs = [_split_matrices(data, split, m) for m in mask_options]
    truth = pairs[0][0]
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    n_users, n_items = truth.shape
    users = np.arange(n_users) if users is None else _check_users(users, n_users)
    users = users[np.diff(truth.indptr)[users] > 0]      # skip users without ground truth
    accs = [MetricAccumulator(ks) for _ in mask_options]
    starts = range(0, len(users), batch_size)
    with torch.no_grad():
        for start in tqdm(starts, desc=f"evaluate {split}", disable=not progress, leave=False):
            batch = torch.as_tensor(users[start:start + batch_size], dtype=torch.long)
            scores = torch.as_tensor(score_fn(batch))
            if tuple(scores.shape) != (len(batch), n_items):
                raise ValueError(f"score_fn returned shape {tuple(scores.shape)} for "
                                 f"{len(batch)} users; expected ({len(batch)}, {n_items})")
            if device is not None:
                scores = scores.to(device)
            rows = batch.numpy()
            truth_rows = truth[rows]                     # sliced once, ranked per protocol
            for acc, (_, exclude) in zip(accs, pairs):
                acc.update(scores, truth_rows, None if exclude is None else exclude[rows], users=batch)
    return accs
