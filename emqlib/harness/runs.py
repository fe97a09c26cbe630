"""The run cache: a run lives in ``runs/<config-hash>/`` and is trained once.

``get_run(config)`` returns the finished run for ``config``, training (or resuming) it first
when needed, so notebooks share trained models instead of retraining them. One process at a
time works on a run (a file lock); a second one asking for it waits and then reuses it.

A run folder holds ``config.json``, ``metrics.csv`` (one row per epoch and bit-width), the
last checkpoint (``checkpoint-NNNN.pt`` named by ``checkpoint.json`` with its checksum),
optional ``snapshots/``, and when finished ``final.pt`` (the final weights, with the hash of the
configuration they were trained for), ``selections.pt`` (coreset runs: every subset
drawn, by epoch and bit-width) and ``done.json``. Every file is
written atomically. ``done.json`` records the checksums of ``final.pt``, ``metrics.csv`` (and
``trajectory.pt``), the configuration's hash and the number of epochs: a run is finished only
when all of them check out (:func:`unfinished_reason`); otherwise it is resumed from its last
checkpoint. It also says how the run was trained (device; compiled, eager or mixed). Locks live in ``<runs folder>/.locks/``, never next to a ``--out`` folder.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from . import paths
from ..bits import FULL_PRECISION, SUPPORTED_BITS, parse_bits
from .config import SCHEMA_VERSION, RunConfig, config_hash, reference_config
from ..coreset.samplers import Reference
from ..inference import accuracy_at_bits
from .storage import (CorruptFileError, file_lock, file_sha256, is_partial_write, load_json, load_torch, save_csv,
                      save_json, save_torch, sha256)
from .build import Runtime, learner_bits, load_run_data, model_for
from .checkpoint import snapshot_path
from .cost import run_cost
from .datasets import require_dataset
from .distributed import rank
from .trainer import Trainer, unpack_selections


class IncompatibleRunError(RuntimeError):
    """A run folder holds a run of another configuration (or of an older code schema)."""


@dataclass
class Run:
    """A finished run in the cache."""

    path: Path
    config: RunConfig

    @cached_property
    def metrics(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "metrics.csv")  # its checksum was verified (unfinished_reason)

    @cached_property
    def _final(self) -> list[dict]:
        """The learners' final weights, from a final.pt written for this run's configuration: done.json's
        checksum says the file is intact, not whose it is (a final.pt copied from another run, with the
        checksum edited to match, would be evaluated as this run)."""
        path = self.path / "final.pt"
        final = load_torch(path, load_json(self.path / "done.json")["final_sha256"], _train_again(self.path))
        ours = config_hash(self.config)
        theirs = final.get("config_hash") if isinstance(final, dict) else None
        if theirs != ours:
            whose = f"of another configuration (run {theirs})" if theirs else "that do not name their configuration"
            raise CorruptFileError(f"{path} holds weights {whose}, not those of run {ours}; {_retrain(self.path)}")
        return final["learners"]

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
            state = load_torch(snapshot, remedy=_retrain(self.path))[index]
        model = model_for(self.config, groups[index])
        model.load_state_dict(state)
        # the memory format training uses by default, so evaluation repeats its numbers exactly
        return model.to(memory_format=Runtime().memory_format).eval()

    def trajectory(self) -> torch.Tensor:
        """Training softmax outputs [epochs, N, C] (runs with ``record_trajectory``)."""
        return load_torch(self.path / "trajectory.pt", load_json(self.path / "done.json").get("trajectory_sha256"),
                          _train_again(self.path)).float()

    def selections(self) -> dict[tuple[int, int], torch.Tensor]:
        """Every subset the run trained on, by (epoch, bits), for the epochs where it drew one (coreset runs)."""
        digest = load_json(self.path / "done.json").get("selections_sha256")
        if digest is None:
            raise FileNotFoundError(f"{self.path} recorded no selections (not a coreset run, or trained before runs "
                                    f"recorded them); {_retrain(self.path)}")
        return unpack_selections(load_torch(self.path / "selections.pt", digest, _retrain(self.path)))

    def final_metrics(self) -> pd.DataFrame:
        """The last epoch's row per bit-width."""
        m = self.metrics
        return m[m.epoch == m.epoch.max()].reset_index(drop=True)

    def cost(self) -> dict:
        """The run's cost totals (:func:`emqlib.harness.cost.run_cost`)."""
        return run_cost(self.metrics)

    def evaluate(self, bits=SUPPORTED_BITS, recalibrate: bool = False, split: str = "test") -> pd.DataFrame:
        """Accuracy on the test set (or ``split="validation"``: the held-out training samples choices are made
        on) at each of ``bits`` (trained or not), cached in the run folder when it can be written (a note on
        stderr when not: a run on a read-only disk is still evaluated).

        Dedicated runs have one model per trained bit-width and are evaluated at those only (a note
        on stderr names the others). ``recalibrate`` re-estimates BatchNorm statistics at each
        bit-width first (docs/method.md §4.3). Computed with one torch thread wherever it runs (a
        worker or a notebook's process), so that the numbers do not depend on which process asked first.
        """
        bits = parse_bits(bits)
        trained_bits = self.config.model.bits
        if self.config.method == "dedicated":
            trained = ",".join(map(str, sorted(trained_bits)))
            skipped = [b for b in bits if b not in trained_bits]
            bits = [b for b in bits if b in trained_bits]
            if not bits:
                raise ValueError(f"{self.path} is a Dedicated run: it has a model for bits {trained} only; "
                                 f"evaluate it at some of those (--bits {trained})")
            if skipped:
                print(f"note: bits {','.join(map(str, skipped))} skipped: {self.path} is a Dedicated run, with a "
                      f"model for bits {trained} only", file=sys.stderr)
        key = [bits, recalibrate] if split == "test" else [bits, recalibrate, split]  # test caches keep their names
        cache = self.path / f"eval-{sha256(json.dumps(key).encode())[:12]}.csv"
        cached = _cached_evaluation(cache, bits)
        if cached is not None:
            return cached
        train, test = load_run_data(self.config, split)
        rows = []
        with _one_thread():
            for b in bits:
                for row in accuracy_at_bits(self.model(b), test, [b], self.config.model.activation_bits,
                                            recalibrate_on=train if recalibrate else None):
                    rows.append({**row, "trained": b in trained_bits, "recalibrated": recalibrate})
        frame = pd.DataFrame(rows)
        try:
            save_csv(frame, cache)
        except OSError as error:
            print(f"note: the evaluation is not cached ({error.strerror or error}: {error.filename or cache}); it "
                  "is computed again when asked for again", file=sys.stderr)
        return frame


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """torch computes with one thread inside the block: sums over threads (BatchNorm's statistics when
    it recalibrates) take another order with another thread count, and differ in the last bits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _cached_evaluation(path: Path, bits: list[int]) -> pd.DataFrame | None:
    """A cached evaluation that holds one row per bit-width of ``bits``; None (evaluate again,
    overwriting it) when the file is missing, empty or damaged: a cache is never trusted blindly."""
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError):  # missing, empty (EmptyDataError) or garbled (ParserError)
        return None
    if "accuracy" not in frame.columns or "bits" not in frame.columns or frame.bits.tolist() != bits:
        return None
    return frame


def run_path(config: RunConfig, root: Path | None = None) -> Path:
    return (root or paths.runs_dir()) / config_hash(config)


def _retrain(path: Path) -> str:
    return f"delete the run folder {path} and train it again to start over"


def _train_again(path: Path) -> str:
    return (f"run the same `python -m emqlib train` command again (its options are in {path / 'config.json'}): "
            "it resumes the run from its last checkpoint")


def _stored_config(path: Path) -> RunConfig:
    """The configuration in ``path/config.json``, refusing one that was edited after it was written."""
    stored = load_json(path / "config.json", f"{path} is not a usable run folder; use another folder or delete it")
    if not isinstance(stored, dict) or stored.get("schema") != SCHEMA_VERSION:
        schema = stored.get("schema") if isinstance(stored, dict) else None
        raise IncompatibleRunError(f"{path} was written by schema {schema}, this code reads {SCHEMA_VERSION}; "
                                   "use another output folder or delete that one")
    try:
        config = RunConfig.from_dict(stored["config"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise IncompatibleRunError(f"{path / 'config.json'} does not hold a valid configuration ({error}); "
                                   "use another output folder or delete that one") from None
    if config_hash(config) != stored.get("hash"):
        raise IncompatibleRunError(f"{path / 'config.json'} was changed after the run was written (it describes "
                                   f"run {config_hash(config)}, the folder holds run {stored.get('hash')}): this folder "
                                   "holds another configuration; restore that file, or train into another folder")
    return config


def check_compatible(path: Path, config: RunConfig) -> None:
    """Refuse, before anything is written, a ``path`` that is not a run folder of ``config``: a
    file, a folder with files but no run, or the run of another configuration."""
    if path.exists() and not path.is_dir():
        raise IncompatibleRunError(f"{path} is a file, not a run folder; give --out a new or empty folder")
    if not (path / "config.json").exists():
        # a run killed while it wrote config.json (its first file) leaves only that write's temporary file
        if path.is_dir() and not all(is_partial_write(p, of="config.json") for p in path.iterdir()):
            raise IncompatibleRunError(f"{path} holds files but no run (no config.json), so a run written there could "
                                       "overwrite them; give --out a new or empty folder")
        return
    stored = _stored_config(path)
    if stored != config:
        theirs, ours = stored.to_dict(), config.to_dict()
        differing = _differing(theirs, ours)
        raise IncompatibleRunError(f"{path} holds a run of another configuration (fields that differ: {differing}); "
                                   "use another output folder or delete that one")


def _differing(theirs: dict, ours: dict, prefix: str = "") -> list[str]:
    """The dotted names of the fields whose values differ between two configurations' dictionaries."""
    names = []
    for key, value in ours.items():
        other = theirs.get(key)
        if isinstance(value, dict) and isinstance(other, dict):
            names += _differing(other, value, f"{prefix}{key}.")
        elif other != value:
            names.append(prefix + key)
    return sorted(names)


