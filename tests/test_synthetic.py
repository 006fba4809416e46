"""tutorial_lib.synthetic: the seeded world, its splits, its injected noise and its drift."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tutorial_lib.synthetic import make_synthetic

@pytest.fixture(scope="module")
def world():
    return make_synthetic(seed=0)


def test_synthetic_is_seeded(world):
    data, truth = world
    again, truth2 = make_synthetic(seed=0)
    other, _ = make_synthetic(seed=1)
    for split in ("train", "valid", "test"):
        assert (getattr(again, split) != getattr(data, split)).nnz == 0
    assert all(np.array_equal(a, b) for a, b in zip(again.sequences, data.sequences))
    np.testing.assert_array_equal(truth.preference, truth2.preference)
    assert (other.train != data.train).nnz > 0


def test_synthetic_splits_and_noise(world):
    data, truth = world
    assert (data.n_users, data.n_items) == (600, 400)
    assert data.train.multiply(data.valid).nnz == data.train.multiply(data.test).nnz == 0
    assert data.valid.multiply(data.test).nnz == 0
    assert (np.diff(data.valid.indptr) >= 1).all() and (np.diff(data.test.indptr) >= 1).all()
    # noise = exactly the train clicks outside the user's interest clusters, and only in train
    clusters_of = truth.item_clusters[data.train.indices]
    users = np.repeat(np.arange(data.n_users), np.diff(data.train.indptr))
    outside = ~(clusters_of[:, None] == truth.user_clusters[users]).any(axis=1)
    outside_mask = sp.csr_matrix((outside.astype(np.float32), data.train.indices.copy(), data.train.indptr.copy()),
                                 shape=data.train.shape)
    outside_mask.eliminate_zeros()
    assert (outside_mask != truth.noise).nnz == 0 and truth.noise.nnz > 0
    assert truth.noise.multiply(data.train).nnz == truth.noise.nnz
    assert truth.noise.multiply(data.valid + data.test).nnz == 0
    assert abs(truth.noise.nnz / data.train.nnz - 0.2) < 0.02


def test_synthetic_sequences_and_time(world):
    data, truth = world
    for u in (0, 17, 599):
        assert sorted(data.sequences[u].tolist()) == data.train[u].indices.tolist()
        assert (np.diff(data.timestamps[u]) >= 0).all()
        tau = truth.tau(u, data.timestamps[u])
        assert tau.min() >= 0 and tau.max() <= 1
    np.testing.assert_allclose(truth.preference.sum(axis=1), 1.0)
    np.testing.assert_allclose(truth.interest_weights([0, 0.5, 1]), [[0.9, 0.1], [0.5, 0.5], [0.1, 0.9]])


def _recall_at(scores, data, k=20):
    scores = np.where((data.train + data.valid).toarray() > 0, -np.inf, scores)
    top = np.argsort(-scores, axis=1)[:, :k]
    test = data.test.toarray()
    return (np.take_along_axis(test, top, 1).sum(1) / test.sum(1)).mean()


def test_synthetic_has_signal_and_drift(world):
    data, truth = world
    popularity = np.broadcast_to(np.asarray(data.train.sum(axis=0)), truth.preference.shape)
    assert _recall_at(truth.preference, data) > 3 * _recall_at(popularity, data)
    # the late interest dominates the test clicks, less so the clean training clicks
    late = truth.user_clusters[:, -1]
    test_users, test_items = data.test.nonzero()
    clean = data.train - truth.noise
    train_users, train_items = clean.nonzero()
    late_share_test = (truth.item_clusters[test_items] == late[test_users]).mean()
    late_share_train = (truth.item_clusters[train_items] == late[train_users]).mean()
    assert late_share_test > 0.75 and late_share_train < 0.55


def test_synthetic_tiny_fractions_give_leave_one_out():
    # used by sequences.loo_synthetic: one valid and one test click per user, the latest ones
    loo, _ = make_synthetic(n_users=50, noise_frac=0.0, valid_frac=1e-3, test_frac=1e-3, seed=2)
    ref, _ = make_synthetic(n_users=50, noise_frac=0.0, seed=2)    # same clicks, split 7:1:2
    assert (np.diff(loo.valid.indptr) == 1).all() and (np.diff(loo.test.indptr) == 1).all()
    assert ((loo.train + loo.valid + loo.test) != (ref.train + ref.valid + ref.test)).nnz == 0
    assert loo.test.multiply(ref.test).nnz == 50                       # the last click is test
    assert loo.valid.multiply(ref.valid + ref.test).nnz == 50


def test_synthetic_bad_arguments():
    with pytest.raises(ValueError, match="drift"):
        make_synthetic(drift=1.5)
    with pytest.raises(ValueError, match="clusters_per_user"):
        make_synthetic(n_clusters=2, clusters_per_user=2)
    with pytest.raises(ValueError, match="interactions_per_user"):
        make_synthetic(interactions_per_user=500)
    with pytest.raises(ValueError, match="noise_frac"):
        make_synthetic(noise_frac=1.0)
    # more noise clicks than items outside a user's interests: would leak into them, or crash
    with pytest.raises(ValueError, match="only 300 items lie outside the user's interests"):
        make_synthetic(noise_frac=0.9)
    with pytest.raises(ValueError, match="with no training click"):
        make_synthetic(n_users=300, interactions_per_user=6, valid_frac=0.35, test_frac=0.5)
    # pools of 2 items cap histories at 2 clicks: the advice names the pool, not only the count
    with pytest.raises(ValueError, match="enlarging the pool"):
        make_synthetic(n_users=20, n_items=8, n_clusters=4, clusters_per_user=1, interactions_per_user=1)
