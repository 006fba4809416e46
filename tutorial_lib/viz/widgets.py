"""Plots and widgets for the notebooks, one section per notebook.

Every function draws with matplotlib/seaborn and returns the ``Figure`` (or takes an ``ax``),
so it works headless, in HTML exports and in tests. Every widget has a *static twin*: the
function behind the widget, called at the default slider values, draws the same figure
without a kernel (widget state is lost in headless runs: papermill#400, nbconvert#1214).
Only core ipywidgets are used.

Sections: general style | 00 implicit feedback | 01 noise schedules | 02 forward, reverse, ELBO.
Add a section per notebook; keep each function short and its arguments plain tensors/arrays.
"""
from __future__ import annotations

import functools
import io
import threading

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
import seaborn as sns
import torch


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.dtype in (torch.bfloat16, torch.float16) else x).numpy()   # bf16: no NumPy type
    return np.asarray(x)


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


# Widget callbacks may run on two threads at once. JupyterLab >= 4.4 sends widget messages to
# a kernel subshell, and ipykernel >= 7 runs a subshell on its own thread; successive slider
# events can land on the main shell and on the subshell, and a cell may be drawing meanwhile.
# matplotlib is not thread-safe: its mathtext parser (log-axis tick labels are mathtext) keeps
# global state and raises ParseException "at char 0" when two threads parse at once.
# Lock order, the same on every thread: _REDRAW_LOCK, then utils.MODELS_LOCK (eval_mode, fit's
# steps), then _MATHTEXT_LOCK. So code inside eval_mode or fit never builds an explorer or sets
# a widget's value.
# pyplot's list of figures and its "current figure" are global too, not per thread: a redraw
# that made its figure with plt.subplots could become the figure a cell's plt.plot draws into,
# or take the number of a figure the cell is making. So redraws make theirs with ``subplots``.
_REDRAW_LOCK = threading.RLock()
_MATHTEXT_LOCK = threading.RLock()
_IN_REDRAW = threading.local()


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


def live_output(draw, controls: dict):
    """An ``ipywidgets.Output`` showing ``draw(**values)`` now and whenever a control changes.

    ``controls`` {argument name: widget}. Like ``ipywidgets.interactive_output``, except that
    redraws never overlap (``one_at_a_time``) and each draws the controls' values as they are
    when it starts, so the last figure matches the sliders whatever order threads ran in.
    """
    import ipywidgets as w

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
    flush_cells_between_redraws()
    return out


