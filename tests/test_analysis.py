"""What the figures show, computed: trajectories, noise ranks, targets, HR/NDCG by reverse step
(through ``metrics``), diversity, inference sweeps, costs. Each helper leaves a model's
train/eval mode as it found it, so a training loop afterwards keeps its dropout."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tutorial_lib import analysis, metrics, sequences
from tutorial_lib.models.diffrec import DiffRec
from tutorial_lib.models.diffurec import DiffuRec
from tutorial_lib.models.seqdiffrec import SeqDiffRec
from tutorial_lib.models.tdiffrec import TDiffRec


@pytest.fixture(scope="module")
def loo():
    return sequences.loo_synthetic(n_users=60, n_items=80, interactions_per_user=8, seed=0)[0]


def test_analysis_never_imports_matplotlib():
    import subprocess
    import sys

    code = "import sys, tutorial_lib.analysis; print('matplotlib' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip() == "False", run.stdout + run.stderr[-2000:]


def test_trajectory_top_k_never_lists_seen_items(synthetic):
    data, truth = synthetic
    model = DiffRec(data.n_items, dims=[16], T=4).eval()
    traj = analysis.denoising_trajectory(model, data, 0, truth)
    listed = analysis.top_k(traj, traj.T, k=data.n_items)
    assert len(listed) == data.n_items - len(np.unique(traj.train))
    assert all(np.isfinite(score) for _, score, _ in listed)
    with pytest.raises(ValueError, match="unknown split"):
        analysis.denoising_trajectory(model, data, 0, truth, split="train")


def test_noise_rank_is_chance_at_the_input_and_follows_the_scores():
    traj = analysis.Trajectory(user=0, states=np.array([[1.0, 1.0, 1.0, 0.0], [0.9, 0.8, 0.1, 0.5]]),
                               order=np.arange(4), train=np.array([0, 1, 2]), noise=np.array([2]),
                               held_out=np.array([3]), ordered_by="score")
    assert analysis.noise_rank(traj).tolist() == [50.0, 100.0]     # tied clicks, then below both


def test_noise_rank_of_any_scores_matches_the_chain_and_checks_its_input(synthetic):
    assert analysis.click_percentile(np.array([0.9, 0.8, 0.1, 0.5]), np.array([0, 1, 2]), np.array([2])) == 100.0
    assert analysis.click_percentile(np.array([0.95, 0.8, 0.9]), np.array([0, 1, 2]), np.array([0])) == 0.0
    assert np.isnan(analysis.click_percentile(np.ones(3), np.array([0, 1]), np.array([], dtype=int)))
    data, truth = synthetic
    model = DiffRec(data.n_items, dims=[16], T=4).eval()
    users = np.flatnonzero(np.diff(truth.noise.indptr) > 0)[:5]
    with torch.no_grad():
        scores = model.predict(model.input_matrix(data, users))
    chain = analysis.mean_noise_rank(model, data, truth, users)[-1]
    assert analysis.scores_noise_rank(scores, data, truth, users) == pytest.approx(chain)
    assert analysis.scores_noise_rank(-scores, data, truth, users) == pytest.approx(100 - chain)   # order flips
    with pytest.raises(ValueError, match="shape"):
        analysis.scores_noise_rank(scores[:, :-1], data, truth, users)


def test_interest_shares_split_the_top_k_by_the_true_interests(synthetic):
    data, truth = synthetic
    users = np.arange(20)
    late, early = truth.user_clusters[users, -1], truth.user_clusters[users, 0]
    clusters = truth.item_clusters[None, :]
    rng = np.random.default_rng(0)
    noise = rng.random((len(users), data.n_items)) * 0.1
    # items of the late interest first, then the early one, then the rest
    ranked = 2.0 * (clusters == late[:, None]) + 1.0 * (clusters == early[:, None]) + noise
    history = (data.train + data.valid)[users].toarray() > 0
    k = int(min(((clusters == late[:, None]) & ~history).sum(axis=1).min(), 20))
    assert k >= 5
    assert analysis.interest_shares(ranked, data, truth, users, k=k) == pytest.approx(
        {"late": 1.0, "early": 0.0, "other": 0.0})
    flipped = 2.0 * (clusters == early[:, None]) + 1.0 * (clusters == late[:, None]) + noise
    assert analysis.interest_shares(torch.as_tensor(flipped), data, truth, users, k=k)["early"] == pytest.approx(1.0)
    outside = -ranked                                  # the two interests last: the top k lie outside them
    assert analysis.interest_shares(outside, data, truth, users, k=k)["other"] == pytest.approx(1.0)
    shares = analysis.interest_shares(noise, data, truth, users, k=20)
    assert sum(shares.values()) == pytest.approx(1.0)


def test_interest_shares_mask_the_history_as_the_evaluation_does(synthetic):
    data, truth = synthetic
    users = np.arange(10)
    for split, history in (("test", data.train + data.valid), ("valid", data.train)):
        seen = history[users].toarray() > 0
        # the seen items score highest, and they all belong to the late interest where the
        # masking is missing: a leak would show as a late share above the unseen items' share
        late = truth.item_clusters[None, :] == truth.user_clusters[users, -1:]
        scores = np.where(seen & late, 10.0, 0.0) + np.where(~seen & ~late, 5.0, 0.0)
        shares = analysis.interest_shares(scores, data, truth, users, k=5, split=split)
        assert shares["late"] == 0.0, split
    with pytest.raises(ValueError, match="shape"):
        analysis.interest_shares(np.zeros((3, data.n_items)), data, truth, users)
    with pytest.raises(ValueError, match="split"):
        analysis.interest_shares(np.zeros((10, data.n_items)), data, truth, users, split="train")
    with pytest.raises(ValueError, match="k must"):
        analysis.interest_shares(np.zeros((10, data.n_items)), data, truth, users, k=0)


def test_recommend_never_lists_seen_items(synthetic):
    data, _ = synthetic
    model = TDiffRec(data.n_items, dims=[16], T=4)
    row = torch.as_tensor(data.train[0].toarray()[0], dtype=torch.float32)
    top = analysis.recommend(model, row, data.train[0].indices, k=10 * data.n_items)
    assert len(top) == data.n_items - data.train[0].nnz and not set(top) & set(data.train[0].indices)


def test_held_out_targets_need_one_item_per_user(loo):
    assert analysis.held_out_targets(loo, [0, 1, 2]).shape == (3,)
    broken = loo.test.tolil()
    broken[1, :] = 0
    loo_broken = type(loo)(train=loo.train, valid=loo.valid, test=broken.tocsr(), sequences=loo.sequences)
    with pytest.raises(ValueError, match="1 users have not exactly one test item .*user 1 with 0"):
        analysis.held_out_targets(loo_broken, [0, 1, 2])
    with pytest.raises(ValueError, match="out of range"):      # -2 must not give user 58's target
        analysis.held_out_targets(loo, [-2])


def test_rank_by_steps_last_step_is_diffurecs_evaluation(loo):
    # the last x0_hat is the chain's output: HR/NDCG@10 after T steps are what metrics.evaluate
    # gives for the same seeded scores (history not masked, DiffuRec's protocol)
    torch.manual_seed(0)
    model = DiffuRec(loo.n_items, hidden=16, n_blocks=1, heads=2, T=4).eval()
    users = list(range(40))
    by_step = analysis.rank_by_step(model, loo, users, ks=(10, 20), seed=3)
    assert by_step["step"].tolist() == [1, 2, 3, 4] and set(by_step["users"]) == {40}
    gen = torch.Generator().manual_seed(3)
    scores = model.score(loo, torch.as_tensor(users), "test", generator=gen)
    want = metrics.evaluate(lambda u: scores[u], loo, "test", ks=(10, 20), mask_history=False, users=users)
    for name in ("hr@10", "ndcg@10", "hr@20", "ndcg@20"):
        assert by_step[name].iloc[-1] == pytest.approx(want[name]), name


def test_reverse_path_ranks_the_target_by_dot_product(loo):
    model = DiffuRec(loo.n_items, hidden=16, n_blocks=1, heads=2, T=4).eval()
    path = analysis.reverse_path(model, loo, 0)
    s = path["scores"]
    want = [int((row > row[path["target"]]).sum()) + 1 for row in s]
    assert path["target_rank"].tolist() == want and s.shape == (4, loo.n_items)


def test_sample_diversity_takes_a_baseline(loo):
    from tutorial_lib.models.popularity import Popularity
    model = DiffuRec(loo.n_items, hidden=16, n_blocks=1, heads=2, T=4).eval()
    table = analysis.sample_diversity(model, loo, range(3), n_samples=2, k=5, baseline=Popularity().fit(loo))
    assert list(table["model"].unique()) == ["DiffuRec", "Popularity"]
    diffurec = table[table.model == "DiffuRec"]
    assert ((diffurec["distinct"] >= 5) & (diffurec["distinct"] <= 10)).all()
    assert (diffurec["hit_any"] >= diffurec["hit_one"]).all()


def test_inference_sweep_evaluates_each_setting_once(loo):
    model = SeqDiffRec(loo.n_items, hidden=16, max_len=10, n_layers=1, n_heads=2, T=8).eval()
    sweep = analysis.inference_sweep(model, loo, start_steps=[8], step_counts=[1], k=10)
    again = analysis.inference_sweep(model, loo, start_steps=[8], step_counts=[1], k=10, progress=True)
    assert len(sweep) == 1 and sweep["hr@10"].tolist() == again["hr@10"].tolist()


def test_inference_sweep_on_validation_and_on_a_full_grid(loo):
    from tutorial_lib.metrics import evaluate
    model = SeqDiffRec(loo.n_items, hidden=16, max_len=10, n_layers=1, n_heads=2, T=8).eval()
    valid = analysis.inference_sweep(model, loo, start_steps=[4, 8], step_counts=[1, 2, 8], split="valid", grid="full")
    # the cross (4, 1), (8, 1), (8, 2), (8, 8) and the rest of the grid with K <= s: (4, 2)
    assert list(zip(valid.start_step, valid.steps)) == [(4, 1), (8, 1), (8, 2), (8, 8), (4, 2)]
    assert valid.attrs["split"] == "valid"
    want = evaluate(lambda u: model.score(loo, u, "valid", start_step=4, inference_steps=2), loo, "valid",
                    ks=(10,), mask_history=False)["hr@10"]
    assert valid.query("start_step == 4 and steps == 2")["hr@10"].item() == want   # the validation split's own
    n_valid = evaluate(lambda u: model.score(loo, u, "valid"), loo, "valid", ks=(10,), mask_history=False)["n_users"]
    assert (valid["users"] == n_valid).all()                                        # the band's n
    test = analysis.inference_sweep(model, loo, start_steps=[4, 8], step_counts=[1, 2, 8])
    assert len(test) == 4 and test.attrs["split"] == "test"                        # the cross by default
    with pytest.raises(ValueError, match="split must be 'valid' or 'test'"):
        analysis.inference_sweep(model, loo, start_steps=[4], split="train")
    with pytest.raises(ValueError, match="grid must be 'cross' or 'full'"):
        analysis.inference_sweep(model, loo, start_steps=[4], grid="all")


def test_binomial_band():
    low, high = analysis.binomial_band(0.5, 100)
    assert (low, high) == pytest.approx((0.5 - 0.098, 0.5 + 0.098))
    low, high = analysis.binomial_band(np.array([0.0, 0.02]), np.array([50, 50]))
    assert low.tolist() == [0.0, 0.0] and high[1] == pytest.approx(0.02 + 1.96 * np.sqrt(0.02 * 0.98 / 50))
    with pytest.raises(ValueError, match="positive number of users"):
        analysis.binomial_band(0.5, 0)


def test_training_cost_counts_the_weights_once_and_keeps_the_mode():
    class TwoLayers(torch.nn.Module):                 # autograd saves the 1000 x 1000 weight too
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(1000, 1000)

        def loss(self, x):
            return self.lin(torch.tanh(self.lin(x))).pow(2).mean()

    model = TwoLayers().eval()
    cost = analysis.training_cost(model, torch.randn(1, 1000))
    assert cost["weights_mb"] == pytest.approx(8 * 1_001_000 / 2 ** 20)
    assert cost["activations_mb"] < 0.05            # a few 1000-wide rows, not the 3.8 MB weight
    assert not model.training and model.lin.weight.grad is None


def test_parameter_table_counts_each_part():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    table = analysis.parameter_table({"mlp": model})
    assert table[["part", "parameters"]].values.tolist() == [["0", 8], ["2", 3]]


def test_helpers_leave_the_models_mode_as_they_found_it(loo, synthetic):
    from tutorial_lib.models.sasrec import SASRec
    torch.manual_seed(0)
    diffurec = DiffuRec(loo.n_items, hidden=16, n_blocks=1, heads=2, T=4).train()
    sasrec = SASRec(loo.n_items, hidden=16, n_blocks=1).train()
    seqdiffrec = SeqDiffRec(loo.n_items, hidden=16, max_len=10, n_layers=1, T=10).train()
    data, truth = synthetic
    diffrec = DiffRec(data.n_items, dims=[16], T=4).train()
    analysis.reverse_path(diffurec, loo, 0)
    analysis.rank_by_step(diffurec, loo, range(3))
    analysis.sample_diversity(diffurec, loo, range(3), n_samples=2, baseline=sasrec)
    analysis.inference_sweep(seqdiffrec, loo, start_steps=[5])
    analysis.user_probabilities(seqdiffrec, loo, 0, 5, 1)
    analysis.denoising_trajectories(diffrec, data, [0, 1], truth)
    for model in (diffurec, sasrec, seqdiffrec, diffrec):      # a training loop afterwards keeps dropout
        assert all(m.training for m in model.modules())
    seqdiffrec.eval()
    part = next(seqdiffrec.children()).train()                 # a mixed state comes back as it was
    analysis.user_probabilities(seqdiffrec, loo, 0, 5, 1)
    assert not seqdiffrec.training and part.training
