"""Small helpers every notebook uses: seeding, choosing a device, eval mode for a while, moving
a batch to a device."""
from __future__ import annotations

import functools
import os
import random
from collections.abc import Mapping
from contextlib import contextmanager

import numpy as np

DEVICES = ("auto", "cpu", "cuda", "mps")


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and torch (CPU and every GPU) from one integer; return it."""
    import torch

    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    return seed


def device(name: str = "auto"):
    """Return a ``torch.device``: ``"auto"`` picks CUDA when present, else the CPU.

    Never hard-code ``"cuda"`` in a notebook: ``DEVICE = "auto"`` runs everywhere. ``"mps"``
    (Apple silicon) must be asked for by name: it has not been tested on Apple hardware, and
    the diffusion schedules are float64, which MPS does not hold.
    """
    import torch

    if isinstance(name, torch.device):
        if name.type not in ("cuda", "mps"):
            return name
        name = str(name)                  # "cuda" / "cuda:1" / "mps": checked below like a string
    if name not in DEVICES and not str(name).startswith("cuda:"):
        raise ValueError(f"unknown device {name!r}; choose one of {DEVICES} (or 'cuda:N')")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use 'auto' or 'cpu'")
    if name == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("device 'mps' requested but MPS is not available; use 'auto' or 'cpu'")
    return torch.device(name)


@contextmanager
def eval_mode(*models):
    """Inside the block every model is in eval mode (no dropout); afterwards every module is
    back in the mode it was in. Objects without modes (Popularity, EASE) are let through."""
    modes = [(m, m.training) for model in models if hasattr(model, "modules") for m in model.modules()]
    for model in models:
        if hasattr(model, "eval"):
            model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def in_eval_mode(fn):
    """Decorator for a helper whose first argument is a model: it runs in :func:`eval_mode`."""
    @functools.wraps(fn)
    def wrapper(model, *args, **kwargs):
        with eval_mode(model):
            return fn(model, *args, **kwargs)
    return wrapper


def to_device(batch, device):
    """Move a tensor, or the tensors inside tuples / lists / dicts, to ``device``."""
    import torch

    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):       # a namedtuple
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch
