r"""Sequence data: what a sequential recommender (SASRec, DiffuRec, SeqDiffRec) reads.

A user's history is the list of items in time order, :math:`s_u = (i_1, i_2, \dots, i_n)`.
Sequential models predict the next item from the items before it:

    training samples    (i_1, ..., i_{k-1})  ->  i_k        for every k = 2..n   (every prefix)
    validation input    (i_1, ..., i_n)      ->  the validation item  v_u
    test input          (i_1, ..., i_n, v_u) ->  the test item        t_u

This is the leave-one-out split of SASRec and DiffuRec: per user the last item is the test
target, the second last the validation target, and the test input is the training sequence
plus the validation item. ``InteractionData.sequences`` holds the training part, ``valid`` and
``test`` one item per user.

Windows. Every input is cut to its last ``max_len`` items (L = 50 in the papers) and
*left*-padded, so the most recent item always sits in the last column:

    items 0-based in the library  ->  ids + 1 in a window;  id 0 = padding (PAD)
    window (L,) = [0, ..., 0, i_{k-L}+1, ..., i_{k-1}+1]

Targets stay 0-based: they are column indices of a ``(B, n_items)`` score matrix. Models
shift by one when they look up an item's embedding (``embedding(target + 1)``).

Every prefix of Amazon Beauty is ~131k windows; they are built once with NumPy (a sliding
window over a flat array in which every user's items follow L pads) and indexed per batch.
Most windows are mostly padding (median Beauty history: 4 items), so
:func:`trim_padding` drops the columns that are padding in every row of a batch, and
:func:`length_chunks` sorts a batch by length and cuts it into chunks that are trimmed one by
one. With key padding masks and right-aligned positions neither changes what a network
computes from a row (and a loss averaged over the whole batch stays the same): it only skips
work on padding. A *sampling* model (DiffuRec, SeqDiffRec) draws its noise chunk by chunk, so a
different ``chunk_size`` (or device: chunks are CPU-only) hands users different draws from the
same distribution; one setting on one device repeats exactly.

SASRec trains on all positions of one window per user at once (causal attention makes each
position a prefix): :func:`next_item_windows` gives inputs s[:-1] and targets s[1:].
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from .data import DICT_PER_USER, user_ids

PAD = 0
MAX_LEN = 50


def check_sequences(sequences: Sequence[np.ndarray] | None, n_items: int) -> list[np.ndarray]:
    """Validate per-user 0-based item sequences; returns them as int64 arrays.

    Raises ValueError when ``sequences`` is missing, or an id is negative or >= ``n_items``.
    """
    if sequences is None:
        raise ValueError("the data has no sequences (InteractionData.sequences is None); "
                         "sequential models need each user's training items in time order")
    if isinstance(sequences, Mapping):
        raise ValueError(DICT_PER_USER.format(what="sequences"))
    seqs = [np.asarray(s, dtype=np.int64).reshape(-1) for s in sequences]
    flat = np.concatenate(seqs) if seqs else np.zeros(0, np.int64)
    if len(flat) and (flat.min() < 0 or flat.max() >= n_items):
        bad = flat[(flat < 0) | (flat >= n_items)][0]
        raise ValueError(f"item id {bad} lies outside [0, {n_items}): sequences must hold 0-based "
                         f"item ids below the item count {n_items}")
    return seqs


def check_batch(windows: torch.Tensor, targets: torch.Tensor | None, n_items: int,
                ignore_index: int | None = None) -> None:
    """Raise ValueError unless windows (B, L) hold ids + 1 in [0, n_items] (0 = PAD), left-padded
    so that the last column holds an item, and targets (if
    given) hold 0-based items in [0, n_items) (or ``ignore_index``). One device sync: it runs on
    every training batch. For hand-built batches: the ones ``SequenceBatches`` and
    :func:`next_item_windows` build are valid by construction."""
    if windows.numel() == 0:
        return
    bounds = [windows.min(), windows.max(), windows[:, -1].min()]
    if targets is not None and targets.numel():
        real = targets if ignore_index is None else torch.where(targets == ignore_index, 0, targets)
        bounds += [real.min(), real.max()]
    lo, hi, last, *target_bounds = torch.stack(bounds).tolist()
    if lo < 0 or hi > n_items:
        raise ValueError(f"window ids must be in [0, {n_items}] (items shifted by +1, 0 = padding), "
                         f"got min {lo} max {hi}")
    if last == PAD:
        raise ValueError("windows must be left-padded with at least one item: a window ends with "
                         "padding (the models read the last position)")
    if target_bounds and (target_bounds[0] < 0 or target_bounds[1] >= n_items):
        raise ValueError(f"target ids must be 0-based in [0, {n_items})"
                         + ("" if ignore_index is None else f" or {ignore_index}")
                         + f", got min {target_bounds[0]} max {target_bounds[1]}")


def check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def check_max_len(max_len) -> int:
    if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 1:
        raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
    return int(max_len)


def _padded_flat(seqs: list[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """One flat int64 array: for each user L pads then the items + 1. Also each user's start.

    ``starts[u]`` is the flat index of user u's first item; any slice ``flat[p - L : p]`` with
    ``starts[u] <= p <= starts[u] + n_u`` is user u's left-padded window ending before p.
    """
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    block = lengths + max_len
    starts = np.cumsum(block) - lengths                    # first item of each user
    flat = np.zeros(int(block.sum()), dtype=np.int64)
    if lengths.sum():
        offset = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)   # j within user
        flat[np.repeat(starts, lengths) + offset] = np.concatenate(seqs) + 1
    return flat, starts


def windows_before(seqs: list[np.ndarray], users: np.ndarray, ends: np.ndarray, max_len: int) -> np.ndarray:
    """Left-padded windows (len(users), L) of ``seqs[u][:end]`` (the items before position end).

    Items shift to ids + 1; 0 pads. ``ends[j]`` may range from 0 (an all-padding window) to
    ``len(seqs[users[j]])``.
    """
    flat, starts = _padded_flat(seqs, max_len)
    stop = starts[users] + ends                            # flat index just after the window
    return sliding_window_view(flat, max_len)[stop - max_len].copy()


def to_windows(seqs: Sequence[np.ndarray], n_items: int, max_len: int = MAX_LEN) -> np.ndarray:
    """Each whole sequence as one left-padded window: (n_users, L) int64, ids + 1, 0 = PAD."""
    seqs = check_sequences(seqs, n_items)
    max_len = check_max_len(max_len)
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    return windows_before(seqs, np.arange(len(seqs)), lengths, max_len)


def trim_padding(windows: torch.Tensor) -> torch.Tensor:
    """Drop the leading columns that are PAD in every row: (B, L) -> (B, L') with L' <= L.

    At least one column is kept. Exact for models with key padding masks and positions counted
    from the right (the last column is always position L - 1).
    """
    real = (windows != PAD).any(dim=0)
    first = int(real.nonzero()[0]) if bool(real.any()) else windows.shape[1] - 1
    return windows[:, first:]


def length_chunks(windows: torch.Tensor, chunk_size: int | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Sort rows by length and cut them into chunks: [(rows (b,), trimmed windows (b, L'))].

    ``rows`` index the original batch, so ``out[rows] = f(chunk)`` puts results back in place.
    ``chunk_size=None`` keeps the batch whole (only trimmed). Chunks help on CPUs only: on a
    GPU every new shape costs more than the padding saves (cuDNN attention plans a kernel
    per shape; measured on an H200: 0.053 s per DiffuRec batch in chunks of 128 against
    0.015 s whole), so off the CPU the batch is always kept whole.
    """
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer))
                                   or chunk_size < 1):
        raise ValueError(f"chunk_size must be None or a positive integer, got {chunk_size!r}")
    if len(windows) == 0:
        return []
    if chunk_size is None or chunk_size >= len(windows) or windows.device.type != "cpu":
        return [(torch.arange(len(windows), device=windows.device), trim_padding(windows))]
    lengths = (windows != PAD).sum(dim=1)
    order = torch.argsort(lengths, stable=True)
    return [(rows, trim_padding(windows[rows])) for rows in order.split(chunk_size)]


