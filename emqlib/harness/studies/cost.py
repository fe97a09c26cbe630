"""Notebook 04: is the profile converged, which sampler is EMQ's, and what Dedicated, joint, EMQ and EMQ with
its bit-wise coreset cost (docs/method.md §9)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ...bits import SUPPORTED_BITS
from .. import labels
from ..build import load_run_data
from ..config import RunConfig, profile_config
from ..cost import equal_budget_epochs, pruning_rate, speedups
from .common import coreset_config, run, run_all, summarize, summarize_plan
from .shared_bn import trained_neighbours

CONVERGENCE_GAIN = 0.5  # points: a profile is converged when doubling its epochs gains less than this


def regime_check(profile: str = "cpu", seeds: Sequence[int] = (0, 1), factor: int = 2) -> pd.DataFrame:
    """Full-data EMQ at the profile's epochs and at ``factor`` times as many, per seed, with the gain of the
    longer schedule: pruning and cost claims need a profile where it is below :data:`CONVERGENCE_GAIN` (far
    from convergence every pruned sample costs accuracy)."""
    base = profile_config(profile, "emq")
    epochs = base.optim.epochs
    frame = summarize_plan([(dict(method=labels.EMQ, epochs=e, seed=seed),
                             base.replace(optim={"epochs": e}, seed=seed))
                            for seed in seeds for e in (epochs, factor * epochs)])
    first = frame.groupby("seed").avg_accuracy.transform("first")
    frame["gain_over_profile"] = frame.avg_accuracy - first
    return frame


# The sampling design space of EMQ's bit-wise coreset (docs/method.md §6), judged on a validation split of the
# training data: label -> (rule, its settings). Warm-up W=2 epochs on uniform subsets wherever scores come from
# the model being trained.
DESIGN_VARIANTS = {
    "random, re-drawn every epoch": ("random", {}),
    "random, drawn once": ("random-once", {}),
    "top-k, rescored every 2 epochs": ("emq-topk", dict(reselect_every=2, warmup_epochs=2)),
    "sampled (tau 1, eps 0.1), scored once": ("emq-sample", dict(static=True, warmup_epochs=2)),
    "sampled (tau 0.5, eps 0.5), scored once": ("emq-sample", dict(static=True, warmup_epochs=2, tau=0.5,
                                                                   uniform_share=0.5)),
    "sampled (tau 1, eps 0.1), free scores": ("emq-sample", dict(free_scores=True, reselect_every=1,
                                                                 warmup_epochs=2)),
    "coverage strata (beta 0.1, k 50), scored once": ("emq-ccs", dict(static=True, warmup_epochs=2)),
    "coverage strata (beta 0.1, k 50), free scores": ("emq-ccs", dict(free_scores=True, reselect_every=1,
                                                                      warmup_epochs=2)),
}
EMQ_RULES = ("emq-topk", "emq-sample", "emq-ccs")  # the samplers scored by the model being trained: EMQ's candidates
VALIDATION_PER_CLASS = {"smoke": 8}  # held-out training images per class the design is judged on
DEFAULT_VALIDATION_PER_CLASS = 500


def emq_coreset_config(profile: str, variant: str, fraction: float, seed: int, **changes) -> RunConfig:
    """EMQ on per-bit coresets drawn by the design variant ``variant`` (a key of DESIGN_VARIANTS)."""
    if variant not in DESIGN_VARIANTS:
        raise ValueError(f"unknown coreset design {variant!r}; choose one of {list(DESIGN_VARIANTS)}")
    rule, settings = DESIGN_VARIANTS[variant]
    return coreset_config(profile, rule, fraction, seed, selection=settings, **changes)


def equal_budget_configs(profile: str, fraction: float, seed: int, **changes) -> dict[str, RunConfig]:
    """Full-data EMQ for the epochs that give a coreset at ``fraction`` its sample passes
    (:func:`emqlib.harness.cost.equal_budget_epochs`), in EMQ's joint loop (every bit-width on every batch, one
    optimizer step) and in the coreset runs' bit-wise loop (a step per bit-width and batch: a "random" subset
    of the whole data), so that the loop is not mistaken for the selection."""
    base = profile_config(profile, "emq", seed=seed, **changes)
    epochs = equal_budget_epochs(base.optim.epochs, fraction)
    return {labels.EQUAL_BUDGET: base.replace(optim={"epochs": epochs}),
            labels.EQUAL_BUDGET_BITWISE: coreset_config(profile, "random", 1.0, seed, optim={"epochs": epochs},
                                                        **changes)}


def coreset_design_study(profile: str = "cpu", rate: float = 0.8, seeds: Sequence[int] = (0, 1),
                         variants: Sequence[str] = tuple(DESIGN_VARIANTS), anchor_seeds: Sequence[int] = (0,)
                         ) -> pd.DataFrame:
    """Each sampling variant at ``rate`` against equal-budget full data, all evaluated on held-out training
    samples, never the test set, with the selection share of each run's wall-clock; on ``anchor_seeds``,
    InfoBatch (which sets its own pruning rate: ``pruning_rate`` is the one it reached) and full-data EMQ,
    the two costlier anchors."""
    fraction = round(1 - rate, 6)
    validation = {"data": {"validation_per_class": VALIDATION_PER_CLASS.get(profile, DEFAULT_VALIDATION_PER_CLASS)}}
    plan = []
    for seed in seeds:
        for label in variants:
            config = emq_coreset_config(profile, label, fraction, seed, **validation)
            plan.append((dict(variant=label, coreset=config.selection.rule, pruning_rate=rate, seed=seed), config))
        for label, config in equal_budget_configs(profile, fraction, seed, **validation).items():
            plan.append((dict(variant=label, coreset="none", pruning_rate=rate, seed=seed), config))
    for seed in anchor_seeds:
        plan += [(dict(variant="InfoBatch (r 0.5)", coreset="infobatch", pruning_rate=np.nan, seed=seed),
                  coreset_config(profile, "infobatch", 1.0, seed, **validation)),
                 (dict(variant=labels.FULL_DATA, coreset="none", pruning_rate=0.0, seed=seed),
                  profile_config(profile, "emq", seed=seed, **validation))]
    frame = summarize_plan(plan)
    for i, (row, config) in enumerate(plan):
        if row["coreset"] == "infobatch":  # InfoBatch sets its own pruning rate: the one it reached
            frame.loc[i, "pruning_rate"] = pruning_rate(run(config).metrics.subset_size, len(load_run_data(config)[0]))
    frame["selection_share"] = frame.selection_seconds / frame.wall_seconds
    return frame


def chosen_design(design: pd.DataFrame) -> str:
    """EMQ's sampler: the design variant of EMQ's own samplers with the highest mean validation accuracy over
    seeds (ties: the first listed)."""
    ours = design[design.coreset.isin(EMQ_RULES)]
    means = ours.groupby("variant", sort=False).avg_accuracy.mean()
    return str(means.idxmax())


def served_bits(evaluation: pd.DataFrame, gap: float = 1.5) -> tuple[int, ...]:
    """The bit-widths a multi-bit model serves: the trained ones and each untrained one whose accuracy is
    within ``gap`` points of its trained neighbours' mean (1 bit, with one neighbour, of the 2-bit accuracy).
    ``evaluation``: accuracy per bit-width (mean over seeds), with ``trained``."""
    acc = evaluation.groupby("bits").accuracy.mean()
    trained = sorted(evaluation.bits[evaluation.trained].unique())
    served = list(trained)
    for b in sorted(set(acc.index) - set(trained)):
        neighbours = trained_neighbours(b, trained)
        if neighbours and acc[b] >= np.mean([acc[t] for t in neighbours]) - gap:
            served.append(b)
    return tuple(sorted(int(b) for b in served))


def _is_multi_bit(label: str) -> bool:
    """The methods of :func:`training_cost` whose one model serves every bit-width (EMQ, EMQ + coreset)."""
    return label == labels.EMQ or labels.is_emq_coreset(label)


def cost_methods(profile: str, variant: str, fraction: float, seed: int) -> dict[str, RunConfig]:
    return {labels.DEDICATED: profile_config(profile, "dedicated", seed=seed),
            labels.JOINT: profile_config(profile, "joint", seed=seed),
            labels.EMQ: profile_config(profile, "emq", seed=seed),
            labels.emq_coreset(fraction): emq_coreset_config(profile, variant, fraction, seed)}


def training_cost(profile: str, variant: str, seeds: Sequence[int] = (0, 1), fraction: float = 0.2,
                  extra_fractions: Sequence[float] = ()) -> pd.DataFrame:
    """Accuracy and cost of Dedicated, joint, EMQ and EMQ + bit-wise coreset (design ``variant``), per seed,
    and of EMQ + coreset at ``extra_fractions`` on the first seed; speed-ups over Dedicated in wall-clock and
    in pass equivalents (docs/method.md §9) two ways: (a) Dedicated on the trained bit-widths; (b) Dedicated
    on every bit-width the multi-bit model serves (:func:`served_bits`), each extra one actually trained
    (first seed: a single-bit Dedicated run per bit-width)."""
    configs = [(label, seed, config) for seed in seeds
               for label, config in cost_methods(profile, variant, fraction, seed).items()]
    configs += [(labels.emq_coreset(f), seeds[0], emq_coreset_config(profile, variant, f, seeds[0]))
                for f in extra_fractions]
    runs = run_all([config for _, _, config in configs],
                   [(SUPPORTED_BITS, False) if _is_multi_bit(label) else None for label, _, _ in configs])
    frame = pd.DataFrame([summarize(r, method=label, seed=seed, fraction=config.selection.fraction)
                          for (label, seed, config), r in zip(configs, runs)])
    dedicated = frame[frame.method == labels.DEDICATED].set_index("seed")
    ratios = pd.DataFrame([speedups(dedicated.loc[row.seed], row) for _, row in frame.iterrows()], index=frame.index)
    frame[["speedup_wall", "speedup_passes"]] = ratios[["speedup_wall", "speedup_passes"]]
    served = {}
    for method, group in frame[frame.method.map(_is_multi_bit)].groupby("method"):
        evaluation = pd.concat([runs[i].evaluate(SUPPORTED_BITS) for i in group.index])
        served[method] = served_bits(evaluation)
    trained = profile_config(profile).model.bits
    untrained = sorted({b for bits in served.values() for b in bits} - set(trained))
    extra_runs = run_all([profile_config(profile, "dedicated", seed=seeds[0], model={"bits": (b,)}) for b in untrained])
    extra = {b: r.cost() for b, r in zip(untrained, extra_runs)}
    for i, row in frame.iterrows():
        if row.method not in served:
            continue
        bits = served[row.method]
        baseline = dedicated.loc[row.seed]
        baseline = {key: baseline[key] + sum(extra[b][key] for b in bits if b not in trained)
                    for key in ("wall_seconds", "pass_equivalents")}
        ratio = speedups(baseline, row)
        frame.loc[i, ["served_bits", "speedup_wall_served", "speedup_passes_served"]] = [
            ",".join(map(str, bits)), ratio["speedup_wall"], ratio["speedup_passes"]]
    frame["extra_dedicated_seed"] = seeds[0]
    return frame
