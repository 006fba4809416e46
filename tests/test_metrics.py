"""Full-ranking metrics against values worked out by hand, plus the evaluation protocol."""
from __future__ import annotations

from math import log2

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from tutorial_lib.data import InteractionData
from tutorial_lib.datasets import load_diffrec_npy
from tutorial_lib.metrics import MetricAccumulator, evaluate, evaluate_both, metric_names, topk_metrics

# 3 users x 5 items. Rankings (ties -> lower item index first):
#   user 0: scores 0.9 0.1 0.5 0.3 0.7 -> items 0 4 2 3 1; relevant {1, 4}: hits at ranks 2, 5
#   user 1: scores 0.2 0.2 0.8 0.2 0.1 -> items 2 0 1 3 4; relevant {1}:    hit at rank 3
#   user 2: no relevant item -> skipped
SCORES = torch.tensor([[0.9, 0.1, 0.5, 0.3, 0.7],
                       [0.2, 0.2, 0.8, 0.2, 0.1],
                       [0.5, 0.4, 0.3, 0.2, 0.1]])
TRUTH = torch.tensor([[0, 1, 0, 0, 1],
                      [0, 1, 0, 0, 0],
                      [0, 0, 0, 0, 0]])
IDCG2 = 1 + 1 / log2(3)                      # ideal DCG with 2 relevant items
# per user (user 0, user 1), for K = 1, 2, 3 and 10 (clamped to the 5 items)
BY_HAND = {
    "precision@1": (0, 0), "recall@1": (0, 0), "ndcg@1": (0, 0), "hr@1": (0, 0), "mrr@1": (0, 0),
    "precision@2": (1 / 2, 0), "recall@2": (1 / 2, 0), "ndcg@2": ((1 / log2(3)) / IDCG2, 0),
    "hr@2": (1, 0), "mrr@2": (1 / 2, 0),
    "precision@3": (1 / 3, 1 / 3), "recall@3": (1 / 2, 1), "ndcg@3": ((1 / log2(3)) / IDCG2, 1 / log2(4)),
    "hr@3": (1, 1), "mrr@3": (1 / 2, 1 / 3),
    "precision@10": (2 / 5, 1 / 5), "recall@10": (1, 1),
    "ndcg@10": ((1 / log2(3) + 1 / log2(6)) / IDCG2, 1 / log2(4)),
    "hr@10": (1, 1), "mrr@10": (1 / 2, 1 / 3),
}
KS = (1, 2, 3, 10)


def make_data(train, valid, test):
    """An InteractionData from 0/1 arrays or sparse matrices."""
    return InteractionData(train=train, valid=valid, test=test, name="toy")


def test_hand_computed_example_every_metric_and_k():
    means, per_user = topk_metrics(SCORES, TRUTH, ks=KS, per_user=True)
    assert means["n_users"] == 2
    assert set(means) == set(metric_names(KS)) | {"n_users"}
    np.testing.assert_array_equal(per_user["user"], [0, 1])
    np.testing.assert_array_equal(per_user["n_relevant"], [2, 1])
    for name, (u0, u1) in BY_HAND.items():
        np.testing.assert_allclose(per_user[name], [u0, u1], atol=1e-12, err_msg=name)
        assert means[name] == pytest.approx((u0 + u1) / 2, abs=1e-12), name


def test_truth_as_scipy_csr_and_bool_give_the_same():
    dense = topk_metrics(SCORES, TRUTH.bool(), ks=KS)
    csr = topk_metrics(SCORES, sp.csr_matrix(TRUTH.numpy()), ks=KS)
    assert dense == csr


def test_users_without_truth_are_skipped_not_counted_as_zero():
    all_rows = topk_metrics(SCORES, TRUTH, ks=KS)
    first_two = topk_metrics(SCORES[:2], TRUTH[:2], ks=KS)
    assert all_rows == first_two
    assert all_rows["recall@10"] == 1.0          # would be 2/3 if user 2 counted as zero


