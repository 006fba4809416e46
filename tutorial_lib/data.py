"""Data: implicit feedback as a users x items matrix, plus the order it arrived in.

Every model in the course reads one object, :class:`InteractionData`:

    train, valid, test   binary CSR matrices of shape (n_users, n_items); x_u = train[u] is the
                         user's interaction vector, the x_0 that DiffRec diffuses
    sequences[u]         the user's TRAIN items in time order, (n_u,) int64 (what DiffuRec reads)
    timestamps[u]        their times, (n_u,), when known (what T-DiffRec's weights use)

Ids are 0-based and contiguous; ``user_map`` / ``item_map`` keep the raw -> internal maps.
:func:`user_ids` is the check every model's ``score`` runs on the user ids it is given.
:func:`from_dataframe` builds the object from any log of (user, item[, rating][, time]) rows:
rating threshold -> iterative k-core -> contiguous ids -> split. Readers of files (CSV,
RecBole, MovieLens, the papers' released splits) are in :mod:`tutorial_lib.datasets`.

Splits (``split=``; by default "temporal" when the log has times, else "random"), with the
default shares ``VALID_FRAC`` / ``TEST_FRAC``: 70 / 20 / 10 % train / valid / test, DiffRec's
7:2:1 on ML-1M (``diffrec-tutorial`` splits logs with the same two constants):

* ``"random"``    each interaction goes to test / valid / train with probabilities
  test_frac / valid_frac / rest (exact counts, seeded permutation)
* ``"temporal"``  per user, by time: the last round(test_frac * n_u) interactions are test,
  the round(valid_frac * n_u) before them are valid, the rest (at least one) train
* ``"loo"``       leave-one-out: per user, last = test, second last = valid (users with fewer
  than 3 interactions keep all of them in train)

``valid_frac=0, test_frac=0`` with "random" or "temporal" splits nothing: every interaction
is training data (the final model, refit on everything).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["InteractionData", "pairs_to_csr", "group_by_user", "as_ids", "user_ids", "SPLITS",
           "VALID_FRAC", "TEST_FRAC", "split_sizes", "split_interactions", "k_core_filter", "COLUMN_NAMES",
           "find_columns", "from_dataframe", "merge_duplicates", "duplicates_note", "fingerprint"]

SPLITS = ("random", "temporal", "loo")
VALID_FRAC, TEST_FRAC = 0.2, 0.1          # the default shares of a split: 70 / 20 / 10 %, DiffRec's 7:2:1
# per-user lists given as a dict: iterating it would yield the user ids, not their items
DICT_PER_USER = ("{what} is a dict (e.g. DiffuRec's {{user: items}}); pass a list with one entry per "
                 "user in row order, e.g. [d[u] for u in range(n_users)] if its keys are the 0-based "
                 "user ids, or load DiffuRec's file with datasets.load_diffurec_pkl")


# ---- The container

def _binary_csr(matrix, what: str) -> sp.csr_matrix:
    """A float32 CSR copy of ``matrix`` with 1.0 for every stored non-zero entry."""
    if not sp.issparse(matrix):
        matrix = np.asarray(matrix)
        if matrix.ndim != 2:
            raise ValueError(f"{what} must be a 2-D (n_users, n_items) matrix, got shape {matrix.shape}")
    m = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    if np.isnan(m.data).any():
        raise ValueError(f"{what} contains NaN entries")
    m.sum_duplicates()
    m.eliminate_zeros()
    m.data[:] = 1.0
    return m


def pairs_to_csr(users: np.ndarray, items: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Binary float32 CSR matrix of ``shape`` with a 1 at every (users[k], items[k])."""
    ones = np.ones(len(users), dtype=np.float32)
    return _binary_csr(sp.csr_matrix((ones, (users, items)), shape=shape), "matrix")


