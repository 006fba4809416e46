"""diffrec-tutorial (tutorial_lib.cli): formats detected, recipes and --set, the small-data
settings chosen by size, the JSON line, the top-K file in raw ids (recommend()'s frame), the
refit on every interaction, one clear line and no file left for every bad input, and the
README's "Command line" commands run as written (the N-GPU one on CPU with gloo, 2 processes)."""
from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tutorial_lib.cli import main
from tutorial_lib.cli import inputs
from tutorial_lib.cli.recipes import RECIPES, SMALL_DATA_INTERACTIONS, apply_overrides, choose_settings

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
QUICK = ["--small", "--set", "epochs=2", "eval_every=1", "--no-progress"]


def clicks(n_users=40, n_items=30, seed=0) -> pd.DataFrame:
    """A log with raw ids (users 100.., items 7, 10, 13, ...), times and ratings."""
    rng = np.random.default_rng(seed)
    rows = [(100 + u, 7 + 3 * int(i), 1000 * u + j, int(rng.integers(1, 6)))
            for u in range(n_users) for j, i in enumerate(rng.choice(n_items, rng.integers(6, 11), replace=False))]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"])


def opts(**kw):
    base = dict(format=None, sep=None, min_rating=None, user_col=None, item_col=None, time_col=None,
                rating_col=None, split=None, seed=1)
    return SimpleNamespace(**{**base, **kw})


def run_main(capsys, *argv):
    """(exit status, stdout, stderr) of diffrec-tutorial in this process."""
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


# ---- formats

def _write_formats(tmp: Path) -> dict:
    df = clicks()
    df.to_csv(tmp / "log.csv", index=False)
    df.to_csv(tmp / "log.tsv", sep="\t", index=False)
    with open(tmp / "log.inter", "w") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\trating:float\n")
        df.to_csv(f, sep="\t", index=False, header=False)
    (tmp / "ml").mkdir()
    with open(tmp / "ml" / "ratings.dat", "w") as f:
        f.writelines(f"{u}::{i}::{r}::{t}\n" for u, i, t, r in df.itertuples(index=False))
    (tmp / "npy").mkdir()
    pairs = df[["user_id", "item_id"]].to_numpy() - [100, 0]
    for name, part in zip(("train", "valid", "test"), (pairs[::3], pairs[1::3], pairs[2::3])):
        np.save(tmp / "npy" / f"{name}_list.npy", part.astype(np.int64))
    lists = {s: {int(u): [int(i) + 1] for u, i in pairs[k::3][:20]} for k, s in enumerate(("train", "val", "test"))}
    with open(tmp / "dataset.pkl", "wb") as f:
        pickle.dump({**lists, "smap": {i: i + 1 for i in range(int(pairs[:, 1].max()) + 1)}}, f)
    return {"csv": "log.csv", "tsv": "log.tsv", "recbole": "log.inter", "movielens": "ml",
            "diffrec-npy": "npy", "diffurec-pkl": "dataset.pkl"}


def test_every_format_is_detected_and_read(tmp_path):
    for name, rel in _write_formats(tmp_path).items():
        fmt = "csv" if name == "tsv" else name
        data, said = inputs.load(tmp_path / rel, opts(), "rows")
        assert f"read as {fmt}" in said, said
        assert data.train.nnz and data.valid.nnz and data.test.nnz
        if fmt in ("csv", "recbole", "movielens"):          # the log's own raw ids, split by time 7:2:1
            assert set(data.user_map) == set(range(100, 140)) and "split 'time'" in said
            assert data.valid.nnz > data.test.nnz


