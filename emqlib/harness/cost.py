"""Training cost (docs/method.md §9): what an epoch counts, what a run totals, and speed-ups.

Two measures, both per run: wall-clock seconds of training plus coreset selection (evaluation
excluded), and hardware-independent *pass equivalents*: per-sample forward+backward passes plus
forward-only passes (distillation teachers, selection scoring) at :data:`FORWARD_PASS_WEIGHT`.
"""
from __future__ import annotations

import pandas as pd

from ..budgets import check_fraction

FORWARD_PASS_WEIGHT = 1 / 3  # a forward-only pass (teacher, scoring) costs about a third of a forward+backward


def pass_equivalents(sample_passes: float, teacher_forwards: float, selection_forwards: float) -> float:
    """Sample passes plus forward-only passes at FORWARD_PASS_WEIGHT."""
    return sample_passes + FORWARD_PASS_WEIGHT * (teacher_forwards + selection_forwards)


def run_cost(metrics: pd.DataFrame) -> dict:
    """Totals of a run's metrics table: seconds of training and of selection, their sum (the wall-clock cost),
    per-sample passes, forward-only passes, the pass equivalents, the optimizer steps and the learning rate of
    the last step (an equal budget is equal in passes, steps and schedule)."""
    per_epoch = metrics.groupby("epoch")[["train_seconds", "selection_seconds", "optimizer_steps"]].first().sum()
    last = metrics[metrics.epoch == metrics.epoch.max()]
    cost = {"train_seconds": float(per_epoch.train_seconds), "selection_seconds": float(per_epoch.selection_seconds),
            "sample_passes": int(metrics.sample_passes.sum()), "teacher_forwards": int(metrics.teacher_forwards.sum()),
            "selection_forwards": int(metrics.selection_forwards.sum()),
            "optimizer_steps": int(per_epoch.optimizer_steps), "final_lr": float(last.lr.max())}
    cost["wall_seconds"] = cost["train_seconds"] + cost["selection_seconds"]
    cost["pass_equivalents"] = pass_equivalents(cost["sample_passes"], cost["teacher_forwards"],
                                                cost["selection_forwards"])
    return cost


def speedups(baseline: dict, cost: dict) -> dict:
    """How many times cheaper ``cost`` is than ``baseline`` (both from :func:`run_cost`), in
    wall-clock and in pass equivalents."""
    return {"speedup_wall": baseline["wall_seconds"] / cost["wall_seconds"],
            "speedup_passes": baseline["pass_equivalents"] / cost["pass_equivalents"]}


def ideal_pass_ratio(dedicated_models: int, trained_bits: int, fraction: float) -> float:
    """Dedicated trains ``dedicated_models`` models on all data; a multi-bit method trains
    ``trained_bits`` bit-widths on a ``fraction`` of it each (EMQ, training cost)."""
    return dedicated_models / (trained_bits * fraction)


def pruning_rate(subset_sizes, train_size: int) -> float:
    """The pruning rate a run reached: 1 - (sample passes) / (train_size x epochs), from the size of
    each epoch's subset (InfoBatch's rate is not fixed in advance)."""
    sizes = list(subset_sizes)
    if not sizes or train_size < 1:
        raise ValueError("need at least one epoch's subset size and a positive training-set size")
    return 1.0 - sum(sizes) / (train_size * len(sizes))


def equal_budget_epochs(epochs: int, fraction) -> int:
    """Epochs of full-data training with the same sample passes as ``epochs`` epochs on a kept
    ``fraction`` (the equal-budget baseline a coreset must beat): max(1, round(epochs * fraction))."""
    fraction = check_fraction(fraction)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    return max(1, round(epochs * fraction))
