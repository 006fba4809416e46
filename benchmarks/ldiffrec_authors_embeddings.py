"""L-DiffRec on ml-1m_clean with the authors' LightGCN item embeddings (issue: the paper's row).

    .venv/bin/python benchmarks/ldiffrec_authors_embeddings.py --seed 1 [--data-dir DIR]

The released L-DiffRec clusters the items of ML-1M with KMeans on pre-trained LightGCN
embeddings shipped with the release (``ml-1m_clean/item_emb.npy``, float32, one row per item).
``reproduce.py ldiffrec`` trains its own LightGCN instead. This script runs the same recipe
(``recipes/ldiffrec.py``: 2 clusters, the paper's settings, ``FastLDiffRec``) on the authors'
embeddings, and prints one JSON line like reproduce.py, with ``"item_emb": "authors"``.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recipes.diffrec import load  # noqa: E402
from recipes.ldiffrec import EPOCHS, run  # noqa: E402
from reproduce import parse_args, processor, torch_version  # noqa: E402
from tutorial_lib.models.diffrec_fast import FastLDiffRec  # noqa: E402
from tutorial_lib.models.ldiffrec import cluster_items  # noqa: E402
from tutorial_lib.utils import seed_everything  # noqa: E402


def main(argv=None) -> dict:
    args = parse_args(["ldiffrec", *(sys.argv[1:] if argv is None else argv)])
    if args.dataset != "ml-1m_clean":
        raise SystemExit("the authors' embeddings exist for ml-1m_clean only")
    start = time.perf_counter()
    seed_everything(args.seed)
    data = load(args)
    emb = np.load(Path(args.data_dir) / "ml-1m_clean" / "item_emb.npy", allow_pickle=False)
    if emb.shape[0] != data.n_items:
        raise SystemExit(f"item_emb.npy has {emb.shape[0]} rows for {data.n_items} items")
    clusters = cluster_items(emb, 2, seed=args.seed)
    seed_everything(args.seed)
    model = FastLDiffRec(data.n_items, clusters=clusters)
    result = run(model, data, args, EPOCHS, extra={"cluster_sizes": model.vae.cluster_sizes,
                                                  "item_emb": "authors"})
    result["wall_seconds"] = round(time.perf_counter() - start, 2)
    result["processor"] = processor(result["device"])
    result["torch"] = torch_version()
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
