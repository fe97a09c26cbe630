"""One rule that turns a claim's per-seed measurements into a status, and its leave-one-out check.

A claim is a comparison with a direction:

- ``beats``: A beats B; the measurement is the paired difference A - B per seed, the claim holds
  when it is above 0 (``threshold`` 0);
- ``above`` / ``below``: a per-seed value (or paired difference) above / below ``threshold``
  (``above`` with a negative threshold is "at least as good as, within a margin");
- ``matches``: the paired difference A - B lies within ± ``threshold`` (the tolerance).

The status (:func:`grade`):

- ``reproduced``: the paper's direction holds in every seed, there are at least ``min_seeds``
  (3) seeds, the 95% t-interval of the per-seed values lies on the paper's side of the threshold
  (inside the tolerance for ``matches``), and, where the paper states an effect size, the mean
  effect is at least half of it;
- ``partial``: the mean meets the claim (on the paper's side, with at least half the paper's effect)
  but the seeds do not confirm it (fewer than 3 seeds, a seed against, an interval reaching the
  threshold). One or two seeds are never more than partial; with one seed there is no interval;
- ``not reproduced``: the mean misses the claim: it is on the wrong side (the wrong direction is never
  partial), or its effect is under half the paper's (a small effect in the paper's direction is not
  the paper's effect); :func:`why_not_reproduced` says which;
- ``not run``: no finite per-seed value (NaN rows are dropped before anything else).

Fragility (:func:`is_fragile`): the claim is graded again without each seed in turn, by the same
rule with the seed minimum lowered to n - 1 (so that 3 seeds can still be reproduced on 2); a
claim whose status changes in any of those gradings hangs on one run and is fragile. A claim
measured on one seed is always fragile (without it nothing is left).

What more seeds could do for a ``partial`` claim (:func:`seeds_to_reproduce`): nothing, when a seed is already
against the paper's direction (the rule asks for every seed); otherwise the fewest seeds whose 95% t-interval
clears the threshold if further seeds keep these seeds' mean and standard deviation (a projection, not a promise:
their mean may move either way).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .stats import t_interval, t_quantile_975

RULES = ("A claim is graded on one value per seed (a paired difference, paired by seed, where it compares "
         "two arms). **reproduced**: the paper's direction holds in every seed, with at least 3 seeds, and the "
         "95% t-interval over seeds lies on the paper's side of the threshold (inside the tolerance for "
         "'matches'), with at least half the paper's effect where it states one; **partial**: the mean meets the "
         "claim (the paper's side, at least half its effect) but the seeds do not confirm it (a seed against, an "
         "interval reaching the threshold; one or two seeds are never more than partial); "
         "**not reproduced**: the mean misses the claim (on the wrong side, or an effect under half the "
         "paper's; the `reason` column says which); **not run**: with the reason; **invalid**: not graded, "
         "because a run it reads fails a check (chance level, a collapsed bit-width, a loss that is not finite or "
         "never fell); **not comparable**: our counting cannot match the paper's. **fragile**: the "
         "status changes when any one seed is left out (graded with the seed minimum lowered to n - 1); "
         "a claim on one seed is always fragile. **seeds to reproduce** (a partial row): how many seeds in all "
         "would reproduce it if further seeds kept the mean and spread of those run, or none, when a seed is "
         "against the paper's direction.")
DIRECTIONS = ("beats", "above", "below", "matches")
STATUSES = ("reproduced", "partial", "not reproduced", "not run")
# what a claim is when it is not graded: it read a run that fails a check (emqlib.harness.validity), or our
# counting cannot match the paper's
UNGRADED = ("invalid", "not comparable")
MIN_SEEDS = 3  # fewest paired seeds for "reproduced"
MOST_SEEDS = 30  # the projection of :func:`seeds_to_reproduce` looks no further
NO_NUMBER = "none"  # how :func:`seeds_to_reproduce` begins when no number of seeds can reproduce a claim


@dataclass(frozen=True)
class Verdict:
    """The grade of one claim: status, number of seeds, mean and 95% t-interval of the per-seed values."""
    status: str
    n_seeds: int
    mean: float
    ci_low: float
    ci_high: float


def check_direction(direction: str, threshold: float) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if direction == "beats" and threshold != 0:
        raise ValueError(f"'beats' compares a difference with 0; use 'above' for threshold {threshold}")
    if direction == "matches" and not threshold > 0:
        raise ValueError(f"'matches' needs a positive tolerance, got {threshold}")


def _on_paper_side(x: np.ndarray | float, direction: str, threshold: float):
    """Whether value(s) ``x`` lie on the side of ``threshold`` that the paper claims."""
    if direction in ("beats", "above"):
        return x > threshold
    if direction == "below":
        return x < threshold
    return np.abs(x) <= threshold


def _interval_on_paper_side(low: float, high: float, direction: str, threshold: float) -> bool:
    if math.isnan(low):
        return False
    if direction in ("beats", "above"):
        return low > threshold
    if direction == "below":
        return high < threshold
    return -threshold <= low and high <= threshold


def _effect(mean: float, direction: str, threshold: float) -> float:
    """How far the mean lies beyond the threshold in the paper's direction (``beats``/``above``/``below``)."""
    return mean - threshold if direction in ("beats", "above") else threshold - mean


