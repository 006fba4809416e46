"""Gaussian diffusion: closed forms against the Markov chain and the textbook formulas."""
import math

import pytest
import torch

from tutorial_lib import schedules
from tutorial_lib.diffusion import GaussianDiffusion, normal_kl, respaced
from tutorial_lib.step_sampler import StepSampler


def make(T=10, name="cosine", mean_type="x0", **kw):
    return GaussianDiffusion(schedules.get_betas(name, T, **kw), mean_type=mean_type)


def test_q_sample_matches_markov_chain_in_mean_and_variance():
    torch.manual_seed(0)
    diff = make(T=12, name="linear", beta_start=0.01, beta_end=0.2)
    x0 = torch.tensor([[1.5, -0.5, 0.0]], dtype=torch.float64)
    N = 40000
    g = torch.Generator().manual_seed(1)
    chain = diff.q_sample_chain(x0.expand(N, 3), generator=g)          # (T, N, 3)
    for i in range(diff.T):
        t = torch.full((N,), i, dtype=torch.long)
        closed = diff.q_sample(x0.expand(N, 3), t, generator=g)
        mean, var = diff.q_mean_variance(x0, t[:1])
        se = torch.sqrt(var / N)
        assert (chain[i].mean(0) - mean[0]).abs().max() < 5 * se.max()
        assert (closed.mean(0) - mean[0]).abs().max() < 5 * se.max()
        # variance: standard error of a sample variance is var * sqrt(2/N)
        tol = 5 * var.item() * math.sqrt(2 / N)
        assert (chain[i].var(0) - var[0]).abs().max() < tol
        assert (closed.var(0) - var[0]).abs().max() < tol


def test_posterior_matches_bayes_rule():
    diff = make(T=20, name="linear", beta_start=1e-3, beta_end=0.1)
    x0 = torch.randn(4, 6, dtype=torch.float64)
    x_t = torch.randn(4, 6, dtype=torch.float64)
    for i in [1, 5, 19]:
        t = torch.full((4,), i, dtype=torch.long)
        ab_prev = diff.alpha_bar[i - 1]
        alpha, beta = diff.alphas[i], diff.betas[i]
        # product of q(x_{t-1}|x_0) and q(x_t|x_{t-1}), as a Gaussian in x_{t-1}
        precision = 1 / (1 - ab_prev) + alpha / beta
        mean = (ab_prev.sqrt() * x0 / (1 - ab_prev) + alpha.sqrt() * x_t / beta) / precision
        m, v, logv = diff.q_posterior_mean_variance(x0, x_t, t)
        assert torch.allclose(m, mean, rtol=1e-10, atol=1e-12)
        assert torch.allclose(v, torch.full_like(v, (1 / precision).item()), rtol=1e-10)
        assert torch.allclose(logv, v.log())


def test_posterior_at_first_step_is_x0():
    diff = make(T=5)
    x0, x_t = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    m, v, _ = diff.q_posterior_mean_variance(x0, x_t, torch.zeros(3, dtype=torch.long))
    assert torch.allclose(m, x0) and torch.all(v == 0)


def test_kl_between_equal_variance_gaussians_is_weighted_mse():
    m1, m2 = torch.randn(5, 7), torch.randn(5, 7)
    logvar = torch.full((5, 1), math.log(0.3))
    kl = normal_kl(m1, logvar, m2, logvar)
    assert torch.allclose(kl, (m1 - m2) ** 2 / (2 * 0.3), atol=1e-6)


def test_normal_kl_matches_monte_carlo():
    torch.manual_seed(0)
    m1, s1, m2, s2 = 0.3, 0.7, -0.2, 1.3
    x = m1 + s1 * torch.randn(400000, dtype=torch.float64)
    logp = -0.5 * ((x - m1) / s1) ** 2 - math.log(s1)
    logq = -0.5 * ((x - m2) / s2) ** 2 - math.log(s2)
    exact = normal_kl(torch.tensor(m1), torch.tensor(2 * math.log(s1)), torch.tensor(m2), torch.tensor(2 * math.log(s2)))
    assert (logp - logq).mean().item() == pytest.approx(exact.item(), abs=5e-3)