def test_split_rules_and_columns(tmp_path):
    df = clicks()[["user_id", "item_id"]]                 # no time column
    df.to_csv(tmp_path / "plain.csv", index=False)
    data, said = inputs.load(tmp_path / "plain.csv", opts(), "sequential")
    assert "leave-one-out" in said and "row order is time order" in said
    assert (np.diff(data.test.indptr) == 1).all()           # one test item per user
    _, said = inputs.load(tmp_path / "plain.csv", opts(), "rows")
    assert "split 'random'" in said
    a, _ = inputs.load(tmp_path / "plain.csv", opts(split="random", seed=3), "rows")
    b, _ = inputs.load(tmp_path / "plain.csv", opts(split="random", seed=3), "rows")
    assert (a.test != b.test).nnz == 0                     # seeded
    clicks().to_csv(tmp_path / "r.csv", sep=";", index=False)
    kept, _ = inputs.load(tmp_path / "r.csv", opts(sep=";", min_rating=4), "rows")
    assert kept.train.nnz + kept.valid.nnz + kept.test.nnz == (clicks()["rating"] >= 4).sum()


# ---- recipes and --set

def test_set_overrides_and_rejects_unknown_keys():
    base = RECIPES["diffrec"].settings()
    new = apply_overrides("diffrec", base, ["T=20", "dims=300,900", "lr=1e-4", "reweight=false", "patience=none"])
    assert (new["T"], new["dims"], new["lr"], new["reweight"], new["patience"]) == (20, (300, 900), 1e-4, False, None)
    with pytest.raises(ValueError, match=r"no setting 'steps'; valid keys: .*T, batch_size"):
        apply_overrides("diffrec", base, ["steps=5"])
    with pytest.raises(ValueError, match="T takes an integer"):
        apply_overrides("diffrec", base, ["T=ten"])


def test_benchmark_recipes_read_the_package_settings():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from recipes import diffrec, sequential

    assert diffrec.DIFFREC is RECIPES["diffrec"].model and sequential.DIFFUREC is RECIPES["diffurec"].model


# ---- training, the JSON line, the files

def test_train_prints_json_and_writes_checkpoint_and_raw_id_recommendations(tmp_path, capsys):
    clicks().to_csv(tmp_path / "log.csv", index=False)
    code, out, err = run_main(capsys, "train", "multivae", "--data", tmp_path / "log.csv", *QUICK,
                              "--checkpoint", tmp_path / "m.pt", "--recommend", 3, "--out", tmp_path / "recs.csv")
    assert code == 0, err
    line = json.loads(out.strip().splitlines()[-1])
    assert {"recall@20", "ndcg@20", "best_epoch", "train_seconds", "device", "processor", "torch"} <= set(line)
    assert "read as csv" in err and line["settings"]["epochs"] == 2
    recs = pd.read_csv(tmp_path / "recs.csv")
    assert list(recs.columns) == ["user", "rank", "item", "score"] and len(recs) == 40 * 3     # recommend()'s
    assert set(recs["user"]) == set(range(100, 140)) and ((recs["item"] - 7) % 3 == 0).all()
    seen = set(map(tuple, clicks()[["user_id", "item_id"]].to_numpy()))
    assert not any((u, i) in seen for u, i in recs[["user", "item"]].itertuples(index=False))
    assert (recs.groupby("user")["score"].diff().dropna() <= 0).all()
    import torch
    assert torch.load(tmp_path / "m.pt", weights_only=True)["recipe"]["model"] == "multivae"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv", "m.pt", "recs.csv"]    # no temp file


@pytest.mark.parametrize("model, keys", [("popularity", {"recall@20", "valid_recall@20"}),
                                         ("ease", {"recall@20", "lambda"}),
                                         ("sasrec", {"hr@10", "masked_ndcg@10", "valid_ndcg@10", "scale"})])
def test_closed_forms_and_sequential_models_from_the_command_line(tmp_path, capsys, model, keys):
    clicks().to_csv(tmp_path / "log.csv", index=False)
    quick = QUICK if model == "sasrec" else ["--small", "--no-progress"]           # nothing to train
    code, out, err = run_main(capsys, "train", model, "--data", tmp_path / "log.csv", *quick,
                              "--checkpoint", tmp_path / "m.pt", "--recommend", 2, "--out", tmp_path / "recs.csv")
    assert code == 0, err
    assert keys <= set(json.loads(out.strip().splitlines()[-1]))
    assert ("leave-one-out" in err) == (model == "sasrec")            # the sequential models' split
    assert len(pd.read_csv(tmp_path / "recs.csv")) == 40 * 2 and (tmp_path / "m.pt").exists()


