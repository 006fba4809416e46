"""Data-parallel training: ``torchrun --nproc_per_node=N`` runs ``train.fit`` in N processes.

With W processes (ranks) and a global batch of B rows, :class:`DataParallel` makes one step
of ``fit`` the step one process would take on the whole batch:

* every rank draws the same global batch (the same seeded generator) and keeps rows
  [B r / W, B (r + 1) / W) of it (``shard``);
* PyTorch's DistributedDataParallel all-reduces (averages) the gradients: gloo on CPUs, NCCL on
  GPUs. Each rank's loss is scaled by W n_r / B (n_r: its rows), so the average is the gradient
  of the global batch's mean loss, as in one process, also for a last, uneven batch;
* a StepSampler (importance sampling of t) records every rank's (t, loss) pairs, all-gathered
  in rank order, so its p_t stays the same on every rank;
* evaluation scores a contiguous share of the users on each rank and all-reduces the metric
  sums (``evaluate``): the means are those of one process;
* checkpoints come from rank 0 only; every rank reads the file to resume. Random draws (noise,
  t, dropout) are seeded from (seed, epoch, rank) at each epoch's start, so a resumed run
  draws what the uninterrupted one drew.

What differs from one process: each rank draws its own noise, t and dropout, so the runs agree
in distribution, not draw for draw (tests/test_distributed.py states the tolerance).

Memory: evaluation scores at most ``budget // n_items`` users at a time; above ``budget``
(users x items) each chunk is scored on a view of the data holding only its users' rows
(:func:`row_view`), so no model can make a dense users x items matrix of everyone.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .recommend import SCORE_BUDGET   # floats in one (users, items) score chunk


def world() -> tuple[int, int]:
    """(rank, number of processes); (0, 1) outside ``torchrun``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init(device="auto") -> torch.device:
    """Join the process group ``torchrun`` set up (WORLD_SIZE > 1): NCCL on GPUs, one GPU per
    process (LOCAL_RANK), else gloo. Returns this process's device; alone, just the device."""
    from .utils import device as pick_device

    dev = pick_device(device)
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dev
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return dev


