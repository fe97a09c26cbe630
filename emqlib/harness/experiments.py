"""The experiments behind the notebooks: each builds its runs through the run cache and returns a
tidy DataFrame. Notebooks call these, save the frame to ``results/`` and plot it.

Every function takes the ``profile`` (smoke, cpu, paper) and seeds; the runs they need are
trained once and shared (a run is named by the hash of its configuration).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from . import analysis, labels, paths
from ..bits import FULL_PRECISION, SUPPORTED_BITS
from .build import Runtime, load_run_data
from .config import EMQ_SAMPLERS, RunConfig, profile_config, reference_config
from ..coreset import equal_budget_epochs, pruning_rate
from .cost import speedups
from .pool import train_missing
from .results import PRODUCERS
from .runs import Run, get_run, load_run, run_path
from .stats import depth_trend, mean_std  # noqa: F401 (notebooks call experiments.mean_std / depth_trend)


def run(config: RunConfig) -> Run:
    """The finished run of ``config`` (trained now if it is not in the cache, by a worker process when
    ``$EMQ_WORKERS`` > 1, so that every run of a study is timed alike: one torch thread per worker)."""
    return run_all([config])[0]


def run_all(configs: Sequence[RunConfig], evaluations: Sequence[tuple[tuple[int, ...], bool] | None] | None = None
            ) -> list[Run]:
    """The finished runs of ``configs``, in order; the missing ones are trained first, by
    ``$EMQ_WORKERS`` processes at once (:mod:`emqlib.harness.pool`), else one by one here. ``evaluations``
    (one (bits, recalibrate) or None per configuration) are measured by the worker that trains the run,
    so that the study's own :meth:`Run.evaluate` finds them in the run folder."""
    train_missing(configs, evaluations=evaluations)
    return [get_run(c, Runtime()) for c in configs]


def summarize_plan(plan: Sequence[tuple[dict, RunConfig]]) -> pd.DataFrame:
    """One :func:`summarize` row per (labels, configuration) of ``plan``, its runs trained by :func:`run_all`."""
    runs = run_all([config for _, config in plan])
    return pd.DataFrame([summarize(r, **labels_) for (labels_, _), r in zip(plan, runs)])


def summarize(run_: Run, **labels) -> dict:
    """One row per run: final accuracy per trained bit-width, their average, and the run's cost."""
    final = run_.final_metrics()
    row = dict(labels)
    row.update({f"acc_{int(b)}": float(a) for b, a in zip(final.bits, final.test_accuracy)})
    row["avg_accuracy"] = float(final.test_accuracy.mean())
    row.update(run_.cost())
    row["subset_size"] = int(final.subset_size.sum())
    row["subset_flipped"] = int(final.subset_flipped.sum())
    row.update(reference_cost(run_.config))
    row["total_seconds"] = row["wall_seconds"] + row["reference_seconds"]  # what a user pays, reference run included
    row["run"] = run_.path.name
    return row


# ---------------------------------------------------------------- 02: shared BN and intermediate bit-widths

SHARED_BN_VARIANTS = {
    # label: (config changes, recalibrate BN before evaluating)
    "switchable BN (joint)": (dict(method="joint"), False),
    "switchable BN + recalibration": (dict(method="joint"), True),
    "shared BN, no correction": (dict(method="emq", bias_correction=False), False),
    "shared BN + correction": (dict(method="emq"), False),
    "shared BN + correction + recalibration": (dict(method="emq"), True),
}
# forms of the correction and of the 32-bit activation, run with the first seed only
SHARED_BN_ABLATIONS = {
    "shared BN + correction (exact mean)": (dict(method="emq", correction_mode="exact"), False),
    "shared BN + correction (per layer)": (dict(method="emq", per_channel=False), False),
    "shared BN + correction, ReLU at 32 bits": (dict(method="emq", full_precision_activation="relu"), False),
    "shared BN, no correction, ReLU at 32 bits": (dict(method="emq", bias_correction=False,
                                                       full_precision_activation="relu"), False),
}


def accuracy_at_all_bits(profile: str, variants: dict, seeds: Sequence[int] = (0,), bits=SUPPORTED_BITS) -> pd.DataFrame:
    """Test accuracy at every bit-width (trained or not) for each variant and seed (short schedule)."""
    plan = [(label, seed, recalibrate, profile_config(profile, short=True, seed=seed, **changes))
            for seed in seeds for label, (changes, recalibrate) in variants.items()]
    runs = run_all([config for *_, config in plan], [(bits, recalibrate) for _, _, recalibrate, _ in plan])
    frames = [r.evaluate(bits, recalibrate=recalibrate).assign(variant=label, seed=seed, run=r.path.name)
              for (label, seed, recalibrate, _), r in zip(plan, runs)]
    return pd.concat(frames, ignore_index=True)


