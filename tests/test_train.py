"""The training loop: learns, stops early, restores the best epoch, resumes exactly."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from tutorial_lib.data import InteractionData
from tutorial_lib.metrics import evaluate
from tutorial_lib.train import History, fit
from tutorial_lib.utils import to_device

N_USERS, N_ITEMS, N_GROUPS = 80, 100, 4


def make_data(train, valid, test):
    """An InteractionData from 0/1 arrays."""
    return InteractionData(train=train, valid=valid, test=test, name="blocks")


@pytest.fixture(scope="module")
def blocks():
    """Users of group g like the items of group g: 16 of its 25 items, split 10 / 3 / 3."""
    rng = np.random.default_rng(0)
    split = np.zeros((3, N_USERS, N_ITEMS))
    size = N_ITEMS // N_GROUPS
    for u in range(N_USERS):
        g = u % N_GROUPS
        items = g * size + rng.permutation(size)[:16]
        split[0, u, items[:10]] = split[1, u, items[10:13]] = split[2, u, items[13:]] = 1
    return make_data(*split)


class ToyMF(torch.nn.Module):
    """Matrix factorisation, BCE over each user's whole training row (the model protocol)."""

    def __init__(self, n_users=N_USERS, n_items=N_ITEMS, dim=8, flip=False, dropout=0.2):
        super().__init__()
        self.user = torch.nn.Embedding(n_users, dim)
        self.item = torch.nn.Embedding(n_items, dim)
        self.dropout = torch.nn.Dropout(dropout)
        self.flip = flip                          # learn the opposite: metrics get worse
        self.steps, self.epochs_seen = [], []

    def batches(self, data, batch_size, generator):
        order = torch.randperm(data.n_users, generator=generator)
        for users in order.split(batch_size):
            yield users, torch.as_tensor(data.train[users.numpy()].toarray())

    def loss(self, batch):
        users, rows = batch
        logits = self.dropout(self.user(users)) @ self.item.weight.T
        target = 1 - rows if self.flip else rows
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, target)

    def score(self, data, users, split="valid"):
        return self.user(users) @ self.item.weight.T

    def on_step_end(self, step):
        self.steps.append(step)

    def on_epoch_end(self, epoch):
        self.epochs_seen.append(epoch)


def new_model(**kw):
    torch.manual_seed(1)
    return ToyMF(**kw)


FAST = dict(batch_size=16, eval_every=1, device="cpu", progress=False, ks=(10,), metric="recall@10")


def test_fit_learns_beyond_a_random_baseline(blocks):
    g = torch.Generator().manual_seed(0)
    random = evaluate(lambda u: torch.rand(len(u), N_ITEMS, generator=g), blocks, "valid", ks=(10,))
    model = new_model()
    history = fit(model, blocks, epochs=10, lr=0.2, **FAST)
    assert history.best_valid["recall@10"] > 3 * random["recall@10"]
    assert history.train_loss[-1] < history.train_loss[0]
    # the model ends with the best weights: re-evaluating gives the best validation numbers
    model.eval()
    again = evaluate(lambda u: model.score(blocks, u), blocks, "valid", ks=(10,))
    assert again == pytest.approx(history.best_valid)
    assert history.best_test == dict(history.test)[history.best_epoch]
    assert model.epochs_seen == list(range(1, 11)) and model.steps[-1] == 10 * 5   # 80 / 16


def test_best_epoch_is_restored_not_the_last(blocks):
    snapshots = {}
    model = new_model(flip=True)                  # gets worse with every epoch
    model.on_epoch_end = lambda e: snapshots.__setitem__(
        e, {k: v.clone() for k, v in model.state_dict().items()})
    history = fit(model, blocks, epochs=6, lr=0.05, patience=None, **FAST)
    assert history.epochs == 6 and history.best_epoch < 6
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[history.best_epoch][k]), k
    assert not torch.equal(model.item.weight, snapshots[6]["item.weight"])


