"""reproduce.py and its recipes: every model prints the JSON contract, a run in pieces equals one run,
the data folder comes from an argument or $TUTORIAL_DATA_DIR, and a missing split names its download."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import reproduce  # noqa: E402

METRICS = ("hr@10", "ndcg@10", "masked_hr@10", "valid_ndcg@10", "best_epoch", "epochs")


# what every JSON line carries (the issues' contract), by family
COMMON = {"model", "dataset", "best_epoch", "train_seconds", "eval_seconds", "seconds_per_epoch",
          "device", "seed"}
TOP_N = {"recall@10", "recall@20", "ndcg@10", "ndcg@20"}
NEXT_ITEM = {f"{m}@{k}" for m in ("hr", "ndcg") for k in (5, 10, 20)}
ALL_MODELS = sorted(reproduce.FAMILIES)


@pytest.mark.parametrize("model", ALL_MODELS)
def test_every_model_prints_the_json_contract(model, capsys):
    result = reproduce.main([model, "--dataset", "synthetic", "--fast", "--no-progress", "--epochs", "1"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == result                               # the last stdout line is the JSON
    sequential = reproduce.FAMILIES[model] in reproduce.SEQUENTIAL
    missing = (COMMON | (NEXT_ITEM if sequential else TOP_N)) - set(result)
    assert not missing, f"{model} lacks {sorted(missing)}"
    assert result["model"] == model and result["dataset"] == "synthetic" and result["seed"] == 1
    top = 100 if sequential else 1                                  # sequential figures are x100
    assert all(0 <= result[k] <= top for k in (NEXT_ITEM if sequential else TOP_N))
    assert result["device"] in ("cpu", "cuda")
    assert isinstance(result["processor"], str) and result["processor"]   # which chip the seconds are for
    assert result["torch"] == torch.__version__                     # and which PyTorch the figures are for


def test_the_json_is_the_last_line_of_the_script_itself():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reproduce.py"), "popularity",
                          "--dataset", "synthetic"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["model"] == "popularity"


def test_pieces_are_refused_where_they_would_be_ignored():
    with pytest.raises(SystemExit, match="sequential models"):
        reproduce.main(["ldiffrec", "--dataset", "synthetic", "--checkpoint", "x.pt", "--time-limit", "1"])


def test_a_run_in_pieces_equals_one_run(tmp_path):
    # the plan for DiffuRec's 500-epoch GPU run: pause every few minutes, resume next call
    base = ["sasrec", "--dataset", "synthetic", "--fast", "--no-progress", "--epochs", "4"]
    straight = reproduce.main(base)
    assert not straight["paused"]
    calls, out = 0, {"paused": True}
    while out["paused"]:
        out = reproduce.main(base + ["--checkpoint", str(tmp_path / "s.pt"), "--time-limit", "0"])
        calls += 1
        assert calls <= 4
    assert calls == 4
    assert {k: out[k] for k in METRICS} == {k: straight[k] for k in METRICS}
    first = reproduce.main(base + ["--checkpoint", str(tmp_path / "t.pt"), "--time-limit", "0"])
    assert first["paused"] and first["valid_ndcg@10"] is None      # not validated yet: null, not NaN


def test_log_every_gives_a_line_per_epoch_before_the_json(capsys):
    reproduce.main(["sasrec", "--dataset", "synthetic", "--fast", "--no-progress", "--epochs", "2",
                    "--log-every", "1"])
    out = capsys.readouterr().out.splitlines()
    assert [ln.split()[1] for ln in out if ln.startswith("epoch")] == ["1", "2"]
    assert out[-1].startswith("{")          # the JSON line stays last


def test_evalseeds_reloads_the_best_model_and_its_eval_seed(tmp_path):
    # the spread over inference noise is only meaningful if eval seed 1 reproduces the run's own test
    from recipes import sequential

    ckpt = tmp_path / "d.pt"
    run = reproduce.main(["diffurec", "--dataset", "synthetic", "--fast", "--no-progress", "--epochs", "4",
                          "--checkpoint", str(ckpt)])
    data = sequential.loo_synthetic(seed=0)[0]
    rows = list(sequential.eval_seeds(data, str(ckpt), [1, 2], config=sequential.FAST_DIFFUREC))
    assert [r["eval_seed"] for r in rows] == [1, 2] and rows[0]["best_epoch"] == run["best_epoch"]
    assert {k: rows[0][k] for k in sequential.KEYS} == {k: run[k] for k in sequential.KEYS}


def test_command_line_refuses_what_it_would_misread(capsys):
    for argv, message in ((["sasrec", "--epochs", "0"], "--epochs: must be a positive integer, got 0"),
                          (["sasrec", "--log-every", "-1"], "--log-every: must be a positive integer"),
                          (["diffrec", "--dataset", "amazon_beauty"],
                           "diffrec runs on ml-1m_clean or synthetic, not 'amazon_beauty'")):
        with pytest.raises(SystemExit):
            reproduce.parse_args(argv)
        assert message in capsys.readouterr().err
    # each family's default data set is one it can read
    assert reproduce.parse_args(["diffurec"]).dataset == "amazon_beauty"
    assert reproduce.parse_args(["ldiffrec"]).dataset == "ml-1m_clean"


def test_time_limit_without_checkpoint_is_refused():
    with pytest.raises(SystemExit, match="checkpoint"):
        reproduce.main(["sasrec", "--dataset", "synthetic", "--fast", "--time-limit", "60"])




def test_data_folder_comes_from_the_argument_then_the_environment_then_data(monkeypatch):
    monkeypatch.delenv("TUTORIAL_DATA_DIR", raising=False)
    assert reproduce.parse_args(["diffrec"]).data_dir == "data"          # never a neighbour's path
    monkeypatch.setenv("TUTORIAL_DATA_DIR", "/somewhere/datasets")
    assert reproduce.parse_args(["diffrec"]).data_dir == "/somewhere/datasets"
    assert reproduce.parse_args(["diffrec", "--data-dir", "mine"]).data_dir == "mine"


@pytest.mark.parametrize("model, dataset, release", [("diffrec", "ml-1m_clean", "github.com/YiyanXu/DiffRec"),
                                                     ("diffurec", "amazon_beauty", "github.com/WHUIR/DiffuRec")])
def test_a_missing_split_prints_one_line_naming_its_release(tmp_path, model, dataset, release):
    # what a new user sees: one line saying where to download, not a traceback
    env = {**os.environ, "TUTORIAL_DATA_DIR": str(tmp_path / "nowhere")}
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "reproduce.py"), model],
                         capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert out.returncode != 0 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert dataset in lines[0] and release in lines[0] and str(tmp_path / "nowhere") in lines[0]


def test_a_present_split_is_not_reported_missing(tmp_path):
    (tmp_path / "amazon_beauty").mkdir()
    (tmp_path / "amazon_beauty" / "dataset.pkl").write_bytes(b"")
    assert reproduce.missing_data("amazon_beauty", str(tmp_path)) is None
    assert reproduce.missing_data("ml-1m_clean", str(tmp_path)) is not None
    assert reproduce.missing_data("synthetic", str(tmp_path / "nowhere")) is None   # generated offline


# ---- benchmarks/RESULTS.md: every "ours" figure is computed from the recorded JSON lines ----
RESULTS = (ROOT / "benchmarks" / "RESULTS.md").read_text().replace("**", "")
RUNS = [json.loads(line) for line in (ROOT / "benchmarks" / "results.jsonl").read_text().splitlines()]
TOP_N_ORDER = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")              # the tables' columns
NEXT_ITEM_ORDER = ("hr@5", "hr@10", "hr@20", "ndcg@5", "ndcg@10", "ndcg@20")


def _one_per_seed(rows):
    """The first recorded run of each seed (a seed re-run for its timing repeats its figures)."""
    seen = {}
    for r in rows:
        seen.setdefault(r["seed"], r)
    return [seen[s] for s in sorted(seen)]


def _mean_sd(values) -> str:
    import statistics

    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def _cells(values) -> str:
    return "| " + " | ".join(values) + " |"


@pytest.mark.parametrize("model", ["diffrec", "ldiffrec", "tdiffrec", "ltdiffrec", "multivae"])
def test_results_md_seed_means_come_from_results_jsonl(model):
    runs = _one_per_seed([r for r in RUNS if r.get("model") == model])
    assert [r["seed"] for r in runs] == [1, 2, 3, 4, 5]
    row = _cells(_mean_sd([r[k] for r in runs]) for k in TOP_N_ORDER)
    assert row in RESULTS, f"RESULTS.md lacks {model}'s row {row}"


@pytest.mark.parametrize("family", ["tdiffrec", "ltdiffrec"])
def test_results_md_w_min_chosen_on_validation_comes_from_the_sweep_lines(family):
    runs = [r for r in RUNS if r.get("family") == family and r["config"] == {"w_min": 0.4}]
    assert sorted(r["seed"] for r in runs) == [1, 2, 3]
    row = _cells(["", _mean_sd([r["test_recall@20"] for r in runs]), "",
                  _mean_sd([r["test_ndcg@20"] for r in runs])])
    assert row.replace("|  |", "| |") in RESULTS, f"RESULTS.md lacks {family}'s row {row}"


@pytest.mark.parametrize("model, keys, fmt", [("ease", TOP_N_ORDER, "{:.4f}"),
                                              ("popularity", TOP_N_ORDER, "{:.4f}"),
                                              ("diffurec", NEXT_ITEM_ORDER, "{:.2f}"),
                                              ("sasrec", NEXT_ITEM_ORDER, "{:.2f}"),
                                              ("seqdiffrec", NEXT_ITEM_ORDER, "{:.2f}")])
def test_results_md_single_runs_come_from_results_jsonl(model, keys, fmt):
    run = max((r for r in RUNS if r.get("model") == model), key=lambda r: r.get("epochs") or 0)
    row = _cells(fmt.format(run[k]) for k in keys)
    assert row in RESULTS, f"RESULTS.md lacks {model}'s row {row}"


def test_results_jsonl_lines_are_copies_of_the_raw_logs():
    raw = set()
    for path in (ROOT / "research" / "results").glob("*.jsonl"):
        raw |= set(path.read_text().splitlines())
    lines = (ROOT / "benchmarks" / "results.jsonl").read_text().splitlines()
    assert lines and all(line in raw for line in lines)


def test_benchmarks_are_short_and_tell_no_history():
    import re

    assert len(RESULTS.splitlines()) <= 200
    for path in [ROOT / "benchmarks" / "RESULTS.md", *sorted((ROOT / "benchmarks").rglob("*.py"))]:
        found = re.findall(r"\bsessions?\b|\bwe tried\b|\b(?:first|second|third) round\b|\b20\d\d-\d\d-\d\d\b",
                           path.read_text(), flags=re.IGNORECASE)
        assert not found, f"{path.relative_to(ROOT)}: {found}"


def test_noise_robustness_trains_every_model_it_names(synthetic):
    # benchmarks/noise_robustness.py's trainers with the ML-1M settings, one epoch each on the
    # synthetic world: each returns a model that scores every item
    import noise_robustness

    data, _ = synthetic
    trainers = noise_robustness.trainers("cpu", epochs=1)
    assert {"popularity", "ease", "diffrec", "multivae", "cfgan", "lightgcn"} <= set(trainers)
    for name, train in trainers.items():
        scores = train(data, 1).score(data, [0, 1], "test")
        assert tuple(scores.shape) == (2, data.n_items) and torch.isfinite(torch.as_tensor(scores)).all(), name
