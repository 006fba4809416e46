r"""DiffRec (Wang, Xu, Feng, Lin, He, Chua; SIGIR 2023): diffusion over interaction vectors.

A user's training row x_0 in {0, 1}^I (I items) is the starting point of a Gaussian
diffusion with *small* noise (the "linear-var" schedule keeps 1 - alpha_bar_t between
noise_scale * noise_min and noise_scale * noise_max, e.g. 2.5e-5 .. 5e-5):

    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,         eps ~ N(0, I)

A denoiser f_theta(x_t, t) predicts x_0 (``mean_type="x0"``, the paper's choice) from the
corrupted row and the step t. Its architecture (the released ``DNN``) is an MLP over the
concatenation of the (optionally L2-normalised, dropped-out) row and a step embedding:

    h = [dropout(x_t) ; W_e emb(t) + b_e]          emb(t) = [cos(t w_k), sin(t w_k)], size 10
    in layers:   h <- tanh(W h + b)     (I + 10) -> 600 -> 200
    out layers:  h <- W h + b, tanh between        200 -> 600 -> I     (no tanh at the end)

``dims=[200, 600]`` in the paper's notation means out_dims = [200, 600, I] and
in_dims = out_dims reversed = [I, 600, 200].

Training (Algorithm 1): t ~ p_t (importance sampling, p_t ~ sqrt(E[L_t^2])), minimise

    L = (SNR(t-1) - SNR(t)) / (T p_t) * || f_theta(x_t, t) - x_0 ||^2 / I   (weight 1 at t = 1)

Inference (Algorithm 2): start from the *un-noised* row (``sampling_steps=0``; or noise it
for ``sampling_steps`` steps), run the T reverse steps taking the mean of p_theta each time
(no sampling noise) and rank items by the final x_0 estimate. The small noise is the point:
a corrupted click is a small perturbation the denoiser learns to undo, while the user's
preferences survive the whole forward chain (the "small-noise argument").

One difference from the released code: beta_1 follows the paper's formula (noise_scale x
noise_min); the release's default fixes it at 1e-5 (``research/ablations.py``: no gain).
T-DiffRec feeds a time-weighted row instead of the binary one: pass ``input_fn`` (see
``tutorial_lib.models.tdiffrec``). The same model with exact speed shortcuts (the chain run
in the first hidden layer, one chain per evaluation) is ``diffrec_fast.FastDiffRec``.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from ..data import user_ids
from ..diffusion import MEAN_TYPES, GaussianDiffusion
from ..recommend import Recommender
from ..schedules import get_betas
from ..step_sampler import StepSampler
from .layers import timestep_embedding


def _check_dims(dims, what: str) -> list[int]:
    dims = list(dims)
    if len(dims) < 2 or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1
                            for d in dims):
        raise ValueError(f"{what} must be a list of >= 2 positive integers, got {dims!r}")
    return [int(d) for d in dims]


class DiffRecMLP(nn.Module):
    """DiffRec's denoiser f_theta(x_t, t): x_t (B, in_dims[0]), t (B,) -> (B, out_dims[-1]).

    in_dims, out_dims: layer widths, e.g. [I, 600, 200] and [200, 600, I];
    out_dims[0] must equal in_dims[-1] and out_dims[-1] must equal in_dims[0].
    """

    def __init__(self, in_dims: Sequence[int], out_dims: Sequence[int], emb_size: int = 10,
                 norm: bool = False, dropout: float = 0.5):
        super().__init__()
        in_dims, out_dims = _check_dims(in_dims, "in_dims"), _check_dims(out_dims, "out_dims")
        if out_dims[0] != in_dims[-1]:
            raise ValueError(f"out_dims[0] ({out_dims[0]}) must equal in_dims[-1] ({in_dims[-1]}): "
                             "the out layers start where the in layers end")
        if out_dims[-1] != in_dims[0]:
            raise ValueError(f"out_dims[-1] ({out_dims[-1]}) must equal in_dims[0] ({in_dims[0]}): "
                             "the denoiser predicts a vector the size of its input")
        if emb_size < 2 or emb_size % 2:
            raise ValueError(f"emb_size must be an even number >= 2, got {emb_size}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_dims, self.out_dims, self.emb_size, self.norm = in_dims, out_dims, emb_size, norm
        self.emb_layer = nn.Linear(emb_size, emb_size)
        widths = [in_dims[0] + emb_size] + in_dims[1:]
        self.in_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.out_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(out_dims[:-1], out_dims[1:]))
        self.drop = nn.Dropout(dropout)
        for layer in [self.emb_layer, *self.in_layers, *self.out_layers]:
            nn.init.xavier_normal_(layer.weight)        # std sqrt(2 / (fan_in + fan_out))
            nn.init.normal_(layer.bias, 0.0, 0.001)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x_t.ndim != 2 or x_t.shape[1] != self.in_dims[0]:
            raise ValueError(f"x_t must have shape (B, {self.in_dims[0]}), got {tuple(x_t.shape)}")
        emb = self.emb_layer(timestep_embedding(t, self.emb_size).to(x_t.dtype))
        if self.norm:
            x_t = F.normalize(x_t, dim=-1)
        h = torch.cat([self.drop(x_t), emb], dim=-1)
        for layer in self.in_layers:
            h = torch.tanh(layer(h))
        for i, layer in enumerate(self.out_layers):
            h = layer(h)
            if i < len(self.out_layers) - 1:
                h = torch.tanh(h)
        return h


def default_dims(n_items: int) -> list[int]:
    """The MLP's ``dims`` when none are given: the paper's ``[200, 600]`` (tuned on ML-1M's
    2,810 items) from 1,000 items up; below, one hidden layer of 64, the size the course trains
    on its 400-item synthetic world (600 hidden units over a few hundred items over-fit)."""
    return [200, 600] if n_items >= 1000 else [64]


def mlp_dims(n_items: int, dims: Sequence[int]) -> tuple[list[int], list[int]]:
    """The paper's ``dims`` -> (in_dims, out_dims): [200, 600] -> [I, 600, 200], [200, 600, I]."""
    out_dims = _check_dims([*dims, n_items], "dims + [n_items]")
    return out_dims[::-1], out_dims


