"""Checkpoints: write a file atomically, save and restore every random number generator.

:func:`tutorial_lib.train.fit` writes one dict per evaluation with :func:`save_training`::

    {"model": state dict (CPU tensors), "best_model": state dict or None, "optimizer": ...,
     "epoch": int, "step": int, "history": History.to_dict(), "rng": rng_state(generator),
     "finished": bool, "recipe": dict (only when fit was given ``checkpoint_info``)}

Everything in it is a tensor, a container or a plain number, so :func:`load` reads it with
``torch.load(weights_only=True)``, which runs no code from the file.
"""
from __future__ import annotations

import copy
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

__all__ = ["save", "load", "save_training", "load_training", "rng_state", "set_rng_state", "cpu_state_dict"]


def save(path, state: dict) -> None:
    """Write ``state`` to ``path`` atomically: a reader (or a run resumed after a crash) sees
    the old file or the new one, never half of one. The data goes to a temporary file beside
    ``path``, flushed to disk before the rename; it is removed if writing fails."""
    path = Path(path)
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


def load(path) -> dict:
    """A checkpoint written by :func:`save`, its tensors on the CPU (``weights_only=True``)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def cpu_state_dict(model: torch.nn.Module) -> dict:
    """A CPU copy of ``model.state_dict()`` (tensors copied; ``_extra_state`` objects deep-copied)."""
    return {k: v.detach().to("cpu", copy=True) if torch.is_tensor(v) else copy.deepcopy(v)
            for k, v in model.state_dict().items()}


def rng_state(generator: torch.Generator) -> dict:
    """Every RNG state (torch CPU and CUDA, ``generator``, NumPy, Python) as tensors and plain
    numbers, loadable with ``weights_only=True``."""
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


def set_rng_state(state: dict, generator: torch.Generator) -> None:
    """Restore what :func:`rng_state` saved (``generator`` gets its own state back)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator.set_state(state["generator"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state.tolist()), gauss))


def save_training(path, model, best_model: dict | None, optimizer, generator: torch.Generator,
                  epoch: int, step: int, history: dict, finished: bool, recipe: dict | None = None) -> None:
    """Write the state of a training run after ``epoch`` (the layout in the module docstring);
    ``recipe``, when given, is stored with it (what built the model, on which data)."""
    state = {"model": cpu_state_dict(model), "best_model": best_model,
             "optimizer": optimizer.state_dict(), "epoch": epoch, "step": step,
             "history": history, "rng": rng_state(generator), "finished": finished}
    save(path, state if recipe is None else {**state, "recipe": recipe})


def load_training(path, model, optimizer, generator: torch.Generator) -> dict:
    """Load a :func:`save_training` file into ``model``, ``optimizer``, ``generator`` and the
    global RNGs; return the file's dict (for its best_model, epoch, step, history)."""
    state = load(path)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"], generator)
    return state
