r"""T-DiffRec (Wang et al., SIGIR 2023, section 3.6): time-aware reweighting of the input.

Interests drift: what a user clicked last says more about the next click than what they
clicked a year ago. T-DiffRec keeps DiffRec's model and changes only the data. User u's M
training interactions, in chronological order m = 1..M, get the weights

.. math::

    w_m = w_{\min} + \frac{m - 1}{M - 1}\,(w_{\max} - w_{\min}),
    \qquad 0 < w_{\min} \le w_{\max} \le 1

(a linear ramp from the oldest to the newest click; a single interaction, M = 1, gets
w_max: it is the newest click. The released code's ``np.linspace(w_min, w_max, 1)`` gives it
w_min), and the binary row x_u in {0, 1}^I is replaced by the weighted row

.. math::

    \bar x_u = [\, w_{m(i)} \text{ if } u \text{ interacted with } i \text{ else } 0 \,]_{i=1..I}.

As in the released code, :math:`\bar x_u` is the x_0 the diffusion is trained on *and*
the input of the reverse chain at inference; the metrics still mask the binary history.
The paper tunes w_min in 0.1..0.5 with w_max = 1 (the released checkpoints: 0.1 on Amazon-Book, 0.5 on Yelp).

Chronological order: ``data.sequences`` (the per-user train items in time order; on
DiffRec's released files that is the row order of ``train_list.npy``), re-sorted by
``data.timestamps`` when those are known (synthetic data, logs from a DataFrame).

``TDiffRec`` is DiffRec on these rows, ``LTDiffRec`` is L-DiffRec on them.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .diffrec import DiffRec
from .ldiffrec import LDiffRec


def _check_range(w_min: float, w_max: float) -> None:
    if w_min > w_max:
        raise ValueError(f"w_min ({w_min}) must not exceed w_max ({w_max}): the newest "
                         "interaction gets the largest weight")
    if not (0 < w_min <= 1 and 0 < w_max <= 1):
        raise ValueError(f"weights must lie in (0, 1], got w_min={w_min}, w_max={w_max}")


def chronological_pairs(data) -> tuple[np.ndarray, np.ndarray]:
    """(users, items) of every training interaction, each user's in time order; int64 (N,)."""
    if data.sequences is None:
        raise ValueError("T-DiffRec needs the order of each user's interactions: data.sequences "
                         "is None (load with load_diffrec_npy / from_dataframe with a time column)")
    lengths = np.fromiter((len(s) for s in data.sequences), dtype=np.int64, count=data.n_users)
    users = np.repeat(np.arange(data.n_users, dtype=np.int64), lengths)
    items = np.concatenate(data.sequences).astype(np.int64) if lengths.sum() else np.zeros(0, np.int64)
    if data.timestamps is not None:
        times = np.concatenate(data.timestamps).astype(float) if lengths.sum() else np.zeros(0)
        order = np.lexsort((times, users))       # by user, then by time (stable for ties)
        users, items = users[order], items[order]
    return users, items


def time_weights(data, w_min: float = 0.1, w_max: float = 1.0) -> sp.csr_matrix:
    """The weighted training matrix (n_users, n_items) float32 CSR: entry (u, i) = w_m(i).

    Same sparsity pattern as ``data.train``. An item a user clicked more than once keeps
    the weight of its latest click.
    """
    _check_range(w_min, w_max)
    users, items = chronological_pairs(data)
    starts = np.searchsorted(users, np.arange(data.n_users))           # first row of each user
    M = np.bincount(users, minlength=data.n_users)
    m = np.arange(len(users)) - starts[users]                          # 0-based position m - 1
    denom = np.maximum(M[users] - 1, 1)
    w = np.where(M[users] > 1, w_min + m / denom * (w_max - w_min), w_max).astype(np.float32)
    # keep the latest click of repeated (u, i) pairs: rows are in time order per user
    key = users * data.n_items + items
    _, last = np.unique(key[::-1], return_index=True)
    last = len(key) - 1 - last
    weights = sp.csr_matrix((w[last], (users[last], items[last])), shape=(data.n_users, data.n_items))
    if weights.nnz != data.train.nnz or (abs(weights).sign() != data.train).nnz:
        raise ValueError("data.sequences do not hold the same (user, item) pairs as data.train: "
                         "time weights need every training interaction in the sequences")
    return weights


class TimeWeights:
    """``input_fn`` for DiffRec / L-DiffRec: data -> its time-weighted training matrix.

    Remembers the last data set it saw, so the matrix is built once and the models' caches
    (keyed on the matrix object) stay valid.
    """

    def __init__(self, w_min: float = 0.1, w_max: float = 1.0):
        _check_range(w_min, w_max)
        self.w_min, self.w_max = w_min, w_max
        self._last: tuple | None = None

    def __call__(self, data) -> sp.csr_matrix:
        if self._last is None or self._last[0] is not data:
            self._last = (data, time_weights(data, self.w_min, self.w_max))
        return self._last[1]

    def __repr__(self) -> str:
        return f"TimeWeights(w_min={self.w_min}, w_max={self.w_max})"


class TDiffRec(DiffRec):
    """DiffRec trained and queried on time-weighted rows (the paper tunes w_min in 0.1-0.5)."""

    def __init__(self, n_items: int, w_min: float = 0.1, w_max: float = 1.0, **diffrec_kwargs):
        if "input_fn" in diffrec_kwargs:
            raise ValueError("TDiffRec sets input_fn itself (time weights); use DiffRec for another input")
        super().__init__(n_items, input_fn=TimeWeights(w_min, w_max), **diffrec_kwargs)


class LTDiffRec(LDiffRec):
    """L-DiffRec trained and queried on time-weighted rows."""

    def __init__(self, n_items: int, w_min: float = 0.1, w_max: float = 1.0, **ldiffrec_kwargs):
        if "input_fn" in ldiffrec_kwargs:
            raise ValueError("LTDiffRec sets input_fn itself (time weights); use LDiffRec for another input")
        super().__init__(n_items, input_fn=TimeWeights(w_min, w_max), **ldiffrec_kwargs)