def unfinished_reason(path: Path) -> str | None:
    """Why ``path`` is not a verified finished run, or None when it is: ``done.json`` parses and
    its checksums of ``final.pt``, ``metrics.csv`` (and ``trajectory.pt``), its configuration hash
    and its number of epochs match the files in the folder."""
    try:
        done = json.loads((path / "done.json").read_text())
    except FileNotFoundError:
        return "it has no done.json"
    except (OSError, ValueError) as error:  # unreadable, not JSON, not UTF-8
        return f"its done.json cannot be read ({type(error).__name__})"
    keys = {"final_sha256", "metrics_sha256", "config_hash", "epochs"}
    if not isinstance(done, dict) or not keys <= set(done):
        return "its done.json does not record the checksums of final.pt and metrics.csv"
    try:
        stored = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return "its config.json is missing or damaged"
    if not isinstance(stored, dict) or stored.get("hash") != done["config_hash"]:
        return "its done.json belongs to another configuration"
    epochs = ((stored.get("config") or {}).get("optim") or {}).get("epochs")
    if done["epochs"] != epochs:
        return f"its done.json records {done['epochs']} epochs, its configuration {epochs}"
    files = {"final.pt": done["final_sha256"], "metrics.csv": done["metrics_sha256"],
             "trajectory.pt": done.get("trajectory_sha256"), "selections.pt": done.get("selections_sha256")}
    for name, digest in files.items():
        if digest is not None and file_sha256(path / name) != digest:
            return f"its {name} is missing or does not match the checksum in done.json"
    return None


