"""``diffrec-tutorial train``: one model of the course on ``--data`` with its recipe, then the
JSON line, the checkpoint, (``--refit``) the same recipe retrained on every interaction for the
best epoch count, and (``--recommend K``) the top-K lists.

The result line has the keys of ``benchmarks/reproduce.py``'s: for the models that read a user's
row (the DiffRec family, Mult-VAE, CFGAN, EASE, popularity) the test Recall / NDCG @10, 20 at the
best validation Recall@20, history masked; for the sequential models (SASRec, DiffuRec,
SeqDiffRec) HR / NDCG @5, 10, 20 x100 with the history not masked (DiffuRec's protocol) and
``masked_*`` with it masked, the best epoch chosen on validation NDCG@10.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .. import checkpoint as ckpt
from .. import distributed
from ..recommend import SCORE_BUDGET, raw_ids
from .inputs import BadInput

KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
SEQ_KS = (5, 10, 20)
SEQ_KEYS = [f"{m}@{k}" for m in ("hr", "ndcg") for k in SEQ_KS]


def say(text: str) -> None:
    """A line on stderr from rank 0 (stdout keeps the JSON line last)."""
    if int(os.environ.get("RANK", "0")) == 0:                  # torchrun's rank, set before init
        print(text, file=sys.stderr, flush=True)


def _machine(dev) -> dict:
    return {"device": str(dev), "cpu_seconds": round(time.process_time(), 1),
            "torch_threads": torch.get_num_threads(), "load_average_1m": round(os.getloadavg()[0], 2)}


# ---- closed forms: popularity, EASE

def closed_form(name, model, data, settings, args) -> tuple[dict, dict, object]:
    """Fit (EASE: lambda chosen on validation Recall@20); (result line, checkpoint, fitted model)."""
    from ..models.ease import EASE

    start, extra = time.perf_counter(), {}
    if name == "ease":
        if data.n_items > 30_000:
            raise BadInput(f"ease solves an items x items system: {data.n_items:,} items need "
                           f"{8 * data.n_items ** 2 / 2**30:.0f} GiB; pick another model")
        model, valid_by = EASE.tune(data, settings["lambdas"], progress=not args.no_progress)
        extra = {"lambda": model.lam, "valid_by_lambda": {str(k): round(v, 4) for k, v in valid_by.items()}}
    else:
        model.fit(data)
    train_seconds, start = time.perf_counter() - start, time.perf_counter()
    parallel = distributed.DataParallel(model, budget=args.budget)
    valid, test = (parallel.evaluate(model, data, s) for s in ("valid", "test"))
    result = {**{k: round(test[k], 4) for k in KEYS}, "valid_recall@20": round(valid["recall@20"], 4),
              "best_epoch": 0, "train_seconds": round(train_seconds, 2),
              "eval_seconds": round(time.perf_counter() - start, 2), "seconds_per_epoch": 0.0, **extra,
              **_machine("cpu")}
    state = {k: v for k, v in vars(model).items() if torch.is_tensor(v) or isinstance(v, (int, float))}
    return result, {"model": state}, model


# ---- --resume: the checkpoint must be this run's, on this data

def data_record(data) -> dict:
    """What a checkpoint records of the data it was trained on (its ``recipe``): the sizes and
    :func:`tutorial_lib.data.fingerprint`."""
    from ..data import fingerprint

    return {"n_users": data.n_users, "n_items": data.n_items, "data_fingerprint": fingerprint(data)}


AFRESH = "train afresh without --resume, or pass another --checkpoint"


def resume_state(path: Path, model_name: str, data, model_settings: dict | None = None) -> dict | None:
    """Before ``--resume`` trains on from ``path``: its dict, checked against this run (model,
    data sizes, data fingerprint, the model's settings), a BadInput in one line if it differs;
    None if there is no such file (:func:`check_resume` says so)."""
    if not path.exists():
        return None
    try:
        state = ckpt.load(path)
    except Exception as err:                 # not a checkpoint, truncated, written by other code
        raise BadInput(f"{path} cannot be read as a checkpoint ({str(err).strip().splitlines()[0]}): "
                       f"{AFRESH}") from None
    recipe = state.get("recipe") or {}
    if recipe.get("model", model_name) != model_name:
        raise BadInput(f"{path} holds a {recipe['model']} model, not {model_name}: {AFRESH}")
    if "n_items" in recipe and (recipe["n_items"], recipe["n_users"]) != (data.n_items, data.n_users):
        raise BadInput(f"{path} was trained on {recipe['n_items']:,} items and {recipe['n_users']:,} users; "
                       f"this data has {data.n_items:,} items and {data.n_users:,} users: {AFRESH}")
    if "data_fingerprint" in recipe and recipe["data_fingerprint"] != data_record(data)["data_fingerprint"]:
        raise BadInput(f"{path} was trained on other data of the same size ({data.n_users:,} users, "
                       f"{data.n_items:,} items): other ids, interactions or split (--split, --seed) "
                       f"than this data's: {AFRESH}")
    before = recipe.get("settings") or {}
    for key, value in (model_settings or {}).items():
        if key in before and _plain(before[key]) != _plain(value):
            raise BadInput(f"{path} was trained with {key}={_plain(before[key])}; this run has "
                           f"{key}={_plain(value)}: {AFRESH}")
    return state


def _plain(value):
    """A setting as --set writes it: a tuple as 200,600."""
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else value


def check_resume(path: Path, state: dict | None, model) -> None:
    """Once the model is built: no file (``state`` None), a line saying training starts afresh;
    weights in ``state`` (:func:`resume_state`) that do not fit ``model``, a BadInput in one line
    (another setting such as dims, or other data in a file that does not record its data); a
    file that does not record its data, a line saying so."""
    if state is None:
        say(f"no checkpoint at {path}: training from the start")
        return
    here = model.state_dict()
    saved = state.get("model") if isinstance(state.get("model"), dict) else {}
    for key in sorted(set(saved) | set(here)):
        a, b = saved.get(key), here.get(key)
        if torch.is_tensor(a) and torch.is_tensor(b) and a.shape != b.shape:
            raise BadInput(f"{path} holds weights of other shapes ({key}: {tuple(a.shape)} there, "
                           f"{tuple(b.shape)} here): trained with other settings or data; {AFRESH}")
        if torch.is_tensor(a) != torch.is_tensor(b):
            raise BadInput(f"{path} holds a model of another make ({key!r} is in only one of them): {AFRESH}")
    if "data_fingerprint" not in (state.get("recipe") or {}):
        say(f"{path} does not record the data it was trained on (fit wrote it without "
            "checkpoint_info): resuming without checking that the data is the same")


# ---- trained models

def trained(recipe, model, data, settings, args, dev, info: dict | None = None) -> tuple[dict, object]:
    """``train.fit`` with the recipe (shared among the torchrun processes); (result line, model).
    ``info`` (model name, settings, :func:`data_record`) goes into every checkpoint fit writes."""
    from ..train import fit

    _, train = recipe.split(settings)
    sequential = recipe.family == "sequential"
    epochs = train["epochs"]
    eval_batch = 4096 if sequential and dev.type == "cuda" else recipe.eval_batch_size
    protocol = (dict(metric="ndcg@10", ks=SEQ_KS, mask_history=False, test=False) if sequential else {})
    main = distributed.world()[0] == 0
    model.to(dev)
    with distributed.DataParallel(model, seed=args.seed, budget=args.budget) as parallel:
        h = fit(model, data, epochs=epochs, lr=train.get("lr", 1e-3), weight_decay=train.get("weight_decay", 0.0),
                batch_size=train["batch_size"], optimizer=recipe.optimizer,
                eval_every=min(train["eval_every"], epochs), patience=train["patience"],
                eval_batch_size=eval_batch, device=dev, seed=args.seed,
                progress=(args.log_every or not args.no_progress) if main else False,
                checkpoint=args.checkpoint, resume=args.resume, time_limit=args.time_limit,
                parallel=parallel, checkpoint_info=info, **protocol)
        timing = {"best_epoch": h.best_epoch, "epochs": h.epochs, "train_seconds": round(h.train_seconds, 2)}
        if not sequential:
            return {**{k: round(h.best_test[k], 4) for k in KEYS},
                    "valid_recall@20": round(h.best_valid["recall@20"], 4), **timing,
                    "eval_seconds": round(h.eval_seconds, 2), "seconds_per_epoch": round(h.seconds_per_epoch, 3),
                    "paused": h.paused, **_machine(dev)}, model
        start = time.perf_counter()
        test = test_both_protocols(model, data, eval_batch, parallel)
    return {**test, "scale": 100,
            "protocol": "hr@K/ndcg@K: history not masked (DiffuRec's); masked_*: history masked",
            "valid_ndcg@10": round(100 * h.best_valid["ndcg@10"], 4) if h.best_valid else None, **timing,
            "eval_seconds": round(h.eval_seconds + time.perf_counter() - start, 1),
            "seconds_per_epoch": round(h.seconds_per_epoch, 2), "paused": h.paused,
            "n_params": sum(p.numel() for p in model.parameters()), **_machine(dev)}, model


@torch.no_grad()
def test_both_protocols(model, data, batch_size: int, parallel) -> dict:
    """Test HR / NDCG x100, history not masked and masked, from one scoring pass per chunk of
    users (equal chunks, as benchmarks/recipes/sequential.py: DiffuRec's inference noise
    depends on the chunk). Each rank scores a share of the users; the sums are all-reduced."""
    from ..metrics import MetricAccumulator
    from ..utils import eval_mode

    seen = (data.train + data.valid).tocsr()
    users = np.flatnonzero(np.diff(data.test.indptr) > 0)
    mine = np.array_split(users, parallel.size)[parallel.rank]
    batch = distributed.bounded_batch(data.n_items, batch_size, parallel.budget)
    score = distributed.score_fn(model, data, "test", parallel.budget)
    paper, masked = MetricAccumulator(SEQ_KS), MetricAccumulator(SEQ_KS)
    with eval_mode(model):
        for chunk in np.array_split(mine, max(1, -(-len(mine) // batch))) if len(mine) else []:
            scores = score(torch.as_tensor(chunk))
            paper.update(scores, data.test[chunk], users=chunk)
            masked.update(scores, data.test[chunk], exclude=seen[chunk], users=chunk)
    sums = [paper.sums[k] for k in paper.names] + [paper.n_users] + [masked.sums[k] for k in masked.names]
    sums = parallel._all_reduce(sums).tolist() if parallel.size > 1 else sums
    n, names = sums[len(paper.names)], paper.names
    p = {k: sums[i] / n for i, k in enumerate(names)}
    m = {k: sums[len(names) + 1 + i] / n for i, k in enumerate(names)}
    return {**{k: round(100 * p[k], 4) for k in SEQ_KEYS}, **{"masked_" + k: round(100 * m[k], 4) for k in SEQ_KEYS}}


# ---- the final model: every interaction, the best epoch count

def refit_path(checkpoint) -> Path:
    """Where ``--refit`` writes its model: ``diffrec.pt`` -> ``diffrec.refit.pt``."""
    path = Path(checkpoint)
    return path.with_name(f"{path.stem}.refit{path.suffix}")


def refit(name, recipe, settings, data, result, args, dev, time_limit=None,
          info: dict | None = None) -> tuple[dict, object]:
    """The recipe's model trained afresh on ``data`` (every interaction in train) for the
    evaluated run's best epoch count, without evaluation (EASE: its chosen lambda; popularity:
    the counts); (what the result line says of it, the model). Seeded as the evaluated run;
    the checkpoint goes to :func:`refit_path` and records ``info`` with this data's
    :func:`data_record` and the refit's epochs and interactions."""
    from ..models.ease import EASE
    from ..train import fit
    from ..utils import seed_everything

    path, start = refit_path(args.checkpoint), time.perf_counter()
    seed_everything(args.seed)
    model_settings, train = recipe.split(settings)
    model = recipe.build(data.n_items, model_settings, data, args.seed, dev)
    said = {"checkpoint": str(path), "interactions": data.train.nnz}
    epochs = 0 if recipe.family == "closed" else result["best_epoch"] or result["epochs"]
    info = {**(info or {}), **data_record(data), "refit": {"epochs": epochs, "interactions": data.train.nnz}}
    main = distributed.world()[0] == 0
    if recipe.family == "closed":
        say(f"refit: {name} fitted on all {data.train.nnz:,} interactions"
            + (f" with the lambda chosen on validation, {result['lambda']:g}" if name == "ease" else ""))
        model = EASE(result["lambda"]).fit(data) if name == "ease" else model.fit(data)
        if main:
            state = {k: v for k, v in vars(model).items() if torch.is_tensor(v) or isinstance(v, (int, float))}
            ckpt.save(path, {"model": state, "recipe": info})
        return {**said, "epochs": 0, "train_seconds": round(time.perf_counter() - start, 2)}, model
    say(f"refit: {name} trained afresh on all {data.train.nnz:,} interactions for {epochs} epoch{'s' * (epochs != 1)} "
        f"(the best on validation), no evaluation")
    if args.resume:
        check_resume(path, resume_state(path, name, data, model_settings), model)
    model.to(dev)
    with distributed.DataParallel(model, seed=args.seed, budget=args.budget) as parallel:
        h = fit(model, data, epochs=epochs, lr=train.get("lr", 1e-3), weight_decay=train.get("weight_decay", 0.0),
                batch_size=train["batch_size"], optimizer=recipe.optimizer, eval_every=None, patience=None,
                device=dev, seed=args.seed, progress=(args.log_every or not args.no_progress) if main else False,
                checkpoint=path, resume=args.resume, time_limit=time_limit, parallel=parallel,
                checkpoint_info=info)
    return {**said, "epochs": epochs, "train_seconds": round(h.train_seconds, 2), "paused": h.paused}, model


