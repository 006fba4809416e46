"""SeqDiffRec (Du et al. 2023): shapes, the MSE/KL identity, seeded inference, learning, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tutorial_lib import metrics, train
from tutorial_lib.datasets import load_diffurec_pkl
from tutorial_lib.synthetic import make_synthetic
from tutorial_lib.diffusion import normal_kl, respaced, sum_flat
from tutorial_lib.models.popularity import Popularity
from tutorial_lib.models.seqdiffrec import SeqDiffRec
from tutorial_lib.sequences import loo_synthetic

SMALL = dict(hidden=16, max_len=10, n_layers=1, n_heads=2, T=20)


@pytest.fixture(scope="module")
def easy():
    """One interest cluster per user: the next item is always in the history's cluster."""
    data, truth = make_synthetic(n_users=400, n_items=100, n_clusters=5, clusters_per_user=1,
                                 interactions_per_user=10, noise_frac=0.0, valid_frac=1e-3,
                                 test_frac=1e-3, seed=0)
    return data, truth


@pytest.fixture(scope="module")
def batch(easy):
    data, _ = easy
    model = SeqDiffRec(data.n_items, **SMALL)
    history, target = next(iter(model.batches(data, 8, torch.Generator().manual_seed(0))))
    return data, history, target


def test_shapes(batch):
    data, history, target = batch
    model = SeqDiffRec(data.n_items, **SMALL)
    t = torch.arange(8) % model.T
    out = model.losses(history, target, t)
    for k in ("mse", "ce_h0", "ce_h0_hat"):
        assert out[k].shape == (8,)
    for k in ("h0", "h_t", "h0_hat"):
        assert out[k].shape == (8, SMALL["hidden"])
    assert model.loss((history, target)).ndim == 0
    assert model.score(data, torch.arange(5), "test").shape == (5, data.n_items)
    h0_hat, path = model.predict_h0(history, start_step=10, inference_steps=4, return_trajectory=True)
    assert h0_hat.shape == (8, SMALL["hidden"]) and path.shape == (4, 8, SMALL["hidden"])


def test_mse_equals_kl_on_the_model(batch):
    """KL(q(h_{t-1}|h_t,h_0) || p_theta(h_{t-1}|h_t)) = (SNR(t-1) - SNR(t))/2 ||h0_hat - h_0||^2."""
    data, history, target = batch
    torch.manual_seed(0)
    model = SeqDiffRec(data.n_items, **SMALL).double().eval()
    diffusion = model.diffusion
    t = torch.tensor([1, 2, 5, 9, 10, 14, 18, 19])                    # 0-based steps >= 1
    h0 = model.q_h0(target)
    h_t = diffusion.q_sample(h0, t)
    true_mean, _, log_var = diffusion.q_posterior_mean_variance(h0, h_t, t)
    p = diffusion.p_mean_variance(model.denoiser(history), h_t, t)
    kl = sum_flat(normal_kl(true_mean, log_var, p["mean"], log_var))
    mse = sum_flat((p["x0_hat"] - h0) ** 2)
    weight = (diffusion.snr(t - 1) - diffusion.snr(t)) / 2
    assert torch.allclose(kl, weight * mse, rtol=1e-8)
    assert (kl > 0).all()
    # and the model's own loss terms use the same h0_hat
    out = model.losses(history, target, t, noise=(h_t - diffusion.sqrt_alpha_bar[t, None] * h0)
                       / diffusion.sqrt_one_minus_alpha_bar[t, None], h0_noise=(h0 - model.item_emb(target + 1))
                       / diffusion.betas[0].sqrt())
    assert torch.allclose(out["mse"] * SMALL["hidden"], mse, rtol=1e-8)


def test_respaced_keeps_alpha_bar(batch):
    data, _, _ = batch
    model = SeqDiffRec(data.n_items, **SMALL)
    steps = torch.tensor([0, 4, 9, 19])
    sub = respaced(model.diffusion, steps)
    assert torch.allclose(sub.alpha_bar, model.diffusion.alpha_bar[steps])
    full = respaced(model.diffusion, torch.arange(model.T))
    assert torch.allclose(full.betas, model.diffusion.betas)


def test_one_step_inference_where_alpha_bar_rounds_to_zero(batch):
    # linear schedule, T = 10: alpha_bar_T ~ 1e-17, so a single respaced step had beta' = 1.0
    data, history, _ = batch
    model = SeqDiffRec(data.n_items, **dict(SMALL, T=10), schedule="linear", inference_steps=1).eval()
    assert model.diffusion.alpha_bar[-1] < 1e-16
    scores = model.score(data, torch.arange(5), "valid")
    assert scores.shape == (5, data.n_items) and torch.isfinite(scores).all()


def test_importance_sampler_records_training_losses(batch):
    data, history, target = batch
    model = SeqDiffRec(data.n_items, **SMALL)
    model.train()
    model.loss((history, target))
    assert model.sampler.count.sum() == len(target)
    model.eval()
    model.loss((history, target))
    assert model.sampler.count.sum() == len(target)                   # eval does not record


def test_importance_weights_divide_the_mse_only(batch, monkeypatch):
    # the documented objective (module docstring, notebook 07 section 3): mean(mse / (T p_t))
    # + mean(rounding cross-entropies); the cross-entropy of h0_hat is trained under p_t
    data, history, target = batch
    model = SeqDiffRec(data.n_items, **SMALL).eval()
    t, w = torch.arange(8) % model.T, torch.linspace(0.5, 2.0, 8)
    monkeypatch.setattr(model.sampler, "sample", lambda n, device: (t, w))
    torch.manual_seed(0)
    loss = model.loss((history, target))
    torch.manual_seed(0)
    out = model.losses(history, target, t)
    expected = (out["mse"] / w).mean() + (out["ce_h0"] + out["ce_h0_hat"]).mean()
    assert torch.allclose(loss, expected)