@dataclass(eq=False, repr=False)
class InteractionData:
    """Train / valid / test interactions of ``n_users`` users with ``n_items`` items.

    train, valid, test: (n_users, n_items) float32 CSR, 1.0 per interaction
    sequences:  n_users int64 arrays, each user's TRAIN items in chronological order, or None
    timestamps: n_users arrays aligned with ``sequences`` (when times are known), or None
    user_map, item_map: raw id -> internal 0-based id, or None when the ids were already so
    """

    train: sp.csr_matrix
    valid: sp.csr_matrix
    test: sp.csr_matrix
    sequences: list[np.ndarray] | None = None
    timestamps: list[np.ndarray] | None = None
    name: str = "data"
    user_map: dict | None = None
    item_map: dict | None = None

    def __post_init__(self):
        for split in ("train", "valid", "test"):
            setattr(self, split, _binary_csr(getattr(self, split), split))
        shapes = {s: getattr(self, s).shape for s in ("train", "valid", "test")}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"train, valid and test must have the same shape (n_users, n_items), got {shapes}")
        if self.train.nnz == 0:
            raise ValueError("train is empty: InteractionData needs at least one training interaction")
        if self.sequences is not None:
            self.sequences = self._check_per_user(self.sequences, "sequences")
            seq_items = np.concatenate(self.sequences) if self.sequences else np.zeros(0, np.int64)
            if len(seq_items) and (seq_items.min() < 0 or seq_items.max() >= self.n_items):
                raise ValueError(f"sequences hold item ids outside [0, {self.n_items}): "
                                 f"min {seq_items.min()}, max {seq_items.max()}")
        if self.timestamps is not None:
            if self.sequences is None:
                raise ValueError("timestamps given without sequences: they must be aligned with sequences")
            self.timestamps = self._check_per_user(self.timestamps, "timestamps", dtype=None)
            bad = [u for u, (s, t) in enumerate(zip(self.sequences, self.timestamps)) if len(s) != len(t)]
            if bad:
                raise ValueError(f"timestamps and sequences differ in length for {len(bad)} users (first: user {bad[0]})")
            kinds = {t.dtype.kind for t in self.timestamps if len(t)}
            if not kinds <= set("iufM"):                  # integers, floats or datetime64
                raise ValueError(f"timestamps must be numbers or datetime64, got dtype kinds {sorted(kinds)}")

    def _check_per_user(self, lists, what, dtype=np.int64):
        if isinstance(lists, Mapping):        # iterating a dict would give its keys, not the items
            raise ValueError(DICT_PER_USER.format(what=what))
        if len(lists) != self.n_users:
            raise ValueError(f"{what} must have one entry per user ({self.n_users}), got {len(lists)}")
        arrays = [np.asarray(x).reshape(-1) for x in lists]
        if dtype is None:
            return arrays
        for u, a in enumerate(arrays):        # 0.7 must not become item 0 without a word
            if a.size and not np.issubdtype(a.dtype, np.integer) and (
                    a.dtype == bool or a.dtype.kind != "f" or not np.array_equal(a, np.round(a))):
                raise ValueError(f"{what} must hold integer item ids; user {u} has {a.dtype} values {a[:5]}")
        return [a.astype(dtype) for a in arrays]

    @property
    def n_users(self) -> int:
        return self.train.shape[0]

    @property
    def n_items(self) -> int:
        return self.train.shape[1]

    def summary(self) -> dict:
        """Counts a data table in a paper would show (density = nnz of all splits / cells)."""
        nnz = self.train.nnz + self.valid.nnz + self.test.nnz
        return {"name": self.name, "n_users": self.n_users, "n_items": self.n_items,
                "n_train": self.train.nnz, "n_valid": self.valid.nnz, "n_test": self.test.nnz,
                "density": nnz / (self.n_users * self.n_items), "train_per_user": self.train.nnz / self.n_users,
                "sequences": self.sequences is not None, "timestamps": self.timestamps is not None}

    def __repr__(self) -> str:
        s = self.summary()
        extras = [k for k in ("sequences", "timestamps") if s[k]]
        return (f"InteractionData({self.name!r}: {s['n_users']:,} users x {s['n_items']:,} items; "
                f"train {s['n_train']:,} / valid {s['n_valid']:,} / test {s['n_test']:,}; "
                f"density {s['density']:.2%}" + (f"; {', '.join(extras)}" if extras else "") + ")")


