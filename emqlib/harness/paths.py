"""Where things live: one place for every path the project writes or reads.

Each folder can be moved with an environment variable (tests write into temporary folders). A
relative one is resolved against the working directory of the process when it is read, and
:func:`folder_environment` hands child processes the absolute paths: the notebook kernels of
``make reproduce`` work in ``notebooks/``, where the same relative path would name other folders.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"  # source notebooks, committed without outputs
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


FOLDER_VARIABLES = ("EMQ_RUNS_DIR", "EMQ_RESULTS_DIR", "EMQ_FIGURES_DIR", "EMQ_DATA_DIR")


def _folder(variable: str, default: Path) -> Path:
    return Path(os.environ.get(variable, default)).absolute()


def folder_environment() -> dict[str, str]:
    """The folder variables that are set, each as an absolute path (for processes that start in
    another working directory)."""
    return {v: str(Path(os.environ[v]).absolute()) for v in FOLDER_VARIABLES if v in os.environ}


def results_dir() -> Path:
    """CSVs and executed notebooks: ``$EMQ_RESULTS_DIR`` or ``results/``."""
    return _folder("EMQ_RESULTS_DIR", ROOT / "results")


def figures_dir() -> Path:
    """Regenerated figures: ``$EMQ_FIGURES_DIR`` or ``figures/``."""
    return _folder("EMQ_FIGURES_DIR", ROOT / "figures")


def executed_notebooks_dir() -> Path:
    """Notebooks as executed by ``make reproduce``: ``results/notebooks/``."""
    return results_dir() / "notebooks"


def reproduce_record(profile: str, cold: bool = False) -> Path:
    """The timings of ``make reproduce`` for ``profile``: ``results/reproduce_<profile>.json``; with ``cold``,
    those of the last complete run that started from an empty run cache (what a fresh machine pays)."""
    return results_dir() / f"reproduce_{profile}{'_cold' if cold else ''}.json"


def runs_dir() -> Path:
    """The run cache: ``$EMQ_RUNS_DIR`` or ``runs/``."""
    return _folder("EMQ_RUNS_DIR", ROOT / "runs")


def data_dir() -> Path:
    """Downloaded data sets: ``$EMQ_DATA_DIR`` or ``data/``."""
    return _folder("EMQ_DATA_DIR", ROOT / "data")


def downloads_allowed() -> bool:
    """Downloads happen only when the user asks for them with ``EMQ_DOWNLOAD=1``."""
    return os.environ.get("EMQ_DOWNLOAD", "0") == "1"


# what `make reproduce` itself rewrites: a run's own outputs do not make its code differ from the commit
OUTPUTS = ("results", "figures", "pretrained", "README.md", "docs/engineering.md")


def git_commit(root: Path = ROOT) -> dict:
    """The commit of ``root`` the results were made from, and whether tracked files other than
    :data:`OUTPUTS` differed from it (None: no git)."""
    def git(*args) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
    commit = git("rev-parse", "HEAD")
    changes = (git("status", "--porcelain", "--untracked-files=no", "--", ".", *(f":!{p}" for p in OUTPUTS))
               if commit else None)
    return {"commit": commit, "uncommitted_changes": None if changes is None else bool(changes)}
