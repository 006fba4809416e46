"""DiffRec, L-DiffRec, LightGCN, the loaders and the synthetic world, pinned to closed forms:
each test pins a behaviour that a plausible one-line bug would break.
"""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

def _perturbed(model, scale=0.1):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model


# ============================================================== DiffRec
def test_mlp_norm_is_row_l2_normalisation():
    from tutorial_lib.models.diffrec import DiffRecMLP
    torch.manual_seed(0)
    net = DiffRecMLP([6, 4], [4, 6], norm=True, dropout=0.0).eval()
    x, t = torch.rand(3, 6) * 5, torch.tensor([0, 1, 2])
    out = net(x, t)
    net.norm = False
    torch.testing.assert_close(out, net(F.normalize(x, dim=1), t))
    net.norm = True
    torch.testing.assert_close(net(x[:1], t[:1]), out[:1])             # rows independent


def test_input_dropout_is_applied_in_training():
    from tutorial_lib.models.diffrec_fast import FastDiffRecMLP
    from tutorial_lib.models.layers import timestep_embedding
    torch.manual_seed(0)
    net = FastDiffRecMLP([50, 8], [8, 50], dropout=0.5)
    x, t = torch.ones(4, 50), torch.zeros(4, dtype=torch.long)
    torch.manual_seed(1); a = net.train()(x, t)
    torch.manual_seed(2); b = net(x, t)
    assert not torch.allclose(a, b)
    torch.manual_seed(1)
    mask = (torch.rand_like(x) >= 0.5) * 2.0
    net.eval()
    emb = net.emb_layer(timestep_embedding(t, 10))
    h = torch.cat([x * mask, emb], 1)
    for layer in net.in_layers:
        h = torch.tanh(layer(h))
    for k, layer in enumerate(net.out_layers):
        h = layer(h) if k == len(net.out_layers) - 1 else torch.tanh(layer(h))
    torch.testing.assert_close(a, h)


def test_predict_in_train_mode_is_the_full_chain(synthetic):
    from tutorial_lib.models.diffrec_fast import FastDiffRec
    data, _ = synthetic
    model = _perturbed(FastDiffRec(data.n_items, dims=[32], T=5)).train()
    x = torch.as_tensor(data.train[:8].toarray())
    torch.manual_seed(3); a = model.predict(x)
    torch.manual_seed(3); b = model.diffusion.p_sample_loop(model.denoiser, x, steps=0)
    torch.testing.assert_close(a, b)


def test_eps_model_predicts_with_its_own_chain(synthetic):
    from tutorial_lib.models.diffrec_fast import FastDiffRec
    data, _ = synthetic
    model = _perturbed(FastDiffRec(data.n_items, dims=[32], T=5, mean_type="eps")).eval()
    assert model.diffusion.mean_type == "eps"
    x = torch.as_tensor(data.train[:8].toarray())
    torch.testing.assert_close(model.predict(x), model.diffusion.p_sample_loop(model.denoiser, x, steps=0))


@pytest.mark.parametrize("fast", [False, True])
def test_sampling_steps_noise_at_step_s_minus_1(synthetic, fast):
    from tutorial_lib.models.diffrec import DiffRec
    from tutorial_lib.models.diffrec_fast import FastDiffRec
    data, _ = synthetic
    model = (FastDiffRec if fast else DiffRec)(data.n_items, dims=[32], T=5, sampling_steps=3).eval()
    seen, q = [], model.diffusion.q_sample
    model.diffusion.q_sample = lambda x0, t, *a, **k: (seen.append(torch.as_tensor(t).tolist()), q(x0, t, *a, **k))[1]
    model.predict(torch.as_tensor(data.train[:4].toarray()))
    assert seen == [[2, 2, 2, 2]]                  # 0-based step sampling_steps - 1, in both chains


def test_loss_is_importance_and_snr_weighted(synthetic):
    from tutorial_lib.models.diffrec import DiffRec
    data, _ = synthetic
    model = _perturbed(DiffRec(data.n_items, dims=[32], T=5, dropout=0.0))
    x0 = torch.as_tensor(data.train[:4].toarray())
    t, w = torch.tensor([0, 1, 2, 4]), torch.tensor([0.5, 2.0, 1.0, 0.25])
    model.sampler.sample = lambda n, device=None: (t, w)
    torch.manual_seed(0)
    loss = model.loss(x0)
    torch.manual_seed(0)
    per = model.diffusion.training_losses(model.denoiser, x0, t, reweight=True)["loss"]
    torch.testing.assert_close(loss, (per / w).mean())
    torch.testing.assert_close(model.sampler.loss_history[t, 0], per.double().detach())  # raw losses kept