def fingerprint(data: InteractionData) -> str:
    """A short hash of everything a model trains and is evaluated on: the train / valid / test
    interactions, the sequences and timestamps, and the raw ids (``user_map`` / ``item_map``, in
    internal id order). Equal data, equal hash; other ids, interactions, order or split (another
    seed), another hash. A checkpoint records it (``diffrec-tutorial``), so that a run is not
    resumed on other data. Linear in the number of interactions (ML-1M: a few milliseconds)."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)

    def add(array) -> None:
        array = np.ascontiguousarray(array)
        h.update(f"{array.dtype.str}{array.shape}".encode())
        h.update(array.tobytes())

    add(np.array(data.train.shape, dtype=np.int64))
    for split in ("train", "valid", "test"):
        m = getattr(data, split)
        add(m.indptr.astype(np.int64))
        add(m.indices.astype(np.int64))
    for lists in (data.sequences, data.timestamps):
        if lists is None:
            h.update(b"none")
        else:
            add(np.array([len(x) for x in lists], dtype=np.int64))
            if len(lists):
                add(np.concatenate(lists))
    for ids in (data.user_map, data.item_map):
        h.update(b"none" if ids is None else repr(sorted(ids.items(), key=lambda kv: kv[1])).encode())
    return h.hexdigest()


def group_by_user(users: np.ndarray, values: np.ndarray, n_users: int) -> list[np.ndarray]:
    """Split ``values`` into one array per user, keeping their order within each user."""
    users = np.asarray(users)
    if users.size and (users.min() < 0 or users.max() >= n_users):
        raise ValueError(f"user ids must lie in [0, {n_users}), got {users.min()}..{users.max()}")
    order = np.argsort(users, kind="stable")
    counts = np.bincount(users, minlength=n_users)
    return np.split(values[order], np.cumsum(counts)[:-1])


def as_ids(users) -> np.ndarray:
    """``users`` (list, array or tensor) as a NumPy array of integer ids; a mask or floats is an error."""
    if hasattr(users, "detach"):                 # a torch tensor, without importing torch here
        users = users.detach().cpu().numpy()
    users = np.asarray(users)
    if users.size == 0:
        return np.zeros(0, dtype=np.int64)
    if users.dtype == bool or not np.issubdtype(users.dtype, np.integer):
        raise ValueError(f"users must be integer ids (not a {users.dtype} array; for a mask "
                         f"use np.flatnonzero(mask)), got {users!r}")
    return users


def user_ids(users, n_users: int) -> np.ndarray:
    """``users`` (one id, a list, array or tensor) as a (B,) int64 array of ids in [0, n_users):
    what every model's ``score`` indexes its rows with. A mask, floats or an id out of range
    (a negative id would silently pick a user from the end) is an error."""
    users = as_ids(users).reshape(-1)
    if users.size and (users.min() < 0 or users.max() >= n_users):
        bad = users[(users < 0) | (users >= n_users)][0]
        raise ValueError(f"user id {bad} is out of range: ids must lie in [0, {n_users})")
    return users.astype(np.int64)


# ---- Splits

def k_core_filter(df, k: int, user_col: str = "userID", item_col: str = "itemID"):
    """The rows of DataFrame ``df`` left once users and items with fewer than ``k`` rows are
    dropped, again and again until none is left."""
    while True:
        n_user = df.groupby(user_col)[item_col].transform("size")
        n_item = df.groupby(item_col)[user_col].transform("size")
        keep = (n_user >= k) & (n_item >= k)
        if keep.all():
            return df
        df = df[keep]


def split_sizes(n: np.ndarray, frac: float) -> np.ndarray:
    """round(frac * n), halves rounded up (1e-9 absorbs float error: 0.7 * 45 is 31.4999...)."""
    return np.floor(np.asarray(n) * frac + 0.5 + 1e-9).astype(np.int64)


def split_interactions(users: np.ndarray, times: np.ndarray | None, split: str,
                       valid_frac: float = VALID_FRAC, test_frac: float = TEST_FRAC,
                       seed: int = 0) -> np.ndarray:
    """Assign each interaction to a split: returns an int8 array, 0 = train, 1 = valid, 2 = test.

    users: (n,) user ids; times: (n,) times or None (row order is then the time order).
    Ties in time keep row order. See the module docstring for the three rules.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    if not (0 <= valid_frac < 1 and 0 <= test_frac < 1 and valid_frac + test_frac < 1):
        raise ValueError(f"valid_frac and test_frac must be in [0, 1) and sum below 1, got {valid_frac}, {test_frac}")
    n = len(users)
    labels = np.zeros(n, dtype=np.int8)
    if split == "random":
        order = np.random.default_rng(seed).permutation(n)
        n_test, n_valid = int(split_sizes(n, test_frac)), int(split_sizes(n, valid_frac))
        labels[order[:n_test]] = 2
        labels[order[n_test:n_test + n_valid]] = 1
        return labels
    time_key = np.arange(n) if times is None else times
    order = np.lexsort((np.arange(n), time_key, users))          # by user, then time, then row
    u_sorted = users[order]
    counts = np.bincount(u_sorted)[u_sorted]                     # n_u for each sorted row
    starts = np.searchsorted(u_sorted, u_sorted, side="left")
    from_end = counts - (np.arange(n) - starts) - 1              # 0 = the user's last interaction
    if split == "loo":
        n_test = n_valid = (counts >= 3).astype(np.int64)
    else:
        n_test = np.minimum(split_sizes(counts, test_frac), counts - 1)
        n_valid = np.minimum(split_sizes(counts, valid_frac), counts - 1 - n_test)
    sorted_labels = np.where(from_end < n_test, 2, np.where(from_end < n_test + n_valid, 1, 0))
    labels[order] = sorted_labels
    return labels


