"""Widget plumbing: figures as PNGs, redraws one at a time, explorers that never touch a live model.

Every explorer in ``tutorial_lib.viz`` is built from three pieces:

* ``subplots``      the figure: ``plt.subplots`` in a cell, a figure pyplot never sees in a redraw;
* ``live_output``   an ``ipywidgets.Output`` redrawn from the controls' current values,
                    one redraw at a time (``one_at_a_time``);
* ``snapshot``      an eval-mode copy of the model, made when the explorer is built.

Why the locks. JupyterLab >= 4.4 sends widget messages to a kernel subshell, and ipykernel
>= 7 runs a subshell on its own thread, so a slider's callback can run while a cell runs on
the main thread, and two callbacks can run at once. matplotlib is not thread-safe:

* its mathtext parser (log-axis tick labels are mathtext) keeps global state and raises
  ParseException "at char 0" when two threads parse at once;
* pyplot's list of figures and its "current figure" are global, not per thread;
* the inline backend's end-of-cell flush shows and closes every open pyplot figure.

``install_thread_guards`` wraps the first and third in locks. It changes matplotlib and
IPython globally, so it is never run on import: the first explorer built runs it (once).
A model is never switched to eval mode under a training cell: explorers redraw from
``snapshot(model)``, so a cell may go on training the original meanwhile.

Lock order, the same on every thread: ``_REDRAW_LOCK``, then ``_MATHTEXT_LOCK``.
"""
from __future__ import annotations

import copy
import functools
import io
import threading

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

_REDRAW_LOCK = threading.RLock()
_MATHTEXT_LOCK = threading.RLock()
_IN_REDRAW = threading.local()


def show(fig) -> None:
    """Display a figure inside a widget's output as a PNG and close it: with any backend
    (inline or ipympl), a widget redrawn a hundred times then holds one image, not a hundred
    live figures."""
    from IPython.display import Image, display

    display(Image(data=png(fig), format="png"))


def png(fig) -> bytes:
    """The figure as PNG bytes, at the size a cell shows it; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi="figure", bbox_inches="tight")
    close(fig)
    return buf.getvalue()


def close(fig) -> None:
    """``plt.close(fig)`` for a figure pyplot manages; nothing to do for one ``subplots`` made
    in a redraw (pyplot never saw it)."""
    if fig.canvas.manager is not None:
        plt.close(fig)


def one_at_a_time(redraw):
    """Decorator for a widget callback: one redraw at a time, in every explorer of the library;
    the figures it makes stay out of pyplot (see ``subplots``)."""
    @functools.wraps(redraw)
    def locked(*args, **kwargs):
        with _REDRAW_LOCK:
            outer = getattr(_IN_REDRAW, "active", False)
            _IN_REDRAW.active = True
            try:
                return redraw(*args, **kwargs)
            finally:
                _IN_REDRAW.active = outer
    return locked


_SUBPLOTS_LAYOUT = ("sharex", "sharey", "squeeze", "width_ratios", "height_ratios", "subplot_kw", "gridspec_kw")


def subplots(nrows: int = 1, ncols: int = 1, **kwargs):
    """``plt.subplots(nrows, ncols, **kwargs)`` -> (fig, axes), the way every plot here makes its
    figure. In a cell it is exactly plt.subplots (the figure shows at the end of the cell).
    Inside a widget's redraw (``one_at_a_time``) it makes a plain ``Figure`` that pyplot never
    registers, so a cell running meanwhile on another thread keeps its current figure."""
    if not getattr(_IN_REDRAW, "active", False):
        return plt.subplots(nrows, ncols, **kwargs)
    layout = {k: kwargs.pop(k) for k in _SUBPLOTS_LAYOUT if k in kwargs}
    fig = Figure(**kwargs)
    return fig, fig.subplots(nrows, ncols, **layout)


def snapshot(model):
    """An eval-mode copy of ``model`` (a ``torch.nn.Module``; anything else is returned as is).

    An explorer redraws from the copy, so a widget callback on a subshell thread never
    switches the model a cell is training to eval mode, nor reads weights half-way through
    an optimiser step. The explorer shows the model as it was when built: build it again
    after more training.
    """
    if not hasattr(model, "state_dict"):
        return model
    frozen = copy.deepcopy(model)
    frozen.eval()
    frozen.requires_grad_(False)
    return frozen


def live_output(draw, controls: dict):
    """An ``ipywidgets.Output`` showing ``draw(**values)`` now and whenever a control changes.

    ``controls`` {argument name: widget}. Like ``ipywidgets.interactive_output``, except that
    redraws never overlap (``one_at_a_time``) and each draws the controls' values as they are
    when it starts, so the last figure matches the sliders whatever order threads ran in.
    Installs the thread guards (``install_thread_guards``) on its first call.
    """
    import ipywidgets as w

    install_thread_guards()
    out, shown = w.Output(), {}

    @one_at_a_time
    def redraw(*_):
        values = {name: c.value for name, c in controls.items()}
        if values == shown:              # a redraw on another thread already showed these values
            return
        with out:                        # in a kernel, Output shows a draw's error and swallows it
            out.clear_output(wait=True)
            shown.clear()
            show(draw(**values))
            shown.update(values)         # only once the figure is out

    for c in controls.values():
        c.observe(redraw, names="value")
    redraw()
    return out


def install_thread_guards() -> None:
    """Make matplotlib safe for a widget redrawing while a cell draws (idempotent).

    1. matplotlib's mathtext parser runs under ``_MATHTEXT_LOCK`` (ipympl does the same,
       ipympl#621): a cell's log-axis labels and a redraw's no longer parse at once.
    2. In IPython with the inline backend, the end-of-cell flush of pyplot's figures runs under
       ``_REDRAW_LOCK`` (``flush_cells_between_redraws``).

    Both change global state of matplotlib / IPython, so nothing in the library runs this on
    import; every explorer (``live_output``) runs it when it is built.
    """
    _parse_one_at_a_time()
    flush_cells_between_redraws()


def _parse_one_at_a_time() -> None:
    from matplotlib import _mathtext

    parse = _mathtext.Parser.parse
    if getattr(parse, "_one_at_a_time", False):
        return

    @functools.wraps(parse)
    def locked(self, *args, **kwargs):
        with _MATHTEXT_LOCK:
            return parse(self, *args, **kwargs)
    locked._one_at_a_time = True
    _mathtext.Parser.parse = locked


def flush_cells_between_redraws() -> None:
    """Run the inline backend's end-of-cell figure flush under the redraw lock (IPython only).

    The flush shows and closes every open pyplot figure. The library's explorers draw outside
    pyplot (``subplots``), but a ``draw`` of your own given to ``live_output`` may use pyplot:
    a cell ending while it draws on another thread would then show its half-drawn figure in the
    cell's output and close it under the widget. A no-op outside IPython and when done already.
    """
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import flush_figures
    except ImportError:
        return
    ip = get_ipython()
    if ip is None or flush_figures not in ip.events.callbacks.get("post_execute", []):
        return
    ip.events.unregister("post_execute", flush_figures)
    ip.events.register("post_execute", _flush_figures_one_at_a_time)


def _flush_figures_one_at_a_time():
    from matplotlib_inline.backend_inline import flush_figures

    with _REDRAW_LOCK:
        return flush_figures()