def test_ties_are_broken_by_lower_item_index():
    flat = torch.zeros(2, 6)
    truth = torch.zeros(2, 6)
    truth[0, 0] = 1                              # lowest index: ranked first
    truth[1, 5] = 1                              # highest index: ranked last
    per = topk_metrics(flat, truth, ks=(1, 6), per_user=True)[1]
    np.testing.assert_array_equal(per["hr@1"], [1, 0])
    np.testing.assert_allclose(per["mrr@6"], [1, 1 / 6])
    # a tie between a relevant and an irrelevant item with a higher score above both
    scores = torch.tensor([[0.0, 0.5, 0.5, 0.9]])
    assert topk_metrics(scores, torch.tensor([[0, 0, 1, 0]]), ks=(2,))["hr@2"] == 0
    assert topk_metrics(scores, torch.tensor([[0, 1, 0, 0]]), ks=(2,))["hr@2"] == 1
    # many ties (an unstable sort scrambles these): the top 10 are items 0..9
    truth = torch.zeros(3, 300)
    truth[:, :10] = 1
    assert topk_metrics(torch.zeros(3, 300), truth, ks=(10,))["precision@10"] == 1.0


def test_recall_divides_by_all_relevant_items_not_by_k():
    # 3 relevant items ranked 1, 2, 3; at K = 2: Recall = 2/3 (not 2/min(2, 3) = 1), NDCG = 1
    out = topk_metrics(torch.tensor([[5.0, 4, 3, 2, 1]]), torch.tensor([[1, 1, 1, 0, 0]]), ks=(2,))
    assert out["recall@2"] == pytest.approx(2 / 3)
    assert out["precision@2"] == out["ndcg@2"] == out["hr@2"] == out["mrr@2"] == 1.0


def test_k_larger_than_item_count_is_clamped():
    out = topk_metrics(SCORES, TRUTH, ks=(5, 500))
    for m in ("precision", "recall", "ndcg", "hr", "mrr"):
        assert out[f"{m}@500"] == out[f"{m}@5"], m
    assert out["precision@500"] == pytest.approx((2 / 5 + 1 / 5) / 2)   # hits / 5, not / 500


def test_exclude_masks_history_and_excluded_items_never_hit():
    exclude = torch.zeros_like(TRUTH)
    exclude[0, 0] = 1                            # user 0 now ranks 4 2 3 1 0: hits at 1 and 4
    per = topk_metrics(SCORES, TRUTH, ks=(1, 4), exclude=exclude, per_user=True)[1]
    assert per["hr@1"][0] == 1 and per["mrr@4"][0] == 1
    assert per["ndcg@4"][0] == pytest.approx((1 + 1 / log2(5)) / IDCG2)
    exclude[0, 4] = 1                            # a relevant item in the history cannot hit
    per = topk_metrics(SCORES, TRUTH, ks=(5,), exclude=exclude, per_user=True)[1]
    assert per["recall@5"][0] == 1 / 2          # item 1 found, item 4 excluded


def test_accumulator_over_uneven_batches_equals_one_batch():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(50, 30, generator=g)
    truth = torch.rand(50, 30, generator=g) < 0.1
    truth[:5] = False                            # some users without ground truth
    exclude = (torch.rand(50, 30, generator=g) < 0.2) & ~truth
    whole, whole_per = topk_metrics(scores, truth, ks=(5, 10), exclude=exclude, per_user=True)
    acc = MetricAccumulator(ks=(5, 10))
    batch_means = []
    for lo, hi in ((0, 7), (7, 27), (27, 50)):
        acc.update(scores[lo:hi], truth[lo:hi], exclude[lo:hi], users=torch.arange(lo, hi))
        batch_means.append(topk_metrics(scores[lo:hi], truth[lo:hi], (10,), exclude[lo:hi])["recall@10"])
    out = acc.compute()
    assert out["n_users"] == whole["n_users"] == int((truth.sum(1) > 0).sum())
    for name in metric_names((5, 10)):
        assert out[name] == pytest.approx(whole[name], abs=1e-12), name
    for name, values in acc.per_user().items():
        np.testing.assert_allclose(values, whole_per[name], err_msg=name)
    # DiffuRec's mean of per-batch means is a different number with uneven batches
    assert abs(np.mean(batch_means) - whole["recall@10"]) > 1e-4


