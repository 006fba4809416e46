"""``--data PATH`` -> InteractionData: which format it is, reading it, splitting it, checking it.

Formats (detected from the path, or named with ``--format``):

    diffrec-npy    a folder with DiffRec's train_list.npy / valid_list.npy / test_list.npy (split)
    diffurec-pkl   DiffuRec's dataset.pkl, or a folder holding it (split, leave-one-out)
    csv            a delimited file with a header: user, item[, timestamp][, rating] columns
                   under their usual names (data.COLUMN_NAMES) or named with --user-col ...;
                   .tsv files and --sep change the separator
    recbole        a RecBole atomic .inter file (tab separated, ``name:type`` headers)
    movielens      a MovieLens folder: ratings.dat (``user::item::rating::time``) or ratings.csv

Logs with no split get one of the papers' rules (``--split``, seeded): ``time`` (per user by
time, 70 / 20 / 10 % train / valid / test as DiffRec's ML-1M: ``data.VALID_FRAC`` /
``data.TEST_FRAC``, the defaults of ``datasets.load_csv`` too), ``random`` (the same shares at
random) or ``leave-one-out`` (DiffuRec's: per user, last = test, second last = valid).
Default: leave-one-out for the sequential models, else time when there is a time column, else
random. Without a time column the row order is the time order. Logs are read and checked by
``datasets.read_table`` / ``datasets.typed_columns``, as ``datasets.load_csv`` reads them;
repeated (user, item) rows are merged (each pair's earliest stays) and counted on the line
:func:`load` returns. :func:`load_everything` reads the same data with every interaction in
train (``--refit``).

Every problem is a :class:`BadInput` with a one-line message naming the file.
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np

from ..data import TEST_FRAC, VALID_FRAC

FORMATS = ("diffrec-npy", "diffurec-pkl", "csv", "recbole", "movielens")
SPLITS = {"time": "temporal", "random": "random", "leave-one-out": "loo"}     # ours -> data.SPLITS


class BadInput(Exception):
    """A problem with the user's input, in one line (``diffrec-tutorial`` prints it and exits 2)."""


def detect(path: Path, fmt: str | None = None) -> tuple[str, Path]:
    """(format, the file or folder to read) for ``--data path``."""
    if not path.exists():
        raise BadInput(f"--data {path}: no such file or folder")
    if fmt is not None:
        return fmt, path
    if path.is_dir():
        for name, found in (("diffrec-npy", "train_list.npy"), ("diffurec-pkl", "dataset.pkl"),
                            ("movielens", "ratings.dat"), ("movielens", "ratings.csv")):
            if (path / found).exists():
                return name, path / found if name == "diffurec-pkl" else path
        inter = sorted(path.glob("*.inter"))
        if len(inter) == 1:
            return "recbole", inter[0]
        raise BadInput(f"--data {path}: a folder with none of train_list.npy (DiffRec), dataset.pkl "
                       "(DiffuRec), ratings.dat / ratings.csv (MovieLens) or one .inter file (RecBole)")
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        return "diffurec-pkl", path
    if suffix == ".inter":
        return "recbole", path
    if suffix == ".npy":
        return "diffrec-npy", path.parent
    if path.name == "ratings.dat":
        return "movielens", path.parent
    return "csv", path


# ---- the papers' released splits

def _npy_intact(path: Path) -> None:
    """A .npy file whose data is shorter than its header says is truncated: say so."""
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
        except ValueError as err:
            raise BadInput(f"{path}: not a readable .npy file ({err}); truncated or corrupt?") from None
        need, have = int(np.prod(shape)) * dtype.itemsize, path.stat().st_size - f.tell()
    if have < need:
        raise BadInput(f"{path} is truncated: its header announces {need:,} bytes of data, the file "
                       f"holds {have:,}; download or copy it again")


def _read_split(fmt: str, path: Path):
    from ..datasets import load_diffrec_npy, load_diffurec_pkl

    if fmt == "diffrec-npy":
        for split in ("train", "valid", "test"):
            if (path / f"{split}_list.npy").exists():
                _npy_intact(path / f"{split}_list.npy")
        return load_diffrec_npy(path)
    try:
        return load_diffurec_pkl(path)
    except (EOFError, pickle.UnpicklingError) as err:
        raise BadInput(f"{path} cannot be unpickled ({err}): truncated or corrupt? download it again") from None


# ---- logs of interactions (read and checked by datasets.read_table / typed_columns, as load_csv)

def _read_table(path: Path, sep: str, fmt: str):
    """Every column as text; an empty or malformed file is a BadInput."""
    from ..datasets import read_table

    try:
        df = read_table(path, sep, ratings_dat=fmt == "movielens" and path.name == "ratings.dat")
    except ValueError as err:
        raise BadInput(str(err)) from None
    if fmt == "recbole":
        df.columns = [str(c).split(":")[0] for c in df.columns]
    return df