def test_fit_returns_the_model_in_eval_mode(blocks):
    model = new_model()
    fit(model, blocks, epochs=2, **FAST)
    assert not model.training


def test_early_stopping_stops_after_patience_epochs_without_improvement(blocks):
    model = new_model()
    history = fit(model, blocks, epochs=50, lr=0.0, patience=3, **FAST)   # lr 0: never improves
    assert history.best_epoch == 1
    assert history.epochs == 4 and history.stopped_early
    assert [e for e, _ in history.valid] == [1, 2, 3, 4]
    history = fit(new_model(), blocks, epochs=50, lr=0.0, patience=3, **FAST | {"eval_every": 5})
    # checked at evaluations only: best 5, still not better at 10 (10 - 5 >= 3): stop there
    assert history.epochs == 10 and [e for e, _ in history.valid] == [5, 10]


def without_timing(history) -> dict:
    """A History as a dict minus its wall-clock fields (which differ between runs)."""
    timing = {"train_seconds", "eval_seconds", "seconds_per_epoch"}
    return {k: v for k, v in history.to_dict().items() if k not in timing}


def test_checkpoint_resume_matches_an_uninterrupted_run(blocks, tmp_path):
    args = dict(epochs=8, lr=0.05, **FAST | {"eval_every": 2})
    straight = new_model()
    h_straight = fit(straight, blocks, checkpoint=tmp_path / "a.pt", **args)

    crashing = new_model()

    def crash(epoch):
        if epoch == 5:
            raise KeyboardInterrupt("simulated crash")
    crashing.on_epoch_end = crash
    with pytest.raises(KeyboardInterrupt):
        fit(crashing, blocks, checkpoint=tmp_path / "b.pt", **args)
    ckpt = torch.load(tmp_path / "b.pt", weights_only=True)           # plain tensors / containers
    assert ckpt["epoch"] == 4 and not ckpt["finished"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt"]  # no stray .tmp

    resumed = ToyMF()                                                   # other initial weights
    h_resumed = fit(resumed, blocks, checkpoint=tmp_path / "b.pt", resume=True, **args)
    for k, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k               # best weights
    last_a = torch.load(tmp_path / "a.pt", weights_only=True)
    last_b = torch.load(tmp_path / "b.pt", weights_only=True)
    for k, v in last_a["model"].items():
        assert torch.equal(v, last_b["model"][k]), k                    # last weights too
    assert without_timing(h_straight) == without_timing(h_resumed)
    # resuming a finished run trains nothing more and returns the same history
    again = ToyMF()
    h_again = fit(again, blocks, checkpoint=tmp_path / "b.pt", resume=True, **args)
    assert without_timing(h_again) == without_timing(h_straight) and again.epochs_seen == []
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in straight.state_dict().items())


def test_every_checkpoint_records_checkpoint_info(blocks, tmp_path):
    # a run killed between two saves (SIGKILL: no handler runs) leaves the last save; it must
    # already say what built the model and on which data, so --resume can check it
    info = {"model": "toy", "n_users": N_USERS, "data_fingerprint": "abc"}
    model, seen = new_model(), []

    def look(epoch):                     # the file as a kill after this epoch would leave it
        if (tmp_path / "c.pt").exists():
            seen.append((epoch, torch.load(tmp_path / "c.pt", weights_only=True).get("recipe")))
    model.on_epoch_end = look
    fit(model, blocks, epochs=3, lr=0.05, checkpoint=tmp_path / "c.pt", checkpoint_info=info, **FAST)
    assert seen == [(2, info), (3, info)]
    assert torch.load(tmp_path / "c.pt", weights_only=True)["recipe"] == info
    fit(new_model(), blocks, epochs=1, lr=0.05, checkpoint=tmp_path / "d.pt", **FAST)
    assert "recipe" not in torch.load(tmp_path / "d.pt", weights_only=True)