def test_score_cache_key_covers_mode_noise_and_data(synthetic):
    from tutorial_lib.data import InteractionData
    from tutorial_lib.models.diffrec_fast import FastDiffRec
    data, _ = synthetic
    model = FastDiffRec(data.n_items, dims=[32], T=5).eval()
    users = torch.arange(10)
    s_eval = model.score(data, users).clone()
    model.train()
    assert not torch.allclose(model.score(data, users), s_eval)       # dropout in training mode
    model.eval()
    torch.testing.assert_close(model.score(data, users), s_eval)      # cached again under eval
    model.sampling_noise = True
    torch.manual_seed(0); s1 = model.score(data, users).clone()
    torch.manual_seed(1); model.predict(model.input_matrix(data)[:1])
    torch.manual_seed(5); s2 = model.predict(model.input_matrix(data))[users]
    assert not torch.allclose(s1, s_eval) and not torch.allclose(s1, s2)  # noise is sampled
    model.sampling_noise = False
    other = InteractionData(data.train[::-1], data.valid[::-1], data.test[::-1])
    expected = model.predict(torch.as_tensor(other.train[:10].toarray()))
    model.score(data, users)
    torch.testing.assert_close(model.score(other, users), expected)


def test_importance_probabilities_are_rms_closed_form():
    from tutorial_lib.step_sampler import StepSampler
    s = StepSampler(T=2, history=2, uniform_prob=0.1)
    s.update(torch.tensor([0, 0, 1, 1]), torch.tensor([1.0, 3.0, 2.0, 2.0]))
    rms = torch.tensor([math.sqrt(5.0), 2.0], dtype=torch.float64)
    torch.testing.assert_close(s.probabilities(), rms / rms.sum() * 0.9 + 0.05)


# ============================================================== L-DiffRec
UNEVEN = np.array([2, 0, 0, 1, 0, 0, 2, 0, 1, 0, 0, 0])


def test_latent_sizes_truncate_like_the_release():
    from tutorial_lib.models.ldiffrec import latent_sizes
    assert latent_sizes([5, 5], [3]) == [[1], [2]]                      # int(1.5) = 1, remainder 2
    assert latent_sizes([3, 1], [6]) == [[4], [2]]                      # int(4.5) = 4


def test_reparameterize_closed_form():
    from tutorial_lib.models.ldiffrec import ClusterVAE
    vae = ClusterVAE(UNEVEN, encoder_dims=[6])
    mu, logvar = torch.randn(3, 6), torch.randn(3, 6)
    assert torch.equal(vae.eval().reparameterize(mu, logvar), mu)
    torch.manual_seed(0); z = vae.train().reparameterize(mu, logvar)
    torch.manual_seed(0); eps = torch.randn_like(mu)
    torch.testing.assert_close(z, mu + torch.exp(0.5 * logvar) * eps)


def test_multinomial_nll_by_hand():
    from tutorial_lib.models.ldiffrec import multinomial_nll
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0]])
    x = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    expected = (-math.log(0.75) + 2 * math.log(2.0)) / 2               # softmax per row: [.25, .75], [.5, .5]
    assert multinomial_nll(logits, x).item() == pytest.approx(expected, rel=1e-6)


def _ldiffrec(**kw):
    from tutorial_lib.models.ldiffrec import LDiffRec
    torch.manual_seed(0)
    return LDiffRec(12, clusters=UNEVEN, encoder_dims=[6], mlp_dims=[8], T=5, **kw)


def test_reconstruction_decodes_the_denoiser_output():
    model = _ldiffrec()
    x = (torch.rand(4, 12) < 0.5).float()
    model.loss_terms(x)["reconstruction"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.denoiser.out_layers[-1].parameters())


def test_diffusion_term_is_importance_and_snr_weighted():
    model = _perturbed(_ldiffrec()).eval()                              # eval: z0 = mu, no dropout
    x = (torch.rand(4, 12) < 0.5).float()
    t, w = torch.tensor([0, 1, 3, 4]), torch.tensor([0.5, 2.0, 1.0, 0.25])
    model.sampler.sample = lambda n, device=None: (t, w)
    torch.manual_seed(0); terms = model.loss_terms(x)
    mu, _ = model.vae.encode(x)
    torch.manual_seed(0); per = model.diffusion.training_losses(model.denoiser, mu, t, reweight=True)["loss"]
    torch.testing.assert_close(terms["diffusion"], (per / w).mean())
    assert int(model.sampler.count.sum()) == 4


