r"""EASE (Steck, WWW 2019): a shallow item-item autoencoder with a closed-form solution.

Find the item-item weights B (I x I) that reconstruct the interaction matrix X (U x I)
from itself, with a zero diagonal so that an item cannot simply predict itself:

    min_B ||X - X B||_F^2 + lambda ||B||_F^2     subject to diag(B) = 0

With the Lagrangian, the solution is closed form. Let G = X^T X + lambda I (the
regularised Gram matrix) and P = G^{-1}; then

    B_ij = -P_ij / P_jj   (i != j),        B_jj = 0

i.e. B = I - P diagMat(1 / diag(P)). The score of user u is x_u B. One inverse of an
I x I matrix: seconds for a few thousand items. ``lambda`` is the only knob (tune it on
the validation split; a few hundred for ML-1M).

Protocol: the input is the user's training row for both splits (as in DiffRec's code).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg
import torch
from tqdm.auto import tqdm

from ..data import user_ids
from ..recommend import Recommender


class EASE(Recommender):
    """score(u) = x_u B with B from the closed form above; ``lam`` is lambda."""

    def __init__(self, lam: float = 500.0):
        if not (np.isfinite(lam) and lam > 0):
            raise ValueError(f"lam (the L2 regularisation lambda) must be finite and > 0, got {lam}")
        self.lam = float(lam)
        self.B: torch.Tensor | None = None

    def fit(self, data) -> "EASE":
        """Solve for B (n_items, n_items) from data.train; returns self."""
        X = data.train
        G = (X.T @ X).toarray().astype(np.float64)
        G[np.diag_indices_from(G)] += self.lam
        P = scipy.linalg.inv(G, check_finite=False)       # G is symmetric positive definite
        B = -P / np.diag(P)[None, :]                         # B_ij = -P_ij / P_jj
        np.fill_diagonal(B, 0.0)
        self.B = torch.as_tensor(B, dtype=torch.float32)
        return self

    def score(self, data, users, split: str = "test") -> torch.Tensor:
        """(len(users), n_items) scores x_u B from the users' training rows."""
        if self.B is None:
            raise RuntimeError("call fit(data) before score()")
        if data.n_items != self.B.shape[0]:
            raise ValueError(f"data has {data.n_items} items but EASE was fit on {self.B.shape[0]}")
        x = torch.as_tensor(data.train[user_ids(users, data.n_users)].toarray())
        return x @ self.B

    @classmethod
    def tune(cls, data, lambdas: Sequence[float], metric: str = "recall@20", ks=(10, 20),
             progress: bool = True) -> tuple["EASE", dict[float, float]]:
        """Fit one EASE per lambda, validate each (the DiffRec protocol), keep the best.

        Returns ``(model, valid)``: the fitted EASE with the best validation ``metric`` (the
        first of equals) and ``{lambda: validation metric}``. Test is never looked at.
        ``metric`` is one of ``metric_names(ks)``.
        """
        from ..metrics import evaluate, metric_names

        if len(lambdas) == 0:
            raise ValueError("lambdas is empty; pass the values to try, e.g. [100, 300, 1000]")
        if metric not in metric_names(ks):
            raise ValueError(f"metric {metric!r} is not computed with ks={tuple(ks)}; "
                             f"choose one of {metric_names(ks)}")
        best, valid = None, {}
        for lam in tqdm(lambdas, desc="EASE lambda", disable=not progress, leave=False):
            lam = float(lam)                  # plain keys, whatever the sequence holds (tensors too)
            model = cls(lam).fit(data)
            valid[lam] = evaluate(lambda u: model.score(data, u, "valid"), data, "valid", ks=ks)[metric]
            if best is None or valid[lam] > valid[best.lam]:
                best = model
        return best, valid