def flush_cells_between_redraws() -> None:
    """Run the inline backend's end-of-cell figure flush under the redraw lock (IPython only).

    The flush shows and closes every open pyplot figure. The library's explorers draw outside
    pyplot (``subplots``), but a ``draw`` of your own given to ``live_output`` may use pyplot:
    a cell ending while it draws on another thread would then show its half-drawn figure in the
    cell's output and close it under the widget. Called when an explorer is built; a no-op
    outside IPython.
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


def _parse_one_at_a_time() -> None:
    """Wrap matplotlib's mathtext parser in a lock (idempotent), for figures a cell draws while a
    widget callback draws on another thread. ipympl does the same (ipympl#621)."""
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


_parse_one_at_a_time()


# =========================================================================== general
def set_style(dpi: int = 80) -> None:
    """One look for every notebook: seaborn's whitegrid, small figures (small .ipynb files)."""
    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams.update({"figure.dpi": dpi, "figure.figsize": (7, 3.5), "savefig.dpi": dpi})


# =========================================================================== 00 implicit feedback
def plot_preference_vs_clicks(preference, observed, false_pos=None, false_neg=None, title=None):
    """Heatmaps side by side: true preference (users x items) and the observed clicks.

    preference (U, I) true (possibly graded) preference; observed (U, I) 0/1 clicks;
    false_pos / false_neg (U, I) bool masks of injected noise, outlined in the clicks panel
    (red x: clicked but not preferred; blue o: preferred, exposed, not clicked).
    """
    preference, observed = _np(preference), _np(observed)
    if preference.shape != observed.shape or preference.ndim != 2:
        raise ValueError(f"preference and observed must be 2-D of one shape, got "
                         f"{preference.shape} and {observed.shape}")
    fig, axes = subplots(1, 2, figsize=(11, 0.35 * preference.shape[0] + 1.5), sharey=True)
    from matplotlib.colors import PowerNorm

    sns.heatmap(preference, ax=axes[0], cmap="viridis", cbar=True, xticklabels=False,
                norm=PowerNorm(0.5, vmin=0, vmax=float(preference.max())))
    axes[0].set(title="true preference (square-root colour scale)", xlabel="item", ylabel="user")
    sns.heatmap(observed, ax=axes[1], cmap="Greys", cbar=False, xticklabels=False, vmin=0, vmax=1)
    axes[1].set(title="observed clicks (training)", xlabel="item")
    for mask, marker, color, label in ((false_pos, "x", "tab:red", "false positive (noise click)"),
                                       (false_neg, "o", "tab:blue", "false negative (missed)")):
        if mask is not None:
            u, i = np.nonzero(_np(mask))
            style = dict(facecolors="none", edgecolors=color) if marker == "o" else dict(c=color)
            axes[1].scatter(i + 0.5, u + 0.5, marker=marker, s=25, label=label, **style)
    if false_pos is not None or false_neg is not None:
        axes[1].legend(loc="upper right", bbox_to_anchor=(1.0, -0.02), ncol=2, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_metric_bars(results: dict, metrics=("recall@20", "ndcg@20"), ax=None):
    """Bar chart of {model name: {metric: value}} for the chosen metrics."""
    rows = [(model, m, vals[m]) for model, vals in results.items() for m in metrics]
    import pandas as pd

    df = pd.DataFrame(rows, columns=["model", "metric", "value"])
    if ax is None:
        _, ax = subplots(figsize=(6, 3))
    sns.barplot(df, x="metric", y="value", hue="model", ax=ax)
    ax.set(xlabel="", ylabel="")
    return ax.figure


# =========================================================================== 01 noise schedules
def schedule_frame(betas_by_name: dict):
    """Long DataFrame (schedule, t, beta, alpha_bar, snr) for schedules {name: betas (T,)}.

    ``t`` is the paper's step 1..T divided by T, so schedules of different T line up.
    """
    import pandas as pd

    frames = []
    for name, betas in betas_by_name.items():
        b = torch.as_tensor(betas, dtype=torch.float64)
        ab = torch.cumprod(1 - b, 0)
        frames.append(pd.DataFrame({"schedule": name, "t/T": np.arange(1, len(b) + 1) / len(b),
                                    "beta_t": _np(b), "alpha_bar_t": _np(ab),
                                    "SNR(t)": _np(ab / (1 - ab))}))
    return pd.concat(frames, ignore_index=True)


def plot_schedules(betas_by_name: dict, axes=None):
    """Three panels: beta_t, alpha_bar_t and SNR(t) (log scale) against t/T, one line per schedule."""
    df = schedule_frame(betas_by_name)
    if axes is None:
        _, axes = subplots(1, 3, figsize=(13, 3.6))
    for ax, col in zip(axes, ("beta_t", "alpha_bar_t", "SNR(t)")):
        sns.lineplot(df, x="t/T", y=col, hue="schedule", ax=ax, legend=ax is axes[-1])
        ax.set_title(col)
    axes[0].set_yscale("log")
    axes[1].ticklabel_format(axis="y", useOffset=False)   # 0.99995, not "1e-5 + 9.999e-1" above the axis
    axes[2].set_yscale("log")
    if axes[-1].get_legend() is not None:
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    axes[0].figure.tight_layout()
    return axes[0].figure


def plot_marginals(samples_by_step: dict, pdf_by_step: dict | None = None, grid=None, bins: int = 60,
                   sharey: bool = True):
    """Histograms of samples, one panel per key {t or label: (N,)}; optional pdf overlay {key: (G,)}."""
    steps = list(samples_by_step)
    fig, axes = subplots(1, len(steps), figsize=(2.6 * len(steps), 2.6), sharey=sharey)
    axes = np.atleast_1d(axes)
    for ax, t in zip(axes, steps):
        ax.hist(_np(samples_by_step[t]).ravel(), bins=bins, density=True, color="tab:blue", alpha=0.5)
        if pdf_by_step is not None and grid is not None:
            ax.plot(_np(grid), _np(pdf_by_step[t]), color="black", lw=1.2, label="q(x_t), closed form")
        ax.set_title(f"t = {t}" if isinstance(t, int) else str(t))
        ax.set_xlabel("x")
    axes[0].set_ylabel("density")
    if pdf_by_step is not None:
        axes[-1].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def plot_noised_vectors(vectors: dict, items=None, ax=None):
    """One row per labelled vector {label: (I,)} as a heatmap strip: a user's x_0 and its x_t's."""
    labels = list(vectors)
    mat = np.stack([_np(v).ravel() for v in vectors.values()])
    if items is not None:
        mat = mat[:, items]
    if ax is None:
        _, ax = subplots(figsize=(11, 0.45 * len(labels) + 1))
    lim = max(1.0, float(np.abs(mat).max()))
    sns.heatmap(mat, ax=ax, cmap="RdBu_r", center=0, vmin=-lim, vmax=lim, yticklabels=labels,
                xticklabels=False, cbar_kws={"label": "value"})
    ax.set_xlabel("item")
    ax.figure.tight_layout()
    return ax.figure


def draw_schedule(schedule: str = "linear-var", T: int = 40, noise_scale: float = 0.005,
                  noise_min: float = 0.005, noise_max: float = 0.01, axes=None):
    """The schedule explorer's figure (its static twin): the chosen schedule vs DiffRec's default.

    ``noise_scale``, ``noise_min`` and ``noise_max`` only affect ``linear-var``.
    """
    from . import schedules

    kwargs = {}
    if schedule in ("linear-var", "linear_var"):
        kwargs = dict(noise_scale=noise_scale, noise_min=noise_min, noise_max=noise_max)
    try:
        betas = {f"{schedule} (T={T})": schedules.get_betas(schedule, T, **kwargs)}
    except ValueError as err:  # a slider combination the schedule rejects: say why, keep going
        if axes is None:
            fig, ax = subplots(figsize=(13, 3.6))
            ax.axis("off")
        else:
            fig = axes[0].figure
        fig.text(0.5, 0.5, str(err), ha="center", va="center", wrap=True)
        return fig
    betas["DiffRec default (linear-var, T=40)"] = schedules.get_betas("linear-var", 40)
    return plot_schedules(betas, axes=axes)


# The explorer's noise_scale / noise_min / noise_max values: 1e-4 .. 1, log-spaced, exact decimals.
SCHEDULE_SLIDER_STOPS = [float(f"{m}e{e}") for e in range(-4, 0) for m in (1, 2, 3, 4, 5, 6, 8)] + [1.0]


def schedule_explorer():
    """Sliders for schedule, T, noise_scale, noise_min, noise_max -> live ``draw_schedule`` plots.

    Returns the widget box; display it as the last expression of a cell. Without a live
    kernel, call ``draw_schedule()`` (same figure at the default values).
    """
    import ipywidgets as w
    from . import schedules

    def log_slider(value, name):     # stops 1..8 per decade, so DiffRec's 0.005 and 0.01 are exact
        return w.SelectionSlider(options=[(f"{v:g}", v) for v in SCHEDULE_SLIDER_STOPS], value=value,
                                 description=name)

    controls = dict(
        schedule=w.Dropdown(options=list(schedules.SCHEDULES), value="linear-var", description="schedule"),
        T=w.IntSlider(value=40, min=2, max=1000, step=1, description="T"),
        noise_scale=log_slider(0.005, "noise_scale"),
        noise_min=log_slider(0.005, "noise_min"),
        noise_max=log_slider(0.01, "noise_max"),
    )
    out = live_output(draw_schedule, controls)
    return w.VBox([w.HBox([controls["schedule"], controls["T"]]),
                   w.HBox([controls["noise_scale"], controls["noise_min"], controls["noise_max"]]), out])


# =========================================================================== 02 forward, reverse, ELBO
def plot_mc_check(t_steps, closed_mean, closed_std, chain_mean, chain_std, ax=None):
    """Closed-form mean/std of q(x_t|x_0) (lines) against Monte Carlo over the Markov chain (dots)."""
    if ax is None:
        _, ax = subplots(figsize=(6, 3.2))
    t = _np(t_steps)
    ax.plot(t, _np(closed_mean), color="tab:blue", label="closed form: mean")
    ax.plot(t, _np(closed_std), color="tab:orange", label="closed form: std")
    ax.scatter(t, _np(chain_mean), s=12, color="tab:blue", marker="o", label="Markov chain (MC): mean")
    ax.scatter(t, _np(chain_std), s=12, color="tab:orange", marker="s", label="Markov chain (MC): std")
    ax.set(xlabel="step t", title="q(x_t | x_0): one-shot formula vs t small steps")
    ax.legend(fontsize=8, frameon=False)
    return ax.figure


def plot_elbo_terms(terms: dict, title: str = "", ax=None):
    """Bars per step: L_0 (reconstruction, t=1), L_{t-1} (denoising matching, t=2..T), L_T (prior).

    ``terms`` as returned by ``GaussianDiffusion.elbo_terms``. The reconstruction term is a
    negative log-density and may be negative for continuous data; drawn in its own colour.
    """
    den = _np(terms["denoising_matching"]).ravel()
    T = len(den) + 1
    if ax is None:
        _, ax = subplots(figsize=(8, 3.2))
    ax.bar([1], [terms["reconstruction"]], color="tab:green", label="reconstruction  L_0")
    ax.bar(np.arange(2, T + 1), den, color="tab:blue", label="denoising matching  L_{t-1}")
    ax.bar([T + 1], [terms["prior_matching"]], color="tab:red", label="prior matching  L_T")
    ax.set_yscale("symlog", linthresh=1e-3)
    ax.set(xlabel="step t (T+1 = prior)", ylabel="nats per example", title=title)
    ax.legend(fontsize=8, frameon=False)
    return ax.figure


def plot_step_probabilities(snapshots, ax=None):
    """The StepSampler's p_t at several training steps: snapshots = [(step, p_t (T,)), ...]."""
    if ax is None:
        _, ax = subplots(figsize=(7, 3.2))
    colors = sns.color_palette("viridis", len(snapshots))
    for color, (step, p) in zip(colors, snapshots):
        p = _np(p)
        ax.plot(np.arange(1, len(p) + 1), p, color=color, label=f"after {step} updates")
    ax.set(xlabel="step t", ylabel="p_t", title="importance sampling of steps: p_t ~ sqrt(E[L_t^2])")
    ax.legend(fontsize=7, frameon=False, ncol=2)
    return ax.figure


def plot_per_step(values_by_name: dict, ylabel: str, title: str = "", logy: bool = True, ax=None):
    """One line per name {name: (T,) values at steps t = 1..T}, e.g. per-step errors of two models."""
    if ax is None:
        _, ax = subplots(figsize=(6.5, 3.2))
    for name, values in values_by_name.items():
        v = _np(values).ravel()
        ax.plot(np.arange(1, len(v) + 1), v, label=name)
    if logy:
        ax.set_yscale("log")
    ax.set(xlabel="step t", ylabel=ylabel, title=title)
    ax.legend(fontsize=8, frameon=False)
    return ax.figure
