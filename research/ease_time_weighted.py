"""EASE on T-DiffRec's time-weighted rows, on ml-1m_clean: does time weighting alone lift EASE?

    .venv/bin/python research/ease_time_weighted.py            # data from $TUTORIAL_DATA_DIR, else data
    .venv/bin/python research/ease_time_weighted.py --data-dir /path/to/folder

T-DiffRec (notebook 05) trains DiffRec on the weighted rows x_bar (a linear ramp from w_min for a
user's oldest training click to w_max = 1 for the newest; ``tutorial_lib.models.tdiffrec``). EASE
in ``benchmarks/RESULTS.md`` sees the binary rows, so "T-DiffRec beats EASE" mixes two changes:
the time order and the model. This script gives EASE the same x_bar: B is EASE's closed form
(Steck 2019) on x_bar, and user u's scores are x_bar_u B, for validation and test alike.

Grid: w_min in the paper's range 0.1 .. 0.5 (T-DiffRec's TGRID in ``diffrec_sweep.py``) and w_min = 1
(the binary rows: ``reproduce.py ease``), each with lambda in the EASE recipe's LAMBDAS. Both are
chosen on validation Recall@20; test is reported, never used. EASE is deterministic: no seeds.
The order of each user's rows in ``train_list.npy`` is the time order (``load_diffrec_npy``).
Prints one line per (w_min, lambda), the best lambda per w_min, the validation choice, and last
one JSON line for ``benchmarks/results.jsonl`` in ``reproduce.py``'s form (``"model": "ease"`` with
its ``w_min``: the leaderboard's row "EASE, w_min ...").
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))

from recipes.diffrec import LAMBDAS  # noqa: E402
from reproduce import default_data_dir, processor  # noqa: E402

from tutorial_lib.datasets import load_diffrec_npy  # noqa: E402
from tutorial_lib.metrics import evaluate  # noqa: E402
from tutorial_lib.models.tdiffrec import time_weights  # noqa: E402

W_MINS = (1.0, 0.1, 0.2, 0.3, 0.4, 0.5)      # 1.0: no time weights (the binary rows)


def ease_weights(X: np.ndarray, lam: float) -> np.ndarray:
    """EASE's B (I, I) from any user-item matrix X (U, I): the closed form of ``models.ease.EASE``."""
    G = X.T.astype(np.float64) @ X.astype(np.float64)
    G[np.diag_indices_from(G)] += lam
    P = scipy.linalg.inv(G, check_finite=False)
    B = -P / np.diag(P)[None, :]
    np.fill_diagonal(B, 0.0)
    return B


def rows(data, w_min: float) -> np.ndarray:
    """The users' training rows: binary for w_min = 1, else T-DiffRec's x_bar (w_max = 1)."""
    return (data.train if w_min == 1.0 else time_weights(data, w_min, 1.0)).toarray()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=None, help="folder holding ml-1m_clean/ (default: $TUTORIAL_DATA_DIR, else data)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data = load_diffrec_npy(Path(args.data_dir or default_data_dir()) / "ml-1m_clean")
    print(data, flush=True)
    results = []
    for w_min in W_MINS:
        X = rows(data, w_min)
        for lam in LAMBDAS:
            start = time.perf_counter()
            scores = torch.as_tensor(X @ ease_weights(X, lam), dtype=torch.float32)
            valid = evaluate(lambda u: scores[u], data, "valid", ks=(10, 20))
            test = evaluate(lambda u: scores[u], data, "test", ks=(10, 20))
            row = {"w_min": w_min, "lambda": float(lam), "valid_recall@20": round(valid["recall@20"], 4),
                   **{f"test_{k}": round(test[k], 4) for k in ("recall@10", "recall@20", "ndcg@10", "ndcg@20")},
                   "seconds": round(time.perf_counter() - start, 1)}
            results.append(row)
            print(json.dumps(row), flush=True)
    print("\nbest lambda per w_min (validation Recall@20):")
    best = {}
    for w_min in W_MINS:
        mine = [r for r in results if r["w_min"] == w_min]
        best[w_min] = max(mine, key=lambda r: r["valid_recall@20"])       # the first of equals
        b = best[w_min]
        print(f"  w_min {w_min:g}: lambda {b['lambda']:g}  valid R@20 {b['valid_recall@20']:.4f}  "
              f"test R@20 {b['test_recall@20']:.4f}  N@20 {b['test_ndcg@20']:.4f}")
    weighted = [best[w] for w in W_MINS if w != 1.0]
    chosen = max(weighted, key=lambda r: r["valid_recall@20"])
    print(f"\nchosen on validation among the time weights: w_min {chosen['w_min']:g}, lambda {chosen['lambda']:g}: "
          f"test Recall@20 {chosen['test_recall@20']:.4f}, NDCG@20 {chosen['test_ndcg@20']:.4f}")
    line = {"model": "ease", "dataset": "ml-1m_clean", "w_min": chosen["w_min"], "lambda": chosen["lambda"],
            **{k[len("test_"):]: v for k, v in chosen.items() if k.startswith("test_")},
            "valid_recall@20": chosen["valid_recall@20"], "seed": 1, "epochs": 1,
            "train_seconds": chosen["seconds"], "device": "cpu", "processor": processor("cpu"),
            "torch": torch.__version__}
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
