"""Data sets by name and from files: the papers' released splits and CSV / RecBole / MovieLens
readers. Every reader returns an :class:`~tutorial_lib.data.InteractionData`.

    load_course_data(name)     the notebooks' DATASET: "synthetic" (offline, with its ground
                               truth), "ml-1m_clean" (DiffRec's split) or "amazon_beauty" (DiffuRec's)
    load_diffrec_npy(folder)   DiffRec's released {train,valid,test}_list.npy
    load_diffurec_pkl(path)    DiffuRec's dataset.pkl (restricted unpickler: no code runs)
    load_csv(path)             a delimited file with a header; load_recbole_inter(path), a RecBole
                               .inter file; load_movielens_1m(root), ratings.dat. All three go
                               through data.from_dataframe (usual column names, split by time)
    fetch(name)                checksum-verified download (from :mod:`tutorial_lib.download`)

Where the files are: the ``root`` argument, else $TUTORIAL_DATA_DIR, else ``data`` (relative
to the working directory). The real data sets are not redistributed (their licences forbid
it): a missing one raises FileNotFoundError naming the release to download it from.
"""
from __future__ import annotations

import pickle
from itertools import chain
from pathlib import Path

import numpy as np

from .data import TEST_FRAC, VALID_FRAC, InteractionData, from_dataframe, group_by_user, pairs_to_csr
from .download import DATA_DIR_VARIABLE, REGISTRY, ChecksumError, DataSource, data_root, fetch

__all__ = ["data_root", "load_course_data", "load_release", "COURSE_DATASETS", "RELEASES",
           "load_diffrec_npy", "load_diffurec_pkl", "load_csv", "load_recbole_inter",
           "load_movielens_1m", "read_table", "typed_columns", "fetch", "DataSource", "REGISTRY",
           "ChecksumError"]

COURSE_DATASETS = ("synthetic", "ml-1m_clean", "amazon_beauty")
ALIASES = {"ml-1m": "ml-1m_clean", "beauty": "amazon_beauty"}
# where each paper released its split (what to download by hand), and where it goes under root
RELEASES = {
    "ml-1m_clean": ("https://github.com/YiyanXu/DiffRec (datasets/ml-1m_clean.rar: unpack it)",
                    "ml-1m_clean/{train,valid,test}_list.npy"),
    "amazon_beauty": ("https://github.com/WHUIR/DiffuRec (datasets/data/amazon_beauty/dataset.pkl; "
                      "tutorial_lib.datasets.fetch('amazon_beauty') downloads and checks it)",
                      "amazon_beauty/dataset.pkl"),
}


def load_release(name: str, root=None) -> InteractionData:
    """A paper's released split by name ("ml-1m_clean" / "ml-1m", "amazon_beauty" / "beauty")
    from :func:`data_root`; a missing file raises FileNotFoundError in one line naming the release."""
    name = ALIASES.get(name, name)
    if name not in RELEASES:
        raise ValueError(f"unknown release {name!r}; choose one of {sorted(RELEASES)} (or an alias: {ALIASES})")
    root = data_root(root)
    path = root / ("ml-1m_clean" if name == "ml-1m_clean" else "amazon_beauty/dataset.pkl")
    if not path.exists():
        release, layout = RELEASES[name]
        raise FileNotFoundError(f"{name} not found at {path}. Download it from {release} and put it at "
                                f"{root}/{layout} (or set {DATA_DIR_VARIABLE}), or use DATASET='synthetic'")
    return load_diffrec_npy(path) if name == "ml-1m_clean" else load_diffurec_pkl(path)


def load_course_data(name: str = "synthetic", root=None, seed: int = 0):
    """The notebooks' ``DATASET`` -> ``(InteractionData, SyntheticTruth or None)``: "synthetic"
    is generated offline with its ground truth (``seed``); the others via :func:`load_release`."""
    if ALIASES.get(name, name) not in COURSE_DATASETS:
        raise ValueError(f"unknown DATASET {name!r}; choose one of {COURSE_DATASETS} (or an alias: {ALIASES})")
    if name == "synthetic":
        from .synthetic import make_synthetic

        return make_synthetic(seed=seed)
    return load_release(name, root), None


