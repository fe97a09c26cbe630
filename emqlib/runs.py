"""The run cache: a run lives in ``runs/<config-hash>/`` and is trained once.

``get_run(config)`` returns the finished run for ``config``, training (or resuming) it first
when needed, so notebooks share trained models instead of retraining them. One process at a
time works on a run (a file lock); a second one asking for it waits and then reuses it.

A run folder holds ``config.json``, ``metrics.csv`` (one row per epoch and bit-width), the
last checkpoint (``checkpoint-NNNN.pt`` named by ``checkpoint.json`` with its checksum),
optional ``snapshots/``, and when finished ``final.pt`` and ``done.json``. Every file is
written atomically.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from . import paths
from .bits import FULL_PRECISION, SUPPORTED_BITS, parse_bits
from .config import SCHEMA_VERSION, RunConfig, config_hash, reference_config
from .coreset.sampling import Reference
from .data import require_dataset
from .inference import accuracy_at_bits
from .storage import CorruptFileError, file_lock, load_json, load_torch, save_csv, save_json, save_torch, sha256
from .build import Runtime, learner_bits, load_run_data
from .checkpoint import snapshot_path
from .cost import run_cost
from .models import model_for
from .train import Trainer


class IncompatibleRunError(RuntimeError):
    """A run folder holds a run of another configuration (or of an older code schema)."""


@dataclass
class Run:
    """A finished run in the cache."""

    path: Path
    config: RunConfig

    @cached_property
    def metrics(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "metrics.csv")

    @cached_property
    def _final(self) -> list[dict]:
        return load_torch(self.path / "final.pt", load_json(self.path / "done.json")["final_sha256"])

    def model(self, bits: int | None = None, epoch: int | None = None) -> nn.Module:
        """The trained model that runs ``bits`` (Dedicated: that bit-width's own model), in eval
        mode and channels-last memory format; with ``epoch``, its weights at the end of that epoch (needs ``snapshot_every``)."""
        groups = learner_bits(self.config)
        index = 0 if len(groups) == 1 else [g[0] for g in groups].index(bits)
        if epoch is None:
            state = self._final[index]
        else:
            snapshot = snapshot_path(self.path, epoch)
            if not snapshot.exists():
                raise FileNotFoundError(f"no snapshot of epoch {epoch} in {self.path}; set snapshot_every in the config")
            state = load_torch(snapshot)[index]
        model = model_for(self.config, groups[index])
        model.load_state_dict(state)
        # the memory format training uses by default, so evaluation repeats its numbers exactly
        return model.to(memory_format=Runtime().memory_format).eval()

    def trajectory(self) -> torch.Tensor:
        """Training softmax outputs [epochs, N, C] (runs with ``record_trajectory``)."""
        return load_torch(self.path / "trajectory.pt").float()

    def final_metrics(self) -> pd.DataFrame:
        """The last epoch's row per bit-width."""
        m = self.metrics
        return m[m.epoch == m.epoch.max()].reset_index(drop=True)

    def cost(self) -> dict:
        """The run's cost totals (:func:`emqlib.cost.run_cost`)."""
        return run_cost(self.metrics)

    def evaluate(self, bits=SUPPORTED_BITS, recalibrate: bool = False) -> pd.DataFrame:
        """Test accuracy at each of ``bits`` (trained or not), cached in the run folder.

        Dedicated runs have one model per trained bit-width and are evaluated at those only.
        ``recalibrate`` re-estimates BatchNorm statistics at each bit-width first (docs/method.md §4.3).
        """
        bits = parse_bits(bits)
        if self.config.method == "dedicated":
            bits = [b for b in bits if b in self.config.bits]
        key = sha256(json.dumps([bits, recalibrate]).encode())[:12]
        cached = self.path / f"eval-{key}.csv"
        if cached.exists():
            return pd.read_csv(cached)
        train, test = load_run_data(self.config)
        rows = []
        for b in bits:
            for row in accuracy_at_bits(self.model(b), test, [b], self.config.activation_bits,
                                        recalibrate_on=train if recalibrate else None):
                rows.append({**row, "trained": b in self.config.bits, "recalibrated": recalibrate})
        frame = pd.DataFrame(rows)
        save_csv(frame, cached)
        return frame


def run_path(config: RunConfig, root: Path | None = None) -> Path:
    return (root or paths.runs_dir()) / config_hash(config)


def check_compatible(path: Path, config: RunConfig) -> None:
    stored_file = path / "config.json"
    if not stored_file.exists():
        if any(path.glob("checkpoint*")):
            raise IncompatibleRunError(f"{path} holds checkpoints but no config.json; delete it or use another folder")
        return
    stored = load_json(stored_file)
    if stored.get("schema") != SCHEMA_VERSION or stored.get("config") != config.to_dict():
        theirs = stored.get("config", {})
        differing = sorted(k for k, v in config.to_dict().items() if theirs.get(k) != v)
        raise IncompatibleRunError(
            f"{path} holds a run of another configuration (schema {stored.get('schema')} vs {SCHEMA_VERSION}; "
            f"fields that differ: {differing or 'none'}); use another output folder or delete that one")


def is_done(path: Path) -> bool:
    return (path / "done.json").exists()


def load_run(path: str | Path) -> Run:
    """A finished run from its folder (or its hash in the run cache)."""
    path = Path(path)
    if not path.exists() and (paths.runs_dir() / str(path)).exists():
        path = paths.runs_dir() / str(path)
    if not is_done(path):
        raise FileNotFoundError(f"{path} is not a finished run (no done.json); train it with `python -m emqlib train`")
    stored = load_json(path / "config.json")
    if stored.get("schema") != SCHEMA_VERSION:
        raise IncompatibleRunError(f"{path} was written by schema {stored.get('schema')}, this code reads "
                                   f"{SCHEMA_VERSION}; retrain it")
    return Run(path, RunConfig.from_dict(stored["config"]))


def reference_of(config: RunConfig, runtime: Runtime = Runtime(), root: Path | None = None) -> Reference | None:
    """The full-precision reference a run needs (trained through the cache), or None."""
    if not config.needs_reference:
        return None
    run = get_run(reference_config(config), runtime, root)
    return Reference(run.model(FULL_PRECISION), run.trajectory())


def get_run(config: RunConfig, runtime: Runtime = Runtime(), root: Path | None = None,
            path: Path | None = None) -> Run:
    """The finished run of ``config``: from the cache, or trained (resumed) now.

    ``path`` overrides the cache folder (``train --out``). Raises IncompatibleRunError when
    that folder holds another configuration's run.
    """
    path = Path(path) if path is not None else run_path(config, root)
    if not is_done(path):
        require_dataset(config.dataset)  # before anything is written
    lock = path.parent / ".locks" / f"{path.name}.lock"
    with file_lock(lock):
        check_compatible(path, config)
        if is_done(path):
            return Run(path, config)
        reference = reference_of(config, runtime, root)
        save_json(path / "config.json", {"schema": SCHEMA_VERSION, "hash": config_hash(config),
                                         "config": config.to_dict()})
        trainer = Trainer(config, path, runtime, reference)
        trainer.run()
        finish(trainer, path)
    return Run(path, config)


def finish(trainer: Trainer, path: Path) -> None:
    """Write the final weights (and trajectory), then mark the run done."""
    digest = save_torch([l.module.state_dict() for l in trainer.learners], path / "final.pt")
    if trainer.trajectory is not None:
        save_torch(trainer.trajectory, path / "trajectory.pt")
    save_json(path / "done.json", {"final_sha256": digest, "epochs": trainer.config.epochs})


__all__ = ["Run", "get_run", "load_run", "run_path", "IncompatibleRunError", "CorruptFileError", "reference_of"]
