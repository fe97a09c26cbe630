"""A run's checkpoints: the last epoch's full training state, written so that a kill at any
moment leaves a complete one, and optional per-epoch weight snapshots.

``checkpoint.json`` names the current ``checkpoint-NNNN.pt`` and its SHA-256; a checkpoint is
written first, then pointed to, then the previous one is deleted.
"""
from __future__ import annotations

from pathlib import Path

from .storage import load_json, load_torch, save_json, save_torch

POINTER = "checkpoint.json"


def load_latest(run_dir: Path) -> tuple[Path, dict] | None:
    """The last checkpoint in ``run_dir`` and its state (checksum verified), or None when there is none."""
    pointer = run_dir / POINTER
    if not pointer.exists():
        return None
    info = load_json(pointer)
    path = run_dir / info["file"]
    return path, load_torch(path, info["sha256"])


def learner_state(learner) -> dict:
    """What resuming a learner (:class:`emqlib.train.Learner`) needs: its model and optimizer (the learning rate is
    set again from the schedule before every step)."""
    return {"model": learner.module.state_dict(), "optimizer": learner.optimizer.state_dict()}


def resume(run_dir: Path, config: dict, learners: list) -> dict | None:
    """Load the last checkpoint of ``run_dir`` into ``learners`` and return its state (epoch,
    subsets, metrics, trajectory), or None when there is none. Raises ValueError when the
    checkpoint belongs to another configuration (``config``, as RunConfig.to_dict())."""
    latest = load_latest(run_dir)
    if latest is None:
        return None
    path, state = latest
    if state["config"] != config:
        raise ValueError(f"checkpoint {path} belongs to another configuration")
    for learner, saved in zip(learners, state["learners"]):
        learner.module.load_state_dict(saved["model"])
        learner.optimizer.load_state_dict(saved["optimizer"])
    return state


def save(run_dir: Path, epoch: int, state: dict) -> None:
    """Write ``state`` as the checkpoint of ``epoch``, point to it, then drop the previous one."""
    pointer = run_dir / POINTER
    old_file = load_json(pointer)["file"] if pointer.exists() else None
    name = f"checkpoint-{epoch:04d}.pt"
    digest = save_torch(state, run_dir / name)
    save_json(pointer, {"epoch": epoch, "file": name, "sha256": digest})
    if old_file and old_file != name:
        (run_dir / old_file).unlink(missing_ok=True)


def snapshot_path(run_dir: Path, epoch: int) -> Path:
    """Where the model weights at the end of ``epoch`` are kept (runs with ``snapshot_every``)."""
    return run_dir / "snapshots" / f"epoch-{epoch:04d}.pt"


def save_snapshot(run_dir: Path, epoch: int, weights: list[dict]) -> None:
    save_torch(weights, snapshot_path(run_dir, epoch))