def test_predict_decodes_the_denoised_code():
    model = _perturbed(_ldiffrec(sampling_steps=3)).eval()
    x = (torch.rand(4, 12) < 0.5).float()
    torch.manual_seed(1); scores, z0, z_hat = model.predict(x, return_latents=True)
    torch.manual_seed(1); expected = model.diffusion.p_sample_loop(model.denoiser, z0, steps=3)
    torch.testing.assert_close(z_hat, expected)
    torch.testing.assert_close(scores, model.vae.decode(z_hat))


def test_kmeans_labels_renumbered_by_size_five_blobs():
    from tutorial_lib.models.ldiffrec import cluster_items
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0], [20, 0], [0, 20], [20, 20], [40, 40]], dtype=float)
    truth = np.repeat(np.arange(5), [50, 40, 30, 20, 10])
    emb = centers[truth] + rng.normal(scale=0.5, size=(150, 2))
    for seed in range(6):
        assert (cluster_items(emb, 5, seed=seed) == truth).all()


def test_decoder_hidden_widths_are_per_cluster_and_settings_pass_through():
    from tutorial_lib.models.ldiffrec import ClusterVAE
    from tutorial_lib.schedules import get_betas
    vae = ClusterVAE(UNEVEN, encoder_dims=[24, 6], decoder_dims=[12])
    assert [dec[0].out_features for dec in vae.decoders] == [8, 2, 2]
    model = _ldiffrec(dropout=0.3, mlp_dropout=0.2, noise_scale=0.1, noise_min=0.01, noise_max=0.05)
    assert model.vae.drop.p == 0.3 and model.denoiser.drop.p == 0.2
    torch.testing.assert_close(model.diffusion.betas,
                               get_betas("linear-var", 5, noise_scale=0.1, noise_min=0.01, noise_max=0.05).double())


def test_lt_diffrec_scores_from_time_weighted_rows(synthetic):
    from tutorial_lib.models.tdiffrec import LTDiffRec, time_weights
    data, _ = synthetic
    torch.manual_seed(0)
    model = LTDiffRec(data.n_items, clusters=np.arange(data.n_items) % 2, encoder_dims=[20], mlp_dims=[20], T=5).eval()
    rows = torch.as_tensor(time_weights(data)[[0, 1, 2]].toarray(), dtype=torch.float32)
    torch.testing.assert_close(model.score(data, [0, 1, 2]), model.predict(rows))


# ============================================================== LightGCN
def _tiny():
    from tutorial_lib.data import InteractionData
    train = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0]], dtype=np.float32))
    empty = sp.csr_matrix((2, 3), dtype=np.float32)
    return InteractionData(train, empty, empty)


def test_item_embeddings_and_scores_are_propagated():
    from tutorial_lib.models.lightgcn import LightGCN
    torch.manual_seed(0)
    model = LightGCN(_tiny(), dim=4, layers=2)
    users, items = (e.detach() for e in model.propagate())
    np.testing.assert_allclose(model.item_embeddings(), items.numpy(), rtol=1e-6)
    torch.testing.assert_close(model.score(_tiny(), [0, 1]), users @ items.T)


def test_item_embeddings_pass_layers_reg_lr(monkeypatch):
    import tutorial_lib.train as train
    from tutorial_lib.models.ldiffrec import item_embeddings
    seen = {}
    monkeypatch.setattr(train, "fit", lambda model, data, **kw: seen.update(layers=model.layers, reg=model.reg, lr=kw["lr"]))
    item_embeddings(_tiny(), dim=4, layers=1, reg=0.25, lr=0.05, epochs=1, device="cpu", progress=False)
    assert seen == {"layers": 1, "reg": 0.25, "lr": 0.05}


def test_negatives_for_a_dense_user_that_is_not_user_0():
    from tutorial_lib.data import InteractionData
    from tutorial_lib.models.lightgcn import LightGCN
    train = np.zeros((2, 100), dtype=np.float32)
    train[1, :97] = 1
    train[0, :5] = 1
    empty = sp.csr_matrix(train.shape, dtype=np.float32)
    data = InteractionData(sp.csr_matrix(train), empty, empty)
    model = LightGCN(data, dim=4)
    u, i, j = torch.cat(list(model.batches(data, 64, torch.Generator().manual_seed(0)))).numpy().T
    assert not train[u, j].any() and set(j[u == 1].tolist()) <= {97, 98, 99}


# ============================================================== data
def test_temporal_split_keeps_one_training_click():
    from tutorial_lib.data import split_interactions
    assert split_interactions(np.array([0]), np.array([1]), "temporal", 0.0, 0.5).tolist() == [0]
    assert split_interactions(np.array([0, 0]), np.array([1, 2]), "temporal", 0.5, 0.4).tolist() == [0, 2]


