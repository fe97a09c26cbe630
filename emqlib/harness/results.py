"""Result tables: the CSVs the notebooks write into ``results/`` and the figures and README read.

``save_result(frame, "shared_bn.csv")`` writes atomically into :func:`emqlib.harness.paths.results_dir`;
``load_result("shared_bn.csv")`` reads it back, and when it is missing says which notebook
writes it.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import paths
from .storage import save_csv

# every result file and the notebook (in notebooks/) that writes it
PRODUCERS = {
    "quickstart_eval.csv": "00_quickstart.ipynb",
    "activation_alignment.csv": "01_activation_alignment.ipynb",
    "shared_bn.csv": "02_shared_bn.ipynb",
    "shared_bn_gaps.csv": "02_shared_bn.ipynb",
    "quant_core_check.csv": "02_shared_bn.ipynb",
    "gradient_angles.csv": "03_gradient_angles.ipynb",
    "depth_trends.csv": "03_gradient_angles.ipynb",
    "regime_check.csv": "04_pruning.ipynb",
    "convergence.csv": "04_pruning.ipynb",
    "pruning.csv": "04_pruning.ipynb",
    "sampler_choice.csv": "04_pruning.ipynb",
    "ranking.csv": "04_pruning.ipynb",
    "pruning_rates.csv": "04_pruning.ipynb",
    "training_cost.csv": "05_training_cost.ipynb",
    "acs_fractions.csv": "06_acs.ipynb",
    "acs_schedule.csv": "06_acs.ipynb",
    "acs_interval.csv": "06_acs.ipynb",
    "acs_baselines.csv": "06_acs.ipynb",
    "acs_baselines_long.csv": "06_acs.ipynb",
    "acs_cost.csv": "06_acs.ipynb",
    "acs_split.csv": "06_acs.ipynb",
    "acs_no_distillation.csv": "06_acs.ipynb",
    "acs_transfer.csv": "06_acs.ipynb",
    "acs_overlap.csv": "06_acs.ipynb",
    "acs_vit.csv": "06_acs.ipynb",
    "label_noise.csv": "07_label_noise.ipynb",
    "label_noise_long.csv": "07_label_noise.ipynb",
    "score_extraction.csv": "08_score_extraction.ipynb",
    "claims.csv": "09_claims.ipynb",
    "study_costs.csv": "09_claims.ipynb",
}


def _filename(name: str) -> str:
    if not name or Path(name).name != name:
        raise ValueError(f"a result name is a plain file name such as 'shared_bn.csv', got {name!r}")
    return name if name.endswith(".csv") else f"{name}.csv"


def result_path(name: str) -> Path:
    """Where result ``name`` lives: ``results_dir()/<name>`` (``.csv`` added when missing)."""
    return paths.results_dir() / _filename(name)


def save_result(frame: pd.DataFrame, name: str) -> Path:
    """Write ``frame`` (without its index) to ``results_dir()/<name>`` atomically; returns the path."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"save_result needs a pandas DataFrame, got {type(frame).__name__}")
    return save_csv(frame, result_path(name))


def load_result(name: str) -> pd.DataFrame:
    """Read result ``name`` from ``results_dir()``; a missing file names the notebook that writes it."""
    path = result_path(name)
    if not path.exists():
        producer = PRODUCERS.get(path.name)
        how = (f"run notebooks/{producer} (or `make reproduce`)" if producer
               else "run the notebook that saves it (or `make reproduce`)")
        raise FileNotFoundError(f"result {path.name} not found in {path.parent}; {how}")
    return pd.read_csv(path)

