"""A trained run shipped in the repository (``pretrained/<config-hash>/``), so that the quickstart's bit-width
explorer opens under ``make lab`` without two and a half minutes of training first.

``make reproduce`` (cpu profile) copies its own seed-0 EMQ run there with ``provenance.json`` (the commit, machine
and libraries that trained it, and its test accuracy per bit-width); the quickstart installs it into the run cache
when the cache lacks that run (``use_shipped_run``, which ``make reproduce`` turns off: it trains its own). The files
are the run cache's own, checked by the same checksums as any finished run.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from . import paths
from .config import RunConfig, config_hash, profile_config
from .provenance import machine
from .runs import is_done, load_run, run_path, unfinished_reason
from .storage import load_json, save_json

SHIPPED = paths.ROOT / "pretrained"
# what a finished run needs to be loaded and evaluated (no checkpoint: training is over)
RUN_FILES = ("config.json", "done.json", "final.pt", "metrics.csv", "trajectory.pt", "selections.pt")


def shipped_path(config: RunConfig) -> Path:
    return SHIPPED / config_hash(config)


def _copy_run(source: Path, target: Path) -> None:
    """Copy a finished run's files into ``target`` through a temporary sibling folder renamed into place, so a
    reader never sees half a run."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for name in RUN_FILES:
            if (source / name).exists():
                shutil.copy2(source / name, staging / name)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ship(config: RunConfig, accuracy: dict[int, float], commit: dict | None = None) -> Path:
    """Copy the finished run of ``config`` from the run cache into ``pretrained/`` with its provenance."""
    source = run_path(config)
    reason = unfinished_reason(source)
    if reason is not None:
        raise FileNotFoundError(f"{source} is not a finished run ({reason}); train it before shipping it")
    target = shipped_path(config)
    for old in SHIPPED.glob("*") if SHIPPED.exists() else ():
        if old.is_dir() and old != target:  # one shipped run: the one of the current code
            shutil.rmtree(old)
    _copy_run(source, target)
    save_json(target / "provenance.json", {"commit": commit or paths.git_commit(), "machine": machine(),
                                           "test_accuracy": {str(b): round(a, 2) for b, a in accuracy.items()},
                                           "shipped_by": "make reproduce (emqlib.harness.shipped.ship)"})
    return target


def quickstart_config(profile: str = "cpu") -> RunConfig:
    """The run the quickstart trains and explores: the profile's EMQ run of seed 0."""
    return profile_config(profile, "emq", seed=0)


def ship_quickstart_run(profile: str = "cpu") -> Path | None:
    """Ship the quickstart's run when the run cache has it finished (``make reproduce`` calls this at its end)."""
    config = quickstart_config(profile)
    if not is_done(run_path(config)):
        return None
    evaluation = load_run(run_path(config)).evaluate(config.model.bits)
    return ship(config, dict(zip(evaluation.bits.astype(int), evaluation.accuracy.astype(float))))


def install(config: RunConfig) -> bool:
    """Put the shipped run of ``config`` into the run cache when the cache lacks it; True when it did. Nothing is
    shipped for this configuration (another profile, seed or code version): False, and the run trains as usual."""
    source, target = shipped_path(config), run_path(config)
    if is_done(target) or not source.is_dir() or unfinished_reason(source) is not None:
        return False
    _copy_run(source, target)
    commit = load_json(source / "provenance.json").get("commit", {}).get("commit", "?")
    shown = source.relative_to(paths.ROOT) if source.is_relative_to(paths.ROOT) else source
    print(f"note: using the run shipped in {shown} (trained by make reproduce at commit "
          f"{str(commit)[:10]}); delete {target} to train your own", file=sys.stderr)
    return True