def test_recommendations_file_is_the_frame_of_recommend(tmp_path, capsys):
    """recs.csv holds what recommend() returns for every user, in its columns and order."""
    from tutorial_lib.datasets import load_csv
    from tutorial_lib.models.popularity import Popularity
    from tutorial_lib.recommend import recommend

    clicks().to_csv(tmp_path / "log.csv", index=False)
    code, _, err = run_main(capsys, "train", "popularity", "--data", tmp_path / "log.csv", "--no-progress",
                            "--checkpoint", tmp_path / "m.pt", "--recommend", 4, "--out", tmp_path / "recs.csv")
    assert code == 0, err
    data = load_csv(tmp_path / "log.csv")                  # the CLI's split (the same shares)
    expected = recommend(Popularity().fit(data), data, sorted(data.user_map), k=4)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "recs.csv"), expected, check_dtype=False, rtol=1e-5)


# ---- the settings: small data gets the small-data ones, --paper / --small choose

def test_small_data_trains_with_the_small_settings_and_says_so(tmp_path, capsys):
    clicks().to_csv(tmp_path / "log.csv", index=False)            # 40 users, 30 items, ~320 clicks
    quick = ["--set", "epochs=1", "eval_every=1", "--no-progress"]
    small, paper = RECIPES["diffrec"].settings(small=True), RECIPES["diffrec"].settings()
    runs = {}
    for flag in (None, "--paper", "--small"):
        argv = ["train", "diffrec", "--data", tmp_path / "log.csv", *quick, "--checkpoint", tmp_path / f"{flag}.pt"]
        code, out, err = run_main(capsys, *argv, *([flag] if flag else []))
        assert code == 0, err
        runs[flag] = (json.loads(out.strip().splitlines()[-1]), [ln for ln in err.splitlines() if ln.startswith("settings:")])
    line, said = runs[None]
    assert line["recipe_settings"] == "small" and line["settings"]["dims"] == list(small["dims"])
    assert said == [f"settings: small-data, as the data has {len(clicks())} interactions (fewer than "
                    f"{SMALL_DATA_INTERACTIONS:,}); --paper trains with the paper's settings; --set epochs=1 eval_every=1"]
    line, said = runs["--paper"]
    assert line["recipe_settings"] == "paper" and line["settings"]["dims"] == list(paper["dims"])
    assert said[0].startswith("settings: the paper's (--paper)")
    assert runs["--small"][0]["settings"] == runs[None][0]["settings"] and "(--small)" in runs["--small"][1][0]
    assert choose_settings(SMALL_DATA_INTERACTIONS - 1)[0] and not choose_settings(SMALL_DATA_INTERACTIONS)[0]
    assert choose_settings(10**6, small=True)[0] and not choose_settings(10, paper=True)[0]


# ---- --refit: the final model, on every interaction

def test_refit_trains_on_every_interaction_for_the_best_epochs_and_recommends_with_it(tmp_path, capsys):
    import torch

    from tutorial_lib.datasets import load_csv
    from tutorial_lib.models.multivae import MultiVAE
    from tutorial_lib.recommend import recommend

    log = clicks()
    log.to_csv(tmp_path / "log.csv", index=False)
    base = ["train", "multivae", "--data", tmp_path / "log.csv", "--set", "epochs=4", "eval_every=1", "--no-progress"]
    argv = [*base, "--checkpoint", tmp_path / "m.pt", "--refit", "--recommend", 3, "--out", tmp_path / "recs.csv"]
    code, out, err = run_main(capsys, *argv)
    assert code == 0, err
    line = json.loads(out.strip().splitlines()[-1])
    refit = line["refit"]
    assert refit["epochs"] == line["best_epoch"] >= 1 and refit["interactions"] == len(log)
    assert refit["checkpoint"] == str(tmp_path / "m.refit.pt") and "refit: multivae trained afresh on all" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv", "m.pt", "m.refit.pt", "recs.csv"]
    state = torch.load(tmp_path / "m.refit.pt", weights_only=True)
    assert state["epoch"] == line["best_epoch"] and state["recipe"]["refit"]["interactions"] == len(log)
    # the file is the refit model's top 3 over every click (no split: all of them in train)
    everything = load_csv(tmp_path / "log.csv", valid_frac=0, test_frac=0)
    assert everything.train.nnz == len(log) and everything.valid.nnz == everything.test.nnz == 0
    settings = {k: v for k, v in line["settings"].items() if k in RECIPES["multivae"].model}
    model = MultiVAE(everything.n_items, **settings)
    model.load_state_dict(state["model"])
    expected = recommend(model.eval(), everything, sorted(everything.user_map), k=3)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "recs.csv"), expected, check_dtype=False, rtol=1e-5)
    (tmp_path / "m.pt").unlink()
    code, _, err = run_main(capsys, *argv)                  # the refit's file is not overwritten unasked
    assert code == 2 and "m.refit.pt exists: pass --resume" in err


