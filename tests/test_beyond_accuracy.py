"""Beyond-accuracy measures against cases computed by hand."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tutorial_lib import beyond_accuracy as ba
from tutorial_lib.data import InteractionData

LISTS = np.array([[0, 1], [0, 2], [0, 1]])          # 3 users, K = 2, catalogue of 5 items


def test_exposure_and_coverage_by_hand():
    assert ba.exposure(LISTS, 5).tolist() == [3, 2, 1, 0, 0]
    assert ba.coverage(LISTS, 5) == pytest.approx(3 / 5)
    assert ba.coverage(LISTS[:, :1], 5) == pytest.approx(1 / 5)       # coverage@1: item 0 only


def test_gini_by_hand():
    # sorted counts 0, 0, 1, 2, 3 (sum 6); weights 2j - I - 1 = -4, -2, 0, 2, 4
    assert ba.gini(LISTS, 5) == pytest.approx((0 + 0 + 0 + 4 + 12) / (5 * 6))
    assert ba.gini(np.array([[0], [1], [2], [3], [4]]), 5) == pytest.approx(0.0)  # equal exposure
    assert ba.gini(np.array([[2], [2], [2]]), 4) == pytest.approx(3 / 4)           # one item: (I-1)/I


def test_intra_list_diversity_by_hand():
    f = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # user 0: items 0, 1 orthogonal -> distance 1; user 1: items 0, 2 at 45 degrees -> 1 - 1/sqrt 2
    lists = np.array([[0, 1], [0, 2]])
    expected = (1.0 + (1 - 1 / math.sqrt(2))) / 2
    assert ba.intra_list_diversity(lists, f) == pytest.approx(expected)
    # K = 3 averages the three pairs: (1 + (1 - 1/sqrt2) + (1 - 1/sqrt2)) / 3
    assert ba.intra_list_diversity(np.array([[0, 1, 2]]), f) == pytest.approx((3 - math.sqrt(2)) / 3)
    assert ba.intra_list_diversity(np.array([[0, 0]]), f) == pytest.approx(0.0)   # the same item twice


def test_novelty_by_hand():
    train = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 0], [1, 0, 1], [1, 0, 0]], dtype=np.float32))
    p = ba.item_popularity(train)
    assert p.tolist() == [1.0, 0.25, 0.25]
    # user 0: -log2 1 = 0 and -log2 1/4 = 2; user 1: 2 and 2 -> mean of (0, 2, 2, 2) = 1.5
    assert ba.novelty(np.array([[0, 1], [1, 2]]), p) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="infinite self-information"):
        ba.novelty(np.array([[0, 1]]), [1.0, 0.0, 0.5])


def test_lists_are_checked():
    with pytest.raises(ValueError, match=r"must lie in \[0, 5\)"):
        ba.coverage(np.array([[0, 5]]), 5)
    with pytest.raises(ValueError, match=r"\(U, K\) integer array"):
        ba.gini(np.array([0, 1]), 5)
    with pytest.raises(ValueError, match="at least 2 items"):
        ba.intra_list_diversity(np.array([[0], [1]]), np.eye(3))


def test_kl_per_dimension_by_hand():
    mu = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    logvar = torch.tensor([[0.0, 0.0], [0.0, math.log(2.0)]])
    # dim 0: KL = 1/2 mu^2 = 0.5 for both users; dim 1: 0 and 1/2 (2 - log 2 - 1)
    expected = torch.tensor([0.5, 0.25 * (1 - math.log(2.0))])
    assert torch.allclose(ba.kl_per_dimension(mu, logvar), expected)
    with pytest.raises(ValueError, match=r"both be \(U, d\)"):
        ba.kl_per_dimension(mu, logvar[:, :1])


def test_active_units_by_hand():
    # dim 0: mu = 0, 0.2, 0.4 -> variance (U - 1) 0.04 > 0.01: active; dim 1: 0.01, 0.02, 0.03 ->
    # 1e-4: inactive; dim 2 constant: inactive
    mu = torch.tensor([[0.0, 0.01, 3.0], [0.2, 0.02, 3.0], [0.4, 0.03, 3.0]])
    assert torch.allclose(ba.unit_activity(mu), torch.tensor([0.04, 1e-4, 0.0]), atol=1e-7)
    assert ba.active_units(mu) == 1
    assert ba.active_units(mu, threshold=1e-5) == 2


def test_vae_posterior_of_a_multivae():
    from tutorial_lib.models.multivae import MultiVAE
    from tutorial_lib.synthetic import make_synthetic

    data = make_synthetic(n_users=40, n_items=30, n_clusters=3, interactions_per_user=8, seed=0)[0]
    vae = MultiVAE(data.n_items, hidden=(16,), latent=4).train()
    mu, logvar = ba.vae_posterior(vae, data)
    x = torch.as_tensor(data.train.toarray())
    assert mu.shape == logvar.shape == (40, 4)
    assert torch.allclose(mu, vae.encode(x, dropout=False)[0], atol=1e-6)
    assert vae.training                                             # the mode it was in


class Sleepy:
    """score sleeps `steps` ms per call: the cost of a chain of `steps` reverse steps."""

    def __init__(self):
        self.steps, self._scores = 1, "cached"
        self.calls = []

    def score(self, data, users, split="test"):
        assert self._scores is None                                 # the cache was cleared
        self.calls.append(self.steps)
        time.sleep(self.steps / 1000)
        return torch.zeros(len(users), data.n_items)


def _tiny():
    m = sp.csr_matrix(np.eye(4, dtype=np.float32))
    return InteractionData(train=m, valid=m, test=m)


def test_inference_ms_per_user_times_the_setting_and_restores_it():
    model, data = Sleepy(), _tiny()
    by_steps = ba.ms_per_user_by_setting(model, data, "steps", [5, 40], repeats=2)
    assert model.steps == 1                                         # restored
    assert model.calls == [5, 5, 5, 40, 40, 40]                     # warm-up + 2 repeats each
    # 4 users: at least steps / 4 ms per user, and not much more
    assert 5 / 4 <= by_steps[5] < 5 / 4 + 10
    assert 40 / 4 <= by_steps[40] < 40 / 4 + 10
    assert by_steps[40] > by_steps[5]
    with pytest.raises(ValueError, match="no attribute 'T'"):
        ba.inference_ms_per_user(model, data, T=3)


def test_top_k_lists_masks_like_the_evaluation():
    train = sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float32))
    valid = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 1, 0]], dtype=np.float32))
    data = InteractionData(train=train, valid=valid, test=valid)
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0], [4.0, 3.0, 2.0, 1.0]])
    fn = lambda users: scores[users]                                # noqa: E731
    assert ba.top_k_lists(fn, data, k=2, split="valid").tolist() == [[1, 2], [0, 1]]
    assert ba.top_k_lists(fn, data, k=2, split="test").tolist() == [[2, 3], [0, 1]]
