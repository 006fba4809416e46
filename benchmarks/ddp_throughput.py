"""Training throughput of data-parallel DiffRec: samples per second with 1 and 2 processes.

    .venv/bin/python benchmarks/ddp_throughput.py                        # CPU: gloo, 1 and 2 processes
    .venv/bin/python benchmarks/ddp_throughput.py --device cuda --processes 1 2 4   # NCCL, one GPU each

Each run is ``train.fit`` with ``distributed.DataParallel`` (what ``torchrun ... diffrec-tutorial
train`` does) on a synthetic world, DiffRec with the paper's ML-1M settings and global batch 400:
one warm-up epoch, then ``--epochs`` timed epochs without evaluation. samples/s = users x timed
epochs / the slowest rank's training seconds. On CPUs each process runs
``--threads-per-process`` threads (default 1: one core per process; two OpenMP threads sharing
busy cores can be several times slower than one). One JSON line per process count.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, world: int, port: int, args, out: str) -> None:
    from tutorial_lib.cli.recipes import DIFFREC
    from tutorial_lib.distributed import DataParallel
    from tutorial_lib.models.diffrec_fast import FastDiffRec
    from tutorial_lib.synthetic import make_synthetic
    from tutorial_lib.train import fit
    from tutorial_lib.utils import seed_everything

    torch.set_num_threads(args.threads_per_process)
    dev = torch.device("cuda", rank) if args.device == "cuda" else torch.device("cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", init_method=f"tcp://127.0.0.1:{port}",
                            rank=rank, world_size=world)
    try:
        data = make_synthetic(n_users=args.users, n_items=args.items, seed=0)[0]
        seed_everything(1)
        model = FastDiffRec(data.n_items, **DIFFREC).to(dev)
        kw = dict(batch_size=400, eval_every=None, patience=None, test=False, device=dev, seed=1, progress=False)
        with DataParallel(model, seed=1) as parallel:
            fit(model, data, epochs=1, parallel=parallel, **kw)                   # warm-up
            dist.barrier()
            h = fit(model, data, epochs=args.epochs, parallel=parallel, **kw)
        seconds = torch.tensor([h.train_seconds], dtype=torch.float64, device=dev)
        dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
        if rank == 0:
            Path(out).write_text(json.dumps({"seconds": float(seconds), "n_users": data.n_users,
                                             "n_items": data.n_items}))
    finally:
        dist.destroy_process_group()


def measure(world: int, args) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        mp.spawn(_worker, args=(world, port, args, out), nprocs=world, join=True)
        r = json.loads(Path(out).read_text())
    samples = r["n_users"] * args.epochs
    from tutorial_lib.cli.run import processor

    name = processor("cuda:0" if args.device == "cuda" else "cpu")
    return {"benchmark": "ddp_throughput", "model": "diffrec (paper settings)", "processes": world,
            "device": args.device, "chip": name, "backend": "nccl" if args.device == "cuda" else "gloo",
            "global_batch": 400, "n_users": r["n_users"], "n_items": r["n_items"], "timed_epochs": args.epochs,
            "train_seconds": round(r["seconds"], 2), "samples_per_second": round(samples / r["seconds"], 1),
            "threads_per_process": args.threads_per_process if args.device == "cpu" else None,
            "load_average_1m": round(os.getloadavg()[0], 2), "torch": torch.__version__}


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--users", type=int, default=3000)
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)")
    p.add_argument("--threads-per-process", type=int, default=1,
                   help="CPU threads of each process (1: N processes use N cores)")
    args = p.parse_args(argv)
    rows = []
    for world in args.processes:
        start = time.perf_counter()
        rows.append(measure(world, args))
        rows[-1]["wall_seconds"] = round(time.perf_counter() - start, 1)
        print(json.dumps(rows[-1]), flush=True)
    return rows


if __name__ == "__main__":
    main()
