r"""LightGCN (He et al., SIGIR 2020): collaborative filtering by pure graph propagation.

Users and items are the nodes of one bipartite graph with adjacency

.. math::

    A = \begin{pmatrix} 0 & R \\ R^\top & 0 \end{pmatrix}, \qquad
    \tilde A = D^{-1/2} A D^{-1/2}

(R the users x items training matrix, D the node degrees). Every node starts from a free
embedding :math:`E^{(0)}` (d columns); each layer only averages its neighbours, with no
weights and no non-linearity, and the final embedding is the mean over layers:

.. math::

    E^{(k+1)} = \tilde A E^{(k)}, \qquad E = \frac{1}{K+1} \sum_{k=0}^{K} E^{(k)}, \qquad
    \hat y_{ui} = e_u^\top e_i .

Training minimises BPR over triples (u, i, j) of a user, a training item and a sampled
item the user did not interact with:

.. math::

    L = -\frac{1}{B}\sum \ln \sigma(\hat y_{ui} - \hat y_{uj})
        + \frac{\lambda}{2B} \big(\|e^{(0)}_u\|^2 + \|e^{(0)}_i\|^2 + \|e^{(0)}_j\|^2\big).

In this course LightGCN is a baseline and, as in the released L-DiffRec code, the source
of the item embeddings that L-DiffRec clusters (``ldiffrec.item_embeddings`` trains it briefly).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from ..data import user_ids
from ..recommend import Recommender


def normalized_adjacency(train: sp.spmatrix) -> sp.csr_matrix:
    r"""\tilde A = D^{-1/2} A D^{-1/2} of the user-item graph; (U + I, U + I) float32 CSR.

    Users are nodes 0..U-1, items U..U+I-1. Isolated nodes (degree 0) keep a zero row.
    """
    R = sp.csr_matrix(train, dtype=np.float32, copy=True)   # a copy: the caller's values stay
    R.data[:] = 1.0
    A = sp.bmat([[None, R], [R.T, None]], format="csr", dtype=np.float32)
    degree = np.asarray(A.sum(axis=1)).ravel()
    d_inv_sqrt = np.zeros_like(degree)
    d_inv_sqrt[degree > 0] = degree[degree > 0] ** -0.5
    D = sp.diags(d_inv_sqrt)
    return (D @ A @ D).tocsr().astype(np.float32)


def to_torch_sparse(matrix: sp.spmatrix) -> torch.Tensor:
    """A scipy sparse matrix as a coalesced torch sparse COO tensor (float32)."""
    coo = sp.coo_matrix(matrix)
    index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float32))
    return torch.sparse_coo_tensor(index, values, coo.shape, check_invariants=True).coalesce()


class LightGCN(Recommender, nn.Module):
    """LightGCN over ``data.train``.

    Args:
        data: an ``InteractionData``; its training graph is fixed at construction.
        dim: embedding size d.
        layers: number of propagation layers K (0 gives matrix factorisation).
        reg: lambda, the L2 weight on the batch's layer-0 embeddings.
    """

    def __init__(self, data, dim: int = 64, layers: int = 3, reg: float = 1e-4):
        super().__init__()
        if dim < 1 or layers < 0 or reg < 0:
            raise ValueError(f"need dim >= 1, layers >= 0, reg >= 0; got dim={dim}, "
                             f"layers={layers}, reg={reg}")
        self.n_users, self.n_items = data.n_users, data.n_items
        self.layers, self.reg = layers, reg
        self.embedding = nn.Embedding(self.n_users + self.n_items, dim)
        nn.init.normal_(self.embedding.weight, std=0.1)
        # the graph is data, not a parameter: kept out of state_dict, moved lazily
        self._graph = to_torch_sparse(normalized_adjacency(data.train))
        self._positives = self._keys(*data.train.nonzero())
        full = np.flatnonzero(np.diff(sp.csr_matrix(data.train).indptr) >= self.n_items)
        if len(full):
            raise ValueError(f"user {full[0]} interacted with every item: BPR needs an item they did "
                             "not interact with as its negative")

    def _keys(self, users, items) -> np.ndarray:
        """Sorted int64 keys u * n_items + i, for fast 'is (u, i) a training pair?' lookups."""
        return np.sort(np.asarray(users, np.int64) * self.n_items + np.asarray(items, np.int64))

    # ------------------------------------------------------------------ propagation
    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final embeddings E = mean_k E^(k): users (U, d) and items (I, d)."""
        E = self.embedding.weight
        if self._graph.device != E.device:
            self._graph = self._graph.to(E.device)
        layers = [E]
        for _ in range(self.layers):
            layers.append(torch.sparse.mm(self._graph, layers[-1]))
        E = torch.stack(layers).mean(dim=0)
        return E[:self.n_users], E[self.n_users:]

    @torch.no_grad()
    def item_embeddings(self) -> np.ndarray:
        """The propagated item embeddings (I, d) as a NumPy array (what L-DiffRec clusters)."""
        return self.propagate()[1].cpu().numpy()

    # ------------------------------------------------------------------ model protocol
    def batches(self, data, batch_size: int, generator: torch.Generator | None = None):
        """One epoch of BPR triples: every training pair once, in random order.

        Yields LongTensors (B, 3) of [u, i, j]; j is uniform over the items u did not
        interact with in training (resampled until it is a negative).
        """
        users, items = data.train.nonzero()
        order = torch.randperm(len(users), generator=generator).numpy()
        users, items = users[order].astype(np.int64), items[order].astype(np.int64)
        seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
        rng = np.random.default_rng(seed)
        for start in range(0, len(users), batch_size):
            u, i = users[start:start + batch_size], items[start:start + batch_size]
            yield torch.from_numpy(np.stack([u, i, self._sample_negatives(u, rng)], axis=1))

    def _is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(B,) bool: is (users[k], items[k]) a training pair?"""
        keys = users * self.n_items + items
        pos = np.searchsorted(self._positives, keys).clip(max=len(self._positives) - 1)
        return self._positives[pos] == keys

    def _sample_negatives(self, users: np.ndarray, rng, max_tries: int = 50) -> np.ndarray:
        j = rng.integers(self.n_items, size=len(users))
        for _ in range(max_tries):
            hit = self._is_positive(users, j)
            if not hit.any():
                return j
            j[hit] = rng.integers(self.n_items, size=int(hit.sum()))
        for k in np.flatnonzero(self._is_positive(users, j)):   # few negatives: draw from them
            u = users[k]
            lo, hi = np.searchsorted(self._positives, [u * self.n_items, (u + 1) * self.n_items])
            j[k] = rng.choice(np.setdiff1d(np.arange(self.n_items), self._positives[lo:hi] - u * self.n_items))
        return j

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        """BPR loss + lambda/2 * mean squared norm of the layer-0 embeddings of the batch."""
        u, i, j = batch[:, 0], batch[:, 1], batch[:, 2]
        users, items = self.propagate()
        pos = (users[u] * items[i]).sum(dim=1)
        neg = (users[u] * items[j]).sum(dim=1)
        e0 = self.embedding.weight
        l2 = (e0[u].pow(2).sum() + e0[self.n_users + i].pow(2).sum()
              + e0[self.n_users + j].pow(2).sum()) / (2 * len(batch))
        return -nn.functional.logsigmoid(pos - neg).mean() + self.reg * l2

    @torch.no_grad()
    def score(self, data, users, split: str = "valid") -> torch.Tensor:
        """e_u . e_i for every item; (len(users), n_items)."""
        users_emb, items_emb = self.propagate()
        u = torch.as_tensor(user_ids(users, len(users_emb)), device=users_emb.device)
        return users_emb[u] @ items_emb.T

