r"""Noise schedules: how much noise the forward process adds at each step.

A schedule is a sequence of variances :math:`\beta_1, \dots, \beta_T` with :math:`0 < \beta_t < 1`.
Everything else follows from it:

    alpha_t      = 1 - beta_t
    alpha_bar_t  = prod_{s<=t} alpha_s          (how much of x_0 survives at step t)
    SNR(t)       = alpha_bar_t / (1 - alpha_bar_t)

Each schedule below is a plain function returning a float64 tensor of shape ``(T,)``;
index ``i`` holds :math:`\beta_{i+1}` (code is 0-based, the papers count from 1).

* ``linear``, ``quadratic``      Ho et al. (2020), rescaled by 1000/T as in Nichol & Dhariwal
* ``sqrt``                       Li et al. (2022, Diffusion-LM): alpha_bar_t = 1 - sqrt(t/T + s)
* ``cosine``                     Nichol & Dhariwal (2021): alpha_bar_t = cos^2(((t/T + s)/(1 + s)) pi/2)
* ``linear-var``                 DiffRec (Wang et al. 2023): 1 - alpha_bar_t linear from
                                 noise_scale*noise_min to noise_scale*noise_max
* ``trunc-linear``               DiffuRec (Li et al. 2023): linear betas shifted up by 0.01,
                                 from 0.013125 to 0.635 at T = 32
"""
from __future__ import annotations

import math
import numbers

import torch

MAX_BETA = 0.999


def _check_T(T) -> int:
    if isinstance(T, bool) or not isinstance(T, numbers.Integral) or T < 1:
        raise ValueError(f"the number of steps T must be an integer >= 1, got {T!r}")
    return int(T)


def _validate(betas: torch.Tensor, name: str) -> torch.Tensor:
    if not torch.isfinite(betas).all() or (betas <= 0).any() or (betas >= 1).any():
        advice = ("choose larger noise" if torch.isfinite(betas).all() and (betas < 1).all()
                  else "choose smaller noise or more steps")
        raise ValueError(
            f"schedule {name!r} produced betas outside (0, 1): min {betas.min().item():.3g}, "
            f"max {betas.max().item():.3g}; {advice}")
    if (1 - betas.to(torch.float64) == 1).any():
        raise ValueError(
            f"schedule {name!r} has a step that adds no noise: beta_t = {betas.min().item():.3g} "
            "rounds 1 - beta_t to 1 (then 1 - alpha_bar_t = 0 and SNR is infinite); choose larger noise")
    return betas


def betas_from_alpha_bar(alpha_bar: torch.Tensor, max_beta: float = MAX_BETA) -> torch.Tensor:
    """beta_t = 1 - alpha_bar_t / alpha_bar_{t-1} (with alpha_bar_0 = 1), clipped at ``max_beta``.

    alpha_bar: (T,) decreasing values in (0, 1]. Returns betas (T,) float64.
    """
    alpha_bar = alpha_bar.to(torch.float64)
    prev = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])
    return (1 - alpha_bar / prev).clamp(max=max_beta)


def linear(T: int, beta_start: float | None = None, beta_end: float | None = None) -> torch.Tensor:
    """beta_t linear from beta_start to beta_end (defaults 1e-4 and 0.02, scaled by 1000/T)."""
    T = _check_T(T)
    scale = 1000 / T
    start = scale * 1e-4 if beta_start is None else beta_start
    end = scale * 0.02 if beta_end is None else beta_end
    betas = torch.linspace(start, end, T, dtype=torch.float64).clamp(max=MAX_BETA)
    return _validate(betas, "linear")


def quadratic(T: int, beta_start: float | None = None, beta_end: float | None = None) -> torch.Tensor:
    """sqrt(beta_t) linear from sqrt(beta_start) to sqrt(beta_end) (defaults as ``linear``)."""
    T = _check_T(T)
    scale = 1000 / T
    start = scale * 1e-4 if beta_start is None else beta_start
    end = scale * 0.02 if beta_end is None else beta_end
    betas = (torch.linspace(math.sqrt(start), math.sqrt(end), T, dtype=torch.float64) ** 2)
    return _validate(betas.clamp(max=MAX_BETA), "quadratic")


