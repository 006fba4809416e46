"""The shared Transformer encoder (padding, causality) and SASRec (learns; clear errors)."""
import numpy as np
import pytest
import torch

from tutorial_lib.metrics import evaluate
from tutorial_lib.models.popularity import Popularity
from tutorial_lib.models.sasrec import SASRec
from tutorial_lib.models.layers import TransformerEncoder, attention_mask
from tutorial_lib.sequences import loo_synthetic
from tutorial_lib.train import fit


@pytest.fixture(scope="module")
def seq_data():
    return loo_synthetic(n_users=300, n_items=200, interactions_per_user=20, seed=0)[0]


def _padded_batch(d=16, L=7):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(3, L, d, generator=g)
    pad = torch.zeros(3, L, dtype=torch.bool)
    pad[0, :4], pad[1, :6] = True, True                    # row 1 has a single real item
    return h, pad


@pytest.mark.parametrize("causal", [False, True])
def test_every_query_may_attend_to_itself(causal):
    # a padded query row with every key masked would be all -inf: NaN on some kernels
    _, pad = _padded_batch()
    pad[2] = True                                           # a fully padded row
    allowed = attention_mask(pad, causal)                   # (B, 1, Lq, L)
    assert allowed.any(-1).all()
    assert allowed[..., torch.arange(7), torch.arange(7)].all()


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("norm_first, final_norm", [(True, False), (False, False), (True, True)])
def test_padding_never_changes_real_positions(causal, norm_first, final_norm):
    torch.manual_seed(0)
    enc = TransformerEncoder(16, 2, 2, dropout=0.1, causal=causal, norm_first=norm_first,
                             final_norm=final_norm).eval()
    if final_norm:
        with torch.no_grad():
            enc.norm.bias.fill_(0.5)                        # a trained LayerNorm: PAD rows must stay 0
    h, pad = _padded_batch()
    out = enc(h, pad)
    h2 = h.clone()
    h2[pad] = 100 * torch.randn(int(pad.sum()), 16)         # anything at the padded positions
    out2 = enc(h2, pad)
    assert torch.isfinite(out).all()
    assert torch.allclose(out[~pad], out2[~pad], atol=1e-5)
    assert (out[pad] == 0).all()
    # trimming the all-padding columns and the last-only shortcut change nothing
    assert torch.allclose(enc(h[:, 4:], pad[:, 4:])[0], out[0, 4:], atol=1e-5)
    assert torch.allclose(enc(h, pad, last_only=True), out[:, -1], atol=1e-5)


def test_causal_attention_ignores_the_future():
    torch.manual_seed(0)
    enc = TransformerEncoder(16, 2, 2, dropout=0.0, causal=True).eval()
    h, pad = _padded_batch()
    h2 = h.clone()
    h2[:, -1] += torch.randn(3, 16, generator=torch.Generator().manual_seed(1))
    out, out2 = enc(h, pad), enc(h2, pad)
    assert torch.allclose(out[:, :-1], out2[:, :-1], atol=1e-6)
    assert not torch.allclose(out[:, -1], out2[:, -1])
    bidir = TransformerEncoder(16, 2, 2, dropout=0.0, causal=False).eval()
    assert not torch.allclose(bidir(h, pad)[:, :-1], bidir(h2, pad)[:, :-1])


def test_sasrec_scores_do_not_depend_on_chunking(seq_data):
    torch.manual_seed(0)
    m = SASRec(seq_data.n_items, hidden=16, n_blocks=1, chunk_size=None).eval()
    users = torch.arange(40)
    whole = m.score(seq_data, users, "test")
    m.chunk_size = 7
    assert whole.shape == (40, seq_data.n_items)
    assert torch.allclose(whole, m.score(seq_data, users, "test"), atol=1e-5)


def test_sasrec_beats_popularity_on_synthetic_sequences(seq_data):
    pop = Popularity().fit(seq_data)
    base = evaluate(lambda u: pop.score(seq_data, u, "test"), seq_data, "test", ks=(10,))
    m = SASRec(seq_data.n_items, hidden=32, n_blocks=1, dropout=0.1)
    hist = fit(m, seq_data, epochs=6, lr=5e-3, batch_size=64, optimizer="adam", eval_every=6,
               metric="hr@10", ks=(10,), progress=False, seed=0)
    assert hist.best_test["hr@10"] > 3 * base["hr@10"]
    assert hist.best_test["ndcg@10"] > 3 * base["ndcg@10"]


def test_sasrec_bad_input():
    with pytest.raises(ValueError, match="n_items"):
        SASRec(0)
    with pytest.raises(ValueError, match="divisible"):
        SASRec(10, hidden=10, heads=3)
    with pytest.raises(ValueError, match="heads must be a positive integer, got 0"):
        SASRec(10, hidden=16, heads=0)
    data = loo_synthetic(n_users=20, n_items=40, interactions_per_user=5)[0]
    data.sequences = None
    with pytest.raises(ValueError, match="no sequences"):
        next(SASRec(40).batches(data, 8))
    data.sequences = [np.zeros(0, dtype=np.int64)] * data.n_users
    with pytest.raises(ValueError, match="empty input"):
        SASRec(40).score(data, torch.arange(3), "valid")
    inputs = torch.ones(2, 4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"target ids must be 0-based in \[0, 40\) or -100, got min 0 max 40"):
        SASRec(40).loss((inputs, torch.tensor([[-100, 0, 1, 2], [3, 4, 5, 40]])))
    with pytest.raises(ValueError, match=r"window ids must be in \[0, 40\]"):
        SASRec(40).loss((inputs * 41, torch.zeros(2, 4, dtype=torch.long)))
    assert SASRec(40).score(data, [], "valid").shape == (0, 40)


def test_sasrec_batch_size_and_max_len_errors(seq_data):
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        next(SASRec(seq_data.n_items).batches(seq_data, 0))
    for bad in (-1, 0, 2.5, None):
        with pytest.raises(ValueError, match="max_len must be a positive integer"):
            SASRec(40, max_len=bad)
