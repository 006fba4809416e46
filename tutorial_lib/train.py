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
batch order. The checkpoint written at every evaluation (:mod:`tutorial_lib.checkpoint`) holds
every RNG state too, so ``resume=True`` after an interruption ends as an uninterrupted run does
(same arguments; models keep any training state of their own in buffers).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from .history import History
from .metrics import evaluate, metric_names
from .utils import seed_everything, to_device
from .utils import device as pick_device

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}


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


def _check_config(model, epochs, eval_every, patience, batch_size, metric, ks, test,
                  checkpoint, resume, time_limit, progress) -> None:
    """Fail before training, not after it, on a setting fit cannot use."""
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
    if not (test is True or test is False or test == "best"):
        raise ValueError(f"test must be True, False or 'best', got {test!r}")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=<path> to resume from")
    if time_limit is not None and checkpoint is None:
        raise ValueError("time_limit needs checkpoint=<path>: a paused run resumes from it")
    if not isinstance(progress, (bool, int, np.integer)) or progress < 0:
        raise ValueError(f"progress must be True, False or a number of epochs, got {progress!r}")


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


@dataclass(eq=False)
class _Run:
    """What one call of :func:`fit` carries from epoch to epoch (what its checkpoint holds)."""

    model: torch.nn.Module
    data: object
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    device: torch.device
    history: History
    epochs: int
    patience: int | None
    ks: tuple
    eval_batch_size: int
    mask_history: bool
    test: bool | str
    path: Path | None
    best_state: dict | None = None
    step: int = 0
    saved_epoch: int | None = None          # the epoch of the checkpoint this run can resume from
    parallel: object | None = None          # a distributed.DataParallel: this rank's share of the work
    info: dict | None = None                # written into every checkpoint as its "recipe"

    def resume(self) -> int:
        """Load the checkpoint at ``path``; return the first epoch still to train."""
        state = ckpt.load_training(self.path, self.model, self.optimizer, self.generator)
        self.best_state, self.step, self.saved_epoch = state["best_model"], state["step"], state["epoch"]
        # this call runs on its own device and decides afresh whether to pause
        self.history = History.from_dict({**state["history"], "device": self.history.device, "paused": False})
        return self.epochs + 1 if self.history.stopped_early else state["epoch"] + 1   # else: trains on

    def train_epoch(self, epoch: int, batch_size: int) -> float:
        """One pass over ``model.batches``; the mean batch loss."""
        total, n_batches = 0.0, 0
        batches, step_loss = self.model.batches(self.data, batch_size, self.generator), self.model.loss
        if self.parallel is not None:               # this rank's rows of each batch, gradients all-reduced
            batches, step_loss = self.parallel.shard(batches, epoch), self.parallel.loss
        for batch in batches:
            self.model.train()
            loss = step_loss(to_device(batch, self.device))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch}, step {self.step + 1};"
                                         " lower lr or check the model")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.step += 1
            if hasattr(self.model, "on_step_end"):
                self.model.on_step_end(self.step)
            total, n_batches = total + loss.item(), n_batches + 1
        if hasattr(self.model, "on_epoch_end"):
            self.model.on_epoch_end(epoch)
        mean = total / max(n_batches, 1)
        return mean if self.parallel is None else self.parallel.mean(mean)

    def score_split(self, split: str) -> dict:
        """Metrics on ``split`` with the model in eval mode (back in train mode after)."""
        self.model.eval()
        try:
            if self.parallel is not None:           # each rank scores a share of the users
                return self.parallel.evaluate(self.model, self.data, split, ks=self.ks,
                                              batch_size=self.eval_batch_size, mask_history=self.mask_history)
            return evaluate(lambda users: self.model.score(self.data, users, split=split), self.data,
                            split, ks=self.ks, batch_size=self.eval_batch_size, mask_history=self.mask_history)
        finally:
            self.model.train()

    def evaluate_epoch(self, epoch: int) -> bool:
        """Validate (and test) after ``epoch``, keep the best weights, checkpoint; True: stop."""
        h, metric = self.history, self.history.metric
        t0 = time.perf_counter()
        valid = self.score_split("valid")
        h.valid.append((epoch, valid))
        improved = valid[metric] > h.best_valid.get(metric, -math.inf)
        if improved:                            # kept before the test pass, which can be interrupted
            h.best_epoch, h.best_valid, h.best_test = epoch, valid, {}
            self.best_state = ckpt.cpu_state_dict(self.model)
        if self.test is True or (self.test == "best" and improved):
            h.test.append((epoch, self.score_split("test")))
            if improved:
                h.best_test = h.test[-1][1]
        h.eval_seconds += time.perf_counter() - t0
        stop = self.patience is not None and epoch - h.best_epoch >= self.patience
        h.stopped_early = stop and epoch < self.epochs
        h.paused = h.paused and not stop
        if self.path is not None:
            self.save(epoch, finished=stop or epoch >= self.epochs)
        return stop

    def save(self, epoch: int, finished: bool) -> None:
        """Write the checkpoint after ``epoch`` (layout: :mod:`tutorial_lib.checkpoint`); rank 0 only."""
        if self.parallel is None or self.parallel.is_main:
            ckpt.save_training(self.path, self.model, self.best_state, self.optimizer, self.generator,
                               epoch, self.step, self.history.to_dict(), finished, recipe=self.info)
        self.saved_epoch = epoch


