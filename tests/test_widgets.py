"""The explorers' plumbing: redraws one at a time from the sliders' current values, figures out
of pyplot inside a redraw, thread guards installed by the first explorer (never on import), and
explorers that redraw from a copy, never from the model a cell may be training."""
from __future__ import annotations

import subprocess
import sys
import threading
import time

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tutorial_lib.viz import schedules, tdiffrec, widgets  # noqa: E402

ipywidgets = pytest.importorskip("ipywidgets")


@pytest.fixture(autouse=True)
def no_open_figures():
    plt.close("all")
    yield
    plt.close("all")


def _wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_show_closes_the_figure_and_keeps_its_dpi(monkeypatch):
    # a widget's PNG has the size the same figure has in a cell, whatever savefig.dpi says
    import io

    from PIL import Image

    shown = []
    monkeypatch.setattr("IPython.display.display", shown.append)
    with plt.rc_context({"savefig.dpi": 40}):
        fig = plt.figure(figsize=(2, 1), dpi=100)
        fig.add_subplot().plot([0, 1])
        widgets.show(fig)
    assert 150 < Image.open(io.BytesIO(shown[0].data)).size[0] <= 200 and not plt.get_fignums()


def test_subplots_is_plt_subplots_outside_a_redraw():
    fig, axes = widgets.subplots(1, 2, figsize=(4, 2), sharey=True)
    assert plt.gcf() is fig and len(axes) == 2
    inside = widgets.one_at_a_time(lambda: widgets.subplots(1, 2, figsize=(4, 2), sharey=True))
    other, axes = inside()
    assert other.canvas.manager is None and plt.gcf() is fig and tuple(other.get_size_inches()) == (4, 2)
    assert axes[0].get_shared_y_axes().joined(axes[0], axes[1])


def _draw_from_two_threads(controls: dict, values: list, draw_seconds: float = 0.05):
    """live_output over ``controls`` whose draw records its arguments; each of ``values``
    ({name: value}) is set on its own thread, as two widget events on two kernel threads."""
    drawn, running, peak = [], [0], [0]

    def draw(**kw):
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        time.sleep(draw_seconds)
        drawn.append(kw)
        running[0] -= 1
        return plt.figure()

    widgets.live_output(draw, controls)
    threads = []
    for v in values:
        threads.append(threading.Thread(target=lambda v=v: [setattr(controls[k], "value", x) for k, x in v.items()]))
        threads[-1].start()
        _wait_until(lambda v=v: all(controls[k].value == x for k, x in v.items()))   # then the next event
    for t in threads:
        t.join()
    return drawn, peak[0]


def test_live_output_draws_one_figure_at_a_time_and_ends_on_the_sliders_values():
    # JupyterLab >= 4.4 with ipykernel >= 7 can deliver successive slider events on two threads
    slider, user = ipywidgets.IntSlider(value=0, max=10), ipywidgets.Dropdown(options=[0, 1], value=0)
    drawn, peak = _draw_from_two_threads({"step": slider, "user": user}, [{"step": 3}, {"step": 7, "user": 1}])
    assert peak == 1, "two redraws overlapped"
    assert drawn[0] == {"step": 0, "user": 0}                  # drawn once when built
    assert drawn[-1] == {"step": slider.value, "user": user.value} == {"step": 7, "user": 1}
    assert not plt.get_fignums()


def test_a_redraw_on_another_thread_leaves_the_cells_current_figure():
    # pyplot's current figure is global: a widget redrawing on the kernel's subshell thread while
    # a cell draws on the main thread must not become the figure the cell's plt.plot draws into
    cell_figure, current = plt.figure(), []
    slider = ipywidgets.IntSlider(value=0, max=10)

    def draw(T):
        fig = schedules.draw_schedule(T=T + 2)
        current.append(plt.gcf())           # what a cell's plt.plot would draw into right now
        return fig

    widgets.live_output(draw, {"T": slider})
    thread = threading.Thread(target=lambda: setattr(slider, "value", 5))
    thread.start()
    thread.join()
    assert len(current) == 2 and all(fig is cell_figure for fig in current)
    assert plt.get_fignums() == [cell_figure.number]


