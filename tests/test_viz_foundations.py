"""Figures of notebooks 01, 02 and 06 show every line their legends name: a reference schedule
under an equal one, a bar below the symlog threshold, a reverse path that stays on one point,
and error bars that say what they are."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from tutorial_lib import analysis, sequences  # noqa: E402
from tutorial_lib.models.diffurec import DiffuRec  # noqa: E402
from tutorial_lib.viz import diffurec, elbo, schedules  # noqa: E402


@pytest.fixture(autouse=True)
def no_open_figures():
    plt.close("all")
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def loo():
    return sequences.loo_synthetic(n_users=60, n_items=80, interactions_per_user=8, seed=0)[0]


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_schedule_at_the_default_draws_one_line_and_says_it_is_the_default():
    fig = schedules.draw_schedule("linear-var", T=40, noise_scale=0.005, noise_min=0.005, noise_max=0.01)
    drawn = [[line for line in ax.get_lines() if len(line.get_xdata())] for ax in fig.axes[:3]]
    assert [len(lines) for lines in drawn] == [1, 1, 1]
    assert _legend(fig.axes[2]) == ["linear-var (T=40) = DiffRec's default"]


def test_schedule_off_the_default_draws_the_default_dashed():
    fig = schedules.draw_schedule("linear-var", T=40, noise_scale=0.01)
    for ax in fig.axes[:3]:                                # the chosen schedule solid, the default dashed
        assert [line.get_linestyle() for line in ax.get_lines() if len(line.get_xdata())] == ["-", "--"]
    handles = dict(zip(_legend(fig.axes[2]), fig.axes[2].get_legend().get_lines()))
    assert handles["linear-var (T=40)"].get_linestyle() == "-"
    assert handles["DiffRec default (linear-var, T=40)"].get_linestyle() == "--"


def test_elbo_bars_name_the_prior_value_and_mark_a_bar_below_the_threshold():
    terms = {"reconstruction": -1.6, "denoising_matching": np.array([2.3, 0.6, 1e-4]), "prior_matching": 1.2e-5}
    ax = elbo.plot_elbo_terms(terms).axes[0]
    assert "prior matching  $L_T$ = 1.2e-05" in _legend(ax)
    (marker,) = [line for line in ax.get_lines() if line.get_marker() == "v"]
    assert marker.get_xdata()[0] == 5 and marker.get_ydata()[0] == pytest.approx(1.2e-5)   # at T + 1
    big = elbo.plot_elbo_terms({**terms, "prior_matching": 1793.8}).axes[0]
    assert "prior matching  $L_T$ = 1,794" in _legend(big)


def test_reverse_figure_draws_the_chain_state_from_the_noise(loo):
    model = DiffuRec(loo.n_items, hidden=16, n_blocks=1, heads=2, T=4).eval()
    path = analysis.reverse_path(model, loo, 0)
    ax = diffurec.draw_reverse(model, loo, 0, step=3, path=path).axes[0]
    (state,) = [line for line in ax.get_lines() if "chain's state" in line.get_label()]
    assert len(state.get_xdata()) == 4                                # x_T and the states after 3 steps
    (x0_path,) = [line for line in ax.get_lines() if line.get_label().startswith(r"$\hat x_0$, steps so far")]
    assert len(x0_path.get_xdata()) == 3
    still = [s for s in _legend(ax) if s.startswith(r"$\hat x_0$, steps so far")]
    item_map = diffurec.ItemMap(model)
    xy = item_map.project(path["x0_hat"][:3])
    hidden = np.abs(xy - xy[-1]).max() < 0.02 * np.ptp(item_map.xy)
    assert still == [r"$\hat x_0$, steps so far" + (" (all under the big dot)" if hidden else "")]


def test_diversity_error_bars_are_named_in_the_legend():
    df = pd.DataFrame({"model": ["DiffuRec"] * 4 + ["SASRec"] * 4, "user": list(range(4)) * 2,
                       "distinct": [10, 12, 13, 12, 10, 10, 10, 10],
                       "hit_one": [0, 1, 0, 0, 1, 0, 0, 0], "hit_any": [1, 1, 0, 0, 1, 0, 0, 0]})
    right = diffurec.plot_diversity(df, n_samples=8, k=10).axes[1]
    assert any("error bars: 95 % binomial" in s and "1.96$ SE, 4 users" in s for s in _legend(right))
