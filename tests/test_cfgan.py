"""CFGAN: the losses as written in the module docstring, the two-optimiser step, it learns."""
from __future__ import annotations

import pytest
import torch

from tutorial_lib.metrics import evaluate
from tutorial_lib.models.cfgan import CURVES, CFGAN
from tutorial_lib.models.popularity import Popularity
from tutorial_lib.synthetic import make_synthetic
from tutorial_lib.train import fit


@pytest.fixture(scope="module")
def world():
    return make_synthetic(seed=0)[0]


@pytest.fixture(scope="module")
def small():
    return make_synthetic(n_users=60, n_items=40, n_clusters=4, interactions_per_user=10, seed=1)[0]


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _moved(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_one_training_step_moves_both_g_and_d(small):
    torch.manual_seed(0)
    model = CFGAN(small.n_items, g_hidden=(16,), d_hidden=(8,)).train()
    g_opt = model.configure_optimizers(lr=1e-2)
    g0, d0 = _params(model.generator), _params(model.discriminator)
    x = next(model.batches(small, 32))
    loss = model.loss(x)                      # D's step happens here, with D's own optimiser
    assert _moved(d0, model.discriminator) and not _moved(g0, model.generator)
    d1 = _params(model.discriminator)
    d_grads = [p.grad.clone() for p in model.discriminator.parameters()]     # from D's own step
    g_opt.zero_grad()
    loss.backward()
    g_opt.step()                              # what train.fit does with the returned J^G
    assert _moved(g0, model.generator)
    assert not _moved(d1, model.discriminator)                         # J^G leaves D alone
    assert all(torch.equal(g, p.grad) for g, p in zip(d_grads, model.discriminator.parameters()))


def test_generator_loss_is_the_equation(small):
    torch.manual_seed(0)
    model = CFGAN(small.n_items, g_hidden=(16,), d_hidden=(8,), s_zr=0.5, s_pm=0.5, alpha=0.3).eval()
    x = next(model.batches(small, 16))
    torch.manual_seed(1)
    loss = model.loss(x)                                               # eval mode: no D step
    torch.manual_seed(1)
    pm, zr = model.negative_masks(x)
    r_hat = torch.sigmoid(model.G(x))
    d_fake = torch.sigmoid(model.discriminator(torch.cat([r_hat * (x + pm), x], 1))).squeeze(1)
    expected = -torch.log(d_fake).mean() + 0.3 * ((r_hat ** 2) * zr).sum(1).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # the masks: unobserved items only, at about the asked share
    assert not (pm * x).any() and not (zr * x).any()
    share = pm.sum() / (x == 0).sum()
    assert 0.4 < share.item() < 0.6


def test_discriminator_loss_is_the_equation(small):
    torch.manual_seed(0)
    model = CFGAN(small.n_items, g_hidden=(16,), d_hidden=(8,))
    x = next(model.batches(small, 16))
    fake = torch.rand_like(x) * x
    loss, _, _ = model.d_loss(x, fake)
    d_real = torch.sigmoid(model.discriminator(torch.cat([x, x], 1))).squeeze(1)
    d_fake = torch.sigmoid(model.discriminator(torch.cat([fake, x], 1))).squeeze(1)
    expected = -(torch.log(d_real) + torch.log(1 - d_fake)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_items=0), "n_items must be a positive integer"),
    (dict(n_items=10.5), "n_items must be a positive integer"),
    (dict(n_items=10, s_zr=1.5), r"s_zr .* must lie in \[0, 1\]"),
    (dict(n_items=10, s_pm=-0.1), r"s_pm .* must lie in \[0, 1\]"),
    (dict(n_items=10, alpha=-1.0), "alpha"),
    (dict(n_items=10, d_steps=0), "d_steps must be a positive integer"),
    (dict(n_items=10, g_hidden=(0,)), "hidden sizes must be >= 1"),
    (dict(n_items=10, d_lr=0.0), "d_lr must be"),
])
def test_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CFGAN(**kwargs)


