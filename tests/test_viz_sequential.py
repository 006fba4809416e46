"""Notebook 07's inference-sweep figure reads as the text says: hit rates from 0, which way is
better, one grid under the twin time axis, the binomial band of each hit rate."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from tutorial_lib import analysis  # noqa: E402
from tutorial_lib.viz import seqdiffrec  # noqa: E402


def test_inference_sweep_starts_at_zero_and_says_higher_is_better():
    sweep = pd.DataFrame({"start_step": [1, 50, 100, 100, 100], "steps": [1, 1, 1, 5, 25],
                          "hr@10": [0.04, 0.11, 0.11, 0.175, 0.148], "seconds": [0.1, 0.1, 0.1, 0.3, 1.2]})
    fig = seqdiffrec.plot_inference_sweep(sweep, mark=(100, 5))
    left, right, twin = fig.axes
    for ax in (left, right):
        assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] >= 0.175
        assert ax.get_ylabel() == "HR@10 (higher is better)"
    assert twin.get_ylim()[0] == 0 and not any(line.get_visible() for line in twin.get_ygridlines())
    plt.close(fig)
    sweep.attrs["split"] = "valid"                    # as analysis.inference_sweep(split="valid") sets it
    fig = seqdiffrec.plot_inference_sweep(sweep)
    assert fig.axes[0].get_ylabel() == "validation HR@10 (higher is better)"
    plt.close(fig)


def test_inference_sweep_shades_the_binomial_band_of_each_hit_rate():
    sweep = pd.DataFrame({"start_step": [1, 50, 100, 100, 100], "steps": [1, 1, 1, 5, 25],
                          "hr@10": [0.04, 0.11, 0.11, 0.175, 0.148], "seconds": [0.1, 0.1, 0.1, 0.3, 1.2],
                          "users": 600})
    fig = seqdiffrec.plot_inference_sweep(sweep, mark=(100, 5))
    left, right = fig.axes[:2]
    for ax, rates in ((left, [0.04, 0.11, 0.11]), (right, [0.11, 0.175, 0.148])):
        (band,) = ax.collections
        low, high = analysis.binomial_band(np.array(rates), 600)
        ys = band.get_paths()[0].vertices[:, 1]
        assert ys.min() == pytest.approx(low.min()) and ys.max() == pytest.approx(high.max())
        assert ax.get_ylim()[1] >= high.max()                 # the whole band is in view
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[1] == r"95 % binomial band ($\pm 1.96$ SE, 600 users)" and labels[-1] == "chosen: s = 100, K = 5"
    renderer = fig.canvas.get_renderer()                        # below the panels, off the data
    assert legend.get_window_extent(renderer).y1 <= min(ax.get_window_extent(renderer).y0 for ax in (left, right))
    plt.close(fig)
    fig = seqdiffrec.plot_inference_sweep(sweep.drop(columns="users"))   # users unknown: no band
    assert not fig.axes[0].collections
    plt.close(fig)
    fig = seqdiffrec.plot_inference_sweep(sweep.drop(columns="users"), n_users=150)
    assert "150 users" in [t.get_text() for t in fig.legends[0].get_texts()][1]
    plt.close(fig)