def shared_bn_study(profile: str = "cpu", seeds: Sequence[int] = (0, 1)) -> pd.DataFrame:
    """Accuracy at every bit-width: the main variants for every seed, the ablations for the first."""
    return pd.concat([accuracy_at_all_bits(profile, SHARED_BN_VARIANTS, seeds),
                      accuracy_at_all_bits(profile, SHARED_BN_ABLATIONS, seeds[:1])], ignore_index=True)


def quant_core_check(profile: str = "cpu", seed: int = 0) -> pd.DataFrame:
    """EMQ (bits 2,4,8,32) evaluated at 1..8 and 32, with and without weight bias correction,
    for both 32-bit activations (clamp, our EMQ default; ReLU, docs/method.md §2.2)."""
    keys = ["shared BN + correction", "shared BN, no correction", "shared BN + correction, ReLU at 32 bits",
            "shared BN, no correction, ReLU at 32 bits"]
    variants = {**SHARED_BN_VARIANTS, **SHARED_BN_ABLATIONS}
    return accuracy_at_all_bits(profile, {k: variants[k] for k in keys}, (seed,))


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


# ---------------------------------------------------------------- 01: activation alignment

ALIGNMENT_VARIANTS = {
    "shared BN + correction": dict(method="emq"),
    "shared BN, no correction": dict(method="emq", bias_correction=False),
}


def probe_inputs(config: RunConfig, n_batches: int = 10, batch_size: int = 256) -> list[torch.Tensor]:
    """Fixed augmentation-free test batches (docs/method.md §3.3: 10 x 256 images)."""
    _, test = load_run_data(config)
    n = min(len(test), n_batches * batch_size)
    return [test.inputs(torch.arange(s, min(s + batch_size, n))) for s in range(0, n, batch_size)]


def activation_alignment(profile: str = "cpu", seed: int = 0, bits=(1, 2, 3, 4, 5, 6, 7, 8)) -> pd.DataFrame:
    """Per-layer gaps between each bit-width's BN-input statistics and the 32-bit child's,
    with and without weight bias correction (docs/method.md §3.3)."""
    frames = []
    runs = run_all([profile_config(profile, short=True, seed=seed, **changes) for changes in ALIGNMENT_VARIANTS.values()])
    for label, r in zip(ALIGNMENT_VARIANTS, runs):
        stats = analysis.bn_input_stats(r.model(), probe_inputs(r.config), [*bits, FULL_PRECISION])
        frames.append(analysis.alignment_gaps(stats).assign(variant=label, trained=lambda f: f.bits.isin(r.config.bits)))
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------- 03: gradient angles

def gradient_angle_study(profile: str = "cpu", seed: int = 0, n_batches: int = 8, batch_size: int = 128) -> pd.DataFrame:
    """Angles between the per-layer gradients of every pair of trained bit-widths, at the end of
    every epoch of the EMQ run (weights from its snapshots; docs/method.md §6.5: 8 x 128 training images)."""
    config = profile_config(profile, short=True, seed=seed, method="emq")
    r = run(config)
    train, _ = load_run_data(config)
    n = min(len(train), n_batches * batch_size)
    probe = [(train.inputs(torch.arange(s, min(s + batch_size, n))), train.targets[s:s + batch_size])
             for s in range(0, n, batch_size)]
    frames = []
    for epoch in range(config.epochs):
        if config.snapshot_every and (epoch + 1) % config.snapshot_every == 0:
            angles = analysis.gradient_angles(r.model(epoch=epoch), probe, list(config.bits))
            frames.append(angles.assign(epoch=epoch))
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------- 04, 05: EMQ's bit-wise coreset in the converged regime

CONVERGENCE_GAIN = 0.5  # points: a profile is converged when doubling its epochs gains less than this


def regime_check(profile: str = "cpu", seeds: Sequence[int] = (0, 1), factor: int = 2) -> pd.DataFrame:
    """Full-data EMQ at the profile's epochs and at ``factor`` times as many, per seed, with the
    gain of the longer schedule: pruning and cost claims need a profile where it is below
    :data:`CONVERGENCE_GAIN` (far from convergence every pruned sample costs accuracy)."""
    base = profile_config(profile, method="emq")
    frame = summarize_plan([(dict(method=labels.EMQ, epochs=epochs, seed=seed), base.replace(epochs=epochs, seed=seed))
                            for seed in seeds for epochs in (base.epochs, factor * base.epochs)])
    first = frame.groupby("seed").avg_accuracy.transform("first")
    frame["gain_over_profile"] = frame.avg_accuracy - first
    return frame