def test_small_score_chunks_give_the_same_metrics_and_lists(tmp_path, capsys):
    """--score-budget 90 (3 users x 30 items a chunk, each scored on a view of its users) changes
    nothing but memory: the same metrics and the same top-K file as one chunk for all."""
    clicks().to_csv(tmp_path / "log.csv", index=False)
    lines, files = [], []
    for budget in ("90", str(2**26)):
        out = tmp_path / f"recs{budget}.csv"
        code, text, err = run_main(capsys, "train", "multivae", "--data", tmp_path / "log.csv", *QUICK,
                                   "--score-budget", budget, "--checkpoint", tmp_path / f"m{budget}.pt",
                                   "--recommend", 5, "--out", out)
        assert code == 0, err
        lines.append({k: v for k, v in json.loads(text.strip().splitlines()[-1]).items() if "@" in k})
        files.append(pd.read_csv(out))
    assert lines[0] == lines[1]
    pd.testing.assert_frame_equal(files[0], files[1], check_exact=False, rtol=1e-5)


def test_cli_figures_equal_reproduce(tmp_path, capsys):
    """The same data, recipe and seed: diffrec-tutorial's line has reproduce.py's figures."""
    from tutorial_lib.synthetic import make_synthetic

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import reproduce

    data = make_synthetic(seed=0)[0]
    (tmp_path / "syn").mkdir()
    for split in ("train", "valid", "test"):
        m = getattr(data, split).tocoo()
        np.save(tmp_path / "syn" / f"{split}_list.npy", np.stack([m.row, m.col], 1).astype(np.int64))
    code, out, _ = run_main(capsys, "train", "diffrec", "--data", tmp_path / "syn", *QUICK,
                            "--checkpoint", tmp_path / "d.pt")
    ours = json.loads(out.strip().splitlines()[-1])
    theirs = reproduce.main(["diffrec", "--dataset", "synthetic", "--fast", "--no-progress"])
    capsys.readouterr()
    assert [ours[k] for k in ("recall@20", "ndcg@20", "best_epoch")] == \
           [theirs[k] for k in ("recall@20", "ndcg@20", "best_epoch")]


# ---- bad input: one line, exit status 2, no file left