def test_an_interrupted_fit_keeps_the_best_weights_and_the_history(blocks, tmp_path, capsys):
    # the notebook's stop button raises KeyboardInterrupt mid-epoch: the exception goes on up
    # (a "run all" stops), but the model holds the best weights so far, in eval mode, and the
    # History so far rides on the exception
    args = dict(epochs=8, lr=0.05, **FAST | {"eval_every": 2})
    model, at_stop = new_model(), {}

    def stop_button(step):
        if step == 5 * 5 + 2:                     # 5 batches per epoch: during epoch 6
            at_stop.update({k: v.clone() for k, v in model.state_dict().items()})
            raise KeyboardInterrupt
    model.on_step_end = stop_button
    with pytest.raises(KeyboardInterrupt) as err:
        fit(model, blocks, checkpoint=tmp_path / "i.pt", **args)
    history = err.value.history
    assert history.epochs == 5 and [e for e, _ in history.valid] == [2, 4]
    best = torch.load(tmp_path / "i.pt", weights_only=True)["best_model"]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in best.items())
    assert not model.training
    said = capsys.readouterr()
    assert f"best weights so far (epoch {history.best_epoch}" in said.out + said.err
    assert "resume=True" in said.out + said.err and "after epoch 4" in said.out + said.err
    # training went on after the best epoch: the weights at the stop were not the best ones
    assert not all(torch.equal(v, model.state_dict()[k]) for k, v in at_stop.items())

    # before any evaluation there is nothing better to restore: the weights stay, in eval mode
    early = new_model()

    def stop_early(step):
        if step == 3:
            raise KeyboardInterrupt
    early.on_step_end = stop_early
    with pytest.raises(KeyboardInterrupt) as err:            # the old checkpoint is another run's
        fit(early, blocks, checkpoint=tmp_path / "i.pt", **args)
    assert err.value.history.epochs == 0 and not early.training
    said = capsys.readouterr()
    assert "no evaluation ran yet" in said.out + said.err and "resume" not in said.out + said.err


def test_a_second_stop_while_restoring_still_raises_the_first_with_its_history(blocks, monkeypatch):
    # a second press of the stop button while the best weights are restored must not replace
    # the first interrupt, which carries the History
    import tutorial_lib.train as train

    def second_stop(model, best_state):
        raise KeyboardInterrupt("second")
    monkeypatch.setattr(train, "_restore_best", second_stop)
    model = new_model()

    def first_stop(step):
        if step == 12:
            raise KeyboardInterrupt("first")
    model.on_step_end = first_stop
    with pytest.raises(KeyboardInterrupt, match="first") as err:
        fit(model, blocks, epochs=8, **FAST | {"eval_every": 2})
    assert err.value.history.epochs == 2 and [e for e, _ in err.value.history.valid] == [2]


def test_a_stop_during_the_test_pass_keeps_the_new_best(blocks):
    # validation improved at epoch 4, then the test pass was interrupted: epoch 4 is the best
    model, calls = new_model(), []
    score = model.score

    def score_then_stop(data, users, split="valid"):
        calls.append(split)
        if split == "test" and calls.count("test") == 2:
            raise KeyboardInterrupt
        return score(data, users, split)
    model.score = score_then_stop
    with pytest.raises(KeyboardInterrupt) as err:
        fit(model, blocks, epochs=8, lr=0.05, **FAST | {"eval_every": 2})
    history = err.value.history
    assert [e for e, _ in history.valid] == [2, 4] and [e for e, _ in history.test] == [2]
    assert history.valid[1][1]["recall@10"] > history.valid[0][1]["recall@10"]    # it did improve
    assert history.best_epoch == 4 and history.best_test == {}


def test_an_error_that_refuses_attributes_still_goes_up_unchanged(blocks):
    class Frozen(Exception):
        def __setattr__(self, name, value):
            raise AttributeError("frozen")
    model = new_model()

    def fail(step):
        raise Frozen("the user's own error")
    model.on_step_end = fail
    with pytest.raises(Frozen, match="the user's own error"):
        fit(model, blocks, epochs=2, lr=0.05, **FAST)
    assert not model.training