def coreset_config(profile: str, coreset: str, fraction: float, seed: int, short: bool = False,
                   **changes) -> RunConfig:
    """EMQ multi-bit training (shared BN + correction) on per-bit coresets. Every selection rule
    trains the same way (sequential bit-wise, distillation from the 32-bit child), so that only
    the selection differs; ACS's DS term uses the full-precision reference run."""
    return profile_config(profile, short, **{"method": "emq", "coreset": coreset, "fraction": fraction,
                                             "seed": seed, "distillation": "fp-child", **changes})


# The sampling design space of EMQ's bit-wise coreset (docs/method.md §6), judged on a validation
# split of the training data: label -> (coreset, config changes). Warm-up W=2 epochs on random subsets
# wherever scores come from the model being trained.
DESIGN_VARIANTS = {
    "random, re-drawn every epoch": ("random", dict()),
    "random, drawn once": ("random-once", dict()),
    "top-k, rescored every 2 epochs": ("emq-topk", dict(reselect_every=2, warmup_epochs=2)),
    "sampled (tau 1, eps 0.1), scored once": ("emq-sample", dict(static=True, warmup_epochs=2)),
    "sampled (tau 0.5, eps 0.5), scored once": ("emq-sample", dict(static=True, warmup_epochs=2, sample_tau=0.5,
                                                                   sample_uniform_share=0.5)),
    "sampled (tau 1, eps 0.1), free scores": ("emq-sample", dict(free_scores=True, reselect_every=1,
                                                                 warmup_epochs=2)),
    "coverage strata (beta 0.1, k 50), scored once": ("emq-ccs", dict(static=True, warmup_epochs=2)),
    "coverage strata (beta 0.1, k 50), free scores": ("emq-ccs", dict(free_scores=True, reselect_every=1,
                                                                      warmup_epochs=2)),
}
# EMQ's default sampler: the design with the best validation accuracy in the committed
# results/coreset_design.csv (held-out training samples). Notebooks 04 and 05 use the one their own run's
# table picks (chosen_design), which is this one unless a rerun's validation says otherwise.
EMQ_SAMPLER = "sampled (tau 1, eps 0.1), free scores"
VALIDATION_PER_CLASS = {"smoke": 8}  # held-out training images per class the design is judged on
DEFAULT_VALIDATION_PER_CLASS = 500


def equal_budget_configs(profile: str, fraction: float, seed: int, **changes) -> dict[str, RunConfig]:
    """Full-data EMQ for the epochs that give a coreset at ``fraction`` its sample passes
    (:func:`emqlib.coreset.equal_budget_epochs`), in EMQ's joint loop (every bit-width on every batch,
    one optimizer step) and in the coreset runs' bit-wise loop (a step per bit-width and batch: a
    "random" subset of the whole data), so that the loop is not mistaken for the selection."""
    base = profile_config(profile, method="emq", seed=seed, **changes)
    epochs = equal_budget_epochs(base.epochs, fraction)
    return {labels.EQUAL_BUDGET: base.replace(epochs=epochs),
            labels.EQUAL_BUDGET_BITWISE: coreset_config(profile, "random", 1.0, seed, epochs=epochs, **changes)}


def emq_coreset_config(profile: str, variant: str, fraction: float, seed: int, **changes) -> RunConfig:
    """EMQ on per-bit coresets drawn by the design variant ``variant`` (a key of DESIGN_VARIANTS)."""
    if variant not in DESIGN_VARIANTS:
        raise ValueError(f"unknown coreset design {variant!r}; choose one of {list(DESIGN_VARIANTS)}")
    coreset, knobs = DESIGN_VARIANTS[variant]
    return coreset_config(profile, coreset, fraction, seed, **{**knobs, **changes})


