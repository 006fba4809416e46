r"""SeqDiffRec: Du et al. (2023), "Sequential Recommendation with Diffusion Models" (arXiv 2304.04541).

The paper calls its model *DiffRec*; we call it **SeqDiffRec** because the course already has
Wang et al.'s DiffRec (notebook 03), a different model that diffuses a user's whole
interaction vector. Du et al. diffuse only the representation of the *next* item.

Discrete -> continuous -> discrete (two extra transitions around a Gaussian diffusion):

    q(h_0 | i)        = N(h_0; EMB(i), beta_1 I)              extra forward transition (embedding)
    q(h_t | h_{t-1})  = N(h_t; sqrt(1 - beta_t) h_{t-1}, beta_t I),  t = 1..T   (target only)
    p(h_{t-1} | h_t)  = N(h_{t-1}; mu~_t(h_t, h0_hat), beta~_t I),  h0_hat = f_theta(h_t, t, s)
    p(i | h_0)        = softmax(W h_0 + b)_i                   extra reverse transition (rounding)

Only the target item i = i_{n+1} is noised; the history s = (i_1..i_n) stays clean and is the
condition. The denoiser f_theta (the paper's "Denoise Sequential Recommender") is a Transformer
over [EMB(i_1), ..., EMB(i_n), h_t + STEP(t)] (plus positions) whose last output is h0_hat.

Objective. With h0_hat the prediction, every denoising KL term is an MSE,

    KL(q(h_{t-1}|h_t,h_0) || p(h_{t-1}|h_t)) = (SNR(t-1) - SNR(t)) / 2 * ||h0_hat - h_0||^2,

and the simplification drops the weight (as Ho et al. and Diffusion-LM do):

    L = E_{t, h_0, eps} [ ||f_theta(h_t, t, s) - h_0||^2 ]  -  log p(i | h_0)  -  log p(i | h0_hat)
        \_______________ denoising MSE _______________/     \_______ rounding terms ________/

-log p(i | h_0) on the sampled h_0 is Diffusion-LM's rounding term (it trains the embedding and
W); -log p(i | h0_hat) rounds the denoiser's own prediction, which is what inference ranks by.
``rounding="h0"`` keeps only the first (our closest reading of the paper), ``"h0_hat"`` only the
second, ``"both"`` (default) both: on the synthetic sequences the first alone lets the
embeddings grow less (the MSE pulls them towards small, alike vectors) and ends at about a
third of the default's HR@10 (notebook 07, exercise 1).

Steps are drawn by importance sampling: p_t proportional to sqrt(E[L_t^2]) over each step's
last 10 losses (``step_sampler.StepSampler("importance")``), so steps with larger loss are drawn
more often; each MSE is divided by T p_t, so the MSE term's estimate stays unbiased. The
rounding cross-entropy of h0_hat also depends on t but is not reweighted (our choice): it is
trained under p_t, so importance sampling also tilts it towards the large steps, where
inference starts (p_t rises with t). The recorded runs were trained this way. On the synthetic
sequences that tilt is what makes importance sampling beat uniform steps; with the
cross-entropy reweighted too, it does not (notebook 07, exercise 2).

Inference predicts h_0 directly from an intermediate step s <= T with few reverse steps:
h_s ~ N(0, I), then ``inference_steps`` x0-predicting steps on the sub-sequence of steps
s = tau_K > ... > tau_1 = 1 (alpha_bar respaced, as Nichol & Dhariwal do); with one step
h0_hat = f_theta(h_s, s, s_history). Scores are the logits W h0_hat + b.

What is our reading (no official code exists): the variance beta_1 of q(h_0|i); which h_0 the
rounding cross-entropy is taken on (above); the MSE averaged over the
hidden dimensions; h_s ~ N(0, I) at any start step; the respaced multi-step reverse; the
Transformer layout (learned positions, sinusoidal step embedding added to the target slot,
causal attention); the StepSampler's history of 10 losses and 0.1 % uniform mix; which terms
importance sampling reweights (the MSE only).

Shapes: ``history`` (B, L) item ids shifted by +1 (0 = padding, left-padded), ``target`` (B,)
0-based item ids, hidden vectors (B, d), scores (B, n_items).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import schedules, sequences
from ..diffusion import GaussianDiffusion, mean_flat, respaced
from ..recommend import Recommender
from ..step_sampler import StepSampler
from .layers import PositionalEmbedding, TransformerEncoder, timestep_embedding


class SeqDiffRec(Recommender, nn.Module):
    """Du et al.'s sequential diffusion recommender.

    Args:
        n_items: number of items (0-based ids; the model shifts by +1 for padding).
        hidden: d, the size of item embeddings and of h_t.
        max_len: history length L (the last ``max_len`` items are read).
        n_layers, n_heads, dropout: the denoising Transformer.
        T, schedule, schedule_kwargs: the diffusion (``schedules.get_betas(schedule, T, **kw)``).
        step_sampler: ``"importance"`` (the paper) or ``"uniform"``.
        start_step: paper step s in 1..T that inference starts from (default T).
        inference_steps: reverse steps from s down to 1 (1 = predict h_0 directly from h_s).
        rounding: which rounding cross-entropy to train: ``"h0"``, ``"h0_hat"`` or ``"both"``.
        seed: seeds the inference noise h_s, so that scores are reproducible.
        chunk_size: rows per length-sorted chunk on a CPU (``sequences.length_chunks``): less
            padding to attend over (None: the whole batch, trimmed). The network's output is
            the same; which user gets which noise draw depends on the chunks.
    """

    ROUNDING = ("h0", "h0_hat", "both")

    def __init__(self, n_items: int, hidden: int = 64, max_len: int = 50, n_layers: int = 2,
                 n_heads: int = 2, dropout: float = 0.1, T: int = 200, schedule: str = "linear",
                 schedule_kwargs: dict | None = None, step_sampler: str = "importance",
                 start_step: int | None = None, inference_steps: int = 1, rounding: str = "both",
                 seed: int = 0, chunk_size: int | None = 128):
        super().__init__()
        if rounding not in self.ROUNDING:
            raise ValueError(f"rounding must be one of {self.ROUNDING}, got {rounding!r}")
        if not isinstance(n_items, (int, np.integer)) or n_items < 1:
            raise ValueError(f"n_items must be a positive integer, got {n_items!r}")
        if hidden < 2 or hidden % 2:
            raise ValueError(f"hidden must be an even number >= 2 (the sinusoidal step embedding "
                             f"has hidden / 2 frequencies), got {hidden}")
        self.n_items, self.hidden, self.seed = int(n_items), hidden, seed
        self.max_len = sequences.check_max_len(max_len)
        self.rounding_on, self.chunk_size = rounding, chunk_size
        self.item_emb = nn.Embedding(n_items + 1, hidden, padding_idx=0)     # EMB(i), 0 = padding
        self.pos_emb = PositionalEmbedding(max_len + 1, hidden)               # history + target slot
        self.step_mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.dropout = nn.Dropout(dropout)
        self.encoder = TransformerEncoder(hidden, n_heads, n_layers, dropout, causal=True, final_norm=True)
        self.rounding = nn.Linear(hidden, n_items)                            # p(i | h_0) logits
        self.diffusion = GaussianDiffusion(schedules.get_betas(schedule, T, **(schedule_kwargs or {})), "x0")
        self.sampler = StepSampler(T, step_sampler)
        self.start_step, self.inference_steps = self._check_inference(start_step, inference_steps)
        self.updates, self.p_t_snapshots = 0, []     # training updates; (updates, p_t (T,)) per epoch

    @property
    def T(self) -> int:
        return self.diffusion.T

    # ----------------------------------------------------------------- the two extra transitions
    def q_h0(self, items: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Draw h_0 ~ q(h_0 | i) = N(EMB(i), beta_1 I); items (B,) 0-based -> (B, d)."""
        e = self.item_emb(items + 1)
        noise = torch.randn_like(e) if noise is None else noise
        return e + self.diffusion.betas[0].sqrt().to(e.dtype) * noise

    def round(self, h0: torch.Tensor) -> torch.Tensor:
        """Logits of p(i | h_0) = softmax(W h_0 + b); (B, d) -> (B, n_items)."""
        return self.rounding(h0)

    # ----------------------------------------------------------------- the denoiser
    def denoise(self, history: torch.Tensor, h_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """h0_hat = f_theta(h_t, t, history): history (B, L), h_t (B, d), 0-based t (B,) -> (B, d)."""
        L = history.shape[1]
        target_slot = h_t + self.step_mlp(timestep_embedding(t, self.hidden).to(h_t.dtype))      # (B, d)
        x = torch.cat([self.item_emb(history), target_slot[:, None]], 1)                       # (B, L+1, d)
        x = self.dropout(x + self.pos_emb(L + 1))
        pad = torch.cat([history == sequences.PAD, history.new_zeros(len(history), 1, dtype=torch.bool)], 1)
        return self.encoder(x, pad, last_only=True)

    def denoiser(self, history: torch.Tensor):
        """``f(h_t, t)`` for a fixed history, the form ``GaussianDiffusion`` methods take."""
        return lambda h_t, t: self.denoise(history, h_t, t)

    # ----------------------------------------------------------------- training
    def batches(self, data, batch_size: int, generator: torch.Generator | None = None):
        """Every prefix of every training sequence as (history, target), shuffled."""
        if getattr(self, "_prefixes", (None,))[0] is not data:                 # built once per data set
            self._prefixes = (data, sequences.SequenceBatches(data, self.max_len))
        return self._prefixes[1].batches(batch_size, generator)

    def losses(self, history: torch.Tensor, target: torch.Tensor, t: torch.Tensor,
               noise: torch.Tensor | None = None, h0_noise: torch.Tensor | None = None) -> dict:
        """Per-example terms at 0-based steps t (B,): ``mse`` ||h0_hat - h_0||^2 / d, ``ce_h0``
        -log p(i | h_0), ``ce_h0_hat`` -log p(i | h0_hat); also ``h0``, ``h_t``, ``h0_hat`` (B, d)."""
        self._check_batch(history, target)
        h0 = self.q_h0(target, h0_noise)
        h_t = self.diffusion.q_sample(h0, t, noise)
        h0_hat = self.denoise(history, h_t, t)
        ce = lambda h: F.cross_entropy(self.round(h), target, reduction="none")
        return {"mse": mean_flat((h0_hat - h0) ** 2), "ce_h0": ce(h0), "ce_h0_hat": ce(h0_hat),
                "h0": h0, "h_t": h_t, "h0_hat": h0_hat}

    def loss(self, batch) -> torch.Tensor:
        """The simplified objective: importance-weighted MSE + rounding cross-entropies (a scalar;
        the cross-entropies are not reweighted, see the module docstring)."""
        history, target = batch
        t, w = self.sampler.sample(len(target), history.device)
        dtype = self.rounding.weight.dtype                                  # float64 after .double()
        mse, ce = torch.empty_like(w, dtype=dtype), torch.empty_like(w, dtype=dtype)
        for rows, hist in sequences.length_chunks(history, self.chunk_size):
            out = self.losses(hist, target[rows], t[rows])
            mse[rows] = out["mse"]
            ce[rows] = {"h0": out["ce_h0"], "h0_hat": out["ce_h0_hat"],
                        "both": out["ce_h0"] + out["ce_h0_hat"]}[self.rounding_on]
        if self.training:
            self.sampler.update(t, mse)
            self.updates += 1
        return (mse / w).mean() + ce.mean()

    # The sampler's memory and the update counter are training state: checkpoints keep them,
    # so that train.fit(resume=True) continues exactly (the p_t snapshots are for plots only).
    def get_extra_state(self) -> dict:
        return {"sampler": self.sampler.state(), "updates": torch.tensor(self.updates)}

    def set_extra_state(self, state: dict) -> None:
        self.sampler.load_state(state["sampler"])
        self.updates = int(state["updates"])

    def on_epoch_end(self, epoch: int) -> None:
        """train.fit's hook: keep the sampler's p_t, to plot how importance sampling adapts."""
        self.p_t_snapshots.append((self.updates, self.sampler.probabilities().float()))

    # ----------------------------------------------------------------- inference
    def _check_inference(self, start_step, inference_steps) -> tuple[int, int]:
        s = self.T if start_step is None else start_step
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 1 <= s <= self.T:
            raise ValueError(f"start_step must be an integer step in [1, T={self.T}], got {start_step!r}")
        if isinstance(inference_steps, bool) or not isinstance(inference_steps, (int, np.integer)) \
                or not 1 <= inference_steps <= s:
            raise ValueError(f"inference_steps must be an integer in [1, start_step={s}], got {inference_steps!r}")
        return int(s), int(inference_steps)

    @torch.no_grad()
    def predict_h0(self, history: torch.Tensor, start_step: int | None = None,
                   inference_steps: int | None = None, generator: torch.Generator | None = None,
                   return_trajectory: bool = False):
        """h0_hat (B, d) from h_s ~ N(0, I) at paper step s, in ``inference_steps`` reverse steps.

        The steps s = tau_K > ... > tau_1 = 1 are evenly spaced; each step predicts h0_hat and
        moves to the posterior mean at the next step (no sampling noise). With
        ``return_trajectory`` also returns the K successive h0_hat (K, B, d).
        """
        self._check_batch(history)
        s, K = self._check_inference(self.start_step if start_step is None else start_step,
                                     self.inference_steps if inference_steps is None else inference_steps)
        taus = torch.linspace(s, 1, K).round().long().unique() - 1          # 0-based, increasing
        h = torch.randn(len(history), self.hidden, generator=generator).to(history.device, self.rounding.weight.dtype)
        sub = respaced(self.diffusion, taus).to(history.device)
        f = self.denoiser(history)
        path = []
        for k in reversed(range(len(taus))):
            h, h0_hat = sub.p_sample(lambda x, kk: f(x, taus.to(x.device)[kk]), h, k)
            path.append(h0_hat)
        return (h0_hat, torch.stack(path)) if return_trajectory else h0_hat

    @torch.no_grad()
    def score(self, data, users, split: str = "valid", start_step: int | None = None,
              inference_steps: int | None = None) -> torch.Tensor:
        """Logits W h0_hat + b for ``users`` (B, n_items); seeded, so calls in eval mode repeat
        exactly (in training mode dropout makes them differ)."""
        dev = self.rounding.weight.device
        history = sequences.eval_inputs(data, split, users, self.max_len).to(dev)
        generator = torch.Generator().manual_seed(self.seed)
        out = torch.empty(len(history), self.n_items, device=dev, dtype=self.rounding.weight.dtype)
        for rows, hist in sequences.length_chunks(history, self.chunk_size):
            out[rows] = self.round(self.predict_h0(hist, start_step, inference_steps, generator))
        return out

    # ----------------------------------------------------------------- input checks
    def _check_history(self, history: torch.Tensor) -> None:
        if history.ndim != 2 or history.shape[1] < 1:
            raise ValueError(f"history must be (B, L) item ids, got shape {tuple(history.shape)}")
        if history.shape[1] > self.max_len:
            raise ValueError(f"history length {history.shape[1]} exceeds max_len={self.max_len}")
        if (history == sequences.PAD).all(dim=1).any():
            raise ValueError("a history is empty (all padding): each user needs at least one item")

    def _check_batch(self, history: torch.Tensor, target: torch.Tensor | None = None) -> None:
        self._check_history(history)
        if target is not None and target.shape != (len(history),):
            raise ValueError(f"target must have shape ({len(history)},), got {tuple(target.shape)}")
        sequences.check_batch(history, target, self.n_items)
