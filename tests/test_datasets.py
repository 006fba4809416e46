"""tutorial_lib.datasets and .download: the papers' splits (real data), pickles, CSV / RecBole /
MovieLens readers, the data folder, fetch()."""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tutorial_lib import datasets as D
from tutorial_lib import download


# ---------------------------------------------------------------- real data (conftest's fixtures)

@pytest.fixture(scope="module")
def ml1m(ml1m_dir):
    return D.load_diffrec_npy(ml1m_dir)


@pytest.fixture(scope="module")
def beauty(beauty_pkl):
    return D.load_diffurec_pkl(beauty_pkl)


def test_ml1m_clean_counts(ml1m):
    assert (ml1m.n_users, ml1m.n_items) == (5949, 2810)
    assert (ml1m.train.nnz, ml1m.valid.nnz, ml1m.test.nnz) == (403_277, 110_722, 57_532)
    assert ml1m.train.dtype == np.float32 and set(np.unique(ml1m.train.data)) == {1.0}
    assert ml1m.summary()["n_train"] == 403_277
    assert "5,949 users x 2,810 items" in repr(ml1m)


def test_ml1m_sequences_follow_row_order(ml1m, ml1m_dir):
    rows = np.load(ml1m_dir / "train_list.npy", allow_pickle=False)
    for u in (0, 1, 2500, 5948):
        np.testing.assert_array_equal(ml1m.sequences[u], rows[rows[:, 0] == u, 1])
    assert sum(map(len, ml1m.sequences)) == 403_277
    np.testing.assert_array_equal(np.sort(ml1m.sequences[7]), ml1m.train[7].indices)


def test_beauty_counts_and_shift(beauty):
    assert (beauty.n_users, beauty.n_items) == (22_363, 12_101)
    total = sum(map(len, beauty.sequences)) + beauty.valid.nnz + beauty.test.nnz
    assert total == 198_502
    assert beauty.valid.nnz == beauty.test.nnz == 22_363          # one item each (leave-one-out)
    # user 0 is [1, 2, 3] / [4] / [5] in the pickle (1-based items)
    np.testing.assert_array_equal(beauty.sequences[0], [0, 1, 2])
    assert beauty.valid[0].indices.tolist() == [3] and beauty.test[0].indices.tolist() == [4]
    assert beauty.item_map[1] == 0 and len(beauty.item_map) == 12_101


# ---------------------------------------------------------------- pickles

