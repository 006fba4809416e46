"""LightGCN: the normalised graph by hand, propagation, BPR sampling, and that it learns."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tutorial_lib.data import InteractionData
from tutorial_lib.metrics import evaluate
from tutorial_lib.models.ldiffrec import item_embeddings
from tutorial_lib.models.lightgcn import LightGCN, normalized_adjacency
from tutorial_lib.models.popularity import Popularity
from tutorial_lib.train import fit


def tiny_data():
    # user 0 clicked items 0 and 1, user 1 clicked item 0; item 2 never clicked
    train = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0]], dtype=np.float32))
    empty = sp.csr_matrix((2, 3), dtype=np.float32)
    return InteractionData(train, empty, empty)


def test_normalized_adjacency_by_hand():
    A = normalized_adjacency(tiny_data().train).toarray()
    # nodes: u0, u1, i0, i1, i2; degrees 2, 1, 2, 1, 0
    expected = np.zeros((5, 5), dtype=np.float32)
    expected[0, 2] = expected[2, 0] = 1 / np.sqrt(2 * 2)
    expected[0, 3] = expected[3, 0] = 1 / np.sqrt(2 * 1)
    expected[1, 2] = expected[2, 1] = 1 / np.sqrt(1 * 2)
    np.testing.assert_allclose(A, expected, rtol=1e-6)
    weighted = sp.csr_matrix(np.array([[0.5, 0.25, 0], [2.0, 0, 0]], dtype=np.float32))
    np.testing.assert_allclose(normalized_adjacency(weighted).toarray(), expected, rtol=1e-6)
    np.testing.assert_array_equal(weighted.data, [0.5, 0.25, 2.0])    # the caller's values stay


def test_score_is_plain_inference():
    model = LightGCN(tiny_data(), dim=4, layers=1)
    scores = model.score(tiny_data(), [0, 1])
    assert scores.shape == (2, 3) and not scores.requires_grad


def test_bpr_loss_by_hand():
    # batch (u, i, j): -log sigmoid(e_u.e_i - e_u.e_j) + reg/2 * mean over the batch of the
    # squared norms of the three layer-0 embeddings
    data = tiny_data()
    torch.manual_seed(0)
    model = LightGCN(data, dim=4, layers=1, reg=0.5)
    batch = torch.tensor([[0, 1, 2], [1, 0, 2]])
    users, items = (x.detach() for x in model.propagate())
    E0 = model.embedding.weight.detach()
    bpr = -torch.nn.functional.logsigmoid(
        (users[[0, 1]] * items[[1, 0]]).sum(1) - (users[[0, 1]] * items[[2, 2]]).sum(1)).mean()
    l2 = sum(E0[n].pow(2).sum() for n in (0, 1, 2 + 1, 2 + 0, 2 + 2, 2 + 2)) / (2 * 2)
    torch.testing.assert_close(model.loss(batch).detach(), bpr + 0.5 * l2)


def test_propagation_is_the_layer_mean():
    data = tiny_data()
    model = LightGCN(data, dim=4, layers=2)
    E0 = model.embedding.weight.detach()
    A = torch.as_tensor(normalized_adjacency(data.train).toarray())
    E = (E0 + A @ E0 + A @ A @ E0) / 3
    users, items = model.propagate()
    torch.testing.assert_close(users.detach(), E[:2])
    torch.testing.assert_close(items.detach(), E[2:])
    mf = LightGCN(data, dim=4, layers=0)        # K = 0 is matrix factorisation
    torch.testing.assert_close(mf.propagate()[1].detach(), mf.embedding.weight.detach()[2:])


def test_bpr_batches_cover_each_pair_once_with_true_negatives(synthetic):
    data, _ = synthetic
    model = LightGCN(data, dim=8)
    batch = torch.cat(list(model.batches(data, 1000, torch.Generator().manual_seed(0))))
    u, i, j = batch.numpy().T
    assert len(batch) == data.train.nnz
    assert np.asarray(data.train[u, i]).all()                 # every (u, i) is a training pair
    assert not np.asarray(data.train[u, j]).any()             # every j is a negative
    assert len(set(zip(u.tolist(), i.tolist()))) == data.train.nnz


def test_lightgcn_learns_and_beats_popularity(synthetic):
    data, _ = synthetic
    pop = Popularity().fit(data)
    pop_recall = evaluate(lambda u: pop.score(data, u), data, "test")["recall@20"]
    torch.manual_seed(0)
    model = LightGCN(data, dim=32)
    h = fit(model, data, epochs=4, lr=1e-2, batch_size=512, optimizer="adam", eval_every=2,
            device="cpu", progress=False)
    assert h.train_loss[-1] < h.train_loss[0]
    assert h.best_test["recall@20"] > pop_recall + 0.1


def test_item_embeddings_are_seeded(synthetic):
    data, _ = synthetic
    a = item_embeddings(data, dim=8, epochs=1, batch_size=4096, device="cpu", seed=3, progress=False)
    b = item_embeddings(data, dim=8, epochs=1, batch_size=4096, device="cpu", seed=3, progress=False)
    assert a.shape == (data.n_items, 8)
    np.testing.assert_array_equal(a, b)


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="dim"):
        LightGCN(tiny_data(), dim=0)
    with pytest.raises(ValueError, match="layers"):
        LightGCN(tiny_data(), layers=-1)


def test_negatives_stay_negative_for_a_user_with_almost_every_item():
    train = np.zeros((2, 100), dtype=np.float32)
    train[0, :97] = 1                                          # user 0: 3 negatives of 100
    train[1, :5] = 1
    empty = sp.csr_matrix(train.shape, dtype=np.float32)
    data = InteractionData(sp.csr_matrix(train), empty, empty)
    model = LightGCN(data, dim=4)
    u, i, j = torch.cat(list(model.batches(data, 64, torch.Generator().manual_seed(0)))).numpy().T
    assert not train[u, j].any()                               # 50 redraws are not enough for user 0
    assert set(j[u == 0].tolist()) <= {97, 98, 99}


def test_a_user_with_every_item_has_no_bpr_negative():
    full = sp.csr_matrix(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="user 0 interacted with every item"):
        LightGCN(InteractionData(full, full * 0, full * 0), dim=4)


def test_item_embeddings_need_no_validation_split():
    emb = item_embeddings(tiny_data(), dim=4, layers=1, epochs=2, batch_size=2, device="cpu", progress=False)
    assert emb.shape == (3, 4) and np.isfinite(emb).all()


def test_the_model_module_does_not_import_the_training_loop():
    # LightGCN is a model; training it briefly for L-DiffRec's clusters is ldiffrec.item_embeddings
    import subprocess
    import sys
    code = "import sys, tutorial_lib.models.lightgcn; print('tutorial_lib.train' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_fast_lightgcn_gives_the_plain_loss_and_gradient(synthetic):
    # FastLightGCN multiplies by the graph with SciPy and uses the same product for the
    # backward (the graph is symmetric): loss and gradient equal the plain model's
    from tutorial_lib.models.lightgcn_fast import FastLightGCN

    data, _ = synthetic
    torch.manual_seed(0)
    plain = LightGCN(data, dim=8, layers=3)
    fast = FastLightGCN(data, dim=8, layers=3)
    fast.load_state_dict(plain.state_dict())
    batch = next(plain.batches(data, 256, torch.Generator().manual_seed(0)))
    plain.loss(batch).backward()
    loss = fast.loss(batch)
    loss.backward()
    torch.testing.assert_close(loss.detach(), plain.loss(batch).detach())
    torch.testing.assert_close(fast.embedding.weight.grad, plain.embedding.weight.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(fast.score(data, [0, 5]), plain.score(data, [0, 5]), rtol=1e-5, atol=1e-6)
