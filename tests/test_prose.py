"""The notebooks' prose targets: little lab log, short sentences (tools/prose_stats.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))
spec = importlib.util.spec_from_file_location("prose_stats", REPO / "tools" / "prose_stats.py")
prose_stats = importlib.util.module_from_spec(spec)
spec.loader.exec_module(prose_stats)


def test_sentences_and_lab_log_are_counted():
    md = ("We train it with five seeds on a GPU. The posterior mean is $\\mu_t = a + b$ here.\n\n"
          "- a list item counts as one sentence\n\n| a | table |\n$$x = 1$$")
    sents = prose_stats.sentences(md)
    assert len(sents) == 3, sents
    assert [bool(prose_stats.LAB_LOG.search(s)) for s in sents] == [True, False, False]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_prose_targets(path):
    s = prose_stats.stats(path)
    assert s["lab_log_share"] < prose_stats.MAX_LAB_LOG_SHARE, \
        f"{path.name}: {s['lab_log_share']:.0%} of sentences are about runs/seeds/devices/releases: {s['lab_log'][:5]}"
    assert s["words_per_sentence"] < prose_stats.MAX_WORDS_PER_SENTENCE, \
        f"{path.name}: {s['words_per_sentence']:.1f} words per sentence on average"