class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_blocks_code(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "dataset.pkl"
    path.write_bytes(pickle.dumps({"train": {0: [1]}, "val": {0: [2]}, "test": {0: _Evil(marker)}}))
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load global \w+\.system"):
        D.load_diffurec_pkl(path)
    assert not marker.exists()


def test_diffurec_pkl_by_hand(tmp_path):
    raw = {"train": {0: [3, 1], 1: [2]}, "val": {0: [2], 1: [3]}, "test": {0: [4], 1: [1]},
           "umap": {"alice": 0, "bob": 1}, "smap": {"x": 1, "y": 2, "z": 3, "w": 4, "v": 5}}
    path = tmp_path / "dataset.pkl"
    path.write_bytes(pickle.dumps(raw))
    d = D.load_diffurec_pkl(path)
    assert (d.n_users, d.n_items) == (2, 5)                       # smap reaches 5
    np.testing.assert_array_equal(d.train.toarray(), [[1, 0, 1, 0, 0], [0, 1, 0, 0, 0]])
    np.testing.assert_array_equal(d.valid.toarray(), [[0, 1, 0, 0, 0], [0, 0, 1, 0, 0]])
    np.testing.assert_array_equal(d.test.toarray(), [[0, 0, 0, 1, 0], [1, 0, 0, 0, 0]])
    assert [s.tolist() for s in d.sequences] == [[2, 0], [1]]
    assert d.user_map == {"alice": 0, "bob": 1} and d.item_map["v"] == 4


def test_diffurec_pkl_rejects_padding_item(tmp_path):
    path = tmp_path / "dataset.pkl"
    path.write_bytes(pickle.dumps({"train": {0: [0, 1]}, "val": {0: [2]}, "test": {0: [3]}}))
    with pytest.raises(ValueError, match="padding"):
        D.load_diffurec_pkl(path)


@pytest.mark.parametrize("change, match", [
    ({"train": {0: [1.7, 2]}}, "item ids must be integers"),       # np.fromiter would truncate 1.7 to 1
    ({"train": {0: ["1", "2"]}}, "item ids must be integers"),
    ({"smap": ["x", "y"]}, "'smap' must be a dict"),
])
def test_diffurec_pkl_rejects_bad_ids(tmp_path, change, match):
    path = tmp_path / "dataset.pkl"
    path.write_bytes(pickle.dumps({"train": {0: [1, 2]}, "val": {0: [3]}, "test": {0: [4]}, **change}))
    with pytest.raises(ValueError, match=match):
        D.load_diffurec_pkl(path)


def test_diffurec_pkl_keeps_the_user_map_when_umap_names_a_filtered_user(tmp_path):
    path = tmp_path / "dataset.pkl"
    path.write_bytes(pickle.dumps({"train": {0: [1], 1: [2]}, "val": {0: [2], 1: [1]}, "test": {0: [1], 1: [2]},
                                   "umap": {"u0": 0, "u1": 1, "gone": 2}}))
    assert D.load_diffurec_pkl(path).user_map == {"u0": 0, "u1": 1}
    path.write_bytes(pickle.dumps({"train": {0: [1]}, "val": {0: [2]}, "test": {0: [1]}, "umap": {}}))
    assert D.load_diffurec_pkl(path).user_map is None


def test_diffurec_pkl_without_umap_maps_renumbered_users(tmp_path):
    path = tmp_path / "dataset.pkl"
    path.write_bytes(pickle.dumps({"train": {1: [1, 2], 2: [3], 5: [2]}, "val": {1: [3], 2: [1], 5: [1]},
                                   "test": {1: [1], 2: [2], 5: [3]}}))
    d = D.load_diffurec_pkl(path)          # users 1, 2, 5 become rows 0, 1, 2: say so
    assert d.user_map == {1: 0, 2: 1, 5: 2}
    assert d.train[d.user_map[5]].indices.tolist() == [1]


# ---------------------------------------------------------------- DiffRec's npy files

def _save_npy(folder, train, valid=None, test=None):
    folder.mkdir(exist_ok=True)
    for split, rows in (("train", train), ("valid", valid), ("test", test)):
        rows = np.array([[0, 0]]) if rows is None else rows
        np.save(folder / f"{split}_list.npy", rows)
    return folder


@pytest.mark.parametrize("rows, message", [
    (np.array([[0, 1], [-1, 2]]), "negative ids"),
    (np.array([[0, 1, 2]]), r"\(n, 2\) array"),
    (np.array([[0.0, np.nan]]), "NaN"),
    (np.zeros((0, 2), dtype=np.int64), "empty"),
])
def test_npy_bad_input(tmp_path, rows, message):
    with pytest.raises(ValueError, match=message):
        D.load_diffrec_npy(_save_npy(tmp_path / "d", rows))


def test_npy_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_list.npy"):
        D.load_diffrec_npy(tmp_path)


# ---------------------------------------------------------------- CSV, RecBole, MovieLens

@pytest.fixture
def log():
    """Users a (5 clicks), b (3), c (2); rows shuffled, times out of row order."""
    rows = [("a", "i3", 3), ("b", "i1", 30), ("a", "i1", 1), ("c", "i2", 200), ("a", "i5", 5),
            ("b", "i2", 10), ("a", "i2", 2), ("c", "i4", 100), ("a", "i4", 4), ("b", "i5", 20)]
    return pd.DataFrame(rows, columns=["userID", "itemID", "timestamp"])


def _pairs(m):
    u, i = m.nonzero()
    return set(zip(u.tolist(), i.tolist()))


def test_load_csv_and_recbole(tmp_path, log):
    log.to_csv(tmp_path / "log.csv", index=False)
    d = D.load_csv(tmp_path / "log.csv", split="loo")
    assert d.name == "log" and _pairs(d.test) == {(0, 4), (1, 0)}
    inter = tmp_path / "toy.inter"
    inter.write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                     "007\t10\t5\t1\n007\t11\t3\t2\n007\t12\t4\t3\n8\t10\t5\t1\n")
    d = D.load_recbole_inter(inter, threshold=4, split="temporal", valid_frac=0, test_frac=0.34)
    assert d.user_map == {"007": 0, "8": 1} and d.item_map == {"10": 0, "12": 1}
    assert _pairs(d.test) == {(0, 1)} and _pairs(d.train) == {(0, 0), (1, 0)}


