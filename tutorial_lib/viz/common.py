"""What every notebook's figures share: one style, tensors as arrays, the metric bar chart."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

from .widgets import subplots

LEGEND_FONTSIZE = 9          # points; every legend in the library is at least 8


def to_numpy(x) -> np.ndarray:
    """A tensor (any device, with or without grad) or array-like as a NumPy array; float64 stays
    float64 (schedules keep their precision), bfloat16 / float16 become float32."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.dtype in (torch.bfloat16, torch.float16) else x).numpy()
    return np.asarray(x)


def set_style(dpi: int = 110) -> None:
    """One look for every notebook: seaborn's whitegrid, readable legends, figures at ``dpi``.

    Changes matplotlib's rcParams (the point of calling it); importing the library does not.
    """
    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams.update({"figure.dpi": dpi, "figure.figsize": (7, 3.5), "savefig.dpi": dpi,
                         "legend.fontsize": LEGEND_FONTSIZE, "legend.title_fontsize": LEGEND_FONTSIZE})


def plot_metric_bars(results: dict, metrics=("recall@20", "ndcg@20"), ax=None, errors: dict | None = None):
    """Grouped bars of {model name: {metric: value}}: one group per metric, one bar per model.

    The legend sits to the right of the axes (never over a bar); metric names with an
    underscore (``masked_hr@10``) break onto two lines so neighbouring labels never overlap.
    errors: optional {model name: {metric: half-width}} (e.g. the standard deviation over seeds),
    drawn as black error bars on those bars; a missing or NaN entry draws none.
    """
    import pandas as pd

    metrics = list(metrics)
    missing = [(model, m) for model, vals in results.items() for m in metrics if m not in vals]
    if missing:
        raise ValueError(f"no value for {missing[0][1]!r} in model {missing[0][0]!r}; "
                         f"its keys: {sorted(results[missing[0][0]])}")
    rows = [(model, m.replace("_", "\n"), vals[m]) for model, vals in results.items() for m in metrics]
    df = pd.DataFrame(rows, columns=["model", "metric", "value"])
    if ax is None:
        _, ax = subplots(figsize=(max(4.5, 1.3 * len(metrics) + 2.5), 3.2))
    sns.barplot(df, x="metric", y="value", hue="model", ax=ax)
    for model, bars in zip(results, ax.containers):             # one container per model, bars by metric
        for m, bar in zip(metrics, bars):
            err = (errors or {}).get(model, {}).get(m)
            if err is not None and np.isfinite(err):
                ax.errorbar(bar.get_x() + bar.get_width() / 2, bar.get_height(), yerr=err, fmt="none",
                            ecolor="black", elinewidth=1, capsize=3)
    ax.set(xlabel="", ylabel="metric value (higher is better)")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), frameon=False, title="model")
    ax.figure.tight_layout()
    return ax.figure
