"""L-DiffRec: clusters, per-cluster encoders/decoders with uneven sizes, the loss and its
annealing, two learning rates, and that LT-DiffRec learns."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tutorial_lib.metrics import evaluate
from tutorial_lib.models.ldiffrec import ClusterVAE, LDiffRec, cluster_items, latent_sizes
from tutorial_lib.models.popularity import Popularity
from tutorial_lib.models.tdiffrec import LTDiffRec
from tutorial_lib.train import fit

UNEVEN = np.array([2, 0, 0, 1, 0, 0, 2, 0, 1, 0, 0, 0])   # sizes 8, 2, 2 (items interleaved)


def test_kmeans_clusters_cover_every_item_once():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = np.repeat([0, 1, 2], [30, 20, 10])
    emb = centers[truth] + rng.normal(scale=0.5, size=(60, 2))
    labels = cluster_items(emb, 3, seed=0)
    assert labels.shape == (60,) and set(labels.tolist()) == {0, 1, 2}
    assert np.bincount(labels).tolist() == [30, 20, 10]          # renumbered largest first
    assert (labels == truth).all()                               # well-separated blobs found
    np.testing.assert_array_equal(labels, cluster_items(emb, 3, seed=0))
    assert (cluster_items(emb, 1) == 0).all()


def test_more_clusters_than_items_raises():
    with pytest.raises(ValueError, match="cannot split 4 items into 5 clusters"):
        cluster_items(np.zeros((4, 2)), 5)
    with pytest.raises(ValueError, match="n_clusters"):
        cluster_items(np.zeros((4, 2)), 0)
    # two distinct embeddings cannot make three clusters
    with pytest.raises(ValueError, match="KMeans found only 2 distinct clusters"):
        cluster_items(np.repeat([[0.0, 0.0], [1.0, 1.0]], 5, axis=0), 3)


def test_latent_sizes_proportional_and_summing():
    assert latent_sizes([8, 2, 2], [12]) == [[8], [2], [2]]
    assert latent_sizes([8, 2, 2], [24, 6]) == [[16, 4], [4, 1], [4, 1]]
    assert latent_sizes([100, 1], [10]) == [[9], [1]]            # every cluster >= 1 unit
    # the release's split would leave the last cluster 20 - 19 - 1 = 0 units: largest remainder
    assert latent_sizes([95, 3, 2], [20]) == [[17], [2], [1]]
    assert latent_sizes([95, 3, 2], [3]) == [[1], [1], [1]]
    with pytest.raises(ValueError, match="too small"):
        latent_sizes([5, 5, 5], [2])


def test_uneven_clusters_shapes_and_item_order():
    vae = ClusterVAE(UNEVEN, encoder_dims=[24, 6], decoder_dims=[12], dropout=0.0)
    assert vae.cluster_sizes == [8, 2, 2] and vae.latent_dims == [4, 1, 1]
    assert [enc[0].in_features for enc in vae.encoders] == [8, 2, 2]
    assert [enc[-2].out_features for enc in vae.encoders] == [8, 2, 2]       # 2 x d_c
    assert [dec[-1].out_features for dec in vae.decoders] == [8, 2, 2]
    x = torch.rand(5, 12)
    mu, logvar = vae.encode(x)
    assert mu.shape == logvar.shape == (5, 6)
    assert vae.decode(mu).shape == (5, 12)
    # decoder c's output unit k belongs to the k-th item of cluster c: reassembled in item order
    for c, dec in enumerate(vae.decoders):
        torch.nn.init.zeros_(dec[-1].weight)
        dec[-1].bias.data = torch.as_tensor(np.flatnonzero(UNEVEN == c), dtype=torch.float32)
    assert vae.decode(torch.zeros(1, 6))[0].tolist() == list(range(12))


def test_each_encoder_reads_only_its_cluster():
    vae = ClusterVAE(UNEVEN, encoder_dims=[12], dropout=0.0)
    x = torch.rand(1, 12, requires_grad=True)
    mu, _ = vae.encode(x)
    first = vae.latent_dims[0]
    mu[0, :first].sum().backward()                    # latent units of cluster 0
    assert (x.grad[0, UNEVEN != 0] == 0).all() and (x.grad[0, UNEVEN == 0] != 0).any()


def test_shared_decoder_by_default_and_parameter_count():
    vae = ClusterVAE(UNEVEN, encoder_dims=[6], dropout=0.0)
    assert len(vae.decoders) == 1 and vae.decoders[0][0].in_features == 6
    # encoders 8*8+8 + 2*2+2 + 2*2+2 (2 d_c outputs each), decoder 6*12+12
    assert sum(p.numel() for p in vae.parameters()) == 72 + 6 + 6 + 84


def test_loss_terms_and_annealing():
    model = LDiffRec(12, clusters=UNEVEN, encoder_dims=[6], mlp_dims=[8], T=5, lambda_=0.03,
                     lambda_min=0.005, lambda_anneal_epochs=10, kl_max=0.3, kl_anneal_steps=4)
    assert model.weights() == (0.03, 0.0)
    x = (torch.rand(4, 12) < 0.4).float()
    terms = model.loss_terms(x)
    assert all(torch.isfinite(v) for v in terms.values())
    assert terms["loss"].item() == pytest.approx((0.03 * terms["diffusion"] + terms["reconstruction"]).item())
    for _ in range(10):
        model.on_step_end(0)
    for _ in range(5):
        model.on_epoch_end(0)
    assert model.weights() == pytest.approx((0.015, 0.3))           # halfway down; KL capped
    for _ in range(10):
        model.on_epoch_end(0)
    assert model.weights()[0] == pytest.approx(0.005)                # floor lambda_min
    # now with the KL weight at its cap: loss = lambda diffusion + reconstruction + beta KL
    terms = model.loss_terms(x)
    assert terms["kl"] > 0
    assert terms["loss"].item() == pytest.approx(
        (0.005 * terms["diffusion"] + terms["reconstruction"] + 0.3 * terms["kl"]).item())
    mu, logvar = torch.randn(3, 4), torch.randn(3, 4)
    closed = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(1).mean()          # KL(N(mu, s^2) || N(0, 1))
    assert torch.allclose(type(model.vae).kl(mu, logvar), closed)
    assert "epochs_done" in model.state_dict()                       # clocks survive checkpoints


def test_two_learning_rates():
    model = LDiffRec(12, clusters=UNEVEN, encoder_dims=[6], mlp_dims=[8], lr_ae=1e-3, lr_denoiser=5e-4)
    groups = model.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == [1e-3, 5e-4]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="one cluster label per item"):
        LDiffRec(10, clusters=UNEVEN)
    with pytest.raises(ValueError, match=r"encoder_dims \[2\] are too small"):
        LDiffRec(12, clusters=UNEVEN, encoder_dims=[2])
    with pytest.raises(ValueError, match=r"decoder_dims \[2\] are too small"):   # not the encoder's
        LDiffRec(12, clusters=UNEVEN, encoder_dims=[30], decoder_dims=[2])
    with pytest.raises(ValueError, match="no empty cluster"):
        ClusterVAE(np.array([0, 0, 2, 2]))
    with pytest.raises(ValueError, match="cluster labels must be 0..C-1, got -1"):
        ClusterVAE(np.array([0, -1, 1, 1]))


def test_lt_diffrec_learns_and_beats_popularity(synthetic):
    data, truth = synthetic
    pop = Popularity().fit(data)
    pop_recall = evaluate(lambda u: pop.score(data, u), data, "test")["recall@20"]
    torch.manual_seed(0)
    clusters = truth.item_clusters % 2              # two groups of true item clusters
    model = LTDiffRec(data.n_items, clusters=clusters, encoder_dims=[100], mlp_dims=[100],
                      lr_ae=1e-2, lr_denoiser=5e-3)
    h = fit(model, data, epochs=10, batch_size=100, eval_every=5, device="cpu", seed=0, progress=False)
    assert h.train_loss[-1] < h.train_loss[0]
    assert h.best_test["recall@20"] > 2 * pop_recall
