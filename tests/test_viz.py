"""Plots and widgets: each explorer builds (no kernel needed) next to its static twin, figures
are closed after display, and the edge inputs a learner tries from the notebooks give a figure
or a clear error."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tutorial_lib import sequences, viz, viz_diffrec, viz_diffurec, viz_ldiffrec, viz_seqdiffrec  # noqa: E402
from tutorial_lib.models.diffrec import DiffRec  # noqa: E402
from tutorial_lib.models.diffurec import DiffuRec  # noqa: E402
from tutorial_lib.models.seqdiffrec import SeqDiffRec  # noqa: E402
from tutorial_lib.models.tdiffrec import TDiffRec  # noqa: E402

widgets = pytest.importorskip("ipywidgets")


@pytest.fixture(autouse=True)
def no_open_figures():
    plt.close("all")
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def loo():
    return sequences.loo_synthetic(n_users=60, n_items=80, interactions_per_user=8, seed=0)[0]


def test_plot_arrays_keep_their_precision():
    assert viz._np(torch.tensor([1e-4], dtype=torch.float64)).dtype == np.float64      # schedules stay exact
    assert viz._np(torch.tensor([0.5], dtype=torch.bfloat16)).dtype == np.float32       # bf16 has no NumPy type


def test_schedule_plot_reads_alpha_bar_without_an_offset():
    # DiffRec's alpha_bar_t runs from 0.999975 to 0.99995: matplotlib's default writes the ticks
    # as 7.5 ... 5.0 under an offset "1e-5+9.999e-1", which no learner reads at a glance
    fig = viz.draw_schedule()
    fig.canvas.draw()
    axis = fig.axes[1].yaxis
    assert axis.get_offset_text().get_text() == ""
    assert any(label.get_text().startswith("0.9999") for label in axis.get_ticklabels())


def test_show_closes_the_figure():
    fig = plt.figure()
    viz.show(fig)
    assert not plt.get_fignums()


def test_show_draws_a_widgets_figure_at_the_figures_dpi(monkeypatch):
    # a widget's PNG has the size the same figure has in a cell, whatever savefig.dpi says
    import io

    from PIL import Image

    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    with plt.rc_context({"savefig.dpi": 40}):
        fig = plt.figure(figsize=(2, 1), dpi=100)
        fig.add_subplot().plot([0, 1])
        viz.show(fig)
    assert 150 < Image.open(io.BytesIO(shown[0].data)).size[0] <= 200 and not plt.get_fignums()


def test_every_explorer_builds_a_widget(synthetic, loo, monkeypatch):
    # and draws outside pyplot: a figure registered from a widget's thread could become the
    # current figure of a cell running meanwhile (see test_a_redraw_on_another_thread_...)
    from matplotlib._pylab_helpers import Gcf

    registered, register = [], Gcf._set_new_active_manager
    monkeypatch.setattr(Gcf, "_set_new_active_manager",
                        classmethod(lambda cls, manager: (registered.append(manager), register(manager))))
    data, truth = synthetic
    torch.manual_seed(0)
    diffrec = DiffRec(data.n_items, dims=[16], T=4).eval()
    tdiffrec = TDiffRec(data.n_items, dims=[16], T=4).eval()
    diffurec = DiffuRec(loo.n_items, hidden=16, n_blocks=1, heads=2, T=4).eval()
    seqdiffrec = SeqDiffRec(loo.n_items, hidden=16, max_len=10, n_layers=1, n_heads=2, T=8).eval()
    built = [viz.schedule_explorer(),
             viz_diffrec.trajectory_explorer(diffrec, data, truth, users=[0, 1], k=5),
             viz_ldiffrec.time_weight_explorer(tdiffrec, data, 0, truth, k=5),
             viz_diffurec.reverse_explorer(diffurec, loo, users=range(2), top_k=5),
             viz_seqdiffrec.inference_explorer(seqdiffrec, loo, users=range(2))]
    assert all(isinstance(w, widgets.Widget) for w in built)
    assert not registered and not plt.get_fignums()   # explorers' figures never enter pyplot


def test_seqdiffrec_explorer_opens_at_the_models_steps(loo):
    model = SeqDiffRec(loo.n_items, hidden=16, max_len=10, n_layers=1, n_heads=2, T=60, inference_steps=40)
    box = viz_seqdiffrec.inference_explorer(model, loo, users=range(2))
    sliders = [w for w in box.children[0].children if isinstance(w, widgets.IntSlider)]
    assert [s.value for s in sliders] == [60, 40]              # not clamped to a max of 25


def test_trajectory_top_k_never_lists_seen_items(synthetic):
    data, truth = synthetic
    model = DiffRec(data.n_items, dims=[16], T=4).eval()
    traj = viz_diffrec.denoising_trajectory(model, data, 0, truth)
    listed = viz_diffrec.top_k(traj, traj.T, k=data.n_items)
    assert len(listed) == data.n_items - len(np.unique(traj.train))
    assert all(np.isfinite(score) for _, score, _ in listed)


def test_recommend_never_lists_seen_items(synthetic):
    data, _ = synthetic
    model = TDiffRec(data.n_items, dims=[16], T=4)
    row = torch.as_tensor(data.train[0].toarray()[0], dtype=torch.float32)
    top = viz_ldiffrec.recommend(model, row, data.train[0].indices, k=10 * data.n_items)
    assert len(top) == data.n_items - data.train[0].nnz and not set(top) & set(data.train[0].indices)


def test_forward_clouds_default_steps_follow_the_models_t():
    model = DiffuRec(30, hidden=8, heads=2, n_blocks=1, T=6)
    fig = viz_diffurec.draw_forward_clouds(model, n=5).figure
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert [s for s in labels if s.startswith("x_t")] == ["x_t, t = 1", "x_t, t = 3", "x_t, t = 6"]
    assert "e_i (3 items)" in labels
    plt.close(fig)
    one = viz_diffurec.draw_forward_clouds(model, items=(5,), n=5).figure
    assert "e_i (1 items)" in [t.get_text() for t in one.axes[0].get_legend().get_texts()]
    plt.close(one)
    with pytest.raises(ValueError, match=r"steps are 1-based and must lie in \[1, 6\]"):
        viz_diffurec.draw_forward_clouds(model, steps=(1, 32), n=5)


def test_trajectory_twin_and_labels_follow_the_explorer_and_the_split(synthetic):
    data, truth = synthetic
    model = DiffRec(data.n_items, dims=[16], T=4).eval()
    traj = viz_diffrec.denoising_trajectory(model, data, 0, truth, split="valid")
    fig = viz_diffrec.draw_trajectory_step(traj)                       # the explorer opens at the input
    assert fig.axes[0].get_title() == "x_4 (input)"
    assert "held-out (valid) item" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    with pytest.raises(ValueError, match="unknown split"):
        viz_diffrec.denoising_trajectory(model, data, 0, truth, split="train")


def test_sample_diversity_takes_popularity_as_its_baseline(loo):
    from tutorial_lib.models.popularity import Popularity
    model = DiffuRec(loo.n_items, hidden=16, n_blocks=1, heads=2, T=4).eval()
    table = viz_diffurec.sample_diversity(model, loo, range(3), n_samples=2, k=5, baseline=Popularity().fit(loo))
    assert set(table["model"]) == {"DiffuRec", "Popularity"}


def test_training_cost_counts_the_weights_once():
    class TwoLayers(torch.nn.Module):                 # autograd saves the 1000 x 1000 weight too
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(1000, 1000)

        def loss(self, x):
            return self.lin(torch.tanh(self.lin(x))).pow(2).mean()

    cost = viz_ldiffrec.training_cost(TwoLayers(), torch.randn(1, 1000))
    assert cost["weights_mb"] == pytest.approx(8 * 1_001_000 / 2 ** 20)
    assert cost["activations_mb"] < 0.05            # a few 1000-wide rows, not the 3.8 MB weight


def test_kl_vs_mse_plot_takes_tensors_with_grad():
    kl = torch.rand(4, requires_grad=True) + 0.1
    assert viz_seqdiffrec.plot_kl_vs_mse(torch.arange(2, 6), kl, kl * 1.0, torch.rand(4)) is not None


def test_item_clusters_plot_takes_a_tensor_with_grad():
    emb = torch.randn(30, 4, requires_grad=True)
    fig = viz_ldiffrec.plot_item_clusters(emb, np.arange(30) % 3)
    assert fig is not None


def test_held_out_targets_need_one_item_per_user(loo):
    assert viz_diffurec.held_out_targets(loo, [0, 1, 2]).shape == (3,)
    broken = loo.test.tolil()
    broken[1, :] = 0
    loo_broken = type(loo)(train=loo.train, valid=loo.valid, test=broken.tocsr(), sequences=loo.sequences)
    with pytest.raises(ValueError, match="1 users have not exactly one test item .*user 1 with 0"):
        viz_diffurec.held_out_targets(loo_broken, [0, 1, 2])


def test_draw_inference_says_which_k_the_sweep_has(loo):
    model = SeqDiffRec(loo.n_items, hidden=16, max_len=10, n_layers=1, n_heads=2, T=8).eval()
    sweep = viz_seqdiffrec.inference_sweep(model, loo, start_steps=[8], step_counts=[1], k=10)
    again = viz_seqdiffrec.inference_sweep(model, loo, start_steps=[8], step_counts=[1], k=10, progress=True)
    assert len(sweep) == 1 and sweep["hr@10"].tolist() == again["hr@10"].tolist()   # (8, 1) once; the bar changes nothing
    with pytest.raises(ValueError, match=r"no hr@5 column .*hr@10"):
        viz_seqdiffrec.draw_inference(model, loo, 0, sweep=sweep, k=5)
    assert viz_seqdiffrec.draw_inference(model, loo, 0, k=10 * loo.n_items) is not None   # k capped



def test_held_out_targets_reject_ids_out_of_range(loo):
    with pytest.raises(ValueError, match="out of range"):      # -2 must not give user 58's target
        viz_diffurec.held_out_targets(loo, [-2])
    with pytest.raises(ValueError, match="out of range"):
        viz_diffurec.held_out_targets(loo, [loo.n_users])


def test_inference_helpers_leave_the_models_mode_as_they_found_it(loo):
    from tutorial_lib.models.sasrec import SASRec
    torch.manual_seed(0)
    diffurec = DiffuRec(loo.n_items, hidden=16, n_blocks=1, heads=2, T=4).train()
    sasrec = SASRec(loo.n_items, hidden=16, n_blocks=1).train()
    seqdiffrec = SeqDiffRec(loo.n_items, hidden=16, max_len=10, n_layers=1, T=10).train()
    viz_diffurec.reverse_path(diffurec, loo, 0)
    viz_diffurec.rank_by_step(diffurec, loo, range(3))
    viz_diffurec.sample_diversity(diffurec, loo, range(3), n_samples=2, baseline=sasrec)
    viz_seqdiffrec.inference_sweep(seqdiffrec, loo, start_steps=[5])
    viz_seqdiffrec.user_probabilities(seqdiffrec, loo, 0, 5, 1)
    for model in (diffurec, sasrec, seqdiffrec):               # a training loop afterwards keeps dropout
        assert all(m.training for m in model.modules())
    seqdiffrec.eval()
    part = next(seqdiffrec.children()).train()                 # a mixed state comes back as it was
    viz_seqdiffrec.user_probabilities(seqdiffrec, loo, 0, 5, 1)
    assert not seqdiffrec.training and part.training


def test_denoising_trajectories_leave_the_models_mode_as_they_found_it(synthetic):
    data, truth = synthetic
    model = DiffRec(data.n_items, dims=[16], T=4).train()
    viz_diffrec.denoising_trajectories(model, data, [0, 1], truth)
    assert all(m.training for m in model.modules())
    model.eval()
    part = next(model.children()).train()                      # a mixed state comes back as it was
    viz_diffrec.denoising_trajectories(model, data, [0, 1], truth)
    assert not model.training and part.training


def _draw_from_two_threads(controls: dict, values: list, draw_seconds: float = 0.05):
    """live_output over ``controls`` whose draw records its arguments; each of ``values``
    ({name: value}) is set on its own thread, as two widget events on two kernel threads."""
    import threading
    import time

    drawn, running, peak = [], [0], [0]

    def draw(**kw):
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        time.sleep(draw_seconds)
        drawn.append(kw)
        running[0] -= 1
        return plt.figure()

    viz.live_output(draw, controls)
    threads = []
    for v in values:
        threads.append(threading.Thread(target=lambda v=v: [setattr(controls[k], "value", x) for k, x in v.items()]))
        threads[-1].start()
        _wait_until(lambda v=v: all(controls[k].value == x for k, x in v.items()))   # then the next event
    for t in threads:
        t.join()
    return drawn, peak[0]


def _wait_until(condition, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_live_output_draws_one_figure_at_a_time_and_ends_on_the_sliders_values():
    # JupyterLab >= 4.4 with ipykernel >= 7 can deliver successive slider events on two threads;
    # two overlapping matplotlib draws raised ParseException in the browser test.
    slider, user = widgets.IntSlider(value=0, max=10), widgets.Dropdown(options=[0, 1], value=0)
    drawn, peak = _draw_from_two_threads({"step": slider, "user": user}, [{"step": 3}, {"step": 7, "user": 1}])
    assert peak == 1, "two redraws overlapped"
    assert drawn[0] == {"step": 0, "user": 0}                  # drawn once when built
    assert drawn[-1] == {"step": slider.value, "user": user.value} == {"step": 7, "user": 1}
    assert not plt.get_fignums()


def test_a_redraw_on_another_thread_leaves_the_cells_current_figure():
    # pyplot's current figure is global: a widget redrawing on the kernel's subshell thread while
    # a cell draws on the main thread must not become the figure the cell's plt.plot draws into
    import threading

    plt.close("all")
    cell_figure, current = plt.figure(), []
    slider = widgets.IntSlider(value=0, max=10)

    def draw(T):
        fig = viz.draw_schedule(T=T + 2)
        current.append(plt.gcf())           # what a cell's plt.plot would draw into right now
        return fig

    viz.live_output(draw, {"T": slider})
    thread = threading.Thread(target=lambda: setattr(slider, "value", 5))
    thread.start()
    thread.join()
    assert len(current) == 2 and all(fig is cell_figure for fig in current)
    assert plt.get_fignums() == [cell_figure.number]
    plt.close("all")


def test_subplots_is_plt_subplots_outside_a_redraw():
    fig, axes = viz.subplots(1, 2, figsize=(4, 2), sharey=True)
    assert plt.gcf() is fig and len(axes) == 2
    inside = viz.one_at_a_time(lambda: viz.subplots(1, 2, figsize=(4, 2), sharey=True))
    other, axes = inside()
    assert other.canvas.manager is None and plt.gcf() is fig and tuple(other.get_size_inches()) == (4, 2)
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[1])
    plt.close("all")


def test_live_output_skips_values_it_has_already_shown():
    import threading

    slider, drawn = widgets.IntSlider(value=0, max=10), []
    viz.live_output(lambda step: drawn.append(step) or plt.figure(), {"step": slider})
    threads = []
    with viz._REDRAW_LOCK:               # two events queue up behind a redraw in progress
        for value in (2, 3):
            threads.append(threading.Thread(target=setattr, args=(slider, "value", value)))
            threads[-1].start()
            _wait_until(lambda value=value: slider.value == value)
    for t in threads:
        t.join()
    assert drawn == [0, 3]               # the first queued redraw shows 3, the second has nothing new


def test_live_output_redraws_values_whose_draw_failed(monkeypatch):
    import threading

    # in a kernel, Output shows a callback's traceback and swallows the error: do the same here
    monkeypatch.setattr(widgets.Output, "__exit__", lambda self, *exc: True)
    slider, calls = widgets.IntSlider(value=0, max=10), []

    def draw(step):
        calls.append(step)
        if len(calls) == 2:
            raise RuntimeError("a draw that fails once")
        return plt.figure()

    viz.live_output(draw, {"step": slider})
    threads = []
    with viz._REDRAW_LOCK:
        for value in (7, 4):             # two queued events; both redraws read the slider's 4
            threads.append(threading.Thread(target=setattr, args=(slider, "value", value)))
            threads[-1].start()
            _wait_until(lambda value=value: slider.value == value)
    for t in threads:
        t.join()
    assert calls == [0, 4, 4]            # the failed 4 was not taken as shown


def test_trajectory_explorer_redraws_under_the_explorers_lock(synthetic, monkeypatch):
    data, truth = synthetic
    model = DiffRec(data.n_items, dims=[16], T=4).eval()
    held = []
    draw = viz_diffrec.draw_trajectory_step
    monkeypatch.setattr(viz_diffrec, "draw_trajectory_step",
                        lambda *a: held.append(viz._REDRAW_LOCK._is_owned()) or draw(*a))
    box = viz_diffrec.trajectory_explorer(model, data, truth, users=[0, 1], k=5)
    box.children[0].children[1].value = 2                       # the step slider
    assert held == [True, True]


MATHTEXT_THREADS = r"""
import sys, threading
import matplotlib
matplotlib.use("Agg")
from matplotlib.mathtext import MathTextParser
import tutorial_lib.viz