@pytest.mark.parametrize("bad, match", [
    (dict(ks=(0,)), "positive integer"),
    (dict(ks=(10, -1)), "positive integer"),
    (dict(ks=()), "empty"),
    (dict(truth=torch.zeros(3, 4)), "shape"),
    (dict(exclude=torch.zeros(2, 5)), "shape"),
    (dict(scores=torch.tensor([[0.1, float("nan"), 0, 0, 0]] * 3)), "NaN"),
    (dict(scores=torch.zeros(5)), "2-D"),
    (dict(ks=(1, 1)), "repeats"),                    # would count every user twice
    (dict(scores=torch.zeros(3, 0), truth=torch.zeros(3, 0)), "no item"),
])
def test_bad_input_raises_clear_value_error(bad, match):
    args = dict(scores=SCORES, truth=TRUTH, ks=(1,), exclude=None) | bad
    with pytest.raises(ValueError, match=match):
        topk_metrics(**args)


# evaluate(): 4 users x 6 items
TRAIN = [[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0], [1, 0, 0, 0, 0, 1], [0, 1, 1, 0, 0, 0]]
VALID = [[0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 1, 0, 0]]
TEST = [[0, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0]]


def test_evaluate_follows_the_diffrec_masking_protocol():
    data = make_data(TRAIN, VALID, TEST)
    # An oracle that puts history first, then the held-out items: perfect only when masked.
    dense = {s: torch.tensor(a, dtype=torch.float32) for s, a in
             (("train", TRAIN), ("valid", VALID), ("test", TEST))}
    valid_fn = lambda u: 10 * dense["train"][u] + dense["valid"][u]                 # noqa: E731
    test_fn = lambda u: 10 * (dense["train"][u] + dense["valid"][u]) + dense["test"][u]  # noqa: E731
    valid = evaluate(valid_fn, data, "valid", ks=(1,), batch_size=3)
    assert valid["n_users"] == 3                 # user 2 has no validation item
    assert valid["recall@1"] == valid["ndcg@1"] == 1.0
    test = evaluate(test_fn, data, "test", ks=(1,), batch_size=2)
    assert test["n_users"] == 4 and test["recall@1"] == 1.0
    unmasked = evaluate(valid_fn, data, "valid", ks=(2,), mask_history=False)
    assert unmasked["recall@2"] == 0.0           # the two history items fill the top 2
    # same numbers as one dense call, whatever the batch size
    full = topk_metrics(test_fn(torch.arange(4)), dense["test"], ks=(1, 3),
                        exclude=dense["train"] + dense["valid"])
    for bs in (1, 3, 1024):
        assert evaluate(test_fn, data, "test", ks=(1, 3), batch_size=bs) == pytest.approx(full)


def test_evaluate_both_scores_once_and_matches_evaluate():
    data = make_data(TRAIN, VALID, TEST)
    dense = {s: torch.tensor(a, dtype=torch.float32) for s, a in
             (("train", TRAIN), ("valid", VALID), ("test", TEST))}
    calls = []

    def fn(u):                                   # history first, then the test items
        calls.append(len(u))
        return 10 * (dense["train"][u] + dense["valid"][u]) + dense["test"][u]

    unmasked, masked = evaluate_both(fn, data, "test", ks=(1, 3), batch_size=3)
    assert calls == [3, 1]                       # one scoring pass for both protocols
    assert masked == evaluate(fn, data, "test", ks=(1, 3), batch_size=3)
    assert unmasked == evaluate(fn, data, "test", ks=(1, 3), batch_size=3, mask_history=False)
    assert masked["hr@1"] == 1.0 and unmasked["hr@1"] == 0.0     # the protocols do differ here
    with pytest.raises(ValueError, match="unknown split"):
        evaluate_both(fn, data, "train")


