"""How many samples a kept fraction means, per class: used by class-balanced data subsets and by
coreset selection alike (so both round the same way).

Per-class budgets are round(fraction * n_c) (Python's round, so exact halves go to the even
integer), at least 1 for every present class.
"""
from __future__ import annotations

from numbers import Real

import torch
from torch import Tensor


def check_fraction(fraction) -> float:
    """Validate a kept fraction S = 1 - pruning rate; return it as a float in (0, 1]."""
    if isinstance(fraction, bool) or not isinstance(fraction, Real) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}; e.g. 0.2 keeps 20% of the samples")
    return float(fraction)


def budget(n: int, fraction: float) -> int:
    """Samples kept of a group of ``n``: max(1, round(fraction * n))."""
    return max(1, round(fraction * n))


def check_labels(labels: Tensor, n: int | None = None) -> None:
    if labels.dim() != 1 or (n is not None and labels.shape[0] != n):
        expected = "[N]" if n is None else f"[{n}]"
        raise ValueError(f"labels must have shape {expected}, got {tuple(labels.shape)}")


def class_budgets(labels: Tensor, fraction) -> dict[int, int]:
    """Number of samples to keep per present class: max(1, round(fraction * n_c))."""
    fraction = check_fraction(fraction)
    check_labels(labels)
    classes, counts = torch.unique(labels, return_counts=True)
    return {int(c): budget(int(n), fraction) for c, n in zip(classes, counts)}