def test_load_movielens_1m_reads_double_colons(tmp_path):
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n"
                                        "1::914::4::978301968\n2::1193::4::978298413\n")
    with pytest.raises(FileNotFoundError, match="fetch"):
        D.load_movielens_1m(tmp_path / "nowhere")
    d = D.load_movielens_1m(tmp_path, valid_frac=0, test_frac=0)
    assert d.item_map == {914: 0, 1193: 1} and d.train.nnz == 3
    assert d.sequences[0].tolist() == [1, 0]                         # 1193 before 914 in time


def test_load_csv_keeps_ids_that_read_as_the_same_number_apart(tmp_path):
    (tmp_path / "log.csv").write_text("userID,itemID,timestamp\n007,0042,1\n7,42,2\n007,0043,3\n")
    d = D.load_csv(tmp_path / "log.csv", valid_frac=0, test_frac=0)
    assert (d.n_users, d.n_items, d.train.nnz) == (2, 3, 3)
    assert set(d.user_map) == {"007", "7"} and set(d.item_map) == {"0042", "42", "0043"}
    (tmp_path / "plain.csv").write_text("userID,itemID,timestamp\n10,3,1\n9,3,2\n")
    assert D.load_csv(tmp_path / "plain.csv", valid_frac=0, test_frac=0).user_map == {9: 0, 10: 1}


# ---------------------------------------------------------------- fetch

def _fake_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("toy/ratings.dat", "1::2::5::10\n")
    return buffer.getvalue()


def _serve(monkeypatch, name: str, payload: bytes, filename: str, folder: str):
    """REGISTRY[name] -> a download of ``payload`` (no network); returns (source, urls asked for)."""
    calls = []

    def urlopen(url, timeout=None):
        calls.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    source = D.DataSource(f"https://example.org/{filename}", hashlib.sha256(payload).hexdigest(), filename, folder)
    monkeypatch.setitem(D.REGISTRY, name, source)
    return source, calls


@pytest.fixture
def fake_source(monkeypatch):
    return _serve(monkeypatch, "toy", _fake_zip(), "toy.zip", "toy")


def test_fetch_verifies_and_extracts(tmp_path, fake_source):
    _, calls = fake_source
    folder = D.fetch("toy", root=tmp_path)
    assert folder == tmp_path / "toy" and (folder / "ratings.dat").read_text() == "1::2::5::10\n"
    assert D.fetch("toy", root=tmp_path) == folder and len(calls) == 1    # cached, not downloaded again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy", "toy.zip"]