def close() -> None:
    """Leave the process group (if any)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def broadcast_array(array: np.ndarray) -> np.ndarray:
    """Rank 0's ``array`` on every rank (e.g. KMeans labels, which could differ between GPUs)."""
    if world()[1] == 1:
        return array
    box = [array]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_columns(x: torch.Tensor) -> torch.Tensor:
    """Every rank's (R, n_r) tensor, concatenated along columns in rank order: (R, sum n_r)."""
    n = torch.tensor([x.shape[1]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(world()[1])]
    dist.all_gather(sizes, n)
    padded = x.new_zeros(x.shape[0], int(max(sizes)))
    padded[:, :x.shape[1]] = x
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([p[:, :int(s)] for p, s in zip(parts, sizes)], 1)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The torch seed of ``rank`` for ``epoch``'s random draws."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


# ---- batches: rows of a tensor, or of every tensor in a tuple / list

def _rows(batch) -> int:
    return len(batch) if torch.is_tensor(batch) else _rows(batch[0])


def _take(batch, rows: slice):
    return batch[rows] if torch.is_tensor(batch) else type(batch)(_take(b, rows) for b in batch)


class _Loss(nn.Module):
    """``model.loss`` as a forward pass, the call DistributedDataParallel hooks into."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.loss(batch)


def _samplers(model):
    from .step_sampler import StepSampler

    return [v for m in model.modules() for v in vars(m).values() if isinstance(v, StepSampler)]


class DataParallel:
    """The hook ``train.fit(parallel=...)`` calls to train ``model`` on this rank's share.

    Use as a context manager around ``fit`` (it patches the model's StepSamplers while open).
    Alone (one process) every method is the identity: batches whole, losses as they are,
    evaluation as ``metrics.evaluate`` (in chunks of at most ``budget`` floats).
    """

    def __init__(self, model: nn.Module, seed: int = 0, budget: int = SCORE_BUDGET):
        self.model, self.seed, self.budget = model, seed, budget
        self.rank, self.size = world()
        self.is_main = self.rank == 0
        self._scale, self._real, self._ddp, self._patched = 1.0, 0, None, []
        if self.size > 1:
            from torch.nn.parallel import DistributedDataParallel

            dev = next(model.parameters()).device
            self._ddp = DistributedDataParallel(_Loss(model), device_ids=[dev.index] if dev.type == "cuda" else None,
                                                static_graph=True)
            for sampler in _samplers(model):
                sampler.update = self._synced_update(sampler.update)
                self._patched.append(sampler)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Give the StepSamplers their own ``update`` back; wait for every rank (so rank 0's
        last checkpoint is on disk before any rank goes on)."""
        for sampler in self._patched:
            del sampler.update
        self._patched = []
        if self.size > 1:
            dist.barrier()

    def _synced_update(self, update):
        def synced(t: torch.Tensor, losses: torch.Tensor) -> None:
            both = torch.stack([t.to(torch.float64), losses.detach().to(torch.float64)])[:, :self._real]
            every = all_gather_columns(both.to(_comm_device()))
            update(every[0].long(), every[1])
        return synced

    # ---- training
    def shard(self, batches, epoch: int):
        """This rank's rows of each global batch (a rank without rows gets row 0, weighted 0)."""
        if self.size == 1:
            yield from batches
            return
        torch.manual_seed(epoch_seed(self.seed, epoch, self.rank))
        for batch in batches:
            n = _rows(batch)
            lo, hi = n * self.rank // self.size, n * (self.rank + 1) // self.size
            self._real, self._scale = hi - lo, self.size * (hi - lo) / n
            yield _take(batch, slice(lo, hi) if hi > lo else slice(0, 1))

    def loss(self, batch) -> torch.Tensor:
        """This rank's share of the global batch's mean loss, times W (gradients all-reduced)."""
        if self._ddp is None:
            return self.model.loss(batch)
        return self._ddp(batch) * self._scale

    def _all_reduce(self, values) -> torch.Tensor:
        x = torch.as_tensor(values, dtype=torch.float64, device=_comm_device())
        dist.all_reduce(x)
        return x.cpu()

    def mean(self, value: float) -> float:
        """The mean of ``value`` over ranks (an epoch's loss)."""
        return value if self.size == 1 else float(self._all_reduce([value])[0]) / self.size

    def any(self, flag: bool) -> bool:
        """True on every rank if any rank says True (e.g. a time limit passed)."""
        return flag if self.size == 1 else bool(self._all_reduce([float(flag)])[0] > 0)

    # ---- evaluation
    def evaluate(self, model, data, split: str, ks=(10, 20), batch_size: int = 1024,
                 mask_history: bool = True) -> dict:
        """``metrics.evaluate`` of ``model`` on ``split``, each rank scoring a share of the users."""
        from .metrics import evaluate, metric_names

        batch_size = bounded_batch(data.n_items, batch_size, self.budget)
        score = score_fn(model, data, split, self.budget)
        if self.size == 1:
            return evaluate(score, data, split, ks=ks, batch_size=batch_size, mask_history=mask_history)
        truth = data.valid if split == "valid" else data.test
        mine = np.array_split(np.flatnonzero(np.diff(truth.indptr) > 0), self.size)[self.rank]
        names = metric_names(ks)
        sums = [0.0] * (len(names) + 1)
        if len(mine):
            _, per = evaluate(score, data, split, ks=ks, batch_size=batch_size, mask_history=mask_history,
                              users=mine, per_user=True)
            sums = [float(per[n].sum()) for n in names] + [float(len(per["user"]))]
        sums = self._all_reduce(sums)
        n = int(sums[-1])
        if n == 0:
            raise ValueError(f"no user with ground truth in {split}; nothing to average")
        return {**{name: float(sums[i]) / n for i, name in enumerate(names)}, "n_users": n}


def bounded_batch(n_items: int, batch_size: int, budget: int = SCORE_BUDGET) -> int:
    """Users per score chunk: ``batch_size``, fewer if (users, n_items) would pass ``budget``."""
    return max(1, min(int(batch_size), budget // max(int(n_items), 1)))


def row_view(data, users: np.ndarray):
    """An InteractionData of ``users``' rows only (their ids become 0..len(users) - 1)."""
    from .data import InteractionData

    pick = lambda lists: None if lists is None else [lists[u] for u in users]
    return InteractionData(train=data.train[users], valid=data.valid[users], test=data.test[users],
                           sequences=pick(data.sequences), timestamps=pick(data.timestamps),
                           name=data.name, item_map=data.item_map)


def score_fn(model, data, split: str, budget: int = SCORE_BUDGET):
    """``users -> model.score(...)``; above ``budget`` (n_users x n_items) through a
    :func:`row_view` of the users asked for."""
    if data.n_users * data.n_items <= budget:
        return lambda users: model.score(data, users, split=split)
    return lambda users: model.score(row_view(data, np.asarray(users)), torch.arange(len(users)), split=split)