def test_resume_after_early_stop_stays_stopped_and_a_finished_run_trains_on(blocks, tmp_path):
    stopped = fit(new_model(), blocks, epochs=50, lr=0.0, patience=3, checkpoint=tmp_path / "s.pt", **FAST)
    assert stopped.stopped_early and stopped.epochs == 4
    again = ToyMF()
    h = fit(again, blocks, epochs=50, lr=0.0, patience=3, checkpoint=tmp_path / "s.pt", resume=True, **FAST)
    assert again.epochs_seen == [] and without_timing(h) == without_timing(stopped)
    # a run that reached its epochs goes on to a larger number, from where it ended
    args = dict(lr=0.05, **FAST | {"eval_every": 2})
    straight = fit(new_model(), blocks, epochs=6, **args)
    fit(new_model(), blocks, epochs=4, checkpoint=tmp_path / "f.pt", **args)
    more = ToyMF()
    h = fit(more, blocks, epochs=6, checkpoint=tmp_path / "f.pt", resume=True, **args)
    assert more.epochs_seen == [5, 6]
    assert without_timing(h) == without_timing(straight)


def test_time_limit_pauses_and_resume_continues_exactly(blocks, tmp_path):
    # a run split into one-epoch pieces by time_limit=0 ends as the uninterrupted run does
    args = dict(epochs=7, lr=0.05, **FAST | {"eval_every": 3})
    straight = new_model()
    h_straight = fit(straight, blocks, **args)
    pieces, h = 0, None
    while h is None or h.paused:
        model = ToyMF() if pieces else new_model()            # later calls: weights from the file
        h = fit(model, blocks, checkpoint=tmp_path / "p.pt", resume=pieces > 0, time_limit=0, **args)
        pieces += 1
        assert h.epochs == pieces                              # one epoch per call
    assert pieces == 7 and not h.paused
    assert without_timing(h) == without_timing(h_straight)
    with pytest.raises(ValueError, match="checkpoint"):
        fit(ToyMF(), blocks, time_limit=10, **args)


def test_resuming_a_paused_run_at_its_own_epoch_evaluates_it(blocks, tmp_path):
    # paused after epoch 1 of 6 before any evaluation; resumed with epochs=1 (no more training)
    args = dict(lr=0.05, checkpoint=tmp_path / "p.pt", **FAST | {"eval_every": 3})
    h = fit(new_model(), blocks, epochs=6, time_limit=0, **args)
    assert h.paused and h.epochs == 1 and h.valid == []
    model = ToyMF()
    h = fit(model, blocks, epochs=1, resume=True, **args)
    assert not h.paused                                    # not the checkpoint's stale flag
    assert [e for e, _ in h.valid] == [1] and h.best_epoch == 1 and h.best_test
    assert h.best_valid == evaluate(lambda u: model.score(blocks, u), blocks, "valid", ks=(10,))
    again = fit(ToyMF(), blocks, epochs=1, resume=True, **args)
    assert [e for e, _ in again.valid] == [1]              # evaluated once, not once per call


def test_history_is_json_able_and_plots(blocks):
    import matplotlib
    matplotlib.use("Agg")
    history = fit(new_model(), blocks, epochs=3, **FAST | {"eval_every": 2, "test": True})
    assert [e for e, _ in history.valid] == [e for e, _ in history.test] == [2, 3]  # + the last
    d = json.loads(json.dumps(history.to_dict()))
    assert d["best_epoch"] == history.best_epoch and len(d["train_loss"]) == 3
    assert History.from_dict(d).valid == history.valid
    assert history.seconds_per_epoch > 0 and history.device == "cpu"
    fig = history.plot()
    assert len(fig.axes) == 2
    assert len(history.plot("recall@10").axes[1].lines) == 2 + 1     # valid, test, best-epoch line
    with pytest.raises(ValueError, match=r"no 'recall@50' in this History; it has \['hr@10'"):
        history.plot(["recall@50"])
    with pytest.raises(ValueError, match="two Axes"):
        history.plot(ax=matplotlib.pyplot.subplots()[1])