def coreset_design_study(profile: str = "cpu", rate: float = 0.8, seeds: Sequence[int] = (0, 1),
                         variants: Sequence[str] = tuple(DESIGN_VARIANTS), anchor_seeds: Sequence[int] = (0,)
                         ) -> pd.DataFrame:
    """Each sampling variant at ``rate`` against equal-budget full data, all evaluated on held-out
    training samples, never the test set, with the selection share of each run's wall-clock; on
    ``anchor_seeds``, InfoBatch (which sets its own pruning rate: ``pruning_rate`` is the one it
    reached) and full-data EMQ, the two costlier anchors."""
    fraction = round(1 - rate, 6)
    validation = dict(validation_per_class=VALIDATION_PER_CLASS.get(profile, DEFAULT_VALIDATION_PER_CLASS))
    plan = []
    for seed in seeds:
        for label in variants:
            config = emq_coreset_config(profile, label, fraction, seed, **validation)
            plan.append((dict(variant=label, coreset=config.coreset, pruning_rate=rate, seed=seed), config))
        for label, config in equal_budget_configs(profile, fraction, seed, **validation).items():
            plan.append((dict(variant=label, coreset="none", pruning_rate=rate, seed=seed), config))
    for seed in anchor_seeds:
        plan += [(dict(variant="InfoBatch (r 0.5)", coreset="infobatch", pruning_rate=np.nan, seed=seed),
                  coreset_config(profile, "infobatch", 1.0, seed, **validation)),
                 (dict(variant=labels.FULL_DATA, coreset="none", pruning_rate=0.0, seed=seed),
                  profile_config(profile, method="emq", seed=seed, **validation))]
    frame = summarize_plan(plan)
    for i, (row, config) in enumerate(plan):
        if row["coreset"] == "infobatch":  # InfoBatch sets its own pruning rate: the one it reached
            frame.loc[i, "pruning_rate"] = pruning_rate(run(config).metrics.subset_size, len(load_run_data(config)[0]))
    frame["selection_share"] = frame.selection_seconds / frame.wall_seconds
    return frame


def chosen_design(design: pd.DataFrame) -> str:
    """EMQ's default sampler: the design variant of EMQ's own samplers (emq-*) with the highest mean
    validation accuracy over seeds (ties: the first listed)."""
    ours = design[design.coreset.isin(EMQ_SAMPLERS)]
    means = ours.groupby("variant", sort=False).avg_accuracy.mean()
    return str(means.idxmax())


def served_bits(evaluation: pd.DataFrame, gap: float = 1.5) -> tuple[int, ...]:
    """The bit-widths a multi-bit model serves: the trained ones and each untrained one whose
    accuracy is within ``gap`` points of its trained neighbours' mean (1 bit, with one neighbour,
    of the 2-bit accuracy). ``evaluation``: accuracy per bit-width (mean over seeds), with ``trained``."""
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
    return {labels.DEDICATED: profile_config(profile, method="dedicated", seed=seed),
            labels.JOINT: profile_config(profile, method="joint", seed=seed),
            labels.EMQ: profile_config(profile, method="emq", seed=seed),
            labels.emq_coreset(fraction): emq_coreset_config(profile, variant, fraction, seed)}


def training_cost(profile: str = "cpu", variant: str = EMQ_SAMPLER, seeds: Sequence[int] = (0, 1),
                  fraction: float = 0.2, extra_fractions: Sequence[float] = ()) -> pd.DataFrame:
    """Accuracy and cost of Dedicated, joint, EMQ and EMQ + bit-wise coreset (design ``variant``), per
    seed, and of EMQ + coreset at ``extra_fractions`` on the first seed; speed-ups over Dedicated in
    wall-clock and in pass equivalents (docs/method.md §9) two ways: (a) Dedicated on the trained
    bit-widths; (b) Dedicated on every bit-width the multi-bit model serves (:func:`served_bits`),
    each extra one actually trained (first seed: a single-bit Dedicated run per bit-width)."""
    configs = [(label, seed, config) for seed in seeds
               for label, config in cost_methods(profile, variant, fraction, seed).items()]
    configs += [(labels.emq_coreset(f), seeds[0], emq_coreset_config(profile, variant, f, seeds[0]))
                for f in extra_fractions]
    runs = run_all([config for _, _, config in configs],
                   [(SUPPORTED_BITS, False) if _is_multi_bit(label) else None for label, _, _ in configs])
    frame = pd.DataFrame([summarize(r, method=label, seed=seed, fraction=config.fraction)
                          for (label, seed, config), r in zip(configs, runs)])
    dedicated = frame[frame.method == labels.DEDICATED].set_index("seed")
    ratios = pd.DataFrame([speedups(dedicated.loc[row.seed], row) for _, row in frame.iterrows()], index=frame.index)
    frame[["speedup_wall", "speedup_passes"]] = ratios[["speedup_wall", "speedup_passes"]]
    served = {}
    for method, group in frame[frame.method.map(_is_multi_bit)].groupby("method"):
        evaluation = pd.concat([runs[i].evaluate(SUPPORTED_BITS) for i in group.index])
        served[method] = served_bits(evaluation)
    trained = profile_config(profile).bits
    untrained = sorted({b for bits in served.values() for b in bits} - set(trained))
    extra_runs = run_all([profile_config(profile, method="dedicated", bits=(b,), seed=seeds[0]) for b in untrained])
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