def test_denoising_kl_equals_snr_weighted_x0_mse():
    """KL(q || p_theta) at step t = (SNR(t-1) - SNR(t)) / 2 * ||x0_hat - x0||^2: DiffRec's reweighting."""
    diff = make(T=10, name="linear-var", noise_scale=0.1, noise_min=0.01, noise_max=0.5)
    x0 = torch.rand(3, 8, dtype=torch.float64)
    x0_hat = torch.rand(3, 8, dtype=torch.float64)
    model = lambda x_t, t: x0_hat
    for i in [1, 4, 9]:
        t = torch.full((3,), i, dtype=torch.long)
        x_t = diff.q_sample(x0, t)
        mu, _, logv = diff.q_posterior_mean_variance(x0, x_t, t)
        mu_theta = diff.p_mean_variance(model, x_t, t)["mean"]
        kl = normal_kl(mu, logv, mu_theta, logv).sum(1)
        w = (diff.snr(t - 1) - diff.snr(t)) / 2
        assert torch.allclose(kl, w * ((x0_hat - x0) ** 2).sum(1), rtol=1e-6)


def test_predict_x0_from_eps_inverts_q_sample():
    diff = make(T=8)
    x0, eps = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    t = torch.tensor([0, 3, 5, 7])
    x_t = diff.q_sample(x0, t, eps)
    assert torch.allclose(diff.predict_x0_from_eps(x_t, t, eps), x0)


def test_training_losses_zero_for_an_oracle_and_positive_otherwise():
    x0 = torch.rand(6, 9, dtype=torch.float64)
    noise = torch.randn_like(x0)
    t = torch.arange(6) % 5
    d0 = make(T=5, mean_type="x0")
    assert torch.all(d0.training_losses(lambda x, t: x0, x0, t, noise)["loss"] == 0)
    assert torch.all(d0.training_losses(lambda x, t: x0 + 0.1, x0, t, noise)["loss"] > 0)
    de = make(T=5, mean_type="eps")
    assert torch.allclose(de.training_losses(lambda x, t: noise, x0, t, noise)["loss"], torch.zeros(6, dtype=torch.float64), atol=1e-20)
    out = d0.training_losses(lambda x, t: x0 + 0.1, x0, t, noise, reweight=False)
    assert torch.allclose(out["loss"], torch.full((6,), 0.01, dtype=torch.float64))


def test_training_loss_weights():
    x0 = torch.rand(5, 9, dtype=torch.float64)
    noise = torch.randn_like(x0)
    t = torch.arange(5)
    # x0-prediction: SNR(t-1) - SNR(t), and 1 at the first step
    d0 = make(T=5, mean_type="x0")
    out = d0.training_losses(lambda x, t: x0 + 0.1, x0, t, noise)
    weight = torch.cat([torch.ones(1, dtype=torch.float64), (d0.snr(t - 1) - d0.snr(t))[1:]])
    assert torch.allclose(out["loss"], weight * 0.01)
    # eps-prediction: the DiffRec release's weight, and the x0 error / 2 at the first step
    de = make(T=5, mean_type="eps")
    eps_hat = noise + 0.1
    out = de.training_losses(lambda x, t: eps_hat, x0, t, noise)
    ab, abp, beta = de.alpha_bar, de.alpha_bar_prev, de.betas
    release = (1 - ab) / ((1 - abp) ** 2 * (1 - beta))
    x_t = de.q_sample(x0, t, noise)
    x0_err = ((de.predict_x0_from_eps(x_t, t, eps_hat) - x0) ** 2).mean(1) / 2
    assert torch.allclose(out["loss"][1:], release[1:] * 0.01)
    assert torch.allclose(out["loss"][:1], x0_err[:1])


