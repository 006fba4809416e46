"""Run a sweep with every random draw of the model made by the CPU's generator, on any device.

    python research/cpu_random_streams.py --family ldiffrec --only 2 --seeds 3 --device cuda

Same arguments as ``diffrec_sweep.py``. On a GPU, dropout masks and Gaussian noise normally come
from CUDA's generator, so a GPU run and a CPU run of one seed draw different numbers. Here
``torch.randn_like``, ``torch.rand_like`` and dropout draw on the CPU, exactly as a CPU run
does, and copy the result to the device. A GPU run then differs from the CPU run of the same seed
only by the kernels' rounding: if it still scores like the other GPU runs, the kernels make the
difference; if it scores like the CPU run, the random streams do (LOG.md, L-DiffRec on the
H100). On the CPU this script changes nothing, to the last digit (tested).
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _on_cpu(draw):
    """Wrap ``draw(x)`` (randn_like, rand_like) so that it draws on the CPU and moves the result."""
    def wrapped(x, **kwargs):
        return draw(torch.empty(x.shape, dtype=kwargs.pop("dtype", x.dtype)), **kwargs).to(x.device)
    return wrapped


def _dropout(input, p=0.5, training=True, inplace=False):
    """F.dropout as the CPU computes it (a bernoulli_ mask of the input's shape, scaled by 1/(1-p))."""
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0
    mask = torch.empty(input.shape, dtype=input.dtype).bernoulli_(1 - p).div_(1 - p).to(input.device)
    return input.mul_(mask) if inplace else input * mask


@contextlib.contextmanager
def cpu_random_streams():
    """Inside: torch.randn_like, torch.rand_like and F.dropout draw from the CPU generator."""
    saved = torch.randn_like, torch.rand_like, F.dropout
    torch.randn_like, torch.rand_like, F.dropout = _on_cpu(saved[0]), _on_cpu(saved[1]), _dropout
    try:
        yield
    finally:
        torch.randn_like, torch.rand_like, F.dropout = saved


def main(argv=None):
    import diffrec_sweep

    with cpu_random_streams():
        diffrec_sweep.main(argv)


if __name__ == "__main__":
    main()
