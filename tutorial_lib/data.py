"""Data: implicit feedback as a users x items matrix, plus the order it arrived in.

Every model in the course reads one object, :class:`InteractionData`:

    train, valid, test   binary CSR matrices of shape (n_users, n_items); x_u = train[u] is the
                         user's interaction vector, the x_0 that DiffRec diffuses
    sequences[u]         the user's TRAIN items in time order (what DiffuRec reads)
    timestamps[u]        their times, when known (what T-DiffRec's weights use)

Ids are 0-based and contiguous inside the library; ``user_map`` / ``item_map`` keep the
raw -> internal maps when the data was remapped.

Where the data comes from
-------------------------
* ``load_diffrec_npy(folder)``      DiffRec's released ``{train,valid,test}_list.npy``
* ``load_diffurec_pkl(path)``       DiffuRec's ``dataset.pkl`` (restricted unpickler)
* ``from_dataframe(df, ...)``       any log of (user, item[, rating][, time]) rows, with
  ``load_csv``, ``load_recbole_inter`` and ``load_movielens_1m`` as thin readers on top:
  rating threshold  ->  iterative k-core  ->  contiguous ids  ->  split
* ``fetch(name)``                   checksum-verified download for users with internet
* ``synthetic.make_synthetic(...)`` the offline default, with its ground truth

Splits (``from_dataframe(split=...)``)
--------------------------------------
* ``"random"``    each interaction goes to test / valid / train with probabilities
  test_frac / valid_frac / rest (exact counts, seeded permutation)
* ``"temporal"``  per user, by time: the last round(test_frac * n_u) interactions are test,
  the round(valid_frac * n_u) before them are valid, the rest (at least one) train
* ``"loo"``       leave-one-out: per user, last = test, second last = valid (users with fewer
  than 3 interactions keep all of them in train)

The synthetic world with its ground truth lives in :mod:`tutorial_lib.synthetic`.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["InteractionData", "load_diffrec_npy", "load_diffurec_pkl",
           "from_dataframe", "split_interactions", "k_core_filter", "load_csv", "load_recbole_inter",
           "load_movielens_1m", "fetch", "DataSource", "REGISTRY", "ChecksumError",
           "SPLITS", "pairs_to_csr", "group_by_user", "split_sizes"]

SPLITS = ("random", "temporal", "loo")
# per-user lists given as a dict: iterating it would yield the user ids, not their items
DICT_PER_USER = ("{what} is a dict (e.g. DiffuRec's {{user: items}}); pass a list with one entry per "
                 "user in row order, e.g. [d[u] for u in range(n_users)] if its keys are the 0-based "
                 "user ids, or load DiffuRec's file with load_diffurec_pkl")


# ----------------------------------------------------------------------------------------
# The container
# ----------------------------------------------------------------------------------------

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
        self.train = _binary_csr(self.train, "train")
        self.valid = _binary_csr(self.valid, "valid")
        self.test = _binary_csr(self.test, "test")
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
        return {
            "name": self.name, "n_users": self.n_users, "n_items": self.n_items,
            "n_train": self.train.nnz, "n_valid": self.valid.nnz, "n_test": self.test.nnz,
            "density": nnz / (self.n_users * self.n_items),
            "train_per_user": self.train.nnz / self.n_users,
            "sequences": self.sequences is not None, "timestamps": self.timestamps is not None,
        }

    def __repr__(self) -> str:
        s = self.summary()
        extras = [k for k in ("sequences", "timestamps") if s[k]]
        return (f"InteractionData({self.name!r}: {s['n_users']:,} users x {s['n_items']:,} items; "
                f"train {s['n_train']:,} / valid {s['n_valid']:,} / test {s['n_test']:,}; "
                f"density {s['density']:.2%}" + (f"; {', '.join(extras)}" if extras else "") + ")")


def group_by_user(users: np.ndarray, values: np.ndarray, n_users: int) -> list[np.ndarray]:
    """Split ``values`` into one array per user, keeping their order within each user."""
    users = np.asarray(users)
    if users.size and (users.min() < 0 or users.max() >= n_users):
        raise ValueError(f"user ids must lie in [0, {n_users}), got {users.min()}..{users.max()}")
    order = np.argsort(users, kind="stable")
    counts = np.bincount(users, minlength=n_users)
    return np.split(values[order], np.cumsum(counts)[:-1])


# ----------------------------------------------------------------------------------------
# Released splits of the papers
# ----------------------------------------------------------------------------------------

def _check_pairs(pairs: np.ndarray, what: str) -> np.ndarray:
    """Validate an (n, 2) integer array of [user, item] rows."""
    if pairs.ndim != 2 or pairs.shape[1] != 2:
        raise ValueError(f"{what} must be an (n, 2) array of [user, item] rows, got shape {pairs.shape}")
    if not np.issubdtype(pairs.dtype, np.integer):
        if np.issubdtype(pairs.dtype, np.floating) and np.isnan(pairs).any():
            raise ValueError(f"{what} contains NaN ids")
        raise ValueError(f"{what} must hold integer ids, got dtype {pairs.dtype}")
    if len(pairs) and pairs.min() < 0:
        raise ValueError(f"{what} contains negative ids (min {pairs.min()}); ids must be 0-based")
    return pairs.astype(np.int64, copy=False)


def load_diffrec_npy(folder, name: str | None = None) -> InteractionData:
    """Load DiffRec's ``train_list.npy`` / ``valid_list.npy`` / ``test_list.npy``.

    Each file is an int array of rows [user, item] (0-based; within a user, rows in time
    order). n_users / n_items = largest id + 1 over all three files. ``sequences`` are the
    per-user training items in row order (= chronological); no timestamps.
    """
    folder = Path(folder)
    splits = {}
    for split in ("train", "valid", "test"):
        path = folder / f"{split}_list.npy"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: expected DiffRec's train_list.npy, valid_list.npy, test_list.npy")
        splits[split] = _check_pairs(np.load(path, allow_pickle=False), path.name)
    if len(splits["train"]) == 0:
        raise ValueError(f"{folder / 'train_list.npy'} is empty")
    shape = tuple(int(max(p[:, j].max() for p in splits.values() if len(p))) + 1 for j in (0, 1))
    matrices = {s: pairs_to_csr(p[:, 0], p[:, 1], shape) for s, p in splits.items()}
    train = splits["train"]
    return InteractionData(**matrices, sequences=group_by_user(train[:, 0], train[:, 1], shape[0]),
                           name=name or folder.name)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles containers, strings and numbers only: any global (class, function) is refused.

    A pickle can call any importable function while loading (``os.system`` included);
    dicts, lists, str, int, float, bool and None need no ``find_class``, so refusing every
    global loses nothing for DiffuRec's dataset.pkl.
    """

    def find_class(self, module, name):
        raise pickle.UnpicklingError(
            f"refusing to load global {module}.{name}: this pickle may only hold dicts, lists, "
            f"strings and numbers (a data file that imports code is unsafe)")


def _restricted_load(path: Path):
    with open(path, "rb") as f:
        return _RestrictedUnpickler(f).load()


def _lists_to_pairs(user_lists: dict, what: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(users, items, users_sorted) from a {user: [item, ...]} dict, items kept in list order."""
    if not isinstance(user_lists, dict):
        raise ValueError(f"{what} must be a dict user -> item list, got {type(user_lists).__name__}")
    if not all(isinstance(u, (int, np.integer)) and u >= 0 for u in user_lists):
        raise ValueError(f"{what}: user ids must be non-negative integers")
    users = sorted(user_lists)
    if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool)
               for u in users for i in user_lists[u]):
        raise ValueError(f"{what}: item ids must be integers")
    lengths = np.fromiter((len(user_lists[u]) for u in users), dtype=np.int64, count=len(users))
    items = np.fromiter(chain.from_iterable(user_lists[u] for u in users), dtype=np.int64, count=int(lengths.sum()))
    return np.repeat(np.asarray(users, dtype=np.int64), lengths), items, users


def load_diffurec_pkl(path, name: str | None = None) -> InteractionData:
    """Load DiffuRec's ``dataset.pkl``: dict(train, val, test: user -> item list; umap, smap).

    Items are 1-based there (0 pads); here they shift to 0-based, so item_map = smap - 1.
    n_items = the largest item id over smap and all lists. valid / test hold the one-item
    lists (leave-one-out), ``sequences`` the chronological train lists. Loaded with a
    restricted unpickler that refuses any import.
    """
    path = Path(path)
    raw = _restricted_load(path)
    if not isinstance(raw, dict) or not {"train", "val", "test"} <= set(raw):
        raise ValueError(f"{path} must hold a dict with keys 'train', 'val', 'test' (DiffuRec format)")
    pairs = {s: _lists_to_pairs(raw[k], f"{path.name}[{k!r}]") for s, k in
             (("train", "train"), ("valid", "val"), ("test", "test"))}
    users = sorted(set(pairs["train"][2]) | set(pairs["valid"][2]) | set(pairs["test"][2]))
    smap = raw.get("smap") or {}
    if not isinstance(smap, dict) or not all(isinstance(i, (int, np.integer)) and i >= 1 for i in smap.values()):
        raise ValueError(f"{path}: 'smap' must be a dict raw item -> 1-based item id")
    all_items = np.concatenate([p[1] for p in pairs.values()])
    if len(all_items) and all_items.min() < 1:
        raise ValueError(f"{path}: item ids must be >= 1 (0 is DiffuRec's padding id), found {all_items.min()}")
    n_items = int(max(all_items.max(initial=0), max(smap.values(), default=0)))
    user_index = {u: k for k, u in enumerate(users)}
    identity = users == list(range(len(users)))
    shape = (len(users), n_items)

    def to_rows(u):
        return u if identity else np.fromiter((user_index[x] for x in u), np.int64, len(u))

    matrices = {s: pairs_to_csr(to_rows(p[0]), p[1] - 1, shape) for s, p in pairs.items()}
    train_users, train_items, _ = pairs["train"]
    umap = raw.get("umap")
    # users of umap that appear in no split (filtered out upstream) are left out, not the whole map
    if isinstance(umap, dict):
        user_map = {r: user_index[u] for r, u in umap.items() if u in user_index} or None
    else:                     # no umap: the pickle's own user ids are the raw ids
        user_map = None if identity else user_index
    return InteractionData(**matrices, sequences=group_by_user(to_rows(train_users), train_items - 1, shape[0]),
                           name=name or path.parent.name, user_map=user_map,
                           item_map={r: i - 1 for r, i in smap.items()} or None)


# ----------------------------------------------------------------------------------------
# From a log of interactions: threshold -> k-core -> ids -> split
# ----------------------------------------------------------------------------------------

def k_core_filter(df: pd.DataFrame, k: int, user_col: str = "userID", item_col: str = "itemID") -> pd.DataFrame:
    """Iteratively drop users and items with fewer than ``k`` interactions until none are left."""
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
                       valid_frac: float = 0.1, test_frac: float = 0.2, seed: int = 0) -> np.ndarray:
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


def _check_columns(df: pd.DataFrame, needed: dict[str, str]) -> None:
    """``needed``: column -> why it is needed. Raise on a missing column or NaNs in one."""
    missing = {c: why for c, why in needed.items() if c not in df.columns}
    if missing:
        raise ValueError(f"missing columns {missing} (columns present: {list(df.columns)})")
    for col in needed:
        n_nan = int(df[col].isna().sum())
        if n_nan:
            raise ValueError(f"column {col!r} contains {n_nan} NaN values; drop or fill them first")


def _time_values(col: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(col):
        return col.to_numpy().astype("datetime64[s]").astype(np.int64)
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        raise ValueError(f"time column {col.name!r} must be numeric or datetime, got {col.dtype}")
    # a plain NumPy dtype also for pandas' nullable Int64 / Float64 (object arrays on older pandas)
    return col.to_numpy(dtype=np.int64 if pd.api.types.is_integer_dtype(col) else np.float64)


def from_dataframe(df: pd.DataFrame, user_col: str = "userID", item_col: str = "itemID",
                   rating_col: str = "rating", time_col: str | None = "timestamp",
                   threshold: float | None = None, k_core: int | None = None,
                   split: str = "random", valid_frac: float = 0.1, test_frac: float = 0.2,
                   seed: int = 0, name: str = "data") -> InteractionData:
    """Build InteractionData from a DataFrame of interactions, one row each.

    Steps: keep rows with rating >= ``threshold``; drop repeated (user, item) pairs (the
    earliest stays); iterative ``k_core``; map raw ids to 0-based contiguous ids (sorted raw
    order, kept as ``user_map`` / ``item_map``); ``split`` into train / valid / test.
    ``time_col`` is optional for split="random" (rows are then taken as time-ordered) and
    required for "temporal" and "loo". Only the default name, "timestamp", may be absent
    (with split="random"); any other name you pass must be a column.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"from_dataframe needs a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0:
        raise ValueError("the DataFrame is empty: no interactions to load")
    needed = {user_col: "user ids", item_col: "item ids"}
    if threshold is not None:
        needed[rating_col] = f"threshold={threshold}"
    if split in ("temporal", "loo") and time_col is None:
        raise ValueError(f"split={split!r} orders interactions by time: pass time_col")
    if split in ("temporal", "loo") or (time_col is not None and time_col in df.columns):
        needed[time_col] = f"split={split!r}"
    elif time_col not in (None, "timestamp"):     # a name you chose: a typo must not pass silently
        needed[time_col] = "time_col (pass time_col=None for no time column)"
    _check_columns(df, needed)
    has_time = time_col in needed

    df = df[list(needed)]
    if threshold is not None:
        df = df[df[rating_col] >= threshold]
    if has_time:
        df = df.sort_values(time_col, kind="stable")
    df = df.drop_duplicates([user_col, item_col], keep="first")
    if k_core is not None:
        if k_core < 1:
            raise ValueError(f"k_core must be a positive integer, got {k_core}")
        df = k_core_filter(df, k_core, user_col, item_col)
    if len(df) == 0:
        raise ValueError(f"no interactions left after threshold={threshold} and k_core={k_core}")

    users, user_ids = pd.factorize(df[user_col], sort=True)
    items, item_ids = pd.factorize(df[item_col], sort=True)
    times = _time_values(df[time_col]) if has_time else None
    labels = split_interactions(users, times, split, valid_frac, test_frac, seed)
    shape = (len(user_ids), len(item_ids))
    matrices = {s: pairs_to_csr(users[labels == k], items[labels == k], shape)
                for k, s in enumerate(("train", "valid", "test"))}
    is_train = labels == 0
    return InteractionData(
        **matrices, name=name,
        sequences=group_by_user(users[is_train], items[is_train], shape[0]),
        timestamps=group_by_user(users[is_train], times[is_train], shape[0]) if has_time else None,
        user_map={raw: k for k, raw in enumerate(user_ids.tolist())},
        item_map={raw: k for k, raw in enumerate(item_ids.tolist())})


def _integer_ids(col: pd.Series) -> pd.Series:
    """Raw ids read as text, as integers when every one is written as a plain integer
    ("42", not "042" or "4.2"), so that "007" and "7" stay two ids."""
    if col.str.fullmatch(r"-?(0|[1-9][0-9]*)").all():
        return col.astype(np.int64)
    return col


def load_csv(path, sep: str = ",", **kwargs) -> InteractionData:
    """Read a delimited text file with a header row and pass it to :func:`from_dataframe`.

    User and item ids are read as text: integers when all are written as plain integers,
    else strings (the keys of ``user_map`` / ``item_map``, numbered in string order: "10"
    before "9"), so no two raw ids merge ("007" and "7" stay two users).
    """
    path = Path(path)
    kwargs.setdefault("name", path.stem)
    id_cols = [kwargs.get("user_col", "userID"), kwargs.get("item_col", "itemID")]
    df = pd.read_csv(path, sep=sep, dtype={c: str for c in id_cols})
    for c in id_cols:
        if c in df.columns and not df[c].isna().any():
            df[c] = _integer_ids(df[c])
    return from_dataframe(df, **kwargs)


def load_recbole_inter(path, **kwargs) -> InteractionData:
    """Read a RecBole atomic ``.inter`` file (tab separated; headers ``name:type``).

    ``token`` columns stay strings (raw ids), ``float`` columns become numbers; the type
    suffix is dropped, so the default columns are user_id, item_id, rating, timestamp.
    """
    path = Path(path)
    header = pd.read_csv(path, sep="\t", nrows=0).columns
    fields = [h.split(":")[0] for h in header]
    types = {f: (h.split(":")[1] if ":" in h else "token") for f, h in zip(fields, header)}
    df = pd.read_csv(path, sep="\t", header=0, names=fields,
                     dtype={f: (str if t.startswith("token") else float if t == "float" else object)
                            for f, t in types.items()})
    for key, default in (("user_col", "user_id"), ("item_col", "item_id"),
                         ("rating_col", "rating"), ("time_col", "timestamp"), ("name", path.stem)):
        kwargs.setdefault(key, default)
    return from_dataframe(df, **kwargs)


# ----------------------------------------------------------------------------------------
# Downloads (for users with internet; nothing is downloaded at import)
# ----------------------------------------------------------------------------------------

class DataSource(NamedTuple):
    url: str
    sha256: str
    filename: str        # a .zip is kept in root and extracted; any other file goes into folder
    folder: str          # what fetch returns, under root: the archive's folder, or the file's
    size: int | None = None


REGISTRY: dict[str, DataSource] = {
    # SHA-256 and size as recorded by tensorflow/datasets (url_checksums/movielens.txt);
    # GroupLens publishes the MD5 c4d9eecfca2ab87c1945afe126590906 for the same file.
    "ml-1m": DataSource("https://files.grouplens.org/datasets/movielens/ml-1m.zip",
                        "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
                        "ml-1m.zip", "ml-1m", 5_917_549),
    "ml-100k": DataSource("https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                          "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
                          "ml-100k.zip", "ml-100k", 4_924_029),
    # DiffuRec's released Beauty split (Li et al.), read by load_diffurec_pkl. The release
    # publishes no checksum: this SHA-256 is that of the copy our benchmarks were measured on
    # (../shared/datasets/amazon_beauty/dataset.pkl), so a changed release is refused, not mixed in.
    "amazon_beauty": DataSource("https://raw.githubusercontent.com/WHUIR/DiffuRec/HEAD/datasets/data/"
                                "amazon_beauty/dataset.pkl",
                                "1d5ba224ff02584bcde37d3dd9fd3191d440829e7fcb7fe42dcfd313dd2144cb",
                                "dataset.pkl", "amazon_beauty", 1_217_889),
}


class ChecksumError(RuntimeError):
    """A downloaded or cached file does not have the SHA-256 the registry records."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(source: DataSource, target: Path) -> None:
    """Stream ``source.url`` to a temporary file beside ``target``, verify, then rename."""
    from tqdm.auto import tqdm

    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(source.url, timeout=60) as response:
            total = getattr(response, "headers", {}).get("Content-Length")
            with tqdm(total=int(total) if total else source.size, unit="B", unit_scale=True,
                      desc=target.name) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    bar.update(len(block))
        got = _sha256(tmp)
        if got != source.sha256:
            raise ChecksumError(f"SHA-256 of the download from {source.url} is {got}, expected "
                                f"{source.sha256}; the file was deleted. Try again, or download it by hand.")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def fetch(name: str, root="data", force: bool = False) -> Path:
    """Download dataset ``name`` (a key of REGISTRY) into ``root``, verify it, extract it.

    Returns its folder, e.g. ``data/ml-1m`` (extracted from ``data/ml-1m.zip``) or
    ``data/amazon_beauty`` (holding ``dataset.pkl``). A cached download with the right
    SHA-256 is reused unless ``force``. Offline, raises ConnectionError saying what to
    download by hand and where to put it.
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(REGISTRY)}")
    source = REGISTRY[name]
    root = Path(root)
    folder = root / source.folder
    is_zip = source.filename.endswith(".zip")
    archive = root / source.filename if is_zip else folder / source.filename
    new_folder = not archive.parent.exists()
    archive.parent.mkdir(parents=True, exist_ok=True)
    if force or not archive.exists():
        try:
            _download(source, archive)
        except BaseException as err:
            if new_folder and not any(archive.parent.iterdir()):
                archive.parent.rmdir()                  # a failed download leaves nothing behind
            if isinstance(err, (OSError, ValueError)):  # URLError, timeouts, refused connections, bad URL
                raise ConnectionError(
                    f"could not download {source.url} ({err}). Without internet, download it by hand and "
                    f"save it as {archive.resolve()} (SHA-256 {source.sha256}), then call fetch({name!r}) again."
                ) from err
            raise
    elif _sha256(archive) != source.sha256:
        raise ChecksumError(f"{archive} does not have the expected SHA-256 {source.sha256}; delete it "
                            f"or call fetch({name!r}, force=True) to download it again")
    if is_zip and (force or not folder.exists()):
        _extract(archive, source.folder, folder)
    return folder