def is_done(path: Path) -> bool:
    """Whether ``path`` holds a verified finished run (see :func:`unfinished_reason`)."""
    return unfinished_reason(Path(path)) is None


def load_run(path: str | Path) -> Run:
    """A verified finished run from its folder (or its hash in the run cache)."""
    path = Path(path)
    if not path.exists() and (paths.runs_dir() / str(path)).exists():
        path = paths.runs_dir() / str(path)
    if path.is_file():
        raise FileNotFoundError(f"{path} is a file, not a run folder; give the folder of a trained run (the --out of "
                                "`python -m emqlib train`, or one in the run cache) or a run's hash")
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a finished run: no such run folder (nor a run's hash in "
                                f"{paths.runs_dir()}); train it with `python -m emqlib train`")
    reason = unfinished_reason(path)
    if reason is not None:
        todo = _train_again(path) if (path / "config.json").exists() else "train it with `python -m emqlib train`"
        raise FileNotFoundError(f"{path} is not a finished run ({reason}); {todo}")
    return Run(path, _stored_config(path))


def reference_of(config: RunConfig, runtime: Runtime = Runtime(), root: Path | None = None) -> Reference | None:
    """The full-precision reference a run needs (trained through the cache), or None."""
    if not config.needs_reference:
        return None
    run = get_run(reference_config(config), runtime, root)
    return Reference(run.model(FULL_PRECISION), run.trajectory())


def _replay_key(config: RunConfig) -> dict:
    """What a replayed run must share with the run that replays it: the training set, the bit-widths, the fraction."""
    d = config.data
    return {"dataset": d.dataset, "train_per_class": d.train_per_class, "validation_per_class": d.validation_per_class,
            "label_noise": d.label_noise, "bits": config.model.bits, "fraction": config.selection.fraction}


def replayed_selections(config: RunConfig, root: Path | None = None) -> dict[tuple[int, int], torch.Tensor] | None:
    """The recorded subsets of the finished run a ``replay`` rule names (None for any other rule). That run
    must have drawn from the same training set at the same fraction and bit-widths."""
    if config.selection.rule != "replay":
        return None
    source_run = config.selection.source_run
    path = (root or paths.runs_dir()) / source_run
    reason = unfinished_reason(path)
    if reason is not None:
        raise FileNotFoundError(f"selection.source_run names {path}, which is not a finished run ({reason}); train "
                                "that run first, then replay it")
    source = _stored_config(path)
    theirs, ours = _replay_key(source), _replay_key(config)
    differing = [k for k in ours if theirs[k] != ours[k]]
    if differing or source.optim.epochs < config.optim.epochs:
        raise ValueError(f"run {source_run} cannot be replayed by this configuration: it differs in "
                         f"{differing or ['epochs (fewer than this run)']}; replay a run of the same training set, "
                         "fraction and bit-widths with at least as many epochs")
    return Run(path, source).selections()