def _bad(tmp_path: Path, case: str) -> tuple[Path, list]:
    """(the --data path, extra arguments) of one bad input."""
    good = clicks()
    path = tmp_path / "in" / "log.csv"
    path.parent.mkdir()
    if case == "missing file":
        return tmp_path / "in" / "nowhere.csv", []
    if case == "unknown column":
        good.to_csv(path, index=False)
        return path, ["--user-col", "customer"]
    if case == "ids not integers":
        good.astype({"item_id": float}).assign(item_id=lambda d: d["item_id"] + 0.5).to_csv(path, index=False)
        return path, []
    if case == "user without training interactions":
        path = tmp_path / "in" / "npy"
        path.mkdir()
        for split, rows in (("train", [[0, 0], [1, 1]]), ("valid", [[2, 1]]), ("test", [[0, 1], [1, 0]])):
            np.save(path / f"{split}_list.npy", np.array(rows, dtype=np.int64))
        return path, []
    if case == "split leaves a set empty":
        good.groupby("user_id").head(2).to_csv(path, index=False)         # 2 clicks a user
        return path, ["--split", "leave-one-out"]
    if case == "empty file":
        path.write_text("")
        return path, []
    if case == "truncated csv":
        text = good.to_csv(index=False)
        path.write_text(text[:text.rindex("\n", 0, len(text) - 1)] + "\n139,")     # the last row cut short
        return path, []
    if case == "truncated npy":
        path = tmp_path / "in" / "npy"
        path.mkdir()
        for split in ("train", "valid", "test"):
            np.save(path / f"{split}_list.npy", np.arange(40, dtype=np.int64).reshape(20, 2))
        (path / "train_list.npy").write_bytes((path / "train_list.npy").read_bytes()[:-16])
        return path, []
    raise AssertionError(case)


BAD = {
    "missing file": r"--data .*nowhere\.csv: no such file or folder",
    "unknown column": r"no column 'customer' \(--user-col\); its columns are user_id, item_id, timestamp, rating",
    "ids not integers": r"column 'item_id' holds ids that are not integers \('\d+\.5' on line 2\)",
    "user without training interactions": r"user 2 has no training interactions \(1 of the 3 users\)",
    "split leaves a set empty": r"the split leaves the valid set empty",
    "empty file": r"log\.csv is empty",
    "truncated csv": r"line \d+ has no item value .*a truncated file",
    "truncated npy": r"train_list\.npy is truncated: its header announces 320 bytes of data, the file holds 304",
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_says_one_line_and_leaves_no_file(tmp_path, capsys, case):
    data, extra = _bad(tmp_path, case)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out, err = run_main(capsys, "train", "diffrec", "--data", data, *extra, *QUICK,
                              "--checkpoint", out_dir / "m.pt", "--recommend", 5, "--out", out_dir / "recs.csv")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("diffrec-tutorial: error: "), err
    assert re.search(BAD[case], err), err
    assert list(out_dir.iterdir()) == []
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p != out_dir) == before


def test_bad_option_says_one_line(tmp_path, capsys):
    clicks().to_csv(tmp_path / "log.csv", index=False)
    code, _, err = run_main(capsys, "train", "diffrec", "--data", tmp_path / "log.csv", "--set", "steps=4")
    assert code == 2 and "valid keys:" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_main(capsys, "train", "diffrec", "--data", tmp_path / "log.csv", "--recommend", "5")
    assert code == 2 and "add --out" in err


def test_set_names_the_default_of_the_settings_in_use(tmp_path, capsys):
    """--set dims=abc on small data names the small-data default (64), with --paper the paper's."""
    clicks().to_csv(tmp_path / "log.csv", index=False)
    base = ["train", "diffrec", "--data", tmp_path / "log.csv", "--set", "dims=abc", "--checkpoint", tmp_path / "m.pt"]
    for extra, default in (([], "64"), (["--small"], "64"), (["--paper"], "200,600")):
        code, out, err = run_main(capsys, *base, *extra)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
        assert err.strip().endswith(f"dims takes a list of numbers such as 200,600 (default {default})"), err
    assert not (tmp_path / "m.pt").exists()


def test_recipes_small_is_labelled_as_the_small_data_settings(capsys):
    code, out, _ = run_main(capsys, "recipes", "diffrec", "--small")
    line = json.loads(out)
    assert code == 0 and line["settings"]["dims"] == [64] and line["settings"]["T"] == 10
    assert line["source"].startswith("small-data settings") and "not the paper's (Wang et al. 2023" in line["source"]
    _, out, _ = run_main(capsys, "recipes", "diffrec")
    assert json.loads(out)["source"] == RECIPES["diffrec"].source and json.loads(out)["settings"]["dims"] == [200, 600]
    _, out, _ = run_main(capsys, "recipes", "tdiffrec", "--small")           # no small-data settings of its own
    assert json.loads(out)["source"] == RECIPES["tdiffrec"].source


