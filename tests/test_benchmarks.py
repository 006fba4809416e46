"""The benchmark entry points run (smoke) and a long run split by --time-limit ends as one run."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import reproduce  # noqa: E402

METRICS = ("hr@10", "ndcg@10", "masked_hr@10", "valid_ndcg@10", "best_epoch", "epochs")


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


def test_time_limit_without_checkpoint_is_refused():
    with pytest.raises(SystemExit, match="checkpoint"):
        reproduce.main(["sasrec", "--dataset", "synthetic", "--fast", "--time-limit", "60"])
