"""Noise robustness: injected interactions and the train-noisy / test-clean loop."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from tutorial_lib.analysis.robustness import inject_interactions, noise_robustness, relative_change
from tutorial_lib.data import InteractionData
from tutorial_lib.models.popularity import Popularity
from tutorial_lib.synthetic import make_synthetic


@pytest.fixture(scope="module")
def world():
    return make_synthetic(n_users=120, n_items=160, interactions_per_user=10, noise_frac=0.0, seed=3)[0]


def test_injection_adds_the_share_of_unseen_items_and_keeps_held_out_data(world):
    noisy, injected = inject_interactions(world, 0.2, seed=1)
    n_u = np.diff(world.train.indptr)
    assert np.array_equal(np.diff(injected.indptr), np.floor(0.2 * n_u + 0.5 + 1e-9).astype(int))
    seen = world.train + world.valid + world.test
    assert injected.multiply(seen).nnz == 0                 # never an item the user already has
    assert (noisy.train - world.train - injected).nnz == 0  # train = clean train + injected
    assert (noisy.valid != world.valid).nnz == 0 and (noisy.test != world.test).nnz == 0


def test_injection_is_seeded(world):
    a = inject_interactions(world, 0.4, seed=5)[1]
    b = inject_interactions(world, 0.4, seed=5)[1]
    c = inject_interactions(world, 0.4, seed=6)[1]
    assert (a != b).nnz == 0 and (a != c).nnz > 0


def test_injected_items_are_uniform_not_popular(world):
    """Random interactions, as in the paper: popular items are not favoured."""
    _, injected = inject_interactions(world, 1.0, seed=0)
    pop = np.asarray(world.train.sum(0)).ravel()
    top = np.argsort(-pop)[:10]
    share_top = np.asarray(injected.sum(0)).ravel()[top].sum() / injected.nnz
    share_top_clean = pop[top].sum() / pop.sum()
    assert share_top < 0.5 * share_top_clean


def test_share_zero_and_bad_shares(world):
    noisy, injected = inject_interactions(world, 0.0)
    assert injected.nnz == 0 and (noisy.train != world.train).nnz == 0
    for bad in (-0.1, 1.5, "0.2", True):
        with pytest.raises(ValueError, match="share"):
            inject_interactions(world, bad)


def test_loop_shows_every_model_the_same_noise_and_tests_on_clean_data(world):
    seen = {}

    def popularity(data, seed):
        seen.setdefault((data.train.nnz, seed), []).append(data.train.copy())
        return Popularity().fit(data)

    class Oracle:                        # scores the clean test items first: recall must be 1
        def score(self, data, users, split="test"):
            return torch.as_tensor(world.test[np.asarray(users)].toarray())

    table = noise_robustness(world, {"popularity": popularity, "oracle": lambda d, s: Oracle(),
                                     "popularity again": popularity}, shares=(0.0, 0.4), seeds=(0, 1))
    assert len(table) == 2 * 2 * 3
    assert set(table.columns) >= {"model", "share", "seed", "injected", "recall@20", "ndcg@20", "seconds"}
    assert (table.loc[table.model == "oracle", "recall@20"] == 1.0).all()
    for mats in seen.values():           # the two popularity trainers saw the same matrix
        assert (mats[0] != mats[1]).nnz == 0
    pop = table[table.model == "popularity"].groupby("share")["recall@20"].mean()
    assert pop[0.4] < pop[0.0]           # uniform noise flattens popularity: it loses accuracy


def test_keep_models_and_callback(world):
    seen = []
    table, models = noise_robustness(world, {"pop": lambda d, s: Popularity().fit(d)}, shares=(0.0, 0.1),
                                     keep_models=True, callback=seen.append)
    assert set(models) == {("pop", 0.0, 0), ("pop", 0.1, 0)} and len(table) == 2
    assert [r["share"] for r in seen] == [0.0, 0.1] and seen[1]["injected"] == table["injected"].iloc[1] > 0
    with pytest.raises(ValueError, match="trainers is empty"):
        noise_robustness(world, {})


def test_parallel_runs_give_the_numbers_of_the_sequential_loop(world):
    """n_jobs=2 trains in two processes: a closure trainer (as a notebook defines one) travels
    there, each run seeds itself, and the rows come back in the loop's order with its numbers."""
    from tutorial_lib.models.multivae import MultiVAE
    from tutorial_lib.train import fit
    from tutorial_lib.utils import seed_everything

    epochs = 3

    def vae(data, seed):
        seed_everything(seed)
        model = MultiVAE(data.n_items, hidden=(16,), latent=8)
        fit(model, data, epochs=epochs, batch_size=40, lr=1e-2, optimizer="adam", seed=seed, progress=False)
        return model

    trainers = {"vae": vae, "pop": lambda d, s: Popularity().fit(d)}
    args = dict(shares=(0.0, 0.4), seeds=(0, 1), keep_models=True)
    one, models_one = noise_robustness(world, trainers, **args)
    two, models_two = noise_robustness(world, trainers, n_jobs=2, **args)
    metrics = [c for c in one.columns if c != "seconds"]
    pd.testing.assert_frame_equal(one[metrics], two[metrics])
    assert one.loc[one.model == "vae", "recall@20"].nunique() > 1          # the runs differ from each other
    assert set(models_two) == set(models_one) and isinstance(models_two[("vae", 0.4, 1)], MultiVAE)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="n_jobs"):
            noise_robustness(world, trainers, n_jobs=bad)