def test_live_output_skips_values_it_has_already_shown():
    slider, drawn = ipywidgets.IntSlider(value=0, max=10), []
    widgets.live_output(lambda step: drawn.append(step) or plt.figure(), {"step": slider})
    threads = []
    with widgets._REDRAW_LOCK:           # two events queue up behind a redraw in progress
        for value in (2, 3):
            threads.append(threading.Thread(target=setattr, args=(slider, "value", value)))
            threads[-1].start()
            _wait_until(lambda value=value: slider.value == value)
    for t in threads:
        t.join()
    assert drawn == [0, 3]               # the first queued redraw shows 3, the second has nothing new


def test_live_output_redraws_values_whose_draw_failed(monkeypatch):
    # in a kernel, Output shows a callback's traceback and swallows the error: do the same here
    monkeypatch.setattr(ipywidgets.Output, "__exit__", lambda self, *exc: True)
    slider, calls = ipywidgets.IntSlider(value=0, max=10), []

    def draw(step):
        calls.append(step)
        if len(calls) == 2:
            raise RuntimeError("a draw that fails once")
        return plt.figure()

    widgets.live_output(draw, {"step": slider})
    threads = []
    with widgets._REDRAW_LOCK:
        for value in (7, 4):             # two queued events; both redraws read the slider's 4
            threads.append(threading.Thread(target=setattr, args=(slider, "value", value)))
            threads[-1].start()
            _wait_until(lambda value=value: slider.value == value)
    for t in threads:
        t.join()
    assert calls == [0, 4, 4]            # the failed 4 was not taken as shown


def test_snapshot_is_a_frozen_copy():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.5)).train()
    frozen = widgets.snapshot(model)
    assert model.training and all(m.training for m in model.modules())
    assert not any(m.training for m in frozen.modules())
    assert not any(p.requires_grad for p in frozen.parameters())
    with torch.no_grad():
        model[0].weight.add_(1.0)                       # a training step on the original
    assert not torch.equal(model[0].weight, frozen[0].weight)
    assert widgets.snapshot("not a module") == "not a module"


def test_an_explorer_never_touches_the_model_a_cell_is_training(synthetic):
    # a slider's callback runs on a kernel subshell thread while a cell may be training the
    # model: it redraws from the explorer's own copy, so the model keeps its mode and weights
    from tutorial_lib.models.tdiffrec import TDiffRec

    data, truth = synthetic
    torch.manual_seed(0)
    model = TDiffRec(data.n_items, dims=[16], T=4).train()
    ran = []                                # the modules that ran a forward pass
    for m in model.modules():
        m.register_forward_pre_hook(lambda module, args: ran.append(module))   # the copy keeps the hook
    originals = {id(m) for m in model.modules()}
    before = {k: v.clone() for k, v in model.state_dict().items()}
    box = tdiffrec.time_weight_explorer(model, data, 0, truth, k=5)
    w_min = box.children[0].children[0]
    thread = threading.Thread(target=setattr, args=(w_min, "value", 0.3))
    thread.start()
    thread.join()
    assert ran and not originals & {id(m) for m in ran}       # the copy ran, the original never
    assert all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


MATHTEXT_THREADS = r"""
import sys, threading
import matplotlib
matplotlib.use("Agg")
from matplotlib.mathtext import MathTextParser
from tutorial_lib.viz import widgets
if "--guarded" in sys.argv:
    widgets.install_thread_guards()

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


def test_mathtext_parses_safely_from_several_threads_once_guarded():
    # Unguarded, 3 or 4 of the 4 threads raise ParseException "at char 0" (matplotlib 3.11);
    # in a subprocess because a corrupted parser can also crash the interpreter.
    run = subprocess.run([sys.executable, "-c", MATHTEXT_THREADS, "--guarded"], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("0 "), run.stdout


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
from tutorial_lib.viz import widgets
assert flush_figures in shell.events.callbacks["post_execute"]          # importing changed nothing
widgets.live_output(lambda v: plt.figure(), {"v": w.IntSlider()})
widgets.live_output(lambda v: plt.figure(), {"v": w.IntSlider()})       # a second explorer: once
cbs = shell.events.callbacks["post_execute"]
assert flush_figures not in cbs and cbs.count(widgets._flush_figures_one_at_a_time) == 1, cbs
order = []
def redraw_in_progress():
    with widgets._REDRAW_LOCK:
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
    # the inline backend shows and closes every open pyplot figure when a cell ends; once an
    # explorer is built it waits for the redraw lock (an IPython shell, in a subprocess)
    run = subprocess.run([sys.executable, "-c", CELL_ENDS_DURING_A_REDRAW], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "order ['redraw', 'cell']" in run.stdout, run.stdout[-1000:]