def _large_enough(mean: float, direction: str, threshold: float, paper_effect: float | None) -> bool:
    """The mean effect is at least half the paper's (always true when the paper states none)."""
    return paper_effect is None or direction == "matches" or _effect(mean, direction, threshold) >= paper_effect / 2


def grade(values, direction: str, threshold: float = 0.0, paper_effect: float | None = None,
          min_seeds: int = MIN_SEEDS) -> Verdict:
    """Grade per-seed ``values`` (one value per seed, paired differences for ``beats``/``matches``)
    by the rule in this module's docstring. ``paper_effect``: the paper's effect in the claimed
    direction (for ``above``/``below`` measured from ``threshold``), or None."""
    check_direction(direction, threshold)
    x = np.asarray(pd.Series(values, dtype=float).dropna(), dtype=float)
    mean, low, high = t_interval(x)
    if len(x) == 0:
        return Verdict("not run", 0, mean, low, high)
    if not (_on_paper_side(mean, direction, threshold) and _large_enough(mean, direction, threshold, paper_effect)):
        status = "not reproduced"
    elif (len(x) >= min_seeds and bool(np.all(_on_paper_side(x, direction, threshold)))
          and _interval_on_paper_side(low, high, direction, threshold)):
        status = "reproduced"
    else:
        status = "partial"
    return Verdict(status, len(x), mean, low, high)


def is_fragile(values, direction: str, threshold: float = 0.0, paper_effect: float | None = None,
               min_seeds: int = MIN_SEEDS) -> bool:
    """Whether the status changes when any one seed is left out (graded with the seed minimum
    lowered to n - 1; see the module docstring). ``values``: a Series indexed by seed."""
    series = pd.Series(values, dtype=float).dropna()
    full = grade(series, direction, threshold, paper_effect, min_seeds).status
    relaxed = max(1, min(min_seeds, len(series) - 1))
    return any(grade(series.drop(seed), direction, threshold, paper_effect, relaxed).status != full
               for seed in series.index)


def why_not_reproduced(values, direction: str, threshold: float = 0.0, paper_effect: float | None = None,
                       unit: str = "") -> str:
    """For a claim graded ``not reproduced``, how its mean misses the claim, in words (the ``reason`` column);
    empty for any other status."""
    verdict = grade(values, direction, threshold, paper_effect)
    if verdict.status != "not reproduced":
        return ""
    if not _on_paper_side(verdict.mean, direction, threshold):
        return ("the mean is outside the tolerance" if direction == "matches" else
                "the mean is on the wrong side of the threshold")
    return (f"the mean is on the paper's side, but its effect {_effect(verdict.mean, direction, threshold):.2f}{unit} "
            f"is under half the paper's {paper_effect:g}{unit}")


def seeds_to_reproduce(values, direction: str, threshold: float = 0.0, paper_effect: float | None = None) -> str:
    """For a claim graded ``partial``, what more seeds could do (see the module docstring), in words: how many
    seeds in all would reproduce it if they kept the mean and spread of ``values`` (a Series indexed by seed), or
    why no number of seeds can; empty for any other status."""
    series = pd.Series(values, dtype=float).dropna()
    verdict = grade(series, direction, threshold, paper_effect)
    if verdict.status != "partial":
        return ""
    against = [str(seed) for seed, x in series.items() if not _on_paper_side(x, direction, threshold)]
    if against:
        return (f"{NO_NUMBER} (seed{'s' * (len(against) > 1)} {', '.join(against)} "
                f"{'are' if len(against) > 1 else 'is'} against the paper's direction)")
    if len(series) < 2:
        return f"at least {MIN_SEEDS} (one seed has no spread to project)"
    spread = float(series.std(ddof=1))
    projection = f"if they keep these {len(series)} seeds' mean and spread"
    for n in range(max(len(series), MIN_SEEDS), MOST_SEEDS + 1):
        half = t_quantile_975(n - 1) * spread / math.sqrt(n)
        if _interval_on_paper_side(verdict.mean - half, verdict.mean + half, direction, threshold):
            return f"{n} ({projection})"
    return f"more than {MOST_SEEDS} ({projection})"


def criterion(direction: str, threshold: float, paper_effect: float | None, what: str, unit: str = "") -> str:
    """The rule for one claim in words (for the ``criterion`` column)."""
    check_direction(direction, threshold)
    side = {"beats": f"{what} > 0", "above": f"{what} > {threshold:g}{unit}",
            "below": f"{what} < {threshold:g}{unit}", "matches": f"|{what}| <= {threshold:g}{unit}"}[direction]
    size = ("" if paper_effect is None or direction == "matches" else
            f", with a mean effect >= {paper_effect / 2:.3g}{unit} (half the paper's {paper_effect:g})")
    return (f"reproduced when {side} holds in every seed (>= {MIN_SEEDS} seeds) and over the whole 95% "
            f"t-interval{size}; partial when it holds for the mean only; not reproduced otherwise")
