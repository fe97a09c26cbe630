"""Small statistics over per-seed results: mean and spread, the 95% t-interval, rank correlation.

numpy and pandas only (scipy is not a dependency): the Student-t quantile comes from a table.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

# t_{0.975, df}: the two-sided 95% quantile of Student's t with df degrees of freedom, to 4
# decimals (tests/test_grading.py checks each against a numerical integral of the t density,
# so the table cannot drift). Beyond df 30 the table steps
# to 40, 60 and 120; a df between rows uses the row below it, whose quantile is larger (a wider,
# conservative interval).
T_975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 6: 2.4469, 7: 2.3646, 8: 2.3060,
         9: 2.2622, 10: 2.2281, 11: 2.2010, 12: 2.1788, 13: 2.1604, 14: 2.1448, 15: 2.1314, 16: 2.1199,
         17: 2.1098, 18: 2.1009, 19: 2.0930, 20: 2.0860, 21: 2.0796, 22: 2.0739, 23: 2.0687, 24: 2.0639,
         25: 2.0595, 26: 2.0555, 27: 2.0518, 28: 2.0484, 29: 2.0452, 30: 2.0423, 40: 2.0211, 60: 2.0003,
         120: 1.9799}


def t_quantile_975(df: int) -> float:
    """t_{0.975, df} from :data:`T_975` (df >= 1)."""
    if df < 1:
        raise ValueError(f"a t-interval needs at least 1 degree of freedom (2 values), got df={df}")
    return T_975[max(k for k in T_975 if k <= df)]


def t_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high) of the 95% t-interval mean ± t_{0.975, n-1} · s / sqrt(n) (s with ddof 1).

    NaN values are dropped first; with fewer than 2 values the bounds are NaN (no spread to estimate).
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = t_quantile_975(len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return mean, mean - half, mean + half


def mean_std(frame: pd.DataFrame, by: Sequence[str] | str, value: str = "avg_accuracy") -> pd.DataFrame:
    """Mean, standard deviation (ddof 1; NaN for one seed) and count of ``value`` per group,
    groups in order of appearance."""
    grouped = frame.groupby([by] if isinstance(by, str) else list(by), sort=False)[value]
    return grouped.agg(mean="mean", std="std", n="count").reset_index()


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman rank correlation: the Pearson correlation of the ranks (ties get their mean rank)."""
    return float(pd.Series(x, dtype=float).rank().corr(pd.Series(y, dtype=float).rank()))


def permutation_p(x: Sequence[float], y: Sequence[float], permutations: int = 10_000, seed: int = 0) -> float:
    """One-sided permutation p-value of a negative Spearman correlation: the share of random orders of ``y``
    (``permutations`` of them, seeded, and the observed order) whose correlation with ``x`` is at most the
    observed one. Small: the trend is unlikely to come from noise."""
    rank_x = pd.Series(x, dtype=float).rank().to_numpy()
    rank_y = pd.Series(y, dtype=float).rank().to_numpy()
    generator = np.random.default_rng(seed)
    shuffled = np.stack([generator.permutation(rank_y) for _ in range(permutations)])
    centred_x, centred_y = rank_x - rank_x.mean(), shuffled - rank_y.mean()
    # the Pearson correlation of the ranks (Spearman's), for every order at once
    correlations = centred_y @ centred_x / (np.linalg.norm(centred_y, axis=1) * np.linalg.norm(centred_x))
    at_most = int((correlations <= spearman(x, y) + 1e-12).sum())
    return (at_most + 1) / (permutations + 1)


def depth_trend(angles: pd.DataFrame) -> float:
    """Spearman correlation of layer depth with angle at the last epoch (negative: deeper layers more aligned)."""
    last = angles[(angles.epoch == angles.epoch.max()) & (angles.layer_index >= 0)]
    per_layer = last.groupby("layer_index").angle.mean()
    return spearman(per_layer.index, per_layer.to_numpy())
