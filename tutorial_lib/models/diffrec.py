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

T-DiffRec feeds a time-weighted row instead of the binary one: pass ``input_fn`` (see
``tutorial_lib.models.tdiffrec``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from ..diffusion import MEAN_TYPES, GaussianDiffusion, StepSampler
from ..data import user_ids
from ..schedules import get_betas, with_first_beta
from .toy import timestep_embedding

TIME_TYPES = ("cat",)
SCORE_CACHE_LIMIT = 2**26  # cache every user's scores (valid = test input) up to 64M floats


class InputDropout(nn.Dropout):
    """``nn.Dropout`` with its mask drawn by ``torch.rand``: the same distribution (each entry
    kept with probability 1 - p, then scaled by 1 / (1 - p)), drawn about 3x faster on a CPU.

    DiffRec drops out its whole (B, I) input row; on ML-1M nn.Dropout's ``bernoulli_`` took a
    fifth of every CPU training step (benchmarks/RESULTS.md, "Speed"). Same shapes in and out.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.p == 1:
            return torch.zeros_like(x)
        return x * ((torch.rand_like(x) >= self.p) * (1.0 / (1.0 - self.p)))


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
                 time_type: str = "cat", norm: bool = False, dropout: float = 0.5):
        super().__init__()
        in_dims, out_dims = _check_dims(in_dims, "in_dims"), _check_dims(out_dims, "out_dims")
        if out_dims[0] != in_dims[-1]:
            raise ValueError(f"out_dims[0] ({out_dims[0]}) must equal in_dims[-1] ({in_dims[-1]}): "
                             "the out layers start where the in layers end")
        if out_dims[-1] != in_dims[0]:
            raise ValueError(f"out_dims[-1] ({out_dims[-1]}) must equal in_dims[0] ({in_dims[0]}): "
                             "the denoiser predicts a vector the size of its input")
        if time_type not in TIME_TYPES:
            raise ValueError(f"time_type must be one of {TIME_TYPES}, got {time_type!r}")
        if emb_size < 2 or emb_size % 2:
            raise ValueError(f"emb_size must be an even number >= 2, got {emb_size}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.in_dims, self.out_dims, self.emb_size, self.norm = in_dims, out_dims, emb_size, norm
        self.emb_layer = nn.Linear(emb_size, emb_size)
        widths = [in_dims[0] + emb_size] + in_dims[1:]
        self.in_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.out_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(out_dims[:-1], out_dims[1:]))
        self.drop = InputDropout(dropout)
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


def mlp_dims(n_items: int, dims: Sequence[int]) -> tuple[list[int], list[int]]:
    """The paper's ``dims`` -> (in_dims, out_dims): [200, 600] -> [I, 600, 200], [200, 600, I]."""
    out_dims = _check_dims([*dims, n_items], "dims + [n_items]")
    return out_dims[::-1], out_dims


class DiffRec(nn.Module):
    """DiffRec: ``GaussianDiffusion`` + ``DiffRecMLP`` + ``StepSampler``, in the model protocol.

    Defaults are the paper's best ML-1M settings. ``noise_scale``, ``noise_min`` and
    ``noise_max`` set the ``"linear-var"`` schedule (1 - alpha_bar_t linear) and, as in the
    released code, the ``"linear"`` one (beta_t linear from scale x min to scale x max); the
    other schedules ignore them. ``sampling_steps`` noises the input before
    the reverse chain at inference (0 = start from the un-noised row); ``input_fn(data)``
    returns the (n_users, n_items) matrix fed as x_0 (default ``data.train``; T-DiffRec
    passes time-weighted rows). ``first_beta`` replaces beta_1 as the released code does
    (1e-5 there; ``schedules.with_first_beta``); None keeps the paper's formula.
    """

    def __init__(self, n_items: int, dims: Sequence[int] = (200, 600), emb_size: int = 10,
                 norm: bool = False, dropout: float = 0.5, T: int = 40,
                 noise_schedule: str = "linear-var", noise_scale: float = 0.005,
                 noise_min: float = 0.005, noise_max: float = 0.01, mean_type: str = "x0",
                 step_sampling: str = "importance", reweight: bool = True,
                 sampling_steps: int = 0, sampling_noise: bool = False,
                 input_fn: Callable | None = None, first_beta: float | None = None):
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
        self.denoiser = DiffRecMLP(*mlp_dims(self.n_items, dims), emb_size=emb_size, norm=norm,
                                   dropout=dropout)
        betas = get_betas(noise_schedule, T, **kw)
        if first_beta is not None:            # the released code's beta_fixed (measured: no gain)
            betas = with_first_beta(betas, first_beta)
        self.diffusion = GaussianDiffusion(betas, mean_type)
        self.sampler = StepSampler(T, step_sampling)
        self._dense: tuple | None = None     # (source matrix, dense tensor on the device)
        self._scores: tuple | None = None    # (weights version, source, (n_users, I) scores)

    # ------------------------------------------------------------------ data
    def input_matrix(self, data) -> torch.Tensor:
        """x_0 of every user, (n_users, n_items) dense on the model's device, in its dtype
        (float32 unless the model was made ``.double()``; cached)."""
        source = data.train if self.input_fn is None else self.input_fn(data)
        w = next(self.denoiser.parameters())
        if (self._dense is None or self._dense[0] is not source or self._dense[1].device != w.device
                or self._dense[1].dtype != w.dtype):
            dense = source.toarray() if sp.issparse(source) else source
            dense = torch.as_tensor(dense, dtype=w.dtype, device=w.device)
            if dense.shape != (data.n_users, self.n_items):
                raise ValueError(f"input matrix has shape {tuple(dense.shape)}, expected "
                                 f"({data.n_users}, {self.n_items}): was the model built for "
                                 f"n_items={data.n_items}?")
            self._dense = (source, dense)
        return self._dense[1]

    def batches(self, data, batch_size: int, generator: torch.Generator | None = None):
        """One shuffled epoch of dense user rows x_0, each (B, n_items), already on the device."""
        if data.n_items != self.n_items:
            raise ValueError(f"data has {data.n_items} items but the model was built for {self.n_items}")
        x = self.input_matrix(data)
        order = torch.randperm(data.n_users, generator=generator).to(x.device)
        for idx in order.split(batch_size):
            yield x[idx]

    # ------------------------------------------------------------------ training
    def loss(self, x0: torch.Tensor) -> torch.Tensor:
        """Importance-weighted, SNR-reweighted x_0 MSE of one batch x0 (B, I); a scalar."""
        t, w = self.sampler.sample(x0.shape[0], device=x0.device)
        losses = self.diffusion.training_losses(self.denoiser, x0, t, reweight=self.reweight)["loss"]
        self.sampler.update(t, losses)
        return (losses / w).mean()

    def configure_optimizers(self, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
        """AdamW, as released, with PyTorch's fused kernel (one pass over all parameters; the
        same update up to float rounding; one CPU thread took 15 ms a step instead of 67)."""
        fused = all(p.device.type in ("cpu", "cuda", "mps") for p in self.parameters()) or None
        return torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=weight_decay, fused=fused)

    # The sampler's loss history is training state: keep it in checkpoints (train.fit resume).
    def get_extra_state(self) -> torch.Tensor:
        return self.sampler.state()

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.sampler.load_state(state)
        self._scores = None

    # ------------------------------------------------------------------ inference
    def predict(self, x_start: torch.Tensor, return_trajectory: bool = False):
        """Algorithm 2 on rows x_start (B, I): the x_0 estimate (B, I) [and (T+1, B, I) trajectory].

        Without a trajectory, and whenever the shortcut below is exact, the chain runs in the
        denoiser's first hidden layer instead of over all I items (same result, ~5x faster).
        """
        if not return_trajectory and self._hidden_chain_applies():
            x_t = x_start
            if self.sampling_steps > 0:
                t = torch.full((len(x_start),), self.sampling_steps - 1, device=x_start.device)
                x_t = self.diffusion.q_sample(x_start, t)
            return self.reverse_chain_in_hidden_space(x_t)
        return self.diffusion.p_sample(self.denoiser, x_start, steps=self.sampling_steps,
                                       sampling_noise=self.sampling_noise,
                                       return_trajectory=return_trajectory)

    def _hidden_chain_applies(self) -> bool:
        net = self.denoiser
        return (not net.training and not net.norm and not self.sampling_noise
                and self.diffusion.mean_type == "x0" and type(net) is DiffRecMLP)

    @torch.no_grad()
    def reverse_chain_in_hidden_space(self, x_T: torch.Tensor) -> torch.Tensor:
        r"""The T deterministic reverse steps from x_T (B, I), run in the first hidden layer.

        Each step is x_{t-1} = c0_t x0_hat_t + c1_t x_t (posterior mean), and the denoiser
        only sees x_t through its first layer, a_t = W_x x_t. Both x0_hat_t = W_L h_t + b_L
        (last layer, no tanh) and the step are linear, so

            a_{t-1} = c0_t (W_x W_L h_t + W_x b_L) + c1_t a_t

        with the small matrix W_x W_L (H1 x H_L): the two I-wide layers are applied once
        each (at the start and for the final x0_hat at t = 1, where c0 = 1 and c1 = 0)
        instead of T times. Exact up to float rounding; eval mode, x0-prediction, no norm.
        """
        net, diff = self.denoiser, self.diffusion
        first, last = net.in_layers[0], net.out_layers[-1]
        W_x, W_e = first.weight[:, :self.n_items], first.weight[:, self.n_items:]
        M, m = W_x @ last.weight, W_x @ last.bias                  # (H1, H_L), (H1,)
        c0 = diff.posterior_coef_x0.to(W_x.dtype)                    # float32 (float64 after .double())
        c1 = diff.posterior_coef_xt.to(W_x.dtype)
        a = x_T @ W_x.T                                              # (B, H1)
        steps = torch.arange(diff.T, device=x_T.device)
        bias = net.emb_layer(timestep_embedding(steps, net.emb_size).to(W_x.dtype)) @ W_e.T + first.bias  # (T, H1)
        for i in reversed(range(diff.T)):
            h = torch.tanh(a + bias[i])
            for layer in net.in_layers[1:]:
                h = torch.tanh(layer(h))
            for layer in net.out_layers[:-1]:
                h = torch.tanh(layer(h))
            if i == 0:                                   # c1_1 = 0: x_0 = c0_1 * x0_hat
                return c0[0] * last(h)
            a = c0[i] * (h @ M.T + m) + c1[i] * a
        raise AssertionError("unreachable: the loop returns at i = 0")

    def _weights_version(self) -> tuple[int, float]:
        # In-place updates (optimizer steps, load_state_dict) bump a tensor's _version, but
        # fused optimizer kernels and edits through .data do not: the sum of all weights
        # catches those (every Adam step moves every weight). float32 sums: MPS has no float64;
        # one .item(), so one device sync per call.
        params = list(self.parameters())
        return sum(p._version for p in params), torch.stack([p.detach().sum() for p in params]).sum().item()

    @torch.no_grad()
    def score(self, data, users, split: str = "valid", batch_size: int = 2048) -> torch.Tensor:
        """(len(users), n_items) scores = the denoised training rows of ``users``.

        The input is the training row for both splits, so the scores of all users are
        computed once per weight version (in batches of ``batch_size``) and reused for
        valid and test: one reverse chain per evaluation instead of two.
        """
        x = self.input_matrix(data)
        users = torch.as_tensor(user_ids(users, len(x)), device=x.device)   # one id: a batch of one
        if x.numel() > SCORE_CACHE_LIMIT:
            return self.predict(x[users])
        # the key: the weights, train/eval mode, and the inference settings predict() reads
        version = (self._weights_version(), self.training, self.sampling_steps, self.sampling_noise)
        if self._scores is None or self._scores[0] != version or self._scores[1] is not x:
            scores = torch.cat([self.predict(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
            self._scores = (version, x, scores)
        return self._scores[2][users]
