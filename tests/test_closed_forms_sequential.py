"""The Transformer, SASRec, DiffuRec, SeqDiffRec, the toy model and ``notebook.record``, pinned
to closed forms: each test pins a behaviour that a plausible one-line bug would break.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from tutorial_lib import notebook, schedules
from tutorial_lib.diffusion import GaussianDiffusion
from tutorial_lib.models import toy
from tutorial_lib.models.diffurec import Approximator, DiffuRec
from tutorial_lib.models.layers import MultiHeadAttention, TransformerEncoder, timestep_embedding
from tutorial_lib.models.sasrec import SASRec
from tutorial_lib.models.seqdiffrec import SeqDiffRec
from tutorial_lib.step_sampler import StepSampler
from tutorial_lib.sequences import PAD, eval_inputs, loo_synthetic, next_item_windows


@pytest.fixture(scope="module")
def data():
    return loo_synthetic(n_users=60, n_items=100, interactions_per_user=10, seed=0)[0]


# ------------------------------------------------------------------ transformer
def test_mha_is_softmax_qk_over_sqrt_dk_with_the_mask():
    torch.manual_seed(0)
    attn = MultiHeadAttention(8, 2, dropout=0.0).eval()
    x = torch.randn(2, 5, 8)
    mask = torch.tril(torch.ones(5, 5, dtype=torch.bool))[None, None].expand(2, 1, 5, 5)
    q = attn.W_Q(x).view(2, 5, 2, 4).transpose(1, 2)
    k, v = (t.view(2, 5, 2, 4).transpose(1, 2) for t in attn.W_KV(x).chunk(2, -1))
    s = (q @ k.transpose(-1, -2) / math.sqrt(4)).masked_fill(~mask, -math.inf)
    ref = attn.W_O((s.softmax(-1) @ v).transpose(1, 2).reshape(2, 5, 8))
    assert torch.allclose(attn(x, x, mask), ref, atol=1e-6)


def test_encoder_with_dropout_is_deterministic_in_eval():
    torch.manual_seed(0)
    enc = TransformerEncoder(16, 2, 2, dropout=0.5, block_dropout=True).eval()
    h, pad = torch.randn(3, 6, 16), torch.zeros(3, 6, dtype=torch.bool)
    assert torch.equal(enc(h, pad), enc(h, pad))


def test_block_dropout_flag_is_respected_in_training():
    torch.manual_seed(0)
    h, pad = torch.randn(3, 6, 16), torch.zeros(3, 6, dtype=torch.bool)
    enc = TransformerEncoder(16, 2, 1, dropout=0.5, block_dropout=False).train()
    enc.blocks[0].drop.p = 0.0
    enc.blocks[0].attn.dropout = 0.0
    enc.blocks[0].ffn[2].p = 0.0               # only the (disabled) block dropout could randomise
    assert torch.equal(enc(h, pad), enc(h, pad))


def test_pre_ln_block_in_closed_form():
    """pre-LN: h + attn(LN(h)), then h + ffn(LN(h)) -- the residual carries the raw h."""
    torch.manual_seed(0)
    enc = TransformerEncoder(8, 2, 1, dropout=0.0, norm_first=True).eval()
    b = enc.blocks[0]
    with torch.no_grad():
        for ln in (b.ln_attn, b.ln_ffn):
            ln.weight.normal_(); ln.bias.normal_()
    h, pad = 3 * torch.randn(2, 4, 8) + 1, torch.zeros(2, 4, dtype=torch.bool)
    x = b.ln_attn(h)
    h1 = h + b.attn(x, x, None)
    ref = h1 + b.ffn(b.ln_ffn(h1))
    assert torch.allclose(enc(h, pad), ref, atol=1e-5)


def test_post_ln_block_in_closed_form():
    torch.manual_seed(0)
    enc = TransformerEncoder(8, 2, 1, dropout=0.0, norm_first=False).eval()
    b = enc.blocks[0]
    h, pad = 3 * torch.randn(2, 4, 8) + 1, torch.zeros(2, 4, dtype=torch.bool)
    h1 = b.ln_attn(h + b.attn(h, h, None))
    ref = b.ln_ffn(h1 + b.ffn(h1))
    assert torch.allclose(enc(h, pad), ref, atol=1e-5)


# ------------------------------------------------------------------ SASRec
def _sasrec(n_items, **kw):
    torch.manual_seed(0)
    return SASRec(n_items, hidden=16, n_blocks=1, heads=2, dropout=0.0, **kw).eval()


def test_sasrec_encoder_input_is_sqrt_d_item_plus_right_counted_position(data):
    m = _sasrec(data.n_items, max_len=12)
    seen = {}
    m.encoder.forward = lambda h, pad, last_only=False: seen.setdefault("h", h)
    w = torch.tensor([[0, 0, 3, 5, 7], [1, 2, 3, 4, 5]])
    m.represent(w)
    E, P = m.item_emb.weight, m.pos_emb.weight
    ref = E[w] * 4.0 + P[12 - 5:]                                # sqrt(16) = 4, positions 7..11
    real = w != PAD
    assert torch.allclose(seen["h"][real], ref[real], atol=1e-6)


def test_sasrec_logits_use_item_rows_1_to_n(data):
    m = _sasrec(data.n_items)
    r = torch.randn(3, 16)
    assert torch.allclose(m.logits(r)[:, 4], r @ m.item_emb.weight[5], atol=1e-6)   # item 4 = row 5


def test_sasrec_loss_is_mean_ce_over_real_positions_untrimmed(data):
    m = _sasrec(data.n_items, max_len=10, chunk_size=5)
    inputs, targets = next_item_windows(data, 10)
    inputs, targets = inputs[:20], targets[:20]
    assert (targets == -100).any() and (targets != -100).any()
    with torch.no_grad():
        H = m.represent(inputs)                                         # full width, no chunks
        real = targets != -100
        ref = F.cross_entropy(m.logits(H[real]), targets[real])        # mean over real positions
    assert m.loss((inputs, targets)).item() == pytest.approx(ref.item(), rel=1e-5)


def test_sasrec_score_reads_the_last_position(data):
    m = _sasrec(data.n_items, chunk_size=None)
    users = torch.arange(10)
    w = eval_inputs(data, "valid", users, m.max_len)
    with torch.no_grad():
        ref = m.logits(m.represent(w)[:, -1])
    assert torch.allclose(m.score(data, users, "valid"), ref, atol=1e-5)


def test_sasrec_is_causal(data):
    m = _sasrec(data.n_items)
    w = torch.tensor([[3, 4, 5, 6], [7, 8, 9, 10]])
    w2 = w.clone(); w2[:, -1] = 11
    with torch.no_grad():
        assert torch.allclose(m.represent(w)[:, :-1], m.represent(w2)[:, :-1], atol=1e-6)


def test_sasrec_batches_are_shuffled(data):
    m = _sasrec(data.n_items)
    a = torch.cat([x for x, _ in m.batches(data, 8, torch.Generator().manual_seed(0))])
    inputs, _ = next_item_windows(data, m.max_len)
    assert not torch.equal(a, inputs)
    assert sorted(map(tuple, a.tolist())) == sorted(map(tuple, inputs.tolist()))


# ------------------------------------------------------------------ DiffuRec
def _diffurec(n_items=100, **kw):
    torch.manual_seed(0)
    return DiffuRec(n_items, hidden=16, n_blocks=1, heads=2, T=8, **kw)


def test_approximator_input_is_h_plus_lambda_times_x_t_plus_step_embedding():
    torch.manual_seed(0)
    f = Approximator(hidden=16, heads=2, n_blocks=1, T=8, lambda_mean=0.5, lambda_std=2.0).eval()
    seen = {}
    real_fwd = f.encoder.forward
    f.encoder.forward = lambda x, pad, last_only=False: (seen.setdefault("x", x), real_fwd(x, pad, last_only))[1]
    h, pad = torch.randn(2, 5, 16), torch.zeros(2, 5, dtype=torch.bool)
    x_t, t = torch.randn(2, 16), torch.tensor([0, 5])
    out = f(h, pad, x_t, t, torch.Generator().manual_seed(7))
    lam = 0.5 + 2.0 * torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(7))   # N(mean, std), (B, L, d)
    z = x_t + f.step_mlp(timestep_embedding(t * (1000 / 8), 16))                       # t * 1000 / T
    assert torch.allclose(seen["x"], h + lam * z[:, None], atol=1e-5)
    # x0_hat = LN(encoder output at the last position)
    r = real_fwd(seen["x"], pad, True)
    assert torch.allclose(out, F.layer_norm(r, (16,), eps=1e-12), atol=1e-5)


def test_diffurec_loss_noises_the_target_embedding_at_the_same_t():
    m = _diffurec().eval()
    seen = {}
    q = m.diffusion.q_sample
    m.diffusion.q_sample = lambda x0, t, *a, **k: (seen.update(x0=x0, tq=t), q(x0, t, *a, **k))[1]
    fwd = m.approximator.forward
    m.approximator.forward = lambda h, pad, x_t, t, g=None: (seen.update(ta=t), fwd(h, pad, x_t, t, g))[1]
    data = loo_synthetic(n_users=60, n_items=100, interactions_per_user=10, seed=0)[0]
    ts = []
    for i in range(20):
        w, y = next(m.batches(data, 32, torch.Generator().manual_seed(i)))
        m.loss((w, y))
        assert torch.equal(seen["x0"], m.item_emb.weight[y + 1])         # e_{n+1}: row y + 1
        assert torch.equal(seen["tq"], seen["ta"])
        ts.append(seen["tq"])
    ts = torch.cat(ts)
    assert ts.min() == 0 and ts.max() == m.T - 1                           # t uniform over all T steps


def test_diffurec_loss_is_mean_ce_over_items_1_to_n_whatever_the_chunks(data):
    m = _diffurec(chunk_size=3).eval()
    # a deterministic approximator: x0_hat = mean of the embedded history
    m.approximator.forward = lambda h, pad, x_t, t, g=None: (h * (~pad)[..., None]).sum(1)
    w, y = next(m.batches(data, 16, torch.Generator().manual_seed(0)))
    with torch.no_grad():
        h = m.embed(w)
        x0_hat = (h * (w != PAD)[..., None]).sum(1)
        ref = F.cross_entropy(x0_hat @ m.item_emb.weight[1:].T, y)
    assert m.loss((w, y)).item() == pytest.approx(ref.item(), rel=1e-5)


def test_diffurec_training_loss_ignores_the_pad_embedding(data):
    m = _diffurec().eval()
    w, y = next(m.batches(data, 16, torch.Generator().manual_seed(0)))
    assert (w == PAD).any()
    torch.manual_seed(1); before = m.loss((w, y))
    with torch.no_grad():
        m.item_emb.weight[0] = 50 * torch.randn(16)
    torch.manual_seed(1); after = m.loss((w, y))
    assert after.item() == pytest.approx(before.item(), rel=1e-4)


def test_diffurec_reverse_is_the_posterior_chain_with_beta_tilde():
    """With x0_hat = 0: x_{t-1} = c_xt(t) x_t + sqrt(beta~_t) eps (eps from the same generator)."""
    m = _diffurec().eval()
    m.approximator.forward = lambda h, pad, x_t, t, g=None: torch.zeros_like(x_t)
    w = torch.tensor([[0, 3, 4], [5, 6, 7]])
    _, states, _ = m.reverse(w, torch.Generator().manual_seed(3), return_trajectory=True)
    g = torch.Generator().manual_seed(3)
    d = m.diffusion
    x = torch.randn(2, 16, generator=g)
    ref = [x]
    for i in reversed(range(m.T)):
        mean = d.posterior_coef_xt[i].float() * x
        x = mean + (d.posterior_variance[i].sqrt().float() * torch.randn(2, 16, generator=g) if i > 0 else 0)
        ref.append(x)
    assert torch.allclose(states, torch.stack(ref), atol=1e-5)


def test_diffurec_generator_depends_on_eval_seed_and_first_user():
    m = _diffurec(eval_seed=2)
    assert m.generator_for(torch.tensor([7, 1]), "cpu").initial_seed() == 2 * 1_000_003 + 7


def test_diffurec_embedding_is_ln_after_dropout_in_training():
    m = _diffurec(emb_dropout=0.5).train()
    e = m.embed(torch.randint(1, 51, (4, 6)))
    assert torch.allclose(e.mean(-1), torch.zeros(4, 6), atol=1e-5)
    assert m.emb_dropout.p == 0.5 and _diffurec().emb_dropout.p == 0.3


# ------------------------------------------------------------------ SeqDiffRec
SMALL = dict(hidden=16, max_len=10, n_layers=1, n_heads=2, T=20)


def _warm(sampler):
    for step in range(sampler.T):
        sampler.update(torch.full((sampler.history,), step), torch.full((sampler.history,), 1.0 + step))
    assert sampler.warmed_up


@pytest.mark.parametrize("rounding", ["h0", "h0_hat", "both"])
def test_seqdiffrec_loss_is_importance_weighted_mse_plus_rounding(data, rounding):
    torch.manual_seed(0)
    m = SeqDiffRec(data.n_items, rounding=rounding, chunk_size=None, **SMALL).eval()
    _warm(m.sampler)
    hist, tgt = next(iter(m.batches(data, 16, torch.Generator().manual_seed(0))))
    torch.manual_seed(5)
    loss = m.loss((hist, tgt))
    torch.manual_seed(5)
    t, w = m.sampler.sample(16)
    assert w.std() > 0
    out = m.losses(hist, tgt, t)
    ce = {"h0": out["ce_h0"], "h0_hat": out["ce_h0_hat"], "both": out["ce_h0"] + out["ce_h0_hat"]}[rounding]
    assert loss.item() == pytest.approx(((out["mse"] / w).mean() + ce.mean()).item(), rel=1e-5)
    assert torch.allclose(out["ce_h0"], F.cross_entropy(m.round(out["h0"]), tgt, reduction="none"))


def test_seqdiffrec_sampler_records_the_mse_and_updates_are_counted(data):
    torch.manual_seed(0)
    m = SeqDiffRec(data.n_items, chunk_size=None, dropout=0.0, **SMALL).train()
    hist, tgt = next(iter(m.batches(data, 8, torch.Generator().manual_seed(0))))
    recorded = {}
    m.sampler.update = lambda t, losses: recorded.update(t=t, losses=losses)
    torch.manual_seed(5); m.loss((hist, tgt))
    torch.manual_seed(5); t, _ = m.sampler.sample(8)
    m.eval(); out = m.losses(hist, tgt, t)
    assert torch.allclose(recorded["losses"], out["mse"], atol=1e-6)
    m.train(); m.loss((hist, tgt))
    assert m.updates == 2
    m.on_epoch_end(0)
    assert m.p_t_snapshots[-1][0] == 2


def test_seqdiffrec_inference_visits_the_evenly_spaced_steps(data):
    m = SeqDiffRec(data.n_items, **SMALL).eval()
    hist, _ = next(iter(m.batches(data, 4, torch.Generator().manual_seed(0))))
    calls = []
    real = m.denoise
    m.denoise = lambda history, h_t, t: (calls.append(t[0].item()), real(history, h_t, t))[1]
    m.predict_h0(hist, start_step=10, inference_steps=4)         # paper steps 10, 7, 4, 1
    assert calls == [9, 6, 3, 0]
    calls.clear()
    m.predict_h0(hist)                                            # default: one step from T
    assert calls == [m.T - 1]


def test_seqdiffrec_denoiser_uses_positions_and_the_step(data):
    torch.manual_seed(0)
    m = SeqDiffRec(data.n_items, **SMALL).eval()
    hist = torch.tensor([[3, 4, 5, 6, 7]])
    h_t, t = torch.randn(1, 16), torch.tensor([5])
    out = m.denoise(hist, h_t, t)
    assert not torch.allclose(out, m.denoise(hist.flip(1), h_t, t), atol=1e-4)     # order matters
    assert not torch.allclose(out, m.denoise(hist, h_t, torch.tensor([0])), atol=1e-4)


def test_seqdiffrec_step_embedding_values():
    emb = timestep_embedding(torch.tensor([0, 3]), 4)
    assert emb[1].tolist() == pytest.approx([math.cos(3), math.cos(0.03), math.sin(3), math.sin(0.03)], abs=1e-6)


# ------------------------------------------------------------------ toy
def test_mixture_weights_are_normalised():
    x = torch.tensor([-2.0, 0.0, 1.5])
    assert torch.allclose(toy.mixture_marginal_pdf(x, 0.5, weights=(2.0, 3.0)),
                          toy.mixture_marginal_pdf(x, 0.5, weights=(0.4, 0.6)))


def test_toy_denoiser_depends_on_t():
    torch.manual_seed(0)
    net = toy.ToyDenoiser()
    x = torch.zeros(2, 1)
    assert not torch.allclose(net(x, torch.tensor([0, 0])), net(x, torch.tensor([0, 7])))


def test_train_denoiser_first_loss_is_importance_weighted():
    torch.manual_seed(0)
    diffusion = GaussianDiffusion(schedules.get_betas("linear", 10), mean_type="eps")
    x0 = toy.sample_mixture(64, generator=torch.Generator().manual_seed(0))
    model = toy.ToyDenoiser(hidden=8)
    sampler = StepSampler(10, "importance", history=2)
    _warm(sampler)
    ref_model = toy.ToyDenoiser(hidden=8); ref_model.load_state_dict(model.state_dict())
    ref_sampler = StepSampler(10, "importance", history=2); ref_sampler.load_state(sampler.state())
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(64, (32,), generator=g)
    t, w = ref_sampler.sample(32, generator=g)
    noise = torch.randn(32, 1, generator=g)
    losses = diffusion.training_losses(ref_model, x0[idx], t, noise=noise, reweight=True)["loss"]
    hist = toy.train_denoiser(diffusion, model, x0, steps=1, batch_size=32, sampler=sampler, reweight=True,
                              generator=torch.Generator().manual_seed(1), progress=False)
    assert hist["loss"][0] == pytest.approx((losses / w).mean().item(), rel=1e-5)
    step = int(t[0])
    mine = losses[t == step].detach().double()[-2:]                          # raw losses recorded
    assert torch.allclose(sampler.loss_history[step, -len(mine):], mine, rtol=1e-5)


# ------------------------------------------------------------------ notebook
def test_record_displays_the_raw_bundle(monkeypatch):
    import IPython.display
    calls = []
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: calls.append((a, k)))
    notebook.record("x", 1.5)
    assert calls == [((notebook.record_bundle("x", 1.5),), {"raw": True})]


def test_record_summary_is_truncated_at_200_characters():
    text = notebook.record_bundle("v", list(range(100)))["text/plain"]
    assert text.endswith(" ...") and len(text) == len("v = ") + 200 + 4


def test_record_rejects_bytes():
    with pytest.raises(ValueError, match="JSON-able"):
        notebook.record_bundle("a", b"x")


def test_run_all_reports_a_failure(tmp_path):
    assert notebook.main(["run-all", "--out", str(tmp_path), str(tmp_path / "absent.ipynb")]) == 1


def test_ffn_is_gelu_tanh_with_4d_inner_width():
    torch.manual_seed(0)
    b = TransformerEncoder(8, 2, 1, dropout=0.0).eval().blocks[0]
    l1, l2 = b.ffn[0], b.ffn[3]
    assert l1.out_features == 32
    x = torch.randn(3, 8)
    ref = F.gelu(x @ l1.weight.T + l1.bias, approximate="tanh") @ l2.weight.T + l2.bias
    assert torch.allclose(b.ffn(x), ref, atol=1e-6)


def test_sasrec_output_goes_through_the_final_layernorm():
    from tutorial_lib.models.sasrec import SASRec
    torch.manual_seed(0)
    m = SASRec(100, hidden=16, n_blocks=1, heads=2, dropout=0.0).eval()
    w = torch.tensor([[0, 0, 3, 5, 7], [1, 2, 3, 4, 5]])
    with torch.no_grad():
        H = m.represent(w)[w != 0]
    assert torch.allclose(H.mean(-1), torch.zeros(len(H)), atol=1e-5)
    assert torch.allclose(H.var(-1, unbiased=False), torch.ones(len(H)), atol=1e-3)


def test_seqdiffrec_history_never_attends_to_the_target_slot():
    """Causal: with 2 layers, the history rows of layer 1 must not depend on h_t (seen via a hook)."""
    from tutorial_lib.models.seqdiffrec import SeqDiffRec
    torch.manual_seed(0)
    m = SeqDiffRec(100, hidden=16, max_len=10, n_layers=2, n_heads=2, T=20, dropout=0.0).eval()
    rows = []
    m.encoder.blocks[0].register_forward_hook(lambda mod, inp, out: rows.append(out[:, :-1].clone()))
    hist, t = torch.tensor([[3, 4, 5, 6]]), torch.tensor([5])
    m.denoise(hist, torch.randn(1, 16), t)
    m.denoise(hist, torch.randn(1, 16), t)
    assert torch.allclose(rows[0], rows[1], atol=1e-6)
