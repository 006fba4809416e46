"""research/ablations.py: each ablation changes exactly the detail it names, as the release has it."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))       # research/ is not installed

from research.ablations import (FirstBetaDiffRec, ReleasePaddingDiffuRec, ReleasePaddingEncoder,  # noqa: E402
                                release_attention, with_first_beta)
from tutorial_lib import schedules  # noqa: E402
from tutorial_lib.models.diffrec_fast import FastDiffRec  # noqa: E402
from tutorial_lib.models.diffurec import DiffuRec  # noqa: E402
from tutorial_lib.models.layers import MultiHeadAttention, TransformerEncoder  # noqa: E402
from tutorial_lib.sequences import loo_synthetic  # noqa: E402


@pytest.fixture(scope="module")
def seq_data():
    return loo_synthetic(n_users=60, n_items=100, interactions_per_user=10, seed=0)[0]


# ------------------------------------------------------------------ DiffRec's fixed beta_1
def test_first_beta_as_the_released_diffrec_fixes_it():
    # beta_1 = 1e-5 after building linear-var: 1 - alpha_bar_t drops by 1.5e-5 at every t
    paper = schedules.get_betas("linear-var", 40)
    release = with_first_beta(paper, 1e-5)
    assert release[0] == 1e-5 and torch.equal(release[1:], paper[1:]) and paper[0] == pytest.approx(2.5e-5)
    assert 1 - schedules.alpha_bar(release)[-1].item() == pytest.approx(3.5e-5, rel=1e-3)
    with pytest.raises(ValueError, match="beta_1"):
        with_first_beta(paper, 0.0)


def test_first_beta_reaches_the_model_and_nothing_else_changes():
    torch.manual_seed(0)
    model = FirstBetaDiffRec(100, first_beta=1e-5, dims=[16], T=5)
    torch.manual_seed(0)
    plain = FastDiffRec(100, dims=[16], T=5)                          # the recipe's class, same weights
    assert model.diffusion.betas[0].item() == pytest.approx(1e-5)
    assert torch.equal(model.diffusion.betas[1:], plain.diffusion.betas[1:])
    for a, b in zip(model.parameters(), plain.parameters()):
        assert torch.equal(a, b)


# ------------------------------------------------------------------ DiffuRec's padding mask
def _release_attention_written_out(attn, x, pad):
    """The released code's attention: scores of PAD query rows overwritten by -1e9."""
    B, L, d = x.shape
    split = lambda t: t.view(B, L, attn.heads, d // attn.heads).transpose(1, 2)
    q, (k, v) = split(attn.W_Q(x)), (split(t) for t in attn.W_KV(x).chunk(2, dim=-1))
    scores = (q @ k.transpose(-1, -2) / (d // attn.heads) ** 0.5).masked_fill(pad[:, None, :, None], -1e9)
    return attn.W_O((torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(B, L, d)), torch.softmax(scores, -1)


def test_release_attention_zeroes_pad_queries_like_the_release_masked_fill():
    # same output and same gradients as the release's masked_fill; PAD keys stay open
    torch.manual_seed(0)
    attn = MultiHeadAttention(8, 2, dropout=0.0)
    pad = torch.tensor([[True, True, False, False, False], [True, False, False, False, False]])
    x = torch.randn(2, 5, 8)
    ref, probs = _release_attention_written_out(attn, x, pad)
    assert torch.allclose(probs[0, :, :2], torch.full((2, 2, 5), 0.2))          # PAD queries: uniform
    assert (probs[0, :, 2:, :2] > 0).all()                                      # real queries see PAD keys
    results = []
    for out in (ref, release_attention(attn, x, x, (~pad)[:, None, :, None].float())):
        attn.zero_grad()
        (out ** 2).sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in attn.parameters()]))
    (out_ref, g_ref), (out_ours, g_ours) = results
    assert torch.allclose(out_ref, out_ours, atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g_ref, g_ours))


def test_release_padding_encoder_in_closed_form():
    """PAD query rows zeroed (uniform attention), PAD keys open, PAD rows kept."""
    torch.manual_seed(0)
    enc = TransformerEncoder(8, 2, 1, dropout=0.0).eval()
    enc.__class__ = ReleasePaddingEncoder
    b = enc.blocks[0]
    h = torch.randn(2, 5, 8)
    pad = torch.tensor([[True, True, False, False, False], [False] * 5])
    x = b.ln_attn(h)
    h1 = h + release_attention(b.attn, x, x, (~pad)[:, None, :, None].float())
    ref = h1 + b.ffn(b.ln_ffn(h1))
    assert torch.allclose(enc(h, pad), ref, atol=1e-5)
    assert (enc(h, pad)[pad] != 0).all()
    torch.testing.assert_close(enc(h, pad, last_only=True), enc(h, pad)[:, -1])
    enc.causal = True
    with pytest.raises(ValueError, match="causal"):
        enc(h, pad)


def test_release_padding_diffurec_keeps_the_weights_and_lets_padding_change_scores(seq_data):
    torch.manual_seed(0)
    ours = DiffuRec(100, hidden=16, n_blocks=1, heads=2, T=4, max_len=30, chunk_size=8).eval()
    torch.manual_seed(0)
    m = ReleasePaddingDiffuRec(100, hidden=16, n_blocks=1, heads=2, T=4, max_len=30, chunk_size=8).eval()
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), m.parameters()))
    users = torch.arange(20)
    before = m.score(seq_data, users, "valid")
    with torch.no_grad():
        m.item_emb.weight[0] = 50 * torch.randn(16)                     # the PAD row
    assert not torch.allclose(before, m.score(seq_data, users, "valid"), atol=1e-2)


def test_release_padding_never_trims_windows(seq_data):
    torch.manual_seed(0)
    m = ReleasePaddingDiffuRec(100, hidden=16, n_blocks=1, heads=2, T=4, max_len=30, chunk_size=8).eval()
    widths = []
    fwd = m.approximator.forward
    m.approximator.forward = lambda h, pad, x_t, t, g=None: (widths.append(h.shape[1]), fwd(h, pad, x_t, t, g))[1]
    m.score(seq_data, torch.arange(10), "valid")
    m.loss(next(m.batches(seq_data, 16, torch.Generator().manual_seed(0))))
    assert set(widths) == {30}