def sqrt(T: int, s: float = 1e-4) -> torch.Tensor:
    """Diffusion-LM's schedule: alpha_bar(t) = 1 - sqrt(t/T + s), the paper's formula as written.

    Diffusion-LM's released code divides by alpha_bar(0) = 1 - sqrt(s) (0.99 at s = 1e-4),
    which makes beta_1 smaller (0.023 instead of 0.033 at T = 1000); later steps barely differ.
    """
    T = _check_T(T)
    t = torch.arange(1, T + 1, dtype=torch.float64) / T
    raw = 1 - torch.sqrt(t + s)                  # <= 0 at the last steps when s >= 1/T
    betas = betas_from_alpha_bar(raw.clamp(min=1e-12))
    betas[raw <= 0] = MAX_BETA                   # all signal gone: the largest step allowed
    return _validate(betas, "sqrt")


def cosine(T: int, s: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal: alpha_bar(t) = f(t)/f(0), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2)."""
    T = _check_T(T)
    t = torch.arange(0, T + 1, dtype=torch.float64) / T
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f[1:] / f[0]
    return _validate(betas_from_alpha_bar(alpha_bar), "cosine")


def linear_var(T: int, noise_scale: float = 0.005, noise_min: float = 0.005,
               noise_max: float = 0.01) -> torch.Tensor:
    """DiffRec's schedule: the variance 1 - alpha_bar_t grows linearly in t.

    1 - alpha_bar_t runs from ``noise_scale * noise_min`` (t = 1) to
    ``noise_scale * noise_max`` (t = T). Small values keep x_T close to the user's
    interactions: DiffRec never destroys the signal completely.
    """
    T = _check_T(T)
    if noise_scale <= 0:
        raise ValueError(f"noise_scale must be > 0, got {noise_scale}")
    if not 0 < noise_min < noise_max:
        raise ValueError(f"need 0 < noise_min < noise_max, got noise_min={noise_min}, "
                         f"noise_max={noise_max}")
    if noise_scale * noise_max >= 1:
        raise ValueError(f"noise_scale * noise_max must be < 1, got {noise_scale * noise_max}")
    variance = torch.linspace(noise_scale * noise_min, noise_scale * noise_max, T,
                              dtype=torch.float64)
    return _validate(betas_from_alpha_bar(1 - variance), "linear-var")


def truncated_linear(T: int) -> torch.Tensor:
    """DiffuRec's 'trunc_lin': beta linear from 1000/T * 1e-4 + 0.01 to 1000/T * 0.02 + 0.01.

    At T = 32 the betas run from 0.013125 to 0.635: few steps, lots of noise each. For T <= 20
    the end passes 1 and we clip every beta at 0.999 (the last steps then erase the signal).
    The released code lowers the end to 1000/T * 0.001 + 0.01 instead (0.135 at T = 8), a far
    gentler schedule; the paper's T = 32 is not affected.
    """
    T = _check_T(T)
    scale = 1000 / T
    betas = torch.linspace(scale * 1e-4 + 0.01, scale * 0.02 + 0.01, T, dtype=torch.float64)
    return _validate(betas.clamp(max=MAX_BETA), "trunc-linear")


SCHEDULES = {
    "linear": linear,
    "quadratic": quadratic,
    "sqrt": sqrt,
    "cosine": cosine,
    "linear-var": linear_var,
    "trunc-linear": truncated_linear,
}
_ALIASES = {"linear_var": "linear-var", "trunc_lin": "trunc-linear",
            "truncated-linear": "trunc-linear", "truncated_linear": "trunc-linear"}


def get_betas(name: str, T: int, **kwargs) -> torch.Tensor:
    """Betas (T,) of the schedule called ``name``; kwargs go to that schedule's function."""
    key = _ALIASES.get(name, name)
    if key not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; valid names: {', '.join(SCHEDULES)}")
    return SCHEDULES[key](T, **kwargs)


def alpha_bar(betas: torch.Tensor) -> torch.Tensor:
    """alpha_bar_t = prod_{s<=t} (1 - beta_s); shape (T,)."""
    return torch.cumprod(1 - betas.to(torch.float64), dim=0)


def snr(betas: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio SNR(t) = alpha_bar_t / (1 - alpha_bar_t); shape (T,)."""
    ab = alpha_bar(betas)
    return ab / (1 - ab)
