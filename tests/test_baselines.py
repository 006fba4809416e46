"""Baselines in the model protocol: EASE's closed form by hand, Mult-VAE learning."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tutorial_lib.data import InteractionData
from tutorial_lib.metrics import evaluate
from tutorial_lib.models.ease import EASE
from tutorial_lib.models.multivae import MultiVAE
from tutorial_lib.models.popularity import Popularity
from tutorial_lib.train import fit


@pytest.fixture(scope="module")
def data(synthetic):
    return synthetic[0]


def tiny(train):
    train = sp.csr_matrix(np.asarray(train, dtype=np.float32))
    empty = sp.csr_matrix(train.shape, dtype=np.float32)
    return InteractionData(train=train, valid=empty, test=empty)


def test_ease_hand_computed_case():
    # X = [[1,1,0],[0,1,1]], lambda = 1: G = X^T X + I = [[2,1,0],[1,3,1],[0,1,2]], det 8,
    # P = G^-1 = [[5,-2,1],[-2,4,-2],[1,-2,5]] / 8, B_ij = -P_ij / P_jj, B_jj = 0
    data = tiny([[1, 1, 0], [0, 1, 1]])
    ease = EASE(lam=1.0).fit(data)
    B = torch.tensor([[0.0, 0.5, -0.2], [0.4, 0.0, 0.4], [-0.2, 0.5, 0.0]])
    torch.testing.assert_close(ease.B, B)
    torch.testing.assert_close(ease.score(data, [0, 1]),
                               torch.tensor([[0.4, 0.5, 0.2], [0.2, 0.5, 0.4]]))


def test_ease_solves_the_constrained_least_squares(data):
    # KKT: (X^T X + lambda I) B - X^T X is diagonal (the Lagrange multipliers), diag(B) = 0
    lam = 30.0
    B = EASE(lam).fit(data).B.double().numpy()
    G = (data.train.T @ data.train).toarray().astype(np.float64)
    residual = (G + lam * np.eye(len(G))) @ B - G
    off = residual - np.diag(np.diag(residual))
    assert np.abs(off).max() < 1e-3 * np.abs(G).max()
    assert np.all(np.diag(B) == 0)


def test_ease_bad_input(data):
    for bad in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="lam .* must be finite and > 0"):
            EASE(lam=bad)
    with pytest.raises(RuntimeError, match="fit"):
        EASE().score(data, [0])
    with pytest.raises(ValueError, match="items"):
        EASE(10).fit(tiny([[1, 0], [0, 1]])).score(data, [0])


def test_ease_beats_popularity(data):
    pop = Popularity().fit(data)
    ease = EASE(100.0).fit(data)
    recall = {name: evaluate(lambda u: m.score(data, u), data, "test")["recall@20"]
              for name, m in (("pop", pop), ("ease", ease))}
    assert recall["ease"] > 2 * recall["pop"]


def test_ease_tune_picks_the_best_validation_lambda_and_returns_it_fitted(data):
    lambdas = [1.0, 30.0, 1e5]
    model, valid = EASE.tune(data, lambdas, progress=False)
    by_hand = {lam: evaluate(lambda u, m=EASE(lam).fit(data): m.score(data, u), data, "valid")["recall@20"]
               for lam in lambdas}
    assert valid == pytest.approx(by_hand)
    assert model.lam == max(by_hand, key=by_hand.get) and model.B is not None
    assert valid[1e5] < max(valid.values())                  # the grid matters on this data
    with pytest.raises(ValueError, match="lambdas is empty"):
        EASE.tune(data, [], progress=False)
    from_tensor, valid_t = EASE.tune(data, torch.tensor(lambdas), progress=False)   # any sequence
    assert from_tensor.lam == model.lam and valid_t == pytest.approx(valid)


def test_multivae_shapes_and_annealing():
    vae = MultiVAE(30, hidden=[8], latent=4, total_anneal_steps=10, anneal_cap=0.3)
    logits, mu, logvar = vae(torch.rand(5, 30))
    assert logits.shape == (5, 30) and mu.shape == logvar.shape == (5, 4)
    assert vae.beta == 0.0
    x = (torch.rand(5, 30) < 0.3).float()
    for _ in range(2):
        vae.loss(x)
    assert vae.beta == pytest.approx(0.2)               # 2 updates / 10
    for _ in range(5):
        vae.loss(x)
    assert vae.beta == pytest.approx(0.3)               # capped
    assert "update_count" in vae.state_dict()          # annealing survives a checkpoint


def test_multivae_eval_is_deterministic():
    torch.manual_seed(0)
    vae = MultiVAE(30, hidden=[8], latent=4).eval()
    x = torch.rand(3, 30)
    torch.testing.assert_close(vae(x)[0], vae(x)[0])


def test_multivae_scores_the_clean_row_in_any_mode(synthetic):
    # score() promises z = mu of the training row: no input dropout, even in training mode
    data = synthetic[0]
    torch.manual_seed(0)
    vae = MultiVAE(data.n_items, hidden=[8], latent=4, dropout=0.5).train()
    users = torch.arange(5)
    first = vae.score(data, users)
    assert torch.equal(first, vae.score(data, users))
    assert torch.equal(first, vae.eval().score(data, users))


@pytest.mark.parametrize("kwargs, message", [
    ({"n_items": 0}, "n_items"), ({"n_items": 10, "dropout": 1.5}, "dropout"),
    ({"n_items": 10, "latent": 0}, "latent"), ({"n_items": 10, "total_anneal_steps": 0}, "anneal"),
])
def test_multivae_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultiVAE(**kwargs)


def test_multivae_learns_beats_popularity(data):
    pop = Popularity().fit(data)
    pop_recall = evaluate(lambda u: pop.score(data, u), data, "test")["recall@20"]
    torch.manual_seed(0)
    vae = MultiVAE(data.n_items, hidden=[64], latent=32, total_anneal_steps=200)
    hist = fit(vae, data, epochs=20, lr=1e-2, eval_every=5, batch_size=100, progress=False, seed=0)
    assert hist.train_loss[-1] < hist.train_loss[0]
    assert hist.best_test["recall@20"] > 2 * pop_recall


def _score_models(data):
    from tutorial_lib.models.diffrec import DiffRec
    from tutorial_lib.models.diffurec import DiffuRec
    from tutorial_lib.models.ldiffrec import LDiffRec
    from tutorial_lib.models.lightgcn import LightGCN
    from tutorial_lib.models.sasrec import SASRec
    from tutorial_lib.models.seqdiffrec import SeqDiffRec
    torch.manual_seed(0)
    I = data.n_items
    return {"popularity": Popularity().fit(data), "ease": EASE(100.0).fit(data),
            "multivae": MultiVAE(I, hidden=(16,), latent=8).eval(),
            "lightgcn": LightGCN(data, dim=8).eval(), "diffrec": DiffRec(I, dims=[16], T=5).eval(),
            "ldiffrec": LDiffRec(I, np.arange(I) % 2, encoder_dims=[16], mlp_dims=[16], T=5).eval(),
            "sasrec": SASRec(I, hidden=16, n_blocks=1).eval(),
            "diffurec": DiffuRec(I, hidden=16, n_blocks=1, T=4).eval(),
            "seqdiffrec": SeqDiffRec(I, hidden=16, n_layers=1, T=10).eval()}


@pytest.mark.parametrize("name", ["popularity", "ease", "multivae", "lightgcn", "diffrec", "ldiffrec",
                                  "sasrec", "diffurec", "seqdiffrec"])
def test_every_model_scores_one_id_as_a_row_and_rejects_bad_ids(data, name):
    model = _score_models(data)[name]
    assert tuple(model.score(data, 3, "valid").shape) == (1, data.n_items)
    assert tuple(model.score(data, np.array([3, 5]), "valid").shape) == (2, data.n_items)
    with pytest.raises(ValueError, match="out of range"):      # -1 must not score the last user
        model.score(data, [-1], "valid")
    with pytest.raises(ValueError, match="out of range"):
        model.score(data, [data.n_users], "valid")
    mask = np.zeros(data.n_users, dtype=bool)
    mask[[10, 20]] = True
    with pytest.raises(ValueError, match="np.flatnonzero"):     # not rows 0/1 scored 600 times
        model.score(data, mask, "valid")


def test_ease_tune_checks_the_metric_before_fitting(data):
    with pytest.raises(ValueError, match="recall@50"):
        EASE.tune(data, [10, 100], metric="recall@50", progress=False)
    _, valid = EASE.tune(data, [10, 100], metric="recall@50", ks=(50,), progress=False)
    assert set(valid) == {10.0, 100.0}


@pytest.mark.parametrize("name", ["multivae", "diffrec", "ldiffrec", "sasrec", "diffurec", "seqdiffrec"])
def test_every_model_trains_and_scores_in_float64(name):
    from tutorial_lib.sequences import loo_synthetic
    data = loo_synthetic(n_users=60, n_items=80, interactions_per_user=8, seed=0)[0]
    model = _score_models(data)[name].double()                  # e.g. for gradient checks
    h = fit(model, data, epochs=1, batch_size=32, device="cpu", progress=False)
    assert np.isfinite(h.train_loss[0]) and h.best_valid
    assert model.score(data, [0, 1], "valid").dtype == torch.float64


def test_ease_tune_uses_the_metric_it_is_given_and_keeps_the_first_of_equals(data, monkeypatch):
    lambdas = [1.0, 30.0, 1e5]
    _, valid = EASE.tune(data, lambdas, metric="ndcg@10", progress=False)
    by_hand = {lam: evaluate(lambda u, m=EASE(lam).fit(data): m.score(data, u), data, "valid")["ndcg@10"]
               for lam in lambdas}
    assert valid == pytest.approx(by_hand)
    import tutorial_lib.metrics as M
    monkeypatch.setattr(M, "evaluate", lambda *a, **k: {"recall@20": 0.5})   # every lambda ties
    assert EASE.tune(data, [30.0, 1.0], progress=False)[0].lam == 30.0


def test_multivae_loss_is_the_annealed_elbo_in_closed_form():
    # -L_beta = -sum_i x_i log softmax(f(z))_i + beta * KL(N(mu, sigma^2) || N(0, I)), z = mu in eval
    torch.manual_seed(0)
    vae = MultiVAE(12, hidden=[6], latent=3, anneal_cap=1.0, total_anneal_steps=10).eval()
    vae.update_count.fill_(5)                                         # beta = 5 / 10
    x = (torch.rand(4, 12) < 0.4).float()
    mu, logvar = vae.encode(x, dropout=False)
    nll = -(torch.log_softmax(vae.decode(mu), -1) * x).sum(-1).mean()
    kl = 0.5 * (mu ** 2 + logvar.exp() - logvar - 1).sum(-1).mean()
    torch.testing.assert_close(vae.loss(x), nll + 0.5 * kl)
    assert int(vae.update_count) == 5                                 # eval never advances the annealing
    vae.train()
    vae.loss(x)
    assert int(vae.update_count) == 6


def test_multivae_encoder_normalises_drops_out_and_splits_mu_logvar():
    torch.manual_seed(0)
    vae = MultiVAE(12, hidden=[6], latent=3, dropout=0.5)
    x = (torch.rand(4, 12) < 0.4).float()
    x[:, 0] = 1
    mu, logvar = vae.encode(x, dropout=False)
    torch.testing.assert_close(vae.encode(3 * x, dropout=False)[0], mu)        # the L2-normalised row
    out = torch.tanh(vae.encoder[0](x / x.norm(dim=1, keepdim=True)))
    out = vae.encoder[1](out)
    torch.testing.assert_close(mu, out[:, :3])
    torch.testing.assert_close(logvar, out[:, 3:])
    vae.train()
    assert not torch.equal(vae.encode(x)[0], mu)                     # input dropout in training
    with torch.no_grad():
        vae.decoder[-1].bias.fill_(5.0)
        vae.decoder[-1].weight.zero_()
    assert (vae.decode(mu) > 1.5).all()                               # logits: no tanh on the last layer


def test_multivae_samples_z_with_the_reparameterisation_in_training_only():
    torch.manual_seed(0)
    vae = MultiVAE(12, hidden=[6], latent=3).train()
    x = (torch.rand(4, 12) < 0.4).float()
    torch.manual_seed(1)
    logits, mu, logvar = vae(x)
    torch.manual_seed(1)                                              # replay: encode, then eps
    mu_, logvar_ = vae.encode(x)
    z = mu_ + torch.randn_like(mu_) * torch.exp(0.5 * logvar_)        # sigma = exp(logvar / 2)
    torch.testing.assert_close(logits, vae.decode(z))
    vae.eval()
    logits, mu, _ = vae(x)
    torch.testing.assert_close(logits, vae.decode(mu))                # eval: z = mu


def test_multivae_scores_chunks_of_users_and_densifies_only_their_rows(data, monkeypatch):
    """score() never builds the (n_users, n_items) dense matrix of a model that has not trained
    (a checkpoint loaded to score a few users of a large catalogue): score_chunk users at a time."""
    torch.manual_seed(0)
    vae = MultiVAE(data.n_items, hidden=[8], latent=4).eval()
    users = np.arange(data.n_users)[::-1][:25]
    sizes, shapes, encode, toarray = [], [], vae.encode, sp.csr_matrix.toarray
    monkeypatch.setattr(vae, "encode", lambda x, dropout=True: (sizes.append(len(x)), encode(x, dropout))[1])
    monkeypatch.setattr(sp.csr_matrix, "toarray",
                        lambda self, *a, **k: (shapes.append(self.shape), toarray(self, *a, **k))[1])
    vae.score_chunk = 7
    chunked = vae.score(data, users)
    assert sizes == [7, 7, 7, 4] and max(rows for rows, _ in shapes) <= 7
    x = torch.as_tensor(data.train[users].toarray())
    torch.testing.assert_close(chunked, vae.decode(encode(x, dropout=False)[0]))
    sizes.clear()
    vae.input_matrix(data)                              # the matrix training keeps: read, not rebuilt
    torch.testing.assert_close(vae.score(data, users), chunked)
    assert sizes == [7, 7, 7, 4]