def test_fetch_interrupted_extraction_leaves_no_half_folder(tmp_path, fake_source, monkeypatch):
    real = zipfile.ZipFile.extractall

    def interrupted(self, path=None, *args, **kwargs):
        (Path(path) / "toy").mkdir()
        (Path(path) / "toy" / "partial").write_text("half")
        raise KeyboardInterrupt
    monkeypatch.setattr(zipfile.ZipFile, "extractall", interrupted)
    with pytest.raises(KeyboardInterrupt):
        D.fetch("toy", root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.zip"]      # the verified archive only
    monkeypatch.setattr(zipfile.ZipFile, "extractall", real)
    folder = D.fetch("toy", root=tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ["ratings.dat"]


@pytest.mark.parametrize("fixture, name", [("fake_source", "toy"), ("fake_file_source", "toy_seq")])
def test_fetch_wrong_checksum_leaves_nothing(tmp_path, monkeypatch, request, fixture, name):
    # a zip, or a plain file whose folder fetch made: neither is left behind
    source, _ = request.getfixturevalue(fixture)
    monkeypatch.setitem(D.REGISTRY, name, source._replace(sha256="0" * 64))
    with pytest.raises(D.ChecksumError, match="SHA-256"):
        D.fetch(name, root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_fetch_rejects_corrupt_cache(tmp_path, fake_source):
    (tmp_path / "toy.zip").write_bytes(b"not the archive")
    with pytest.raises(D.ChecksumError, match="force=True"):
        D.fetch("toy", root=tmp_path)


def test_fetch_offline_says_what_to_do(tmp_path, monkeypatch):
    def offline(url, timeout=None):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ConnectionError, match=r"by hand.*ml-1m\.zip"):
        D.fetch("ml-1m", root=tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="unknown dataset"):
        D.fetch("ml-3m", root=tmp_path)


@pytest.fixture
def fake_file_source(monkeypatch):
    # a release that is one plain file (DiffuRec's dataset.pkl), not a zip
    payload = pickle.dumps({"train": {1: [1, 2]}, "val": {1: [3]}, "test": {1: [2]}})
    return _serve(monkeypatch, "toy_seq", payload, "dataset.pkl", "toy_seq")


def test_fetch_puts_a_plain_file_in_its_folder(tmp_path, fake_file_source):
    source, calls = fake_file_source
    folder = D.fetch("toy_seq", root=tmp_path)
    assert folder == tmp_path / "toy_seq" and sorted(p.name for p in folder.iterdir()) == ["dataset.pkl"]
    assert D.fetch("toy_seq", root=tmp_path) == folder and len(calls) == 1    # cached
    assert D.load_diffurec_pkl(folder / "dataset.pkl").n_users == 1
    D.REGISTRY["toy_seq"] = source._replace(sha256="0" * 64)      # the fixture's setitem restores it
    with pytest.raises(D.ChecksumError, match="force=True"):       # a cache that no longer matches
        D.fetch("toy_seq", root=tmp_path)


def test_registry_checksum_of_beauty_is_the_copy_our_figures_used(beauty_pkl):
    path = beauty_pkl
    source = D.REGISTRY["amazon_beauty"]
    assert download.sha256(path) == source.sha256 and path.stat().st_size == source.size


def test_registry_records_sha256():
    assert all(len(s.sha256) == 64 and s.url.startswith("https://") for s in D.REGISTRY.values())


# ---------------------------------------------------------------- the data folder, data sets by name

def test_the_data_folder_is_the_argument_else_the_variable_else_data(monkeypatch, tmp_path):
    monkeypatch.delenv("TUTORIAL_DATA_DIR", raising=False)
    assert D.data_root() == Path("data")
    monkeypatch.setenv("TUTORIAL_DATA_DIR", str(tmp_path))
    assert D.data_root() == tmp_path and D.data_root("mine") == Path("mine")


def test_a_missing_release_is_one_line_naming_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("TUTORIAL_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match=r"github.com/YiyanXu/DiffRec.*ml-1m_clean/\{train") as err:
        D.load_course_data("ml-1m", root=tmp_path)
    assert "\n" not in str(err.value) and "TUTORIAL_DATA_DIR" in str(err.value)
    monkeypatch.setenv("TUTORIAL_DATA_DIR", str(tmp_path / "elsewhere"))
    with pytest.raises(FileNotFoundError, match=r"elsewhere/amazon_beauty/dataset.pkl.*WHUIR/DiffuRec"):
        D.load_release("beauty")
    with pytest.raises(ValueError, match="unknown DATASET 'ml-100k'"):
        D.load_course_data("ml-100k")
    with pytest.raises(FileNotFoundError, match="WHUIR/DiffuRec"):        # the reader names it too
        D.load_diffurec_pkl(tmp_path / "dataset.pkl")


def test_the_tests_find_the_real_data_through_the_variable(shared_datasets):
    # conftest points TUTORIAL_DATA_DIR at ../shared/datasets: no root is passed here
    data, truth = D.load_course_data("ml-1m")
    assert truth is None and data.name == "ml-1m_clean"
    assert (data.n_users, data.n_items, data.train.nnz) == (5949, 2810, 403277)


def test_synthetic_course_data_comes_with_its_truth():
    data, truth = D.load_course_data("synthetic", seed=0)
    assert truth.preference.shape == (data.n_users, data.n_items)


# ---------------------------------------------------------------- usual column names in files

def test_load_csv_reads_user_id_item_id_and_splits_by_time(tmp_path, capsys, log):
    log.rename(columns={"userID": "user_id", "itemID": "item_id"}).to_csv(tmp_path / "log.csv", index=False)
    d = D.load_csv(tmp_path / "log.csv", valid_frac=0.2, test_frac=0.2)
    assert "user 'user_id', item 'item_id', time 'timestamp'; split 'temporal'" in capsys.readouterr().out
    assert _pairs(d.test) == {(0, 4), (1, 0)} and _pairs(d.valid) == {(0, 3), (1, 4)}


def test_load_csv_splits_7_2_1_by_default_as_the_command_line(tmp_path):
    """load_csv's default shares are data.VALID_FRAC / TEST_FRAC, 70 / 20 / 10 % (DiffRec's 7:2:1),
    the ones diffrec-tutorial splits a log with: both read one file into the same split."""
    from types import SimpleNamespace

    from tutorial_lib.cli import inputs
    from tutorial_lib.data import TEST_FRAC, VALID_FRAC

    assert (VALID_FRAC, TEST_FRAC) == (0.2, 0.1)
    rows = [(u, (3 * u + j) % 25, 100 * u + j) for u in range(12) for j in range(10)]
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(tmp_path / "log.csv", index=False)
    d = D.load_csv(tmp_path / "log.csv")
    per_user = [np.diff(m.indptr) for m in (d.train, d.valid, d.test)]
    assert all((n == k).all() for n, k in zip(per_user, (7, 2, 1)))
    assert all(d.test[u].indices.tolist() == [(3 * u + 9) % 25] for u in range(12))     # the latest click
    opts = SimpleNamespace(format=None, sep=None, min_rating=None, user_col=None, item_col=None, time_col=None,
                           rating_col=None, split=None, seed=1)
    cli, said = inputs.load(tmp_path / "log.csv", opts, "rows")
    assert "split 'time'" in said and cli.user_map == d.user_map and cli.item_map == d.item_map
    for m in ("train", "valid", "test"):
        assert (getattr(cli, m) != getattr(d, m)).nnz == 0


def test_load_csv_with_no_held_out_share_says_it_splits_nothing(tmp_path, capsys, log):
    log.rename(columns={"userID": "user_id", "itemID": "item_id"}).to_csv(tmp_path / "log.csv", index=False)
    d = D.load_csv(tmp_path / "log.csv", valid_frac=0, test_frac=0)
    said = capsys.readouterr().out
    assert "no split (valid_frac = test_frac = 0): every interaction is training data" in said
    assert "temporal" not in said and "split=" not in said
    assert d.train.nnz == len(log) and d.valid.nnz == d.test.nnz == 0
    D.load_csv(tmp_path / "log.csv", split="loo", valid_frac=0, test_frac=0)   # leave-one-out ignores the shares
    assert "split 'loo' (leave-one-out)" in capsys.readouterr().out


def test_load_csv_and_load_recbole_inter_read_one_log_alike(tmp_path, log):
    rated = log.assign(rating=[5.0, 3.0, 4.0, 5.0, 5.0, 4.0, 2.0, 5.0, 4.0, 5.0])
    rated.rename(columns={"userID": "user_id", "itemID": "item_id"}).to_csv(tmp_path / "log.csv", index=False)
    rated.to_csv(tmp_path / "log.inter", sep="\t", index=False,
                 header=["user_id:token", "item_id:token", "timestamp:float", "rating:float"])
    a = D.load_csv(tmp_path / "log.csv", threshold=4)
    b = D.load_recbole_inter(tmp_path / "log.inter", threshold=4)
    assert a.user_map == b.user_map and a.item_map == b.item_map and a.name == b.name == "log"
    for m in ("train", "valid", "test"):
        assert (getattr(a, m) != getattr(b, m)).nnz == 0
    assert [s.tolist() for s in a.sequences] == [s.tolist() for s in b.sequences]


@pytest.mark.parametrize("text, message", [
    ("", r"log\.csv is empty"),
    ("user_id,item_id,timestamp\n", r"log\.csv has a header \(user_id, item_id, timestamp\) but no rows"),
    ("user_id,item_id,timestamp\na,i1,1\na,i2,2\nb,i1\n", r"log\.csv: line 4 has no time value \(column 'timestamp'\)"),
    ("user_id,item_id,timestamp\na,i1,1\nb,\n", r"log\.csv: line 3 has no item value"),
    ("user_id,item_id,timestamp\n1,2.5,1\n", r"column 'item_id' holds ids that are not integers \('2\.5' on line 2\)"),
    ("user_id,item_id,timestamp\na,i1,yesterday\n", r"column 'timestamp' holds 'yesterday' on line 2, not a number"),
])
def test_load_csv_says_what_is_wrong_with_the_file_as_the_command_line(tmp_path, text, message):
    """load_csv reads and checks a file as diffrec-tutorial does: one ValueError line naming the
    file and the line, the same message the command prints."""
    from types import SimpleNamespace

    from tutorial_lib.cli import inputs

    (tmp_path / "log.csv").write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        D.load_csv(tmp_path / "log.csv")
    assert len(str(err.value).splitlines()) == 1
    opts = SimpleNamespace(format=None, sep=None, min_rating=None, user_col=None, item_col=None, time_col=None,
                           rating_col=None, split=None, seed=1)
    with pytest.raises(inputs.BadInput) as cli:
        inputs.load(tmp_path / "log.csv", opts, "rows")
    assert str(cli.value) == str(err.value)


def test_load_csv_says_how_many_repeated_rows_it_merged(tmp_path, capsys, log):
    repeats = pd.DataFrame([("a", "i3", 0), ("b", "i1", 99)], columns=log.columns)
    pd.concat([log, repeats]).to_csv(tmp_path / "log.csv", index=False)
    d = D.load_csv(tmp_path / "log.csv", valid_frac=0, test_frac=0)
    assert "2 duplicate (user, item) rows merged (the earliest timestamp of each pair kept)" in capsys.readouterr().out
    a = d.user_map["a"]
    assert d.train.nnz == len(log) and d.timestamps[a].tolist() == [0, 1, 2, 4, 5]   # i3 at 0, not 3


def test_fetch_puts_downloads_in_the_data_folder(tmp_path, fake_source, monkeypatch):
    monkeypatch.setenv("TUTORIAL_DATA_DIR", str(tmp_path))
    assert D.fetch("toy") == tmp_path / "toy"