class DiffRec(Recommender, nn.Module):
    """DiffRec: ``GaussianDiffusion`` + ``DiffRecMLP`` + ``StepSampler``, in the model protocol.

    Defaults are the paper's best ML-1M settings; ``dims=None`` scales the MLP with the catalogue
    (:func:`default_dims`). Train with early stopping (``train.fit``'s ``patience``): on ML-1M
    it stops after 25-30 epochs, on small data later. ``noise_scale``, ``noise_min`` and
    ``noise_max`` set the ``"linear-var"`` schedule (1 - alpha_bar_t linear) and, as in the
    released code, the ``"linear"`` one (beta_t linear from scale x min to scale x max); the
    other schedules ignore them. ``sampling_steps`` noises the input before the reverse chain
    at inference (0 = start from the un-noised row); ``input_fn(data)`` returns the
    (n_users, n_items) matrix fed as x_0 (default ``data.train``; T-DiffRec passes
    time-weighted rows).
    """

    denoiser_class = DiffRecMLP

    def __init__(self, n_items: int, dims: Sequence[int] | None = None, emb_size: int = 10,
                 norm: bool = False, dropout: float = 0.5, T: int = 40,
                 noise_schedule: str = "linear-var", noise_scale: float = 0.005,
                 noise_min: float = 0.005, noise_max: float = 0.01, mean_type: str = "x0",
                 step_sampling: str = "importance", reweight: bool = True,
                 sampling_steps: int = 0, sampling_noise: bool = False,
                 input_fn: Callable | None = None):
        super().__init__()
        if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)) or n_items < 1:
            raise ValueError(f"n_items must be a positive integer, got {n_items!r}")
        if mean_type not in MEAN_TYPES:
            raise ValueError(f"mean_type must be one of {MEAN_TYPES}, got {mean_type!r}")
        if not isinstance(T, (int, np.integer)) or T < 1:
            raise ValueError(f"T (number of diffusion steps) must be a positive integer, got {T!r}")
        if not 0 <= sampling_steps <= T:
            raise ValueError(f"sampling_steps must lie in [0, T={T}], got {sampling_steps}")
        if noise_schedule in ("linear-var", "linear_var"):
            kw = {"noise_scale": noise_scale, "noise_min": noise_min, "noise_max": noise_max}
        elif noise_schedule == "linear":      # as released: beta_t itself linear in the same bounds
            kw = {"beta_start": noise_scale * noise_min, "beta_end": noise_scale * noise_max}
        else:                                 # the other schedules have no noise settings
            kw = {}
        self.n_items, self.reweight = int(n_items), reweight
        self.sampling_steps, self.sampling_noise, self.input_fn = sampling_steps, sampling_noise, input_fn
        dims = default_dims(self.n_items) if dims is None else dims
        self.denoiser = self.denoiser_class(*mlp_dims(self.n_items, dims), emb_size=emb_size,
                                            norm=norm, dropout=dropout)
        self.diffusion = GaussianDiffusion(get_betas(noise_schedule, T, **kw), mean_type)
        self.sampler = StepSampler(T, step_sampling)

    # ------------------------------------------------------------------ data
    def input_source(self, data):
        """The (n_users, n_items) matrix x_0 comes from: ``data.train`` or ``input_fn(data)``."""
        if data.n_items != self.n_items:
            raise ValueError(f"data has {data.n_items} items but the model was built for {self.n_items}")
        return data.train if self.input_fn is None else self.input_fn(data)

    def input_matrix(self, data, users=None) -> torch.Tensor:
        """x_0 of ``users`` (default all), (B, n_items) dense, on the model's device and dtype."""
        source = self.input_source(data)
        if users is not None:
            source = source[user_ids(users, data.n_users)]
        dense = source.toarray() if sp.issparse(source) else source
        w = self.denoiser.emb_layer.weight
        return torch.as_tensor(dense, dtype=w.dtype, device=w.device)

    def batches(self, data, batch_size: int, generator: torch.Generator | None = None):
        """One shuffled epoch of dense user rows x_0, each (B, n_items), already on the device."""
        x = self.input_matrix(data)
        order = torch.randperm(data.n_users, generator=generator).to(x.device)
        for idx in order.split(batch_size):
            yield x[idx]

    # ------------------------------------------------------------------ training (Algorithm 1)
    def loss(self, x0: torch.Tensor) -> torch.Tensor:
        """Importance-weighted, SNR-reweighted x_0 MSE of one batch x0 (B, I); a scalar."""
        t, w = self.sampler.sample(x0.shape[0], device=x0.device)
        losses = self.diffusion.training_losses(self.denoiser, x0, t, reweight=self.reweight)["loss"]
        self.sampler.update(t, losses)
        return (losses / w).mean()

    # The sampler's loss history is training state: keep it in checkpoints (train.fit resume).
    def get_extra_state(self) -> torch.Tensor:
        return self.sampler.state()

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.sampler.load_state(state)

    # ------------------------------------------------------------------ inference (Algorithm 2)
    @torch.no_grad()
    def predict(self, x_start: torch.Tensor, return_trajectory: bool = False):
        """The x_0 estimate (B, I) for rows x_start (B, I) [and the (T+1, B, I) trajectory]."""
        return self.diffusion.p_sample_loop(self.denoiser, x_start, steps=self.sampling_steps,
                                            sampling_noise=self.sampling_noise,
                                            return_trajectory=return_trajectory)

    @torch.no_grad()
    def score(self, data, users, split: str = "valid") -> torch.Tensor:
        """(len(users), n_items) scores: the denoised training rows of ``users``.

        Both splits start from the training row (the metrics mask what is already known)."""
        return self.predict(self.input_matrix(data, users))