def test_p_sample_loop_with_oracle_recovers_x0():
    diff = make(T=40, name="linear-var")
    x0 = (torch.rand(3, 20) < 0.3).double()
    out, traj = diff.p_sample_loop(lambda x, t: x0, x0, steps=0, return_trajectory=True)
    assert torch.allclose(out, x0)
    assert traj.shape == (41, 3, 20)
    noisy, traj = diff.p_sample_loop(lambda x, t: x0, x0, steps=10, sampling_noise=True, return_trajectory=True,
                                generator=torch.Generator().manual_seed(0))
    assert torch.allclose(noisy, x0)                  # the last step returns x0_hat exactly
    g = torch.Generator().manual_seed(0)
    start = diff.q_sample(x0, torch.full((3,), 9), generator=g)
    assert torch.equal(traj[0], start) and not torch.allclose(traj[0], x0)
    mean, _, log_var = diff.q_posterior_mean_variance(x0, start, torch.full((3,), 39))
    step_noise = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    assert torch.allclose(traj[1], mean + torch.exp(0.5 * log_var) * step_noise)


def test_sample_from_pure_noise_shape_and_seed():
    diff = make(T=6, mean_type="eps")
    model = lambda x, t: torch.zeros_like(x)          # eps_hat = 0: x0_hat = x_t / sqrt(ab_t), keeps the noise
    a = diff.sample(model, (2, 3), generator=torch.Generator().manual_seed(3))
    b = diff.sample(model, (2, 3), generator=torch.Generator().manual_seed(3))
    c = diff.sample(model, (2, 3), generator=torch.Generator().manual_seed(4))
    assert a.shape == (2, 3) and torch.equal(a, b) and not torch.allclose(a, c)
    # x_T ~ N(0, I) and a model that ignores its input: the trajectory starts from the generator's draw
    _, traj = diff.sample(lambda x, t: torch.zeros_like(x), (2, 3), return_trajectory=True,
                          generator=torch.Generator().manual_seed(3))
    assert traj.shape == (7, 2, 3)
    assert torch.equal(traj[0], torch.randn((2, 3), generator=torch.Generator().manual_seed(3)))


def test_elbo_terms_follow_the_generator_alone():
    # every Monte Carlo draw (the reconstruction's x_1 too) comes from the generator passed in
    diff = make(T=6)
    x0 = torch.rand(4, 5, dtype=torch.float64)
    model = lambda x, t: x / 2                          # noqa: E731  (an imperfect model: terms vary with x_t)
    first = diff.elbo_terms(model, x0, torch.Generator().manual_seed(0))
    torch.manual_seed(123)                              # the global state must not matter
    again = diff.elbo_terms(model, x0, torch.Generator().manual_seed(0))
    assert first["reconstruction"] == again["reconstruction"] and first["total"] == again["total"]


def test_elbo_terms_finite_and_sum():
    diff = make(T=10)
    x0 = torch.rand(4, 5, dtype=torch.float64)
    oracle = diff.elbo_terms(lambda x, t: x0, x0)
    assert torch.all(oracle["denoising_matching"] == 0)
    bad = diff.elbo_terms(lambda x, t: torch.zeros_like(x), x0)
    assert torch.isfinite(bad["denoising_matching"]).all() and (bad["denoising_matching"] > 0).all()
    assert bad["reconstruction"] > oracle["reconstruction"]
    assert bad["total"] == pytest.approx(bad["reconstruction"] + bad["prior_matching"]
                                         + bad["denoising_matching"].sum().item(), rel=1e-9)
    # the prior term does not depend on the model, and is ~0 only when x_T is pure noise
    assert bad["prior_matching"] == pytest.approx(oracle["prior_matching"])
    ab_T = diff.alpha_bar[-1]
    closed_prior = 0.5 * (ab_T * x0 ** 2 + (1 - ab_T) - 1 - torch.log(1 - ab_T)).sum(1)
    assert torch.allclose(diff.prior_matching_term(x0), closed_prior)
    # -log N(x0; x0_hat, beta_1) with a fixed x_1: the model below predicts x0_hat = x_1 / 2
    noise = torch.randn_like(x0)
    x1 = diff.q_sample(x0, torch.zeros(4, dtype=torch.long), noise)
    beta1 = diff.betas[0]
    closed_rec = ((x0 - x1 / 2) ** 2).sum(1) / (2 * beta1) + 5 / 2 * torch.log(2 * math.pi * beta1)
    assert torch.allclose(diff.reconstruction_term(lambda x, t: x / 2, x0, noise), closed_rec)
    assert make(T=1000, name="linear").prior_matching_term(x0).max() < 1e-3
    assert make(T=40, name="linear-var").prior_matching_term(x0).min() > 1.0


