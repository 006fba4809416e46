r"""L-DiffRec (Wang et al., SIGIR 2023, section 3.5): diffusion in a compressed latent space.

DiffRec's denoiser reads and writes whole interaction rows, so its first and last layers
hold ~2 x I x h weights (I items): the model grows linearly with the catalogue. L-DiffRec
diffuses a short latent code instead.

1. **Cluster the items.** KMeans on item embeddings (from LightGCN) splits the I items into
   C groups; item i falls in cluster c(i), cluster c holds I_c items.
2. **One variational encoder per cluster.** User row x (I,) is cut into parts x^c (I_c,);
   encoder c maps its part to a mean and log-variance of size d_c (d_c proportional to
   I_c, the d_c summing to d), and the codes are concatenated:

   .. math::

       [\mu^c, \log\sigma^{2,c}] = \tanh(W^c\, \mathrm{dropout}(x^c) + b^c), \qquad
       z_0 = [\,\mu^1 + \sigma^1 \epsilon^1;\ \dots;\ \mu^C + \sigma^C \epsilon^C\,] \in \mathbb R^d

   (the tanh on the output follows the released code; at inference z_0 = mu).
3. **Diffusion on z_0.** The forward process, the x0-predicting MLP f_theta(z_t, t) and the
   reverse chain are DiffRec's, with d in place of I.
4. **Decode.** The denoised code is mapped back to scores of all I items (one linear
   decoder over the whole code, as in the released code, or one MLP per cluster when
   ``decoder_dims`` is given), reassembled into the original item order.

Training is joint (autoencoder and denoiser, two learning rates). The released code's loss
for one batch, with importance-sampled steps t ~ p_t:

.. math::

    L = \lambda_e \,\underbrace{\mathbb E_t \frac{(\mathrm{SNR}(t-1)-\mathrm{SNR}(t))\,
        \|f_\theta(z_t,t)-z_0\|^2 / d}{T p_t}}_{\text{diffusion}}
        \;\underbrace{-\ \tfrac{1}{B}\sum_u \sum_i x_{ui} \log \mathrm{softmax}
        (\mathrm{dec}(f_\theta(z_t, t)))_i}_{\text{multinomial reconstruction}}
        \;+\ \beta_s\, \underbrace{\mathrm{KL}(q(z_0|x)\,\|\,\mathcal N(0, I))}_{\text{VAE prior}}

with the diffusion weight annealed down per epoch e, lambda_e = max((1 - e / 500) lambda,
0.005), and the KL weight annealed up per step s, beta_s = min(s / 200, 0.3). The paper's
ML-1M setting: C = 2, encoder [300], MLP [300], lambda = 0.03, T = 40, noise
0.005 / 0.005 / 0.02, lr 1e-3 (autoencoder) and 5e-4 (denoiser). Inference: z = mu(x), the
reverse chain from z (``sampling_steps = 0``: no noise added), scores = dec(z_hat).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from ..data import user_ids
from ..diffusion import GaussianDiffusion
from ..recommend import Recommender
from ..schedules import get_betas
from ..step_sampler import StepSampler
from .diffrec import DiffRecMLP
from .lightgcn import LightGCN


# ----------------------------------------------------------------------------- clusters
def item_embeddings(data, dim: int = 64, layers: int = 3, epochs: int = 20, lr: float = 1e-3,
                    batch_size: int = 2048, reg: float = 1e-4, device="auto", seed: int = 0,
                    progress: bool = True) -> np.ndarray:
    """Train LightGCN briefly (seeded); its item embeddings (I, d). A short run is enough (items that
    co-occur end up close); the released code loads a fully trained LightGCN's embeddings."""
    from ..train import fit
    from ..utils import seed_everything

    seed_everything(seed)
    model = LightGCN(data, dim=dim, layers=layers, reg=reg)
    fit(model, data, epochs=epochs, lr=lr, batch_size=batch_size, optimizer="adam",
        eval_every=None, patience=None, test=False, device=device, seed=seed, progress=progress)
    return model.item_embeddings()