def _restore_best(model: torch.nn.Module, best_state: dict | None) -> None:
    """Load the best validation weights (if any evaluation ran) and switch to eval mode."""
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()                                # the best weights, ready to score (no dropout)


def fit(model: torch.nn.Module, data, *, epochs: int, lr: float = 1e-3,
        weight_decay: float = 0.0, batch_size: int = 400, optimizer=None, eval_every: int | None = 5,
        patience: int | None = 20, metric: str = "recall@20", ks=(10, 20),
        eval_batch_size: int = 1024, mask_history: bool = True, test: bool | str = "best",
        checkpoint: str | os.PathLike | None = None, resume: bool = False,
        time_limit: float | None = None, device="auto", seed: int = 0,
        progress: bool | int = True, parallel=None, checkpoint_info: dict | None = None) -> History:
    """Train ``model`` on ``data`` with early stopping on ``metric``; return the History.

    Args:
        model, data: a model with the protocol above; an ``InteractionData``.
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
        time_limit: seconds; once this call has trained that long, write the checkpoint after
            the current epoch and return with ``history.paused`` set (``resume=True`` goes on).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ... (see ``tutorial_lib.device``).
        seed: seeds Python, NumPy, torch and the batch-order generator.
        progress: True: a tqdm bar over epochs; a number N: instead one printed line every N
            epochs (epoch, training seconds, loss, metric: a log without bars); False: silent.
        parallel: a :class:`tutorial_lib.distributed.DataParallel` (``torchrun``: batches and
            evaluation shared among processes, checkpoints from rank 0), or None.
        checkpoint_info: a dict of plain values written into every checkpoint as its
            ``"recipe"`` (what built the model and on which data: ``diffrec-tutorial`` checks it
            on ``--resume``, so even a run killed mid-way leaves a checkable file).
    Returns:
        a :class:`History`; ``model`` ends with the best validation weights loaded, in eval mode.
        That holds when the run is interrupted too (Ctrl-C, the notebook's stop button, an
        error): the exception goes on up with the History so far as its ``.history``.
    """
    _check_config(model, epochs, eval_every, patience, batch_size, metric, ks, test,
                  checkpoint, resume, time_limit, progress)
    _check_splits(data, eval_every, test)
    seed_everything(seed)
    dev = pick_device(device)
    model.to(dev)
    run = _Run(model, data, _make_optimizer(model, optimizer, lr, weight_decay),
               torch.Generator().manual_seed(seed), dev, History(device=str(dev), metric=metric),
               epochs, patience, ks, eval_batch_size, mask_history, test,
               None if checkpoint is None else Path(checkpoint), parallel=parallel, info=checkpoint_info)
    started = time.perf_counter()
    start = run.resume() if resume and run.path.exists() else 1
    log_every = None if isinstance(progress, bool) else int(progress)
    bar = tqdm(range(start, epochs + 1), desc="epochs", disable=progress is not True,
               initial=start - 1, total=epochs)
    try:
        h = run.history
        if (eval_every is not None and start > epochs and run.saved_epoch is not None and not h.stopped_early
                and (not h.valid or h.valid[-1][0] != run.saved_epoch)):
            run.evaluate_epoch(run.saved_epoch)      # paused before its last evaluation: evaluate it now
        for epoch in bar:
            t0, stop = time.perf_counter(), False
            h.train_loss.append(run.train_epoch(epoch, batch_size))
            epoch_seconds = time.perf_counter() - t0
            h.train_seconds += epoch_seconds
            h.epochs = epoch
            postfix = {"loss": f"{h.train_loss[-1]:.4g}"}
            h.paused = time_limit is not None and epoch < epochs and time.perf_counter() - started >= time_limit
            h.paused = h.paused if parallel is None else parallel.any(h.paused)     # every rank pauses
            if eval_every is not None and (epoch % eval_every == 0 or epoch == epochs):
                stop = run.evaluate_epoch(epoch)
                postfix[metric] = f"{h.valid[-1][1][metric]:.4f}"
                postfix["best"] = f"{h.best_valid[metric]:.4f}@{h.best_epoch}"
            elif run.path is not None and (h.paused or epoch == epochs):
                run.save(epoch, finished=epoch == epochs)
            if h.paused:
                stop = True
                tqdm.write(f"paused after epoch {epoch} (time_limit {time_limit:g} s); "
                           f"fit(..., resume=True) continues from {run.path}")
            bar.set_postfix(postfix)
            if log_every and (epoch % log_every == 0 or stop):
                tqdm.write(f"epoch {epoch:4d}  train {epoch_seconds:.1f} s  "
                           + "  ".join(f"{k} {v}" for k, v in postfix.items()))
            if stop:
                break
    except BaseException as err:          # Ctrl-C / the notebook's stop button, a NaN, out of memory
        _keep_what_was_learned(err, run)
        raise
    finally:
        bar.close()
    _restore_best(run.model, run.best_state)
    return run.history


