r"""The 1-D toy of notebooks 01-02: a Gaussian mixture and a tiny denoiser for it.

Data: :math:`x_0 \sim \sum_k \pi_k \mathcal N(\mu_k, \sigma_k^2)`. Diffusing it keeps it a
mixture, in closed form, because :math:`x_t = \sqrt{\bar\alpha_t} x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon`:

.. math::

    q(x_t) = \sum_k \pi_k \,\mathcal N\big(\sqrt{\bar\alpha_t}\mu_k,\;
             \bar\alpha_t \sigma_k^2 + 1 - \bar\alpha_t\big)

Denoiser: :math:`f_\theta(x_t, t)` = MLP([x_t, emb(t)]) predicting x_0 or eps, with the
sinusoidal step embedding of Vaswani et al. / Ho et al. (``layers.timestep_embedding``).
``residual=True`` adds a residual path, f = x_t + MLP(...): an x_0-predictor then starts from
x_t, which is already close to the best x_0 estimate at small t. (eps-prediction has such a path
built in: x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_bar_t).)

``train_denoiser`` is Algorithm 1 of Ho et al. with DiffRec's step sampler:
sample t ~ p_t, x_t = q_sample(x_0, t), minimise w(t) * loss / (T p_t), where w(t) is an optional
per-step weight (``step_weight``, e.g. 1 + SNR(t)).
"""
from __future__ import annotations

import math

import torch
from torch import nn
from tqdm.auto import tqdm

from ..step_sampler import StepSampler
from .layers import timestep_embedding


# ----------------------------------------------------------------------------- data
def _mixture_params(means, stds, weights):
    means = torch.as_tensor(means, dtype=torch.float64)
    stds = torch.as_tensor(stds, dtype=torch.float64)
    weights = torch.as_tensor(weights, dtype=torch.float64)
    if not (means.shape == stds.shape == weights.shape) or means.ndim != 1:
        raise ValueError(f"means, stds, weights must be 1-D of equal length, got shapes "
                         f"{tuple(means.shape)}, {tuple(stds.shape)}, {tuple(weights.shape)}")
    if (stds <= 0).any() or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError("stds must be > 0 and weights >= 0 with a positive sum")
    return means, stds, weights / weights.sum()


def sample_mixture(n: int, means=(-2.0, 1.5), stds=(0.3, 0.5), weights=(0.4, 0.6),
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw n points from the 1-D Gaussian mixture; returns (n, 1) float32."""
    means, stds, weights = _mixture_params(means, stds, weights)
    k = torch.multinomial(weights, n, replacement=True, generator=generator)
    x = means[k] + stds[k] * torch.randn(n, generator=generator, dtype=torch.float64)
    return x.float().unsqueeze(1)


def mixture_marginal_pdf(x, alpha_bar_t: float, means=(-2.0, 1.5), stds=(0.3, 0.5),
                         weights=(0.4, 0.6)) -> torch.Tensor:
    """Density of q(x_t) at points x (N,) for a mixture x_0 (closed form above); (N,)."""
    means, stds, weights = _mixture_params(means, stds, weights)
    x = torch.as_tensor(x, dtype=torch.float64).reshape(-1, 1)
    mu = math.sqrt(alpha_bar_t) * means
    var = alpha_bar_t * stds ** 2 + 1 - alpha_bar_t
    pdf = torch.exp(-(x - mu) ** 2 / (2 * var)) / torch.sqrt(2 * math.pi * var)
    return (pdf * weights).sum(dim=1)


# ----------------------------------------------------------------------------- model
class ToyDenoiser(nn.Module):
    """f_theta(x_t, t): x_t (B, D), t (B,) 0-based steps -> (B, D), an x_0 or eps prediction.

    ``residual``: return x_t + MLP([x_t, emb(t)]) instead of MLP([x_t, emb(t)]).
    """

    def __init__(self, dim: int = 1, hidden: int = 64, emb_dim: int = 16, layers: int = 2,
                 residual: bool = False):
        super().__init__()
        if dim < 1 or hidden < 1 or layers < 1:
            raise ValueError(f"dim, hidden and layers must be >= 1, got {dim}, {hidden}, {layers}")
        self.dim, self.emb_dim, self.residual = dim, emb_dim, residual
        blocks, width = [], dim + emb_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        self.net = nn.Sequential(*blocks, nn.Linear(width, dim))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x_t.ndim != 2 or x_t.shape[1] != self.dim:
            raise ValueError(f"x_t must have shape (B, {self.dim}), got {tuple(x_t.shape)}")
        out = self.net(torch.cat([x_t, timestep_embedding(t, self.emb_dim)], dim=1))
        return x_t + out if self.residual else out


# ----------------------------------------------------------------------------- training
def train_denoiser(diffusion, model: nn.Module, x0: torch.Tensor, steps: int = 1000,
                   batch_size: int = 256, lr: float = 1e-3, sampler=None, reweight: bool = False,
                   step_weight=None, snapshot_every: int = 0, generator: torch.Generator | None = None,
                   progress: bool = True) -> dict:
    """Fit ``model`` to data x0 (N, D) with ``diffusion.training_losses``; returns a history.

    Each step: a batch of x_0, steps t ~ sampler (uniform if None), loss = mean(loss_t / w_t)
    with w_t = T p_t (importance weights), Adam update, ``sampler.update(t, loss_t)``.
    ``step_weight``: None, or a function of the 0-based steps t (B,) returning weights (B,) that
    multiply each example's loss (e.g. ``lambda t: 1 + diffusion.snr(t)``).
    History: ``loss`` (list per step) and, when ``snapshot_every``, ``p_t`` = list of
    (updates so far, p_t (T,) list) snapshots of the sampler's probabilities: before the first
    update, then after every ``snapshot_every``-th.
    """
    if x0.ndim != 2:
        raise ValueError(f"x0 must have shape (N, D), got {tuple(x0.shape)}")
    sampler = sampler or StepSampler(diffusion.T, method="uniform")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = {"loss": [], "p_t": []}
    model.train()
    if snapshot_every:
        history["p_t"].append((0, sampler.probabilities().tolist()))
    for step in tqdm(range(steps), desc="training", disable=not progress):
        idx = torch.randint(len(x0), (min(batch_size, len(x0)),), generator=generator)
        t, w = sampler.sample(len(idx), generator=generator)
        noise = torch.randn(x0[idx].shape, generator=generator).to(x0.device)     # drawn on the CPU, as idx
        losses = diffusion.training_losses(model, x0[idx], t, noise=noise, reweight=reweight)["loss"]
        if step_weight is not None:
            losses = step_weight(t).to(losses) * losses
        loss = (losses / w).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sampler.update(t, losses)
        history["loss"].append(loss.item())
        if snapshot_every and (step + 1) % snapshot_every == 0:       # after step + 1 updates
            history["p_t"].append((step + 1, sampler.probabilities().tolist()))
    model.eval()
    return history