def test_measures_add_columns_from_the_model_trained_on_the_noisy_data(world):
    seen = []

    def measures(model, data):
        seen.append(data.train.nnz)
        return {"n_train": data.train.nnz, "is_popularity": isinstance(model, Popularity)}

    table = noise_robustness(world, {"pop": lambda d, s: Popularity().fit(d)}, shares=(0.0, 0.4), measures=measures)
    assert table["is_popularity"].all() and list(table["n_train"]) == seen
    assert seen[1] == seen[0] + table["injected"].iloc[1] > seen[0]


def test_relative_change_by_hand():
    results = pd.DataFrame({"model": ["a", "a", "a", "a", "b", "b"], "share": [0, 0, 0.2, 0.2, 0, 0.2],
                            "seed": [0, 1, 0, 1, 0, 0], "recall@20": [0.4, 0.6, 0.3, 0.5, 0.2, 0.3]})
    t = relative_change(results).set_index(["model", "share"])
    assert t.loc[("a", 0.2), "mean"] == pytest.approx(0.4)
    assert t.loc[("a", 0.2), "change_%"] == pytest.approx(-20.0)
    assert t.loc[("b", 0.2), "change_%"] == pytest.approx(50.0)
    assert t.loc[("a", 0.0), "sd"] == pytest.approx(np.std([0.4, 0.6], ddof=1))
    assert t.loc[("a", 0.2), "seeds"] == 2
    with pytest.raises(ValueError, match="share 0"):
        relative_change(results[results.share > 0])
    with pytest.raises(ValueError, match="no 'hr@10'"):
        relative_change(results, "hr@10")


def test_mask_only_counts_what_removing_the_injected_items_alone_is_worth():
    # two users, the same fixed ranking 1 > 2 > 3 > 4 (item 0 is both users' training click).
    # user 0's answer is 4: outside the top 3 until an injected item (one of 1, 2, 3) is taken
    # off the list; user 1's answer is 1: a hit either way. Recall@3 goes from 0.5 to 1: +100 %
    from tutorial_lib.analysis.robustness import mask_only

    train = sp.csr_matrix(np.array([[1, 0, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=np.float32))
    test = sp.csr_matrix(np.array([[0, 0, 0, 0, 1], [0, 1, 0, 0, 0]], dtype=np.float32))
    data = InteractionData(train, sp.csr_matrix((2, 5), dtype=np.float32), test)

    class Fixed:
        def score(self, data, users, split="test"):
            return torch.tensor([[9.0, 4.0, 3.0, 2.0, 1.0]]).repeat(len(users), 1)

    table = mask_only(data, {"fixed": Fixed()}, shares=(0.0, 1.0), seeds=(0, 1, 2), metric="recall@3")
    assert table["mask_only_%"].tolist() == [0.0, 100.0]
    per_seed = mask_only(data, {("fixed", 0): Fixed(), ("fixed", 1): Fixed()}, shares=(1.0,), metric="recall@3")
    assert per_seed["mask_only_%"].tolist() == [100.0]