def test_help_names_the_refit_file_after_the_checkpoint(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "MODEL.refit.pt" not in text and "--checkpoint d2.pt: d2.refit.pt" in text
    from tutorial_lib.cli.run import refit_path
    assert refit_path("d2.pt") == Path("d2.refit.pt")


def test_repeated_rows_are_counted_on_the_data_line(tmp_path, capsys):
    log = clicks()
    repeats = log.iloc[[0, 5, 9]].assign(timestamp=lambda d: d["timestamp"] + 1)
    pd.concat([log, repeats]).to_csv(tmp_path / "log.csv", index=False)
    code, out, err = run_main(capsys, "train", "popularity", "--data", tmp_path / "log.csv", "--no-progress",
                              "--checkpoint", tmp_path / "m.pt")
    assert code == 0, err
    said = [ln for ln in err.splitlines() if ln.startswith("data:")]
    assert said and said[0].endswith("; 3 duplicate (user, item) rows merged (the earliest timestamp of each pair kept)")
    assert f"the data has {len(log)} interactions" in err
    (tmp_path / "ids.csv").write_text("user_id,item_id\n007,1\n7,1\n007,2\n7,3\n007,4\n7,4\n007,5\n7,6\n")
    data, _ = inputs.load(tmp_path / "ids.csv", opts(split="random"), "rows")
    assert set(data.user_map) == {"007", "7"}                 # two users, as load_csv reads them


# ---- --resume: the checkpoint of this run, on this data

def _resume(capsys, tmp_path, data, *extra):
    return run_main(capsys, "train", "diffrec", "--data", data, "--small", "--set", "epochs=2", "eval_every=1",
                    *extra, "--no-progress", "--checkpoint", tmp_path / "d.pt", "--resume")


def test_resume_without_a_checkpoint_says_it_trains_from_the_start(tmp_path, capsys):
    clicks().to_csv(tmp_path / "log.csv", index=False)
    code, out, err = _resume(capsys, tmp_path, tmp_path / "log.csv")
    assert code == 0, err
    assert f"no checkpoint at {tmp_path / 'd.pt'}: training from the start" in err.splitlines()
    assert json.loads(out.strip().splitlines()[-1])["epochs"] == 2
    import torch
    recipe = torch.load(tmp_path / "d.pt", weights_only=True)["recipe"]
    assert (recipe["n_users"], recipe["n_items"]) == (40, 30) and len(recipe["data_fingerprint"]) == 32
    code, _, err = _resume(capsys, tmp_path, tmp_path / "log.csv")              # the same data: it resumes
    assert code == 0 and "no checkpoint" not in err and "does not record" not in err, err


def test_resume_on_other_data_or_settings_is_refused_in_one_line(tmp_path, capsys):
    log = clicks()
    log.to_csv(tmp_path / "log.csv", index=False)
    code, _, err = run_main(capsys, "train", "diffrec", "--data", tmp_path / "log.csv", *QUICK,
                            "--checkpoint", tmp_path / "d.pt")
    assert code == 0, err
    saved = (tmp_path / "d.pt").read_bytes()
    more = pd.concat([log, pd.DataFrame({"user_id": [100, 101], "item_id": [1000, 1001], "timestamp": [0, 0],
                                         "rating": [5, 5]})])
    more.to_csv(tmp_path / "more.csv", index=False)
    items = sorted(log["item_id"].unique())
    log.assign(item_id=log["item_id"].map(dict(zip(items, items[::-1])))).to_csv(tmp_path / "permuted.csv", index=False)
    cases = {
        "more": ([tmp_path / "more.csv"], f"{tmp_path / 'd.pt'} was trained on 30 items and 40 users; this data has "
                 "32 items and 40 users: train afresh without --resume, or pass another --checkpoint"),
        "permuted": ([tmp_path / "permuted.csv"], "was trained on other data of the same size (40 users, 30 items)"),
        "another split": ([tmp_path / "log.csv", "--split", "random"], "was trained on other data of the same size"),
        "another setting": ([tmp_path / "log.csv", "--set", "dims=32"], "was trained with dims=64; this run has dims=32"),
    }
    for case, (args, message) in cases.items():
        code, out, err = _resume(capsys, tmp_path, *args)
        assert code == 2 and out == "", case
        assert len(err.strip().splitlines()) == 1 and err.startswith("diffrec-tutorial: error: "), (case, err)
        assert message in err, (case, err)
        assert (tmp_path / "d.pt").read_bytes() == saved, case                  # the file untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.pt", "log.csv", "more.csv", "permuted.csv"]


def test_resume_of_a_file_that_does_not_record_its_data_checks_the_shapes(tmp_path, capsys):
    """A checkpoint without a record of its data (fit called without checkpoint_info): resumed
    when its weights fit, with a line saying the data is not checked; refused when they do not."""
    import torch

    from tutorial_lib import checkpoint as ckpt

    clicks().to_csv(tmp_path / "log.csv", index=False)
    code, _, err = run_main(capsys, "train", "diffrec", "--data", tmp_path / "log.csv", *QUICK,
                            "--checkpoint", tmp_path / "d.pt")
    assert code == 0, err
    state = torch.load(tmp_path / "d.pt", weights_only=True)
    del state["recipe"]
    ckpt.save(tmp_path / "d.pt", state)
    clicks(n_items=40).to_csv(tmp_path / "wider.csv", index=False)
    code, _, err = _resume(capsys, tmp_path, tmp_path / "wider.csv")
    assert code == 2 and "holds weights of other shapes" in err and "train afresh without --resume" in err
    code, _, err = _resume(capsys, tmp_path, tmp_path / "log.csv")
    assert code == 0 and "does not record the data it was trained on" in err, err


# ---- the README's commands

def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Command line", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    lines = [ln.split("#")[0].strip() for b in blocks for ln in b.replace("\\\n", " ").splitlines()]
    return [ln for ln in lines if ln]


def test_readme_commands_run_as_written(tmp_path, capsys, monkeypatch):
    """Each command of "Command line" on a small CSV, 2 epochs: the first two in this process
    (main() with the command's arguments), the CPU one under torchrun as written (2 processes,
    gloo); the N-GPU one is the same command but for its process count, device and file."""
    commands = readme_commands()
    assert len(commands) == 4 and "torchrun" in commands[2] and "--recommend" in commands[1]
    gpus, cpus = commands[2], commands[3]
    assert "--nproc_per_node=4" in gpus and "--device cuda" in gpus
    assert "--nproc_per_node=2" in cpus and "--device cpu" in cpus
    twin = gpus.replace("--nproc_per_node=4", "--nproc_per_node=2").replace("--device cuda", "--device cpu")
    assert twin.replace("diffrec_4gpus.pt", "diffrec_2cpus.pt") == cpus
    clicks().to_csv(tmp_path / "my_clicks.csv", index=False)
    monkeypatch.chdir(tmp_path)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    for i, command in enumerate([commands[0], commands[1], cpus]):
        args = command.replace(".venv/bin/", f"{BIN}/").split() + ["--set", "epochs=2", "eval_every=1", "--no-progress"]
        if args[0].endswith("diffrec-tutorial"):
            code, out, err = run_main(capsys, *args[1:])
        else:
            done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
            code, out, err = done.returncode, done.stdout, done.stderr
        assert code == 0, (command, err[-2000:])
        line = json.loads(out.strip().splitlines()[-1])
        assert line["model"] == "diffrec" and line["processes"] == (2 if i == 2 else 1)
        assert (tmp_path / line["checkpoint"]).exists()
        if i == 1:                                        # resumed the first run: nothing trained again
            assert line["epochs"] == 2 and line["recommendation_rows"] == 40 * 10
            assert "no checkpoint" not in err and "does not record" not in err
    assert pd.read_csv(tmp_path / "recs.csv")["user"].nunique() == 40
    assert shutil.which("diffrec-tutorial", path=str(BIN))             # the console script is installed
