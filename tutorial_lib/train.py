"""One training loop for every model: ``fit(model, data, ...) -> History``.

The loop is the one DiffRec's ``main.py`` uses, written once for all models::

    for epoch in 1..epochs:
        for batch in model.batches(data, batch_size, generator):     # one shuffled epoch
            loss = model.loss(batch); loss.backward(); optimizer.step()
        every eval_every epochs (and at the last one):
            valid = evaluate(model.score, data, "valid")              # + "test" if asked
            keep a copy of the weights if valid[metric] improved
            stop when epoch - best_epoch >= patience
    restore the best weights

Model protocol (docs/architecture.md): ``batches(data, batch_size, generator)``,
``loss(batch) -> scalar``, ``score(data, users, split) -> (B, n_items)``. Optional hooks:
``configure_optimizers(lr, weight_decay) -> Optimizer`` (e.g. two learning rates in
L-DiffRec), ``on_step_end(step)`` and ``on_epoch_end(epoch)``. Closed-form models
(popularity, EASE) have no ``loss``: call their ``fit(data)`` instead.

Reproducibility: ``seed_everything(seed)`` at the start and one ``torch.Generator`` for the
batch order. A checkpoint, written atomically at every evaluation, holds the current and
the best weights, the optimizer, the history and every RNG state, so ``resume=True`` after
an interruption ends with the same weights and history as an uninterrupted run (given the
same arguments, and models that keep any training state of their own in buffers).
"""
from __future__ import annotations

import copy
import math
import os
import random
import tempfile
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .metrics import evaluate, metric_names
from .utils import MODELS_LOCK, seed_everything
from .utils import device as pick_device

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}


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
        (loss, evaluation), e.g. from ``plt.subplots(1, 2)``.
        """
        import matplotlib.pyplot as plt

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
        for split, rows in (("valid", self.valid), ("test", self.test)):
            for m in metrics:
                if rows:
                    ax[1].plot([e for e, _ in rows], [r[m] for _, r in rows], marker="o",
                               ls="-" if split == "valid" else "--", label=f"{split} {m}")
        ax[1].axvline(self.best_epoch, color="grey", ls=":", label=f"best epoch {self.best_epoch}")
        ax[1].set(xlabel="epoch", title="evaluation")
        ax[1].legend()
        fig.tight_layout()
        return fig


def to_device(batch, device):
    """Move a tensor, or the tensors inside tuples / lists / dicts, to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):       # a namedtuple
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def _make_optimizer(model, optimizer, lr, weight_decay):
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if optimizer is None:
        if hasattr(model, "configure_optimizers"):
            return model.configure_optimizers(lr, weight_decay)
        optimizer = "adamw"
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {list(OPTIMIZERS)}, "
                         "None, or pass a torch.optim.Optimizer")
    return OPTIMIZERS[optimizer](model.parameters(), lr=lr, weight_decay=weight_decay)


def _check_config(model, epochs, eval_every, patience, batch_size, metric, ks, resume, checkpoint, test):
    if not callable(getattr(model, "loss", None)) or not callable(getattr(model, "batches", None)):
        raise TypeError(f"{type(model).__name__} has no loss(batch)/batches(...): closed-form "
                        "models are trained with model.fit(data), not train.fit")
    for name, v in (("epochs", epochs), ("eval_every", eval_every), ("batch_size", batch_size)):
        if name == "eval_every" and v is None:
            continue                      # train only: no evaluation
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if patience is not None and (not isinstance(patience, (int, np.integer)) or patience < 1):
        raise ValueError(f"patience must be a positive integer or None, got {patience!r}")
    if metric not in metric_names(ks):
        raise ValueError(f"metric {metric!r} is not computed with ks={tuple(ks)}; "
                         f"choose one of {metric_names(ks)}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=<path> to resume from")
    if not (test is True or test is False or test == "best"):
        raise ValueError(f"test must be True, False or 'best', got {test!r}")


def _check_splits(data, eval_every, test) -> None:
    """Fail before training, not after it, when a split that fit evaluates holds nothing."""
    if eval_every is None:
        return
    needed = [("valid", "fit picks the best epoch on it; eval_every=None trains without evaluating")]
    if test is not False:
        needed.append(("test", "pass test=False to train without a test split"))
    for split, why in needed:
        matrix = getattr(data, split, None)
        if matrix is not None and getattr(matrix, "nnz", 1) == 0:
            raise ValueError(f"data.{split} holds no interaction ({why}); make one with a "
                             f"nonzero {split} fraction, e.g. make_synthetic(..., {split}_frac=0.1)")


def _rng_state(generator: torch.Generator) -> dict:
    """Every RNG state as tensors / plain numbers (loadable with ``weights_only=True``)."""
    np_state = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generator": generator.get_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(
            lambda x: x.item() if hasattr(x, "item") else x, np_state[2:])],
        "python": [py_version, torch.tensor(py_state, dtype=torch.int64), py_gauss],
    }


def _set_rng_state(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator.set_state(state["generator"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state.tolist()), gauss))


