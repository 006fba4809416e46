"""T-DiffRec: the time-weight schedule by hand, its order and errors, and that it pays off
on data whose interests drift."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tutorial_lib.data import InteractionData
from tutorial_lib.synthetic import make_synthetic
from tutorial_lib.models.diffrec import DiffRec
from tutorial_lib.models.tdiffrec import TDiffRec, TimeWeights, time_weights
from tutorial_lib.train import fit


def hand_data(timestamps=None):
    # user 0: items 5, 2, 7 in that order; user 1: only item 3; 8 items
    sequences = [np.array([5, 2, 7]), np.array([3])]
    rows = [0, 0, 0, 1]
    train = sp.csr_matrix((np.ones(4), (rows, [5, 2, 7, 3])), shape=(2, 8))
    empty = sp.csr_matrix((2, 8))
    return InteractionData(train, empty, empty, sequences=sequences, timestamps=timestamps)


def test_weights_by_hand():
    w = time_weights(hand_data(), w_min=0.1, w_max=1.0).toarray()
    expected = np.zeros((2, 8), dtype=np.float32)
    expected[0, [5, 2, 7]] = [0.1, 0.55, 1.0]      # oldest w_min, newest w_max, linear between
    expected[1, 3] = 1.0                             # M = 1: the single click gets w_max
    np.testing.assert_allclose(w, expected, rtol=1e-6)


def test_timestamps_decide_the_order():
    # times say item 7 came first and item 5 last: the reverse of the sequence order
    w = time_weights(hand_data(timestamps=[np.array([30.0, 20.0, 10.0]), np.array([1.0])]), 0.2, 0.8)
    np.testing.assert_allclose(w[0, [7, 2, 5]].toarray().ravel(), [0.2, 0.5, 0.8], rtol=1e-6)


def test_endpoints_and_monotone_on_synthetic(synthetic):
    data, _ = synthetic
    w = time_weights(data, w_min=0.3, w_max=0.9)
    assert w.nnz == data.train.nnz and (abs(w.sign()) != data.train).nnz == 0   # same pattern
    for u in range(0, data.n_users, 37):
        order = np.argsort(data.timestamps[u], kind="stable")
        ws = np.asarray(w[u, data.sequences[u][order]].todense()).ravel()
        assert ws[0] == pytest.approx(0.3) and ws[-1] == pytest.approx(0.9)
        assert (np.diff(ws) > 0).all()                                          # strictly rising


def test_repeated_item_keeps_its_latest_weight():
    train = sp.csr_matrix((np.ones(2), ([0, 0], [1, 4])), shape=(1, 5))
    empty = sp.csr_matrix((1, 5))
    data = InteractionData(train, empty, empty, sequences=[np.array([1, 4, 1])])
    w = time_weights(data, 0.1, 1.0).toarray()
    np.testing.assert_allclose(w[0, [1, 4]], [1.0, 0.55], rtol=1e-6)


@pytest.mark.parametrize("w_min, w_max, message", [
    (0.9, 0.5, "must not exceed"), (0.0, 1.0, r"\(0, 1\]"), (0.5, 1.5, r"\(0, 1\]")])
def test_bad_weights_raise(w_min, w_max, message):
    with pytest.raises(ValueError, match=message):
        time_weights(hand_data(), w_min, w_max)
    with pytest.raises(ValueError, match=message):
        TDiffRec(8, w_min=w_min, w_max=w_max)


def test_no_order_raises_clear_error():
    data = hand_data()
    data.sequences = None
    with pytest.raises(ValueError, match="sequences"):
        time_weights(data)
    other = hand_data()
    other.sequences = [np.array([5, 2, 6]), np.array([3])]            # item 6 is not in train
    with pytest.raises(ValueError, match="do not hold the same .* pairs as data.train"):
        time_weights(other)


def test_tdiffrec_feeds_weighted_rows(synthetic):
    data, _ = synthetic
    model = TDiffRec(data.n_items, w_min=0.2)
    x = next(iter(model.batches(data, data.n_users, None)))
    assert isinstance(model.input_fn, TimeWeights)
    assert x.min() == 0 and x[x > 0].min() == pytest.approx(0.2) and x.max() == pytest.approx(1.0)


def test_tdiffrec_beats_diffrec_on_drifting_interests():
    data, _ = make_synthetic(seed=1, drift=0.9)
    results = {}
    for name, cls in (("diffrec", DiffRec), ("tdiffrec", TDiffRec)):
        torch.manual_seed(0)
        model = cls(data.n_items, dims=(100, 300))
        h = fit(model, data, epochs=10, batch_size=100, eval_every=5, device="cpu", seed=0,
                progress=False)
        results[name] = h.best_test
    assert results["tdiffrec"]["recall@20"] > results["diffrec"]["recall@20"] + 0.01
    assert results["tdiffrec"]["ndcg@20"] > results["diffrec"]["ndcg@20"] + 0.01


def test_ltdiffrec_feeds_weighted_rows(synthetic):
    from tutorial_lib.models.tdiffrec import LTDiffRec
    data, _ = synthetic
    model = LTDiffRec(data.n_items, w_min=0.2, clusters=np.arange(data.n_items) % 2)
    x = next(iter(model.batches(data, data.n_users, None)))
    assert isinstance(model.input_fn, TimeWeights)
    assert x[x > 0].min() == pytest.approx(0.2) and x.max() == pytest.approx(1.0)


def test_equal_weights_are_allowed_and_flat():
    w = time_weights(hand_data(), 0.5, 0.5)
    assert np.allclose(w.data, 0.5) and w.nnz == hand_data().train.nnz
