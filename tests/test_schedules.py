"""Noise schedules: bounds, monotone alpha_bar, the papers' published values, clear errors."""
import math

import numpy as np
import pytest
import torch

from tutorial_lib import schedules

ALL = list(schedules.SCHEDULES)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("T", [1, 2, 5, 40, 1000])
def test_betas_valid_and_alpha_bar_monotone(name, T):
    betas = schedules.get_betas(name, T)
    assert betas.dtype == torch.float64 and betas.shape == (T,)
    assert (betas > 0).all() and (betas < 1).all()
    ab = schedules.alpha_bar(betas)
    assert (ab > 0).all() and (ab < 1).all()
    assert (ab[1:] < ab[:-1]).all(), "alpha_bar must strictly decrease"
    snr = schedules.snr(betas)
    assert (snr[1:] < snr[:-1]).all()


def test_diffurec_truncated_linear_published_values():
    betas = schedules.get_betas("trunc-linear", 32)
    assert betas[0].item() == pytest.approx(0.013125, abs=1e-12)
    assert betas[-1].item() == pytest.approx(0.635, abs=1e-12)
    assert torch.allclose(betas[1:] - betas[:-1], torch.full((31,), (0.635 - 0.013125) / 31, dtype=torch.float64))


def test_diffrec_linear_var_variance_is_linear():
    betas = schedules.get_betas("linear-var", 40, noise_scale=0.005, noise_min=0.005, noise_max=0.01)
    var = 1 - schedules.alpha_bar(betas)
    expected = torch.linspace(0.005 * 0.005, 0.005 * 0.01, 40, dtype=torch.float64)
    assert torch.allclose(var, expected, rtol=1e-10, atol=1e-15)
    # DiffRec keeps x_T close to x_0: alpha_bar_T = 1 - 5e-5
    assert schedules.alpha_bar(betas)[-1].item() == pytest.approx(1 - 5e-5)


def test_truncated_linear_for_few_steps_clips_where_the_release_lowers_the_end():
    # T <= 20: 1000/T * 0.02 + 0.01 > 1. We clip at 0.999 (documented); the release would end
    # at 1000/T * 0.001 + 0.01 = 0.135 at T = 8. The recipes' small DiffuRec uses T = 8.
    betas = schedules.get_betas("trunc-linear", 8)
    assert betas[0].item() == pytest.approx(125 * 1e-4 + 0.01)
    assert (betas[3:] == 0.999).all()                   # linspace(0.0225, 2.51, 8) clipped
    assert betas[2].item() == pytest.approx(0.0225 + 2 * (2.51 - 0.0225) / 7)
    assert schedules.get_betas("trunc-linear", 21)[-1].item() == pytest.approx(1000 / 21 * 0.02 + 0.01)


def test_linear_default_matches_ddpm_at_1000_steps():
    betas = schedules.linear(1000)
    assert betas[0].item() == pytest.approx(1e-4)
    assert betas[-1].item() == pytest.approx(0.02)


def test_cosine_matches_closed_form():
    T, s = 50, 0.008
    ab = schedules.alpha_bar(schedules.cosine(T))
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    for t in [1, 10, 25, 40]:
        assert ab[t - 1].item() == pytest.approx(min(f(t) / f(0), 1.0), rel=1e-9)


def test_sqrt_matches_closed_form():
    T = 100
    ab = schedules.alpha_bar(schedules.sqrt(T))
    assert ab[49].item() == pytest.approx(1 - math.sqrt(0.5 + 1e-4), rel=1e-9)
    # s >= 1/T: the last two alpha_bar are <= 0 (no signal); those steps take the largest beta
    long = schedules.sqrt(10_000)
    assert long[-2:].tolist() == [schedules.MAX_BETA] * 2 and (long[:-2] < schedules.MAX_BETA).all()


def test_quadratic_sqrt_betas_linear():
    b = schedules.quadratic(10, beta_start=1e-4, beta_end=0.04)
    r = b.sqrt()
    assert torch.allclose(r[1:] - r[:-1], torch.full((9,), (0.2 - 0.01) / 9, dtype=torch.float64))


def test_unknown_schedule_lists_valid_names():
    with pytest.raises(ValueError, match="unknown schedule 'bogus'.*linear-var.*trunc-linear"):
        schedules.get_betas("bogus", 10)


@pytest.mark.parametrize("kw", [dict(noise_min=0.01, noise_max=0.01), dict(noise_min=0.02, noise_max=0.01)])
def test_noise_min_must_be_below_noise_max(kw):
    with pytest.raises(ValueError, match="noise_min < noise_max"):
        schedules.get_betas("linear-var", 10, **kw)


@pytest.mark.parametrize("T", [0, -3, 2.5, True])
def test_bad_T(T):
    with pytest.raises(ValueError, match="T must be an integer >= 1"):
        schedules.get_betas("cosine", T)


def test_aliases():
    assert torch.equal(schedules.get_betas("trunc_lin", 8), schedules.get_betas("trunc-linear", 8))
    assert torch.equal(schedules.get_betas("linear_var", 8), schedules.get_betas("linear-var", 8))


def test_numpy_integer_T_is_an_integer():
    assert torch.equal(schedules.get_betas("cosine", np.int64(7)), schedules.get_betas("cosine", 7))


@pytest.mark.parametrize("kw, match", [
    (dict(noise_scale=0.0), "noise_scale"),
    (dict(noise_scale=200.0), r"noise_scale \* noise_max must be < 1"),
    (dict(noise_scale=1e-13), "outside .*choose larger noise"),     # 1 - alpha_bar rounds to 0
])
def test_linear_var_bad_noise_says_which_way(kw, match):
    with pytest.raises(ValueError, match=match):
        schedules.get_betas("linear-var", 40, **kw)


def test_a_step_without_noise_is_rejected():
    from tutorial_lib.diffusion import GaussianDiffusion
    with pytest.raises(ValueError, match="adds no noise.*choose larger noise"):
        GaussianDiffusion(torch.tensor([1e-17, 0.01, 0.02]))


def test_linear_and_quadratic_rescale_ddpm_bounds_by_1000_over_T():
    # Nichol & Dhariwal's rescaling: beta from 1e-4 * 1000/T to 0.02 * 1000/T
    assert schedules.linear(50)[0].item() == pytest.approx(2e-3)
    assert schedules.linear(50)[-1].item() == pytest.approx(0.4)
    assert schedules.quadratic(50)[0].item() == pytest.approx(2e-3)
    assert schedules.quadratic(50)[-1].item() == pytest.approx(0.4)


def test_snr_is_alpha_bar_over_one_minus_alpha_bar():
    betas = torch.tensor([0.2, 0.5], dtype=torch.float64)           # alpha_bar = 0.8, 0.4
    torch.testing.assert_close(schedules.snr(betas), torch.tensor([4.0, 0.4 / 0.6], dtype=torch.float64))


def test_a_step_that_destroys_everything_is_rejected():
    from tutorial_lib.diffusion import GaussianDiffusion
    with pytest.raises(ValueError):
        GaussianDiffusion(torch.tensor([0.1, 1.0], dtype=torch.float64))
