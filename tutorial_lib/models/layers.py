r"""Building blocks the models share: the sinusoidal step embedding, a small Transformer and the
dense training rows of the models that read a user's row (:class:`TrainRows`).

**Step embedding** (Vaswani et al. 2017; Ho et al. 2020), for steps t (B,) and an even size d:

    emb(t) = [cos(t w_0), ..., cos(t w_{d/2-1}), sin(t w_0), ..., sin(t w_{d/2-1})],
    w_i = 10000^{-i / (d/2)}                 (all cosines, then all sines, as DiffRec's code)

**Transformer encoder** for item sequences (SASRec, DiffuRec and SeqDiffRec share it). One block,
pre-LN as DiffuRec's and SASRec's code, post-LN on request:

    pre-LN   (norm_first=True):   h <- h + Dropout(MHA(LN(h)))      h <- h + Dropout(FFN(LN(h)))
    post-LN  (norm_first=False):  h <- LN(h + Dropout(MHA(h)))      h <- LN(h + Dropout(FFN(h)))

    MHA(h) = Concat_k softmax(Q_k K_k^T / sqrt(d_k) + M) V_k  W_O,   Q_k = h W_Q^k, ...
    FFN(h) = GELU(h W_1 + b_1) W_2 + b_2                          (inner width 4 d)

The mask M is -inf where query position p may not look at key position q:

    key padding  q is a PAD position (item id 0): never attended to, so padding can never
                 change the output at a real position
    causal       q > p (SASRec: a position sees only the past; DiffuRec is bidirectional)

Every query may attend to itself, so a padded row is never all -inf (no NaN); padded outputs
are set to zero after each block. Attention runs in ``F.scaled_dot_product_attention``
(fused kernels on CPU and GPU).

Positions are learned and counted from the right (``PositionalEmbedding``): the last item of a
left-padded window always has position L - 1, so trimming all-padding columns
(``sequences.trim_padding``) changes nothing.

``last_only=True`` computes the final block's queries at the last position only: the models
read only that row (the representation of the whole history), and all the other rows of the
final block would be thrown away. Exact, and about a quarter of the encoder's work saved.

**Training rows** (Mult-VAE, CFGAN): training densifies every user's row once and reuses it
each epoch; scoring densifies ``score_chunk`` users at a time (at most ``SCORE_BUDGET`` floats),
so scoring a few users of a large catalogue never builds the whole (n_users, n_items) matrix.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from ..data import user_ids
from ..recommend import SCORE_BUDGET


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of steps t (B,) (integers, or floats for rescaled steps) -> (B, dim)."""
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 2 or dim % 2:
        raise ValueError(f"embedding dim must be an even number >= 2, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float().unsqueeze(1) * freqs.unsqueeze(0)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def attention_mask(pad: torch.Tensor, causal: bool, n_queries: int | None = None) -> torch.Tensor:
    """Boolean mask (B, 1, Lq, L) for SDPA: True = may attend. pad (B, L) True at PAD positions.

    Queries are the last ``n_queries`` positions (default all L). A query always sees itself.
    """
    B, L = pad.shape
    Lq = L if n_queries is None else n_queries
    q_pos = torch.arange(L - Lq, L, device=pad.device)[:, None]        # (Lq, 1)
    k_pos = torch.arange(L, device=pad.device)[None, :]                # (1, L)
    allowed = ~pad[:, None, :]                                          # (B, 1, L) keys
    if causal:
        allowed = allowed & (k_pos <= q_pos)                            # (B, Lq, L)
    allowed = allowed | (k_pos == q_pos)                                # itself, always
    return allowed.unsqueeze(1)


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention; x (B, L, d), queries from the last Lq rows -> (B, Lq, d)."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        if isinstance(heads, bool) or not isinstance(heads, numbers.Integral) or heads < 1:
            raise ValueError(f"heads must be a positive integer, got {heads!r}")
        if d % heads:
            raise ValueError(f"hidden size {d} must be divisible by the number of heads {heads}")
        self.heads, self.dropout = heads, dropout
        self.W_Q, self.W_KV, self.W_O = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)

    def forward(self, q_in: torch.Tensor, kv_in: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """q_in (B, Lq, d), kv_in (B, L, d), mask (B, 1, Lq, L) or None -> (B, Lq, d)."""
        B, Lq, d = q_in.shape
        split = lambda x: x.view(B, x.shape[1], self.heads, d // self.heads).transpose(1, 2)
        q = split(self.W_Q(q_in))                                       # (B, h, Lq, d_k)
        k, v = (split(x) for x in self.W_KV(kv_in).chunk(2, dim=-1))    # (B, h, L, d_k)
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        return self.W_O(out.transpose(1, 2).reshape(B, Lq, d))


class TransformerBlock(nn.Module):
    """One encoder block; see the module docstring for the two orders of LayerNorm."""

    def __init__(self, d: int, heads: int, dropout: float, norm_first: bool = True, eps: float = 1e-12):
        super().__init__()
        self.norm_first = norm_first
        self.attn = MultiHeadAttention(d, heads, dropout)
        self.ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"), nn.Dropout(dropout),
                                 nn.Linear(4 * d, d))
        self.ln_attn, self.ln_ffn = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None, n_queries: int) -> torch.Tensor:
        """h (B, L, d), mask (B, 1, Lq, L) -> (B, Lq, d), the last Lq = n_queries rows."""
        if self.norm_first:
            x = self.ln_attn(h)
            h = h[:, -n_queries:] + self.drop(self.attn(x[:, -n_queries:], x, mask))
            return h + self.drop(self.ffn(self.ln_ffn(h)))
        h = self.ln_attn(h[:, -n_queries:] + self.drop(self.attn(h[:, -n_queries:], h, mask)))
        return self.ln_ffn(h + self.drop(self.ffn(h)))