def pruning_study(profile: str = "cpu", variant: str = EMQ_SAMPLER,
                  rates: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9), methods: Sequence[str] = ("random", "tdds"),
                  seeds: Sequence[int] = (0,), headline_rate: float = 0.8,
                  headline_seeds: Sequence[int] = (0, 1, 2)) -> pd.DataFrame:
    """Average accuracy over the trained bit-widths at each pruning rate: EMQ's bit-wise coreset
    (design ``variant``, method label "EMQ + bit-wise coreset") and the selection rules ``methods``,
    with full-data EMQ (pruning rate 0) per seed. The headline rate runs every seed of
    ``headline_seeds`` and adds equal-budget full data: full-data EMQ for the epochs that give the
    coreset's sample passes (:func:`emqlib.coreset.equal_budget_epochs`), the competitor a coreset
    must beat."""
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
    base = profile_config(profile, method="emq")
    plan += [(dict(method=labels.FULL_DATA, pruning_rate=0.0, seed=seed), base.replace(seed=seed))
             for seed in sorted({*seeds, *headline_seeds})]
    return summarize_plan(plan)


def coreset_check(pruning: pd.DataFrame, rate: float = 0.8,
                  methods: Sequence[str] = (labels.EMQ_CORESET, "random", "tdds", labels.EQUAL_BUDGET,
                                            labels.EQUAL_BUDGET_BITWISE)) -> pd.DataFrame:
    """The rows of ``pruning_study`` at one pruning rate for EMQ's bit-wise coreset and the comparisons it
    must survive: accuracy per bit-width, their average, per-sample passes, seconds."""
    rows = pruning[(pruning.pruning_rate.sub(rate).abs() < 1e-9) & pruning.method.isin(methods)]
    accuracy = [c for c in pruning.columns if c.startswith("acc_")]
    columns = ["method", "pruning_rate", "seed", *accuracy, "avg_accuracy", "sample_passes", "teacher_forwards",
               "selection_forwards", "train_seconds", "selection_seconds", "reference_seconds", "total_seconds", "run"]
    return rows[columns].reset_index(drop=True)


EXTRACTION_VARIANTS = {
    "bit-wise, dynamic (EMQ)": dict(),
    "bit-wise, static": dict(static=True),
    "batch extraction, dynamic": dict(coreset_training="batch", distillation=None),
    "batch extraction, static": dict(coreset_training="batch", distillation=None, static=True),
    "bit-wise, dynamic, ascending bit order": dict(bit_order="ascending"),
    "bit-wise, dynamic, GraNd score": dict(emq_score="grand"),
    "bit-wise, dynamic, from the FP reference": dict(init_from_reference=True),
    "bit-wise, random subsets": dict(coreset="random"),
}


def extraction_study(profile: str = "cpu", fraction: float = 0.2, seeds: Sequence[int] = (0,)) -> pd.DataFrame:
    """Bit-wise vs batch score extraction, static vs dynamic subsets, and EMQ-score variants."""
    plan = []
    for seed in seeds:
        for label, changes in EXTRACTION_VARIANTS.items():
            changes = {"coreset": "emq-topk", **changes}
            config = coreset_config(profile, changes.pop("coreset"), fraction, seed, short=True, **changes)
            plan.append((dict(variant=label, seed=seed, fraction=fraction), config))
    return summarize_plan(plan)


# ---------------------------------------------------------------- 06, 07: ACS (single bit-width QAT)

def acs_config(profile: str, coreset: str = "none", fraction: float = 1.0, seed: int = 0, short: bool = False,
               **changes) -> RunConfig:
    """The ACS setting (docs/method.md §7, §11): one bit-width (W2/A32) with LSQ, started from the
    full-precision reference run and distilled from it (KD only, no label term)."""
    return profile_config(profile, short, method="dedicated", bits=(2,), activation_bits=FULL_PRECISION,
                          weight_quantizer="lsq", init_from_reference=True, distillation="reference",
                          label_loss_weight=0.0, coreset=coreset, fraction=fraction, seed=seed, **changes)


