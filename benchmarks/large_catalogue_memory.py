"""Peak memory of evaluation and --recommend on a 100k-item catalogue, as the number of users grows.

    .venv/bin/python benchmarks/large_catalogue_memory.py                    # 500 .. 4,000 users, 100k items
    .venv/bin/python benchmarks/large_catalogue_memory.py --users 1000 16000 --models diffrec --budget 16777216

What ``diffrec-tutorial train`` does after training, measured in a fresh process per row: the
validation and test metrics (``distributed.DataParallel.evaluate``) and the top-10 file of every
user (``cli.run.write_recommendations``), for DiffRec (the recipe's small net) and Mult-VAE,
whose ``score`` makes only a chunk of users' rows dense at a time (``score_chunk``).
Both score at most ``SCORE_BUDGET`` floats (users x items) at a time, so the peak should stay
flat in the number of users while a dense users x items float32 matrix (``dense_mb``) grows.
``peak_mb``: the peak resident memory during that step (Linux VmHWM, reset before it) minus the
resident memory before it (the data, the model, the imports). The models are untrained: what
is measured is the scoring, not the weights. One JSON line per (model, users).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def synthetic_catalogue(n_users: int, n_items: int, per_user: int = 20, seed: int = 0):
    """``n_users`` users with ``per_user`` random items each out of ``n_items`` (popular items
    more often), split 14 / 4 / 2 per user: an InteractionData that is sparse whatever its size."""
    import numpy as np

    from tutorial_lib.data import InteractionData, pairs_to_csr

    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1) ** 0.8
    items = np.stack([rng.choice(n_items, per_user, replace=False, p=p / p.sum()) for _ in range(n_users)])
    users = np.repeat(np.arange(n_users), per_user).reshape(n_users, per_user)
    parts = {"train": slice(0, 14), "valid": slice(14, 18), "test": slice(18, 20)}
    return InteractionData(**{s: pairs_to_csr(users[:, c].ravel(), items[:, c].ravel(), (n_users, n_items))
                              for s, c in parts.items()}, name=f"catalogue-{n_items}")


def one_row(model_name: str, n_users: int, n_items: int, out: Path, budget: int) -> dict:
    """Build, then measure evaluation + recommendations; runs in its own process."""
    import torch

    from tutorial_lib.cli.recipes import RECIPES
    from tutorial_lib.cli.run import write_recommendations
    from tutorial_lib.distributed import DataParallel

    torch.manual_seed(0)
    data = synthetic_catalogue(n_users, n_items)
    recipe = RECIPES[model_name]
    model_settings, _ = recipe.split(recipe.settings(small=True))
    model = recipe.build(data.n_items, model_settings, data, 0, torch.device("cpu")).eval()
    before = _status_mb("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")          # VmHWM := VmRSS from here on
    except OSError:
        pass
    start = time.perf_counter()
    metrics = {s: DataParallel(model, budget=budget).evaluate(model, data, s)["recall@20"] for s in ("valid", "test")}
    rows = write_recommendations(model, data, 10, out, budget)
    return {"benchmark": "large_catalogue_memory", "model": model_name, "n_users": n_users, "n_items": n_items,
            "peak_mb": round(_status_mb("VmHWM") - before, 1), "rss_before_mb": round(before, 1),
            "dense_mb": round(n_users * n_items * 4 / 2**20, 1), "budget_floats": budget,
            "users_per_chunk": budget // n_items, "recommendation_rows": rows,
            "seconds": round(time.perf_counter() - start, 1), "valid_recall@20": round(metrics["valid"], 4)}


def main(argv=None) -> list[dict]:
    from tutorial_lib.recommend import SCORE_BUDGET

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--models", nargs="+", default=["diffrec", "multivae"])
    p.add_argument("--budget", type=int, default=SCORE_BUDGET, help="floats per score chunk (default: the CLI's)")
    p.add_argument("--one", nargs=2, metavar=("MODEL", "USERS"), help=argparse.SUPPRESS)   # a child process
    args = p.parse_args(argv)
    if args.one:
        out = Path(os.environ.get("TMPDIR", "/tmp")) / f"recs-{os.getpid()}.csv"
        try:
            print(json.dumps(one_row(args.one[0], int(args.one[1]), args.items, out, args.budget)))
        finally:
            out.unlink(missing_ok=True)
        return []
    rows = []
    for model in args.models:
        for n_users in args.users:
            done = subprocess.run([sys.executable, __file__, "--one", model, str(n_users), "--items", str(args.items),
                                   "--budget", str(args.budget)],
                                  capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            if done.returncode:
                raise SystemExit(done.stderr[-3000:])
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    main()