def next_item_windows(data, max_len: int = MAX_LEN) -> tuple[torch.Tensor, torch.Tensor]:
    """One window per user with >= 2 training items: inputs (U', L) = s[:-1], targets (U', L) = s[1:].

    Inputs hold ids + 1 (0 = PAD); targets hold 0-based items, -100 (cross-entropy's
    ``ignore_index``) where the input is PAD. Only the last ``max_len`` positions are kept.
    """
    max_len = check_max_len(max_len)
    seqs = check_sequences(data.sequences, data.n_items)
    users = np.flatnonzero(np.array([len(s) >= 2 for s in seqs]))
    if len(users) == 0:
        raise ValueError("no training prefixes: every user has fewer than 2 training items")
    inputs = windows_before([seqs[u][:-1] for u in users], np.arange(len(users)),
                            np.array([len(seqs[u]) - 1 for u in users]), max_len)
    targets = windows_before([seqs[u][1:] for u in users], np.arange(len(users)),
                             np.array([len(seqs[u]) - 1 for u in users]), max_len) - 1
    targets[targets < 0] = -100
    return torch.from_numpy(inputs), torch.from_numpy(targets)


class SequenceBatches:
    """Every training prefix of every user: ``inputs`` (N, L) windows, ``targets`` (N,) items.

    ``inputs[j]`` is a left-padded window of ids + 1 (0 = PAD); ``targets[j]`` the 0-based item
    that followed it; ``users[j]`` its user. A user with n training items gives n - 1 samples
    (the first item has no history), as in DiffuRec's released ``Data_Train``.
    """

    def __init__(self, data, max_len: int = MAX_LEN):
        self.max_len = check_max_len(max_len)
        self.n_items = data.n_items
        seqs = check_sequences(data.sequences, data.n_items)
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        n_samples = np.clip(lengths - 1, 0, None)
        if n_samples.sum() == 0:
            raise ValueError("no training prefixes: every user has fewer than 2 training items "
                             "(a sample needs at least one history item and a next item)")
        users = np.repeat(np.arange(len(seqs)), n_samples)
        # position of the target inside its user's sequence: 1, 2, ..., n_u - 1
        ends = np.arange(n_samples.sum()) - np.repeat(np.cumsum(n_samples) - n_samples, n_samples) + 1
        flat, starts = _padded_flat(seqs, self.max_len)
        self.users = torch.from_numpy(users)
        stop = starts[users] + ends                         # flat index of each target
        self.inputs = torch.from_numpy(sliding_window_view(flat, self.max_len)[stop - self.max_len].copy())
        self.targets = torch.from_numpy(flat[stop] - 1)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.targets[index]

    def batches(self, batch_size: int, generator: torch.Generator | None = None,
                shuffle: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of ``(inputs (B, L), targets (B,))``, shuffled with ``generator``."""
        check_batch_size(batch_size)
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        for start in range(0, len(self), batch_size):
            idx = order[start:start + batch_size]
            yield self.inputs[idx], self.targets[idx]


def eval_inputs(data, split: str, users=None, max_len: int = MAX_LEN) -> torch.Tensor:
    """Input windows (B, L) for evaluating ``users`` (default all) on ``split``.

    ``"valid"``: the training sequence. ``"test"``: the training sequence plus the validation
    item (leave-one-out), so the test input needs exactly one validation item per user with one.
    Raises ValueError for a user whose input is empty (nothing to condition on). No users
    give a (0, L) tensor.
    """
    if split not in ("valid", "test"):
        raise ValueError(f"unknown split {split!r}; choose 'valid' or 'test'")
    max_len = check_max_len(max_len)
    seqs = check_sequences(data.sequences, data.n_items)
    users = np.arange(data.n_users) if users is None else user_ids(users, data.n_users)
    if len(users) == 0:
        return torch.zeros((0, max_len), dtype=torch.long)
    if split == "test":
        valid = data.valid.tocsr()
        n_valid = np.diff(valid.indptr)[users]
        if (n_valid > 1).any():
            u = users[n_valid > 1][0]
            raise ValueError(f"the test input appends the validation item to the training sequence, "
                             f"which needs leave-one-out data; user {u} has {n_valid[n_valid > 1][0]} "
                             f"validation items (use loo_synthetic() or from_dataframe(split='loo'))")
        seqs = _append_valid(seqs, valid, users)
    sub = [seqs[u] for u in users]
    empty = [int(u) for u, s in zip(users, sub) if len(s) == 0]
    if empty:
        raise ValueError(f"{len(empty)} users have an empty input sequence (first: user {empty[0]}); "
                         f"a sequential model needs at least one item to condition on")
    lengths = np.array([len(s) for s in sub], dtype=np.int64)
    return torch.from_numpy(windows_before(sub, np.arange(len(sub)), lengths, max_len))


def _append_valid(seqs: list[np.ndarray], valid, users: np.ndarray) -> list[np.ndarray]:
    """seqs with each listed user's validation item(s) appended (a copy of the list)."""
    out = list(seqs)
    for u in users:
        extra = valid.indices[valid.indptr[u]:valid.indptr[u + 1]]
        if len(extra):
            out[u] = np.concatenate([seqs[u], extra.astype(np.int64)])
    return out


def loo_synthetic(n_users: int = 600, n_items: int = 400, interactions_per_user: int = 30,
                  noise_frac: float = 0.0, seed: int = 0, **kwargs):
    """``make_synthetic`` with a leave-one-out split: one validation and one test item per user.

    The generator's temporal split with tiny fractions keeps exactly the last clean click as
    test and the one before as validation. Returns ``(data, truth)``; other keyword arguments go
    to :func:`tutorial_lib.synthetic.make_synthetic` (drift, n_clusters, ...).
    """
    from .synthetic import make_synthetic

    return make_synthetic(n_users=n_users, n_items=n_items, interactions_per_user=interactions_per_user,
                          noise_frac=noise_frac, valid_frac=1e-3, test_frac=1e-3, seed=seed, **kwargs)
