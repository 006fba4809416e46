r"""LightGCN with an exact speed shortcut on the CPU: the recipes train this class.

The plain ``LightGCN.propagate`` (``lightgcn.py``) multiplies by the graph with
``torch.sparse.mm``; on a CPU, forward and backward of its K layers are most of a BPR step.
SciPy's CSR product does the same multiplication about 3x faster on one thread. Autograd
needs the backward of Y = \tilde A X too, and because the graph is symmetric
(:math:`\tilde A^\top = \tilde A`, users and items both ways) it is the same product:

.. math::

    \frac{\partial L}{\partial X} = \tilde A^\top \frac{\partial L}{\partial Y}
                                  = \tilde A \frac{\partial L}{\partial Y}.

So one CSR matrix serves both directions. The result equals the plain model's up to float
rounding (the sums run in another order). On a GPU the plain ``torch.sparse.mm`` runs.
"""
from __future__ import annotations

import numpy as np
import torch

from .lightgcn import LightGCN, normalized_adjacency


class SymmetricSpMM(torch.autograd.Function):
    r"""Y = \tilde A X for a symmetric SciPy CSR matrix \tilde A (N, N) and X (N, d) on the CPU."""

    @staticmethod
    def forward(ctx, X: torch.Tensor, A) -> torch.Tensor:
        ctx.A = A
        return torch.from_numpy(np.ascontiguousarray(A @ X.detach().numpy()))

    @staticmethod
    def backward(ctx, grad_Y: torch.Tensor):
        return torch.from_numpy(np.ascontiguousarray(ctx.A @ grad_Y.contiguous().numpy())), None


class FastLightGCN(LightGCN):
    """``LightGCN`` whose propagation uses SciPy on the CPU (same arguments, same results)."""

    def __init__(self, data, dim: int = 64, layers: int = 3, reg: float = 1e-4):
        super().__init__(data, dim=dim, layers=layers, reg=reg)
        self._scipy_graph = normalized_adjacency(data.train)          # (U + I, U + I) CSR

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final embeddings E = mean_k E^(k): users (U, d) and items (I, d)."""
        E = self.embedding.weight
        if E.device.type != "cpu":
            return super().propagate()
        layers = [E]
        for _ in range(self.layers):
            layers.append(SymmetricSpMM.apply(layers[-1], self._scipy_graph))
        E = torch.stack(layers).mean(dim=0)
        return E[:self.n_users], E[self.n_users:]
