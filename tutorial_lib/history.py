"""History: what happened during :func:`tutorial_lib.train.fit`, JSON-able and plottable.

``history.valid`` and ``history.test`` hold ``(epoch, {"recall@20": ..., ...})`` pairs;
``best_valid`` / ``best_test`` are the metrics at ``best_epoch``, the epoch of the best
validation ``metric``; ``train_loss[e - 1]`` is the mean batch loss of epoch ``e``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = ["History"]


@dataclass
class History:
    """What happened during :func:`fit`; ``valid``/``test`` hold ``(epoch, metrics)`` pairs."""

    epochs: int = 0                                   # epochs trained (early stop: fewer)
    train_loss: list[float] = field(default_factory=list)  # per epoch: mean of batch losses
    valid: list[tuple[int, dict]] = field(default_factory=list)
    test: list[tuple[int, dict]] = field(default_factory=list)
    best_epoch: int = 0
    best_valid: dict = field(default_factory=dict)
    best_test: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    device: str = "cpu"
    metric: str = "recall@20"
    stopped_early: bool = False
    paused: bool = False          # stopped by ``time_limit``: resume from the checkpoint

    @property
    def seconds_per_epoch(self) -> float:
        return self.train_seconds / max(self.epochs, 1)

    def to_dict(self) -> dict:
        """Plain lists / dicts / numbers (JSON-able; also what a checkpoint stores)."""
        d = asdict(self)
        d["valid"] = [[e, dict(m)] for e, m in self.valid]
        d["test"] = [[e, dict(m)] for e, m in self.test]
        d["seconds_per_epoch"] = self.seconds_per_epoch
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "History":
        d = {k: v for k, v in d.items() if k != "seconds_per_epoch"}
        d["valid"] = [(int(e), dict(m)) for e, m in d["valid"]]
        d["test"] = [(int(e), dict(m)) for e, m in d["test"]]
        d["train_loss"] = list(d["train_loss"])
        return cls(**d)

    def plot(self, metrics=None, ax=None):
        """Training loss and validation curves (best epoch marked); returns the figure.

        metrics: a name or a list of names (default: the selection metric); ax: two Axes
        (loss, evaluation), e.g. from ``plt.subplots(1, 2)``. The evaluation axis starts at 0,
        so that gaps between curves read as ratios, and its legend sits to the right of the
        axes, never over a curve.
        """
        import matplotlib.pyplot as plt

        from .viz.common import LEGEND_FONTSIZE

        metrics = [self.metric] if metrics is None else [metrics] if isinstance(metrics, str) else list(metrics)
        known = set(self.valid[0][1]) if self.valid else set()
        unknown = [m for m in metrics if self.valid and m not in known]
        if unknown:
            raise ValueError(f"no {unknown[0]!r} in this History; it has {sorted(known)}")
        if ax is not None and len(np.atleast_1d(ax)) != 2:
            raise ValueError("ax must be two Axes (loss, evaluation), e.g. plt.subplots(1, 2)[1]")
        if ax is None:
            fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
        fig = ax[0].figure
        ax[0].plot(range(1, len(self.train_loss) + 1), self.train_loss)
        ax[0].set(xlabel="epoch", ylabel="training loss", title="loss")
        top = 0.0
        for split, rows in (("valid", self.valid), ("test", self.test)):
            for m in metrics:
                if rows:
                    values = [r[m] for _, r in rows]
                    top = max(top, *values)
                    ax[1].plot([e for e, _ in rows], values, marker="o",
                               ls="-" if split == "valid" else "--", label=f"{split} {m}")
        ax[1].axvline(self.best_epoch, color="grey", ls=":", label=f"best epoch {self.best_epoch}")
        ax[1].set(xlabel="epoch", title="evaluation", ylim=(0, 1.1 * top if top > 0 else 1.0))
        ax[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=LEGEND_FONTSIZE, frameon=False)
        fig.tight_layout()
        return fig