def _read_log(path: Path, fmt: str, opts, family: str, everything: bool = False):
    """(InteractionData, what was chosen) from a CSV / RecBole / MovieLens log; ``everything``:
    no split, every interaction in train (the same ids: they are numbered before the split)."""
    from ..data import duplicates_note, find_columns, from_dataframe, merge_duplicates
    from ..datasets import typed_columns

    sep = opts.sep or ("\t" if fmt == "recbole" or path.suffix.lower() in (".tsv", ".tab") else ",")
    df = _read_table(path, sep, fmt)
    for role in ("user", "item", "time", "rating"):
        name = getattr(opts, f"{role}_col")
        if name is not None and name not in df.columns:
            raise BadInput(f"{path}: no column {name!r} (--{role}-col); its columns are "
                           f"{', '.join(map(str, df.columns))}")
    try:
        cols = find_columns(df.columns, opts.user_col, opts.item_col, opts.rating_col, opts.time_col,
                            need_rating=opts.min_rating is not None)
    except ValueError as err:
        message = re.sub(r"(\w+)_col=\.\.\.", r"--\1-col NAME", str(err))
        raise BadInput(f"{path}: " + re.sub(r"'(\w+)_col'", r"'--\1-col'", message)) from None
    try:
        df = typed_columns(df, cols, path)
    except ValueError as err:
        raise BadInput(str(err)) from None
    split = opts.split or ("leave-one-out" if family == "sequential" else "time" if cols["time"] else "random")
    time_col = cols["time"]
    if time_col is None and split != "random":
        df["_row"], time_col = np.arange(len(df)), "_row"         # row order = time order
    rule, shares = SPLITS[split], (VALID_FRAC, TEST_FRAC)
    if everything:
        rule, shares = ("temporal" if time_col else "random"), (0.0, 0.0)
    if opts.min_rating is not None:
        df = df[df[cols["rating"]] >= opts.min_rating]
        if len(df) == 0:
            raise BadInput(f"{path}: no rating in column {cols['rating']!r} reaches --min-rating {opts.min_rating:g}")
    df, merged = merge_duplicates(df, cols["user"], cols["item"], time_col)     # as from_dataframe would
    data = from_dataframe(df, cols["user"], cols["item"], cols["rating"], time_col or False,
                          threshold=opts.min_rating, split=rule, valid_frac=shares[0],
                          test_frac=shares[1], seed=opts.seed, name=path.stem, report=None)
    picked = ", ".join(f"{r} {c!r}" for r, c in cols.items() if c is not None)
    order = "" if cols["time"] or split == "random" else " (no time column: row order is time order)"
    note = f"; {duplicates_note(merged, cols['time'] is not None)}" if merged else ""
    return data, f"columns {picked}; split {split!r}{order}, seed {opts.seed}{note}"


def load(path: Path, opts, family: str):
    """(InteractionData, one line saying what was read) for ``--data``; BadInput on any problem."""
    fmt, target = detect(path, opts.format)
    try:
        if fmt in ("diffrec-npy", "diffurec-pkl"):
            data, how = _read_split(fmt, target), "split as released"
            if opts.split:
                how += f" (--split {opts.split} ignored: the file comes split)"
        else:
            if fmt == "movielens" and target.is_dir():
                target = target / ("ratings.dat" if (target / "ratings.dat").exists() else "ratings.csv")
            data, how = _read_log(target, fmt, opts, family)
    except BadInput:
        raise
    except (ValueError, OSError) as err:             # the library's own one-line checks
        message = str(err).strip().splitlines()[0]
        raise BadInput(message if str(target) in message else f"{target}: {message}") from None
    check(data, target)
    return data, f"data: {target} read as {fmt} ({data.n_users:,} users, {data.n_items:,} items); {how}"


def _all_in_train(data, sequences=None):
    """``data`` with valid and test moved into train; ``sequences`` (default: each user's train
    sequence, then their valid items, then their test items) and no timestamps."""
    import scipy.sparse as sp

    from ..data import InteractionData

    def row(matrix, u):
        return matrix.indices[matrix.indptr[u]:matrix.indptr[u + 1]].astype(np.int64)

    if sequences is None and data.sequences is not None:
        sequences = [np.concatenate([s, row(data.valid, u), row(data.test, u)])
                     for u, s in enumerate(data.sequences)]
    empty = sp.csr_matrix(data.train.shape, dtype=np.float32)
    return InteractionData(train=data.train + data.valid + data.test, valid=empty, test=empty,
                           sequences=sequences, name=data.name, user_map=data.user_map, item_map=data.item_map)


def load_everything(path: Path, opts, family: str, data):
    """``--data`` with every interaction in train, valid and test empty (what ``--refit`` trains
    on), with the ids of ``data`` (what :func:`load` read): logs read again with no split,
    released splits joined (a user's items in time order: train, then valid, then test)."""
    fmt, target = detect(path, opts.format)
    if fmt == "diffrec-npy":                       # the files' row order is each user's time order
        from ..data import group_by_user

        pairs = np.concatenate([np.load(target / f"{s}_list.npy") for s in ("train", "valid", "test")])
        full = _all_in_train(data, group_by_user(pairs[:, 0], pairs[:, 1], data.n_users))
    elif fmt == "diffurec-pkl":                    # one valid and one test item a user
        full = _all_in_train(data)
    else:
        if fmt == "movielens" and target.is_dir():
            target = target / ("ratings.dat" if (target / "ratings.dat").exists() else "ratings.csv")
        full, _ = _read_log(target, fmt, opts, family, everything=True)
    if (full.train.shape != data.train.shape or full.user_map != data.user_map or full.item_map != data.item_map
            or full.train.nnz != (data.train + data.valid + data.test).nnz):
        raise BadInput(f"{target} changed while it was read: its users, items or interactions differ")
    return full


def check(data, path) -> None:
    """Every user has a training interaction, and validation and test hold something."""
    empty = np.flatnonzero(np.diff(data.train.indptr) == 0)
    if len(empty):
        raw = int(empty[0]) if data.user_map is None else {v: k for k, v in data.user_map.items()}[empty[0]]
        raise BadInput(f"{path}: user {raw!r} has no training interactions ({len(empty):,} of the "
                       f"{data.n_users:,} users); "
                       "every user needs one (try --split time, which keeps the first in train)")
    for split in ("valid", "test"):
        if getattr(data, split).nnz == 0:
            raise BadInput(f"{path}: the split leaves the {split} set empty ({data.train.nnz:,} interactions "
                           f"of {data.n_users:,} users): give users more interactions, or another --split")
