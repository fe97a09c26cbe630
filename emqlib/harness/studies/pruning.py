"""Notebook 05: EMQ's bit-wise coreset against other selection rules at 50-90% pruning, and against full data
trained for the same sample passes."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import labels
from ..config import profile_config
from .common import coreset_config, summarize_plan
from .cost import emq_coreset_config, equal_budget_configs


def pruning_study(profile: str, variant: str, rates: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
                  methods: Sequence[str] = ("random", "tdds"), seeds: Sequence[int] = (0,), headline_rate: float = 0.8,
                  headline_seeds: Sequence[int] = (0, 1, 2)) -> pd.DataFrame:
    """Average accuracy over the trained bit-widths at each pruning rate: EMQ's bit-wise coreset (design
    ``variant``, method label "EMQ + bit-wise coreset") and the selection rules ``methods``, with full-data
    EMQ (pruning rate 0) per seed. The headline rate runs every seed of ``headline_seeds`` and adds
    equal-budget full data: full-data EMQ for the epochs that give the coreset's sample passes
    (:func:`emqlib.harness.cost.equal_budget_epochs`), the competitor a coreset must beat."""
    plan = []
    for rate in rates:
        fraction = round(1 - rate, 6)
        for seed in (headline_seeds if np.isclose(rate, headline_rate) else seeds):
            plan.append((dict(method=labels.EMQ_CORESET, sampler=variant, pruning_rate=rate, seed=seed),
                         emq_coreset_config(profile, variant, fraction, seed)))
            plan += [(dict(method=method, pruning_rate=rate, seed=seed), coreset_config(profile, method, fraction, seed))
                     for method in methods]
    for seed in headline_seeds:
        plan += [(dict(method=label, pruning_rate=headline_rate, seed=seed), config)
                 for label, config in equal_budget_configs(profile, round(1 - headline_rate, 6), seed).items()]
    plan += [(dict(method=labels.FULL_DATA, pruning_rate=0.0, seed=seed), profile_config(profile, "emq", seed=seed))
             for seed in sorted({*seeds, *headline_seeds})]
    return summarize_plan(plan)


def coreset_check(pruning: pd.DataFrame, rate: float = 0.8,
                  methods: Sequence[str] = (labels.EMQ_CORESET, "random", "tdds", labels.EQUAL_BUDGET,
                                            labels.EQUAL_BUDGET_BITWISE)) -> pd.DataFrame:
    """The rows of :func:`pruning_study` at one pruning rate for EMQ's bit-wise coreset and the comparisons it
    must survive: accuracy per bit-width, their average, per-sample passes, seconds."""
    rows = pruning[(pruning.pruning_rate.sub(rate).abs() < 1e-9) & pruning.method.isin(methods)]
    accuracy = [c for c in pruning.columns if c.startswith("acc_")]
    columns = ["method", "pruning_rate", "seed", *accuracy, "avg_accuracy", "sample_passes", "teacher_forwards",
               "selection_forwards", "train_seconds", "selection_seconds", "reference_seconds", "total_seconds", "run"]
    return rows[columns].reset_index(drop=True)
