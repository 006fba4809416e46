"""Which diffusion step t each training example gets: uniform, or DiffRec's importance sampling.

Importance sampling (Nichol & Dhariwal 2021, "Improved DDPM"; used by DiffRec and SeqDiffRec)
draws the steps with large losses more often: p_t is proportional to sqrt(E[L_t^2]) over each
step's last ``history`` losses. Each loss is then divided by T p_t, so the mean over a batch
still estimates the uniform average over steps (unbiased).
"""
from __future__ import annotations

import numpy as np
import torch


class StepSampler:
    """Chooses the diffusion step t for each training example.

    ``uniform``: t ~ U{0, ..., T-1}. ``importance`` (DiffRec): p_t proportional to
    sqrt(E[L_t^2]) over each step's last ``history`` losses, mixed with a little uniform
    mass; uniform until every step has ``history`` losses recorded. ``sample`` returns (t (B,), w (B,)) where w = T * p_t (1 under uniform): divide each
    loss by w to keep the estimate unbiased. Call ``update(t, losses)`` after each batch.
    """

    METHODS = ("uniform", "importance")

    def __init__(self, T: int, method: str = "importance", history: int = 10, uniform_prob: float = 0.001):
        if method not in self.METHODS:
            raise ValueError(f"method must be one of {self.METHODS}, got {method!r}")
        if history < 1:
            raise ValueError(f"history must be >= 1, got {history}")
        self.T, self.method, self.history, self.uniform_prob = T, method, history, uniform_prob
        self.loss_history = torch.zeros(T, history, dtype=torch.float64)
        self.count = torch.zeros(T, dtype=torch.long)

    @property
    def warmed_up(self) -> bool:
        return bool((self.count == self.history).all())

    def probabilities(self) -> torch.Tensor:
        """Current p_t over the T steps; (T,)."""
        if self.method == "uniform" or not self.warmed_up:
            return torch.full((self.T,), 1.0 / self.T, dtype=torch.float64)
        rms = torch.sqrt((self.loss_history ** 2).mean(dim=1))
        p = rms / rms.sum()
        return p * (1 - self.uniform_prob) + self.uniform_prob / self.T

    def sample(self, batch_size: int, device=None, generator: torch.Generator | None = None):
        p = self.probabilities()
        t = torch.multinomial(p, batch_size, replacement=True, generator=generator)
        w = p[t] * self.T
        return t.to(device), w.to(device=device, dtype=torch.float32)

    def state(self) -> torch.Tensor:
        """The memory (T, history + 1): loss history, then counts. Training state: models return it
        from ``get_extra_state``, so a resumed ``train.fit`` draws steps as the first run would."""
        return torch.cat([self.loss_history, self.count[:, None].double()], 1)

    def load_state(self, state: torch.Tensor) -> None:
        if tuple(state.shape) != (self.T, self.history + 1):
            raise ValueError(f"sampler state has shape {tuple(state.shape)}, expected "
                             f"({self.T}, {self.history + 1}): was it saved with another T?")
        self.loss_history.copy_(state[:, :-1])
        self.count.copy_(state[:, -1].long())

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Record losses (B,) of steps t (B,): each step keeps its last ``history`` values."""
        if self.method == "uniform":
            return
        # NumPy views of the two tensors: the same loop, about 10x less overhead per tiny operation
        history, count = self.loss_history.numpy(), self.count.numpy()
        t = t.detach().cpu().numpy()
        losses = losses.detach().cpu().to(torch.float64).numpy()
        for step in np.unique(t):
            new = losses[t == step]
            merged = np.concatenate([history[step, :count[step]], new])[-self.history:]
            history[step, :len(merged)] = merged
            count[step] = len(merged)
