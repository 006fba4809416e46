"""Notebook 07's inference-sweep figure reads as the text says: hit rates from 0, which way is
better, one grid under the twin time axis."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

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