def acs_fraction_plan(profile: str = "cpu", fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5),
                      methods: Sequence[str] = ("acs", "random"), seeds: Sequence[int] = (0,),
                      label_noise: float = 0.0, short: bool = False, full_data: bool = True,
                      **changes) -> list[tuple[dict, RunConfig]]:
    """The (labels, configuration) of each run of :func:`acs_fraction_study`."""
    plan = []
    for seed in seeds:
        plan += [(dict(method=method, fraction=fraction, seed=seed, label_noise=label_noise),
                  acs_config(profile, method, fraction, seed, short, label_noise=label_noise, **changes))
                 for fraction in fractions for method in methods]
        if full_data:
            plan.append((dict(method=labels.FULL_DATA, fraction=1.0, seed=seed, label_noise=label_noise),
                         acs_config(profile, seed=seed, short=short, label_noise=label_noise, **changes)))
    return plan


def acs_fraction_study(profile: str = "cpu", fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5),
                       methods: Sequence[str] = ("acs", "random"), seeds: Sequence[int] = (0,),
                       label_noise: float = 0.0, short: bool = False, full_data: bool = True,
                       **changes) -> pd.DataFrame:
    """Accuracy of the W2/A32 model at each data fraction for each selection rule, and on full data
    (unless ``full_data`` is False); ``changes`` apply to every run (e.g. ``model="vit"``)."""
    return summarize_plan(acs_fraction_plan(profile, fractions, methods, seeds, label_noise, short, full_data,
                                            **changes))


def acs_schedule_study(profile: str = "cpu", fraction: float = 0.1, seeds: Sequence[int] = (0,)) -> pd.DataFrame:
    """ACS's beta(t) ablation (docs/method.md §7.2) at one data fraction."""
    from ..coreset import BETA_SCHEDULES

    return summarize_plan([(dict(schedule=s, fraction=fraction, seed=seed),
                            acs_config(profile, "acs", fraction, seed, acs_schedule=s))
                           for seed in seeds for s in BETA_SCHEDULES])


def acs_interval_study(profile: str = "cpu", fraction: float = 0.1, intervals: Sequence[int] = (1, 2, 3),
                       seeds: Sequence[int] = (0,)) -> pd.DataFrame:
    """ACS's reselection-interval ablation (docs/method.md §7.3, ACS Tab. 3), plus a single selection (static)."""
    plan = []
    for seed in seeds:
        plan += [(dict(interval=str(interval), fraction=fraction, seed=seed),
                  acs_config(profile, "acs", fraction, seed, reselect_every=interval)) for interval in intervals]
        plan.append((dict(interval="once", fraction=fraction, seed=seed), acs_config(profile, "acs", fraction, seed,
                                                                                     static=True)))
    return summarize_plan(plan)


def label_noise_study(profile: str = "cpu", fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5),
                      noise: float = 0.1, seeds: Sequence[int] = (0,)) -> pd.DataFrame:
    """ACS vs EL2N vs random under symmetric label noise (docs/method.md §10); records the wrong labels kept."""
    return acs_fraction_study(profile, fractions, ("acs", "el2n", "random"), seeds, label_noise=noise, short=True)


def reference_cost(config: RunConfig) -> dict:
    """Training seconds of the full-precision reference run ``config`` uses (0 when none)."""
    if not config.needs_reference:
        return {"reference_seconds": 0.0}
    return {"reference_seconds": run(reference_config(config)).cost()["train_seconds"]}


# ---------------------------------------------------------------- 06: ACS against every baseline, its cost, coverage, transfer, ViT

ACS_BASELINES = ("random", "el2n", "forgetting", "tdds", "kcenter", "moderate", "emq-ccs")
ACS_BASELINE_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.8)
NO_DISTILLATION = dict(distillation="none", label_loss_weight=1.0)  # labels only: no teacher in training
# the two architectures of the transfer study and each one's changes to the profile (MobileNetV2 is
# about 15x ResNet-8's CPU time per step at width 0.25 on 28x28 inputs)
TRANSFER_MODELS = {"resnet8": {}, "mobilenetv2": {"width": 0.25}}
# These studies train on the profile's short schedule by default (``short``): with the converged one
# they would add about 20 minutes per seed to `make reproduce` on 2 CPU cores.


def acs_baseline_study(profile: str = "cpu", fractions: Sequence[float] = ACS_BASELINE_FRACTIONS,
                       seeds: Sequence[int] = (0,), baselines: Sequence[str] = ACS_BASELINES,
                       short: bool = True) -> pd.DataFrame:
    """ACS against every baseline of the library at each data fraction (ACS Tab. 2; claims A2, A7, A8).
    ``emq-ccs`` is the coverage-centric sampler (CCS strata over the EL2N of the model being trained)."""
    return acs_fraction_study(profile, fractions, ("acs", *baselines), seeds, short=short)