def _extract(archive: Path, inner: str, folder: Path) -> None:
    """Unzip into a temporary folder beside ``folder``, then rename: an interrupted extraction
    leaves no half-filled ``folder`` that a later call would take for a finished one."""
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        with zipfile.ZipFile(archive) as z:
            z.extractall(tmp)
        if not (tmp / inner).is_dir():
            raise ValueError(f"{archive} does not contain the folder {inner!r} that REGISTRY names")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp / inner, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_movielens_1m(root="data", threshold: float | None = 4, k_core: int | None = None,
                      split: str = "temporal", valid_frac: float = 0.2, test_frac: float = 0.1,
                      seed: int = 0) -> InteractionData:
    """MovieLens-1M from ``root/ml-1m/ratings.dat`` (``user::movie::rating::time``).

    Defaults follow DiffRec's clean setting (ratings >= 4 are interactions; 7:2:1 split in
    time order), here split per user. Run ``fetch("ml-1m", root)`` first.
    """
    path = Path(root) / "ml-1m" / "ratings.dat"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: call fetch('ml-1m', root={str(root)!r}) first, or unzip "
                                f"{REGISTRY['ml-1m'].url} into {root}")
    # '::' split with the fast C parser: every other field of a ':'-split line is empty.
    df = pd.read_csv(path, sep=":", header=None, usecols=[0, 2, 4, 6], engine="c",
                     names=["userID", "_a", "itemID", "_b", "rating", "_c", "timestamp"])
    return from_dataframe(df, threshold=threshold, k_core=k_core, split=split, valid_frac=valid_frac,
                          test_frac=test_frac, seed=seed, name="ml-1m")
