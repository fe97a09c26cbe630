"""results/claims.csv: every claim of the EMQ and ACS papers, the paper's value beside ours.

A claim is data (:class:`Claim`): what the paper says, a direction (``beats``, ``above``,
``below``, ``matches``; see :mod:`emqlib.harness.grading`), a threshold or tolerance, the paper's effect
size, and a metric that reads the results CSVs and returns one value per seed (a paired
difference, paired by seed, where the claim compares two arms). Every claim is graded by the one
rule of :func:`emqlib.harness.grading.grade`; a claim this project cannot run carries the reason. At the
``cpu`` profile the data set is Fashion-MNIST, so the claims judge the direction and size of each
effect, never CIFAR's absolute accuracy.

This module reads CSVs only; it does not import the training stack.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import grading, labels
from .config import describe_profile  # noqa: F401 (notebook 09 and the README describe the profile)
from .results import load_result
from .stats import depth_trend
from .targets import NON_INFERIORITY, TARGETS as TARGET_TABLE

COLUMNS = ["claim_id", "claim", "source", "paper_value", "our_value", "our_setting", "status", "n_seeds",
           "ci_low", "ci_high", "fragile", "criterion", "reason", "notebook"]
NOT_RUN = "not run"
SETTING_NOTES = {
    "05_pruning_tdds": "; EMQ multi-bit training on per-bit coresets, the selection rule varied",
    "06_acs": "; ACS setting: one bit-width, W2/A32 with LSQ, initialised from and distilled by the FP reference run",
    "07_label_noise": "; ACS setting (W2/A32, LSQ) with 10% symmetric label noise",
}
# notebooks whose studies train on the profile's short schedule (their claims hold at any point of training,
# or, for 07 and 08, are judged off convergence to keep `make reproduce` within its time)
SHORT_SCHEDULE_NOTEBOOKS = ("01_activation_alignment", "02_shared_bn", "03_gradient_angles", "07_label_noise",
                            "08_score_extraction")
# ... and the claims of notebook 06 whose studies do (ACS against every baseline, its cost, ablations)
SHORT_SCHEDULE_CLAIMS = ("A2", "A7", "A8", "A9", "A10", "A11", "A12", "A13")


@dataclass(frozen=True)
class Measurement:
    """One value per seed (a Series indexed by seed; NaN where a seed lacks an arm) and the context
    a reader needs beside it (the arms' own values, the value at each fraction ...)."""
    values: pd.Series
    detail: str = ""


@dataclass(frozen=True)
class Claim:
    """One claim of the papers. ``metric`` None means not run, and ``reason`` says why."""
    claim_id: str
    claim: str
    source: str
    paper_value: str
    notebook: str = ""
    metric: Callable[[], Measurement] | None = None
    measure: str = ""  # what the per-seed value is, in words (e.g. "joint - Dedicated average accuracy")
    direction: str = "beats"
    threshold: float = 0.0  # the threshold of above/below, the tolerance of matches
    paper_effect: float | None = None  # the paper's effect in the claimed direction, or None
    unit: str = " points"
    reason: str = ""

    def __post_init__(self):
        grading.check_direction(self.direction, self.threshold)
        if (self.metric is None) == (not self.reason):
            raise ValueError(f"claim {self.claim_id}: give a metric, or no metric and the reason it is not run")


# ---------------------------------------------------------------- reading the CSVs

def _by_seed(frame: pd.DataFrame, column, value: str = "avg_accuracy", aggfunc: str = "mean") -> pd.DataFrame:
    """``value`` with one row per seed and one column per ``column`` value (e.g. per method); rows
    sharing a seed and column are combined by ``aggfunc``."""
    seeds = frame["seed"] if "seed" in frame else 0  # a study run on one seed may not record it
    return frame.assign(seed=seeds).pivot_table(index="seed", columns=column, values=value, aggfunc=aggfunc)


def _seeds_text(values: pd.Series, unit: str, sign: str = "+") -> str:
    return ", ".join(f"seed {s}: {v:{sign}.2f}{unit}" for s, v in values.dropna().items())


def _arm(values: pd.Series, unit: str = "%") -> str:
    """An arm's mean over seeds (and std when there are several)."""
    values = values.dropna()
    spread = f" ± {values.std():.2f}" if len(values) > 1 else ""
    return f"{values.mean():.2f}{spread}{unit} ({len(values)} seed{'s' if len(values) != 1 else ''})"


def _cost(value: str = "avg_accuracy") -> tuple[pd.DataFrame, str]:
    """``value`` per seed (rows) and method (columns) from training_cost.csv, the bit-wise coreset run
    at 80% pruning renamed 'coreset', and that run's own label."""
    cost = load_result("training_cost.csv")
    label = labels.emq_coreset(0.2)  # the paper's 80% pruning
    return _by_seed(cost.replace({"method": {label: "coreset"}}), "method", value), label


def _cost_difference(a: str, b: str) -> Callable[[], Measurement]:
    def metric() -> Measurement:
        table, label = _cost()
        name = {"coreset": label}
        return Measurement(table[a] - table[b],
                           f"{name.get(a, a)} {_arm(table[a])}, {name.get(b, b)} {_arm(table[b])}")
    return metric


def _served_speedup(fraction: float) -> Callable[[], Measurement]:
    """The wall-clock speed-up over Dedicated on every bit-width the coreset model at ``fraction`` serves,
    per seed, with the speed-up on the trained bit-widths beside it."""
    def metric() -> Measurement:
        cost = load_result("training_cost.csv")
        label = labels.emq_coreset(fraction)
        rows = cost[cost.method == label]
        served, trained = (_by_seed(rows, "method", value)[label] for value in ("speedup_wall_served", "speedup_wall"))
        return Measurement(served, f"Dedicated trained on every bit-width {label} serves ({rows.served_bits.iloc[0]}) "
                                   f"over {label}, wall-clock; on the trained bit-widths only: {_arm(trained, 'x')}")
    return metric


def _pruning_at(rate: float, value: str = "avg_accuracy") -> pd.DataFrame:
    pruning = load_result("pruning.csv")
    return _by_seed(pruning[np.isclose(pruning.pruning_rate, rate)], "method", value)


EMQ = labels.EMQ_CORESET


def _emq_minus_tdds() -> Measurement:
    at80 = _pruning_at(0.8)
    return Measurement(at80[EMQ] - at80["tdds"], f"EMQ {_arm(at80[EMQ])}, TDDS {_arm(at80['tdds'])}")


def _emq_minus_random() -> Measurement:
    at80 = _pruning_at(0.8)
    pruning = load_result("pruning.csv")
    means = pruning.pivot_table(index="pruning_rate", columns="method", values="avg_accuracy")
    every = (means[EMQ] - means["random"]).dropna()
    return Measurement(at80[EMQ] - at80["random"],
                       f"EMQ {_arm(at80[EMQ])}, random {_arm(at80['random'])}; EMQ - random (seed mean) at "
                       "every pruning rate: " + ", ".join(f"{r:.0%}: {d:+.2f}" for r, d in every.items()))


def _emq_minus_equal_budget() -> Measurement:
    at80 = _pruning_at(0.8)
    coreset, same_loop = at80[EMQ], at80[labels.EQUAL_BUDGET_BITWISE]
    joint = at80.get(labels.EQUAL_BUDGET, pd.Series(dtype=float))
    passes = _pruning_at(0.8, "pass_equivalents").mean()
    return Measurement(coreset - same_loop,
                       f"EMQ coreset {_arm(coreset)}, equal-budget full data in the same bit-wise loop "
                       f"{_arm(same_loop)}, in EMQ's joint loop (a quarter of the optimizer steps) {_arm(joint)}; "
                       f"pass equivalents: coreset {passes[EMQ]:,.0f}, equal-budget "
                       f"{passes[labels.EQUAL_BUDGET_BITWISE]:,.0f}")


def _largest_angle() -> Measurement:
    angles = load_result("gradient_angles.csv")
    last = angles[angles.epoch == angles.epoch.max()]
    whole, per_layer = last[last.layer == "all"], last[last.layer != "all"]
    return Measurement(_by_seed(whole, "layer", "angle", aggfunc="max")["all"],
                       f"largest whole-model angle over the bit pairs at the last epoch (pairs "
                       f"{whole.angle.min():.1f}-{whole.angle.max():.1f} deg); "
                       f"{(per_layer.angle < 28).mean():.0%} of per-layer angles < 28 deg")


def _depth_trend() -> Measurement:
    angles = load_result("gradient_angles.csv")
    seeds = angles["seed"] if "seed" in angles else pd.Series(0, index=angles.index)
    trend = pd.Series({s: depth_trend(group) for s, group in angles.groupby(seeds)})
    return Measurement(trend, "Spearman correlation of layer depth with the angle at the last epoch")


def _untrained_gap() -> Measurement:
    gaps = load_result("shared_bn_gaps.csv").assign(abs_gap=lambda f: f.gap.abs())
    worst = _by_seed(gaps, "variant", "abs_gap", aggfunc="max")
    plain = worst.get("shared BN, no correction", pd.Series(dtype=float))
    return Measurement(worst["shared BN + correction"],
                       "largest |accuracy gap| of an untrained bit-width (3, 5, 6, 7) to its trained "
                       f"neighbours' mean; without correction: {_seeds_text(plain, ' points', '')}")


def _minus(frame: pd.DataFrame, method: str, rival: str, fractions: Callable[[pd.Index], pd.Index]) -> pd.DataFrame:
    """``method`` minus ``rival`` per seed (rows) and data fraction (columns), over the fractions
    chosen from ``method``'s; a ``rival`` of "full data" is its one full-data run of that seed."""
    table = _by_seed(frame, ["method", "fraction"])
    ours = table[method]
    ours = ours[fractions(ours.columns)]
    other = table[rival]
    other = (pd.DataFrame({f: other.iloc[:, 0] for f in ours.columns}) if rival == "full data"
             else other.reindex(columns=ours.columns))
    return ours - other


def _every_fraction(table: pd.DataFrame) -> pd.Series:
    """Per seed, the smallest difference over the fractions ("at every fraction"); a seed that lacks
    a fraction is NaN, so it cannot pass on the fractions it has."""
    return table.min(axis=1, skipna=False)


def _fraction_text(table: pd.DataFrame) -> str:
    return ", ".join(f"{f:.0%}: {d:+.2f}" for f, d in table.mean().items())


def _acs_every_fraction() -> Measurement:
    table = _minus(load_result("acs_fractions.csv"), "acs", "random", lambda c: c[(c >= 0.1) & (c <= 0.5)])
    return Measurement(_every_fraction(table), f"ACS - random (seed mean) at {_fraction_text(table)}")


def _acs_at_10() -> Measurement:
    table = _minus(load_result("acs_fractions.csv"), "acs", "random", lambda c: c[np.isclose(c, 0.1)])
    return Measurement(table.iloc[:, 0], "")


def _reselection() -> Measurement:
    frame = load_result("acs_interval.csv").astype({"interval": str})
    table = _by_seed(frame, "interval")
    every = sorted((c for c in table.columns if c.isdigit()), key=int)
    means = "; ".join(f"R={c}: {table[c].mean():.2f}" for c in [*every, "once"])
    return Measurement(table[every[0]] - table["once"], f"accuracy at 10% by reselection interval: {means}")


def _cosine_schedule() -> Measurement:
    table = _by_seed(load_result("acs_schedule.csv"), "schedule")
    others = table.drop(columns="cosine")
    ranking = table.mean().sort_values(ascending=False)
    rank = list(ranking.index).index("cosine") + 1
    return Measurement(table["cosine"] - others.max(axis=1),
                       f"cosine ranks {rank} of {len(ranking)} ({ranking['cosine']:.2f}; best {ranking.index[0]} "
                       f"{ranking.iloc[0]:.2f})")


def _wrong_labels(noise: pd.DataFrame) -> str:
    """The share of wrong labels in each method's subset, as a multiple of the training set's."""
    rates = noise.assign(rate=noise.subset_flipped / noise.subset_size).pivot_table(
        index="fraction", columns="method", values="rate")
    base = float(rates.loc[1.0, "full data"]) if 1.0 in rates.index else math.nan
    shown = rates.loc[(rates.index >= 0.3) & (rates.index < 1.0), [m for m in ("acs", "random") if m in rates]]
    return ("wrong labels in the subset, x the training set's " + f"{base:.0%}: " +
            "; ".join(f"{m} " + "/".join(f"{r / base:.1f}" for r in shown[m]) for m in shown)
            + f" at {'/'.join(f'{f:.0%}' for f in shown.index)}")


def _at_least_30(fractions: pd.Index) -> pd.Index:
    return fractions[fractions >= 0.3]


def _noise_vs_full() -> Measurement:
    noise = load_result("label_noise.csv")
    acs = _minus(noise, "acs", "full data", _at_least_30)
    random = _minus(noise, "random", "full data", _at_least_30)
    return Measurement(_every_fraction(acs), f"ACS - full data at {_fraction_text(acs)}; random - full data at "
                                             f"{_fraction_text(random)}; {_wrong_labels(noise)}")


def _noise_vs_random() -> Measurement:
    noise = load_result("label_noise.csv")
    table = _minus(noise, "acs", "random", _at_least_30)
    return Measurement(_every_fraction(table), f"ACS - random at {_fraction_text(table)}; {_wrong_labels(noise)}")


def _below_random() -> Measurement:
    pruning = load_result("pruning.csv")
    table = pruning.pivot_table(index=["seed", "pruning_rate"], columns="method", values="avg_accuracy")
    table = table[table["random"].notna()]  # the full-data rows have no random to compare with
    prior = [m for m in ("el2n", "tdds") if m in table]
    below = table[prior].lt(table["random"], axis=0).where(table[prior].notna())
    per_seed = below.groupby(level="seed").apply(lambda f: float(np.nanmean(f.to_numpy())))
    cases = int(below.notna().to_numpy().sum())
    return Measurement(per_seed, f"{int(np.nansum(below.to_numpy()))} of {cases} ({'/'.join(prior)}, seed, pruning "
                                 "rate) cases below random (full-data rows, with no random to compare, left out)")


# ---------------------------------------------------------------- ACS against baselines, its cost, coverage, transfer, ViT

def _acs_minus_best(frame: pd.DataFrame, rivals: list[str]) -> pd.DataFrame:
    """ACS minus the best of ``rivals`` per seed (rows) and data fraction (columns)."""
    table = _by_seed(frame, ["method", "fraction"])
    best = pd.concat({r: table[r] for r in rivals}).groupby(level=1).max()
    return table["acs"] - best.reindex(table["acs"].index)


def _acs_vs_baselines() -> Measurement:
    frame = load_result("acs_baselines.csv")
    frame = frame[frame.method != labels.FULL_DATA]
    rivals = sorted(set(frame.method) - {"acs"})
    table = _acs_minus_best(frame, rivals)
    means = _by_seed(frame, ["method", "fraction"]).mean().unstack("method")[["acs", *rivals]]
    best = means.idxmax(axis=1)
    return Measurement(table[table.columns[np.isclose(table.columns, 0.1)][0]],
                       f"ACS - the best of {'/'.join(rivals)} (seed mean) at {_fraction_text(table)}; ACS best at "
                       f"{int((best == 'acs').sum())} of {len(best)} fractions (best: "
                       + ", ".join(f"{f:.0%} {m}" for f, m in best.items()) + ")")


def _acs_cost(method: str = "acs") -> pd.DataFrame:
    cost = load_result("acs_cost.csv")
    return cost[cost.method == method]


def _selection_spread() -> Measurement:
    acs = _acs_cost()
    seconds = acs.pivot_table(index="seed", columns="fraction", values="selection_seconds")
    spread = 100 * (seconds.max(axis=1) - seconds.min(axis=1)) / seconds.mean(axis=1)
    forwards = acs.groupby("fraction").selection_forwards.mean()
    share = acs.assign(share=acs.selection_seconds / acs.wall_seconds).groupby("fraction").share.mean()
    return Measurement(spread, "ACS selection seconds (seed mean) at " +
                       ", ".join(f"{f:.0%}: {v:.2f} s" for f, v in seconds.mean().items())
                       + f"; selection forward passes {'/'.join(f'{v:,.0f}' for v in forwards)} at "
                       f"{'/'.join(f'{f:.0%}' for f in forwards.index)}; selection share of ACS's wall time "
                       f"{share.iloc[0]:.0%} at {share.index[0]:.0%}, {share.iloc[-1]:.0%} at {share.index[-1]:.0%}; "
                       f"the reference run ({acs.reference_seconds.mean():.1f} s) apart")


def _teacher_share() -> Measurement:
    cost = load_result("acs_cost.csv")
    paired = cost[cost.teacher_share_measured.notna()]
    share = 100 * paired.groupby("seed").teacher_share_measured.mean()
    return Measurement(share, f"measured on {'/'.join(sorted(paired.method.unique()))} at "
                              f"{'/'.join(f'{f:.0%}' for f in sorted(paired.fraction.unique()))} (training seconds with "
                              f"the teacher minus without); pass counting predicts "
                              f"{100 * cost.teacher_share_passes.mean():.0f}%")


def _acs_vs_split() -> Measurement:
    frame = load_result("acs_split.csv")
    split, random = _minus(frame, "acs", "split", lambda c: c), _minus(frame, "acs", "random", lambda c: c)
    return Measurement(_every_fraction(split), f"ACS - split at {_fraction_text(split)}; ACS - random at "
                                               f"{_fraction_text(random)}")


def _acs_without_distillation() -> Measurement:
    frame = load_result("acs_no_distillation.csv")
    table = _acs_minus_best(frame, ["el2n", "random"])
    seconds = frame.groupby("method").wall_seconds.mean()
    return Measurement(_every_fraction(table), f"ACS - the better of EL2N/random at {_fraction_text(table)}; wall "
                                               "seconds per run (mean): " +
                       ", ".join(f"{m} {v:.1f}" for m, v in seconds.items()))


def _transfer() -> Measurement:
    frame = load_result("acs_transfer.csv")
    table = frame.pivot_table(index=["seed", "model"], columns="coreset", values="avg_accuracy")
    transferred = table.drop(columns=["own ACS", "random"]).max(axis=1)  # each model has one other model's coreset
    gain = (transferred - table["random"]).groupby(level="seed").mean()
    means = table.groupby(level="model").mean()
    return Measurement(gain, "mean over both directions; " + "; ".join(
        f"{m}: own ACS {row['own ACS']:.2f}, transferred {row.drop(['own ACS', 'random']).max():.2f}, random "
        f"{row['random']:.2f}" for m, row in means.iterrows()))


def _overlap() -> Measurement:
    frame = load_result("acs_overlap.csv")
    per_epoch = frame.groupby("epoch").overlap.mean()
    return Measurement(frame.groupby("seed").overlap.mean(),
                       f"{frame.models.iloc[0]} at {frame.fraction.iloc[0]:.0%}, mean over the selection epochs "
                       f"({', '.join(f'epoch {e}: {v:.0f}%' for e, v in per_epoch.items())}); two uniform draws "
                       f"overlap by {frame.fraction.iloc[0]:.0%} on average")


def _acs_vit() -> Measurement:
    frame = load_result("acs_vit.csv")
    table = _minus(frame, "acs", "random", lambda c: c[np.isclose(c, 0.1)])
    means = _by_seed(frame, "method").mean()
    return Measurement(table.iloc[:, 0], f"ACS {means['acs']:.2f}, random {means['random']:.2f}; timm ViT, patch 4, "
                                         f"depth 6, width {frame.width.iloc[0]:g}, random init")


# ---------------------------------------------------------------- the claims

CIFAR100 = "needs CIFAR-100, not available offline"
IMAGENET = "needs ImageNet, not available offline"
CLAIMS: list[Claim] = [
    Claim("E1", "average accuracy with bit-wise coreset at most 1 point below EMQ on full data",
          "EMQ Results, CIFAR-10", "92.97% vs 93.46% without coreset (-0.49)", "04_training_cost",
          _cost_difference("coreset", "EMQ"), "coreset - full-data EMQ average accuracy", "above", -1.0),
    Claim("E2", "training time with bit-wise coreset", "EMQ Results, CIFAR-10", "1.52 GPU-h",
          reason="needs a GPU for the 200-epoch CIFAR-10 run (GPU-hours at the paper profile); the training step's "
                 "throughput on one GPU, and the hours it projects for the training passes alone, are in "
                 "results/bench_gpu.csv (python -m emqlib.harness.bench_gpu)"),
    Claim("E3", "speed-up of EMQ + bit-wise coreset over Dedicated", "EMQ abstract/Results, CIFAR-10", "7.88x",
          "04_training_cost", _served_speedup(0.2), "wall-clock speed-up over Dedicated on every served bit-width",
          "above", round(0.9 * 7.88, 2), unit="x"),
    Claim("E4", "EMQ without coreset above Dedicated (average accuracy)", "EMQ Results, CIFAR-10; Any-Precision README",
          "93.46% vs 93.08% (+0.38)", "04_training_cost", _cost_difference("EMQ", "Dedicated"),
          "EMQ - Dedicated average accuracy", paper_effect=0.38),
    *[Claim(cid, claim, "EMQ Results, CIFAR-100", value, reason=CIFAR100 + gpu)
      for cid, claim, value, gpu in [("E5", "average accuracy with bit-wise coreset", "70.26%", ""),
                                     ("E6", "training time with bit-wise coreset", "1.47 GPU-h",
                                      ", and a GPU (GPU-hours at the paper profile)"),
                                     ("E7", "speed-up over Dedicated", "7.61x", ""),
                                     ("E8", "average accuracy without coreset", "71.84%", "")]],
    Claim("E9", "bit-wise coreset beats TDDS at 80% pruning (average accuracy)", "EMQ comparative results, CIFAR-10",
          "+4.43 points", "05_pruning_tdds", _emq_minus_tdds, "EMQ - TDDS average accuracy at 80% pruning",
          paper_effect=4.43),
    Claim("E10", "gradient angles between bit-widths are small", "EMQ technical details", "< 28 degrees",
          "03_gradient_angles", _largest_angle, "largest whole-model angle", "below", 28.0, unit=" deg"),
    Claim("E11", "deeper layers are more aligned", "brief only (not in the seeds)", "qualitative",
          "03_gradient_angles", _depth_trend, "Spearman(layer depth, angle)", "below", 0.0, unit=""),
    Claim("E12", "one shared BN; intermediate bit-widths (3, 5, 6, 7) work without fine-tuning", "EMQ abstract",
          "qualitative", "02_shared_bn", _untrained_gap, "largest |gap| of an untrained bit-width", "below", 1.0),
    Claim("E13", "cost reduction of EMQ + bit-wise coreset at 60% pruning over Dedicated",
          "secondary source, TinyImageNet (GPU-hours)", "8.41x", "04_training_cost", _served_speedup(0.4),
          "wall-clock speed-up over Dedicated on every served bit-width, 60% pruning", "above",
          round(0.9 * 8.41, 2), unit="x"),
    Claim("E14", "EMQ's bit-wise coreset is at least as good as random selection at 80% pruning",
          "implied by EMQ's comparative results (a selection rule that loses to random has no point)",
          "not reported", "05_pruning_tdds", _emq_minus_random, "EMQ - random average accuracy at 80% pruning",
          "above", -NON_INFERIORITY),
    Claim("E15", "bit-wise coreset beats equal-budget full-data training at 80% pruning",
          "EMQ's premise (coreset as a saving)", "not reported", "05_pruning_tdds", _emq_minus_equal_budget,
          "EMQ coreset - full-data EMQ trained for the same sample passes (fewer epochs) in the same bit-wise "
          "loop, at 80% pruning"),
    Claim("P1", "joint training (recursive distillation) above Dedicated (average accuracy)",
          "Any-Precision README", "93.50% vs 93.08% (+0.42)", "04_training_cost",
          _cost_difference("Joint (Any-Precision)", "Dedicated"), "joint - Dedicated average accuracy",
          paper_effect=0.42),
    Claim("A1", "ACS beats random selection at every data fraction (10-50%)", "ACS Tab. 1, MobileNetV2 W2/A32 CIFAR-100",
          "+0.95 to +1.84 points", "06_acs", _acs_every_fraction,
          "smallest ACS - random difference over the fractions 10-50%", paper_effect=0.95),
    Claim("A2", "ACS beats every baseline at 10% of the data (and at 30-80%)", "ACS Tab. 2, ResNet-18 W4/A4 ImageNet",
          "e.g. 68.39 at 10%", "06_acs", _acs_vs_baselines,
          "ACS - the best baseline (random, EL2N, forgetting, TDDS, k-center, Moderate, CCS) at 10%"),
    Claim("A3", "ACS ahead of random at 10% of the data", "ACS abstract, Tab. 2 (ImageNet)",
          "+4.24 points (68.39 vs 64.15)", "06_acs", _acs_at_10, "ACS - random at 10%", paper_effect=4.24),
    Claim("A4", "reselecting more often helps at small fractions", "ACS Tab. 3 (ImageNet, 10%)",
          "68.8 (R=5) > 68.39 (10) > ... > 62.82 (once)", "06_acs", _reselection,
          "most frequent reselection - once, at 10%", paper_effect=round(68.8 - 62.82, 2)),
    Claim("A5", "the cosine beta schedule is best", "ACS Tab. 4 (ImageNet)", "cosine first at 10/30/50/70%",
          "06_acs", _cosine_schedule, "cosine - the best other schedule, at 10%", paper_effect=0.02),
    Claim("A6", "under 10% label noise ACS matches or beats full data for fractions >= 30%",
          "ACS Tab. 5, ResNet-18 CIFAR-10", "89.95-90.23 vs 89.91 (full)", "07_label_noise", _noise_vs_full,
          "smallest ACS - full data difference over the fractions 30-50%", "above", -NON_INFERIORITY),
    Claim("A6b", "under 10% label noise ACS beats random selection for fractions >= 30%",
          "ACS Tab. 5, ResNet-18 CIFAR-10", "89.95-90.23 vs 84.82-85.33 (+4.90 to +5.13)", "07_label_noise",
          _noise_vs_random, "smallest ACS - random difference over the fractions 30-50%", paper_effect=4.90),
    Claim("A7", "ACS's selection cost is the same at every data fraction (training time of ACS and baselines)",
          "ACS Tabs. 6-7, ImageNet on 2x RTX 3090", "11.3-53.8 h training; 3.2 h selection", "06_acs",
          _selection_spread, "spread (max - min) / mean of ACS's selection seconds over the fractions", "below",
          25.0, unit="%"),
    Claim("A8", "the teacher's forward passes are a minor share of training time", "ACS Tab. 7, ImageNet",
          "3.2 h selection; KD share of training time", "06_acs", _teacher_share,
          "share of training seconds that is the teacher's forward passes", "below", 50.0, unit="%"),
    Claim("A9", "ACS beats a full-coverage split (every sample seen once per cycle)", "ACS Tab. 8, MobileNetV2 CIFAR-100",
          "63.37-67.19", "06_acs", _acs_vs_split, "smallest ACS - split difference over the fractions"),
    Claim("A10", "without distillation (labels only) ACS still beats EL2N and random", "ACS Tab. 9, ImageNet",
          "66.91-70.03", "06_acs", _acs_without_distillation,
          "smallest ACS - max(EL2N, random) difference over the fractions, all trained on labels only"),
    Claim("A11", "ACS coresets transfer across architectures (ResNet-8 <-> MobileNetV2): better than random",
          "ACS Tab. 10, MobileNetV2 CIFAR-100", "62.94-66.86", "06_acs", _transfer,
          "accuracy on the other architecture's ACS coreset - on random, at 10%"),
    Claim("A12", "the two architectures' coresets overlap more than chance", "ACS Tab. 11, CIFAR-100", "29.0-77.3%",
          "06_acs", _overlap, "overlap of ResNet-8's and MobileNetV2's ACS coresets at 10%", "above", 10.0,
          paper_effect=19.0, unit="%"),
    Claim("A13", "ACS beats random on a ViT at W2/A32 with 10% of the data", "ACS, ViT-B/16 CIFAR-100",
          "78.9% (random 74.6)", "06_acs", _acs_vit, "ACS - random at 10% (small timm ViT, no pretraining)",
          paper_effect=4.3),
    Claim("A14", "ACS on object detection", "ACS Tab. 12, RetinaNet COCO", "24.4-26.7 AP",
          reason="object detection is outside this project"),
    Claim("A15", "most prior coreset methods fail to beat random selection in QAT", "ACS introduction",
          "qualitative", "05_pruning_tdds", _below_random, "share of EL2N/TDDS cases below random", "above", 0.5,
          unit=""),
]


def _selection_share(fraction: float) -> Callable[[], Measurement]:
    """Selection seconds as a share (%) of the wall-clock of EMQ + bit-wise coreset at ``fraction``, per seed."""
    def metric() -> Measurement:
        cost = load_result("training_cost.csv")
        label = labels.emq_coreset(fraction)
        rows = cost[cost.method == label]
        shares = _by_seed(rows.assign(share=100 * rows.selection_seconds / rows.wall_seconds), "method", "share")
        return Measurement(shares[label], f"selection {_arm(rows.selection_seconds, ' s')} of "
                                          f"{_arm(rows.wall_seconds, ' s')} wall-clock")
    return metric


# What the bit-wise coreset work set out to reach at the cpu profile (emqlib.harness.targets), graded by the
# claims' rule with the target as threshold (README's targets block).
TARGETS: list[Claim] = [
    Claim(t.name, t.text, "project target", t.shown, notebook, metric, measure, t.direction, t.threshold, unit=t.unit)
    for t, notebook, metric, measure in [
        (TARGET_TABLE["T1"], "04_training_cost", _cost_difference("coreset", "EMQ"),
         "coreset - full-data EMQ average accuracy"),
        (TARGET_TABLE["T2"], "05_pruning_tdds", _emq_minus_random, "EMQ - random average accuracy at 80% pruning"),
        (TARGET_TABLE["T3"], "05_pruning_tdds", _emq_minus_equal_budget,
         "EMQ coreset - equal-budget full data in the same bit-wise loop"),
        (TARGET_TABLE["T4"], "04_training_cost", _selection_share(0.2), "selection share of the wall-clock"),
        (TARGET_TABLE["T5"], "04_training_cost", _served_speedup(0.2),
         "wall-clock speed-up over Dedicated on every served bit-width")]]


# ---------------------------------------------------------------- grading

def grade_claim(claim: Claim, setting: str) -> dict:
    """One row of claims.csv: the claim, our per-seed measurement and its grade."""
    row = dict(claim_id=claim.claim_id, claim=claim.claim, source=claim.source, paper_value=claim.paper_value,
               our_value="", our_setting="", status=NOT_RUN, n_seeds=0, ci_low=math.nan, ci_high=math.nan,
               fragile=pd.NA, criterion="", reason=claim.reason, notebook=claim.notebook)
    if claim.metric is None:
        return row
    row["criterion"] = grading.criterion(claim.direction, claim.threshold, claim.paper_effect, claim.measure,
                                         claim.unit)
    try:
        measured = claim.metric()
    except FileNotFoundError as missing:  # that study has not been run: say which notebook writes it
        return {**row, "reason": str(missing)}
    except KeyError as arm:  # the study ran without an arm the claim compares
        return {**row, "reason": f"the results of {claim.notebook} have no {arm}"}
    values = measured.values.dropna()
    args = (claim.direction, claim.threshold, claim.paper_effect)
    verdict = grading.grade(values, *args)
    if verdict.status == NOT_RUN:
        return {**row, "reason": "no seed has a finite value in the results"}
    sign = "+" if claim.direction in ("beats", "matches") or claim.threshold <= 0 else ""  # a difference
    our = (f"{claim.measure} {verdict.mean:{sign}.2f}{claim.unit} (mean of {verdict.n_seeds}; "
           f"{_seeds_text(values, claim.unit, sign)})")
    return {**row, "our_value": our + (f"; {measured.detail}" if measured.detail else ""),
            "our_setting": f"{setting}{SETTING_NOTES.get(claim.notebook, '')}", "status": verdict.status,
            "n_seeds": verdict.n_seeds, "ci_low": round(verdict.ci_low, 4), "ci_high": round(verdict.ci_high, 4),
            "fragile": grading.is_fragile(values, *args)}


def build_claims(profile: str, claims: list[Claim] | None = None) -> pd.DataFrame:
    """The claims table, graded from the results CSVs written by notebooks 02-08 at ``profile``."""
    frame = pd.DataFrame([grade_claim(c, describe_profile(profile, short=c.notebook in SHORT_SCHEDULE_NOTEBOOKS
                                                          or c.claim_id in SHORT_SCHEDULE_CLAIMS))
                          for c in (CLAIMS if claims is None else claims)])
    return frame[COLUMNS]
