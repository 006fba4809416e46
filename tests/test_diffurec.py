"""DiffuRec: the Approximator's shapes, padding, seeded inference, learning, clear errors."""
import pytest
import torch

from tutorial_lib.metrics import evaluate
from tutorial_lib.models.diffurec import Approximator, DiffuRec
from tutorial_lib.models.popularity import Popularity
from tutorial_lib.models.sasrec import SASRec
from tutorial_lib.schedules import get_betas
from tutorial_lib.sequences import SequenceBatches, loo_synthetic
from tutorial_lib.train import fit


@pytest.fixture(scope="module")
def seq_data():
    return loo_synthetic(n_users=300, n_items=200, interactions_per_user=20, seed=0)[0]


def small_model(n_items, **kw):
    torch.manual_seed(0)
    return DiffuRec(n_items, hidden=16, n_blocks=1, heads=2, T=8, **kw)


def test_approximator_shapes_and_bad_x_t():
    f = Approximator(hidden=16, heads=2, n_blocks=2, T=32)
    h, pad = torch.randn(5, 9, 16), torch.zeros(5, 9, dtype=torch.bool)
    pad[:, :3] = True
    out = f(h, pad, torch.randn(5, 16), torch.randint(0, 32, (5,)))
    assert out.shape == (5, 16) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="x_t must have shape"):
        f(h, pad, torch.randn(5, 8), torch.zeros(5, dtype=torch.long))


def test_paper_defaults_use_the_truncated_linear_schedule():
    m = DiffuRec(50)
    assert m.T == 32 and m.hidden == 128 and len(m.approximator.encoder.blocks) == 4
    assert torch.allclose(m.diffusion.betas, get_betas("trunc-linear", 32))
    assert m.diffusion.betas[0].item() == pytest.approx(0.013125)


def test_reverse_trajectory_shapes_and_final_step(seq_data):
    m = small_model(seq_data.n_items).eval()
    w = SequenceBatches(seq_data).inputs[:4]
    x0, states, preds = m.reverse(w, torch.Generator().manual_seed(0), return_trajectory=True)
    assert states.shape == (m.T + 1, 4, 16) and preds.shape == (m.T, 4, 16)
    assert torch.equal(states[-1], x0)
    # the last reverse step (t = 1) returns the Approximator's x0_hat itself
    assert torch.allclose(x0, preds[-1], atol=1e-6)


def test_padding_embedding_never_changes_scores(seq_data):
    m = small_model(seq_data.n_items).eval()
    users = torch.arange(30)
    before = m.score(seq_data, users, "valid")
    with torch.no_grad():
        m.item_emb.weight[0] = 50 * torch.randn(16)                     # the PAD row
    assert torch.allclose(before, m.score(seq_data, users, "valid"), atol=1e-4)


def test_seeded_inference_gives_identical_metrics_twice(seq_data):
    m = small_model(seq_data.n_items).eval()
    run = lambda: evaluate(lambda u: m.score(seq_data, u, "test"), seq_data, "test", ks=(5, 10), batch_size=128)
    assert run() == run()
    users = torch.arange(20)
    first = m.score(seq_data, users, "test")
    assert torch.equal(first, m.score(seq_data, users, "test"))
    m.eval_seed = 1                                      # the noise really is random across seeds
    assert not torch.equal(first, m.score(seq_data, users, "test"))


def test_loss_is_finite_and_trains_the_item_embeddings(seq_data):
    m = small_model(seq_data.n_items)
    batch = next(m.batches(seq_data, 32, torch.Generator().manual_seed(0)))
    loss = m.loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and m.item_emb.weight.grad.abs().sum() > 0