# ---- The papers' released splits

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

    Each file is an (n, 2) int array of rows [user, item] (0-based; within a user, rows in
    time order). n_users / n_items = largest id + 1 over all three files. ``sequences`` are
    the per-user training items in row order (= chronological); no timestamps.
    """
    folder = Path(folder)
    splits = {}
    for split in ("train", "valid", "test"):
        path = folder / f"{split}_list.npy"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: expected DiffRec's train_list.npy, valid_list.npy, "
                                    f"test_list.npy (released at {RELEASES['ml-1m_clean'][0]})")
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


def _lists_to_pairs(user_lists: dict, what: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(users (n,), items (n,), sorted user ids) from a {user: [item, ...]} dict, list order kept."""
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
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: expected DiffuRec's dataset.pkl (released at "
                                f"{RELEASES['amazon_beauty'][0]})")
    with open(path, "rb") as f:
        raw = _RestrictedUnpickler(f).load()
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


# ---- Logs of interactions in files (through data.from_dataframe)

INTEGER = r"-?(0|[1-9][0-9]*)"                                  # an id written as a plain integer
FRACTION = r"-?([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+(?=[eE]))([eE][-+]?[0-9]+)?"    # 3.5, 2.0, .5, 1e5


def read_table(path, sep: str = ",", ratings_dat: bool = False):
    """Every column of a delimited text file with a header row, as text (a DataFrame of str).

    ``ratings_dat``: MovieLens' ``user::item::rating::time`` lines, no header. An empty file,
    a header with no rows or a malformed file is a ValueError in one line naming the file
    (what :func:`load_csv` and ``diffrec-tutorial`` say)."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty")
    try:
        if ratings_dat:
            # '::' split with the fast C parser: every other field of a ':'-split line is empty
            df = pd.read_csv(path, sep=":", header=None, usecols=[0, 2, 4, 6], dtype=str,
                             names=["user", "_a", "item", "_b", "rating", "_c", "timestamp"])
        else:
            df = pd.read_csv(path, sep=sep, dtype=str, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path} is empty") from None
    except pd.errors.ParserError as err:
        raise ValueError(f"{path}: {str(err).strip().splitlines()[-1]} (a truncated or corrupt file?)") from None
    if len(df) == 0:
        raise ValueError(f"{path} has a header ({', '.join(map(str, df.columns))}) but no rows")
    return df


def typed_columns(df, cols: dict, path):
    """``df`` (text, from :func:`read_table`) with the columns of ``cols`` (role -> column name
    or None; roles user, item, rating, time) checked and typed: a missing value is a ValueError
    naming its line; user and item ids become integers when every one is written as a plain
    integer, else stay text ("007" and "7" stay two ids), and an id written as a fraction or
    with an exponent (3.5, 2.0, 1e5: ids a spreadsheet turned into floats) is a ValueError;
    ratings and times become numbers."""
    import pandas as pd

    df = df.copy()
    for role in ("user", "item", "rating", "time"):
        col = cols.get(role)
        if col is not None and df[col].isna().any():
            row = int(np.flatnonzero(df[col].isna().to_numpy())[0])
            raise ValueError(f"{path}: line {row + 2} has no {role} value (column {col!r}): "
                             "a truncated file, or a row with missing fields?")
    for role in ("user", "item"):
        col = cols[role]
        values = df[col].str.strip()
        if values.str.fullmatch(INTEGER).all():
            df[col] = values.astype(np.int64)
            continue
        bad = values.str.fullmatch(FRACTION)                      # "007" is a token, "2.0" a mistake
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"{path}: column {col!r} holds ids that are not integers ({values.iloc[row]!r} "
                             f"on line {row + 2}); ids must be integers or text tokens")
        df[col] = values
    for role in ("rating", "time"):
        col = cols.get(role)
        if col is not None:
            values = pd.to_numeric(df[col], errors="coerce")
            if values.isna().any():
                row = int(np.flatnonzero(values.isna().to_numpy())[0])
                raise ValueError(f"{path}: column {col!r} holds {df[col].iloc[row]!r} on line {row + 2}, "
                                 "not a number")
            df[col] = values
    return df


def load_csv(path, sep: str = ",", **kwargs) -> InteractionData:
    """Read a delimited text file with a header row and pass it to
    :func:`~tutorial_lib.data.from_dataframe` (keyword arguments go there: it finds the usual
    column names, e.g. user_id / item_id / timestamp, and splits per user by time when it can,
    70 / 20 / 10 % train / valid / test by default; ``valid_frac=0, test_frac=0``: no split).

    Read and checked as ``diffrec-tutorial`` reads a CSV (:func:`read_table`,
    :func:`typed_columns`): an empty or malformed file, a missing value or an id written as a
    fraction is a ValueError in one line naming the file and line. User and item ids are read
    as text: integers when all are written as plain integers, else strings (the keys of
    ``user_map`` / ``item_map``, numbered in string order: "10" before "9"), so no two raw ids
    merge ("007" and "7" stay two users).
    """
    from .data import find_columns

    path = Path(path)
    kwargs.setdefault("name", path.stem)
    df = read_table(path, sep)
    try:
        cols = find_columns(df.columns, kwargs.get("user_col"), kwargs.get("item_col"), kwargs.get("rating_col"),
                            kwargs.get("time_col"), need_rating=kwargs.get("threshold") is not None)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    if kwargs.get("threshold") is None:
        cols["rating"] = None                    # unused: from_dataframe leaves it out
    return from_dataframe(typed_columns(df, cols, path), **kwargs)


def load_recbole_inter(path, **kwargs) -> InteractionData:
    """Read a RecBole atomic ``.inter`` file (tab separated; headers ``name:type``) and pass it
    to :func:`~tutorial_lib.data.from_dataframe`, as :func:`load_csv` does.

    ``token`` columns stay strings (raw ids), ``float`` columns become numbers; the type
    suffix is dropped, so RecBole's user_id, item_id, rating, timestamp are found by name.
    """
    import pandas as pd

    path = Path(path)
    header = pd.read_csv(path, sep="\t", nrows=0).columns
    fields = [h.split(":")[0] for h in header]
    types = {f: (h.split(":")[1] if ":" in h else "token") for f, h in zip(fields, header)}
    df = pd.read_csv(path, sep="\t", header=0, names=fields,
                     dtype={f: (str if t.startswith("token") else float if t == "float" else object)
                            for f, t in types.items()})
    kwargs.setdefault("name", path.stem)
    return from_dataframe(df, **kwargs)


def load_movielens_1m(root=None, threshold: float | None = 4, k_core: int | None = None,
                      split: str = "temporal", valid_frac: float = VALID_FRAC, test_frac: float = TEST_FRAC,
                      seed: int = 0) -> InteractionData:
    """MovieLens-1M from ``root/ml-1m/ratings.dat`` (``user::movie::rating::time``).

    Defaults follow DiffRec's clean setting (ratings >= 4 are interactions; 7:2:1 split in
    time order), here split per user. Run ``fetch("ml-1m", root)`` first.
    """
    import pandas as pd

    root = data_root(root)
    path = root / "ml-1m" / "ratings.dat"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: call fetch('ml-1m', root={str(root)!r}) first, or unzip "
                                f"{REGISTRY['ml-1m'].url} into {root}")
    # '::' split with the fast C parser: every other field of a ':'-split line is empty.
    df = pd.read_csv(path, sep=":", header=None, usecols=[0, 2, 4, 6], engine="c",
                     names=["user", "_a", "item", "_b", "rating", "_c", "timestamp"])
    return from_dataframe(df, "user", "item", "rating", "timestamp", threshold=threshold, k_core=k_core,
                          split=split, valid_frac=valid_frac, test_frac=test_frac, seed=seed, name="ml-1m")
