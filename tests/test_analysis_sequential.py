"""Does DiffuRec see the order of a history? ``analysis.order_blindness`` (notebook 06): with no
positional embeddings, shuffling the earlier items changes x0_hat only through the lambda draws,
while moving the last item changes it a lot."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tutorial_lib import analysis, sequences
from tutorial_lib.analysis.sequential import _reordered
from tutorial_lib.models.diffurec import DiffuRec


@pytest.fixture(scope="module")
def loo():
    return sequences.loo_synthetic(n_users=60, n_items=80, interactions_per_user=8, seed=0)[0]


def test_reordering_keeps_the_items_the_padding_and_what_it_should_keep_last():
    windows = torch.tensor([[0, 0, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 3, 9]])
    shuffled, swapped = _reordered(windows, np.random.default_rng(0))
    for w, s, x in zip(windows, shuffled, swapped):
        assert sorted(s.tolist()) == sorted(w.tolist()) == sorted(x.tolist())
        assert ((s == 0) == (w == 0)).all() and ((x == 0) == (w == 0)).all()     # padding stays put
        assert s[-1] == w[-1] and x[-1] != w[-1]                             # last kept / last moved
    assert not torch.equal(shuffled[1], windows[1])                          # five earlier items moved


def test_order_blindness_without_lambda_is_exact_and_the_last_item_counts(loo):
    torch.manual_seed(0)
    model = DiffuRec(loo.n_items, hidden=16, n_blocks=1, heads=2, T=4, lambda_mean=0.0, lambda_std=0.0)
    model.train()                                                 # the helper runs in eval mode ...
    change = analysis.order_blindness(model, loo, range(40))
    assert model.training                                         # ... and leaves the mode as it was
    assert change["shuffled"] < 1e-5 and change["other lambda"] == 0   # no positions: a set, up to rounding
    assert change["last swapped"] > 0.05                          # the read-out position is the last one
    torch.manual_seed(0)
    noisy = DiffuRec(loo.n_items, hidden=16, n_blocks=1, heads=2, T=4, lambda_mean=1.0, lambda_std=1.0).eval()
    assert analysis.order_blindness(noisy, loo, range(40))["shuffled"] > 1e-3   # lambda differs per position


def test_order_blindness_needs_two_items(loo):
    model = DiffuRec(loo.n_items, hidden=16, n_blocks=1, heads=2, T=4).eval()
    one_item = type(loo)(train=loo.train, valid=loo.valid * 0, test=loo.test,
                         sequences=[s[:1] for s in loo.sequences])
    with pytest.raises(ValueError, match="at least two"):
        analysis.order_blindness(model, one_item, range(3), split="valid")
