"""The papers' settings for every model of the course, and ``--set key=value`` on top of them.

``RECIPES[name]`` is a :class:`Recipe`: the model's keyword arguments and ``train.fit``'s
settings as the papers (or our validation tuning, where a paper gives none) chose them, plus
the smaller settings the recipes use on small data (the synthetic world). ``diffrec-tutorial
train`` takes the small settings for data with fewer than ``SMALL_DATA_INTERACTIONS``
interactions and the papers' otherwise (:func:`choose_settings`; ``--small`` / ``--paper``
choose). ``benchmarks/recipes/`` reads the same dicts, so ``benchmarks/reproduce.py`` and
``diffrec-tutorial train`` train a model with the same numbers; benchmarks/RESULTS.md says
where each one comes from.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Callable

# ---- DiffRec (Wang et al., SIGIR 2023) and its baselines on ML-1M
EPOCHS = 1000                      # the released code's limit; early stopping ends far sooner
DIFFREC = dict(dims=(200, 600), emb_size=10, T=40, noise_schedule="linear-var", noise_scale=0.005,
               noise_min=0.005, noise_max=0.01, mean_type="x0", step_sampling="importance",
               reweight=True, sampling_steps=0)
DIFFREC_TRAIN = dict(lr=1e-3, weight_decay=0.0, batch_size=400, epochs=EPOCHS, eval_every=5, patience=20)
LAMBDAS = (50.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 2000.0)
MULTIVAE = dict(hidden=(600,), latent=200, dropout=0.5, anneal_cap=0.2, total_anneal_steps=2_000)
MULTIVAE_TRAIN = dict(lr=1e-3, batch_size=500, optimizer="adam")
# the synthetic world is small (600 users x 400 items): a smaller net, a few more updates
SYNTHETIC_DIFFREC = dict(DIFFREC, dims=(64,), T=10)
SYNTHETIC_MULTIVAE = dict(MULTIVAE, hidden=(64,), latent=32, total_anneal_steps=200)

# ---- L-DiffRec, T-DiffRec, LT-DiffRec
W_MIN, W_MAX = 0.1, 1.0
# 20 epochs: chosen on validation over 3 (diffrec_sweep.py --family ldiffrec: 0.1093 vs 0.1064)
LIGHTGCN = {"dim": 64, "layers": 3, "epochs": 20, "lr": 1e-2, "batch_size": 8192}
# on the small synthetic world the paper's learning rates need many more epochs
SYNTHETIC_LR = {"lr_ae": 1e-2, "lr_denoiser": 5e-3}
LDIFFREC_TRAIN = dict(batch_size=400, epochs=EPOCHS, eval_every=5, patience=20)

# ---- CFGAN (Chae et al., CIKM 2018), tuned on ML-1M validation (benchmarks/recipes/cfgan.py)
CFGAN_BASE = dict(g_hidden=(300,), d_hidden=(250,), s_zr=0.9, s_pm=0.9)
CFGAN_ML1M = dict(CFGAN_BASE, alpha=1.0, s_zr=0.5, s_pm=0.0)
CFGAN_ML1M_TRAIN = dict(lr=3e-3, batch_size=64)
CFGAN_SYNTHETIC = dict(g_hidden=(128,), d_hidden=(64,), s_zr=0.5, s_pm=0.5, alpha=1.0)
CFGAN_SYNTHETIC_TRAIN = dict(lr=3e-3, batch_size=64)

# ---- LightGCN (He et al., SIGIR 2020) as a recommender, tuned on ML-1M validation
# (benchmarks/recipes/lightgcn.py; L-DiffRec's clusters use the short LIGHTGCN run above)
LIGHTGCN_ML1M = dict(dim=64, layers=3, reg=1e-3)
LIGHTGCN_ML1M_TRAIN = dict(lr=1e-2, batch_size=8192)
# small data: chosen on the clean synthetic world's validation split (notebook 08) over d 32 / 64,
# reg 1e-4 / 1e-3, batch 512 / 2048, lr 1e-2 / 3e-2 (best: 0.4759 against 0.4555 to 0.4674)
LIGHTGCN_SYNTHETIC = dict(dim=64, layers=3, reg=1e-3)
LIGHTGCN_SYNTHETIC_TRAIN = dict(lr=1e-2, batch_size=2048)

# ---- DiffuRec (Li, Sun & Li, TOIS 2023), SASRec, SeqDiffRec (Du et al.) on Amazon Beauty
DIFFUREC = dict(hidden=128, max_len=50, n_blocks=4, heads=4, dropout=0.1, emb_dropout=0.3, T=32,
                schedule="trunc-linear", lambda_mean=0.001, lambda_std=0.001, lr_decay_step=100)
DIFFUREC_TRAIN = dict(lr=1e-3, batch_size=512, epochs=500, eval_every=20, patience=5 * 20)
SASREC = dict(hidden=64, max_len=50, n_blocks=2, heads=1, dropout=0.5)
SASREC_TRAIN = dict(lr=1e-3, batch_size=128, epochs=200, eval_every=5, patience=20)
FAST_DIFFUREC = dict(DIFFUREC, hidden=32, n_blocks=1, heads=2, emb_dropout=0.1, T=8)
FAST_TRAIN = dict(lr=1e-2, batch_size=128, epochs=8, eval_every=4, patience=None)
FAST_SASREC = dict(SASREC, hidden=32, n_blocks=1, dropout=0.2)
FAST_SASREC_TRAIN = dict(lr=5e-3, batch_size=64, epochs=8, eval_every=4, patience=None)
SEQDIFFREC = dict(hidden=128, max_len=50, n_layers=2, n_heads=2, dropout=0.1, T=200, schedule="linear",
                  inference_steps=5)
SEQDIFFREC_TRAIN = dict(lr=1e-3, batch_size=512, epochs=500, eval_every=20, patience=5 * 20)
FAST_SEQDIFFREC = dict(SEQDIFFREC, hidden=32, n_layers=1, T=100)
FAST_SEQDIFFREC_TRAIN = dict(lr=5e-3, batch_size=128, epochs=8, eval_every=4, patience=None)

TRAIN_KEYS = ("lr", "weight_decay", "batch_size", "epochs", "eval_every", "patience")
# Fewer interactions than this (train + valid + test): the small settings, unless --paper. The
# papers' settings are for ML-1M and Amazon Beauty (hundreds of thousands of interactions), the
# small ones for the synthetic world (600 users x 400 items, about 21,000 interactions).
SMALL_DATA_INTERACTIONS = 50_000


@dataclass(frozen=True)
class Recipe:
    """How ``diffrec-tutorial train`` builds and trains one model.

    family: "closed" (``model.fit(data)``), "rows" (a user's interaction row in, scores out:
    the DiffRec family, Mult-VAE, CFGAN; Recall/NDCG@10,20, history masked) or "sequential"
    (next item: HR/NDCG@5,10,20 x100, DiffuRec's protocol). ``model`` / ``train``: the
    paper's settings (``train``: fit's, keys from TRAIN_KEYS); ``small_*``: the settings for
    small data. ``build(n_items, settings, data, seed, device)`` makes the model.
    """

    family: str
    build: Callable
    model: dict
    train: dict = field(default_factory=dict)
    small_model: dict | None = None
    small_train: dict | None = None
    optimizer: str | None = None          # fit's optimizer: None = the model's configure_optimizers
    eval_batch_size: int = 2048
    source: str = ""

    def settings(self, small: bool = False) -> dict:
        """The default settings, one flat dict (model keys, then fit's)."""
        model = self.small_model if small and self.small_model is not None else self.model
        train = self.small_train if small and self.small_train is not None else self.train
        return {**model, **train}

    def source_of(self, small: bool = False) -> str:
        """Where the settings of :meth:`settings` (``small``) come from: :attr:`source` for the
        paper's (and for small data when the recipe has no settings of its own for it), else
        a label saying they are the small-data ones."""
        if not small or self.settings(True) == self.settings(False):
            return self.source
        return (f"small-data settings, chosen for the synthetic world (600 users x 400 items), "
                f"not the paper's ({self.source})")

    def split(self, settings: dict) -> tuple[dict, dict]:
        """(model keyword arguments, fit settings) of a flat settings dict."""
        train_keys = set(self.train) | set(self.small_train or {})
        return ({k: v for k, v in settings.items() if k not in train_keys},
                {k: v for k, v in settings.items() if k in train_keys})


def choose_settings(n_interactions: int, small: bool = False, paper: bool = False) -> tuple[bool, str]:
    """(small settings?, one line saying which settings train and why): ``small`` / ``paper``
    (--small, --paper) choose; else the small ones below SMALL_DATA_INTERACTIONS interactions."""
    if small:
        return True, "settings: small-data (--small)"
    if paper:
        return False, "settings: the paper's (--paper)"
    if n_interactions < SMALL_DATA_INTERACTIONS:
        return True, (f"settings: small-data, as the data has {n_interactions:,} interactions (fewer than "
                      f"{SMALL_DATA_INTERACTIONS:,}); --paper trains with the paper's settings")
    return False, (f"settings: the paper's, as the data has {n_interactions:,} interactions "
                   f"({SMALL_DATA_INTERACTIONS:,} or more); --small trains with the small-data settings")


# ---- building the models (imports inside: `diffrec-tutorial --help` stays fast)

def _popularity(n_items, s, data, seed, device):
    from ..models.popularity import Popularity
    return Popularity()


def _ease(n_items, s, data, seed, device):
    from ..models.ease import EASE
    return EASE()                          # lambda: chosen on validation among s["lambdas"]


def _multivae(n_items, s, data, seed, device):
    from ..models.multivae import MultiVAE
    return MultiVAE(n_items, **s)


def _diffrec(n_items, s, data, seed, device):
    from ..models.diffrec_fast import FastDiffRec
    return FastDiffRec(n_items, **s)


def _tdiffrec(n_items, s, data, seed, device):
    from ..models.diffrec_fast import FastTDiffRec
    return FastTDiffRec(n_items, **s)


def _latent(cls_name):
    def build(n_items, s, data, seed, device):
        from ..distributed import broadcast_array
        from ..models import diffrec_fast
        from ..models.ldiffrec import cluster_items, item_embeddings
        from ..utils import seed_everything

        s = dict(s)
        gcn = {k[len("lightgcn_"):]: s.pop(k) for k in list(s) if k.startswith("lightgcn_")}
        n_clusters = s.pop("n_clusters")
        emb = item_embeddings(data, device=device, seed=seed, progress=False, **gcn)
        clusters = broadcast_array(cluster_items(emb, n_clusters, seed=seed))   # rank 0's labels
        seed_everything(seed)
        return getattr(diffrec_fast, cls_name)(n_items, clusters=clusters, **s)
    return build


def _cfgan(n_items, s, data, seed, device):
    from ..models.cfgan import CFGAN
    return CFGAN(n_items, **s)


def _lightgcn(n_items, s, data, seed, device):
    from ..models.lightgcn_fast import FastLightGCN
    return FastLightGCN(data, **s)


def _sasrec(n_items, s, data, seed, device):
    from ..models.sasrec import SASRec
    return SASRec(n_items, **s)


def _diffurec(n_items, s, data, seed, device):
    from ..models.diffurec import DiffuRec
    # length chunks on CPU only, fp32 on every device (bf16 measured slower on an H200)
    return DiffuRec(n_items, **s, chunk_size=None if device.type == "cuda" else 64, amp=False,
                    eval_seed=seed)


def _seqdiffrec(n_items, s, data, seed, device):
    from ..models.seqdiffrec import SeqDiffRec
    return SeqDiffRec(n_items, **s, seed=seed)


_LATENT = dict(n_clusters=2, **{f"lightgcn_{k}": v for k, v in LIGHTGCN.items()}, lr_ae=1e-3,
               lr_denoiser=5e-4)                  # L-DiffRec's two learning rates (fit's lr is unused)
_TDIFFREC = dict(DIFFREC, w_min=W_MIN, w_max=W_MAX)
_MULTIVAE_TRAIN = dict(DIFFREC_TRAIN, lr=MULTIVAE_TRAIN["lr"], batch_size=MULTIVAE_TRAIN["batch_size"])
RECIPES = {
    "popularity": Recipe("closed", _popularity, {}, source="item counts in train"),
    "ease": Recipe("closed", _ease, {"lambdas": LAMBDAS}, small_model={"lambdas": LAMBDAS[:2]},
                   source="Steck 2019; lambda chosen on validation Recall@20"),
    "multivae": Recipe("rows", _multivae, MULTIVAE, _MULTIVAE_TRAIN, SYNTHETIC_MULTIVAE,
                       dict(_MULTIVAE_TRAIN, lr=1e-2), optimizer=MULTIVAE_TRAIN["optimizer"],
                       source="Liang et al. 2018; KL annealing tuned on ML-1M validation"),
    "diffrec": Recipe("rows", _diffrec, DIFFREC, DIFFREC_TRAIN, SYNTHETIC_DIFFREC, DIFFREC_TRAIN,
                      source="Wang et al. 2023, best ML-1M settings"),
    "tdiffrec": Recipe("rows", _tdiffrec, _TDIFFREC, dict(LDIFFREC_TRAIN, lr=1e-3), eval_batch_size=1024,
                       source="Wang et al. 2023, DiffRec's ML-1M settings on time-weighted rows"),
    "ldiffrec": Recipe("rows", _latent("FastLDiffRec"), _LATENT, LDIFFREC_TRAIN,
                       dict(_LATENT, **SYNTHETIC_LR), LDIFFREC_TRAIN, eval_batch_size=1024,
                       source="Wang et al. 2023, ML-1M; LightGCN epochs chosen on validation"),
    "ltdiffrec": Recipe("rows", _latent("FastLTDiffRec"), dict(_LATENT, w_min=W_MIN, w_max=W_MAX),
                        LDIFFREC_TRAIN, dict(_LATENT, **SYNTHETIC_LR, w_min=W_MIN, w_max=W_MAX),
                        LDIFFREC_TRAIN, eval_batch_size=1024, source="Wang et al. 2023, ML-1M"),
    "cfgan": Recipe("rows", _cfgan, CFGAN_ML1M, dict(DIFFREC_TRAIN, **CFGAN_ML1M_TRAIN), CFGAN_SYNTHETIC,
                    dict(DIFFREC_TRAIN, **CFGAN_SYNTHETIC_TRAIN),
                    source="Chae et al. 2018; ZR share, alpha and lr chosen on ML-1M validation"),
    "lightgcn": Recipe("rows", _lightgcn, LIGHTGCN_ML1M, dict(DIFFREC_TRAIN, **LIGHTGCN_ML1M_TRAIN),
                       LIGHTGCN_SYNTHETIC, dict(DIFFREC_TRAIN, **LIGHTGCN_SYNTHETIC_TRAIN), optimizer="adam",
                       source="He et al. 2020; BPR, lr, batch and reg chosen on ML-1M validation"),
    "sasrec": Recipe("sequential", _sasrec, SASREC, SASREC_TRAIN, FAST_SASREC, FAST_SASREC_TRAIN,
                     optimizer="adam", eval_batch_size=1024, source="Kang & McAuley 2018, sparse Amazon data"),
    "diffurec": Recipe("sequential", _diffurec, DIFFUREC, DIFFUREC_TRAIN, FAST_DIFFUREC, FAST_TRAIN,
                       eval_batch_size=1024, source="Li, Sun & Li 2023, Amazon Beauty"),
    "seqdiffrec": Recipe("sequential", _seqdiffrec, SEQDIFFREC, SEQDIFFREC_TRAIN, FAST_SEQDIFFREC,
                         FAST_SEQDIFFREC_TRAIN, optimizer="adam", eval_batch_size=1024,
                         source="Du et al. 2023 with DiffuRec's budget"),
}
# data-parallel training (torchrun): the models whose every update is one loss.backward()
# (CFGAN steps its discriminator inside loss(); the closed forms have nothing to train;
# LightGCN propagates over the whole graph at every step and has not been run under torchrun)
PARALLEL = ("multivae", "diffrec", "tdiffrec", "ldiffrec", "ltdiffrec", "sasrec", "diffurec", "seqdiffrec")


# ---- --set key=value

def parse_value(key: str, text: str, default):
    """``text`` as the type of ``default``: a tuple from "200,600" or "[200, 600]", a bool from
    true/false, an int, a float, None from "none"; a one-line ValueError otherwise."""
    kind = type(default).__name__
    try:
        if text.strip().lower() == "none" and (default is None or key == "patience"):
            return None
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if isinstance(default, tuple):
            items = ast.literal_eval(text) if text.strip()[:1] in "[(" else text.split(",")
            items = [items] if isinstance(items, (int, float)) else items
            cast = float if default and isinstance(default[0], float) else int
            return tuple(cast(x) for x in items if str(x).strip() != "")
        if isinstance(default, int) or (default is None and key == "patience"):
            return int(text)
        if isinstance(default, float):
            return float(text)
        return text if isinstance(default, str) else ast.literal_eval(text)
    except (ValueError, SyntaxError):
        want = {"tuple": "a list of numbers such as 200,600", "bool": "true or false",
                "int": "an integer", "float": "a number", "NoneType": "an integer or none"}
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else repr(default)
        raise ValueError(f"--set {key}={text}: {key} takes {want.get(kind, 'a ' + kind)} "
                         f"(default {shown})") from None


def apply_overrides(model: str, settings: dict, pairs) -> dict:
    """``settings`` with each "key=value" of ``pairs`` applied; an unknown key is a ValueError
    naming the valid ones."""
    out = dict(settings)
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set {pair!r}: write key=value, e.g. --set lr=1e-4")
        if key not in settings:
            valid = ", ".join(sorted(settings)) or "none (it has no settings)"
            raise ValueError(f"--set {key}: {model} has no setting {key!r}; valid keys: {valid}")
        out[key] = parse_value(key, text.strip(), settings[key])
    return out
