"""Reproduce a paper's figures: train MODEL with the paper's best settings, print one JSON line.

    .venv/bin/python benchmarks/reproduce.py diffrec --dataset ml-1m_clean --data-dir data
    .venv/bin/python benchmarks/reproduce.py diffurec --dataset amazon_beauty --device cuda
    .venv/bin/python benchmarks/reproduce.py diffurec --dataset amazon_beauty --device cuda \
        --checkpoint build/diffurec.pt --time-limit 480      # in pieces, e.g. 8 minutes a call

The data folder is ``--data-dir``, else ``$TUTORIAL_DATA_DIR``, else ``data``; it holds the
papers' released splits (``ml-1m_clean/`` from DiffRec, ``amazon_beauty/dataset.pkl`` from
DiffuRec). A missing split ends the run with one line naming where to download it.

The last line printed is one JSON object with the model, the dataset, the test metrics at the
best validation epoch, best_epoch, train_seconds, eval_seconds, seconds_per_epoch, device,
seed, processor (the chip the seconds belong to) and torch (its version). The recipes (the
paper's settings for each model) live in benchmarks/recipes/; benchmarks/RESULTS.md lists the
figures and the command behind each.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# model name -> module in benchmarks/recipes/ that defines RECIPES[model](args) -> dict
FAMILIES = {
    "popularity": "diffrec", "ease": "diffrec", "multivae": "diffrec", "diffrec": "diffrec",
    "ldiffrec": "ldiffrec", "tdiffrec": "ldiffrec", "ltdiffrec": "ldiffrec",
    "sasrec": "sequential", "diffurec": "sequential", "seqdiffrec": "seqdiffrec", "cfgan": "cfgan",
    "lightgcn": "lightgcn",
}
SEQUENTIAL = ("sequential", "seqdiffrec")          # the families that run in pieces
# family -> the data sets its recipes read; the first is the default
DATASETS = {"diffrec": ("ml-1m_clean", "synthetic"), "ldiffrec": ("ml-1m_clean", "synthetic"),
            "sequential": ("amazon_beauty", "synthetic"), "seqdiffrec": ("amazon_beauty", "synthetic"),
            "cfgan": ("ml-1m_clean", "synthetic"),
            "lightgcn": ("ml-1m_clean", "synthetic")}
# data set -> the file that must exist under the data folder (tutorial_lib.datasets.RELEASES
# says where each paper released it)
NEEDED = {"ml-1m_clean": "ml-1m_clean/train_list.npy", "amazon_beauty": "amazon_beauty/dataset.pkl"}


def default_data_dir() -> str:
    """``$TUTORIAL_DATA_DIR`` when set, else ``data`` (relative to where the command runs)."""
    from tutorial_lib.download import data_root

    return str(data_root())


def missing_data(dataset: str, data_dir: str) -> str | None:
    """One line saying where to download ``dataset`` if it is not under ``data_dir``, else None."""
    if dataset not in NEEDED:                    # synthetic: generated, nothing to download
        return None
    path = Path(data_dir) / NEEDED[dataset]
    if path.exists():
        return None
    from tutorial_lib.datasets import RELEASES

    release, layout = RELEASES[dataset]
    return (f"{dataset} not found in {data_dir}: download it from {release} into "
            f"{Path(data_dir) / layout} (or point --data-dir or TUTORIAL_DATA_DIR at the folder holding it)")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (0 would silently mean "the recipe's default")."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", choices=sorted(FAMILIES))
    p.add_argument("--dataset", default=None,
                   help="ml-1m_clean (default) or synthetic for the DiffRec family; amazon_beauty "
                        "(default) or synthetic for sasrec, diffurec and seqdiffrec")
    p.add_argument("--data-dir", default=None,
                   help="folder holding the papers' splits (default: $TUTORIAL_DATA_DIR, else data)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--epochs", type=positive_int, default=None, help="override the recipe's epoch budget")
    p.add_argument("--fast", action="store_true", help="a short smoke run, not the paper's settings")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--log-every", type=positive_int, default=None, metavar="N",
                   help="print a line every N epochs (training seconds, loss, validation): "
                        "a readable log for long runs without a progress bar")
    p.add_argument("--checkpoint", default=None,
                   help="sequential models: checkpoint file; an existing one is resumed")
    p.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                   help="sequential models: pause after the epoch that passes this many seconds "
                        "of training (needs --checkpoint; run again to go on; the JSON line says "
                        "\"paused\": true until the run is complete)")
    args = p.parse_args(argv)
    args.data_dir = args.data_dir or default_data_dir()
    choices = DATASETS[FAMILIES[args.model]]
    args.dataset = choices[0] if args.dataset is None else args.dataset
    if args.dataset not in choices:
        known = any(args.dataset in names for names in DATASETS.values())
        p.error(f"{args.model} runs on {' or '.join(choices)}, not {args.dataset!r}" + ("" if known else
                f" (your own data: diffrec-tutorial train {args.model} --data {args.dataset})"))
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if (args.checkpoint or args.time_limit is not None) and FAMILIES[args.model] not in SEQUENTIAL:
        raise SystemExit("--checkpoint / --time-limit (runs in pieces) are for the sequential models "
                         f"{sorted(m for m, f in FAMILIES.items() if f in SEQUENTIAL)}; "
                         f"a {args.model} run takes minutes and goes in one piece")
    if args.time_limit is not None and args.checkpoint is None:
        raise SystemExit("--time-limit needs --checkpoint (a paused run resumes from it)")
    missing = missing_data(args.dataset, args.data_dir)
    if missing:
        raise SystemExit(missing)
    module = importlib.import_module(f"recipes.{FAMILIES[args.model]}")
    start = time.perf_counter()
    result = module.RECIPES[args.model](args)
    result.setdefault("wall_seconds", round(time.perf_counter() - start, 2))
    result["processor"] = processor(result["device"])
    result["torch"] = torch_version()
    print(json.dumps(result))
    return result


def torch_version() -> str:
    """PyTorch's version. A run repeats to the last digit only under the version (and chip) that
    made it: kernels and random streams may change between releases, so every line names it."""
    import torch

    return torch.__version__


def processor(device: str) -> str:
    """The chip a run's seconds belong to: the GPU's name on CUDA, else the CPU's model name.
    Seconds per epoch differ between CPU models of the same core count (and so can the last
    digits of a result: each chip's kernels round differently). The same as diffrec-tutorial's."""
    from tutorial_lib.cli.run import processor as chip

    return chip(device)


if __name__ == "__main__":
    main()
