"""Notebook 05: what Dedicated, joint (Any-Precision), EMQ and EMQ with its bit-wise coreset cost and score, per
seed (docs/method.md §9): speed-ups over Dedicated on the trained bit-widths and on every bit-width the
multi-bit model serves (each seed training and timing its own Dedicated model for each served bit-width), the
design's pass ratio beside the measured one, and full data in both loops the coreset is compared with."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ...bits import SUPPORTED_BITS
from .. import labels, validity
from ..config import RunConfig, profile_config
from ..cost import ideal_pass_ratio, speedups
from .common import run_all, summarize
from .pruning import arm_config, full_data_configs
from .shared_bn import trained_neighbours

SERVED_GAP = 1.5  # points: an untrained bit-width is served when within this of its trained neighbours' mean


def served_bits(evaluation: pd.DataFrame, gap: float = SERVED_GAP) -> tuple[int, ...]:
    """The bit-widths a multi-bit model serves: the trained ones and each untrained one whose accuracy is
    within ``gap`` points of its trained neighbours' mean (1 bit, with one neighbour, of the 2-bit accuracy).
    ``evaluation``: accuracy per bit-width (mean over seeds; the validation split, where choices are made),
    with ``trained``."""
    acc = evaluation.groupby("bits").accuracy.mean()
    trained = sorted(evaluation.bits[evaluation.trained].unique())
    served = list(trained)
    for b in sorted(set(acc.index) - set(trained)):
        neighbours = trained_neighbours(b, trained)
        if neighbours and acc[b] >= np.mean([acc[t] for t in neighbours]) - gap:
            served.append(b)
    return tuple(sorted(int(b) for b in served))


def cost_methods(profile: str, sampler: str, fraction: float, seed: int) -> dict[str, RunConfig]:
    """The runs of one seed: Dedicated, joint, EMQ on full data in both loops, EMQ with its bit-wise coreset."""
    full = full_data_configs(profile, seed)
    return {labels.DEDICATED: profile_config(profile, "dedicated", seed=seed),
            labels.JOINT: profile_config(profile, "joint", seed=seed),
            labels.EMQ: full[labels.FULL_DATA],
            labels.FULL_DATA_BITWISE: full[labels.FULL_DATA_BITWISE],
            labels.emq_coreset(fraction): arm_config(profile, sampler, fraction, seed)}


def _is_multi_bit(label: str) -> bool:
    """The methods whose one model serves every bit-width (EMQ, EMQ + coreset)."""
    return label == labels.EMQ or labels.is_emq_coreset(label)


def training_cost(profile: str, sampler: str, seeds: Sequence[int] = (0, 1, 2), fraction: float = 0.2) -> pd.DataFrame:
    """Accuracy and cost of every method of :func:`cost_methods` per seed, with the speed-ups over that seed's
    Dedicated in wall-clock and in pass equivalents (docs/method.md §9): (a) Dedicated on the trained
    bit-widths; (b) Dedicated on every bit-width the multi-bit model serves (:func:`served_bits`, chosen on the
    validation split), each extra one a single-bit Dedicated run trained and timed on the same seed. Beside
    (b) in passes: ``design_pass_ratio``, what the design promises before any overhead."""
    configs = [(label, seed, config) for seed in seeds
               for label, config in cost_methods(profile, sampler, fraction, seed).items()]
    runs = run_all([config for _, _, config in configs],
                   [(SUPPORTED_BITS, False, "validation") if _is_multi_bit(label) else None for label, _, _ in configs])
    frame = validity.mark(pd.DataFrame([summarize(r, method=label, seed=seed, fraction=config.selection.fraction)
                                        for (label, seed, config), r in zip(configs, runs)]), ["method"])
    dedicated = frame[frame.method == labels.DEDICATED].set_index("seed")
    ratios = pd.DataFrame([speedups(dedicated.loc[row.seed], row) for _, row in frame.iterrows()], index=frame.index)
    frame[["speedup_wall", "speedup_passes"]] = ratios[["speedup_wall", "speedup_passes"]]
    trained = profile_config(profile).model.bits
    served = {method: served_bits(pd.concat([runs[i].evaluate(SUPPORTED_BITS, split="validation") for i in group.index]))
              for method, group in frame[frame.method.map(_is_multi_bit)].groupby("method")}
    untrained = sorted({b for bits in served.values() for b in bits} - set(trained))
    extra_configs = {(b, seed): profile_config(profile, "dedicated", seed=seed, model={"bits": (b,)})
                     for seed in seeds for b in untrained}
    extra = {key: r.cost() for key, r in zip(extra_configs, run_all(list(extra_configs.values())))}
    for i, row in frame.iterrows():
        if row.method not in served:
            continue
        bits = served[row.method]
        baseline = {key: dedicated.loc[row.seed, key] + sum(extra[(b, row.seed)][key] for b in bits if b not in trained)
                    for key in ("wall_seconds", "pass_equivalents")}
        ratio = speedups(baseline, row)
        frame.loc[i, ["served_bits", "speedup_wall_served", "speedup_passes_served", "design_pass_ratio"]] = [
            ",".join(map(str, bits)), ratio["speedup_wall"], ratio["speedup_passes"],
            ideal_pass_ratio(len(bits), len(trained), row.fraction)]
    return frame
