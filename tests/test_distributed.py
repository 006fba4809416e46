"""Data-parallel training (tutorial_lib.distributed) in 2 CPU processes with gloo.

One spawn of 2 processes runs every scenario (module fixture); each test compares what a rank
saved with one process training on the same global batches:
* a deterministic model: the same weights (1e-5) whatever the shards, uneven and empty ones
  included, and every rank's StepSampler holds the same losses as one process's;
* DiffRec (noise, t and dropout drawn per rank): test Recall@20 / NDCG@20 within TOLERANCE of
  one process's; SASRec without dropout (deterministic but for float sums and its mean over
  positions, not rows): within 0.02;
* a 2-process DiffRec run in two pieces (checkpoint, resume) equals the uninterrupted one exactly;
* evaluation scored in shares over the ranks equals one process's, for DataParallel.evaluate
  and the sequential models' test pass (cli.run.test_both_protocols).
"""
from __future__ import annotations

import socket
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from tutorial_lib.distributed import DataParallel, bounded_batch, row_view, score_fn
from tutorial_lib.sequences import loo_synthetic
from tutorial_lib.step_sampler import StepSampler
from tutorial_lib.synthetic import make_synthetic
from tutorial_lib.train import fit
from tutorial_lib.utils import seed_everything

WORLD = 2
# DiffRec on 150 users, 4 epochs: 1-process runs with seeds 1..4 reach test Recall@20 0.331-0.385
# (NDCG@20 0.166-0.191), a run's own noise; the 2-process run (0.358) must land within that spread
TOLERANCE = 0.05


class Toy(nn.Module):
    """A linear model with a mean squared error over rows: no randomness in its loss; it records
    per-row losses in an importance StepSampler as DiffRec does."""

    X = torch.linspace(-1, 1, 15 * 4).reshape(15, 4)
    Y = X @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 1)
        self.sampler = StepSampler(3, "importance", history=100)

    def batches(self, data, batch_size, generator=None):
        for idx in torch.randperm(len(self.X), generator=generator).split(batch_size):   # 7, 7, 1 rows
            yield self.X[idx], self.Y[idx]

    def loss(self, batch):
        x, y = batch
        per_row = (self.lin(x).squeeze(1) - y) ** 2
        t, _ = self.sampler.sample(len(y))
        self.sampler.update(t, per_row)
        return per_row.mean()


def toy_run(parallel_on: bool) -> dict:
    model = Toy()
    kw = dict(epochs=3, lr=0.05, batch_size=7, eval_every=None, patience=None, test=False, seed=0, progress=False)
    with DataParallel(model, seed=0) if parallel_on else _nothing() as parallel:
        fit(model, None, parallel=parallel, **kw)
    s = model.sampler
    recorded = torch.cat([s.loss_history[t, :int(s.count[t])] for t in range(s.T)])
    return {"weights": torch.cat([p.detach().reshape(-1) for p in model.parameters()]),
            "recorded": torch.sort(recorded).values, "sampler": s.state()}


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def diffrec_data():
    return make_synthetic(n_users=150, n_items=120, interactions_per_user=12, seed=0)[0]


def diffrec_run(data, epochs: int, seed: int = 1, parallel_on: bool = True, checkpoint=None, resume=False):
    from tutorial_lib.models.diffrec_fast import FastDiffRec

    seed_everything(seed)
    model = FastDiffRec(data.n_items, dims=(32,), T=5)
    with DataParallel(model, seed=seed) if parallel_on else _nothing() as parallel:
        h = fit(model, data, epochs=epochs, lr=1e-2, batch_size=40, eval_every=2, patience=None, seed=seed,
                progress=False, checkpoint=checkpoint, resume=resume, parallel=parallel)
    return {"test": h.best_test, "valid": h.valid, "loss": h.train_loss, "model": model,
            "state": {k: v.clone() for k, v in model.state_dict().items() if torch.is_tensor(v)}}


def sasrec_run(parallel_on: bool = True) -> dict:
    from tutorial_lib.models.sasrec import SASRec

    data = loo_synthetic(n_users=120, n_items=80, interactions_per_user=8, seed=0)[0]
    seed_everything(1)
    model = SASRec(data.n_items, hidden=16, n_blocks=1, heads=1, dropout=0.0, max_len=10)
    with DataParallel(model, seed=1) if parallel_on else _nothing() as parallel:
        h = fit(model, data, epochs=3, lr=5e-3, batch_size=32, optimizer="adam", eval_every=3, patience=None,
                metric="ndcg@10", ks=(5, 10, 20), mask_history=False, test=True, seed=1, progress=False,
                parallel=parallel)
    return {"test": h.best_test, "model": model, "data": data}


