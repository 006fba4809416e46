r"""DiffRec with exact speed shortcuts (notebook 03, section 6): the recipes train these classes.

Each shortcut gives the plain model's result up to float rounding, or the same distribution
of random draws; the plain classes in ``diffrec.py``, ``tdiffrec.py`` and ``ldiffrec.py`` show
the algorithm, these show how to make it fast.

1. **The reverse chain in the first hidden layer** (``FastDiffRec.predict``). Each reverse step
   is x_{t-1} = c0_t x0_hat_t + c1_t x_t (the posterior mean), and x_t enters the denoiser only
   through its first layer, a_t = W_x x_t. Both x0_hat_t = W_L h_t + b_L (the last layer, no
   tanh) and the step are linear, so

       a_{t-1} = c0_t (W_x W_L h_t + W_x b_L) + c1_t a_t

   with the small matrix W_x W_L (H1 x H_L): the two I-wide layers run once each instead of T
   times (about 5x fewer multiply-adds on ML-1M). Exact in eval mode with x0-prediction, no
   L2 norm and no sampling noise; otherwise ``predict`` runs the plain chain.
2. **One reverse chain per evaluation** (``FastDiffRec.score``). Validation and test both start
   from the training row, so the scores of all users are computed once and reused. The cache
   is dropped by every training step (``loss``), ``load_state_dict`` and any change of the
   inference settings, data or device; it lives in eval mode only (dropout makes training-mode
   scores random). Weights edited by hand in place are not seen: call ``forget_scores()``.
3. **Input dropout drawn with ``torch.rand``** (``InputDropout``): the same distribution as
   ``nn.Dropout``, about 3x faster on a CPU for DiffRec's (B, I) input. Another random stream,
   so its runs differ from the plain model's draw for draw.
4. **Fused AdamW** (``configure_optimizers``): one kernel over all parameters, the same update
   up to float rounding (one CPU thread: 15 ms a step instead of 67 on ML-1M).

L-DiffRec's recipe uses shortcut 3 only (``FastLDiffRec``); its chain runs in the latent space.
"""
from __future__ import annotations

import torch
from torch import nn

from ..data import user_ids
from .diffrec import DiffRec, DiffRecMLP
from .layers import timestep_embedding
from .ldiffrec import LDiffRec
from .tdiffrec import LTDiffRec, TDiffRec

SCORE_CACHE_LIMIT = 2**26  # cache every user's scores up to 64M floats; above, score per batch


class InputDropout(nn.Dropout):
    """``nn.Dropout`` with its mask drawn by ``torch.rand``: each entry kept with probability
    1 - p, then scaled by 1 / (1 - p), as ``nn.Dropout``. Same shapes in and out."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        if self.p == 1:
            return torch.zeros_like(x)
        return x * ((torch.rand_like(x) >= self.p) * (1.0 / (1.0 - self.p)))


class FastDiffRecMLP(DiffRecMLP):
    """``DiffRecMLP`` with ``InputDropout``; the same weights and layers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.drop = InputDropout(self.drop.p)


class FastDiffRec(DiffRec):
    """``DiffRec`` with the four shortcuts of the module docstring; the same arguments."""

    denoiser_class = FastDiffRecMLP
    _scores: tuple | None = None           # (key, (n_users, I) scores) while cached

    def configure_optimizers(self, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
        """AdamW, as released, with PyTorch's fused kernel."""
        fused = all(p.device.type in ("cpu", "cuda", "mps") for p in self.parameters()) or None
        return torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=weight_decay, fused=fused)

    # ------------------------------------------------------------------ the score cache
    def forget_scores(self) -> None:
        """Drop the cached scores (after editing weights in place by hand)."""
        self._scores = None

    def loss(self, x0: torch.Tensor) -> torch.Tensor:
        self.forget_scores()                      # a training step is about to change the weights
        return super().loss(x0)

    def set_extra_state(self, state: torch.Tensor) -> None:
        super().set_extra_state(state)            # called by load_state_dict: new weights
        self.forget_scores()

    @torch.no_grad()
    def score(self, data, users, split: str = "valid", batch_size: int = 2048) -> torch.Tensor:
        """As ``DiffRec.score``; in eval mode all users' scores are computed once (in batches of
        ``batch_size``) and reused for both splits until the cache is dropped."""
        source = self.input_source(data)
        if self.training or data.n_users * self.n_items > SCORE_CACHE_LIMIT:
            return super().score(data, users, split)
        w = self.denoiser.emb_layer.weight
        key = (source, w.device, w.dtype, self.sampling_steps, self.sampling_noise)
        cached = self._scores
        if cached is None or cached[0][0] is not source or cached[0][1:] != key[1:]:
            x = self.input_matrix(data)
            scores = torch.cat([self.predict(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
            self._scores = cached = (key, scores)
        return cached[1][torch.as_tensor(user_ids(users, data.n_users), device=w.device)]

    # ------------------------------------------------------------------ the hidden-space chain
    @torch.no_grad()
    def predict(self, x_start: torch.Tensor, return_trajectory: bool = False):
        """As ``DiffRec.predict``; runs the chain in the first hidden layer where that is exact."""
        net = self.denoiser
        exact = (not net.training and not net.norm and not self.sampling_noise
                 and self.diffusion.mean_type == "x0")
        if return_trajectory or not exact:
            return super().predict(x_start, return_trajectory)
        x_t = x_start
        if self.sampling_steps > 0:
            t = torch.full((len(x_start),), self.sampling_steps - 1, device=x_start.device)
            x_t = self.diffusion.q_sample(x_start, t)
        return self.reverse_chain_in_hidden_space(x_t)

    @torch.no_grad()
    def reverse_chain_in_hidden_space(self, x_T: torch.Tensor) -> torch.Tensor:
        """The T deterministic reverse steps from x_T (B, I), run in the first hidden layer
        (module docstring); returns the x_0 estimate (B, I)."""
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


class FastTDiffRec(FastDiffRec, TDiffRec):
    """T-DiffRec (time-weighted rows) with the shortcuts of ``FastDiffRec``."""


class FastLDiffRec(LDiffRec):
    """L-DiffRec whose latent denoiser draws its input dropout with ``torch.rand``."""

    denoiser_class = FastDiffRecMLP


class FastLTDiffRec(FastLDiffRec, LTDiffRec):
    """LT-DiffRec (L-DiffRec on time-weighted rows) with ``FastLDiffRec``'s dropout."""
