r"""DiffuRec (Li, Sun & Li, TOIS 2023): the next item as a distribution, reached by diffusion.

Items are not fixed points. The target item's embedding e_{n+1} is the x_0 of a Gaussian
diffusion with the truncated linear schedule (T = 32, beta from 0.013 to 0.635):

    x_t = sqrt(alpha_bar_t) e_{n+1} + sqrt(1 - alpha_bar_t) eps,      t ~ Uniform{1..T}

The **Approximator** f_theta reconstructs x_0 from x_t and the history. The noised target is
injected into every history position as *uncertainty*, scaled by a random lambda:

    z_t      = x_t + MLP(SinEmb(t * 1000 / T))                   step embedding
    lambda   ~ N(0.001, 0.001^2) elementwise (mean 0.001, std 0.001), shape (B, L, d)
    H        = Transformer(LN(Dropout_0.3(E[s])) + lambda * z_t)   bidirectional, 4 blocks
    x0_hat   = LN(Dropout(H))[:, -1]                              the last position

and is trained with the cross-entropy of x0_hat against all item embeddings (the paper's
"rounding" of the continuous representation back to a discrete item):

    L = - log softmax_i(x0_hat . e_i)[i_{n+1}]

Inference starts from pure noise x_T ~ N(0, I) and walks the reverse chain with the
posterior of the diffusion module, x_{t-1} ~ q(x_{t-1} | x_t, x0_hat(x_t, t)) for
t = T..1, the last step returning x0_hat itself; items are ranked by x_0 . e_i.

Differences from the released code (WHUIR/DiffuRec), all deliberate:
* padded positions are masked as attention *keys* (the release masks query rows, so its
  padding embeddings leak into real positions and the amount of padding changes the output;
  ``research/ablations.py`` puts the release's mask back)
* the reverse chain samples with the posterior variance beta~_t (the release uses beta_t)
* inference noise comes from a seeded generator, so evaluation is reproducible
* the padding id is not a candidate item: not in the ranking, and not in the training
  cross-entropy's softmax (the release keeps the padding row there as one more negative class)
Speed: the last block computes the last position only (exact); on a CPU batches are sorted by
length and trimmed of padding chunk by chunk (``sequences.length_chunks``: exact for the
network, but the noise is drawn chunk by chunk, so ``chunk_size``, the other users in a chunk
and the device decide which user gets which draw; the same settings repeat exactly).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..diffusion import GaussianDiffusion
from ..data import user_ids
from ..recommend import Recommender
from ..schedules import get_betas
from ..sequences import (MAX_LEN, PAD, SequenceBatches, check_batch, check_max_len, eval_inputs,
                         length_chunks)
from .layers import TransformerEncoder, timestep_embedding


class Approximator(nn.Module):
    """f_theta(x_t, t | history) -> x0_hat: the Transformer that denoises the target embedding."""

    def __init__(self, hidden: int = 128, heads: int = 4, n_blocks: int = 4, dropout: float = 0.1,
                 T: int = 32, lambda_mean: float = 0.001, lambda_std: float = 0.001):
        super().__init__()
        self.hidden, self.T = hidden, T
        self.lambda_mean, self.lambda_std = lambda_mean, lambda_std
        self.step_mlp = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.SiLU(), nn.Linear(4 * hidden, hidden))
        self.encoder = TransformerEncoder(hidden, heads, n_blocks, dropout, causal=False,
                                          norm_first=True, block_dropout=True)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, h: torch.Tensor, pad: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """h (B, L, d) embedded history, pad (B, L) True at PAD, x_t (B, d), t (B,) 0-based -> (B, d)."""
        if x_t.shape != (h.shape[0], h.shape[2]):
            raise ValueError(f"x_t must have shape {(h.shape[0], h.shape[2])}, got {tuple(x_t.shape)}")
        z = x_t + self.step_mlp(timestep_embedding(t.float() * (1000.0 / self.T), self.hidden).to(x_t.dtype))
        lam = self.lambda_mean + self.lambda_std * torch.randn(h.shape, generator=generator,
                                                               device=h.device, dtype=h.dtype)
        r = self.encoder(h + lam * z.unsqueeze(1), pad, last_only=True)          # (B, d)
        return self.norm(self.dropout(r))


class DiffuRec(Recommender, nn.Module):
    """DiffuRec with the paper's defaults; follows the train.fit model protocol.

    Args:
        n_items: number of items (embedding table n_items + 1 rows; row 0 = PAD).
        hidden, max_len, n_blocks, heads, dropout, emb_dropout: 128, 50, 4, 4, 0.1, 0.3.
        T, schedule: diffusion steps and beta schedule (32, "trunc-linear").
        lambda_mean, lambda_std: the uncertainty scale lambda ~ N(mean, std^2), both 0.001.
        chunk_size: length-sorted micro-batches (None = trim the whole batch only).
        amp: bf16 autocast; None = on CUDA only.
        eval_seed: seeds the inference noise (x_T, the reverse steps' noise and lambda).
        lr_decay_step, lr_gamma: the released code's StepLR (lr x 0.1 every 100 epochs), applied
            when train.fit builds the optimizer with ``configure_optimizers`` (optimizer=None).
    """

    def __init__(self, n_items: int, hidden: int = 128, max_len: int = MAX_LEN, n_blocks: int = 4,
                 heads: int = 4, dropout: float = 0.1, emb_dropout: float = 0.3, T: int = 32,
                 schedule: str = "trunc-linear", lambda_mean: float = 0.001, lambda_std: float = 0.001,
                 chunk_size: int | None = 64, amp: bool | None = None, eval_seed: int = 0,
                 lr_decay_step: int | None = 100, lr_gamma: float = 0.1):
        super().__init__()
        if n_items < 1:
            raise ValueError(f"n_items must be >= 1, got {n_items}")
        if hidden < 2 or hidden % 2:
            raise ValueError(f"hidden must be an even number >= 2 (the sinusoidal step embedding "
                             f"has hidden / 2 frequencies), got {hidden}")
        self.n_items, self.hidden, self.max_len = n_items, hidden, check_max_len(max_len)
        self.chunk_size, self.amp, self.eval_seed = chunk_size, amp, eval_seed
        self.item_emb = nn.Embedding(n_items + 1, hidden)                       # N(0, 1), as released
        self.emb_dropout = nn.Dropout(emb_dropout)
        self.emb_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.diffusion = GaussianDiffusion(get_betas(schedule, T), mean_type="x0")
        self.approximator = Approximator(hidden, heads, n_blocks, dropout, T, lambda_mean, lambda_std)
        self.lr_decay_step, self.lr_gamma = lr_decay_step, lr_gamma
        self._optimizer: torch.optim.Optimizer | None = None
        self._train_cache: tuple[object, SequenceBatches] | None = None

    @property
    def T(self) -> int:
        return self.diffusion.T

    def _autocast(self, device: torch.device):
        on = (device.type == "cuda") if self.amp is None else self.amp
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=on)

    def embed(self, windows: torch.Tensor) -> torch.Tensor:
        """windows (B, L) ids + 1 -> LN(Dropout(E[windows])) (B, L, d); no positions, as released."""
        return self.emb_norm(self.emb_dropout(self.item_emb(windows)))

    def _chunks(self, windows: torch.Tensor):
        """[(rows, trimmed windows)]: the batch sorted by length, in chunks (sequences.length_chunks)."""
        return length_chunks(windows, self.chunk_size)

    def logits(self, x0: torch.Tensor) -> torch.Tensor:
        """x0 (B, d) -> (B, n_items): inner products with every item embedding ("rounding").

        Always in float32 (float64 for a ``.double()`` model), also under bf16 autocast: bf16
        scores would tie among 10k items."""
        w = self.item_emb.weight[1:]
        dtype = torch.promote_types(w.dtype, torch.float32)
        with torch.autocast(x0.device.type, enabled=False):
            return x0.to(dtype) @ w.to(dtype).T

    # ------------------------------------------------------------------ train.fit protocol
    def configure_optimizers(self, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
        """Adam, as released; ``on_epoch_end`` then decays its lr every ``lr_decay_step`` epochs."""
        self._optimizer = torch.optim.Adam(self.parameters(), lr=lr, weight_decay=weight_decay)
        for group in self._optimizer.param_groups:
            group["initial_lr"] = lr
        return self._optimizer

    def on_epoch_end(self, epoch: int) -> None:
        """StepLR from the epoch count alone (so a resumed run decays at the same epochs)."""
        if self._optimizer is None or not self.lr_decay_step:
            return
        for group in self._optimizer.param_groups:
            group["lr"] = group["initial_lr"] * self.lr_gamma ** (epoch // self.lr_decay_step)

    def batches(self, data, batch_size: int, generator: torch.Generator | None = None):
        """One epoch of (window (B, L), target (B,)) over every training prefix, shuffled."""
        if self._train_cache is None or self._train_cache[0] is not data:      # the object, not id():
            self._train_cache = (data, SequenceBatches(data, self.max_len))    # ids are reused
        return self._train_cache[1].batches(batch_size, generator)

    def loss(self, batch) -> torch.Tensor:
        """Cross-entropy of x0_hat(x_t, t) . E^T against the target, t uniform; mean over the batch."""
        windows, targets = batch
        check_batch(windows, targets, self.n_items)
        total = 0.0
        with self._autocast(windows.device):
            for rows, w in self._chunks(windows):
                y = targets[rows]
                x0 = self.item_emb(y + 1)                                            # e_{n+1}
                t = torch.randint(0, self.T, (len(y),), device=w.device)
                x_t = self.diffusion.q_sample(x0, t)
                x0_hat = self.approximator(self.embed(w), w == PAD, x_t, t)
                total = total + F.cross_entropy(self.logits(x0_hat).float(), y, reduction="sum")
        return total / len(targets)

    @torch.no_grad()
    def reverse(self, windows: torch.Tensor, generator: torch.Generator | None = None,
                return_trajectory: bool = False):
        """x_T ~ N(0, I) -> x_0 for each history window (B, L): (B, d), or with the
        trajectory (T + 1, B, d) of states x_T, ..., x_1, x_0 and the x0_hat of each step (T, B, d).
        """
        h, pad = self.embed(windows), windows == PAD
        f = lambda x, t: self.approximator(h, pad, x, t, generator)
        x = torch.randn(len(windows), self.hidden, generator=generator, device=windows.device, dtype=h.dtype)
        states, preds = [x], []
        for i in reversed(range(self.T)):
            x, x0_hat = self.diffusion.p_sample(f, x, i, sampling_noise=True, generator=generator)
            states.append(x)
            preds.append(x0_hat)
        return (x, torch.stack(states), torch.stack(preds)) if return_trajectory else x

    def generator_for(self, users: torch.Tensor, device) -> torch.Generator:
        """The inference generator of a batch: seeded by eval_seed and the batch's first user."""
        first = int(users[0]) if len(users) else 0
        return torch.Generator(device=device).manual_seed(self.eval_seed * 1_000_003 + first)

    @torch.no_grad()
    def score(self, data, users, split: str = "valid", generator: torch.Generator | None = None) -> torch.Tensor:
        """(len(users), n_items): x_0 . e_i after the reverse chain from noise. Seeded: in eval
        mode the same users (in the same batches) give the same scores every time (in training
        mode dropout makes them differ). ``users=None``: every user."""
        dev = self.item_emb.weight.device
        users = np.arange(data.n_users) if users is None else users
        users = torch.from_numpy(user_ids(users, data.n_users))   # one id is a batch of one
        windows = eval_inputs(data, split, users, self.max_len).to(dev)
        gen = self.generator_for(users, dev) if generator is None else generator
        out = torch.empty(len(windows), self.n_items, device=dev,
                          dtype=torch.promote_types(self.item_emb.weight.dtype, torch.float32))
        with self._autocast(dev):
            for rows, w in self._chunks(windows):
                out[rows] = self.logits(self.reverse(w, gen))
        return out
