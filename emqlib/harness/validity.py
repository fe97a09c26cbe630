"""Whether a run may feed a claim: checked before any grading.

A run fails when it is (1) not finished and checksummed, (2) not clearly above chance at a bit-width it
trained: below chance + a quarter of the way to 100% (32.5% with 10 classes), (3) its training loss is not
finite, or, trained from scratch, does not fall from the first epoch to the last at some bit-width (a run started
from the reference run's weights starts near its final loss, and a subset chosen to be harder every epoch raises
the loss it is measured on, so only from scratch does a loss that never fell mean a run that never learned), or
(4) one of its children
collapsed: a bit-width more than :data:`COLLAPSE_POINTS` below both the median of the run's other trained
bit-widths and the median of the same bit-width in the same arm's other seeds. Both comparisons are needed:
the first alone would flag a bit-width that is weaker in every seed (a property of the method, a finding),
the second alone a seed that is weaker at every bit-width (seed noise).

:func:`run_failures` checks one run; :func:`mark` adds the result to a study's table (one row per run, with
``acc_<bits>`` columns), so that the claims, which read only the tables, can refuse a failing run.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .datasets import DATASET_SHAPES

COLLAPSE_POINTS = 3.0  # about three times the run-to-run spread of one bit-width over seeds at the cpu profile
CHANCE_SHARE = 0.25  # "clearly above chance": chance + this share of the way to 100%


def chance(dataset: str) -> float:
    """Accuracy (%) of guessing on a balanced test set of ``dataset``."""
    return 100.0 / DATASET_SHAPES[dataset][0]


def floor(dataset: str) -> float:
    """The accuracy (%) a run must exceed at every trained bit-width to be clearly above chance."""
    return chance(dataset) + CHANCE_SHARE * (100.0 - chance(dataset))


def run_failures(metrics: pd.DataFrame, dataset: str, finished: bool = True, from_scratch: bool = True) -> list[str]:
    """The checks (1)-(3) of this module that a run's metrics table fails, in words (empty: none)."""
    failures = [] if finished else ["not finished or not checksummed"]
    last = metrics[metrics.epoch == metrics.epoch.max()]
    low = [f"{int(b)}-bit {a:.2f}%" for b, a in zip(last.bits, last.test_accuracy) if not a > floor(dataset)]
    if low:
        failures.append(f"at chance level (below {floor(dataset):.1f}%): {', '.join(low)}")
    if not np.isfinite(metrics.train_loss).all():
        failures.append("non-finite training loss")
    elif from_scratch and metrics.epoch.nunique() > 1:
        for b, rows in metrics.sort_values("epoch").groupby("bits"):
            if not rows.train_loss.iloc[-1] < rows.train_loss.iloc[0]:
                failures.append(f"{int(b)}-bit training loss did not fall ({rows.train_loss.iloc[0]:.3f} -> "
                                f"{rows.train_loss.iloc[-1]:.3f})")
    return failures


def collapsed(frame: pd.DataFrame, arm: Sequence[str]) -> pd.Series:
    """Per row of a study's table (one run per row, ``acc_<bits>`` columns, a ``seed`` column): the children
    that collapsed (check (4)), as text, "" where none. ``arm``: the columns that name an arm (its seeds are
    the rows that agree on them)."""
    accuracy = [c for c in frame.columns if c.startswith("acc_")]
    found = pd.Series("", index=frame.index)
    keys = [frame[c].astype(str) for c in arm] if arm else [pd.Series("", index=frame.index)]
    for _, rows in frame.groupby(keys, sort=False):
        for i, row in rows.iterrows():
            children = {c: row[c] for c in accuracy if not math.isnan(row[c])}
            bad = []
            for c, value in children.items():
                siblings = [v for k, v in children.items() if k != c]
                others = rows.drop(index=i)[c].dropna()
                below_siblings = bool(siblings) and value < np.median(siblings) - COLLAPSE_POINTS
                below_seeds = others.empty or value < others.median() - COLLAPSE_POINTS
                if below_siblings and below_seeds:
                    bad.append(f"{c.removeprefix('acc_')}-bit {value:.2f}%")
            found[i] = ", ".join(bad)
    return found


def mark(frame: pd.DataFrame, arm: Sequence[str]) -> pd.DataFrame:
    """``frame`` (a study's table with the ``invalid_reason`` of each run's own checks) with the collapsed
    children of check (4) added, and ``valid``: whether the row may feed a claim."""
    found = collapsed(frame, arm)
    reasons = frame.get("invalid_reason", pd.Series("", index=frame.index)).fillna("").astype(str)
    reasons = [" ; ".join(r for r in (own, f"collapsed child: {child}" if child else "") if r)
               for own, child in zip(reasons, found)]
    return frame.assign(invalid_reason=reasons, valid=[not r for r in reasons])


def invalid_rows(frame: pd.DataFrame, label: Sequence[str]) -> list[str]:
    """Each invalid row of ``frame`` as "run R (labels): reason" (the rows a claim read)."""
    if "valid" not in frame.columns:
        return []
    bad = frame[~frame.valid.astype(bool)]
    return [f"run {row.run} ({', '.join(f'{c} {row[c]}' for c in label if c in frame.columns)}): {row.invalid_reason}"
            for _, row in bad.iterrows()]
