"""Most-popular items: every user gets the same ranking, by training interaction count.

The first number any recommender must beat. Seen items are masked by the metrics.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data import user_ids
from ..recommend import Recommender


class Popularity(Recommender):
    """score(u, i) = number of training users who interacted with item i."""

    def __init__(self):
        self.item_counts: torch.Tensor | None = None

    def fit(self, data) -> "Popularity":
        """data: InteractionData; counts its train matrix's columns."""
        counts = np.asarray(data.train.sum(axis=0)).ravel()
        self.item_counts = torch.as_tensor(counts, dtype=torch.float32)
        return self

    def score(self, data, users, split: str = "test") -> torch.Tensor:
        """(len(users), n_items): the same popularity row for every user."""
        if self.item_counts is None:
            raise RuntimeError("call fit(data) before score()")
        users = user_ids(users, data.n_users)
        return self.item_counts.unsqueeze(0).expand(len(users), -1).clone()