def acs_split_study(profile: str = "cpu", fractions: Sequence[float] = (0.1, 0.3, 0.5),
                    seeds: Sequence[int] = (0,), short: bool = True) -> pd.DataFrame:
    """ACS against the full-coverage split (every sample seen once per cycle) and random (ACS Tab. 8; claim A9)."""
    return acs_fraction_study(profile, fractions, ("acs", "split", "random"), seeds, short=short, full_data=False)


def acs_no_distillation_study(profile: str = "cpu", fractions: Sequence[float] = (0.1, 0.3, 0.5),
                              seeds: Sequence[int] = (0,), short: bool = True) -> pd.DataFrame:
    """ACS without distillation (ACS Tab. 9; claim A10): every run trains on labels only; ACS scores
    with EVS only (its DS term compares with the teacher), against EL2N and random, accuracy and seconds."""
    plan = [(dict(method=method, fraction=fraction, seed=seed, distillation="none"),
             acs_config(profile, method, fraction, seed, short,
                        **({"acs_schedule": "evs-only"} if method == "acs" else {})).replace(**NO_DISTILLATION))
            for seed in seeds for fraction in fractions for method in ("acs", "el2n", "random")]
    return summarize_plan(plan)


def acs_cost_split(baselines: pd.DataFrame, no_distillation: pd.DataFrame) -> pd.DataFrame:
    """Each run's seconds split into selection, the student's training passes and the teacher's
    forward passes, with the reference run's seconds apart (ACS Tabs. 6-7; claims A7, A8).

    The teacher's seconds are measured where the same method and fraction also ran without
    distillation (the same number of training passes, no teacher): training seconds with the
    teacher minus without. ``teacher_share_passes`` is the share that pass counting predicts (a
    forward-only pass at :data:`emqlib.harness.cost.FORWARD_PASS_WEIGHT` of a training pass)."""
    from .cost import FORWARD_PASS_WEIGHT

    keys = ["method", "fraction", "seed"]
    runs = baselines[baselines.method != labels.FULL_DATA]
    plain = no_distillation.set_index(keys).train_seconds.rename("train_seconds_without_teacher")
    frame = runs.join(plain, on=keys)
    teacher = FORWARD_PASS_WEIGHT * frame.teacher_forwards
    frame["teacher_share_passes"] = teacher / (frame.sample_passes + teacher)
    frame["teacher_seconds"] = frame.train_seconds - frame.train_seconds_without_teacher
    frame["teacher_share_measured"] = frame.teacher_seconds / frame.train_seconds
    frame["student_seconds"] = frame.train_seconds - frame.teacher_seconds
    columns = [*keys, "selection_seconds", "student_seconds", "teacher_seconds", "train_seconds", "wall_seconds",
               "reference_seconds", "teacher_share_measured", "teacher_share_passes", "selection_forwards",
               "teacher_forwards", "sample_passes", "run"]
    return frame[columns].reset_index(drop=True)


def _model_config(profile: str, coreset: str, fraction: float, seed: int, model: str, models: dict, short: bool,
                  **changes) -> RunConfig:
    return acs_config(profile, coreset, fraction, seed, short, model=model, **models[model], **changes)


def transfer_changes(profile: str, data_share: float = 1.0) -> dict:
    """The changes that train the transfer study on ``data_share`` of the profile's training samples
    of each class (class-balanced); none at 1.0."""
    if data_share == 1.0:
        return {}
    base = profile_config(profile)
    per_class = base.train_per_class or int(torch.bincount(load_run_data(base)[0].targets).min())
    return {"train_per_class": max(1, round(data_share * per_class))}


def acs_transfer_study(profile: str = "cpu", fraction: float = 0.1, models: dict = TRANSFER_MODELS,
                       seeds: Sequence[int] = (0,), data_share: float = 1.0, short: bool = True,
                       alongside: Sequence[RunConfig] = ()) -> pd.DataFrame:
    """Coresets across architectures (ACS Tab. 10; claim A11): each model trained on its own ACS
    subsets, on the other model's (its recorded subsets replayed epoch by epoch, ``replay_from``),
    and on random subsets. ``models``: architecture -> its changes to the profile; ``data_share``:
    see :func:`transfer_changes`; ``coreset`` names whose subsets a row trained on. ``alongside``:
    a notebook's other runs, trained together with the own-subset runs (MobileNetV2's reference and
    own run train one after the other, about 80 s on the cpu profile, while the second worker would
    have nothing to do)."""
    changes = transfer_changes(profile, data_share)
    own = {(seed, m): _model_config(profile, "acs", fraction, seed, m, models, short, **changes)
           for seed in seeds for m in models}
    # before the runs that replay their subsets
    own_runs = dict(zip(own, run_all([*own.values(), *alongside])))
    plan = []
    for seed in seeds:
        for m in models:
            plan.append((dict(model=m, coreset="own ACS", fraction=fraction, seed=seed), own[seed, m]))
            plan += [(dict(model=m, coreset=f"ACS of {source}", fraction=fraction, seed=seed),
                      _model_config(profile, "acs", fraction, seed, m, models, short, **changes,
                                    replay_from=own_runs[seed, source].path.name))
                     for source in models if source != m]
            plan.append((dict(model=m, coreset="random", fraction=fraction, seed=seed),
                         _model_config(profile, "random", fraction, seed, m, models, short, **changes)))
    return summarize_plan(plan)