def test_history_plot_starts_at_zero_and_keeps_the_legend_off_the_curves():
    import matplotlib
    matplotlib.use("Agg")
    valid = [(e, {"recall@20": 0.30 + 0.004 * e, "ndcg@20": 0.25 + 0.003 * e}) for e in (5, 10, 15, 20)]
    test = [(e, {"recall@20": 0.29 + 0.004 * e, "ndcg@20": 0.24 + 0.003 * e}) for e in (5, 10, 15, 20)]
    history = History(epochs=20, train_loss=[1 / e for e in range(1, 21)], valid=valid, test=test, best_epoch=20)
    fig = history.plot(["recall@20", "ndcg@20"])
    loss_ax, eval_ax = fig.axes
    bottom, top = eval_ax.get_ylim()
    assert bottom == 0 and top >= 0.30 + 0.004 * 20           # from 0, every point inside
    fig.canvas.draw()
    legend = eval_ax.get_legend().get_window_extent()
    assert len(eval_ax.get_legend().get_texts()) == 4 + 1      # 2 metrics x 2 splits, best epoch
    for ax in (loss_ax, eval_ax):                              # over neither panel's data area
        assert not legend.overlaps(ax.get_window_extent())
    figure = fig.get_window_extent()
    assert figure.x0 <= legend.x0 and legend.x1 <= figure.x1 + 1  # and not cut off by the figure's edge


def test_test_split_evaluated_only_when_validation_improves(blocks):
    history = fit(new_model(), blocks, epochs=6, **FAST | {"eval_every": 1, "test": "best"})
    improved, best = [], -1.0
    for e, m in history.valid:
        if m["recall@10"] > best:
            improved.append(e)
            best = m["recall@10"]
    assert [e for e, _ in history.test] == improved
    assert history.best_test == history.test[-1][1]


def test_progress_as_a_number_prints_a_line_per_period_and_no_bar(blocks, capsys):
    fit(new_model(), blocks, epochs=4, **FAST | {"progress": 2})
    said = capsys.readouterr()
    lines = [ln for ln in said.out.splitlines() if ln.startswith("epoch")]
    assert [ln.split()[1] for ln in lines] == ["2", "4"] and "recall@10" in lines[0]
    assert all(ln.split()[2] == "train" and float(ln.split()[3]) >= 0 and ln.split()[4] == "s" for ln in lines)
    assert "epochs:" not in said.err                                   # no tqdm bar
    fit(new_model(), blocks, epochs=2, **FAST | {"progress": True})
    assert "epochs:" in capsys.readouterr().err


def test_optimizer_choices(blocks):
    model = new_model()
    sgd = torch.optim.SGD(model.parameters(), lr=0.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, blocks, epochs=1, optimizer=sgd, **FAST)                 # an instance is used as is
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    model = new_model()
    calls = []
    model.configure_optimizers = lambda lr, wd: calls.append((lr, wd)) or torch.optim.Adam(
        model.parameters(), lr=lr)
    fit(model, blocks, epochs=1, lr=0.01, weight_decay=0.1, **FAST)
    assert calls == [(0.01, 0.1)]


def test_to_device_moves_nested_batches():
    batch = {"a": torch.ones(2), "b": (torch.zeros(1), [torch.ones(1)]), "n": 3}
    moved = to_device(batch, torch.device("meta"))
    assert moved["a"].device.type == moved["b"][1][0].device.type == "meta"
    assert isinstance(moved["b"], tuple) and moved["n"] == 3
    from collections import namedtuple
    Batch = namedtuple("Batch", "x users")
    moved = to_device(Batch(torch.ones(2), None), torch.device("meta"))
    assert type(moved) is Batch and moved.x.device.type == "meta" and moved.users is None


