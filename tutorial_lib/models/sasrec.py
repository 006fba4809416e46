r"""SASRec (Kang & McAuley, ICDM 2018): self-attentive sequential recommendation.

The standard sequential baseline. A causal Transformer reads the history; the representation
at position k scores every item by an inner product with the (shared) item embeddings:

    h^0_k = sqrt(d) * e_{i_k} + p_k                       item + learned position (from the right)
    H     = TransformerEncoder_causal(Dropout(H^0))       position k attends to positions <= k
    r(i | i_1..i_k) = h_k . e_i                            next-item score

Training uses every position of a user's window at once (inputs s[:-1], targets s[1:]) with
the full softmax over all items (cross-entropy; the 2018 paper sampled one negative with a
binary loss, the full softmax is the stronger and now usual choice):

    L = - sum_k log softmax_i(h_k . e_i)[i_{k+1}]

At test time the last position's h scores the items. ``chunk_size`` sorts a batch by length
and trims padding chunk by chunk (``sequences.length_chunks``): same loss, less work.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..recommend import Recommender
from ..sequences import (MAX_LEN, PAD, check_batch, check_batch_size, check_max_len, eval_inputs,
                         length_chunks, next_item_windows)
from .layers import PositionalEmbedding, TransformerEncoder


class SASRec(Recommender, nn.Module):
    """SASRec with full-softmax training; see the module docstring.

    Args:
        n_items: number of items (ids 0..n_items-1; the embedding table has one more row, PAD).
        hidden, max_len, n_blocks, heads, dropout: the Transformer (paper: 50, 50, 2, 1, 0.5 Beauty).
        chunk_size: length-sorted micro-batches (None: trim the whole batch only).
        amp: bf16 autocast; None = on CUDA only.
    """

    def __init__(self, n_items: int, hidden: int = 64, max_len: int = MAX_LEN, n_blocks: int = 2,
                 heads: int = 1, dropout: float = 0.2, chunk_size: int | None = 128, amp: bool | None = None):
        super().__init__()
        if n_items < 1:
            raise ValueError(f"n_items must be >= 1, got {n_items}")
        self.n_items, self.hidden, self.max_len = n_items, hidden, check_max_len(max_len)
        self.chunk_size, self.amp = chunk_size, amp
        self.item_emb = nn.Embedding(n_items + 1, hidden, padding_idx=PAD)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[PAD].zero_()
        self.pos_emb = PositionalEmbedding(max_len, hidden)
        self.emb_dropout = nn.Dropout(dropout)
        self.encoder = TransformerEncoder(hidden, heads, n_blocks, dropout, causal=True,
                                          norm_first=True, final_norm=True)
        self._train_cache: tuple[object, tuple[torch.Tensor, torch.Tensor]] | None = None

    def _autocast(self, device: torch.device):
        on = (device.type == "cuda") if self.amp is None else self.amp
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=on)

    def represent(self, windows: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """windows (B, L) ids + 1 -> H (B, L, d), or (B, d) at the last position."""
        pad = windows == PAD
        h = self.item_emb(windows) * math.sqrt(self.hidden) + self.pos_emb(windows.shape[1])
        h = self.emb_dropout(h) * (~pad).unsqueeze(-1)
        return self.encoder(h, pad, last_only=last_only)

    def logits(self, r: torch.Tensor) -> torch.Tensor:
        """r (..., d) -> scores (..., n_items): inner products with every item's embedding (float32,
        also under bf16 autocast; float64 for a ``.double()`` model)."""
        w = self.item_emb.weight[1:]
        dtype = torch.promote_types(w.dtype, torch.float32)
        with torch.autocast(r.device.type, enabled=False):
            return r.to(dtype) @ w.to(dtype).T

    # ------------------------------------------------------------------ train.fit protocol
    def batches(self, data, batch_size: int, generator: torch.Generator | None = None):
        """One epoch of (inputs (B, L), targets (B, L)) user windows, shuffled."""
        check_batch_size(batch_size)
        if self._train_cache is None or self._train_cache[0] is not data:      # the object, not id():
            self._train_cache = (data, next_item_windows(data, self.max_len))  # ids are reused
        inputs, targets = self._train_cache[1]
        order = torch.randperm(len(inputs), generator=generator)
        for idx in order.split(batch_size):
            yield inputs[idx], targets[idx]

    def loss(self, batch) -> torch.Tensor:
        """Mean cross-entropy over every real position of the batch."""
        inputs, targets = batch
        check_batch(inputs, targets, self.n_items, ignore_index=-100)
        total, count = 0.0, 0
        with self._autocast(inputs.device):
            for rows, w in length_chunks(inputs, self.chunk_size):
                y = targets[rows][:, -w.shape[1]:]
                real = y != -100
                h = self.represent(w)[real]                                 # (n, d)
                total = total + F.cross_entropy(self.logits(h).float(), y[real], reduction="sum")
                count += int(real.sum())
        return total / max(count, 1)

    @torch.no_grad()
    def score(self, data, users, split: str = "valid") -> torch.Tensor:
        """(len(users), n_items) scores from the last position of each user's input window."""
        dev = self.item_emb.weight.device
        windows = eval_inputs(data, split, users, self.max_len).to(dev)
        out = torch.empty(len(windows), self.n_items, device=dev,
                          dtype=torch.promote_types(self.item_emb.weight.dtype, torch.float32))
        with self._autocast(dev):
            for rows, w in length_chunks(windows, self.chunk_size):
                out[rows] = self.logits(self.represent(w, last_only=True))
        return out
