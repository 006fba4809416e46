r"""Mult-VAE (Liang, Krishnan, Hoffman, Jebara; WWW 2018): a VAE with a multinomial likelihood.

Generative story for user u with n_u clicks x_u over I items:

    z_u ~ N(0, I_k),      pi(z_u) = softmax(f_theta(z_u)),      x_u ~ Mult(n_u, pi(z_u))

Inference network (encoder) q_phi(z_u | x_u) = N(mu_phi(x_u), diag sigma_phi^2(x_u)) reads
the L2-normalised, dropped-out row. Training maximises the beta-weighted ELBO

    L_beta(x_u) = E_q[ sum_i x_ui log pi_i(z_u) ] - beta KL(q_phi(z_u|x_u) || N(0, I))

    KL = 1/2 sum_k (mu_k^2 + sigma_k^2 - log sigma_k^2 - 1)

with beta annealed linearly from 0 to ``anneal_cap`` over ``total_anneal_steps`` updates
(the paper's "partial regularisation"). Architecture [I -> 600 -> 200] and back, tanh
between layers, dropout 0.5 on the input. At test time z = mu (no sampling) and the
items are ranked by the decoder's logits f_theta(mu).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..recommend import Recommender
from .layers import TrainRows


def _mlp(widths: Sequence[int]) -> nn.ModuleList:
    layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
    for layer in layers:
        nn.init.xavier_normal_(layer.weight)
        nn.init.normal_(layer.bias, 0.0, 0.001)
    return layers


class MultiVAE(TrainRows, Recommender, nn.Module):
    """Mult-VAE with encoder dims [n_items, *hidden, latent] and the mirror decoder."""

    def __init__(self, n_items: int, hidden: Sequence[int] = (600,), latent: int = 200,
                 dropout: float = 0.5, anneal_cap: float = 0.2, total_anneal_steps: int = 200_000):
        super().__init__()
        if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)) or n_items < 1:
            raise ValueError(f"n_items must be a positive integer, got {n_items!r}")
        if any(d < 1 for d in [*hidden, latent]):
            raise ValueError(f"hidden and latent sizes must be >= 1, got {list(hidden)}, {latent}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if anneal_cap < 0 or total_anneal_steps < 1:
            raise ValueError(f"need anneal_cap >= 0 and total_anneal_steps >= 1, got "
                             f"{anneal_cap}, {total_anneal_steps}")
        self.n_items, self.latent = int(n_items), latent
        self.anneal_cap, self.total_anneal_steps = anneal_cap, total_anneal_steps
        dims = [int(n_items), *hidden, latent]
        self.encoder = _mlp(dims[:-1] + [2 * latent])        # last layer -> [mu, log sigma^2]
        self.decoder = _mlp(dims[::-1])
        self.drop = nn.Dropout(dropout)
        self.register_buffer("update_count", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ model
    def encode(self, x: torch.Tensor, dropout: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, I) -> mu, logvar (B, latent). Input dropout in training mode unless ``dropout=False``."""
        h = F.normalize(x, dim=-1)
        h = self.drop(h) if dropout else h
        for i, layer in enumerate(self.encoder):
            h = layer(h)
            if i < len(self.encoder) - 1:
                h = torch.tanh(h)
        return h[:, :self.latent], h[:, self.latent:]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent) -> logits (B, I) of pi(z) = softmax(logits)."""
        h = z
        for i, layer in enumerate(self.decoder):
            h = layer(h)
            if i < len(self.decoder) - 1:
                h = torch.tanh(h)
        return h

    def forward(self, x: torch.Tensor):
        """x (B, I) -> (logits (B, I), mu, logvar); samples z only in training mode."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z), mu, logvar

    @property
    def beta(self) -> float:
        """Current KL weight: min(anneal_cap, updates / total_anneal_steps)."""
        return min(self.anneal_cap, float(self.update_count) / self.total_anneal_steps)

    # ------------------------------------------------------------------ protocol
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """-L_beta averaged over the batch x (B, I); advances the annealing by one update."""
        logits, mu, logvar = self(x)
        nll = -(F.log_softmax(logits, dim=-1) * x).sum(-1).mean()
        kl = 0.5 * (mu ** 2 + logvar.exp() - logvar - 1).sum(-1).mean()
        loss = nll + self.beta * kl
        if self.training:
            self.update_count += 1
        return loss

    @torch.no_grad()
    def score(self, data, users, split: str = "valid") -> torch.Tensor:
        """(len(users), n_items) decoder logits at z = mu of the users' training rows, the clean
        rows in any mode; ``score_chunk`` users at a time (``TrainRows.score_rows``)."""
        return self.score_rows(data, users, lambda x: self.decode(self.encode(x, dropout=False)[0]))