def test_step_sampler_uniform_until_warm_then_importance():
    s = StepSampler(T=4, method="importance", history=3)
    assert torch.allclose(s.probabilities(), torch.full((4,), 0.25, dtype=torch.float64))
    for _ in range(3):
        s.update(torch.tensor([0, 1, 2, 3]), torch.tensor([1.0, 1.0, 1.0, 4.0]))
    s.update(torch.tensor([0, 0]), torch.tensor([1.0, 1.0]))
    assert s.warmed_up and s.count.tolist() == [3, 3, 3, 3]
    p = s.probabilities()
    expected = torch.tensor([1.0, 1.0, 1.0, 4.0], dtype=torch.float64) / 7 * 0.999 + 0.001 / 4
    assert torch.allclose(p, expected)
    t, w = s.sample(1000, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(w, (p[t] * 4).float())
    assert (t == 3).float().mean() > 0.45


def test_step_sampler_keeps_last_losses():
    s = StepSampler(T=2, history=2)
    s.update(torch.tensor([0, 0, 0]), torch.tensor([1.0, 2.0, 3.0]))
    assert s.loss_history[0].tolist() == [2.0, 3.0]


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="mean_type"):
        make(mean_type="v")
    diff = make(T=5)
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"steps t must lie in \[0, 4\]"):
        diff.q_sample(x, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="shape"):
        diff.q_sample(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="steps must lie"):
        diff.p_sample_loop(lambda x, t: x, x, steps=6)
    with pytest.raises(ValueError, match="betas outside"):
        GaussianDiffusion(torch.tensor([0.1, 1.2]))
    with pytest.raises(ValueError, match="method"):
        StepSampler(5, method="greedy")
    with pytest.raises(ValueError, match="t must hold integer steps"):
        diff.q_sample(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"noise shape \(2, 4\) != x0 shape \(2, 3\)"):
        diff.q_sample(x, torch.tensor([0, 1]), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="reverse_steps must lie"):
        diff.p_sample_loop(lambda x, t: x, x, reverse_steps=6)
    with pytest.raises(ValueError, match=r"model output shape \(2, 4\) != target shape \(2, 3\)"):
        diff.training_losses(lambda x, t: torch.zeros(2, 4), x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="history must be >= 1"):
        StepSampler(5, history=0)
    with pytest.raises(ValueError, match="saved with another T"):
        StepSampler(5, history=2).load_state(torch.zeros(4, 3))


def test_posterior_log_variance_is_clipped_at_the_first_step():
    # beta~_1 = 0 has no log: the first step borrows beta~_2, as in Ho et al. and DiffRec
    diff = make(T=6)
    assert diff.posterior_variance[0] == 0
    assert diff.posterior_log_variance[0] == torch.log(diff.posterior_variance[1])
    assert torch.allclose(diff.posterior_log_variance[1:], diff.posterior_variance[1:].log())