def cluster_items(item_embeddings, n_clusters: int, seed: int = 0) -> np.ndarray:
    """KMeans labels (I,) in 0..C-1 of the item embeddings (I, e), renumbered by cluster size
    (largest first), so the labels do not depend on KMeans' arbitrary numbering."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    emb = np.asarray(item_embeddings, dtype=np.float64)
    if emb.ndim != 2:
        raise ValueError(f"item_embeddings must have shape (n_items, dim), got {emb.shape}")
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) or n_clusters < 1:
        raise ValueError(f"n_clusters must be a positive integer, got {n_clusters!r}")
    if n_clusters > len(emb):
        raise ValueError(f"cannot split {len(emb)} items into {n_clusters} clusters: "
                         "need n_clusters <= n_items")
    if n_clusters == 1:
        return np.zeros(len(emb), dtype=np.int64)
    with warnings.catch_warnings():        # too few distinct points: our error below says it
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = KMeans(n_clusters, n_init=10, random_state=seed).fit_predict(emb)
    found = len(np.unique(labels))
    if found < n_clusters:
        raise ValueError(f"KMeans found only {found} distinct clusters among the item embeddings "
                         f"(too many identical embeddings?); ask for at most {found}")
    by_size = np.argsort(-np.bincount(labels, minlength=n_clusters), kind="stable")
    return np.argsort(by_size)[labels].astype(np.int64)


def latent_sizes(cluster_sizes: Sequence[int], dims: Sequence[int],
                 what: str = "encoder_dims") -> list[list[int]]:
    """Per-cluster layer widths: cluster c gets int(I_c / I * h) of every width h (>= 1), the last
    cluster the remainder, so each layer sums to ``dims`` (the released code's split). Where that
    leaves the last cluster nothing, the layer is split by largest remainder after one unit per
    cluster. Returns C lists, each as long as ``dims``; ``what`` names ``dims`` in errors."""
    sizes, total = list(cluster_sizes), sum(cluster_sizes)
    if min(dims) < len(sizes):
        raise ValueError(f"{what} {list(dims)} are too small for {len(sizes)} clusters: "
                         "every cluster needs at least one latent unit per layer")
    columns = []
    for h in dims:
        col = [max(1, int(n / total * h)) for n in sizes[:-1]]
        col.append(h - sum(col))
        if col[-1] < 1:
            col = _largest_remainder(sizes, h)
        columns.append(col)
    return [list(row) for row in zip(*columns)]


def _largest_remainder(sizes: Sequence[int], h: int) -> list[int]:
    """h units over len(sizes) parts: one each, the other h - C in proportion to sizes."""
    share = np.asarray(sizes, dtype=float) / sum(sizes) * (h - len(sizes))
    out = np.floor(share).astype(int)
    out[np.argsort(-(share - out), kind="stable")[:h - len(sizes) - out.sum()]] += 1
    return (out + 1).tolist()


def _mlp(widths: Sequence[int], final_tanh: bool) -> nn.Sequential:
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    if not final_tanh:
        layers.pop()
    for layer in layers:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- autoencoder
class ClusterVAE(nn.Module):
    """Per-cluster variational encoders and the decoder(s) back to all items.

    clusters: (I,) cluster label of every item, labels 0..C-1 all used.
    encoder_dims: widths of each encoder as if there were one cluster, e.g. [300]
        (the last one is the latent size d); split across clusters by ``latent_sizes``.
    decoder_dims: hidden widths of per-cluster decoders; empty = one linear decoder d -> I.
    """

    def __init__(self, clusters, encoder_dims: Sequence[int] = (300,),
                 decoder_dims: Sequence[int] = (), dropout: float = 0.1):
        super().__init__()
        clusters = np.asarray(clusters)
        if clusters.ndim != 1 or len(clusters) == 0 or not np.issubdtype(clusters.dtype, np.integer):
            raise ValueError(f"clusters must be a non-empty 1-D integer array (one label per item), "
                             f"got shape {clusters.shape} dtype {clusters.dtype}")
        if clusters.min() < 0:
            raise ValueError(f"cluster labels must be 0..C-1, got {int(clusters.min())}")
        C = int(clusters.max()) + 1
        sizes = np.bincount(clusters, minlength=C)
        if (sizes == 0).any():
            raise ValueError(f"cluster labels must be 0..C-1 with no empty cluster, got sizes {sizes.tolist()}")
        if not encoder_dims or min(encoder_dims) < 1:
            raise ValueError(f"encoder_dims must be a non-empty list of positive widths, got {encoder_dims!r}")
        self.n_items, self.n_clusters = len(clusters), C
        self.cluster_sizes = sizes.tolist()
        order = np.argsort(clusters, kind="stable")     # items grouped by cluster ("category_map")
        self.register_buffer("order", torch.as_tensor(order, dtype=torch.long), persistent=False)
        self.register_buffer("inverse", torch.as_tensor(np.argsort(order), dtype=torch.long),
                             persistent=False)
        widths = latent_sizes(self.cluster_sizes, encoder_dims)        # C x len(encoder_dims)
        self.latent_dims = [w[-1] for w in widths]                    # d_c
        self.latent_dim = sum(self.latent_dims)                       # d
        self.encoders = nn.ModuleList(
            _mlp([n, *w[:-1], 2 * w[-1]], final_tanh=True) for n, w in zip(self.cluster_sizes, widths))
        if decoder_dims:
            hidden = [latent_sizes(self.cluster_sizes, decoder_dims, "decoder_dims")[c] for c in range(C)]
            self.decoders = nn.ModuleList(
                _mlp([d, *h, n], final_tanh=False)
                for d, h, n in zip(self.latent_dims, hidden, self.cluster_sizes))
        else:
            self.decoders = nn.ModuleList([_mlp([self.latent_dim, self.n_items], final_tanh=False)])
        self.drop = nn.Dropout(dropout)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, I) in item order -> mu, logvar (B, d), the per-cluster codes concatenated."""
        if x.ndim != 2 or x.shape[1] != self.n_items:
            raise ValueError(f"x must have shape (B, {self.n_items}), got {tuple(x.shape)}")
        parts = self.drop(x)[:, self.order].split(self.cluster_sizes, dim=1)
        mus, logvars = zip(*(enc(p).chunk(2, dim=1) for enc, p in zip(self.encoders, parts)))
        return torch.cat(mus, dim=1), torch.cat(logvars, dim=1)

    def reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = mu + sigma * eps while training, z = mu in eval mode; (B, d)."""
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, d) -> item logits (B, I) in the original item order."""
        if len(self.decoders) == 1:
            out = self.decoders[0](z)
        else:
            out = torch.cat([dec(p) for dec, p in zip(self.decoders, z.split(self.latent_dims, dim=1))], 1)
        return out[:, self.inverse]

    @staticmethod
    def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """KL(N(mu, diag exp(logvar)) || N(0, I)), summed over d, averaged over the batch."""
        return -0.5 * torch.mean(torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1))