class PositionalEmbedding(nn.Module):
    """Learned positions counted from the right: window column j of L gets p_{max_len - L + j}."""

    def __init__(self, max_len: int, d: int):
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.empty(max_len, d).normal_(0, 0.02))

    def forward(self, L: int) -> torch.Tensor:
        if L > self.max_len:
            raise ValueError(f"sequence length {L} exceeds max_len {self.max_len}")
        return self.weight[self.max_len - L:]                           # (L, d)


class TransformerEncoder(nn.Module):
    """A stack of ``n_blocks`` blocks over item representations with a PAD mask.

    Args:
        d: hidden size; heads: attention heads; dropout: on attention weights, FFN and residuals.
        causal: SASRec's left-to-right attention (True) or DiffuRec's bidirectional (False).
        norm_first: pre-LN (True) or post-LN blocks.
        final_norm: a LayerNorm after the last block (pre-LN stacks usually want one).
        block_dropout: extra dropout on each block's output (DiffuRec's released blocks).
    """

    def __init__(self, d: int = 128, heads: int = 4, n_blocks: int = 2, dropout: float = 0.1,
                 causal: bool = False, norm_first: bool = True, final_norm: bool = False,
                 block_dropout: bool = False):
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        self.causal, self.block_dropout = causal, block_dropout
        self.blocks = nn.ModuleList(TransformerBlock(d, heads, dropout, norm_first) for _ in range(n_blocks))
        self.norm = nn.LayerNorm(d, eps=1e-12) if final_norm else nn.Identity()
        self.drop = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, pad: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """h (B, L, d) item representations, pad (B, L) bool True at PAD.

        Returns (B, L, d) with zeros at PAD positions, or (B, d) for the last position when
        ``last_only`` (the final block then computes that row only).
        """
        if h.shape[:2] != pad.shape:
            raise ValueError(f"h has shape {tuple(h.shape)} but pad has {tuple(pad.shape)}; need (B, L, d) and (B, L)")
        if pad.dtype != torch.bool:
            raise ValueError(f"pad must be a bool mask (True at PAD), got dtype {pad.dtype}")
        L = h.shape[1]
        full, keep = attention_mask(pad, self.causal), (~pad).unsqueeze(-1).to(h.dtype)
        for j, block in enumerate(self.blocks):
            last = last_only and j == len(self.blocks) - 1
            n_q = 1 if last else L
            h = block(h, full[:, :, -n_q:], n_q)
            if self.block_dropout:
                h = self.drop(h)
            h = h * keep[:, -n_q:]
        h = self.norm(h) * keep[:, -h.shape[1]:]           # the final LayerNorm keeps PAD rows at zero
        return h[:, -1] if last_only else h


