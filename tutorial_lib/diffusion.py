r"""Gaussian diffusion, read top to bottom like section 2 of the DiffRec paper.

Forward process (adds noise, no parameters):

    q(x_t | x_{t-1}) = N(x_t; sqrt(1 - beta_t) x_{t-1}, beta_t I)
    q(x_t | x_0)     = N(x_t; sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)            [closed form]

Posterior of one reverse step, tractable because x_0 is known:

    q(x_{t-1} | x_t, x_0) = N(x_{t-1}; mu~_t(x_t, x_0), beta~_t I)
    mu~_t   = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0
              + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t
    beta~_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t

Reverse process (learned): p_theta(x_{t-1} | x_t) = N(x_{t-1}; mu_theta(x_t, t), beta~_t I),
with mu_theta = mu~_t(x_t, x0_hat) where the network predicts x0_hat directly
(``mean_type="x0"``, DiffRec's choice) or the noise eps (``mean_type="eps"``).

ELBO (negative, to minimise) = reconstruction + prior matching + sum of denoising matching:

    -log p(x_0) <= E_q[-log p_theta(x_0|x_1)]                              reconstruction
                   + KL(q(x_T|x_0) || N(0, I))                             prior matching
                   + sum_{t=2..T} E_q KL(q(x_{t-1}|x_t,x_0) || p_theta(x_{t-1}|x_t))   denoising

Two equal-variance Gaussians have KL = ||mu~ - mu_theta||^2 / (2 beta~_t): the KL becomes an
MSE, and with x0-prediction it is (SNR(t-1) - SNR(t))/2 * ||x0_hat - x_0||^2 -- the weight DiffRec
uses when ``reweight=True``.

Indexing: code is 0-based. ``t = i`` in a tensor means paper step ``i + 1``; ``t = 0`` is the
first noised step x_1 and ``t = T - 1`` is x_T. Tensors ``x`` have shape (B, D): one row per
user (DiffRec) or per target item embedding (DiffuRec); ``t`` has shape (B,).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from . import schedules

MEAN_TYPES = ("x0", "eps")


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """Elementwise KL( N(mean1, exp(logvar1)) || N(mean2, exp(logvar2)) ), any broadcastable shapes."""
    return 0.5 * (logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2) - 1.0)


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """Mean over every dimension but the first: (B, ...) -> (B,)."""
    return x.reshape(x.shape[0], -1).mean(dim=1)


def sum_flat(x: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension but the first: (B, ...) -> (B,)."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


class GaussianDiffusion(nn.Module):
    """The diffusion process for a schedule ``betas`` (T,); holds no learned weights.

    The denoiser is passed in as ``model(x_t, t) -> (B, D)`` (a prediction of x_0 or eps).
    It is an ``nn.Module`` only so that ``.to(device)`` moves the schedule's buffers.
    """

    def __init__(self, betas: torch.Tensor, mean_type: str = "x0"):
        super().__init__()
        if mean_type not in MEAN_TYPES:
            raise ValueError(f"mean_type must be one of {MEAN_TYPES}, got {mean_type!r}")
        betas = torch.as_tensor(betas, dtype=torch.float64)
        if betas.ndim != 1 or len(betas) < 1:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got shape {tuple(betas.shape)}")
        schedules._validate(betas, "betas")
        self.mean_type = mean_type
        self.T = len(betas)

        alphas = 1 - betas
        alpha_bar = torch.cumprod(alphas, 0)
        alpha_bar_prev = torch.cat([betas.new_ones(1), alpha_bar[:-1]])
        posterior_variance = betas * (1 - alpha_bar_prev) / (1 - alpha_bar)
        buffers = {
            "betas": betas,
            "alphas": alphas,
            "alpha_bar": alpha_bar,
            "alpha_bar_prev": alpha_bar_prev,
            "sqrt_alpha_bar": alpha_bar.sqrt(),
            "sqrt_one_minus_alpha_bar": (1 - alpha_bar).sqrt(),
            "posterior_variance": posterior_variance,
            # beta~_1 = 0: clip the log at t = 1 with beta~_2, as in Ho et al. and DiffRec
            "posterior_log_variance": torch.log(torch.cat(
                [posterior_variance[1:2] if self.T > 1 else betas[:1], posterior_variance[1:]])),
            "posterior_coef_x0": betas * alpha_bar_prev.sqrt() / (1 - alpha_bar),
            "posterior_coef_xt": (1 - alpha_bar_prev) * alphas.sqrt() / (1 - alpha_bar),
        }
        for name, value in buffers.items():
            self.register_buffer(name, value, persistent=False)

    def _apply(self, fn, recurse=True):
        """What ``.to(device)`` runs. Apple's MPS holds no float64 (moving a float64 tensor there
        raises a TypeError naming float64): there the schedule is stored in float32 instead, which
        loses precision in ``1 - alpha_bar`` at DiffRec's tiny noise. CPU and CUDA keep float64.
        (Not tested on Apple hardware: the fallback is tested with a stand-in device.)"""
        try:
            return super()._apply(fn, recurse)
        except TypeError as err:
            if "float64" not in str(err) or all(b.dtype != torch.float64 for b in self._buffers.values()):
                raise
        for name, buf in self._buffers.items():
            self._buffers[name] = buf.float()
        return super()._apply(fn, recurse)

    # ----------------------------------------------------------------- helpers
    def _at(self, arr: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """arr[t] as x's dtype, shaped (B, 1, ..., 1) to broadcast against x (B, ...)."""
        return arr.to(x.device)[t].to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))

    def _check_t(self, t: torch.Tensor, batch: int) -> torch.Tensor:
        t = torch.as_tensor(t)
        if t.ndim == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise ValueError(f"t must have shape ({batch},), got {tuple(t.shape)}")
        if t.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"t must hold integer steps, got dtype {t.dtype}")
        if (t < 0).any() or (t >= self.T).any():
            raise ValueError(f"steps t must lie in [0, {self.T - 1}] (0-based), "
                             f"got min {int(t.min())} max {int(t.max())}")
        return t.long()

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """SNR(t) = alpha_bar_t / (1 - alpha_bar_t) for 0-based steps t (B,); SNR(-1) = inf."""
        t = torch.as_tensor(t, device=self.alpha_bar.device)
        ab = self.alpha_bar[t.clamp(min=0)]
        out = ab / (1 - ab)
        return torch.where(t < 0, torch.full_like(out, math.inf), out)

    # ----------------------------------------------------------------- forward process
    def q_mean_variance(self, x0: torch.Tensor, t: torch.Tensor):
        """Mean (B, D) and variance (B, 1) of q(x_t | x_0)."""
        t = self._check_t(t, x0.shape[0])
        return self._at(self.sqrt_alpha_bar, t, x0) * x0, self._at(1 - self.alpha_bar, t, x0)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw x_t ~ q(x_t | x_0) in one go: sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps.

        x0 (B, D), t (B,) 0-based steps, noise (B, D) or None (then drawn from ``generator``).
        (Hugging Face diffusers calls this ``add_noise``.)
        """
        t = self._check_t(t, x0.shape[0])
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        if noise.shape != x0.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} != x0 shape {tuple(x0.shape)}")
        return self._at(self.sqrt_alpha_bar, t, x0) * x0 + self._at(self.sqrt_one_minus_alpha_bar, t, x0) * noise

    add_noise = q_sample

    def q_sample_chain(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Run the Markov chain x_1, ..., x_T one step at a time; returns (T, B, D).

        Only for teaching and testing: ``q_sample`` gives the same marginals in one step.
        """
        xs, x = [], x0
        for i in range(self.T):
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            beta = self.betas[i].to(x.dtype)
            x = torch.sqrt(1 - beta) * x + torch.sqrt(beta) * noise
            xs.append(x)
        return torch.stack(xs)

    # ----------------------------------------------------------------- posterior
    def q_posterior_mean_variance(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor):
        """Mean mu~_t (B, D), variance beta~_t and clipped log-variance (B, 1) of q(x_{t-1}|x_t, x_0)."""
        t = self._check_t(t, x0.shape[0])
        mean = self._at(self.posterior_coef_x0, t, x_t) * x0 + self._at(self.posterior_coef_xt, t, x_t) * x_t
        return mean, self._at(self.posterior_variance, t, x_t), self._at(self.posterior_log_variance, t, x_t)

    def predict_x0_from_eps(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Invert q_sample: x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
        return (x_t - self._at(self.sqrt_one_minus_alpha_bar, t, x_t) * eps) / self._at(self.sqrt_alpha_bar, t, x_t)

    # ----------------------------------------------------------------- reverse process
    def predict_x0(self, model, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The model's estimate x0_hat(x_t, t), whatever it predicts."""
        out = model(x_t, t)
        return out if self.mean_type == "x0" else self.predict_x0_from_eps(x_t, t, out)

    def p_mean_variance(self, model, x_t: torch.Tensor, t: torch.Tensor) -> dict:
        """Parameters of p_theta(x_{t-1} | x_t): mean mu_theta = mu~_t(x_t, x0_hat), variance beta~_t.

        Returns a dict with ``mean`` (B, D), ``variance`` and ``log_variance`` (B, 1), ``x0_hat`` (B, D).
        """
        t = self._check_t(t, x_t.shape[0])
        x0_hat = self.predict_x0(model, x_t, t)
        mean, var, log_var = self.q_posterior_mean_variance(x0_hat, x_t, t)
        return {"mean": mean, "variance": var, "log_variance": log_var, "x0_hat": x0_hat}

    def p_step(self, model, x_t: torch.Tensor, t: int, sampling_noise: bool = False,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One reverse step x_t -> x_{t-1} at 0-based step ``t``; returns (x_{t-1}, x0_hat).

        Without ``sampling_noise`` the step returns the mean (DiffRec's inference).
        (Hugging Face diffusers calls this ``step``.)
        """
        tt = torch.full((x_t.shape[0],), int(t), dtype=torch.long, device=x_t.device)
        out = self.p_mean_variance(model, x_t, tt)
        if sampling_noise and t > 0:
            noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
            return out["mean"] + torch.exp(0.5 * out["log_variance"]) * noise, out["x0_hat"]
        return out["mean"], out["x0_hat"]

    @torch.no_grad()
    def p_sample(self, model, x_start: torch.Tensor, steps: int = 0, sampling_noise: bool = False,
                 return_trajectory: bool = False, reverse_steps: int | None = None,
                 generator: torch.Generator | None = None):
        """DiffRec's inference: noise x_start for ``steps`` steps, then denoise.

        x_start (B, D): the user's (un-noised) interaction vectors. ``steps = 0`` adds no
        noise (DiffRec's best setting on clean data). The reverse chain then runs
        ``reverse_steps`` steps, from step reverse_steps down to 1; by default all T, as in
        DiffRec's released code (which always runs the whole chain).
        Returns x_0 estimate (B, D), or (x_0, trajectory) with trajectory (S+1, B, D) the
        states from the starting x_t to the final x_0 when ``return_trajectory``.
        """
        if not 0 <= steps <= self.T:
            raise ValueError(f"steps must lie in [0, T={self.T}], got {steps}")
        reverse_steps = self.T if reverse_steps is None else reverse_steps
        if not 0 <= reverse_steps <= self.T:
            raise ValueError(f"reverse_steps must lie in [0, T={self.T}], got {reverse_steps}")
        x_t = x_start
        if steps > 0:
            t = torch.full((x_start.shape[0],), steps - 1, dtype=torch.long, device=x_start.device)
            x_t = self.q_sample(x_start, t, generator=generator)
        traj = [x_t]
        for i in reversed(range(reverse_steps)):
            x_t, _ = self.p_step(model, x_t, i, sampling_noise=sampling_noise, generator=generator)
            if return_trajectory:
                traj.append(x_t)
        return (x_t, torch.stack(traj)) if return_trajectory else x_t

    @torch.no_grad()
    def sample(self, model, shape: tuple[int, ...], device=None, return_trajectory: bool = False,
               generator: torch.Generator | None = None):
        """Generate from pure noise: x_T ~ N(0, I), then T noisy reverse steps (DDPM ancestral sampling).

        ``device`` defaults to the generator's, else to the schedule's (where ``.to()`` put it)."""
        if device is None:
            device = generator.device if generator is not None else self.betas.device
        x_T = torch.randn(shape, generator=generator, device=device)
        return self._reverse_from(model, x_T, return_trajectory, generator)

    def _reverse_from(self, model, x_t, return_trajectory, generator):
        traj = [x_t]
        for i in reversed(range(self.T)):
            x_t, _ = self.p_step(model, x_t, i, sampling_noise=True, generator=generator)
            traj.append(x_t)
        return (x_t, torch.stack(traj)) if return_trajectory else x_t

    # ----------------------------------------------------------------- training
    def training_losses(self, model, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None,
                        reweight: bool = True) -> dict:
        """Per-example losses for steps t (B,): the simplified ELBO DiffRec trains on.

        x0-prediction: mse = mean_d (x0_hat - x0)^2, weighted by SNR(t-1) - SNR(t) (1 at t = 1),
        which equals 2 KL / D (D = the length of a row; the KL as above). eps-prediction: mse of the noise,
        weighted as DiffRec's released code does, (1 - ab_t) / ((1 - ab_{t-1})^2 alpha_t), with
        the x0-MSE/2 at t = 1. That weight is the release's, kept for parity: it is NOT the KL
        factor beta_t / (2 alpha_t (1 - ab_{t-1})) of notebook 02 (it is 5x to 1200x larger on
        a linear T = 50 schedule). The papers' models predict x0, whose weight is the KL's.
        Returns ``loss`` (B,) (weighted when ``reweight``), ``mse`` (B,), ``x_t`` and ``output``.
        """
        t = self._check_t(t, x0.shape[0])
        if noise is None:
            noise = torch.randn_like(x0)
        x_t = self.q_sample(x0, t, noise)
        output = model(x_t, t)
        target = x0 if self.mean_type == "x0" else noise
        if output.shape != target.shape:
            raise ValueError(f"model output shape {tuple(output.shape)} != target shape {tuple(target.shape)}")
        mse = mean_flat((target - output) ** 2)
        loss = mse
        if reweight:
            if self.mean_type == "x0":
                weight = self.snr(t - 1) - self.snr(t)
                weight = torch.where(t == 0, torch.ones_like(weight), weight)
            else:
                ab, abp, beta = self.alpha_bar[t], self.alpha_bar_prev[t], self.betas[t]
                weight = (1 - ab) / ((1 - abp) ** 2 * (1 - beta))      # the release's, not the KL's
                weight = torch.where(t == 0, torch.ones_like(weight), weight)
                x0_mse = mean_flat((x0 - self.predict_x0_from_eps(x_t, t, output)) ** 2) / 2
                loss = torch.where(t == 0, x0_mse, mse)
            loss = weight.to(loss.dtype) * loss
        return {"loss": loss, "mse": mse, "x_t": x_t, "output": output}

    # ----------------------------------------------------------------- the ELBO, term by term
    def prior_matching_term(self, x0: torch.Tensor) -> torch.Tensor:
        """KL(q(x_T | x_0) || N(0, I)) summed over dimensions; (B,). No parameters to learn."""
        t = torch.full((x0.shape[0],), self.T - 1, dtype=torch.long, device=x0.device)
        mean, var = self.q_mean_variance(x0, t)
        return sum_flat(normal_kl(mean, torch.log(var), torch.zeros_like(mean), torch.zeros_like(mean)))

    def reconstruction_term(self, model, x0: torch.Tensor, noise: torch.Tensor | None = None,
                            variance: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """E_q[-log p_theta(x_0 | x_1)], one Monte Carlo draw of x_1, summed over dimensions; (B,).

        p_theta(x_0|x_1) is taken Gaussian around x0_hat(x_1, 1) with variance ``variance``
        (default beta_1): -log p = ||x_0 - x0_hat||^2 / (2 var) + D/2 log(2 pi var).
        """
        t = torch.zeros(x0.shape[0], dtype=torch.long, device=x0.device)
        x1 = self.q_sample(x0, t, noise, generator=generator)
        x0_hat = self.predict_x0(model, x1, t)
        var = float(self.betas[0]) if variance is None else float(variance)
        return sum_flat((x0 - x0_hat) ** 2) / (2 * var) + 0.5 * x0[0].numel() * math.log(2 * math.pi * var)

    def denoising_matching_terms(self, model, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """KL(q(x_{t-1}|x_t,x_0) || p_theta(x_{t-1}|x_t)) for paper steps t = 2..T; shape (T-1, B).

        Row i is step t = i + 2 (0-based index i + 1). Each x_t is one draw from q(x_t|x_0);
        the KL is summed over dimensions. Equal variances make each KL a weighted MSE.
        """
        rows = []
        for i in range(1, self.T):
            t = torch.full((x0.shape[0],), i, dtype=torch.long, device=x0.device)
            x_t = self.q_sample(x0, t, generator=generator)
            true_mean, _, log_var = self.q_posterior_mean_variance(x0, x_t, t)
            model_mean = self.p_mean_variance(model, x_t, t)["mean"]
            rows.append(sum_flat(normal_kl(true_mean, log_var, model_mean, log_var)))
        return torch.stack(rows) if rows else x0.new_zeros(0, x0.shape[0])

    def elbo_terms(self, model, x0: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """All three kinds of ELBO term for x0 (B, D), each averaged over the batch (floats / (T-1,))."""
        with torch.no_grad():
            rec = self.reconstruction_term(model, x0, generator=generator)
            prior = self.prior_matching_term(x0)
            den = self.denoising_matching_terms(model, x0, generator)
        return {"reconstruction": rec.mean().item(), "prior_matching": prior.mean().item(),
                "denoising_matching": den.mean(dim=1), "total": (rec + prior + den.sum(0)).mean().item()}


class StepSampler:
    """Chooses the diffusion step t for each training example.

    ``uniform``: t ~ U{0, ..., T-1}. ``importance`` (DiffRec): p_t proportional to
    sqrt(E[L_t^2]) over each step's last ``history`` losses, mixed with a little uniform
    mass; uniform until every step has ``history`` losses recorded.

    ``sample`` returns (t (B,), w (B,)) where w = T * p_t (1 under uniform): divide each
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
        """The sampler's memory as one (T, history + 1) tensor: loss history, then counts.

        It is training state: models return it from ``get_extra_state`` so that checkpoints
        (``train.fit(resume=True)``) continue with the same step distribution.
        """
        return torch.cat([self.loss_history, self.count[:, None].double()], 1)

    def load_state(self, state: torch.Tensor) -> None:
        """Restore what ``state()`` returned."""
        if tuple(state.shape) != (self.T, self.history + 1):
            raise ValueError(f"sampler state has shape {tuple(state.shape)}, expected "
                             f"({self.T}, {self.history + 1}): was it saved with another T?")
        self.loss_history.copy_(state[:, :-1])
        self.count.copy_(state[:, -1].long())

    def update(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Record losses (B,) of steps t (B,): each step keeps its last ``history`` values."""
        if self.method == "uniform":
            return
        t = t.detach().cpu()
        losses = losses.detach().cpu().to(torch.float64)
        for step in torch.unique(t).tolist():
            new = losses[t == step]
            n = int(self.count[step])
            merged = torch.cat([self.loss_history[step, :n], new])[-self.history:]
            self.loss_history[step, :len(merged)] = merged
            self.count[step] = len(merged)
