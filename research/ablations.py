"""Ablations: the library's models with one detail of a released code put back, as subclasses.

    python research/ablations.py release-padding --dataset amazon_beauty --device cuda \
        --checkpoint build/diffurec_release.pt --time-limit 480      # reproduce.py's options

What each measured (research/LOG.md has the runs):

* ``FirstBetaDiffRec``: DiffRec's released ``GaussianDiffusion(beta_fixed=True)`` overwrites
  beta_1 with 1e-5 where the paper's linear-var formula gives noise_scale x noise_min = 2.5e-5.
  On ml-1m_clean over seeds 1-5: validation Recall@20 0.1126 against 0.1119, test 0.1705 against
  0.1718, both within one seed's spread. Not the gap to the paper; the library keeps the formula.
* ``ReleasePaddingDiffuRec``: DiffuRec's released attention mask blanks the *query* rows of padded
  positions and leaves padded *keys* open, so real positions attend to the (learned) padding
  embedding and the amount of padding changes the output. On Beauty (seed 1, H200) it raised
  validation NDCG@10 by about 0.23 (x100, +4 %) from epoch 120 on and test HR@10 by 0.06-0.19:
  a tenth to a third of the gap to the paper's HR@10. The library keeps its key mask: a padded
  position never changes the output.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from tutorial_lib.diffusion import GaussianDiffusion
from tutorial_lib.models.diffrec_fast import FastDiffRec
from tutorial_lib.models.diffurec import DiffuRec
from tutorial_lib.models.layers import TransformerEncoder
from tutorial_lib.schedules import _validate


# ------------------------------------------------------------------------------ beta_1 = 1e-5
def with_first_beta(betas: torch.Tensor, beta_1: float) -> torch.Tensor:
    """``betas`` (T,) with beta_1 replaced by ``beta_1``; the later betas are kept, so alpha_bar_t
    changes for every t (the released DiffRec's ``beta_fixed=True``, after Sohl-Dickstein et al.)."""
    if not 0 < beta_1 < 1:
        raise ValueError(f"beta_1 must lie in (0, 1), got {beta_1!r}")
    betas = betas.clone()
    betas[0] = beta_1
    return _validate(betas, "with_first_beta")


class FirstBetaDiffRec(FastDiffRec):
    """The recipe's DiffRec with the released code's beta_1 (default 1e-5)."""

    def __init__(self, n_items: int, first_beta: float = 1e-5, **kwargs):
        super().__init__(n_items, **kwargs)
        betas = with_first_beta(self.diffusion.betas, first_beta)
        self.diffusion = GaussianDiffusion(betas, self.diffusion.mean_type)


# ------------------------------------------------------------------------------ DiffuRec's padding
def release_attention(attn, q_in: torch.Tensor, kv_in: torch.Tensor, q_keep: torch.Tensor) -> torch.Tensor:
    """``layers.MultiHeadAttention`` with the queries of PAD rows zeroed, no mask at all.

    A zero query scores every key 0, so its softmax row is uniform: the release's
    ``masked_fill(-1e9)`` on those rows, with the same gradients (none reach the blanked scores;
    an additive -1e9 mask would pass gradient, and hit NaN in CUDA's memory-efficient attention).
    q_in (B, Lq, d), kv_in (B, L, d), q_keep (B, 1, Lq, 1) 0 at PAD -> (B, Lq, d).
    """
    B, Lq, d = q_in.shape
    split = lambda x: x.view(B, x.shape[1], attn.heads, d // attn.heads).transpose(1, 2)
    q = split(attn.W_Q(q_in)) * q_keep
    k, v = (split(x) for x in attn.W_KV(kv_in).chunk(2, dim=-1))
    p = attn.dropout if attn.training else 0.0
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=p)
    return attn.W_O(out.transpose(1, 2).reshape(B, Lq, d))


def release_block(block, h: torch.Tensor, n_queries: int, q_keep: torch.Tensor) -> torch.Tensor:
    """``layers.TransformerBlock.forward`` with ``release_attention``; (B, L, d) -> (B, Lq, d)."""
    attend = lambda q_in, kv_in: release_attention(block.attn, q_in, kv_in, q_keep)
    if block.norm_first:
        x = block.ln_attn(h)
        h = h[:, -n_queries:] + block.drop(attend(x[:, -n_queries:], x))
        return h + block.drop(block.ffn(block.ln_ffn(h)))
    h = block.ln_attn(h[:, -n_queries:] + block.drop(attend(h[:, -n_queries:], h)))
    return block.ln_ffn(h + block.drop(block.ffn(h)))


class ReleasePaddingEncoder(TransformerEncoder):
    """The encoder with DiffuRec's released mask: PAD query rows blanked, PAD keys attended, PAD
    rows not zeroed. The same modules and weights as ``TransformerEncoder``; bidirectional only."""

    def forward(self, h: torch.Tensor, pad: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        if self.causal:
            raise ValueError("the released padding mask is DiffuRec's bidirectional one; it has no causal form")
        L = h.shape[1]
        q_keep = (~pad)[:, None, :, None].to(h.dtype)                   # (B, 1, L, 1)
        for j, block in enumerate(self.blocks):
            n_q = 1 if last_only and j == len(self.blocks) - 1 else L
            h = release_block(block, h, n_q, q_keep[:, :, -n_q:])
            if self.block_dropout:
                h = self.drop(h)
        h = self.norm(h)
        return h[:, -1] if last_only else h


class ReleasePaddingDiffuRec(DiffuRec):
    """DiffuRec with the released padding: ``ReleasePaddingEncoder`` and windows never trimmed
    (always ``max_len`` wide), so the amount of padding changes the output."""

    def __init__(self, n_items: int, **kwargs):
        super().__init__(n_items, **kwargs)
        self.approximator.encoder.__class__ = ReleasePaddingEncoder      # same weights, the release's mask

    def _chunks(self, windows: torch.Tensor):
        return [(torch.arange(len(windows), device=windows.device), windows)]


# ------------------------------------------------------------------------------ command line
def run_release_padding(argv=None) -> dict:
    """``reproduce.py diffurec`` with ``ReleasePaddingDiffuRec``; prints and returns its JSON line."""
    import json

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import reproduce
    from recipes import sequential as recipe

    from tutorial_lib.utils import device as pick_device
    from tutorial_lib.utils import seed_everything

    args = reproduce.parse_args(["diffurec", *(argv or [])])
    seed_everything(args.seed)
    data = recipe.load(args)
    small = args.fast or args.dataset == "synthetic"
    config, train = (recipe.FAST_DIFFUREC, recipe.FAST_TRAIN) if small else (recipe.DIFFUREC, recipe.DIFFUREC_TRAIN)
    dev = pick_device(args.device)
    model = ReleasePaddingDiffuRec(data.n_items, **config, chunk_size=None if dev.type == "cuda" else 64,
                                   amp=False, eval_seed=args.seed)
    hist, dev = recipe._train(model, data, args, train, optimizer=None)
    result = recipe._result(args, model, data, hist, dev, {"config": dict(config, release_padding=True)})
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "release-padding":
        raise SystemExit("usage: python research/ablations.py release-padding [reproduce.py options]")
    run_release_padding(sys.argv[2:])