class ClosedForm(torch.nn.Module):
    def fit(self, data):
        return self


@pytest.mark.parametrize("kw, error, match", [
    (dict(epochs=0), ValueError, "epochs"),
    (dict(epochs=2, metric="recall@50"), ValueError, "recall@50"),
    (dict(epochs=2, optimizer="sgd"), ValueError, "unknown optimizer"),
    (dict(epochs=2, eval_every=0), ValueError, "eval_every"),
    (dict(epochs=2, resume=True), ValueError, "checkpoint"),
    (dict(epochs=2, patience=0), ValueError, "patience must be a positive integer or None, got 0"),
    (dict(epochs=2, batch_size=0), ValueError, "batch_size must be a positive integer, got 0"),
    (dict(epochs=2, test=1), ValueError, "test must be True, False or 'best', got 1"),
])
def test_bad_config_raises_clear_errors(blocks, kw, error, match):
    with pytest.raises(error, match=match):
        fit(new_model(), blocks, progress=False, device="cpu", **kw)


def test_closed_form_model_points_to_its_own_fit(blocks):
    with pytest.raises(TypeError, match=r"model\.fit\(data\)"):
        fit(ClosedForm(), blocks, epochs=1)


def test_nan_loss_is_reported(blocks):
    model = new_model()
    with torch.no_grad():
        model.item.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="epoch 1"):
        fit(model, blocks, epochs=1, **FAST)