def test_seeded_inference_repeats_and_beats_popularity(easy):
    data, _ = easy
    model = SeqDiffRec(data.n_items, hidden=32, max_len=10, n_layers=1, n_heads=2, T=50, seed=3)
    history = train.fit(model, data, epochs=4, lr=5e-3, batch_size=128, eval_every=4, patience=None,
                        metric="hr@10", mask_history=True, test=False, optimizer="adam",
                        progress=False, seed=0)
    model.eval()
    run = lambda: metrics.evaluate(lambda u: model.score(data, u, "test"), data, "test", ks=(10,))
    first, second = run(), run()
    assert first == second
    pop = Popularity().fit(data)
    base = metrics.evaluate(lambda u: pop.score(data, u, "test"), data, "test", ks=(10,))
    assert first["hr@10"] > 3 * base["hr@10"], (first, base, history.train_loss)


def test_checkpoint_resume_continues_exactly(easy, tmp_path):
    # the importance sampler's loss history is training state: an interrupted run resumed
    # from its checkpoint must match an uninterrupted one, loss for loss
    data, _ = easy
    kw = dict(epochs=4, eval_every=1, lr=5e-3, batch_size=256, metric="hr@10", test=False,
              optimizer="adam", progress=False, seed=0)

    def new_model():
        torch.manual_seed(0)
        return SeqDiffRec(data.n_items, hidden=16, max_len=10, n_layers=1, n_heads=2, T=4)

    reference = new_model()
    ref_hist = train.fit(reference, data, **kw)
    assert reference.sampler.warmed_up            # importance sampling was in use

    class Interrupt(Exception):
        pass

    def stop_at_3(epoch):
        if epoch == 3:
            raise Interrupt

    first = new_model()
    first.on_epoch_end = stop_at_3
    with pytest.raises(Interrupt):
        train.fit(first, data, checkpoint=tmp_path / "s.pt", **kw)
    resumed = SeqDiffRec(data.n_items, hidden=16, max_len=10, n_layers=1, n_heads=2, T=4)
    hist = train.fit(resumed, data, checkpoint=tmp_path / "s.pt", resume=True, **kw)
    assert hist.train_loss == pytest.approx(ref_hist.train_loss, rel=1e-6)
    assert torch.equal(resumed.sampler.state(), reference.sampler.state())
    assert resumed.updates == reference.updates


def test_bad_input_raises(batch, easy):
    data, history, target = batch
    model = SeqDiffRec(data.n_items, **SMALL)
    with pytest.raises(ValueError, match="empty"):
        model.predict_h0(torch.zeros(2, 5, dtype=torch.long))
    n = data.n_items
    with pytest.raises(ValueError, match=rf"window ids must be in \[0, {n}\] \(items shifted by \+1, 0 = padding\), got min {n + 1}"):
        model.predict_h0(torch.full((2, 5), data.n_items + 1))
    with pytest.raises(ValueError, match=rf"target ids must be 0-based in \[0, {n}\), got min {n} max {n}"):
        model.losses(history, torch.full_like(target, data.n_items), torch.zeros_like(target))
    for s in (0, SMALL["T"] + 1):
        with pytest.raises(ValueError, match="start_step"):
            model.predict_h0(history, start_step=s)
        with pytest.raises(ValueError, match="start_step"):
            SeqDiffRec(data.n_items, start_step=s, **SMALL)
    with pytest.raises(ValueError, match="inference_steps"):
        model.predict_h0(history, start_step=5, inference_steps=6)
    with pytest.raises(ValueError, match="rounding"):
        SeqDiffRec(data.n_items, rounding="argmax", **SMALL)
    empty = make_synthetic(n_users=30, n_items=40, n_clusters=4, clusters_per_user=1,
                           interactions_per_user=4, noise_frac=0.0, valid_frac=1e-3, test_frac=1e-3)[0]
    empty.sequences[0] = np.zeros(0, dtype=np.int64)
    with pytest.raises(ValueError, match="empty input sequence"):
        SeqDiffRec(empty.n_items, **SMALL).score(empty, torch.tensor([0, 1]), "valid")
    assert SeqDiffRec(empty.n_items, **SMALL).score(empty, torch.tensor([], dtype=torch.long)).shape == (0, 40)


def test_runs_on_amazon_beauty(beauty_pkl):
    data = load_diffurec_pkl(beauty_pkl)
    model = SeqDiffRec(data.n_items, hidden=16, max_len=50, n_layers=1, n_heads=2, T=32)
    history, target = next(iter(model.batches(data, 64, torch.Generator().manual_seed(0))))
    assert torch.isfinite(model.loss((history, target)))
    model.eval()
    scores = model.score(data, torch.arange(32), "test")
    assert scores.shape == (32, 12101) and torch.isfinite(scores).all()


def test_score_defaults_to_the_validation_input_like_the_other_models():
    data = loo_synthetic(n_users=40, n_items=80, interactions_per_user=8, seed=0)[0]
    model = SeqDiffRec(data.n_items, **SMALL).eval()
    default = model.score(data, [0, 1])
    torch.testing.assert_close(default, model.score(data, [0, 1], "valid"))
    assert not torch.equal(default, model.score(data, [0, 1], "test"))   # the test input holds the valid item
    with pytest.raises(ValueError, match="max_len must be a positive integer"):
        SeqDiffRec(80, max_len=None)