def test_p_sample_is_one_reverse_step_and_the_loop_chains_them():
    # p_sample (DDPM's name) is ONE step x_t -> x_{t-1}; p_sample_loop runs T of them
    diff = make(T=5)
    x = torch.rand(3, 4, dtype=torch.float64)
    model = lambda x_t, t: x_t / 2 + t[:, None]
    x_prev, x0_hat = diff.p_sample(model, x, 4)
    out = diff.p_mean_variance(model, x, torch.full((3,), 4))
    assert torch.equal(x_prev, out["mean"]) and torch.equal(x0_hat, out["x0_hat"])
    chained = x
    for i in reversed(range(5)):
        chained, _ = diff.p_sample(model, chained, i)
    assert torch.equal(diff.p_sample_loop(model, x), chained)


def test_respaced_keeps_alpha_bar_at_the_kept_steps():
    diff = make(T=10, name="linear")
    steps = torch.tensor([1, 4, 9])
    sub = respaced(diff, steps)
    torch.testing.assert_close(sub.alpha_bar, diff.alpha_bar[steps])
    torch.testing.assert_close(respaced(diff, torch.arange(10)).betas, diff.betas)


# ------------------------------------------------ each term against its formula, replaying the noise

def test_denoising_terms_replay_the_closed_form_step_by_step():
    # L_{t-1} = (SNR(t-1) - SNR(t)) / 2 * ||x0_hat(x_t, t) - x0||^2 for t = 1..T-1, with x_t drawn
    # in that order from the generator; a model that depends on x_t makes every slip visible
    diff = make(T=6)
    x0 = torch.rand(4, 5, dtype=torch.float64)
    model = lambda x, t: x / 2
    den = diff.denoising_matching_terms(model, x0, torch.Generator().manual_seed(0))
    assert den.shape == (diff.T - 1, 4)                              # t = 1 .. T-1: no step twice
    g = torch.Generator().manual_seed(0)
    for row, i in enumerate(range(1, diff.T)):
        t = torch.full((4,), i)
        x_t = diff.q_sample(x0, t, generator=g)
        weight = (diff.snr(t - 1) - diff.snr(t)) / 2
        torch.testing.assert_close(den[row], weight * ((x_t / 2 - x0) ** 2).sum(1))


def test_sample_adds_the_posterior_noise_at_every_reverse_step():
    diff = make(T=6, mean_type="eps")
    model = lambda x, t: torch.zeros_like(x)
    _, traj = diff.sample(model, (2, 3), return_trajectory=True, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    x_T = torch.randn((2, 3), generator=g)
    out = diff.p_mean_variance(model, x_T, torch.full((2,), diff.T - 1))
    expected = out["mean"] + torch.exp(0.5 * out["log_variance"]) * torch.randn((2, 3), generator=g)
    torch.testing.assert_close(traj[1], expected)


def test_p_sample_loop_with_one_step_noises_the_input_once():
    diff = make(T=5)
    x0 = torch.rand(2, 3, dtype=torch.float64)
    _, traj = diff.p_sample_loop(lambda x, t: x0, x0, steps=1, return_trajectory=True,
                            generator=torch.Generator().manual_seed(0))
    noised = diff.q_sample(x0, torch.zeros(2, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    assert torch.equal(traj[0], noised) and not torch.equal(traj[0], x0)


def test_snr_before_the_first_step_is_infinite():
    assert math.isinf(make(T=4).snr(torch.tensor([-1]))[0])


def test_step_sampler_waits_for_every_step_and_its_state_round_trips():
    s = StepSampler(T=3, history=2)
    s.update(torch.tensor([0, 0]), torch.tensor([1.0, 5.0]))          # step 0 full, steps 1-2 empty
    assert not s.warmed_up
    torch.testing.assert_close(s.probabilities(), torch.full((3,), 1 / 3, dtype=torch.float64))
    s.update(torch.tensor([1, 1, 2, 2]), torch.tensor([2.0, 2.0, 9.0, 9.0]))
    assert s.warmed_up
    again = StepSampler(T=3, history=2)
    again.load_state(s.state())
    assert torch.equal(again.count, s.count) and again.warmed_up
    torch.testing.assert_close(again.probabilities(), s.probabilities())
