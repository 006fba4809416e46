"""``diffrec-tutorial``: train any model of the course on your own data, from the shell.

    diffrec-tutorial train diffrec --data my_clicks.csv                  # the recipe
    diffrec-tutorial train diffrec --data my_clicks.csv --set T=20 lr=1e-4 --recommend 10 --out recs.csv
    diffrec-tutorial train diffrec --data my_clicks.csv --refit --recommend 10 --out recs.csv
    torchrun --nproc_per_node=4 --no-python diffrec-tutorial train diffrec --data my_clicks.csv --device cuda
    torchrun --nproc_per_node=2 --no-python diffrec-tutorial train diffrec --data my_clicks.csv --device cpu
    diffrec-tutorial recipes diffrec                                     # the settings --set can change

``--data`` is read by :mod:`~tutorial_lib.cli.inputs` (format detected, split if it has none:
70 / 20 / 10 % train / valid / test by time), the model built and trained with its recipe
(:mod:`~tutorial_lib.cli.recipes`: the paper's settings, or the small-data ones on data with
fewer than ``SMALL_DATA_INTERACTIONS`` interactions; ``--paper`` / ``--small`` choose; a line
on stderr says which) by :mod:`~tutorial_lib.cli.run`. The last line on stdout is one JSON
object, as ``benchmarks/reproduce.py`` prints; the checkpoint goes to ``--checkpoint`` (default
``MODEL.pt``) and records the data's sizes and fingerprint, so that ``--resume`` refuses, in
one line, to continue it on other data. ``--refit`` then trains the same recipe afresh on
every interaction (train, valid and test) for the best epoch count found on validation, to
the checkpoint's name with ``.refit`` before its suffix (``diffrec.refit.pt``; ``--checkpoint
d2.pt``: ``d2.refit.pt``): the model to recommend with. ``--recommend K`` writes the top-K
unseen items of every user (raw ids, with scores; from the refit model with ``--refit``) to
``--out``, in the columns of :func:`tutorial_lib.recommend.recommend`: user, rank, item,
score. Under ``torchrun`` the processes share the training (:mod:`tutorial_lib.distributed`:
``batch_size`` stays the global batch, each process takes its share of it, so the steps,
learning rate, evaluation and early stopping are one process's; only the random draws
differ); rank 0 writes the files and the line. A bad input ends the command with one line on
stderr (exit status 2) and no file written.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ..data import TEST_FRAC, VALID_FRAC
from .inputs import FORMATS, SPLITS, BadInput
from .recipes import PARALLEL, RECIPES, SMALL_DATA_INTERACTIONS, apply_overrides, choose_settings

__all__ = ["main", "train", "parse_args", "RECIPES", "BadInput"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    from ..recommend import SCORE_BUDGET

    p = argparse.ArgumentParser(prog="diffrec-tutorial", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("recipes", help="print a model's default settings (the keys --set takes)")
    r.add_argument("model", nargs="?", choices=sorted(RECIPES))
    r.add_argument("--small", action="store_true", help="the settings for small data")
    t = sub.add_parser("train", help="train MODEL on --data; print one JSON line")
    t.add_argument("model", choices=sorted(RECIPES))
    t.add_argument("--data", required=True, help="a DiffRec npy folder, DiffuRec dataset.pkl, CSV/TSV, "
                   "RecBole .inter file or MovieLens folder")
    t.add_argument("--format", choices=FORMATS, default=None, help="skip the detection")
    t.add_argument("--sep", default=None, help="CSV separator (default: tab for .tsv, else comma)")
    t.add_argument("--min-rating", type=float, default=None, help="keep rows with rating >= this")
    for role in ("user", "item", "time", "rating"):
        t.add_argument(f"--{role}-col", default=None, help=f"the {role} column (default: its usual names)")
    shares = (f"{round(100 * (1 - VALID_FRAC - TEST_FRAC))} / {round(100 * VALID_FRAC)} / "
              f"{round(100 * TEST_FRAC)} %% train / valid / test")            # %%: argparse's %
    t.add_argument("--split", choices=list(SPLITS), default=None,
                   help=f"for data with no split: time ({shares} per user by time), random (the same "
                        "shares at random), leave-one-out (default: leave-one-out for sequential models, "
                        "else time if there are times)")
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="change a setting of the recipe (diffrec-tutorial recipes MODEL lists them)")
    size = t.add_mutually_exclusive_group()
    size.add_argument("--small", action="store_true", help="the recipes' settings for small data (the default "
                      f"for data with fewer than {SMALL_DATA_INTERACTIONS:,} interactions)")
    size.add_argument("--paper", action="store_true", help="the paper's settings, also on small data")
    t.add_argument("--device", default="auto")
    t.add_argument("--checkpoint", default=None, help="the model file (default MODEL.pt, e.g. diffrec.pt)")
    t.add_argument("--resume", action="store_true", help="continue the run in --checkpoint (trained on the "
                   "same data; with no such file, train from the start)")
    t.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="pause after the epoch that passes this (then --resume goes on)")
    t.add_argument("--recommend", type=_positive_int, default=None, metavar="K", help="top-K items per user")
    t.add_argument("--out", default=None, help="CSV file for --recommend (user,rank,item,score)")
    t.add_argument("--refit", action="store_true",
                   help="after the evaluated run, train the same recipe afresh on every interaction (train, "
                        "valid and test) for its best epoch count, save it beside --checkpoint with .refit "
                        "before the suffix (diffrec.refit.pt; --checkpoint d2.pt: d2.refit.pt) and recommend "
                        "with it")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--log-every", type=_positive_int, default=None, metavar="N", help="a log line every N epochs")
    t.add_argument("--score-budget", dest="budget", type=_positive_int, default=SCORE_BUDGET,
                   help=argparse.SUPPRESS)                 # floats per (users, items) chunk
    args = p.parse_args(argv)
    if args.command == "train":
        args.checkpoint = args.checkpoint or f"{args.model}.pt"
    return args


def _check_outputs(args) -> None:
    """Fail before reading or training on an output that cannot be written."""
    from .run import refit_path

    if args.recommend is not None and args.out is None:
        raise BadInput("--recommend K writes to a CSV file: add --out recs.csv")
    if args.out is not None and args.recommend is None:
        raise BadInput("--out is the file of --recommend K: add --recommend 10")
    for path in (args.out, args.checkpoint):
        if path is not None and not Path(path).resolve().parent.is_dir():
            raise BadInput(f"{path}: its folder {Path(path).resolve().parent} does not exist")
    for path in [args.checkpoint] + ([refit_path(args.checkpoint)] if args.refit else []):
        if Path(path).exists() and not args.resume:
            raise BadInput(f"{path} exists: pass --resume to continue that run, or another --checkpoint")
    if args.resume and RECIPES[args.model].family == "closed":
        raise BadInput(f"{args.model} is fitted in one go: --resume is for the trained models")


def _check_settings(args, recipe) -> None:
    """``--set`` checked before the data is read, against the settings that will train: those
    --small / --paper name, else both (the data's size decides between them). A message that
    depends on which (a value refused, naming the default) waits for the data to decide."""
    variants = [True] if args.small else [False] if args.paper else [False, True]
    errors = []
    for small in variants:
        try:
            apply_overrides(args.model, recipe.settings(small), args.set)
        except ValueError as err:
            errors.append(str(err))
    if len(errors) == len(variants) and len(set(errors)) == 1:
        raise BadInput(errors[0])


def train(args) -> dict:
    """Everything ``diffrec-tutorial train`` does; returns the result line (rank 0's)."""
    from .. import checkpoint as ckpt
    from .. import distributed
    from ..utils import seed_everything
    from . import inputs, run

    recipe = RECIPES[args.model]
    _check_settings(args, recipe)
    _check_outputs(args)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and args.model not in PARALLEL:
        raise BadInput(f"{args.model} does not train in parallel; torchrun takes {', '.join(PARALLEL)}")
    data, said = inputs.load(Path(args.data), args, recipe.family)
    if args.recommend is not None and args.recommend > data.n_items:
        raise BadInput(f"--recommend {args.recommend}: the data has only {data.n_items} items")
    small, which = choose_settings(data.train.nnz + data.valid.nnz + data.test.nnz, args.small, args.paper)
    try:
        settings = apply_overrides(args.model, recipe.settings(small), args.set)
    except ValueError as err:                      # a value refused with the default in use named
        raise BadInput(str(err)) from None
    model_settings, _ = recipe.split(settings)
    resumed = (run.resume_state(Path(args.checkpoint), args.model, data, model_settings)   # None: no file
               if args.resume else None)
    start = time.perf_counter()
    dev = distributed.init(args.device)
    run.say(said)
    run.say(which + (f"; --set {' '.join(args.set)}" if args.set else ""))
    seed_everything(args.seed)
    model = recipe.build(data.n_items, model_settings, data, args.seed, dev)
    info = {"model": args.model, "settings": settings, "data": str(args.data), "seed": args.seed,
            **run.data_record(data)}
    main = distributed.world()[0] == 0
    if recipe.family == "closed":
        result, state, model = run.closed_form(args.model, model, data, settings, args)
        if main:
            ckpt.save(args.checkpoint, {**state, "recipe": info})
    else:
        if args.resume:
            run.check_resume(Path(args.checkpoint), resumed, model)
        result, model = run.trained(recipe, model, data, settings, args, dev, info)   # every save records info
    outputs = {"checkpoint": str(args.checkpoint)}
    recommend = args.recommend is not None
    if args.refit and result.get("paused"):
        run.say("paused: --refit (and --recommend) wait for the evaluated run to end; --resume goes on")
        recommend = False
    elif args.refit:
        everything = inputs.load_everything(Path(args.data), args, recipe.family, data)
        left = None if args.time_limit is None else max(args.time_limit - (time.perf_counter() - start), 1e-3)
        outputs["refit"], model = run.refit(args.model, recipe, settings, everything, result, args, dev, left, info)
        data = everything
        if outputs["refit"].get("paused"):
            run.say("paused in the refit: --resume goes on; --recommend waits for it")
            recommend = False
    if main and recommend:
        rows = run.write_recommendations(model, data, args.recommend, Path(args.out), args.budget)
        outputs.update(recommendations=str(args.out), recommendation_rows=rows)
    return {"model": args.model, "dataset": data.name, **result, "seed": args.seed, "data": str(args.data),
            "processes": distributed.world()[1], "settings": settings,
            "recipe_settings": "small" if small else "paper", **outputs,
            "wall_seconds": round(time.perf_counter() - start, 2),
            "processor": run.processor(result["device"]), "torch": _torch_version()}


def _torch_version() -> str:
    import torch

    return torch.__version__


def main(argv=None) -> int:
    """The console script; returns the exit status (2: a bad input, said in one line)."""
    args = parse_args(argv)
    if args.command == "recipes":
        models = [args.model] if args.model else sorted(RECIPES)
        for name in models:
            print(json.dumps({"model": name, "source": RECIPES[name].source_of(args.small),
                              "settings": RECIPES[name].settings(args.small)}))
        return 0
    from .. import distributed

    try:
        result = train(args)
    except BadInput as err:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"diffrec-tutorial: error: {err}", file=sys.stderr)
        return 2
    finally:
        distributed.close()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result), flush=True)
    return 0