def test_time_ties_keep_row_order():
    from tutorial_lib.data import split_interactions
    assert split_interactions(np.array([0, 0, 0]), np.array([5, 5, 5]), "loo").tolist() == [0, 1, 2]


def test_binary_csr_drops_stored_zeros_and_merges_duplicates():
    from tutorial_lib.data import InteractionData, pairs_to_csr
    m = pairs_to_csr(np.array([0, 0]), np.array([1, 1]), (1, 2))
    assert m.nnz == 1 and m.data.tolist() == [1.0]
    dup = sp.csr_matrix((np.array([1.0, 1.0, 0.0]), np.array([1, 1, 0]), np.array([0, 3])), shape=(1, 2))
    d = InteractionData(dup, dup, dup)
    assert d.train.nnz == 1 and d.train.indices.tolist() == [1] and d.train.data.tolist() == [1.0]


def test_npy_by_hand(tmp_path):
    from tutorial_lib.datasets import load_diffrec_npy
    np.save(tmp_path / "train_list.npy", np.array([[0, 5], [0, 2], [0, 7], [1, 3]]))
    np.save(tmp_path / "valid_list.npy", np.array([[1, 8]]))
    np.save(tmp_path / "test_list.npy", np.array([[2, 9]]))
    d = load_diffrec_npy(tmp_path)
    assert (d.n_users, d.n_items) == (3, 10)
    assert [s.tolist() for s in d.sequences] == [[5, 2, 7], [3], []]


def test_group_by_user_is_stable_on_long_input():
    from tutorial_lib.data import group_by_user
    users = np.random.default_rng(0).integers(0, 3, 500)
    groups = group_by_user(users, np.arange(500), 3)
    assert all((np.diff(g) > 0).all() for g in groups)


def test_pkl_user_map_points_at_rows(tmp_path):
    from tutorial_lib.datasets import load_diffurec_pkl
    path = tmp_path / "dataset.pkl"
    path.write_bytes(pickle.dumps({"train": {1: [1], 5: [2]}, "val": {1: [2], 5: [1]}, "test": {1: [1], 5: [2]},
                                   "umap": {"a": 1, "b": 5}}))
    assert load_diffurec_pkl(path).user_map == {"a": 0, "b": 1}


# ============================================================== synthetic
def test_preference_is_the_tau_1_mixture(synthetic):
    data, truth = synthetic
    late = truth.item_clusters[None, :] == truth.user_clusters[:, -1:]
    np.testing.assert_allclose((truth.preference * late).sum(1), 0.9)   # w_K(1) = (1 + 0.8) / 2


def test_noise_clicks_lie_in_the_training_period(synthetic):
    data, truth = synthetic
    for u in range(data.n_users):
        noisy = np.asarray(truth.noise[u, data.sequences[u]].todense()).ravel() > 0
        assert data.timestamps[u][noisy].max() <= data.timestamps[u][~noisy].max()


def test_all_taus_in_unit_interval(synthetic):
    data, truth = synthetic
    for u in range(data.n_users):
        tau = truth.tau(u, data.timestamps[u])
        assert tau.min() >= 0 and tau.max() <= 1


def test_zipf_popularity_closed_form(synthetic):
    _, truth = synthetic
    members = truth.item_popularity[truth.item_clusters == 0]
    r = np.arange(1, len(members) + 1)
    np.testing.assert_allclose(np.sort(members)[::-1], (1 / r) / (1 / r).sum())


def test_first_click_is_an_exact_draw_from_p():
    from tutorial_lib.synthetic import make_synthetic
    data, truth = make_synthetic(n_users=3000, clusters_per_user=1, interactions_per_user=20, noise_frac=0.0, drift=0.0, seed=1)
    first = np.array([s[0] for s in data.sequences])
    top = np.isclose(truth.item_popularity[first], truth.item_popularity.max())
    assert abs(top.mean() - truth.item_popularity.max()) < 0.03        # 1 / H_50 = 0.222; p*E gives 0.52


def test_noise_prefers_popular_items(synthetic):
    _, truth = synthetic
    assert truth.item_popularity[truth.noise.indices].mean() > 2.5 / 50   # uniform picks would give 1/50


def test_histories_at_least_half_the_mean_length():
    from tutorial_lib.synthetic import make_synthetic
    data, truth = make_synthetic(interactions_per_user=8, seed=0)
    clean = (data.train - truth.noise + data.valid + data.test)
    clean.eliminate_zeros()
    assert np.diff(clean.indptr).min() >= 4
