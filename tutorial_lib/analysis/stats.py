"""How far a rate measured on n users can move by chance."""
from __future__ import annotations

import numpy as np


def binomial_band(rate, n, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """Normal-approximation band rate +- z sqrt(rate (1 - rate) / n), clipped to [0, 1].

    rate: a hit rate (scalar or array) measured on ``n`` users (scalar, or an array of rate's
    shape); z = 1.96 gives ~95 %. With n = 150 one user moves a rate by 1/150 = 0.0067: a
    wiggle inside the band is that.
    """
    n = np.asarray(n, dtype=float)
    if (n < 1).any():
        raise ValueError(f"n must be a positive number of users, got {n}")
    rate = np.asarray(rate, dtype=float)
    half = z * np.sqrt(rate * (1 - rate) / n)
    return np.clip(rate - half, 0, 1), np.clip(rate + half, 0, 1)
