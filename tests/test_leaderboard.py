"""benchmarks/leaderboard.py: the leaderboard is rebuilt from the recorded JSON lines."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import leaderboard as lb  # noqa: E402

LINES = (ROOT / "benchmarks" / "results.jsonl").read_text().splitlines()


def _table(lines, tmp_path) -> str:
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return lb.to_markdown(lb.leaderboard(lb.load_runs(path)))


def _row(table: str, dataset: str, name: str) -> list[str]:
    rows = [r for r in table.splitlines() if r.startswith(f"| {dataset} | {name} |")]
    assert len(rows) == 1, f"{len(rows)} rows for {dataset} {name}"
    return [c.strip() for c in rows[0].strip("|").split("|")]


def test_committed_leaderboard_is_rebuilt_from_results_jsonl():
    """Fails when a line of results.jsonl changes and leaderboard.md is not rebuilt."""
    table = lb.to_markdown(lb.leaderboard(lb.load_runs()))
    committed = (ROOT / "benchmarks" / "leaderboard.md").read_text()
    assert committed == "# Leaderboard\n\n" + table, "run .venv/bin/python benchmarks/leaderboard.py --readme README.md"
    assert (ROOT / "benchmarks" / "leaderboard.png").stat().st_size > 10_000


def test_readme_shows_the_same_table():
    readme = (ROOT / "README.md").read_text()
    block = readme.split(lb.START, 1)[1].split(lb.END, 1)[0]
    assert block.strip() == lb.to_markdown(lb.leaderboard(lb.load_runs())).strip()


def test_rows_are_mean_and_sd_over_one_run_per_seed(tmp_path):
    table = _table(LINES, tmp_path)
    diffrec = _row(table, "ml-1m_clean", "DiffRec")        # seed 1 recorded twice: counted once
    assert diffrec[3] == "0.1718 ± 0.0017 / 0.1101 ± 0.0009" and diffrec[4] == "5"
    assert diffrec[5] == "0.1787 / 0.1148" and diffrec[6].startswith("0.1697 / 0.1094")
    diffurec = _row(table, "amazon_beauty", "DiffuRec")    # the 1-epoch timing runs do not count
    assert diffurec[3] == "7.34 / 4.43" and diffurec[4] == "1"
    headline = _row(table, "ml-1m_clean", "T-DiffRec, w_min 0.4 (chosen on validation)")
    assert headline[3] == "0.1893 ± 0.0003 / 0.1233 ± 0.0005" and headline[4] == "3"


def test_a_changed_line_changes_the_table(tmp_path):
    i = next(i for i, line in enumerate(LINES) if json.loads(line).get("model") == "ease")
    changed = json.loads(LINES[i])
    changed["recall@20"] = 0.2222
    table = _table(LINES[:i] + [json.dumps(changed)] + LINES[i + 1:], tmp_path)
    assert _row(table, "ml-1m_clean", "EASE")[3] == "0.2222 / 0.1165"


def test_new_lines_land_in_their_rows_without_code_changes(tmp_path):
    base = {"dataset": "ml-1m_clean", "recall@10": 0.1, "ndcg@10": 0.08, "train_seconds": 10.0,
            "device": "cpu", "processor": "AMD EPYC", "epochs": 30}
    # a model the table has never seen (no name in leaderboard.NAMES: shown by its key)
    new = [dict(base, model="itemknn", seed=s, **{"recall@20": r, "ndcg@20": 0.09}) for s, r in ((1, 0.12), (2, 0.14))]
    new += [dict(base, model="ldiffrec", item_emb="authors", seed=6, **{"recall@20": 0.17, "ndcg@20": 0.11})]
    new += [dict(base, model="tdiffrec", w_min=0.4, seed=1, **{"recall@20": 0.1999, "ndcg@20": 0.13})]
    table = _table(LINES + [json.dumps(x) for x in new], tmp_path)
    knn = _row(table, "ml-1m_clean", "itemknn")
    assert knn[3] == "0.1300 ± 0.0141 / 0.0900 ± 0.0000" and knn[4] == "2"
    assert _row(table, "ml-1m_clean", "L-DiffRec, the authors' item embeddings")[4] == "6"     # a sixth seed joins
    assert _row(table, "ml-1m_clean", "L-DiffRec")[4] == "5"          # ours stays its own row
    # EASE on time-weighted rows is named as such, beside the plain EASE row
    weighted = _row(table, "ml-1m_clean", "EASE on T-DiffRec's time-weighted rows, w_min 0.4 (chosen on validation)")
    assert weighted[3] == "0.2016 / 0.1334" and _row(table, "ml-1m_clean", "EASE")[3] == "0.1816 / 0.1165"
    # a reproduce.py line replaces the sweep line of the same row and seed
    headline = _row(table, "ml-1m_clean", "T-DiffRec, w_min 0.4 (chosen on validation)")
    assert headline[4] == "3" and not headline[3].startswith("0.1893")


@pytest.mark.parametrize("line", ['{"model": "diffrec", "dataset": "synthetic", "recall@20": 0.4, "ndcg@20": 0.3}',
                                  '{"model": "diffrec", "dataset": "ml-1m_clean"}', '{"note": "not a run"}'])
def test_lines_that_are_not_leaderboard_runs_are_left_out(line, tmp_path):
    assert _table(LINES + [line], tmp_path) == _table(LINES, tmp_path)


def test_device_names():
    assert lb.device_name({"device": "cpu"}) == ("CPU", "Xeon")
    assert lb.device_name({"device": "cpu", "processor": "AMD EPYC"}) == ("CPU", "EPYC")
    assert lb._devices([("CPU", "Xeon"), ("CPU", "EPYC"), ("GPU", "")]) == "CPU (EPYC, Xeon), GPU"
