"""The 1-D toy of notebooks 01-02: mixture sampling, its diffused density, the tiny denoiser."""
import math

import pytest
import torch

from tutorial_lib import schedules
from tutorial_lib.diffusion import GaussianDiffusion
from tutorial_lib.models import toy
from tutorial_lib.models.layers import timestep_embedding
from tutorial_lib.step_sampler import StepSampler


def test_mixture_marginal_pdf_closed_form():
    grid = torch.linspace(-12, 12, 4001, dtype=torch.float64)
    dx = (grid[1] - grid[0]).item()
    for ab in (1.0, 0.5, 1e-9):
        assert toy.mixture_marginal_pdf(grid, ab).sum().item() * dx == pytest.approx(1.0, abs=1e-6)
    # alpha_bar = 1: the data density itself; hand-computed at x = -2 (first component's mean)
    expected = 0.4 / math.sqrt(2 * math.pi * 0.09) + 0.6 * math.exp(-3.5 ** 2 / 0.5) / math.sqrt(2 * math.pi * 0.25)
    assert toy.mixture_marginal_pdf(torch.tensor([-2.0]), 1.0).item() == pytest.approx(expected)
    # alpha_bar = 0.5: the moments of q(x_t) = sum_k pi_k N(sqrt(ab) mu_k, ab s_k^2 + 1 - ab)
    ab, pi, mu, var = 0.5, [0.4, 0.6], [-2.0, 1.5], [0.09, 0.25]
    density = toy.mixture_marginal_pdf(grid, ab)
    mean = (grid * density).sum().item() * dx
    second = (grid ** 2 * density).sum().item() * dx
    expected_mean = sum(p * math.sqrt(ab) * m for p, m in zip(pi, mu))
    expected_second = sum(p * (ab * v + 1 - ab + ab * m ** 2) for p, m, v in zip(pi, mu, var))
    assert mean == pytest.approx(expected_mean, abs=1e-6)
    assert second - mean ** 2 == pytest.approx(expected_second - expected_mean ** 2, abs=1e-6)
    # alpha_bar -> 0: standard normal
    z = torch.tensor([0.0, 1.0])
    assert toy.mixture_marginal_pdf(z, 1e-12).numpy() == pytest.approx(
        (torch.exp(-z ** 2 / 2) / math.sqrt(2 * math.pi)).numpy())


def test_sample_mixture_matches_weights_and_moments():
    x = toy.sample_mixture(20_000, generator=torch.Generator().manual_seed(0))
    assert x.shape == (20_000, 1) and x.dtype == torch.float32
    left = x[x < -0.25]
    assert len(left) / len(x) == pytest.approx(0.4, abs=0.02)
    assert left.mean().item() == pytest.approx(-2.0, abs=0.02)
    assert left.std().item() == pytest.approx(0.3, abs=0.02)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="equal length"):
        toy.sample_mixture(10, means=(0.0, 1.0), stds=(1.0,), weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="stds must be > 0"):
        toy.sample_mixture(10, stds=(0.3, -1.0))
    with pytest.raises(ValueError, match="even number"):
        timestep_embedding(torch.arange(3), 5)
    with pytest.raises(ValueError, match=r"shape \(B, 1\)"):
        toy.ToyDenoiser(dim=1)(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))


def test_timestep_embedding_values():
    emb = timestep_embedding(torch.tensor([0, 3]), 4)       # freqs 1 and 1/100
    assert emb[0].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert emb[1].tolist() == pytest.approx([math.cos(3), math.cos(0.03), math.sin(3), math.sin(0.03)], abs=1e-6)


def test_denoiser_learns_the_toy(one_thread):
    """Trained briefly, the eps-predictor's x0 error beats an untrained one's (eps_hat ~ 0)."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x0 = toy.sample_mixture(2000, generator=gen)
    diffusion = GaussianDiffusion(schedules.get_betas("linear", 20), mean_type="eps")
    model = toy.ToyDenoiser(dim=1, hidden=32)
    sampler = StepSampler(20, method="importance", history=5)
    hist = toy.train_denoiser(diffusion, model, x0, steps=300, batch_size=256, lr=3e-3,
                              sampler=sampler, snapshot_every=100, generator=gen, progress=False)
    assert sum(hist["loss"][-50:]) / 50 < 0.6 * sum(hist["loss"][:10]) / 10
    assert [s for s, _ in hist["p_t"]] == [0, 100, 200, 300] and sampler.warmed_up   # updates made
    # eps_hat = 0 gives x0_hat = x_t / sqrt(ab_t), an x0 error of (1 - ab_t) / ab_t (an untrained
    # network is close to it: 1.43 against 1.48 at step 5); the trained one reached 0.91
    t = torch.full((len(x0),), 5)
    with torch.no_grad():
        x_t = diffusion.q_sample(x0, t, generator=gen)
        err = ((diffusion.predict_x0(model, x_t, t) - x0) ** 2).mean().item()
    ab = diffusion.alpha_bar[5].item()
    assert err < 0.75 * (1 - ab) / ab


def test_residual_path_adds_x_t():
    torch.manual_seed(0)
    plain = toy.ToyDenoiser(dim=2, hidden=8)
    residual = toy.ToyDenoiser(dim=2, hidden=8, residual=True)
    residual.load_state_dict(plain.state_dict())
    x_t, t = torch.randn(5, 2), torch.tensor([0, 1, 2, 3, 4])
    assert torch.allclose(residual(x_t, t), x_t + plain(x_t, t))
    with torch.no_grad():                    # a zero last layer: the residual model returns x_t
        residual.net[-1].weight.zero_()
        residual.net[-1].bias.zero_()
    assert torch.equal(residual(x_t, t), x_t)


def test_step_weight_multiplies_each_example_loss(one_thread):
    diffusion = GaussianDiffusion(schedules.get_betas("linear", 10), mean_type="x0")
    x0 = toy.sample_mixture(64, generator=torch.Generator().manual_seed(0))
    first = {}
    for name, weight in (("none", None), ("double", lambda t: torch.full(t.shape, 2.0)),
                         ("snr", lambda t: 1 + diffusion.snr(t))):
        torch.manual_seed(0)
        model = toy.ToyDenoiser(dim=1, hidden=8)
        hist = toy.train_denoiser(diffusion, model, x0, steps=1, batch_size=64, step_weight=weight,
                                  generator=torch.Generator().manual_seed(1), progress=False)
        first[name] = hist["loss"][0]
    assert first["double"] == pytest.approx(2 * first["none"], rel=1e-6)
    assert first["snr"] > 2 * first["none"]                  # 1 + SNR(t) >= 1, large at small t
