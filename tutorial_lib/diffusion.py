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

    # ----------------------------------------------------------------- helpers
    def _at(self, arr: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """arr[t] as x's dtype, shaped (B, 1, ..., 1) to broadcast against x (B, ...)."""
        return arr.to(x.device)[t].to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))

    def _check_t(self, t: torch.Tensor, batch: int) -> torch.Tensor:
        t = torch.as_tensor(t)
        t = t.expand(batch) if t.ndim == 0 else t
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

    def q_sample_chain(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The Markov chain x_1, ..., x_T one step at a time, for teaching (``q_sample`` gives the
        same marginals in one go); returns (T, B, D)."""
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
        """p_theta(x_{t-1} | x_t): ``mean`` mu~_t(x_t, x0_hat) (B, D), ``variance`` beta~_t and
        ``log_variance`` (B, 1), and ``x0_hat`` (B, D)."""
        t = self._check_t(t, x_t.shape[0])
        x0_hat = self.predict_x0(model, x_t, t)
        mean, var, log_var = self.q_posterior_mean_variance(x0_hat, x_t, t)
        return {"mean": mean, "variance": var, "log_variance": log_var, "x0_hat": x0_hat}

    def p_sample(self, model, x_t: torch.Tensor, t: int, sampling_noise: bool = False,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One reverse step x_t -> x_{t-1} at 0-based step ``t``; returns (x_{t-1}, x0_hat), each (B, D).

        x_{t-1} = mu_theta(x_t, t) + sqrt(beta~_t) z with z ~ N(0, I), no noise at the last
        step (t = 0). Without ``sampling_noise`` the step returns the mean (DiffRec's inference).
        (DDPM's p_sample; Hugging Face diffusers calls it ``step``.)
        """
        tt = torch.full((x_t.shape[0],), int(t), dtype=torch.long, device=x_t.device)
        out = self.p_mean_variance(model, x_t, tt)
        if sampling_noise and t > 0:
            noise = torch.randn(x_t.shape, generator=generator, device=x_t.device, dtype=x_t.dtype)
            return out["mean"] + torch.exp(0.5 * out["log_variance"]) * noise, out["x0_hat"]
        return out["mean"], out["x0_hat"]

    @torch.no_grad()
    def p_sample_loop(self, model, x_start: torch.Tensor, steps: int = 0, sampling_noise: bool = False,
                      return_trajectory: bool = False, reverse_steps: int | None = None,
                      generator: torch.Generator | None = None):
        """The whole reverse chain, as DiffRec infers: noise x_start (B, D) for ``steps`` steps
        (0: none, DiffRec's best on clean data), then ``reverse_steps`` steps of ``p_sample``
        from step reverse_steps down to 1 (default all T, as the released code).
        Returns x_0 (B, D), and with ``return_trajectory`` the states x_t .. x_0 (S+1, B, D).
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
            x_t, _ = self.p_sample(model, x_t, i, sampling_noise=sampling_noise, generator=generator)
            if return_trajectory:
                traj.append(x_t)
        return (x_t, torch.stack(traj)) if return_trajectory else x_t

    @torch.no_grad()
    def sample(self, model, shape: tuple[int, ...], device=None, return_trajectory: bool = False,
               generator: torch.Generator | None = None):
        """Generate from pure noise: x_T ~ N(0, I), then T noisy reverse steps (DDPM's Algorithm 2).

        ``device`` defaults to the generator's, else to the schedule's (where ``.to()`` put it)."""
        if device is None:
            device = generator.device if generator is not None else self.betas.device
        x_T = torch.randn(shape, generator=generator, device=device)
        return self.p_sample_loop(model, x_T, sampling_noise=True, return_trajectory=return_trajectory,
                                  generator=generator)

    # ----------------------------------------------------------------- training
    def training_losses(self, model, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None,
                        reweight: bool = True) -> dict:
        """Per-example losses for steps t (B,): the simplified ELBO DiffRec trains on.

        x0-prediction: mse = mean_d (x0_hat - x0)^2, weighted by SNR(t-1) - SNR(t) (1 at t = 1),
        which equals 2 KL / D (D = the length of a row). eps-prediction: mse of the noise, weighted
        as DiffRec's release, (1 - ab_t) / ((1 - ab_{t-1})^2 alpha_t), with the x0-MSE/2 at t = 1;
        NOT the KL factor beta_t / (2 alpha_t (1 - ab_{t-1})) (5x to 1200x larger at linear T = 50).
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
        """E_q[-log p_theta(x_0 | x_1)], one draw of x_1, summed over dimensions; (B,). p_theta(x_0|x_1)
        is Gaussian around x0_hat(x_1, 1) with ``variance`` (default beta_1):
        -log p = ||x_0 - x0_hat||^2 / (2 var) + D/2 log(2 pi var)."""
        t = torch.zeros(x0.shape[0], dtype=torch.long, device=x0.device)
        x1 = self.q_sample(x0, t, noise, generator=generator)
        x0_hat = self.predict_x0(model, x1, t)
        var = float(self.betas[0]) if variance is None else float(variance)
        return sum_flat((x0 - x0_hat) ** 2) / (2 * var) + 0.5 * x0[0].numel() * math.log(2 * math.pi * var)

    def denoising_matching_terms(self, model, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """KL(q(x_{t-1}|x_t,x_0) || p_theta(x_{t-1}|x_t)) for paper steps t = 2..T, summed over
        dimensions, one draw of x_t each; (T-1, B), row i is paper step i + 2."""
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


def respaced(diffusion: GaussianDiffusion, steps: torch.Tensor) -> GaussianDiffusion:
    """A diffusion over the sub-sequence ``steps`` (0-based, increasing) of ``diffusion``'s steps.

    Keeps alpha_bar at those steps (Nichol & Dhariwal's respacing):
    beta'_k = 1 - alpha_bar[steps[k]] / alpha_bar[steps[k-1]], with alpha_bar before the first = 1.
    """
    ab = diffusion.alpha_bar[steps]
    prev = torch.cat([ab.new_ones(1), ab[:-1]])
    # beta' < 1 also where alpha_bar rounds to 0 (one step from s to 0 would make it exactly 1)
    return GaussianDiffusion((1 - ab / prev).clamp(1e-12, 1 - 1e-12), mean_type="x0")