def test_a_failed_checkpoint_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    from tutorial_lib import checkpoint
    path = tmp_path / "c.pt"
    old_umask = os.umask(0o022)
    try:
        checkpoint.save(path, {"epoch": 1})
    finally:
        os.umask(old_umask)
    assert path.stat().st_mode & 0o777 == 0o644          # as open() makes it, not mkstemp's 0o600

    def full_disk(obj, f):
        f.write(b"partial")
        raise OSError("No space left on device")
    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    with pytest.raises(OSError, match="No space"):
        checkpoint.save(path, {"epoch": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    assert torch.load(path, weights_only=True) == {"epoch": 1}


def test_an_empty_split_is_an_error_before_any_training(blocks):
    import scipy.sparse as sp
    empty = sp.csr_matrix((N_USERS, N_ITEMS), dtype=np.float32)
    no_valid = make_data(blocks.train, empty, blocks.test)
    model = new_model()
    with pytest.raises(ValueError, match="data.valid holds no interaction"):
        fit(model, no_valid, epochs=3, **FAST)
    assert model.steps == []                                    # nothing trained, nothing lost
    no_test = make_data(blocks.train, blocks.valid, empty)
    with pytest.raises(ValueError, match="data.test holds no interaction.*test=False"):
        fit(model, no_test, epochs=3, **FAST)
    h = fit(model, no_test, epochs=2, test=False, **FAST)        # no test split needed then
    assert h.best_valid and not h.best_test


def test_eval_every_none_trains_without_evaluating_and_keeps_the_last_weights(blocks, tmp_path):
    import scipy.sparse as sp
    empty = sp.csr_matrix((N_USERS, N_ITEMS), dtype=np.float32)
    train_only = make_data(blocks.train, empty, empty)
    kw = {**FAST, "eval_every": None}
    model = new_model()
    h = fit(model, train_only, epochs=3, checkpoint=tmp_path / "ck.pt", **kw)
    assert h.epochs == 3 and h.valid == [] and h.test == [] and len(h.train_loss) == 3
    assert not model.training
    ckpt = torch.load(tmp_path / "ck.pt", weights_only=True)
    assert ckpt["epoch"] == 3 and ckpt["finished"]
    last = {k: v.clone() for k, v in model.state_dict().items()}
    again = new_model()
    fit(again, train_only, epochs=2, checkpoint=tmp_path / "ck2.pt", **kw)
    h2 = fit(again, train_only, epochs=3, checkpoint=tmp_path / "ck2.pt", resume=True, **kw)
    assert h2.valid == [] and h2.epochs == 3
    for k, v in again.state_dict().items():                     # the last weights, resumed exactly
        torch.testing.assert_close(v, last[k])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_device_names_an_unavailable_device_however_it_is_given():
    from tutorial_lib.utils import device
    assert device("auto") == torch.device("cpu") and device(torch.device("cpu")) == torch.device("cpu")
    for name in ("cuda", "cuda:1", torch.device("cuda"), torch.device("cuda", 1)):
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            device(name)
    with pytest.raises(ValueError, match="unknown device"):
        device("gpu")


# ------------------------------------------------ what fit passes on, records and seeds

class Recording(ToyMF):
    """ToyMF that records the mode it is scored in, each batch's users and each batch loss."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.scored_in_training, self.batch_users, self.batch_losses = [], [], []

    def batches(self, data, batch_size, generator):
        for users, rows in super().batches(data, batch_size, generator):
            self.batch_users.append(users.tolist())
            yield users, rows

    def loss(self, batch):
        value = super().loss(batch)
        self.batch_losses.append(value.item())
        return value

    def score(self, data, users, split="valid"):
        self.scored_in_training.append(self.training)
        return super().score(data, users, split)


def test_fit_scores_in_eval_mode_and_records_the_mean_batch_loss(blocks):
    torch.manual_seed(1)
    model = Recording()
    h = fit(model, blocks, epochs=2, **FAST)
    assert model.scored_in_training and not any(model.scored_in_training)
    per_epoch = np.array(model.batch_losses).reshape(2, -1).mean(axis=1)      # 5 batches an epoch
    np.testing.assert_allclose(h.train_loss, per_epoch, rtol=1e-6)


def test_fit_passes_lr_weight_decay_and_mask_history_on(blocks, tmp_path):
    model = new_model()
    h = fit(model, blocks, epochs=1, lr=0.03, weight_decay=0.1, mask_history=False,
            checkpoint=tmp_path / "ck.pt", test=False, **FAST)
    group = torch.load(tmp_path / "ck.pt", weights_only=True)["optimizer"]["param_groups"][0]
    assert group["lr"] == 0.03 and group["weight_decay"] == 0.1        # not AdamW's default 0.01
    unmasked = evaluate(lambda u: model.score(blocks, u), blocks, "valid", ks=(10,), mask_history=False)
    masked = evaluate(lambda u: model.score(blocks, u), blocks, "valid", ks=(10,))
    assert h.best_valid == pytest.approx(unmasked) and unmasked != pytest.approx(masked)


def test_with_test_every_epoch_best_test_stays_at_the_best_validation_epoch(blocks):
    h = fit(new_model(flip=True), blocks, epochs=5, lr=0.05, patience=None, test=True, **FAST)
    assert h.best_epoch < 5 and len(h.test) == 5
    assert h.best_test == dict(h.test)[h.best_epoch]


def test_the_seed_decides_the_batch_order(blocks):
    orders = []
    for seed in (0, 0, 1):
        torch.manual_seed(1)
        model = Recording()
        fit(model, blocks, epochs=1, seed=seed, **FAST)
        orders.append(model.batch_users)
    assert orders[0] == orders[1] and orders[0] != orders[2]


def test_a_patience_stop_at_the_last_epoch_is_not_an_early_stop(blocks, tmp_path):
    h = fit(new_model(), blocks, epochs=4, lr=0.0, patience=3, checkpoint=tmp_path / "ck.pt", **FAST)
    assert h.epochs == 4 and not h.stopped_early                        # it ran all its epochs
    h = fit(new_model(), blocks, epochs=6, lr=0.0, patience=3, checkpoint=tmp_path / "ck.pt",
            resume=True, **FAST)
    assert h.epochs == 5 and h.stopped_early                            # so a larger epochs trains on
