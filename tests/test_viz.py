"""Figures: each explorer builds (no kernel needed) next to its static twin, and the figures
read as they should: legends outside shared bars and never under 8 pt, typeset symbols, the
axes the notebooks' text refers to, and the edge inputs a learner tries give a figure or a
clear error."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tutorial_lib import analysis, sequences, viz  # noqa: E402
from tutorial_lib.models.diffrec import DiffRec  # noqa: E402
from tutorial_lib.models.diffurec import DiffuRec  # noqa: E402
from tutorial_lib.models.seqdiffrec import SeqDiffRec  # noqa: E402
from tutorial_lib.models.tdiffrec import TDiffRec  # noqa: E402
from tutorial_lib.viz import common, diffrec, diffurec, elbo, ldiffrec, schedules, seqdiffrec, tdiffrec  # noqa: E402

widgets = pytest.importorskip("ipywidgets")


@pytest.fixture(autouse=True)
def no_open_figures():
    plt.close("all")
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def loo():
    return sequences.loo_synthetic(n_users=60, n_items=80, interactions_per_user=8, seed=0)[0]


def _legend_sizes(fig) -> list[float]:
    legends = [ax.get_legend() for ax in fig.axes] + list(fig.legends)
    return [t.get_fontsize() for lg in legends if lg is not None for t in lg.get_texts()]


def test_plot_arrays_keep_their_precision():
    assert common.to_numpy(torch.tensor([1e-4], dtype=torch.float64)).dtype == np.float64   # schedules stay exact
    assert common.to_numpy(torch.tensor([0.5], dtype=torch.bfloat16)).dtype == np.float32    # bf16 has no NumPy type


def test_set_style_sets_the_dpi_and_readable_legends():
    with plt.rc_context():
        viz.set_style()
        assert plt.rcParams["figure.dpi"] == 110 and plt.rcParams["legend.fontsize"] >= 8


def test_metric_bars_put_the_legend_outside_and_labels_apart():
    results = {name: {"hr@10": 0.1 * j, "ndcg@10": 0.05 * j, "masked_hr@10": 0.12 * j, "masked_ndcg@10": 0.06 * j}
               for j, name in enumerate(["popularity", "SASRec", "DiffuRec", "SeqDiffRec"], start=1)}
    fig = viz.plot_metric_bars(results, metrics=list(results["SASRec"]))
    fig.canvas.draw()
    ax, renderer = fig.axes[0], fig.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.x0 >= ax.get_window_extent(renderer).x1              # right of the bars
    assert ax.get_ylabel()
    boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels()]
    assert len(boxes) == 4 and all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:]))
    with pytest.raises(ValueError, match="no value for 'recall@20'"):
        viz.plot_metric_bars(results, metrics=("recall@20",))


def test_metric_bars_draw_the_given_error_bars_on_their_bars():
    results = {"a": {"recall@20": 0.4, "ndcg@20": 0.3}, "b": {"recall@20": 0.2, "ndcg@20": 0.1}}
    fig = viz.plot_metric_bars(results, errors={"a": {"recall@20": 0.05, "ndcg@20": float("nan")}})
    ax = fig.axes[0]
    segments = [seg for coll in ax.collections for seg in coll.get_segments()]
    assert len(segments) == 1                                         # NaN and missing entries draw none
    (x0, y0), (x1, y1) = segments[0]
    bar = ax.containers[0][0]                                         # model "a", recall@20
    assert x0 == x1 == pytest.approx(bar.get_x() + bar.get_width() / 2)
    assert (y0, y1) == pytest.approx((0.35, 0.45))


def test_schedule_plot_typesets_its_symbols_and_names_every_T():
    # DiffRec's alpha_bar_t runs from 0.999975 to 0.99995: ticks like 0.99998, never an offset
    fig = schedules.plot_schedules({"linear (T=1000)": torch.linspace(1e-4, 0.02, 1000),
                                    "DiffRec (T=40)": torch.linspace(5e-5, 1e-4, 40)})
    fig.canvas.draw()
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert titles[0] == r"$\beta_t$" and titles[1] == r"$\bar\alpha_t$" and "SNR" in titles[2]
    assert "T = 1000 / 40" in fig.axes[0].get_xlabel() and "t" in fig.axes[0].get_xlabel()
    axis = schedules.draw_schedule().axes[1].yaxis
    axis.figure.canvas.draw()
    assert axis.get_offset_text().get_text() == ""
    assert any(label.get_text().startswith("0.9999") for label in axis.get_ticklabels())


def test_marginals_name_the_density_they_overlay():
    grid, x = torch.linspace(-3, 3, 20), torch.randn(200)
    by_step = schedules.plot_marginals({1: x, 50: x}, {1: grid.abs(), 50: grid.abs()}, grid)
    data = schedules.plot_marginals({"data x_0": x, "generated": x}, {"data x_0": grid.abs(), "generated": grid.abs()}, grid)
    assert [t.get_text() for t in by_step.legends[0].get_texts()] == [r"$q(x_t)$, closed form"]
    assert [t.get_text() for t in data.legends[0].get_texts()] == [r"$p(x_0)$, the data"]


def test_every_legend_is_at_least_8_points(synthetic, loo):
    data, truth = synthetic
    torch.manual_seed(0)
    model = DiffRec(data.n_items, dims=[16], T=4).eval()
    traj = analysis.denoising_trajectory(model, data, 0, truth)
    diffu = DiffuRec(loo.n_items, hidden=16, n_blocks=1, heads=2, T=4).eval()
    terms = {"reconstruction": 0.5, "denoising_matching": np.ones(3), "prior_matching": 1e-4}
    figs = [schedules.draw_schedule(), diffrec.draw_trajectory_step(traj), diffrec.draw_trajectory_grid(traj),
            diffrec.plot_noise_rank(np.linspace(50, 80, 5), {"EASE": 70.0}),
            diffrec.plot_ablation([{"input dropout": 0.5, "noise scale": 0.005, "noise rank": 70.0, "recall@20": 0.3}]),
            elbo.plot_elbo_terms(terms), elbo.plot_step_probabilities([(0, np.ones(4) / 4), (9, np.ones(4) / 4)]),
            viz.plot_metric_bars({"a": {"recall@20": 0.1, "ndcg@20": 0.1}}),
            ldiffrec.plot_latent_code(torch.randn(6), torch.randn(6), [3, 3]),
            diffurec.draw_forward_clouds(diffu, n=5), diffurec.draw_reverse(diffu, loo, 0),
            seqdiffrec.plot_kl_vs_mse(np.arange(2, 6), np.ones(4), np.ones(4), np.ones(4))]
    for fig in figs:
        sizes = _legend_sizes(fig)
        assert sizes and min(sizes) >= 8, (fig.axes[0].get_title(), sizes)


def test_every_explorer_builds_a_widget(synthetic, loo, monkeypatch):
    # and draws outside pyplot: a figure registered from a widget's thread could become the
    # current figure of a cell running meanwhile (tests/test_widgets.py)
    from matplotlib._pylab_helpers import Gcf

    registered, register = [], Gcf._set_new_active_manager
    monkeypatch.setattr(Gcf, "_set_new_active_manager",
                        classmethod(lambda cls, manager: (registered.append(manager), register(manager))))
    data, truth = synthetic
    torch.manual_seed(0)
    built = [schedules.schedule_explorer(),
             diffrec.trajectory_explorer(DiffRec(data.n_items, dims=[16], T=4), data, truth, users=[0, 1], k=5),
             tdiffrec.time_weight_explorer(TDiffRec(data.n_items, dims=[16], T=4), data, 0, truth, k=5),
             diffurec.reverse_explorer(DiffuRec(loo.n_items, hidden=16, n_blocks=1, heads=2, T=4), loo,
                                       users=range(2), top_k=5),
             seqdiffrec.inference_explorer(SeqDiffRec(loo.n_items, hidden=16, max_len=10, n_layers=1, n_heads=2,
                                                      T=8), loo, users=range(2))]
    assert all(isinstance(w, widgets.Widget) for w in built)
    assert not registered and not plt.get_fignums()   # explorers' figures never enter pyplot


def test_schedule_explorer_opens_on_diffrecs_exact_values():
    box = schedules.schedule_explorer()
    sliders = {c.description: c.value for row in box.children[:2] for c in row.children}
    assert sliders == {"schedule": "linear-var", "T": 40, "noise_scale": 0.005, "noise_min": 0.005,
                       "noise_max": 0.01}
    assert 0.6 in schedules.SCHEDULE_SLIDER_STOPS and max(schedules.SCHEDULE_SLIDER_STOPS) == 1.0   # exercise 2


def test_seqdiffrec_explorer_opens_at_the_models_steps(loo):
    model = SeqDiffRec(loo.n_items, hidden=16, max_len=10, n_layers=1, n_heads=2, T=60, inference_steps=40)
    box = seqdiffrec.inference_explorer(model, loo, users=range(2))
    sliders = [w for w in box.children[0].children if isinstance(w, widgets.IntSlider)]
    assert [s.value for s in sliders] == [60, 40]              # not clamped to a max of 25


def test_trajectory_twin_follows_the_explorer_and_the_split(synthetic):
    data, truth = synthetic
    model = DiffRec(data.n_items, dims=[16], T=4).eval()
    traj = analysis.denoising_trajectory(model, data, 0, truth, split="valid")
    fig = diffrec.draw_trajectory_step(traj)                       # the explorer opens at the input
    assert fig.axes[0].get_title() == "$x_{4}$ (input)"
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["training click", "injected noise click"]    # unseen items all tie: no top-k yet
    shown = lambda f: sum(len(c.get_offsets()) for c in f.axes[0].collections)   # noqa: E731
    assert shown(fig) == len(traj.train)
    out = diffrec.draw_trajectory_step(traj, traj.T, k=5)          # clicks and the top-5 unseen, nothing else
    assert shown(out) == len(traj.train) + 5
    traj.held_out = np.asarray([analysis.top_k(traj, traj.T, 5)[0][0]])   # make the first of them a hit
    labels = [t.get_text() for t in diffrec.draw_trajectory_step(traj, traj.T, k=5).axes[0].get_legend().get_texts()]
    assert labels[-2:] == ["top-5 unseen item", "top-5 unseen, held-out (valid) hit"]


def test_ablation_plot_says_which_way_is_better():
    rows = [{"input dropout": p, "noise scale": s, "noise rank": 70 + 5 * p, "recall@20": 0.3 + p / 10}
            for p in (0.5, 0.0) for s in (1e-6, 0.005)]
    fig = diffrec.plot_ablation(rows, references={"EASE": 82.0}, scale_labels={1e-6: "~0"})
    assert "up = better" in fig.axes[0].get_ylabel() and "up = better" in fig.axes[1].get_ylabel()
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["~0", "0.005"]
    assert [t.get_text() for t in fig.axes[1].texts] == ["0.350", "0.350", "0.300", "0.300"]   # values on the bars
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["input dropout 0.5", "input dropout 0", "EASE", "chance"]
    with pytest.raises(ValueError, match="recall@20"):
        diffrec.plot_ablation([{"input dropout": 0.5, "noise scale": 0.005, "noise rank": 70.0}])


def test_trajectory_explorer_redraws_under_the_redraw_lock(synthetic, monkeypatch):
    from tutorial_lib.viz import widgets as plumbing

    data, truth = synthetic
    held, draw = [], diffrec.draw_trajectory_step
    monkeypatch.setattr(diffrec, "draw_trajectory_step",
                        lambda *a: held.append(plumbing._REDRAW_LOCK._is_owned()) or draw(*a))
    box = diffrec.trajectory_explorer(DiffRec(data.n_items, dims=[16], T=4), data, truth, users=[0, 1], k=5)
    box.children[0].children[1].value = 2                       # the step slider
    assert held == [True, True] and box.children[0].children[2].value == "showing x_2"


def test_forward_clouds_default_steps_follow_the_models_t():
    model = DiffuRec(30, hidden=8, heads=2, n_blocks=1, T=6)
    fig = diffurec.draw_forward_clouds(model, n=5).figure
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert [s for s in labels if s.startswith("$x_t$")] == ["$x_t$, $t$ = 1", "$x_t$, $t$ = 3", "$x_t$, $t$ = 6"]
    assert "$e_i$ (3 items)" in labels
    with pytest.raises(ValueError, match=r"steps are 1-based and must lie in \[1, 6\]"):
        diffurec.draw_forward_clouds(model, steps=(1, 32), n=5)


def test_reverse_figure_says_the_rank_is_by_dot_product(loo):
    model = DiffuRec(loo.n_items, hidden=16, n_blocks=1, heads=2, T=4).eval()
    path = analysis.reverse_path(model, loo, 0)
    fig = diffurec.draw_reverse(model, loo, 0, step=2, path=path)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    rank = int(path["target_rank"][1])
    assert any(f"rank {rank} by" in s and r"\cdot e_i" in s for s in labels), labels
    assert "dot product" in fig.axes[0].get_title()


def test_rank_by_step_plot_starts_at_zero_with_a_binomial_band():
    by_step = pd.DataFrame({"step": [1, 2, 3], "hr@10": [0.153, 0.173, 0.16], "users": 150})
    ax = diffurec.plot_rank_by_step(by_step).axes[0]
    low, high = analysis.binomial_band(0.16, 150)
    (band,) = [p for p in ax.patches if p.get_alpha() == 0.12]
    assert ax.get_ylim()[0] == 0
    assert (band.get_y(), band.get_y() + band.get_height()) == pytest.approx((low, high))   # of the last step


def test_diversity_plot_fits_the_data_and_starts_at_zero(loo):
    df = pd.DataFrame({"model": ["DiffuRec"] * 4 + ["SASRec"] * 4, "user": list(range(4)) * 2,
                       "distinct": [10, 12, 13, 12, 10, 10, 10, 10],
                       "hit_one": [0, 1, 0, 0, 1, 0, 0, 0], "hit_any": [1, 1, 0, 0, 1, 0, 0, 0]})
    fig = diffurec.plot_diversity(df, n_samples=8, k=10)
    left, right = fig.axes[:2]
    assert left.get_xlim() == (9, 14)                              # not 10..80 for 8 lists of 10
    assert right.get_ylim()[0] == 0 and len(right.containers) >= 2
    assert _legend_sizes(fig) and min(_legend_sizes(fig)) >= 8


def test_draw_inference_says_which_k_the_sweep_has(loo):
    model = SeqDiffRec(loo.n_items, hidden=16, max_len=10, n_layers=1, n_heads=2, T=8).eval()
    sweep = analysis.inference_sweep(model, loo, start_steps=[8], step_counts=[1], k=10)
    with pytest.raises(ValueError, match=r"no hr@5 column .*hr@10"):
        seqdiffrec.draw_inference(model, loo, 0, sweep=sweep, k=5)
    assert seqdiffrec.draw_inference(model, loo, 0, k=10 * loo.n_items) is not None   # k capped


def test_time_weight_bars_name_their_colours_beside_the_panels(synthetic):
    data, truth = synthetic
    model = TDiffRec(data.n_items, dims=[16], T=4).eval()
    fig = tdiffrec.draw_time_weights(model, data, 3, 0.1, 1.0, truth, k=5)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.get_texts()] == ["interest 1 (early)", "interest 2 (late)",
                                                          "outside the user's\ninterests"]
    renderer = fig.canvas.get_renderer()
    assert legend.get_window_extent(renderer).x0 >= max(ax.get_window_extent(renderer).x1 for ax in fig.axes)
    assert min(_legend_sizes(fig)) >= 8
    plt.close(fig)
    fig = tdiffrec.draw_time_weights(model, data, 3, 0.1, 1.0, None, k=5)   # one colour: nothing to name
    assert not fig.legends
    plt.close(fig)


def test_plots_take_tensors_with_grad():
    kl = torch.rand(4, requires_grad=True) + 0.1
    assert seqdiffrec.plot_kl_vs_mse(torch.arange(2, 6), kl, kl * 1.0, torch.rand(4)) is not None
    assert ldiffrec.plot_item_clusters(torch.randn(30, 4, requires_grad=True), np.arange(30) % 3) is not None
    z = torch.randn(6, requires_grad=True)
    assert ldiffrec.plot_latent_code(z, z * 2, [3, 3]) is not None


# ----- figures of notebooks 01, 02 and 06: every line a legend names is drawn, error bars say what they are
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