errors = []
def work(k):
    parser = MathTextParser("agg")
    try:
        for i in range(60):     # log-axis tick labels are mathtext; distinct strings defeat the cache
            parser.parse(f"$\\mathdefault{{10^{{-{k}.{i}}}}}\\ x_{{{k}_{i}}}$", dpi=72)
    except Exception as err:
        errors.append(repr(err))
threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
print(len(errors), errors[:1])
"""


def test_mathtext_parses_safely_from_several_threads():
    # Without the lock 3 or 4 of the 4 threads raise ParseException "at char 0" (matplotlib 3.11),
    # in a subprocess because a corrupted parser can also crash the interpreter.
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", MATHTEXT_THREADS], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("0 "), run.stdout


def test_schedule_explorer_opens_on_diffrecs_exact_values():
    box = viz.schedule_explorer()
    sliders = {c.description: c.value for row in box.children[:2] for c in row.children}
    assert sliders == {"schedule": "linear-var", "T": 40, "noise_scale": 0.005, "noise_min": 0.005,
                       "noise_max": 0.01}
    assert 0.6 in viz.SCHEDULE_SLIDER_STOPS and max(viz.SCHEDULE_SLIDER_STOPS) == 1.0   # exercise 2's values


CELL_ENDS_DURING_A_REDRAW = r"""
import threading, time
import matplotlib
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
matplotlib.use("module://matplotlib_inline.backend_inline")
from matplotlib_inline.backend_inline import configure_inline_support
configure_inline_support(shell, "inline")
import matplotlib.pyplot as plt
import ipywidgets as w
from matplotlib_inline.backend_inline import flush_figures
from tutorial_lib import viz
assert flush_figures in shell.events.callbacks["post_execute"]
viz.live_output(lambda v: plt.figure(), {"v": w.IntSlider()})
cbs = shell.events.callbacks["post_execute"]
assert flush_figures not in cbs and viz._flush_figures_one_at_a_time in cbs, cbs
order = []
def redraw_in_progress():
    with viz._REDRAW_LOCK:
        started.set()
        time.sleep(0.5)
        order.append("redraw")
started = threading.Event()
t = threading.Thread(target=redraw_in_progress)
t.start()
started.wait()
shell.run_cell("import matplotlib.pyplot as plt; plt.plot([1, 2]);")
order.append("cell")
t.join()
print("order", order)
"""


def test_a_cell_that_ends_during_a_redraw_waits_before_flushing_figures():
    # the inline backend shows and closes every open pyplot figure when a cell ends; under the
    # redraw lock it no longer grabs a widget's half-drawn figure (an IPython shell, in a subprocess)
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", CELL_ENDS_DURING_A_REDRAW], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "order ['redraw', 'cell']" in run.stdout, run.stdout[-1000:]
