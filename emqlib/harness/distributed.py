"""Training under ``torchrun``: DistributedDataParallel over processes (gloo on CPU, NCCL on GPUs).

Each process trains on its rows of every global batch; gradients are averaged by DDP; coreset
subsets are drawn on rank 0 and broadcast; only rank 0 writes files. Without a process group
every helper here is the identity, so the trainer has one code path.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor

from .config import config_hash


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def shard(x: Tensor) -> Tensor:
    """This process's rows of a global batch."""
    return x[rank()::dist.get_world_size()] if is_distributed() else x


def all_sum(values: list[float]) -> list[float]:
    """Each value summed over the processes."""
    if not is_distributed():
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def broadcast(obj):
    """Rank 0's ``obj`` in every process."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def train_distributed(config, runtime, path: Path | None = None) -> None:
    """Train ``config`` (a RunConfig) with every process that torchrun started; rank 0 prints the result."""
    from . import runs  # the torchrun entry point sits above the run cache; the helpers above sit below the trainer

    use_cuda = torch.cuda.is_available()
    path = Path(path) if path is not None else runs.run_path(config)
    # the reference run is trained before the process group exists, as a plain single-process run
    # (it records a trajectory, which DDP cannot): the run cache's lock lets one process train it
    # while the others wait for it and then reuse it
    reference = None if runs.is_done(path) else runs.reference_of(config, runtime)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    try:
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
            runtime = dataclasses.replace(runtime, device=f"cuda:{torch.cuda.current_device()}")
        if rank() == 0:
            runs.check_compatible(path, config)
        dist.barrier()
        if runs.is_done(path):
            return
        # no run-cache lock here: the processes train the run together (get_run's lock is per process)
        runs.train_run(config, path, runtime, reference)
        if rank() == 0:
            print(f"run {config_hash(config)} in {path} ({dist.get_world_size()} processes)")
    finally:
        dist.destroy_process_group()