class TrainRows:
    """Dense training rows for a model that reads a user's row ``data.train[u]`` (Mult-VAE, CFGAN).

    The model has ``n_items`` and parameters (their device and dtype are the rows'). Training
    (``batches``) densifies every row once, kept while ``data.train``, the device and the dtype
    stay the same; scoring (``score_rows``) takes the rows of ``score_chunk`` users at a time,
    from that matrix when it is kept, else from the sparse rows of those users only.
    """

    score_chunk: int = 1024                  # users per chunk of score_rows (fewer on a large catalogue)
    _dense: tuple | None = None              # (data.train, its dense copy) while kept

    def _check_items(self, data) -> None:
        if data.n_items != self.n_items:
            raise ValueError(f"data has {data.n_items} items but the model was built for {self.n_items}")

    def _kept(self, data, w: torch.Tensor) -> torch.Tensor | None:
        """The kept dense matrix when it is ``data.train``'s on ``w``'s device and dtype, else None."""
        kept = self._dense
        if kept is None or kept[0] is not data.train or kept[1].device != w.device or kept[1].dtype != w.dtype:
            return None
        return kept[1]

    def input_matrix(self, data) -> torch.Tensor:
        """Every user's training row, (n_users, n_items) dense on the model's device, in its dtype
        (float32 unless the model was made ``.double()``); kept for the next call."""
        w = next(self.parameters())
        self._check_items(data)
        if self._kept(data, w) is None:
            dense = data.train.toarray() if sp.issparse(data.train) else data.train
            self._dense = (data.train, torch.as_tensor(dense, dtype=w.dtype, device=w.device))
        return self._dense[1]

    def input_rows(self, data, users) -> torch.Tensor:
        """The training rows of ``users``, (len(users), n_items) dense on the model's device and
        dtype: from the kept matrix when it is ``data.train``'s, else densified for these users only."""
        w = next(self.parameters())
        self._check_items(data)
        users = user_ids(users, data.n_users)
        kept = self._kept(data, w)
        if kept is not None:
            return kept[torch.as_tensor(users, device=w.device)]
        rows = data.train[users]
        rows = rows.toarray() if sp.issparse(rows) else rows
        return torch.as_tensor(rows, dtype=w.dtype, device=w.device)

    def batches(self, data, batch_size: int, generator: torch.Generator | None = None):
        """One shuffled epoch of dense user rows (B, n_items) on the model's device."""
        x = self.input_matrix(data)
        order = torch.randperm(data.n_users, generator=generator).to(x.device)
        yield from (x[idx] for idx in order.split(batch_size))

    def score_rows(self, data, users, fn: Callable[[torch.Tensor], torch.Tensor],
                   chunk: int | None = None) -> torch.Tensor:
        """``fn`` (rows (B, n_items) -> scores (B, n_items)) over the training rows of ``users``,
        ``chunk`` users at a time (default ``score_chunk``, fewer if a chunk would pass
        ``SCORE_BUDGET`` floats); the (len(users), n_items) scores, in the users' order."""
        self._check_items(data)
        users = user_ids(users, data.n_users)
        chunk = max(1, min(int(chunk or self.score_chunk), SCORE_BUDGET // max(self.n_items, 1)))
        if len(users) <= chunk:
            return fn(self.input_rows(data, users))
        return torch.cat([fn(self.input_rows(data, users[i:i + chunk])) for i in range(0, len(users), chunk)])
