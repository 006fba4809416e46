r"""CFGAN (Chae, Kang, Kim, Lee; CIKM 2018): a GAN that generates whole purchase vectors.

A conditional generator G maps user u's condition c_u (the training row, no random noise z)
to a real-valued purchase vector over the I items; a conditional discriminator D tells the
real vector r_u (= e_u, the 0/1 training row) from the generated one, both given c_u:

    r_hat_u = G(c_u) = sigmoid(MLP_G(c_u))                   in (0, 1)^I
    D(r | c_u) = sigmoid(MLP_D([r, c_u]))                    the probability that r is real

Vector-wise adversarial training with partial masking (PM) and zero reconstruction (ZR):
per user, sample N_u^PM (share s_pm) and N_u^ZR (share s_zr) of the unobserved items; k_u is
the 0/1 indicator of N_u^PM. The discriminator sees the generated vector only where the
user purchased (e_u) or where PM asks it to (k_u):

    J^D = -sum_u [ log D(r_u | c_u) + log(1 - D(r_hat_u * (e_u + k_u) | c_u)) ]
    J^G =  sum_u [ -log D(r_hat_u * (e_u + k_u) | c_u) + alpha sum_{j in N_u^ZR} r_hat_uj^2 ]

J^G uses the non-saturating form -log D instead of the paper's log(1 - D) (same fixed point;
strong gradients while D wins; Goodfellow et al. 2014, and the authors' released code). Both
sums are averaged over the batch. s_pm = 0 is plain CFGAN + ZR, s_zr = 0 (or alpha = 0) plain
CFGAN + PM, both > 0 the paper's ZP. Each unobserved item joins N_u^PM (N_u^ZR) independently
with probability s_pm (s_zr), freshly for every batch, so a set holds s * |unobserved| items
on average. Ranking: the logits MLP_G(c_u) (the order of r_hat_u, without sigmoid ties).

Training inside ``train.fit`` (one optimiser step per batch): ``configure_optimizers`` returns
Adam over G's parameters and keeps a second Adam for D. Each ``loss(batch)`` in training mode
first takes ``d_steps`` steps on J^D (r_hat detached), then returns J^G computed through a
frozen D (no gradient reaches D's weights), so fit's backward and step move G only. fit's
``History.train_loss`` is J^G per epoch; ``curves`` records, per epoch, the means of J^D, the
adversarial part of J^G, the ZR term, D(real) and D(fake): the curves that show a GAN's
(in)stability. Both networks use sigmoid hidden units, as the authors' code does.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..recommend import Recommender
from .layers import TrainRows

CURVES = ("d_loss", "g_adv", "g_zr", "d_real", "d_fake")


def _mlp(widths: Sequence[int]) -> nn.Sequential:
    """Linear layers with sigmoid between them (as the released code), none after the last."""
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [nn.Linear(a, b)] + ([nn.Sigmoid()] if i < len(widths) - 2 else [])
    return nn.Sequential(*layers)


def _check(n_items, g_hidden, d_hidden, s_zr, s_pm, alpha, d_steps, d_lr) -> None:
    if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)) or n_items < 1:
        raise ValueError(f"n_items must be a positive integer, got {n_items!r}")
    if any(h < 1 for h in [*g_hidden, *d_hidden]):
        raise ValueError(f"hidden sizes must be >= 1, got {list(g_hidden)}, {list(d_hidden)}")
    for name, s in (("s_zr", s_zr), ("s_pm", s_pm)):
        if not 0 <= s <= 1:
            raise ValueError(f"{name} (a share of the unobserved items) must lie in [0, 1], got {s}")
    if not (np.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha (the ZR weight) must be finite and >= 0, got {alpha}")
    if isinstance(d_steps, bool) or not isinstance(d_steps, (int, np.integer)) or d_steps < 1:
        raise ValueError(f"d_steps must be a positive integer, got {d_steps!r}")
    if d_lr is not None and not (np.isfinite(d_lr) and d_lr > 0):
        raise ValueError(f"d_lr must be None (the lr given to configure_optimizers) or > 0, got {d_lr}")


class CFGAN(TrainRows, Recommender, nn.Module):
    """G: [I, *g_hidden, I]; D: [2I, *d_hidden, 1]; ZR share s_zr, weight alpha; PM share s_pm."""

    def __init__(self, n_items: int, g_hidden: Sequence[int] = (300,), d_hidden: Sequence[int] = (250,),
                 s_zr: float = 0.9, s_pm: float = 0.9, alpha: float = 0.03, d_steps: int = 1,
                 d_lr: float | None = None, d_weight_decay: float = 0.0):
        super().__init__()
        _check(n_items, g_hidden, d_hidden, s_zr, s_pm, alpha, d_steps, d_lr)
        self.n_items = int(n_items)
        self.s_zr, self.s_pm, self.alpha, self.d_steps = float(s_zr), float(s_pm), float(alpha), int(d_steps)
        self.d_lr, self.d_weight_decay = d_lr, d_weight_decay
        self.generator = _mlp([self.n_items, *g_hidden, self.n_items])
        self.discriminator = _mlp([2 * self.n_items, *d_hidden, 1])
        self.d_optimizer: torch.optim.Optimizer | None = None
        self._pending_d_state: dict | None = None
        self.curves: dict[str, list[float]] = {k: [] for k in CURVES}
        self._sums: dict[str, float] = dict.fromkeys(CURVES, 0.0)
        self._n = 0

    # ------------------------------------------------------------------ networks
    def G(self, c: torch.Tensor) -> torch.Tensor:
        """Generator logits (B, I) from conditions c (B, I); r_hat = sigmoid(logits)."""
        return self.generator(c)

    def D(self, r: torch.Tensor, c: torch.Tensor, detached: bool = False) -> torch.Tensor:
        """Discriminator logits (B,) of vectors r (B, I) given c (B, I); ``detached``: through
        D's weights without gradient to them (for J^G)."""
        x = torch.cat([r, c], dim=1)
        if not detached:
            return self.discriminator(x).squeeze(1)
        self.discriminator.requires_grad_(False)          # the graph built now has no path to D
        try:
            return self.discriminator(x).squeeze(1)
        finally:
            self.discriminator.requires_grad_(True)

    def negative_masks(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """k_u (PM) and the ZR indicator, each (B, I) 0/1: unobserved items of rows x (B, I)
        drawn with probability s_pm and s_zr."""
        unobserved = x == 0
        pm = (torch.rand(x.shape, device=x.device) < self.s_pm) & unobserved
        zr = (torch.rand(x.shape, device=x.device) < self.s_zr) & unobserved
        return pm.to(x.dtype), zr.to(x.dtype)

    # ------------------------------------------------------------------ protocol
    def configure_optimizers(self, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
        """Adam for G (returned, stepped by ``train.fit``); D's own Adam at ``d_lr`` (default lr)."""
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=lr if self.d_lr is None else self.d_lr,
                                            weight_decay=self.d_weight_decay)
        if self._pending_d_state is not None:
            self.d_optimizer.load_state_dict(self._pending_d_state)
            self._pending_d_state = None
        return torch.optim.Adam(self.generator.parameters(), lr=lr, weight_decay=weight_decay)

    def d_loss(self, x: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """J^D (scalar) for real rows x (B, I) and masked fakes (B, I); also D's logits on each."""
        real_logit, fake_logit = self.D(x, x), self.D(fake, x)
        loss = (F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
                + F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit)))
        return loss, real_logit, fake_logit

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """J^G for the batch x (B, I); in training mode, after ``d_steps`` updates of D on J^D."""
        if x.dim() != 2 or x.shape[1] != self.n_items:
            raise ValueError(f"expected a batch of shape (B, {self.n_items}), got {tuple(x.shape)}")
        pm, zr = self.negative_masks(x)
        r_hat = torch.sigmoid(self.G(x))
        mask = x + pm                                                  # e_u + k_u
        if self.training:
            if self.d_optimizer is None:
                raise RuntimeError("CFGAN trains D with its own optimiser: call configure_optimizers"
                                   "(lr) first (train.fit does, with its default optimizer=None)")
            for _ in range(self.d_steps):
                d_loss, real_logit, fake_logit = self.d_loss(x, r_hat.detach() * mask)
                self.d_optimizer.zero_grad(set_to_none=True)
                d_loss.backward()
                self.d_optimizer.step()
        fake_logit_g = self.D(r_hat * mask, x, detached=True)
        g_adv = F.binary_cross_entropy_with_logits(fake_logit_g, torch.ones_like(fake_logit_g))
        g_zr = (r_hat.pow(2) * zr).sum(1).mean()
        if self.training:
            self._record(d_loss, g_adv, g_zr, real_logit, fake_logit)
        return g_adv + self.alpha * g_zr

    def _record(self, d_loss, g_adv, g_zr, real_logit, fake_logit) -> None:
        values = (d_loss, g_adv, g_zr, torch.sigmoid(real_logit).mean(), torch.sigmoid(fake_logit).mean())
        for k, v in zip(CURVES, values):
            self._sums[k] += float(v.detach())
        self._n += 1

    def on_epoch_end(self, epoch: int) -> None:
        """Append the epoch's mean J^D, J^G parts, D(real) and D(fake) to ``curves``."""
        for k in CURVES:
            self.curves[k].append(self._sums[k] / max(self._n, 1))
        self._sums, self._n = dict.fromkeys(CURVES, 0.0), 0

    def get_extra_state(self) -> dict:
        """D's optimiser state, so that a checkpointed run resumes exactly."""
        return {"d_optimizer": None if self.d_optimizer is None else self.d_optimizer.state_dict()}

    def set_extra_state(self, state: dict) -> None:
        if state.get("d_optimizer") is None:
            return
        if self.d_optimizer is None:                                   # until configure_optimizers
            self._pending_d_state = state["d_optimizer"]
        else:
            self.d_optimizer.load_state_dict(state["d_optimizer"])

    @torch.no_grad()
    def score(self, data, users, split: str = "valid") -> torch.Tensor:
        """(len(users), n_items) generator logits from the users' training rows (any split);
        ``score_chunk`` users at a time (``TrainRows.score_rows``)."""
        return self.score_rows(data, users, self.G)