def subset_overlap(a: Run, b: Run) -> pd.DataFrame:
    """Per (epoch, bits) where both runs drew a subset: the share (%) of ``a``'s subset also in ``b``'s."""
    mine, theirs = a.selections(), b.selections()
    rows = [{"epoch": e, "bits": bits, "overlap": 100 * np.isin(mine[e, bits].numpy(), theirs[e, bits].numpy()).mean()}
            for e, bits in sorted(mine) if (e, bits) in theirs]
    return pd.DataFrame(rows)


def acs_overlap_study(profile: str = "cpu", fraction: float = 0.1, models: dict = TRANSFER_MODELS,
                      seeds: Sequence[int] = (0,), data_share: float = 1.0, short: bool = True) -> pd.DataFrame:
    """Overlap (%) of the ACS coresets two architectures choose at each selection epoch (ACS Tab. 11;
    claim A12), the runs of :func:`acs_transfer_study`; two independent uniform draws overlap by
    ``fraction`` (as a %) on average."""
    a, b = models
    changes = transfer_changes(profile, data_share)
    frames = [subset_overlap(*(run(_model_config(profile, "acs", fraction, seed, m, models, short, **changes))
                               for m in (a, b)))
              .assign(models=f"{a} / {b}", fraction=fraction, seed=seed)
              for seed in seeds]
    return pd.concat(frames, ignore_index=True)


def _vit_plan(profile: str, fraction: float, seeds: Sequence[int], width: float,
              short: bool) -> list[tuple[dict, RunConfig]]:
    return acs_fraction_plan(profile, (fraction,), ("acs", "random"), seeds, short=short, full_data=False,
                             model="vit", width=width)


def acs_vit_configs(profile: str = "cpu", fraction: float = 0.1, seeds: Sequence[int] = (0,),
                    width: float = 0.25, short: bool = True) -> list[RunConfig]:
    """The runs of :func:`acs_vit_study` (to train them beside another study's, ``alongside``)."""
    return [config for _, config in _vit_plan(profile, fraction, seeds, width, short)]


def acs_vit_study(profile: str = "cpu", fraction: float = 0.1, seeds: Sequence[int] = (0,),
                  width: float = 0.25, short: bool = True) -> pd.DataFrame:
    """ACS vs random on a small ViT (timm, random init, patch 4, depth 6, embed dim 192 x ``width``) at
    W2/A32 (claim A13); at width 0.25 a step costs about 3x ResNet-8's on CPU."""
    return summarize_plan(_vit_plan(profile, fraction, seeds, width, short)).assign(model="vit", width=width)


# ---------------------------------------------------------------- 09: what each result cost

def study_costs() -> pd.DataFrame:
    """Training time of the runs behind each results CSV (notebook order): each run named in a CSV's
    ``run`` column, and the full-precision reference run it used, counted once, for the first CSV that
    names it (a run shared by two studies is paid by the first). Runs no CSV names (04's single-bit
    Dedicated runs on the served bit-widths) are not in it; the notebooks' wall-clock has them."""
    rows, counted = [], set()
    for name, notebook in PRODUCERS.items():
        path = paths.results_dir() / name
        if not path.exists() or "run" not in (frame := pd.read_csv(path)).columns:
            continue
        seconds, count, schedules = 0.0, 0, set()
        for name_ in frame.run.dropna().astype(str).unique():
            r = load_run(name_)
            schedules.add(r.config.epochs)
            used = [r, *([load_run(run_path(reference_config(r.config)))] if r.config.needs_reference else [])]
            for part in (u for u in used if u.path.name not in counted):
                counted.add(part.path.name)
                seconds += part.cost()["wall_seconds"]
                count += 1
        rows.append({"result": name, "notebook": notebook, "new_runs": count, "train_minutes": seconds / 60,
                     "epochs": "/".join(map(str, sorted(schedules)))})
    return pd.DataFrame(rows)