# ---- From a log of interactions: columns -> threshold -> k-core -> ids -> split

# The usual spellings of each column (RecBole user_id, Microsoft Recommenders userID, MovieLens
# CSV userId / movieId), compared without case and underscores: "USER_ID" is "user_id".
COLUMN_NAMES = {"user": ("user_id", "userID", "user"), "item": ("item_id", "itemID", "item", "movieId"),
                "rating": ("rating",), "time": ("timestamp", "time")}


def find_columns(columns, user_col=None, item_col=None, rating_col=None, time_col=None,
                 need_rating: bool = False) -> dict[str, str | None]:
    """``{"user", "item", "rating", "time"} -> column name`` (None: absent). A name given is
    kept; None looks for the one column spelled as in COLUMN_NAMES. User and item columns must
    be there, the rating one only with ``need_rating``; ``time_col=False``: no time column."""
    usual = {c: str(c).lower().replace("_", "") for c in columns}
    found = {}
    for role, name in (("user", user_col), ("item", item_col), ("rating", rating_col), ("time", time_col)):
        hits = [c for c in columns if usual[c] in {n.lower().replace("_", "") for n in COLUMN_NAMES[role]}]
        if name is None and len(hits) > 1:
            raise ValueError(f"columns {hits} could all be the {role} column: pass {role}_col=...")
        if name is None and not hits and (role in ("user", "item") or (role == "rating" and need_rating)):
            raise ValueError(f"no {role} column among {list(columns)}: name it one of "
                             f"{COLUMN_NAMES[role]} or pass {role}_col=...")
        if name is not None and name is not False and name not in usual:
            raise ValueError(f"missing columns {{{name!r}: '{role}_col'}} (columns present: {list(columns)})")
        found[role] = (hits[0] if hits else None) if name is None else (name or None)
    return found


def _choose(columns, user_col, item_col, rating_col, time_col, threshold, split, no_split=False):
    """(columns, split, what it chose itself in words or None, the hint saying how to choose) for
    :func:`from_dataframe` (``no_split``: valid_frac = test_frac = 0, so a random or temporal
    split holds nothing out)."""
    cols = find_columns(columns, user_col, item_col, rating_col, time_col, threshold is not None)
    chosen = split is None
    split = ("temporal" if cols["time"] else "random") if chosen else split
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    if split != "random" and cols["time"] is None:
        raise ValueError(f"split={split!r} orders interactions by time, but there is no time column "
                         f"among {list(columns)}: pass time_col=...")
    given = {"user": user_col, "item": item_col, "rating": 0 if threshold is None else rating_col,
             "time": time_col}
    picked = [f"{role} {cols[role]!r}" for role, g in given.items() if g is None and cols[role]]
    if not (picked or chosen):
        return cols, split, None, None
    if no_split and split != "loo":
        return (cols, split, f"columns: {', '.join(picked) or 'as given'}; no split (valid_frac = test_frac = 0): "
                "every interaction is training data", "pass user_col=, item_col=, time_col= to choose")
    how = {"random": "at random", "temporal": "per user by time", "loo": "leave-one-out"}[split]
    return (cols, split, f"columns: {', '.join(picked) or 'as given'}; split {split!r} ({how})",
            "pass user_col=, item_col=, time_col= or split= to choose")


def merge_duplicates(df, user_col: str, item_col: str, time_col: str | None = None):
    """(``df`` with one row per (user, item) pair, the number of rows merged away): with
    ``time_col`` the rows are sorted by time (stably) and each pair keeps its earliest row;
    without, the first in row order (the time order when there are no times)."""
    if time_col is not None:
        df = df.sort_values(time_col, kind="stable")
    kept = df.drop_duplicates([user_col, item_col], keep="first")
    return kept, len(df) - len(kept)