def sharded_and_whole(model, data, ks=(10, 20), sequential=False) -> tuple[dict, dict]:
    """Test metrics of ``model`` scored in shares over the ranks, and by this rank alone."""
    from tutorial_lib.cli.run import test_both_protocols
    from tutorial_lib.metrics import evaluate

    parallel = DataParallel(model)
    if sequential:
        alone = SimpleNamespace(size=1, rank=0, budget=parallel.budget)
        return test_both_protocols(model, data, 16, parallel), test_both_protocols(model, data, 16, alone)
    whole = evaluate(lambda u: model.score(data, u, "test"), data, "test", ks=ks, batch_size=16)
    return parallel.evaluate(model, data, "test", ks=ks, batch_size=16), whole


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        data = diffrec_data()
        result = {"toy": toy_run(True), "diffrec": diffrec_run(data, 4), "sasrec": sasrec_run()}
        result["eval"] = sharded_and_whole(result["diffrec"].pop("model"), data)
        result["eval_sequential"] = sharded_and_whole(result["sasrec"].pop("model"), result["sasrec"].pop("data"),
                                                      sequential=True)
        diffrec_run(data, 2, checkpoint=f"{out}/pieces.pt")                       # interrupted here,
        result["pieces"] = diffrec_run(data, 4, checkpoint=f"{out}/pieces.pt", resume=True)   # resumed
        result["pieces"].pop("model")
        torch.save(result, f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """What each of the 2 processes saved."""
    out = tmp_path_factory.mktemp("ddp")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(port, str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def test_deterministic_model_takes_one_process_steps(ranks):
    alone = toy_run(False)
    for r in ranks:
        torch.testing.assert_close(r["toy"]["weights"], alone["weights"], atol=1e-5, rtol=1e-5)
        # every rank's sampler recorded the global batch's 45 losses, the same as one process
        torch.testing.assert_close(r["toy"]["recorded"], alone["recorded"], atol=1e-5, rtol=1e-5)
    assert torch.equal(ranks[0]["toy"]["sampler"], ranks[1]["toy"]["sampler"])


def test_ranks_hold_the_same_model(ranks):
    for key, value in ranks[0]["diffrec"]["state"].items():
        assert torch.equal(value, ranks[1]["diffrec"]["state"][key]), key
    assert ranks[0]["diffrec"]["test"] == ranks[1]["diffrec"]["test"]


def test_diffrec_metrics_match_one_process(ranks):
    alone = diffrec_run(diffrec_data(), 4, parallel_on=False)["test"]
    two = ranks[0]["diffrec"]["test"]
    for key in ("recall@20", "ndcg@20"):
        assert abs(two[key] - alone[key]) <= TOLERANCE, (key, two[key], alone[key])
    assert two["n_users"] == alone["n_users"]               # sharded evaluation saw every user once


def test_sasrec_metrics_match_one_process(ranks):
    alone = sasrec_run(parallel_on=False)["test"]
    two = ranks[0]["sasrec"]["test"]
    for key in ("hr@10", "ndcg@10"):
        assert abs(two[key] - alone[key]) <= 0.02, (key, two[key], alone[key])


def test_sharded_evaluation_equals_one_process(ranks):
    for key in ("eval", "eval_sequential"):
        shared, whole = ranks[0][key]
        assert shared.keys() == whole.keys() and shared == pytest.approx(whole, abs=1e-12), key
        assert ranks[1][key][0] == shared


def test_resumed_run_equals_uninterrupted(ranks):
    straight, pieces = ranks[0]["diffrec"], ranks[0]["pieces"]
    assert pieces["test"] == straight["test"] and pieces["loss"][-2:] == straight["loss"][-2:]
    for key, value in straight["state"].items():
        assert torch.equal(value, pieces["state"][key]), key


def test_score_chunks_stay_under_the_budget():
    """Above the budget each chunk is scored on a view of its users only."""
    data = diffrec_data()
    seen = []

    class Spy:
        def score(self, d, users, split):
            seen.append((d.n_users, len(users)))
            return torch.zeros(len(users), d.n_items)

    budget = 10 * data.n_items                                     # 10 users' rows at a time
    assert bounded_batch(data.n_items, 1024, budget) == 10
    DataParallel(Spy(), budget=budget).evaluate(Spy(), data, "test", batch_size=1024)
    assert seen and max(n * data.n_items for n, _ in seen) <= budget
    view = row_view(data, np.array([3, 7]))
    assert (view.train != data.train[[3, 7]]).nnz == 0 and view.n_items == data.n_items
    assert score_fn(Spy(), data, "test")(torch.arange(4)).shape == (4, data.n_items)   # under it: all data