def _keep_what_was_learned(err: BaseException, run: _Run) -> None:
    """After an interruption: the History so far rides on ``err``, the model gets the best
    weights so far, and a KeyboardInterrupt says so in words. Never raises."""
    try:
        err.history = run.history
    except Exception:                     # never hide the original error behind a new one
        pass
    try:
        _restore_best(run.model, run.best_state)
        if isinstance(err, KeyboardInterrupt):
            tqdm.write(_interrupted(run.history, run.path, run.saved_epoch))
    except BaseException:                 # an error here, or a second Ctrl-C: the first error,
        pass                              # with its history, is the one that goes up


def _interrupted(h: History, path: Path | None, saved_epoch: int | None) -> str:
    """What an interrupted fit leaves behind, in words (``path``: this run's checkpoint)."""
    kept = (f"the model holds the best weights so far (epoch {h.best_epoch}, valid {h.metric} "
            f"{h.best_valid[h.metric]:.4f})" if h.best_epoch else
            "no evaluation ran yet, so the model holds the weights it had when interrupted")
    where = (f"; {path} holds the state after epoch {saved_epoch}: fit(..., resume=True) continues "
             "from there" if path is not None and saved_epoch is not None else "")
    return (f"interrupted after {h.epochs} complete epoch(s): {kept}{where}. "
            "The History so far is the exception's .history (in IPython: sys.last_value.history).")