# ---- outputs

def raw_user_ids(data) -> np.ndarray:
    """(n_users,) raw id of each internal user id."""
    return raw_ids(data.user_map, data.n_users)


def write_recommendations(model, data, k: int, out: Path, budget: int = SCORE_BUDGET,
                          batch_size: int = 1024) -> int:
    """Top-``k`` unseen items of every user, in raw ids, to the CSV ``out``: the frames of
    :func:`~tutorial_lib.recommend.recommend` (user, rank, item, score), written to a temporary
    file and renamed at the end; scored in chunks of at most ``budget`` floats. Returns the
    number of rows."""
    from ..recommend import recommend

    raw_users, rows = raw_user_ids(data), 0
    batch = distributed.bounded_batch(data.n_items, batch_size, budget)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            for start in range(0, data.n_users, batch):
                chunk = np.arange(start, min(start + batch, data.n_users))
                if data.n_users * data.n_items > budget:               # a view of these users only
                    view = distributed.row_view(data, chunk)
                    df = recommend(model, view, list(range(len(chunk))), k=k, batch_size=len(chunk))
                    df["user"] = raw_users[chunk][df["user"].to_numpy(dtype=np.int64)]
                else:
                    df = recommend(model, data, raw_users[chunk].tolist(), k=k, batch_size=len(chunk))
                df.to_csv(f, header=start == 0, index=False, float_format="%.6g")
                rows += len(df)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rows


def processor(device: str) -> str:
    """The chip a run's seconds belong to: the GPU's name on CUDA, else the CPU's model name."""
    import platform

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            return names[0]
    except OSError:                     # not Linux
        pass
    return platform.processor() or platform.machine()