def lock_path(path: Path, root: Path | None = None) -> Path:
    """The lock of run folder ``path``: in the runs folder, named by the folder's real path (symbolic
    links resolved: one folder named two ways is one lock, so one process trains it)."""
    key = hashlib.sha256(os.fsencode(Path(path).resolve())).hexdigest()[:16]
    return (root or paths.runs_dir()) / ".locks" / f"{key}.lock"


def get_run(config: RunConfig, runtime: Runtime = Runtime(), root: Path | None = None,
            path: Path | None = None) -> Run:
    """The finished run of ``config``: from the cache, or trained (resumed) now.

    ``path`` overrides the cache folder (``train --out``). Raises IncompatibleRunError, before
    anything is written, when that folder is a file, holds other files, or holds another
    configuration's run. A run whose ``done.json`` does not check out is resumed from its last
    checkpoint (a note on stderr says so).
    """
    path = Path(path) if path is not None else run_path(config, root)
    check_compatible(path, config)
    if not is_done(path):
        require_dataset(config.data.dataset)  # before anything is written
    with file_lock(lock_path(path, root)):
        check_compatible(path, config)
        reason = unfinished_reason(path)
        if reason is None:
            return Run(path, config)
        for leftover in filter(is_partial_write, path.glob(".*")):  # this run's writes that a kill cut short
            leftover.unlink()
        if (path / "done.json").exists():  # it claims to be finished but does not check out
            resume = ("resuming it from its last checkpoint" if (path / "checkpoint.json").exists()
                      else "training it from its first epoch")
            print(f"note: {path} is not a verified finished run ({reason}); {resume}", file=sys.stderr)
            (path / "done.json").unlink()
        train_run(config, path, runtime, reference_of(config, runtime, root))
    return Run(path, config)


def train_run(config: RunConfig, path: Path, runtime: Runtime, reference: Reference | None) -> None:
    """Train (or resume) ``config`` in run folder ``path`` and mark it done: the training half of
    :func:`get_run`, which also runs in every process under torchrun (only rank 0 writes files)."""
    try:
        trainer = Trainer(config, path, runtime, reference, replayed_selections(config))  # loads data and checkpoint: fails before writing
    except CorruptFileError as error:
        raise CorruptFileError(f"{error}; no earlier checkpoint is kept: delete {path / 'checkpoint.json'} and run "
                               "the same command again to train the run from its first epoch") from None
    if rank() == 0:
        save_json(path / "config.json", {"schema": SCHEMA_VERSION, "hash": config_hash(config),
                                         "config": config.to_dict()})
    trainer.run()
    if rank() == 0:
        _finish(trainer, path)


def _finish(trainer: Trainer, path: Path) -> None:
    """Write the final weights (and trajectory), then mark the run done with the checksums
    :func:`unfinished_reason` verifies."""
    # metrics.csv is written again from the checkpointed rows: a resumed run may have found it damaged
    save_csv(pd.DataFrame(trainer.metrics), path / "metrics.csv")
    final = {"config_hash": config_hash(trainer.config), "learners": [l.module.state_dict() for l in trainer.learners]}
    done = {"final_sha256": save_torch(final, path / "final.pt"),
            "metrics_sha256": file_sha256(path / "metrics.csv"), "config_hash": config_hash(trainer.config),
            "epochs": trainer.config.optim.epochs,
            # how, not what: not in the configuration's hash, but compiled kernels sum in another order than eager ones;
            # "mixed": some epochs ran compiled and others not (a run resumed under another setting), or unrecorded
            "trained_with": {"device": trainer.runtime.torch_device().type,
                             "compiled": next(iter(trainer.compiled)) if len(trainer.compiled) == 1 else "mixed"}}
    if trainer.trajectory is not None:
        done["trajectory_sha256"] = save_torch(trainer.trajectory, path / "trajectory.pt")
    if trainer.config.selection.rule != "none":
        done["selections_sha256"] = save_torch(trainer.recorded(), path / "selections.pt")
    save_json(path / "done.json", done)


__all__ = ["Run", "get_run", "train_run", "load_run", "run_path", "is_done", "unfinished_reason", "IncompatibleRunError",
           "CorruptFileError", "reference_of", "replayed_selections"]