def test_bad_input(small):
    model = CFGAN(small.n_items + 1, g_hidden=(4,), d_hidden=(4,))
    with pytest.raises(ValueError, match=f"data has {small.n_items} items but the model was built for"):
        model.score(small, [0, 1])
    with pytest.raises(ValueError, match=r"expected a batch of shape \(B, 41\)"):
        model.loss(torch.zeros(3, small.n_items))
    with pytest.raises(RuntimeError, match="configure_optimizers"):
        model.train().loss(torch.zeros(3, small.n_items + 1))


def test_learns_beats_popularity_on_held_out_data_and_records_curves(world):
    pop = Popularity().fit(world)
    pop_test = evaluate(lambda u: pop.score(world, u, "test"), world, "test")["recall@20"]
    torch.manual_seed(0)
    model = CFGAN(world.n_items, g_hidden=(128,), d_hidden=(64,), s_zr=0.5, s_pm=0.5, alpha=1.0)
    h = fit(model, world, epochs=40, lr=3e-3, batch_size=64, eval_every=5, patience=None,
            progress=False, seed=0)
    assert h.best_test["recall@20"] > 2 * pop_test                     # popularity: ~0.08
    assert len(h.train_loss) == 40 and all(len(model.curves[k]) == 40 for k in CURVES)
    assert all(0 < v < 1 for k in ("d_real", "d_fake") for v in model.curves[k])
    assert len(h.valid) == 8                                            # the curve to judge stability by


def test_checkpointed_run_resumes_exactly(small, tmp_path):
    def run(epochs, **kw):
        torch.manual_seed(0)
        model = CFGAN(small.n_items, g_hidden=(16,), d_hidden=(8,))
        h = fit(model, small, epochs=epochs, lr=1e-2, batch_size=16, eval_every=2, patience=None,
                progress=False, seed=3, **kw)
        return model, h

    whole, h_whole = run(4)
    ckpt = tmp_path / "cfgan.pt"
    run(2, checkpoint=ckpt)
    resumed, h_resumed = run(4, checkpoint=ckpt, resume=True)
    assert h_resumed.train_loss == pytest.approx(h_whole.train_loss)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        if torch.is_tensor(a):
            assert torch.equal(a, b)


def test_scores_are_generator_logits_and_deterministic(small):
    model = CFGAN(small.n_items, g_hidden=(16,), d_hidden=(8,)).eval()
    s = model.score(small, [2, 0])
    x = torch.as_tensor(small.train[[2, 0]].toarray())
    assert s.shape == (2, small.n_items)
    assert torch.allclose(s, model.generator(x))
    assert torch.equal(s, model.score(small, [2, 0]))
    assert torch.allclose(torch.sigmoid(s), torch.sigmoid(model.G(x)))


def test_scores_chunks_of_users_within_the_score_budget(small, monkeypatch):
    """score() densifies the rows of a bounded chunk of users at a time, never every user's."""
    import scipy.sparse as sp

    from tutorial_lib.models import layers

    model = CFGAN(small.n_items, g_hidden=(16,), d_hidden=(8,)).eval()
    users = list(range(small.n_users - 1, 2, -1))                       # 57 users, backwards
    whole = model.generator(torch.as_tensor(small.train[users].toarray()))
    sizes, shapes, G, toarray = [], [], model.G, sp.csr_matrix.toarray
    monkeypatch.setattr(model, "G", lambda x: (sizes.append(len(x)), G(x))[1])
    monkeypatch.setattr(sp.csr_matrix, "toarray",
                        lambda self, *a, **k: (shapes.append(self.shape), toarray(self, *a, **k))[1])
    monkeypatch.setattr(layers, "SCORE_BUDGET", 20 * small.n_items)      # at most 20 users a chunk
    torch.testing.assert_close(model.score(small, users), whole)
    assert sizes == [20, 20, 17] and max(rows for rows, _ in shapes) == 20
