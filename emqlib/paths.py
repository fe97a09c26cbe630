"""Where things live: one place for every path the project writes or reads."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
FIGURES = ROOT / "figures"
NOTEBOOKS = ROOT / "notebooks"
EXECUTED_NOTEBOOKS = RESULTS / "notebooks"
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def runs_dir() -> Path:
    """The run cache: ``$EMQ_RUNS_DIR`` or ``runs/`` in the project root."""
    return Path(os.environ.get("EMQ_RUNS_DIR", ROOT / "runs"))


def data_dir() -> Path:
    """Downloaded data sets: ``$EMQ_DATA_DIR`` or ``data/`` in the project root."""
    return Path(os.environ.get("EMQ_DATA_DIR", ROOT / "data"))


def downloads_allowed() -> bool:
    """Downloads happen only when the user asks for them with ``EMQ_DOWNLOAD=1``."""
    return os.environ.get("EMQ_DOWNLOAD", "0") == "1"