def test_diffurec_beats_popularity_on_synthetic_sequences(seq_data):
    pop = Popularity().fit(seq_data)
    base = evaluate(lambda u: pop.score(seq_data, u, "test"), seq_data, "test", ks=(10,))
    m = DiffuRec(seq_data.n_items, hidden=32, n_blocks=1, heads=2, T=8, emb_dropout=0.1)
    hist = fit(m, seq_data, epochs=8, lr=1e-2, batch_size=128, optimizer="adam",
               eval_every=8, metric="hr@10", ks=(10,), progress=False, seed=0)
    assert hist.best_test["hr@10"] > 3 * base["hr@10"]
    assert hist.best_test["ndcg@10"] > 3 * base["ndcg@10"]


def test_diffurec_bad_input(seq_data):
    with pytest.raises(ValueError, match="n_items"):
        DiffuRec(0)
    with pytest.raises(ValueError, match="unknown schedule"):
        DiffuRec(10, schedule="nope")
    with pytest.raises(ValueError, match="split"):
        small_model(seq_data.n_items).score(seq_data, torch.arange(3), "train")
    model = small_model(seq_data.n_items)
    windows = torch.ones(4, 5, dtype=torch.long)
    with pytest.raises(ValueError, match=r"target ids must be 0-based in \[0, 200\), got min 0 max 200"):
        model.loss((windows, torch.tensor([0, 1, 2, 200])))
    with pytest.raises(ValueError, match=r"target ids .* got min -1"):
        model.loss((windows, torch.tensor([0, 1, 2, -1])))
    with pytest.raises(ValueError, match=r"window ids must be in \[0, 200\]"):
        model.loss((windows * 201, torch.zeros(4, dtype=torch.long)))
    assert model.score(seq_data, torch.zeros(0, dtype=torch.long)).shape == (0, 200)
    model.eval()
    torch.testing.assert_close(model.score(seq_data, 3, "test"), model.score(seq_data, [3], "test"))
    with pytest.raises(ValueError, match="hidden must be an even number >= 2"):    # at once, not at first use
        DiffuRec(10, hidden=15, heads=3)


def test_training_windows_follow_the_data_object_not_its_id(monkeypatch):
    # CPython reuses the id() of a freed object: a cache keyed by id() could hand back the
    # windows of another data set. Simulate the reuse by giving every object the same id.
    import builtins
    model = small_model(200)
    first = loo_synthetic(n_users=40, n_items=200, interactions_per_user=6, seed=1)[0]
    second = loo_synthetic(n_users=40, n_items=200, interactions_per_user=12, seed=2)[0]
    sasrec = SASRec(200, hidden=16, n_blocks=1, heads=2)
    with monkeypatch.context() as m:
        m.setattr(builtins, "id", lambda obj: 0)
        next(model.batches(first, 8))
        n_prefixes = sum(len(x) for x, _ in model.batches(second, 64))
        next(sasrec.batches(first, 8))
        sasrec_windows = torch.cat([x for x, _ in sasrec.batches(second, 64)])
    assert n_prefixes == sum(len(s) - 1 for s in second.sequences if len(s) > 1)
    assert (sasrec_windows != 0).sum() == n_prefixes                # SASRec: s[:-1] of each user


def test_step_lr_as_released():
    m = DiffuRec(10, hidden=8, n_blocks=1, heads=2, T=4, lr_decay_step=100, lr_gamma=0.1)
    opt = m.configure_optimizers(1e-3)
    for epoch, lr in ((1, 1e-3), (99, 1e-3), (100, 1e-4), (250, 1e-5)):
        m.on_epoch_end(epoch)
        assert opt.param_groups[0]["lr"] == pytest.approx(lr)


def test_score_without_users_scores_everyone_and_max_len_is_checked(seq_data):
    model = small_model(seq_data.n_items).eval()
    everyone = model.score(seq_data, None, "valid")
    assert everyone.shape == (seq_data.n_users, seq_data.n_items)
    torch.testing.assert_close(everyone, model.score(seq_data, torch.arange(seq_data.n_users), "valid"))
    with pytest.raises(ValueError, match="max_len must be a positive integer"):
        small_model(10, max_len=2.5)
    with pytest.raises(ValueError, match="left-padded"):
        model.loss((torch.tensor([[5, 7, 0]]), torch.tensor([1])))
