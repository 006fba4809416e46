"""Notebooks 04-05's comparison figures: one dot per seed with the mean, and the cost curves
with their inference panel."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from tutorial_lib.viz import ldiffrec, tdiffrec  # noqa: E402


@pytest.fixture(autouse=True)
def no_open_figures():
    plt.close("all")
    yield
    plt.close("all")


def test_seed_runs_show_every_seed_and_the_mean():
    runs = {"DiffRec [64]": [{"recall@20": 0.40, "ndcg@20": 0.31}, {"recall@20": 0.38, "ndcg@20": 0.30}],
            "L-DiffRec C=2": [{"recall@20": 0.42, "ndcg@20": 0.32}, {"recall@20": 0.44, "ndcg@20": 0.33}]}
    fig = ldiffrec.plot_seed_runs(runs)
    ax = fig.axes[0]
    bars = [p.get_width() for p in ax.patches]
    assert bars == pytest.approx([0.39, 0.43])                      # the means, first model on top
    assert len(ax.collections[0].get_offsets()) == 4                # one dot per seed
    assert [t.get_text() for t in ax.get_yticklabels()] == list(runs)
    assert "higher is better" in ax.get_xlabel()
    assert tdiffrec.plot_seed_runs is ldiffrec.plot_seed_runs       # notebook 05 draws the same
    with pytest.raises(ValueError, match="no 'hr@10'"):
        ldiffrec.plot_seed_runs(runs, metrics=("hr@10",))


def test_scaling_adds_the_inference_panel_when_given():
    rows = [{"model": m, "n_items": n, "parameters": p * n, "peak_mb": p * n / 1e5, "macs": 40 * p * n}
            for m, p in (("DiffRec", 1200), ("L-DiffRec", 600)) for n in (500, 2000)]
    fig = ldiffrec.plot_scaling(rows)
    assert [ax.get_title() for ax in fig.axes] == [title for title, _ in ldiffrec.SCALING_PANELS.values()]
    assert all("lower is better" in ax.get_ylabel() for ax in fig.axes)
    assert [ax.get_legend() is not None for ax in fig.axes] == [False, False, True]   # one legend, at the side
    without = ldiffrec.plot_scaling([{k: v for k, v in r.items() if k != "macs"} for r in rows])
    assert len(without.axes) == 2