def test_evaluate_users_subset_and_per_user():
    data = make_data(TRAIN, VALID, TEST)
    fn = lambda u: torch.arange(6, 0, -1, dtype=torch.float32).repeat(len(u), 1)  # noqa: E731
    out, per = evaluate(fn, data, "valid", ks=(3,), users=[2, 3], per_user=True)
    assert out["n_users"] == 1                   # user 2 has no truth in valid
    np.testing.assert_array_equal(per["user"], [3])
    # user 3: items 1, 2 masked, ranking 0 3 4 5: item 3 at rank 2
    assert per["mrr@3"][0] == 0.5


def test_evaluate_errors():
    data = make_data(TRAIN, VALID, TEST)
    fn = lambda u: torch.zeros(len(u), 6)         # noqa: E731
    with pytest.raises(ValueError, match="unknown split"):
        evaluate(fn, data, "train")
    with pytest.raises(ValueError, match="expected"):
        evaluate(lambda u: torch.zeros(len(u), 5), data, "valid")
    with pytest.raises(ValueError, match="NaN"):
        evaluate(lambda u: torch.full((len(u), 6), float("nan")), data, "valid")
    with pytest.raises(ValueError, match="users"):
        evaluate(fn, data, "valid", users=[7])
    with pytest.raises(ValueError, match="flatnonzero"):         # a mask is not a list of ids
        evaluate(fn, data, "valid", users=np.array([True, True, False, True]))
    with pytest.raises(ValueError, match="integer ids"):
        evaluate(fn, data, "valid", users=[0.0, 1.0])
    with pytest.raises(ValueError, match="repeats ids"):
        evaluate(fn, data, "valid", users=[0, 0, 1])
    with pytest.raises(ValueError, match="no user with ground truth"):
        evaluate(fn, data, "valid", users=[])
    assert evaluate(fn, data, "valid", users=torch.tensor([0, 1], dtype=torch.int32))["n_users"] == 2
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        evaluate(fn, data, "valid", batch_size=0)


def test_accumulator_errors():
    acc = MetricAccumulator(ks=(1,))
    with pytest.raises(ValueError, match="no user with ground truth was evaluated"):
        acc.compute()
    acc.update(torch.zeros(2, 3), np.zeros((2, 3)))          # no truth: nothing counted
    with pytest.raises(ValueError, match="no user with ground truth"):
        acc.compute()
    with pytest.raises(ValueError, match="integer ids"):
        acc.update(torch.zeros(2, 3), np.eye(2, 3), users=np.array([True, False]))
    with pytest.raises(ValueError, match="users has 3 ids but scores have 2 rows"):
        acc.update(torch.zeros(2, 3), np.eye(2, 3), users=[0, 1, 2])


def test_popularity_on_ml1m_full_protocol(ml1m_dir):
    """The whole ML-1M split in a few batches: popularity beats random, masking matters."""
    data = load_diffrec_npy(ml1m_dir)
    assert data.train.shape == (5949, 2810)
    popularity = torch.as_tensor(np.asarray(data.train.sum(0)).ravel())
    fn = lambda u: popularity.repeat(len(u), 1)   # noqa: E731
    out = evaluate(fn, data, "test", ks=(20,), batch_size=2048)
    assert out["n_users"] == int((np.diff(data.test.indptr) > 0).sum())
    random_recall = 20 / data.n_items
    assert out["recall@20"] > 5 * random_recall
    some = np.arange(1000)
    masked = evaluate(fn, data, "test", ks=(20,), users=some)["recall@20"]
    assert evaluate(fn, data, "test", ks=(20,), users=some, mask_history=False)["recall@20"] < masked
