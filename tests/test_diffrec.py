"""DiffRec: the denoiser's layout, bad configurations, learning, resume; FastDiffRec's shortcuts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tutorial_lib.metrics import evaluate
from tutorial_lib.models.diffrec import DiffRec, DiffRecMLP, mlp_dims
from tutorial_lib.models.diffrec_fast import FastDiffRec, InputDropout
from tutorial_lib.models.popularity import Popularity
from tutorial_lib.train import fit

SMALL = {"dims": [64], "T": 5}          # a DiffRec that trains in a second on the synthetic set


@pytest.fixture(scope="module")
def data(synthetic):
    return synthetic[0]


def test_mlp_dims_follow_the_paper():
    # dims=[200, 600]: (I + 10) -> 600 -> 200 -> 600 -> I
    assert mlp_dims(2810, [200, 600]) == ([2810, 600, 200], [200, 600, 2810])
    net = DiffRecMLP(*mlp_dims(50, [8, 16]), emb_size=10)
    shapes = [tuple(layer.weight.shape) for layer in [*net.in_layers, *net.out_layers]]
    assert shapes == [(16, 60), (8, 16), (16, 8), (50, 16)]        # (out, in) per Linear
    out = net(torch.rand(7, 50), torch.randint(0, 5, (7,)))
    assert out.shape == (7, 50)


def test_mlp_has_no_tanh_on_its_output():
    torch.manual_seed(0)
    net = DiffRecMLP([4, 3], [3, 4], dropout=0.0)
    with torch.no_grad():
        net.out_layers[-1].bias.fill_(5.0)          # a tanh at the end would cap outputs at 1
    assert (net(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long)) > 1.5).all()


def test_mlp_step_embedding_matters():
    torch.manual_seed(0)
    net = DiffRecMLP([6, 4], [4, 6], dropout=0.0).eval()
    x = torch.rand(1, 6)
    assert not torch.allclose(net(x, torch.tensor([0])), net(x, torch.tensor([3])))


@pytest.mark.parametrize("kwargs, message", [
    ({"in_dims": [10, 5], "out_dims": [6, 10]}, "out_dims\\[0\\]"),
    ({"in_dims": [10, 5], "out_dims": [5, 9]}, "out_dims\\[-1\\]"),
    ({"in_dims": [10], "out_dims": [10]}, ">= 2 positive integers"),
    ({"in_dims": [10, 5], "out_dims": [5, 10], "emb_size": 3}, "emb_size"),
    ({"in_dims": [10, 5], "out_dims": [5, 10], "dropout": 1.0}, "dropout"),
])
def test_mlp_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DiffRecMLP(**kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"mean_type": "v"}, "mean_type"),
    ({"T": 0}, r"T \(number of diffusion steps\) must be a positive integer"),
    ({"sampling_steps": 41}, "sampling_steps"),
    ({"step_sampling": "greedy"}, "method"),
    ({"noise_schedule": "nope"}, "unknown schedule"),
    ({"noise_min": 0.02, "noise_max": 0.01}, "noise_min < noise_max"),
    ({"dims": [200, 0]}, "positive integers"),
])
def test_diffrec_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DiffRec(100, **kwargs)


def test_linear_schedule_uses_the_noise_settings_as_released():
    # the released code: beta_t linear from noise_scale * noise_min to noise_scale * noise_max
    model = DiffRec(100, noise_schedule="linear", noise_scale=0.1, noise_min=0.01, noise_max=0.05, T=5)
    torch.testing.assert_close(model.diffusion.betas, torch.linspace(0.001, 0.005, 5, dtype=torch.float64))


def test_mlp_rejects_wrong_input_width():
    net = DiffRecMLP([10, 5], [5, 10])
    with pytest.raises(ValueError, match="x_t must have shape"):
        net(torch.rand(2, 11), torch.zeros(2, dtype=torch.long))


def test_data_with_other_item_count_is_an_error(data):
    model = DiffRec(data.n_items + 1, **SMALL)
    with pytest.raises(ValueError, match="items"):
        next(model.batches(data, 10))


def test_batches_cover_every_user_once(data):
    model = DiffRec(data.n_items, **SMALL)
    rows = torch.cat(list(model.batches(data, 128, torch.Generator().manual_seed(0))))
    assert rows.shape == (data.n_users, data.n_items)
    # a permutation of the train rows: same multiset of row sums, same total
    assert rows.sum() == data.train.sum()
    assert sorted(rows.sum(1).tolist()) == sorted(np.asarray(data.train.sum(1)).ravel().tolist())


def test_loss_is_a_finite_scalar_and_feeds_the_sampler(data):
    torch.manual_seed(0)
    model = DiffRec(data.n_items, **SMALL)
    x0 = next(model.batches(data, 64, torch.Generator().manual_seed(0)))
    loss = model.loss(x0)
    assert loss.ndim == 0 and torch.isfinite(loss)
    # each of the T = 5 steps keeps its last 10 losses: 64 draws fill between 5 and 50 slots
    assert 5 <= int(model.sampler.count.sum()) <= 50
    assert (model.sampler.loss_history.sum(1) > 0).sum() == (model.sampler.count > 0).sum()


def test_diffrec_learns_beats_popularity(data):
    pop = Popularity().fit(data)
    pop_recall = evaluate(lambda u: pop.score(data, u), data, "test")["recall@20"]
    model = DiffRec(data.n_items, **SMALL)
    hist = fit(model, data, epochs=10, eval_every=5, batch_size=100, progress=False, seed=0)
    assert hist.train_loss[-1] < hist.train_loss[0]
    # popularity ~0.08 here; DiffRec finds each user's interest clusters (~0.35)
    assert hist.best_test["recall@20"] > 2 * pop_recall


def test_score_equals_the_reverse_chain_from_the_training_row(data):
    torch.manual_seed(0)
    model = DiffRec(data.n_items, **SMALL).eval()
    users = torch.tensor([3, 1, 4])
    x = torch.as_tensor(data.train[users.numpy()].toarray())
    expected = model.diffusion.p_sample_loop(model.denoiser, x, steps=0)
    torch.testing.assert_close(model.score(data, users), expected)
    torch.testing.assert_close(model.score(data, 4), expected[2:])            # one id: a batch of one
    with torch.no_grad():                                                    # no cache: a weight
        model.denoiser.out_layers[-1].bias.add_(1.0)                          # edit shows at once
    assert not torch.allclose(model.score(data, users), expected)


def test_plain_denoiser_uses_torch_dropout_and_the_fast_one_the_rand_mask():
    assert type(DiffRec(30, dims=[8], T=3).denoiser.drop) is torch.nn.Dropout
    assert type(FastDiffRec(30, dims=[8], T=3).denoiser.drop) is InputDropout


def test_fast_diffrec_has_the_same_weights_and_scores_as_the_plain_model(data):
    torch.manual_seed(0)
    plain = DiffRec(data.n_items, **SMALL).eval()
    torch.manual_seed(0)
    fast = FastDiffRec(data.n_items, **SMALL).eval()
    for (name, a), b in zip(plain.state_dict().items(), fast.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    users = torch.arange(40)
    torch.testing.assert_close(fast.score(data, users), plain.score(data, users), atol=1e-5, rtol=1e-4)


def test_valid_and_test_share_one_reverse_chain(data):
    torch.manual_seed(0)
    model = FastDiffRec(data.n_items, **SMALL).eval()
    calls, predict = [], model.predict
    model.predict = lambda x, **kw: (calls.append(len(x)), predict(x, **kw))[1]
    users = torch.arange(20)
    valid = model.score(data, users, "valid")
    test = model.score(data, users, "test")
    assert calls == [data.n_users]                   # one chain, for every user at once
    assert torch.equal(valid, test)


def test_score_cache_is_dropped_by_a_training_step_and_by_load_state_dict(data):
    torch.manual_seed(0)
    model = FastDiffRec(data.n_items, **SMALL).eval()
    users = torch.arange(5)
    before = model.score(data, users).clone()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    opt = model.configure_optimizers(lr=1e-2)
    assert opt.defaults["fused"]
    model.loss(model.input_matrix(data)[:50]).backward()            # in eval mode: a step all the same
    opt.step()
    assert not torch.allclose(before, model.score(data, users))
    model.load_state_dict(state)
    torch.testing.assert_close(model.score(data, users), before)
    with torch.no_grad():                                           # an edit by hand needs forget_scores
        model.denoiser.out_layers[-1].bias.add_(1.0)
    assert torch.equal(model.score(data, users), before)
    model.forget_scores()
    assert not torch.allclose(model.score(data, users), before)


def test_training_mode_scores_are_not_cached(data):
    torch.manual_seed(0)
    model = FastDiffRec(data.n_items, **SMALL).train()
    users = torch.arange(10)
    assert not torch.allclose(model.score(data, users), model.score(data, users))   # dropout
    assert model._scores is None


def test_one_user_id_scores_as_a_batch_of_one_without_the_cache(data, monkeypatch):
    import tutorial_lib.models.diffrec_fast as fast_module
    monkeypatch.setattr(fast_module, "SCORE_CACHE_LIMIT", 0)                  # as on a large data set
    model = FastDiffRec(data.n_items, **SMALL, sampling_noise=True, sampling_steps=2).eval()
    assert model.score(data, 4).shape == (1, data.n_items)
    assert model._scores is None


def test_checkpoint_resume_gives_the_same_model(data, tmp_path):
    kw = dict(epochs=6, eval_every=2, batch_size=100, progress=False, seed=3)

    def new_model():
        torch.manual_seed(0)                  # the same initial weights each time
        return DiffRec(data.n_items, **SMALL)

    reference = new_model()
    ref_hist = fit(reference, data, **kw)

    class Interrupt(Exception):
        pass

    def stop_at_5(epoch):
        if epoch == 5:
            raise Interrupt

    ckpt = tmp_path / "diffrec.pt"
    first = new_model()
    first.on_epoch_end = stop_at_5
    with pytest.raises(Interrupt):
        fit(first, data, checkpoint=ckpt, **kw)
    resumed = DiffRec(data.n_items, **SMALL)      # weights come from the checkpoint
    hist = fit(resumed, data, checkpoint=ckpt, resume=True, **kw)
    assert hist.train_loss == pytest.approx(ref_hist.train_loss)
    assert hist.best_test == pytest.approx(ref_hist.best_test)
    for (k, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


@pytest.mark.parametrize("dims", [[64], [32, 48]])
def test_hidden_space_chain_equals_the_full_chain(data, dims):
    # FastDiffRec.predict runs the reverse chain in the first hidden layer; it must match the plain chain
    torch.manual_seed(0)
    model = FastDiffRec(data.n_items, dims=dims, T=12).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))              # not just the initialisation
    x = torch.as_tensor(data.train[:50].toarray())
    full = model.diffusion.p_sample_loop(model.denoiser, x, steps=0)
    torch.testing.assert_close(model.predict(x), full, atol=1e-5, rtol=1e-4)
    model.double()                                        # in float64 the two agree to 1e-12
    torch.testing.assert_close(model.predict(x.double()),
                               model.diffusion.p_sample_loop(model.denoiser, x.double(), steps=0))


def test_full_chain_is_used_when_the_shortcut_is_not_exact(data):
    torch.manual_seed(0)
    model = FastDiffRec(data.n_items, norm=True, **SMALL).eval()   # L2 norm is not linear
    calls = []
    model.denoiser.register_forward_hook(lambda *a: calls.append(1))
    model.predict(torch.as_tensor(data.train[:4].toarray()))
    assert len(calls) == 5


def test_paper_model_on_ml1m_shapes(ml1m_dir):
    # the paper's configuration on DiffRec's released split: 2810 + 10 -> 600 -> 200 -> 600 -> 2810
    from tutorial_lib.datasets import load_diffrec_npy

    data = load_diffrec_npy(ml1m_dir)
    torch.manual_seed(0)
    model = DiffRec(data.n_items)
    assert [tuple(l.weight.shape) for l in [*model.denoiser.in_layers, *model.denoiser.out_layers]] == \
        [(600, 2820), (200, 600), (600, 200), (2810, 600)]
    loss = model.loss(next(model.batches(data, 400, torch.Generator().manual_seed(0))))
    assert torch.isfinite(loss)
    scores = model.eval().score(data, torch.arange(8))
    assert scores.shape == (8, 2810) and torch.isfinite(scores).all()


def test_input_dropout_keeps_1_minus_p_scaled_and_is_identity_in_eval():
    torch.manual_seed(0)
    drop, x = InputDropout(0.3), torch.ones(400, 2000)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005                 # 800k draws: sd 0.0005
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))      # inverted-dropout scaling
    assert abs(y.mean().item() - 1.0) < 0.01                                # E[y] = x
    assert torch.equal(drop.eval()(x), x) and torch.equal(InputDropout(0.0).train()(x), x)
    assert torch.equal(InputDropout(1.0).train()(x), torch.zeros_like(x))        # as nn.Dropout(1.0)


def test_score_cache_sees_the_inference_settings(data):
    # notebook 03's exercise 2 changes sampling_steps on a trained model and scores again
    torch.manual_seed(0)
    model = FastDiffRec(data.n_items, **SMALL).eval()
    users = torch.arange(30)
    before = model.score(data, users).clone()
    model.sampling_steps = 3
    torch.manual_seed(1)
    noised = model.score(data, users)
    torch.manual_seed(1)
    assert torch.equal(noised, model.predict(model.input_matrix(data))[users])
    assert not torch.allclose(noised, before)
