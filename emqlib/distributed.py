"""Training under ``torchrun``: DistributedDataParallel over processes (gloo on CPU, NCCL on GPUs).

Each process trains on its rows of every global batch; gradients are averaged by DDP; coreset
subsets are drawn on rank 0 and broadcast; only rank 0 writes files.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch
import torch.distributed as dist

from .config import SCHEMA_VERSION, RunConfig, config_hash
from .runs import _check_compatible, finish, is_done, reference_of, run_path
from .storage import save_json
from .train import Runtime, Trainer


def train_distributed(config: RunConfig, runtime: Runtime, path: Path | None = None) -> None:
    """Train ``config`` with every process that torchrun started; rank 0 prints the result."""
    use_cuda = torch.cuda.is_available()
    path = Path(path) if path is not None else run_path(config)
    # the reference run is trained before the process group exists, as a plain single-process run
    # (it records a trajectory, which DDP cannot): the run cache's lock lets one process train it
    # while the others wait for it and then reuse it
    reference = None if is_done(path) else reference_of(config, runtime)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    try:
        rank = dist.get_rank()
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
            runtime = dataclasses.replace(runtime, device=f"cuda:{torch.cuda.current_device()}")
        if rank == 0:
            _check_compatible(path, config)
        dist.barrier()
        if is_done(path):
            return
        if rank == 0:
            save_json(path / "config.json", {"schema": SCHEMA_VERSION, "hash": config_hash(config),
                                             "config": config.to_dict()})
        dist.barrier()
        trainer = Trainer(config, path, runtime, reference)
        trainer.run()
        if rank == 0:
            finish(trainer, path)
            print(f"run {config_hash(config)} in {path} ({dist.get_world_size()} processes)")
    finally:
        dist.destroy_process_group()