def duplicates_note(n: int, by_time: bool) -> str:
    """What :func:`from_dataframe` and ``diffrec-tutorial`` say of ``n`` merged rows (``by_time``:
    the log has times, so the row kept is the one with the earliest)."""
    kept = "the earliest timestamp of each pair kept" if by_time else "the first row of each pair kept"
    return f"{n:,} duplicate (user, item) row{'s' * (n != 1)} merged ({kept})"


def _time_values(col) -> np.ndarray:
    """A time column as an (n,) plain int64 (datetimes: seconds) or float64 array."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(col):
        return col.to_numpy().astype("datetime64[s]").astype(np.int64)
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        raise ValueError(f"time column {col.name!r} must be numeric or datetime, got {col.dtype}")
    # a plain NumPy dtype also for pandas' nullable Int64 / Float64 (object arrays on older pandas)
    return col.to_numpy(dtype=np.int64 if pd.api.types.is_integer_dtype(col) else np.float64)


def from_dataframe(df, user_col: str | None = None, item_col: str | None = None,
                   rating_col: str | None = None, time_col: str | None | bool = None,
                   threshold: float | None = None, k_core: int | None = None,
                   split: str | None = None, valid_frac: float = VALID_FRAC, test_frac: float = TEST_FRAC,
                   seed: int = 0, name: str = "data", report=print) -> InteractionData:
    """Build InteractionData from a pandas DataFrame of interactions, one row each.

    Columns left as None are found by their usual names (:data:`COLUMN_NAMES`); ``time_col=False``
    ignores times. One line, passed to ``report`` (default ``print``; None: silent), says what
    was chosen (columns, split) and how many repeated (user, item) rows were merged, when
    there is anything to say. ``split=None`` splits per user by time when
    there is a time column, else at random, holding out ``valid_frac`` / ``test_frac`` of the
    interactions (default 20 % / 10 %; both 0: no split, every interaction in train). Steps:
    keep rows with rating >= ``threshold``; merge repeated (user, item) pairs (the earliest
    row stays: :func:`merge_duplicates`); iterative ``k_core``; map raw ids to 0-based contiguous ids (sorted raw order,
    kept as ``user_map`` / ``item_map``); split.
    Without a time column the row order is taken as the time order of ``sequences``.
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"from_dataframe needs a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0:
        raise ValueError("the DataFrame is empty: no interactions to load")
    cols, split, said, hint = _choose(df.columns, user_col, item_col, rating_col, time_col, threshold, split,
                                      no_split=valid_frac == 0 and test_frac == 0)
    user_col, item_col, rating_col, time_col = cols["user"], cols["item"], cols["rating"], cols["time"]
    needed = [user_col, item_col] + [rating_col] * (threshold is not None) + [time_col] * (time_col is not None)
    for col in needed:
        if df[col].isna().any():
            raise ValueError(f"column {col!r} contains {int(df[col].isna().sum())} NaN values; "
                             "drop or fill them first")
    df = df[needed]
    if threshold is not None:
        df = df[df[rating_col] >= threshold]
    df, merged = merge_duplicates(df, user_col, item_col, time_col)
    line = [x for x in (said, duplicates_note(merged, time_col is not None) if merged else None, hint) if x]
    if report is not None and (said or merged):
        report("; ".join(line))
    if k_core is not None:
        if k_core < 1:
            raise ValueError(f"k_core must be a positive integer, got {k_core}")
        df = k_core_filter(df, k_core, user_col, item_col)
    if len(df) == 0:
        raise ValueError(f"no interactions left after threshold={threshold} and k_core={k_core}")

    users, raw_users = pd.factorize(df[user_col], sort=True)
    items, raw_items = pd.factorize(df[item_col], sort=True)
    times = None if time_col is None else _time_values(df[time_col])
    labels = split_interactions(users, times, split, valid_frac, test_frac, seed)
    shape = (len(raw_users), len(raw_items))
    matrices = {s: pairs_to_csr(users[labels == k], items[labels == k], shape)
                for k, s in enumerate(("train", "valid", "test"))}
    train = labels == 0
    return InteractionData(
        **matrices, name=name, sequences=group_by_user(users[train], items[train], shape[0]),
        timestamps=None if times is None else group_by_user(users[train], times[train], shape[0]),
        user_map={raw: k for k, raw in enumerate(raw_users.tolist())},
        item_map={raw: k for k, raw in enumerate(raw_items.tolist())})
