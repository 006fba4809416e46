r"""Robustness to noisy training data, measured as DiffRec's paper measures it.

Inject random interactions into the training split, train each model on the noisy training
data, and evaluate it on the clean held-out data (validation for early stopping, test for the
figure). For user u with n_u training interactions and a share s, the injection adds

    m_u = round(s * n_u)

items drawn uniformly, without replacement, from the items u never interacted with in any
split (so an injected item is never a held-out answer). The relative change of a metric is

    change(s) = 100 * (metric(s) / metric(0) - 1)     in %, negative = the model lost accuracy

The same injected interactions (one draw per share and seed) are shown to every model.

**The mask confound.** The evaluation takes a user's training items off their list, and the
injected items are training items that are never held-out answers. So the noise also removes
wrong answers from every list, which raises the metric whatever the model learned. The
*mask-only* control measures that part alone: the model trained on clean data, evaluated with
the same draw's injected items taken off its lists (:func:`mask_only`). The part of the
change that the training noise causes is the net change,

    net(s) = change(s) - mask_only(s)     in points of %

(Popularity, whose counts uniform noise barely moves, gains about its mask-only change.)
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from itertools import starmap

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..data import InteractionData, split_sizes
from ..metrics import evaluate

__all__ = ["inject_interactions", "noise_robustness", "relative_change", "mask_only", "SHARES"]

SHARES = (0.0, 0.1, 0.2, 0.4)          # the injected shares of the paper's figure (a subset)


def _check_share(share) -> float:
    if isinstance(share, bool) or not isinstance(share, (int, float, np.integer, np.floating)):
        raise ValueError(f"share must be a number in [0, 1], got {share!r}")
    if not 0.0 <= float(share) <= 1.0:
        raise ValueError(f"share (injected / training interactions per user) must lie in [0, 1], got {share}")
    return float(share)


def inject_interactions(data: InteractionData, share: float, seed: int = 0) -> tuple[InteractionData, sp.csr_matrix]:
    """A noisy copy of ``data`` and the (n_users, n_items) 0/1 CSR mask of what was injected.

    Each user gets round(share * n_u) random items from those not in any of their splits
    (fewer if the catalogue runs out); valid and test are kept as they are (clean). The copy
    has no sequences or timestamps: injected interactions have no time. Seeded by ``seed``.
    """
    share = _check_share(share)
    rng = np.random.default_rng(seed)
    train = data.train.tocsr()
    seen = (data.train + data.valid + data.test).tocsr()
    n_inject = split_sizes(np.diff(train.indptr), share)
    users, items = [], []
    for u in np.flatnonzero(n_inject):
        free = np.setdiff1d(np.arange(data.n_items), seen.indices[seen.indptr[u]:seen.indptr[u + 1]])
        pick = rng.choice(free, size=min(int(n_inject[u]), len(free)), replace=False)
        users.append(np.full(len(pick), u))
        items.append(pick)
    users = np.concatenate(users) if users else np.zeros(0, np.int64)
    items = np.concatenate(items) if items else np.zeros(0, np.int64)
    injected = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=train.shape)
    noisy = InteractionData(train=train + injected, valid=data.valid, test=data.test,
                            name=f"{data.name} + {share:.0%} injected")
    return noisy, injected


Trainer = Callable[[InteractionData, int], object]     # (data, seed) -> a model with .score(data, users, split)


def noise_robustness(data: InteractionData, trainers: Mapping[str, Trainer], shares: Sequence[float] = SHARES,
                     seeds: Sequence[int] = (0,), ks: Sequence[int] = (10, 20), keep_models: bool = False,
                     progress: bool = False, callback: Callable[[dict], None] | None = None,
                     measures: Callable[[object, InteractionData], dict] | None = None, n_jobs: int = 1):
    """Train every model on ``data`` with each injected share; evaluate on the clean test split.

    trainers: ``{name: trainer(noisy_data, seed) -> model}``, the model fitted (early stopping
    on the clean validation split is up to the trainer) and scoring with
    ``model.score(data, users, split)``. Returns a DataFrame with one row per (share, seed,
    model): ``model, share, seed, injected`` (interactions added), the test metrics at ``ks``
    and ``seconds`` (training + evaluation); with ``keep_models`` also ``{(name, share, seed):
    model}``. ``callback(row)`` is called with each row as soon as it is made (e.g. to append it
    to a file during a long run). ``measures(model, noisy_data) -> {name: number}`` adds
    columns to each row (e.g. coverage of the test lists, ``beyond_accuracy``).

    n_jobs: runs trained at once, each in its own process (joblib's loky backend, one thread
    each); every run seeds itself, so the numbers are those of ``n_jobs=1``. Worth it for
    many small runs on a multi-core CPU; each process starts by importing torch (seconds).
    """
    if not trainers:
        raise ValueError("trainers is empty: pass {name: trainer(data, seed) -> model}")
    if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}")
    shares = [_check_share(s) for s in shares]
    runs = []                                                     # (share, seed, name, noisy data, injected)
    for share in shares:
        for seed in seeds:
            noisy, injected = inject_interactions(data, share, seed=seed)
            runs += [(share, seed, name, noisy, injected.nnz) for name in trainers]
    jobs = ((trainers[name], noisy, seed, ks, measures) for _, seed, name, noisy, _ in runs)
    if n_jobs == 1:
        done = starmap(_train_and_test, jobs)
    else:
        from joblib import Parallel, delayed
        done = Parallel(n_jobs=n_jobs, return_as="generator")(delayed(_train_and_test)(*job) for job in jobs)
    rows, models = [], {}
    for (share, seed, name, _, injected), (model, row) in zip(runs, done):
        rows.append({"model": name, "share": share, "seed": seed, "injected": injected, **row})
        if callback is not None:
            callback(rows[-1])
        if progress:
            print(f"share {share:.0%}  seed {seed}  {name:12s} recall@{max(ks)} "
                  f"{row[f'recall@{max(ks)}']:.4f}  ({row['seconds']:.1f} s)", flush=True)
        if keep_models:
            models[(name, share, seed)] = model
    table = pd.DataFrame(rows)
    return (table, models) if keep_models else table


def _train_and_test(train: Trainer, noisy: InteractionData, seed: int, ks, measures) -> tuple[object, dict]:
    """One run: the model ``train(noisy, seed)`` and its row (test metrics, seconds, measures)."""
    start = time.perf_counter()
    model = train(noisy, seed)
    test = evaluate(lambda u: model.score(noisy, u, "test"), noisy, "test", ks=ks)
    row = {k: v for k, v in test.items() if k != "n_users"}
    row["seconds"] = time.perf_counter() - start
    if measures is not None:
        row.update(measures(model, noisy))
    return model, row


def relative_change(results: pd.DataFrame, metric: str = "recall@20") -> pd.DataFrame:
    """Per model and share: the mean ``metric`` over seeds, its sd, the number of seeds and
    the change in % from the model's own share-0 mean (``change_%``; negative = lost).

    results: what :func:`noise_robustness` returns (it must include share 0).
    """
    if metric not in results:
        raise ValueError(f"no {metric!r} column; the results have {sorted(results.columns)}")
    if not (results["share"] == 0).any():
        raise ValueError("relative_change needs the clean runs (share 0) as its reference")
    g = results.groupby(["model", "share"], sort=False)[metric]
    table = pd.DataFrame({"mean": g.mean(), "sd": g.std(ddof=1), "seeds": g.size()}).reset_index()
    clean = table[table["share"] == 0].set_index("model")["mean"]
    table["change_%"] = 100 * (table["mean"] / table["model"].map(clean) - 1)
    return table


def mask_only(data: InteractionData, clean_models: Mapping[str, object], shares: Sequence[float] = SHARES,
              seeds: Sequence[int] = (0,), metric: str = "recall@20") -> pd.DataFrame:
    """The mask confound alone: each model trained on clean data, scored from the clean rows,
    evaluated with each draw's injected items also taken off its lists.

    clean_models: ``{name: model}`` or ``{(name, seed): model}`` (one clean model per seed),
    scoring with ``model.score(data, users, split)``. Returns one row per (model, share):
    ``model, share, mask_only_%`` = 100 * (mean over seeds of metric with the draw masked /
    mean over seeds of metric without - 1), the draws being ``inject_interactions(data,
    share, seed)``, the same as :func:`noise_robustness` shows the models.
    """
    shares, k = [_check_share(s) for s in shares], int(metric.split("@")[1])
    rows = []
    for key, model in clean_models.items():
        name, model_seeds = (key[0], [key[1]]) if isinstance(key, tuple) else (key, list(seeds))
        score = lambda u, m=model: m.score(data, u, "test")          # the clean row in, always
        base = evaluate(score, data, "test", ks=(k,))[metric]
        for share in shares:
            for seed in model_seeds:
                noisy, _ = inject_interactions(data, share, seed=seed)     # only its mask is used
                rows.append({"model": name, "share": share, "base": base,
                             "masked": evaluate(score, noisy, "test", ks=(k,))[metric]})
    agg = pd.DataFrame(rows).groupby(["model", "share"], sort=False)[["base", "masked"]].mean().reset_index()
    agg["mask_only_%"] = 100 * (agg["masked"] / agg["base"] - 1)
    return agg[["model", "share", "mask_only_%"]]
