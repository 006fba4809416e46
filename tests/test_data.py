"""tutorial_lib.data: the container, user-id checks, splits by hand, from_dataframe and its columns."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from tutorial_lib import data as D


# ---------------------------------------------------------------- the container

def test_interaction_data_validation():
    a = sp.csr_matrix(np.eye(3))
    with pytest.raises(ValueError, match="same shape"):
        D.InteractionData(a, sp.csr_matrix((3, 4)), a)
    with pytest.raises(ValueError, match="train is empty"):
        D.InteractionData(sp.csr_matrix((3, 3)), a, a)
    with pytest.raises(ValueError, match="one entry per user"):
        D.InteractionData(a, a, a, sequences=[[0], [1]])
    # a {user: items} dict has one key per user; iterating it gave the user ids as the items
    with pytest.raises(ValueError, match="sequences is a dict"):
        D.InteractionData(a, a, a, sequences={0: [2, 1], 1: [0], 2: [1]})
    with pytest.raises(ValueError, match="timestamps is a dict"):
        D.InteractionData(a, a, a, sequences=[[0], [1], [2]], timestamps={0: [5], 1: [6], 2: [7]})
    with pytest.raises(ValueError, match=r"outside \[0, 3\)"):
        D.InteractionData(a, a, a, sequences=[[0], [1], [3]])
    with pytest.raises(ValueError, match="differ in length"):
        D.InteractionData(a, a, a, sequences=[[0], [1], [2]], timestamps=[[0], [1], [2, 3]])
    with pytest.raises(ValueError, match="timestamps must be numbers or datetime64"):
        D.InteractionData(a, a, a, sequences=[[0], [1], [2]], timestamps=[["2020-01-01"], ["x"], ["y"]])
    with pytest.raises(ValueError, match="valid contains NaN"):
        D.InteractionData(a, sp.csr_matrix(np.array([[np.nan, 0, 0]] * 3)), a)
    d = D.InteractionData(sp.csr_matrix(np.array([[2.0, 0], [0, 5]])), a[:2, :2], a[:2, :2])
    assert d.train.dtype == np.float32 and d.train.data.tolist() == [1.0, 1.0]


def test_dataframe_bad_input():
    df = pd.DataFrame({"userID": [0, 1], "itemID": [0, 1], "rating": [5.0, np.nan], "timestamp": [1, 2]})
    with pytest.raises(ValueError, match="empty"):
        D.from_dataframe(df.iloc[:0])
    with pytest.raises(ValueError, match="missing columns.*'user'"):
        D.from_dataframe(df, user_col="user")
    with pytest.raises(ValueError, match="'rating' contains 1 NaN"):
        D.from_dataframe(df, threshold=4)
    with pytest.raises(ValueError, match="unknown split 'weekly'"):
        D.from_dataframe(df, split="weekly")
    with pytest.raises(ValueError, match="missing columns.*'time'"):
        D.from_dataframe(df, split="loo", time_col="time")
    with pytest.raises(ValueError, match="valid_frac and test_frac"):
        D.from_dataframe(df, valid_frac=0.6, test_frac=0.5)
    with pytest.raises(ValueError, match="no interactions left"):
        D.from_dataframe(df.fillna(1.0), threshold=10)
    with pytest.raises(ValueError, match="time column 'timestamp' must be numeric or datetime, got bool"):
        D.from_dataframe(df.assign(timestamp=[True, False]))


def test_dataframe_nullable_times_become_plain_numpy():
    # pandas' nullable Int64 (convert_dtypes, dtype_backend=...) must not reach the library as objects
    df = pd.DataFrame({"userID": [0, 0, 0, 1, 1, 1], "itemID": [0, 1, 2, 0, 1, 2],
                       "timestamp": pd.array([3, 1, 2, 5, 4, 6], dtype="Int64")})
    d = D.from_dataframe(df, split="loo")
    assert d.timestamps[0].dtype == np.int64 and d.timestamps[0].tolist() == [1]
    assert d.sequences[0].tolist() == [1]                      # item 1 at t=1; 2 (t=2) valid, 0 (t=3) test


# ---------------------------------------------------------------- splits by hand

@pytest.fixture
def log():
    """Users a (5 clicks), b (3), c (2); rows shuffled, times out of row order."""
    rows = [("a", "i3", 3), ("b", "i1", 30), ("a", "i1", 1), ("c", "i2", 200), ("a", "i5", 5),
            ("b", "i2", 10), ("a", "i2", 2), ("c", "i4", 100), ("a", "i4", 4), ("b", "i5", 20)]
    return pd.DataFrame(rows, columns=["userID", "itemID", "timestamp"])


def _pairs(m):
    u, i = m.nonzero()
    return set(zip(u.tolist(), i.tolist()))


def test_temporal_split_by_hand(log):
    d = D.from_dataframe(log, split="temporal", valid_frac=0.2, test_frac=0.2)
    assert d.user_map == {"a": 0, "b": 1, "c": 2}
    assert d.item_map == {"i1": 0, "i2": 1, "i3": 2, "i4": 3, "i5": 4}
    # a: round(1.0) = 1 test, 1 valid; b: round(0.6) = 1, round(0.6) = 1; c: round(0.4) = 0, 0
    assert _pairs(d.test) == {(0, 4), (1, 0)}
    assert _pairs(d.valid) == {(0, 3), (1, 4)}
    assert _pairs(d.train) == {(0, 0), (0, 1), (0, 2), (1, 1), (2, 3), (2, 1)}
    assert [s.tolist() for s in d.sequences] == [[0, 1, 2], [1], [3, 1]]
    assert [t.tolist() for t in d.timestamps] == [[1, 2, 3], [10], [100, 200]]


def test_split_sizes_round_exact_halves_up():
    # 0.7 * 45 is 31.499999999999996 in floating point: the documented rule says 31.5 -> 32
    assert D.split_sizes(np.array([45, 5, 4]), 0.7).tolist() == [32, 4, 3]
    assert D.split_sizes(np.array([5, 15]), 0.1).tolist() == [1, 2]


def test_loo_split_by_hand(log):
    d = D.from_dataframe(log, split="loo")
    assert _pairs(d.test) == {(0, 4), (1, 0)}
    assert _pairs(d.valid) == {(0, 3), (1, 4)}
    assert _pairs(d.train) == {(0, 0), (0, 1), (0, 2), (1, 1), (2, 3), (2, 1)}   # c: < 3 clicks
    d2 = D.from_dataframe(log.assign(timestamp=-log.timestamp), split="loo")       # reversed time
    assert _pairs(d2.test) == {(0, 0), (1, 1)}


def test_random_split_is_a_seeded_partition():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"userID": rng.integers(0, 30, 400), "itemID": rng.integers(0, 50, 400)})
    df = df.drop_duplicates()
    d = D.from_dataframe(df, split="random", valid_frac=0.1, test_frac=0.2, seed=3)
    n = len(df)
    assert (d.valid.nnz, d.test.nnz) == (int(np.floor(0.1 * n + 0.5)), int(np.floor(0.2 * n + 0.5)))
    assert d.train.nnz + d.valid.nnz + d.test.nnz == n
    assert (d.train + d.valid + d.test).max() == 1                       # disjoint
    again = D.from_dataframe(df, split="random", valid_frac=0.1, test_frac=0.2, seed=3)
    other = D.from_dataframe(df, split="random", valid_frac=0.1, test_frac=0.2, seed=4)
    assert (again.test != d.test).nnz == 0 and (other.test != d.test).nnz > 0
    assert d.timestamps is None and sum(map(len, d.sequences)) == d.train.nnz


def test_threshold_duplicates_and_k_core():
    # k=2: item 9 has one click -> user 3 drops to one click -> user 3 goes -> item 2 drops to one
    rows = [(0, 0, 5, 1), (0, 1, 5, 2), (1, 0, 4, 1), (1, 1, 4, 2), (2, 0, 5, 1), (2, 1, 2, 2),
            (2, 1, 5, 3), (3, 2, 5, 1), (3, 9, 5, 2), (0, 2, 5, 3), (0, 0, 5, 9)]
    df = pd.DataFrame(rows, columns=["userID", "itemID", "rating", "timestamp"])
    d = D.from_dataframe(df, threshold=4, split="temporal", valid_frac=0, test_frac=0)
    # (2, 1) rated 2 is dropped, its rating-5 repeat stays; (0, 0) kept once with time 1
    assert d.train.nnz == 9 and d.timestamps[0].tolist() == [1, 2, 3]
    d = D.from_dataframe(df, threshold=4, k_core=2, split="temporal", valid_frac=0, test_frac=0)
    assert d.user_map == {0: 0, 1: 1, 2: 2} and d.item_map == {0: 0, 1: 1}
    assert d.train.nnz == 6
    with pytest.raises(ValueError, match="k_core must be a positive"):
        D.from_dataframe(df, k_core=0)


# ---------------------------------------------------------------- typos caught

def test_a_misspelled_time_column_is_an_error():
    df = pd.DataFrame({"userID": [0, 0, 0], "itemID": [2, 1, 0], "ts": [3, 2, 1]})
    with pytest.raises(ValueError, match="missing columns.*tss"):
        D.from_dataframe(df, time_col="tss", valid_frac=0, test_frac=0)
    d = D.from_dataframe(df, time_col="ts", valid_frac=0, test_frac=0)
    assert d.sequences[0].tolist() == [0, 1, 2]                         # time order, not row order
    assert D.from_dataframe(df, valid_frac=0, test_frac=0).timestamps is None   # the default may be absent


def test_interaction_data_rejects_fractional_item_ids():
    eye = sp.eye(2, format="csr")
    with pytest.raises(ValueError, match="integer item ids"):
        D.InteractionData(eye, eye, eye, sequences=[[0.7], [1.2]])
    d = D.InteractionData(eye, eye, eye, sequences=[np.array([0.0]), []])     # whole floats are ids
    assert d.sequences[0].tolist() == [0] and d.sequences[0].dtype == np.int64


def test_group_by_user_rejects_ids_beyond_n_users():
    assert [a.tolist() for a in D.group_by_user(np.array([1, 0, 1]), np.array([7, 8, 9]), 2)] == [[8], [7, 9]]
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        D.group_by_user(np.array([0, 3]), np.array([7, 8]), 2)


def test_user_ids_takes_one_id_lists_arrays_and_tensors_and_refuses_the_rest():
    assert D.user_ids(3, 5).tolist() == [3]
    ids = D.user_ids(torch.tensor([0, 4]), 5)
    assert ids.dtype == np.int64 and ids.tolist() == [0, 4]
    for bad in ([5], [-1]):                               # -1 would silently pick the last user
        with pytest.raises(ValueError, match=r"out of range: ids must lie in \[0, 5\)"):
            D.user_ids(bad, 5)
    with pytest.raises(ValueError, match="flatnonzero"):
        D.user_ids(np.array([True, False]), 5)
    with pytest.raises(ValueError, match="integer ids"):
        D.user_ids([0.5], 5)


# ---------------------------------------------------------------- usual column names, default split

def _timed_log(n_users=30, per_user=10, seed=0):
    """Each user clicks ``per_user`` distinct items at shuffled times; columns user_id, item_id, timestamp."""
    rng = np.random.default_rng(seed)
    rows = [(f"u{u}", f"i{i}", int(t)) for u in range(n_users)
            for i, t in zip(rng.choice(50, per_user, replace=False), rng.permutation(1000)[:per_user])]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def _split_by_time(d) -> bool:
    """True when, for every user, each valid / test item came after every train item."""
    times = {}
    log = _timed_log()
    for u, i, t in log.itertuples(index=False):
        times[d.user_map[u], d.item_map[i]] = t
    for u in range(d.n_users):
        last_train = max(times[u, i] for i in d.train[u].indices)
        held_out = [times[u, i] for m in (d.valid, d.test) for i in m[u].indices]
        if held_out and min(held_out) < last_train:
            return False
    return True


@pytest.mark.parametrize("user, item, time", [
    ("user_id", "item_id", "timestamp"), ("userID", "itemID", "timestamp"), ("user", "item", "time"),
    ("userId", "movieId", "timestamp"), ("USER_ID", "Item_Id", "TimeStamp")])
def test_usual_column_names_are_found_and_named(log, capsys, user, item, time):
    df = log.rename(columns={"userID": user, "itemID": item, "timestamp": time})
    d = D.from_dataframe(df, valid_frac=0.2, test_frac=0.2)
    said = capsys.readouterr().out
    assert f"user {user!r}, item {item!r}, time {time!r}; split 'temporal'" in said
    assert _pairs(d.test) == {(0, 4), (1, 0)} and _pairs(d.valid) == {(0, 3), (1, 4)}   # by time, as by hand


def test_with_times_the_default_split_is_by_time_and_split_overrides_it(capsys):
    log = _timed_log()
    by_default, temporal = D.from_dataframe(log), D.from_dataframe(log, split="temporal")
    assert _split_by_time(by_default)
    for m in ("train", "valid", "test"):
        assert (getattr(by_default, m) != getattr(temporal, m)).nnz == 0
    assert "split 'temporal' (per user by time)" in capsys.readouterr().out
    at_random = D.from_dataframe(log, split="random")
    assert not _split_by_time(at_random) and at_random.timestamps is not None
    ignored = D.from_dataframe(log, time_col=False)                  # times ignored: random split
    assert ignored.timestamps is None and not _split_by_time(ignored)
    assert "split 'random' (at random)" in capsys.readouterr().out
    untimed = D.from_dataframe(log.drop(columns="timestamp"))
    assert untimed.timestamps is None and "split 'random'" in capsys.readouterr().out


def test_nothing_is_printed_when_every_column_and_the_split_are_given(log, capsys):
    D.from_dataframe(log, user_col="userID", item_col="itemID", time_col="timestamp", split="loo")
    assert capsys.readouterr().out == ""
    D.from_dataframe(log, user_col="userID", item_col="itemID", time_col="timestamp")
    assert capsys.readouterr().out.startswith("columns: as given; split 'temporal'")
    D.from_dataframe(log.assign(rating=5.0))
    assert "rating" not in capsys.readouterr().out               # unused without a threshold


def test_column_names_that_cannot_be_resolved_are_clear_errors(log, capsys):
    with pytest.raises(ValueError, match=r"\['userID', 'user'\] could all be the user column: pass user_col"):
        D.from_dataframe(log.assign(user=log.userID))
    d = D.from_dataframe(log.assign(user=log.userID), user_col="user")       # resolved by naming it
    assert d.n_users == 3
    with pytest.raises(ValueError, match=r"no item column among \['userID', 'thing'.*item_col"):
        D.from_dataframe(log.rename(columns={"itemID": "thing"}))
    with pytest.raises(ValueError, match="no rating column"):
        D.from_dataframe(log, threshold=4)
    with pytest.raises(ValueError, match="split='loo' orders interactions by time.*time_col"):
        D.from_dataframe(log.drop(columns="timestamp"), split="loo")
    rated = log.assign(Rating=[5, 1, 5, 5, 5, 5, 5, 5, 5, 5])        # b rated i1 low
    capsys.readouterr()
    d = D.from_dataframe(rated, threshold=4)
    assert d.train.nnz + d.valid.nnz + d.test.nnz == 9 and "rating 'Rating'" in capsys.readouterr().out


# ---------------------------------------------------------------- repeated rows, the data's fingerprint

def test_merged_duplicates_are_counted_in_the_printed_line_and_the_earliest_is_kept(log, capsys):
    again = pd.DataFrame([("a", "i3", 9), ("a", "i3", 0), ("b", "i1", 40)], columns=log.columns)
    d = D.from_dataframe(pd.concat([log, again]), split="loo")          # a, i3 at times 3, 9 and 0
    said = capsys.readouterr().out
    assert said.startswith("columns: user 'userID', item 'itemID', time 'timestamp'; split 'loo'")
    assert "; 3 duplicate (user, item) rows merged (the earliest timestamp of each pair kept); pass" in said
    assert d.train.nnz + d.valid.nnz + d.test.nnz == len(log)
    a, i3 = d.user_map["a"], d.item_map["i3"]
    assert d.timestamps[a].tolist()[0] == 0 and d.sequences[a].tolist()[0] == i3     # kept at time 0
    # everything given: the line says only the merge; no time column: the first row is kept
    D.from_dataframe(pd.concat([log, again]), "userID", "itemID", time_col="timestamp", split="loo")
    assert capsys.readouterr().out == "3 duplicate (user, item) rows merged (the earliest timestamp of each pair kept)\n"
    D.from_dataframe(pd.concat([log, again]).drop(columns="timestamp"), "userID", "itemID", split="random")
    assert capsys.readouterr().out == "3 duplicate (user, item) rows merged (the first row of each pair kept)\n"
    D.from_dataframe(pd.concat([log, again]), report=None)
    assert capsys.readouterr().out == ""


def test_fingerprint_tells_equal_data_from_other_data_of_the_same_size(log):
    base = D.fingerprint(D.from_dataframe(log, report=None))
    assert D.fingerprint(D.from_dataframe(log.sample(frac=1, random_state=1), report=None)) == base
    swapped = log.assign(itemID=log.itemID.replace({"i1": "i2", "i2": "i1"}))      # same shape, other items
    other = D.from_dataframe(swapped, report=None)
    assert other.train.shape == D.from_dataframe(log, report=None).train.shape
    assert D.fingerprint(other) != base
    assert D.fingerprint(D.from_dataframe(log, split="random", seed=1, report=None)) != \
        D.fingerprint(D.from_dataframe(log, split="random", seed=2, report=None))     # another split
    renamed = log.assign(userID=log.userID.replace({"a": "z"}))        # other raw ids
    assert D.fingerprint(D.from_dataframe(renamed, report=None)) != base
