"""Notebook 01's pictures: noise schedules, the forward marginals, noised interaction vectors.

``draw_schedule`` is the static twin of ``schedule_explorer`` (core ipywidgets only).
"""
from __future__ import annotations

import numpy as np
import seaborn as sns
import torch

from .common import LEGEND_FONTSIZE, to_numpy
from .widgets import live_output, subplots

# column of ``schedule_frame`` -> (panel title, y-axis label), typeset with mathtext
SYMBOLS = {"beta_t": (r"$\beta_t$", r"$\beta_t$"), "alpha_bar_t": (r"$\bar\alpha_t$", r"$\bar\alpha_t$"),
           "SNR(t)": (r"$\mathrm{SNR}(t) = \bar\alpha_t\,/\,(1 - \bar\alpha_t)$", r"$\mathrm{SNR}(t)$")}


def schedule_frame(betas_by_name: dict):
    """Long DataFrame (schedule, T, t/T, beta_t, alpha_bar_t, SNR(t)) for {name: betas (T,)}.

    ``t/T`` is the paper's step 1..T divided by that schedule's T, so schedules of different
    T line up.
    """
    import pandas as pd

    frames = []
    for name, betas in betas_by_name.items():
        b = torch.as_tensor(betas, dtype=torch.float64)
        ab = torch.cumprod(1 - b, 0)
        frames.append(pd.DataFrame({"schedule": name, "T": len(b), "t/T": np.arange(1, len(b) + 1) / len(b),
                                    "beta_t": to_numpy(b), "alpha_bar_t": to_numpy(ab),
                                    "SNR(t)": to_numpy(ab / (1 - ab))}))
    return pd.concat(frames, ignore_index=True)


def plot_schedules(betas_by_name: dict, axes=None, dashed=()):
    """Three panels against t/T: beta_t (log), alpha_bar_t and SNR(t) (log), one line per schedule.

    The x-axis label names every T drawn (e.g. "t / T, with T = 1000 / 40 / 32"). The schedules
    named in ``dashed`` are drawn dashed (a reference line stays visible under one it equals).
    """
    df = schedule_frame(betas_by_name)
    if axes is None:
        _, axes = subplots(1, 3, figsize=(13, 3.6))
    Ts = " / ".join(str(T) for T in dict.fromkeys(df["T"]))
    dashes = {name: (4, 2) if name in dashed else "" for name in betas_by_name}
    for ax, col in zip(axes, ("beta_t", "alpha_bar_t", "SNR(t)")):
        sns.lineplot(df, x="t/T", y=col, hue="schedule", style="schedule", dashes=dashes, ax=ax,
                     legend=ax is axes[-1])
        ax.set(title=SYMBOLS[col][0], ylabel=SYMBOLS[col][1], xlabel=f"$t\\,/\\,T$, with T = {Ts}")
    axes[0].set_yscale("log")
    axes[1].ticklabel_format(axis="y", useOffset=False)   # 0.99995, not "1e-5 + 9.999e-1" above the axis
    axes[2].set_yscale("log")
    if axes[-1].get_legend() is not None:
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False,
                        fontsize=LEGEND_FONTSIZE, title_fontsize=LEGEND_FONTSIZE)
    axes[0].figure.tight_layout()
    return axes[0].figure


def plot_marginals(samples_by_step: dict, pdf_by_step: dict | None = None, grid=None, bins: int = 60,
                   sharey: bool = True, pdf_label: str | None = None):
    """Histograms of samples, one panel per key {t or label: (N,)}; optional pdf overlay {key: (G,)}.

    ``pdf_label`` names the overlaid curve in the legend. Default: with integer keys (steps t)
    the forward marginal "q(x_t), closed form"; with text keys (samples against the data) the
    data density "p(x_0), the data".
    """
    steps = list(samples_by_step)
    if pdf_label is None:
        by_step = all(isinstance(t, (int, np.integer)) for t in steps)
        pdf_label = r"$q(x_t)$, closed form" if by_step else r"$p(x_0)$, the data"
    fig, axes = subplots(1, len(steps), figsize=(2.6 * len(steps), 2.6), sharey=sharey)
    axes = np.atleast_1d(axes)
    for ax, t in zip(axes, steps):
        ax.hist(to_numpy(samples_by_step[t]).ravel(), bins=bins, density=True, color="tab:blue", alpha=0.5)
        if pdf_by_step is not None and grid is not None:
            ax.plot(to_numpy(grid), to_numpy(pdf_by_step[t]), color="black", lw=1.2, label=pdf_label)
        ax.set_title(f"$t = {t}$" if isinstance(t, (int, np.integer)) else str(t))
        ax.set_xlabel("$x$")
    axes[0].set_ylabel("density")
    fig.tight_layout()
    if pdf_by_step is not None and grid is not None:     # below the panels: never over a histogram
        fig.legend(*axes[-1].get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0),
                   fontsize=LEGEND_FONTSIZE, frameon=False)
    return fig


def plot_noised_vectors(vectors: dict, items=None, ax=None):
    """One row per labelled vector {label: (I,)} as a heatmap strip: a user's x_0 and its x_t's."""
    labels = list(vectors)
    mat = np.stack([to_numpy(v).ravel() for v in vectors.values()])
    if items is not None:
        mat = mat[:, to_numpy(items)]
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

    ``noise_scale``, ``noise_min`` and ``noise_max`` only affect ``linear-var``. The default is
    drawn dashed; when the chosen schedule is the default, one line is drawn and its legend
    entry says so.
    """
    from .. import schedules

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
    (name, chosen), default = next(iter(betas.items())), schedules.get_betas("linear-var", 40)
    if len(chosen) == len(default) and torch.equal(torch.as_tensor(chosen, dtype=default.dtype), default):
        return plot_schedules({f"{name} = DiffRec's default": chosen}, axes=axes)
    reference = "DiffRec default (linear-var, T=40)"
    return plot_schedules({**betas, reference: default}, axes=axes, dashed=(reference,))


# The explorer's noise_scale / noise_min / noise_max values: 1e-4 .. 1, log-spaced, exact decimals.
SCHEDULE_SLIDER_STOPS = [float(f"{m}e{e}") for e in range(-4, 0) for m in (1, 2, 3, 4, 5, 6, 8)] + [1.0]


def schedule_explorer():
    """Sliders for schedule, T, noise_scale, noise_min, noise_max -> live ``draw_schedule`` plots.

    Returns the widget box; display it as the last expression of a cell. Without a live
    kernel, call ``draw_schedule()`` (same figure at the default values).
    """
    import ipywidgets as w

    from .. import schedules

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