def multinomial_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-1/B sum_u sum_i x_ui log softmax(logits_u)_i (Mult-VAE's likelihood); a scalar."""
    return -(F.log_softmax(logits, dim=1) * x).sum(dim=1).mean()


# ----------------------------------------------------------------------------- the model
class LDiffRec(Recommender, nn.Module):
    """L-DiffRec in the model protocol; defaults are the paper's ML-1M settings.

    Args:
        n_items: I.
        clusters: (I,) cluster label per item (``cluster_items``); None = a single cluster.
        encoder_dims, decoder_dims, dropout: see ``ClusterVAE``.
        mlp_dims: hidden widths of the latent denoiser, d -> mlp_dims -> d.
        lambda_, lambda_min, lambda_anneal_epochs: diffusion-loss weight, annealed per epoch.
        kl_max, kl_anneal_steps: KL weight, annealed per step up to kl_max.
        lr_ae, lr_denoiser: the two learning rates (``configure_optimizers``).
        input_fn: data -> (n_users, I) matrix used as x (default ``data.train``; LT-DiffRec
            passes time-weighted rows).
    """

    denoiser_class = DiffRecMLP

    def __init__(self, n_items: int, clusters=None, encoder_dims: Sequence[int] = (300,),
                 decoder_dims: Sequence[int] = (), dropout: float = 0.1,
                 mlp_dims: Sequence[int] = (300,), emb_size: int = 10, mlp_dropout: float = 0.5,
                 T: int = 40, noise_scale: float = 0.005, noise_min: float = 0.005,
                 noise_max: float = 0.02, step_sampling: str = "importance", reweight: bool = True,
                 lambda_: float = 0.03, lambda_min: float = 0.005, lambda_anneal_epochs: int = 500,
                 kl_max: float = 0.3, kl_anneal_steps: int = 200, lr_ae: float = 1e-3,
                 lr_denoiser: float = 5e-4, sampling_steps: int = 0,
                 input_fn: Callable | None = None):
        super().__init__()
        if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)) or n_items < 1:
            raise ValueError(f"n_items must be a positive integer, got {n_items!r}")
        clusters = np.zeros(n_items, np.int64) if clusters is None else np.asarray(clusters)
        if len(clusters) != n_items:
            raise ValueError(f"clusters has {len(clusters)} labels but n_items = {n_items}: "
                             "one cluster label per item")
        if not 0 <= sampling_steps <= T:
            raise ValueError(f"sampling_steps must lie in [0, T={T}], got {sampling_steps}")
        self.n_items = int(n_items)
        self.vae = ClusterVAE(clusters, encoder_dims, decoder_dims, dropout)
        d = self.vae.latent_dim
        self.denoiser = self.denoiser_class([d, *mlp_dims[::-1]], [*mlp_dims, d], emb_size=emb_size,
                                            dropout=mlp_dropout)
        betas = get_betas("linear-var", T, noise_scale=noise_scale, noise_min=noise_min,
                          noise_max=noise_max)
        self.diffusion = GaussianDiffusion(betas, "x0")
        self.sampler = StepSampler(T, step_sampling)
        self.reweight, self.sampling_steps, self.input_fn = reweight, sampling_steps, input_fn
        self.lambda_, self.lambda_min, self.lambda_anneal_epochs = lambda_, lambda_min, lambda_anneal_epochs
        self.kl_max, self.kl_anneal_steps = kl_max, kl_anneal_steps
        self.lr_ae, self.lr_denoiser = lr_ae, lr_denoiser
        # annealing clocks: buffers, so that checkpoints resume them
        self.register_buffer("epochs_done", torch.zeros((), dtype=torch.long))
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ data
    def input_rows(self, data, users) -> torch.Tensor:
        """Dense rows x (len(users), I) of ``data.train`` (or ``input_fn(data)``), on the model's device."""
        if data.n_items != self.n_items:
            raise ValueError(f"data has {data.n_items} items but the model was built for {self.n_items}")
        matrix = sp.csr_matrix(data.train if self.input_fn is None else self.input_fn(data))
        w = self.denoiser.emb_layer.weight
        rows = matrix[user_ids(torch.as_tensor(users).cpu().numpy(), data.n_users)].toarray()
        return torch.as_tensor(rows, dtype=w.dtype, device=w.device)

    def batches(self, data, batch_size: int, generator: torch.Generator | None = None):
        """One shuffled epoch of dense user rows x (B, I), made from the sparse matrix per batch."""
        for users in torch.randperm(data.n_users, generator=generator).split(batch_size):
            yield self.input_rows(data, users)

    # ------------------------------------------------------------------ training
    def configure_optimizers(self, lr=None, weight_decay: float = 0.0) -> torch.optim.Optimizer:
        """AdamW, lr_ae for the autoencoder and lr_denoiser for the MLP (``fit``'s lr is ignored)."""
        return torch.optim.AdamW([{"params": self.vae.parameters(), "lr": self.lr_ae},
                                  {"params": self.denoiser.parameters(), "lr": self.lr_denoiser}],
                                 weight_decay=weight_decay)

    def weights(self) -> tuple[float, float]:
        """Current (lambda_e, beta_s): the diffusion and KL weights of the annealing schedules."""
        e, s = int(self.epochs_done), int(self.steps_done)
        lam = self.lambda_ if self.lambda_anneal_epochs <= 0 else (1 - e / self.lambda_anneal_epochs) * self.lambda_
        beta = self.kl_max if self.kl_anneal_steps <= 0 else min(self.kl_max, s / self.kl_anneal_steps)
        return max(lam, self.lambda_min), beta

    def loss_terms(self, x: torch.Tensor) -> dict:
        """The three terms of the loss for a batch x (B, I), unweighted, and the total.

        Like a training step, it records the batch's diffusion losses in the importance
        sampler (its p_t), so calling it to inspect the terms nudges later step draws."""
        mu, logvar = self.vae.encode(x)
        z0 = self.vae.reparameterize(mu, logvar)
        t, w = self.sampler.sample(x.shape[0], device=x.device)
        terms = self.diffusion.training_losses(self.denoiser, z0, t, reweight=self.reweight)
        self.sampler.update(t, terms["loss"])
        diffusion = (terms["loss"] / w).mean()
        recon = multinomial_nll(self.vae.decode(terms["output"]), x)
        kl = self.vae.kl(mu, logvar)
        lam, beta = self.weights()
        return {"diffusion": diffusion, "reconstruction": recon, "kl": kl,
                "loss": lam * diffusion + recon + beta * kl}

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return self.loss_terms(x)["loss"]

    def on_step_end(self, step: int) -> None:
        self.steps_done += 1

    def on_epoch_end(self, epoch: int) -> None:
        self.epochs_done += 1

    def get_extra_state(self) -> torch.Tensor:     # training state: checkpoints resume it
        return self.sampler.state()

    def set_extra_state(self, state: torch.Tensor) -> None:
        self.sampler.load_state(state)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(self, x: torch.Tensor, return_latents: bool = False):
        """Scores (B, I) for rows x (B, I): encode -> reverse chain in latent space -> decode;
        with ``return_latents`` also (z0 (B, d), z0_hat (B, d))."""
        mu, logvar = self.vae.encode(x)
        z0 = self.vae.reparameterize(mu, logvar)
        z_hat = self.diffusion.p_sample_loop(self.denoiser, z0, steps=self.sampling_steps)
        scores = self.vae.decode(z_hat)
        return (scores, z0, z_hat) if return_latents else scores

    @torch.no_grad()
    def score(self, data, users, split: str = "valid") -> torch.Tensor:
        """(len(users), I) scores from each user's training row (both splits, as DiffRec)."""
        return self.predict(self.input_rows(data, users))