def _cpu_state(model) -> dict:
    """A CPU copy of the state dict (tensors copied; ``_extra_state`` objects deep-copied)."""
    return {k: v.detach().to("cpu", copy=True) if torch.is_tensor(v) else copy.deepcopy(v)
            for k, v in model.state_dict().items()}


def _save(path: Path, state: dict) -> None:
    """Write atomically: a reader (or a run resumed after a crash) sees the old checkpoint or
    the new one, never half of one. A temporary file of its own beside ``path``, flushed to disk
    before the rename; removed if writing fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)          # as open() would create it (mkstemp makes it owner-only)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fit(model: torch.nn.Module, data, *, epochs: int, lr: float = 1e-3,
        weight_decay: float = 0.0, batch_size: int = 400, optimizer=None, eval_every: int = 5,
        patience: int | None = 20, metric: str = "recall@20", ks=(10, 20),
        eval_batch_size: int = 1024, mask_history: bool = True, test: bool | str = "best",
        checkpoint: str | os.PathLike | None = None, resume: bool = False, device="auto",
        seed: int = 0, progress: bool = True, log_every: int | None = None,
        time_limit: float | None = None) -> History:
    """Train ``model`` on ``data`` with early stopping on ``metric``; return the History.

    Args:
        model: follows the protocol in the module docstring.
        data: an ``InteractionData``.
        epochs: maximum number of epochs.
        lr, weight_decay: optimizer settings (also passed to ``configure_optimizers``).
        batch_size: training batch size, passed to ``model.batches``.
        optimizer: ``"adamw"``, ``"adam"``, an optimizer instance, or None (the model's
            ``configure_optimizers`` when it has one, else AdamW).
        eval_every: evaluate every this many epochs (and always at the last epoch); None
            never evaluates (no valid or test split needed), and the model keeps its last weights.
        patience: stop once ``epoch - best_epoch >= patience`` at an evaluation (None: never).
        metric: validation metric to maximise, one of ``metric_names(ks)``.
        ks, eval_batch_size, mask_history: passed to :func:`tutorial_lib.metrics.evaluate`.
        test: ``"best"`` evaluates the test split whenever validation improves (enough for
            ``best_test``, the test result at the best validation epoch), ``True`` at every
            evaluation (for test curves), ``False`` never.
        checkpoint: path written (atomically) at every evaluation.
        resume: continue from ``checkpoint`` if it exists (else start afresh); a run that
            stopped early stays stopped, one that reached its ``epochs`` trains on to a
            larger ``epochs``, and one paused at or beyond ``epochs`` is evaluated there.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ... (see ``tutorial_lib.device``).
        seed: seeds Python, NumPy, torch and the batch-order generator.
        progress: show a tqdm bar over epochs with the loss and metric.
        log_every: also print one line every this many epochs (for logs without bars): the
            epoch, its training seconds, the loss and, after an evaluation, the metric.
        time_limit: seconds; once this call has trained that long, write the checkpoint
            after the current epoch and return with ``history.paused`` set (a long GPU run
            split over several sessions: call again with ``resume=True`` to go on).
    Returns:
        a :class:`History`; ``model`` ends with the best validation weights loaded, in eval mode.
        That holds when the run is interrupted too (Ctrl-C, the notebook's stop button, an
        error): the exception goes on up with the History so far as its ``.history``.
    """
    _check_config(model, epochs, eval_every, patience, batch_size, metric, ks, resume, checkpoint, test)
    _check_splits(data, eval_every, test)
    seed_everything(seed)
    dev = pick_device(device)
    model.to(dev)
    opt = _make_optimizer(model, optimizer, lr, weight_decay)
    generator = torch.Generator().manual_seed(seed)
    history = History(device=str(dev), metric=metric)
    best_state, step, start = None, 0, 1
    saved_epoch = None                    # the epoch of the checkpoint this run can resume from
    path = None if checkpoint is None else Path(checkpoint)
    if time_limit is not None and path is None:
        raise ValueError("time_limit needs checkpoint=<path>: a paused run resumes from it")
    started = time.perf_counter()

    if resume and path.exists():
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        best_state, step, start = ckpt["best_model"], ckpt["step"], ckpt["epoch"] + 1
        saved_epoch = ckpt["epoch"]
        history = History.from_dict(ckpt["history"])
        history.device = str(dev)
        _set_rng_state(ckpt["rng"], generator)
        history.paused = False                # this call decides afresh
        if history.stopped_early:             # else: a larger ``epochs`` trains on
            start = epochs + 1

    def save(epoch: int, finished: bool) -> None:
        nonlocal saved_epoch
        _save(path, {"model": _cpu_state(model), "best_model": best_state,
                     "optimizer": opt.state_dict(), "epoch": epoch, "step": step,
                     "history": history.to_dict(), "rng": _rng_state(generator),
                     "finished": finished})
        saved_epoch = epoch

    def train_step(batch, epoch: int) -> float:
        """One optimiser step in train mode; the batch's loss. Under ``MODELS_LOCK``: a widget
        redrawing this model on another thread waits for the step to end (utils.eval_mode)."""
        nonlocal step
        with MODELS_LOCK:
            model.train()
            loss = model.loss(to_device(batch, dev))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch}, step {step + 1};"
                                         " lower lr or check the model")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if hasattr(model, "on_step_end"):
                model.on_step_end(step)
            return loss.item()

    def run_eval(split):
        with MODELS_LOCK:
            model.eval()
            try:
                return evaluate(lambda users: model.score(data, users, split=split), data, split,
                                ks=ks, batch_size=eval_batch_size, mask_history=mask_history)
            finally:
                model.train()

    def evaluate_epoch(epoch: int) -> bool:
        """Validate (and test) after ``epoch``, keep the best weights, checkpoint; True: stop."""
        nonlocal best_state
        t0 = time.perf_counter()
        valid = run_eval("valid")
        history.valid.append((epoch, valid))
        improved = valid[metric] > history.best_valid.get(metric, -math.inf)
        if improved:                          # kept before the test pass, which can be interrupted
            history.best_epoch, history.best_valid, history.best_test = epoch, valid, {}
            best_state = _cpu_state(model)
        if test is True or (test == "best" and improved):
            history.test.append((epoch, run_eval("test")))
            if improved:
                history.best_test = history.test[-1][1]
        history.eval_seconds += time.perf_counter() - t0
        stop = patience is not None and epoch - history.best_epoch >= patience
        history.stopped_early = stop and epoch < epochs
        history.paused = history.paused and not stop
        if path is not None:
            save(epoch, finished=stop or epoch >= epochs)
        return stop

    bar = tqdm(range(start, epochs + 1), desc="epochs", disable=not progress,
               initial=start - 1, total=epochs)
    try:
        if (eval_every is not None and start > epochs and saved_epoch is not None
                and not history.stopped_early and (not history.valid or history.valid[-1][0] != saved_epoch)):
            evaluate_epoch(saved_epoch)       # paused before its last evaluation: evaluate it now
        for epoch in bar:
            t0, total, n_batches, stop = time.perf_counter(), 0.0, 0, False
            for batch in model.batches(data, batch_size, generator):
                total, n_batches = total + train_step(batch, epoch), n_batches + 1
            if hasattr(model, "on_epoch_end"):
                with MODELS_LOCK:
                    model.on_epoch_end(epoch)
            epoch_seconds = time.perf_counter() - t0
            history.train_seconds += epoch_seconds
            history.train_loss.append(total / max(n_batches, 1))
            history.epochs = epoch
            postfix = {"loss": f"{history.train_loss[-1]:.4g}"}
            history.paused = (time_limit is not None and epoch < epochs
                              and time.perf_counter() - started >= time_limit)

            if eval_every is not None and (epoch % eval_every == 0 or epoch == epochs):
                stop = evaluate_epoch(epoch)
                postfix[metric] = f"{history.valid[-1][1][metric]:.4f}"
                postfix["best"] = f"{history.best_valid[metric]:.4f}@{history.best_epoch}"
            elif path is not None and (history.paused or epoch == epochs):
                save(epoch, finished=epoch == epochs)
            if history.paused:
                stop = True
                tqdm.write(f"paused after epoch {epoch} (time_limit {time_limit:g} s); "
                           f"fit(..., resume=True) continues from {path}")
            bar.set_postfix(postfix)
            if log_every and (epoch % log_every == 0 or stop):
                tqdm.write(f"epoch {epoch:4d}  train {epoch_seconds:.1f} s  "
                           + "  ".join(f"{k} {v}" for k, v in postfix.items()))
            if stop:
                break
    except BaseException as err:          # Ctrl-C / the notebook's stop button, a NaN, out of memory
        try:                              # nothing lost: the history so far ...
            err.history = history
        except Exception:                 # never hide the original error behind a new one
            pass
        try:                              # ... and the best weights (waits for a widget's redraw)
            _restore_best(model, best_state)
            if isinstance(err, KeyboardInterrupt):
                tqdm.write(_interrupted(history, path if saved_epoch is not None else None, saved_epoch))
        except BaseException:             # an error here, or a second Ctrl-C while waiting: the first
            pass                          # error, with its history, is the one that goes up
        raise
    finally:
        bar.close()
    _restore_best(model, best_state)
    return history


def _restore_best(model: torch.nn.Module, best_state: dict | None) -> None:
    """Load the best validation weights (if any evaluation ran) and switch to eval mode."""
    with MODELS_LOCK:
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()                      # the best weights, ready to score (no dropout)


def _interrupted(history: History, path: Path | None, saved_epoch: int | None) -> str:
    """What an interrupted fit leaves behind, in words (``path``: this run's checkpoint)."""
    if history.best_epoch:
        kept = (f"the model holds the best weights so far (epoch {history.best_epoch}, "
                f"valid {history.metric} {history.best_valid[history.metric]:.4f})")
    else:
        kept = "no evaluation ran yet, so the model holds the weights it had when interrupted"
    where = (f"; {path} holds the state after epoch {saved_epoch}: fit(..., resume=True) continues "
             f"from there" if path is not None else "")
    return (f"interrupted after {history.epochs} complete epoch(s): {kept}{where}. "
            "The History so far is the exception's .history (in IPython: sys.last_value.history).")
