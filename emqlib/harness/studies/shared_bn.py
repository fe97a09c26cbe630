"""Notebook 02: one shared BatchNorm, and the bit-widths never trained (3, 5, 6, 7), with and without weight
bias correction and BatchNorm recalibration (docs/method.md §3-§4)."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ...bits import SUPPORTED_BITS
from ..config import RunConfig, profile_config
from .common import run_all, with_checks

NO_CORRECTION = {"model": {"quant": {"bias_correction": False}}}
# label: (method, config changes, recalibrate BN before evaluating)
VARIANTS = {
    "switchable BN (joint)": ("joint", {}, False),
    "switchable BN + recalibration": ("joint", {}, True),
    "shared BN, no correction": ("emq", NO_CORRECTION, False),
    "shared BN + correction": ("emq", {}, False),
    "shared BN + correction + recalibration": ("emq", {}, True),
}
# forms of the correction and of the 32-bit activation, run with the first seed only
ABLATIONS = {
    "shared BN + correction (the paper's literal form)": ("emq", {"model": {"quant": {"correction_mode": "paper"}}},
                                                          False),
    "shared BN + correction (per layer)": ("emq", {"model": {"quant": {"per_channel": False}}}, False),
    "shared BN + correction, ReLU at 32 bits": ("emq", {"model": {"quant": {"full_precision_activation": "relu"}}},
                                                False),
    "shared BN, no correction, ReLU at 32 bits": (
        "emq", {"model": {"quant": {"bias_correction": False, "full_precision_activation": "relu"}}}, False),
}


def variant_plan(profile: str, variants: dict, seeds: Sequence[int]) -> list[tuple[str, int, bool, RunConfig]]:
    """(label, seed, recalibrate, configuration) of each variant and seed, on the short schedule."""
    return [(label, seed, recalibrate, profile_config(profile, method, short=True, seed=seed, **changes))
            for seed in seeds for label, (method, changes, recalibrate) in variants.items()]


def accuracy_at_all_bits(plan: Sequence[tuple[str, int, bool, RunConfig]], bits=SUPPORTED_BITS) -> pd.DataFrame:
    """Test accuracy at every bit-width (trained or not) for each (label, seed, recalibrate, configuration) of
    ``plan`` (:func:`variant_plan`), its runs trained together."""
    runs = run_all([config for *_, config in plan], [(bits, recalibrate) for _, _, recalibrate, _ in plan])
    frames = [r.evaluate(bits, recalibrate=recalibrate).assign(variant=label, seed=seed, run=r.path.name)
              for (label, seed, recalibrate, _), r in zip(plan, runs)]
    return with_checks(pd.concat(frames, ignore_index=True),
                       [(dict(variant=label, seed=seed), config) for label, seed, _, config in plan], ["variant"])


def shared_bn_study(profile: str = "cpu", seeds: Sequence[int] = (0, 1)) -> pd.DataFrame:
    """Accuracy at every bit-width: the main variants for every seed, the ablations for the first (one pool of
    runs, so that no worker waits for the other's last run between the two)."""
    return accuracy_at_all_bits(variant_plan(profile, VARIANTS, seeds) + variant_plan(profile, ABLATIONS, seeds[:1]))


def quant_core_check(profile: str = "cpu", seed: int = 0) -> pd.DataFrame:
    """EMQ (bits 2,4,8,32) evaluated at 1..8 and 32, with and without weight bias correction, for both
    32-bit activations (clamp, our EMQ default; ReLU, docs/method.md §2.2)."""
    keys = ["shared BN + correction", "shared BN, no correction", "shared BN + correction, ReLU at 32 bits",
            "shared BN, no correction, ReLU at 32 bits"]
    variants = {**VARIANTS, **ABLATIONS}
    return accuracy_at_all_bits(variant_plan(profile, {k: variants[k] for k in keys}, (seed,)))


def trained_neighbours(b: int, trained: Sequence[int]) -> list[int]:
    """The nearest trained bit-width below ``b`` and the nearest above, where there is one."""
    below, above = [t for t in trained if t < b], [t for t in trained if t > b]
    return [*(below and [max(below)]), *(above and [min(above)])]


def neighbour_gaps(frame: pd.DataFrame) -> pd.DataFrame:
    """For each untrained bit-width: its accuracy minus the mean of its trained neighbours'."""
    rows = []
    for (variant, seed), group in frame.groupby(["variant", "seed"], sort=False):
        acc = dict(zip(group.bits, group.accuracy))
        trained = sorted(group.bits[group.trained])
        for b in sorted(group.bits[~group.trained]):
            pair = trained_neighbours(b, trained)
            if len(pair) < 2:
                continue
            neighbours = (acc[pair[0]] + acc[pair[1]]) / 2
            rows.append({"variant": variant, "seed": seed, "bits": b, "accuracy": acc[b],
                         "neighbours": neighbours, "gap": acc[b] - neighbours})
    return pd.DataFrame(rows)
