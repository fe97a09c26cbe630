"""results/claims.csv: every claim of the EMQ and ACS papers, the paper's value beside ours.

A claim is data (:class:`Claim`): what the paper says, a direction (``beats``, ``above``, ``below``,
``matches``; see :mod:`emqlib.harness.grading`), a threshold or tolerance, the paper's effect size, and a metric
that reads the results CSVs and returns one value per seed (a paired difference, paired by seed, where the claim
compares two arms) with the rows it read. Every claim is graded by the one rule of
:func:`emqlib.harness.grading.grade`, after the rows it read are checked (:mod:`emqlib.harness.validity`): a
claim that read a failing run is ``invalid``, never graded. A coreset claim comes twice: against the baseline in
the protocol the paper used (``protocol`` "paper") and against the strongest control we run (``protocol``
"strongest control": random re-drawn every epoch or RS2). A claim this project cannot run carries the reason, and
one whose counting cannot match the paper's is ``not comparable``. At the ``cpu`` profile the data set is
Fashion-MNIST, so the claims judge the direction and size of each effect, never CIFAR's absolute accuracy.

This module reads CSVs only; it does not import the training stack.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import grading, labels, validity
from .config import describe_profile
from .results import load_result
from .targets import NON_INFERIORITY, TARGETS as TARGET_TABLE

COLUMNS = ["claim_id", "claim", "source", "paper_value", "protocol", "our_value", "our_setting", "status", "n_seeds",
           "ci_low", "ci_high", "fragile", "seeds_to_reproduce", "criterion", "reason", "notebook"]
NOT_RUN = "not run"
INVALID = "invalid"
NOT_COMPARABLE = "not comparable"
PAPER, CONTROL = "paper", "strongest control"
SETTING_NOTES = {
    "04_pruning": "; EMQ multi-bit training in its bit-wise loop on per-bit coresets, the selection rule varied",
    "06_acs": "; ACS setting: one bit-width, W2/A32 with LSQ, initialised from and distilled by the FP reference run",
    "07_label_noise": "; ACS setting (W2/A32, LSQ) with 10% symmetric label noise",
}
# notebooks whose studies train on the profile's short schedule (their claims hold at any point of training, or,
# for 07, are judged off convergence to keep `make reproduce` within its time, their signs checked on the long one)
SHORT_SCHEDULE_NOTEBOOKS = ("01_activation_alignment", "02_shared_bn", "07_label_noise")
# ... and the claims of notebook 06 whose studies do (ACS against every baseline, its cost, ablations)
SHORT_SCHEDULE_CLAIMS = ("A2", "A2b", "A4", "A5", "A7", "A8", "A9", "A9b", "A10", "A10b", "A11", "A11b", "A12", "A13",
                         "A13b")


@dataclass(frozen=True)
class Measurement:
    """One value per seed (a Series indexed by seed; NaN where a seed lacks an arm), the context a reader needs
    beside it, and the rows it read that fail a run check (each "run R (labels): check")."""
    values: pd.Series
    detail: str = ""
    invalid: Sequence[str] = ()


@dataclass(frozen=True)
class Claim:
    """One claim of the papers. ``metric`` None means not run (or, with ``comparable`` False, not comparable), and
    ``reason`` says why."""
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
    protocol: str = ""  # for a coreset comparison: PAPER (the paper's baseline protocol) or CONTROL
    comparable: bool = True

    def __post_init__(self):
        grading.check_direction(self.direction, self.threshold)
        if (self.metric is None) == (not self.reason):
            raise ValueError(f"claim {self.claim_id}: give a metric, or no metric and the reason it is not run")


# ---------------------------------------------------------------- reading the CSVs

def _by_seed(frame: pd.DataFrame, column, value: str = "avg_accuracy", aggfunc: str = "mean") -> pd.DataFrame:
    """``value`` with one row per seed and one column per ``column`` value (e.g. per method); rows sharing a seed
    and column are combined by ``aggfunc``."""
    seeds = frame["seed"] if "seed" in frame else 0  # a study run on one seed may not record it
    return frame.assign(seed=seeds).pivot_table(index="seed", columns=column, values=value, aggfunc=aggfunc)


def _seeds_text(values: pd.Series, unit: str, sign: str = "+") -> str:
    return ", ".join(f"seed {s}: {v:{sign}.2f}{unit}" for s, v in values.dropna().items())


def _arm(values: pd.Series, unit: str = "%") -> str:
    """An arm's mean over seeds (and std when there are several)."""
    values = values.dropna()
    spread = f" ± {values.std():.2f}" if len(values) > 1 else ""
    return f"{values.mean():.2f}{spread}{unit} ({len(values)} seed{'s' if len(values) != 1 else ''})"


def _rows(frame: pd.DataFrame, column: str, values: Sequence) -> pd.DataFrame:
    """The rows of ``frame`` whose ``column`` is one of ``values``; a value with no row raises KeyError (the
    study ran without that arm)."""
    missing = [v for v in values if v not in set(frame[column])]
    if missing:
        raise KeyError(", ".join(map(str, missing)))
    return frame[frame[column].isin(values)]


def _invalid(frame: pd.DataFrame, label: Sequence[str] = ("method", "fraction", "seed")) -> list[str]:
    return validity.invalid_rows(frame, [c for c in label if c in frame.columns])


def _difference(frame: pd.DataFrame, a: str, b: str, names: dict | None = None,
                column: str = "method") -> Measurement:
    """``a`` minus ``b`` per seed (average accuracy), the two arms' means beside it."""
    rows = _rows(frame, column, [a, b])
    table = _by_seed(rows, column)
    names = names or {}
    return Measurement(table[a] - table[b], f"{names.get(a, a)} {_arm(table[a])}, {names.get(b, b)} {_arm(table[b])}",
                       _invalid(rows))


def _fraction_text(table: pd.DataFrame) -> str:
    return ", ".join(f"{f:.0%}: {d:+.2f}" for f, d in table.mean().items())


# ---------------------------------------------------------------- 05: cost (and 04's full-data arms)

CORESET = labels.emq_coreset(0.2)  # the paper's 80% pruning


def _cost_difference(a: str, b: str) -> Callable[[], Measurement]:
    def metric() -> Measurement:
        return _difference(load_result("training_cost.csv"), a, b)
    return metric


def _served_speedup() -> Measurement:
    """The wall-clock speed-up over Dedicated on every bit-width the coreset model serves, per seed (each seed's
    own Dedicated runs), with the design's pass ratio and the measured one beside it."""
    cost = load_result("training_cost.csv")
    rows = _rows(cost, "method", [CORESET, labels.DEDICATED])
    mine = rows[rows.method == CORESET]
    table = _by_seed(mine, "method", "speedup_wall_served")
    design, passes, trained = (mine[c].mean() for c in ("design_pass_ratio", "speedup_passes_served", "speedup_wall"))
    return Measurement(table[CORESET], f"Dedicated trained on every bit-width {CORESET} serves "
                                       f"({mine.served_bits.iloc[0]}, chosen on validation), each seed its own runs; "
                                       f"the design's pass ratio {design:.2f}x (Dedicated's models x full data over "
                                       f"trained bit-widths x kept fraction), measured in pass equivalents "
                                       f"{passes:.2f}x (teacher and scoring forwards included); on the trained "
                                       f"bit-widths only: {trained:.2f}x wall-clock", _invalid(rows))


# ---------------------------------------------------------------- 04: the 80% table

def _chosen() -> str:
    return str(load_result("sampler_choice.csv").chosen.iloc[0])


def _at_80() -> pd.DataFrame:
    pruning = load_result("pruning.csv")
    return pruning[np.isclose(pruning.pruning_rate, 0.8)]


def _emq_minus(rival: str, detail: Callable[[], str] | None = None) -> Callable[[], Measurement]:
    """EMQ's chosen sampler minus ``rival`` at 80% pruning (average accuracy, paired by seed)."""
    def metric() -> Measurement:
        chosen = _chosen()
        measured = _difference(_at_80(), chosen, rival, {chosen: f"EMQ ({chosen})"})
        extra = detail() if detail else ""
        return Measurement(measured.values, measured.detail + (f"; {extra}" if extra else ""), measured.invalid)
    return metric


def _every_rate() -> str:
    """EMQ minus random (re-drawn) at the other pruning rates (one seed), from pruning_rates.csv."""
    try:
        rates = load_result("pruning_rates.csv")
    except FileNotFoundError:
        return ""
    chosen = _chosen()
    means = rates.pivot_table(index="pruning_rate", columns="method", values="avg_accuracy")
    if chosen not in means or "random, re-drawn every epoch" not in means:
        return ""
    every = (means[chosen] - means["random, re-drawn every epoch"]).dropna()
    return "EMQ - random (re-drawn) at other pruning rates: " + ", ".join(f"{r:.0%}: {d:+.2f}" for r, d in every.items())


def _budget_detail() -> str:
    """Sample passes, optimizer steps and last learning rate of the coreset and the equal-budget arms."""
    at80 = _at_80()
    arms = [_chosen(), labels.EQUAL_BUDGET_BITWISE, labels.EQUAL_BUDGET]
    shown = at80[at80.method.isin(arms)].groupby("method")[["sample_passes", "optimizer_steps", "final_lr"]].mean()
    return "; ".join(f"{m}: {r.sample_passes:,.0f} passes, {r.optimizer_steps:,.0f} steps, last lr {r.final_lr:.1e}"
                     for m, r in shown.reindex([a for a in arms if a in shown.index]).iterrows())


def _prior_below_random(random_arm: str) -> Callable[[], Measurement]:
    """The share of (prior method, data fraction or pruning rate) cases below ``random_arm`` per seed, over every
    prior method and protocol run: the ACS baselines table and the 80% pruning table."""
    def metric() -> Measurement:
        cases, invalid = [], []
        baselines = load_result("acs_baselines.csv")
        prior = [m for m in ("el2n", "forgetting", "tdds", "kcenter", "moderate", "emq-ccs") if m in set(baselines.method)]
        acs_random = {"random, drawn once": "random-once", "random, re-drawn every epoch": "random"}[random_arm]
        rows = _rows(baselines, "method", [*prior, acs_random])
        invalid += _invalid(rows)
        table = rows.pivot_table(index=["seed", "fraction"], columns="method", values="avg_accuracy")
        cases.append(table[prior].lt(table[acs_random], axis=0))
        at80 = _at_80()
        pruning_prior = [m for m in ("TDDS, static (class-balanced)", "TDDS, re-scored every R",
                                     "EL2N, static (class-balanced)", "EMQ: top-k EL2N, rescored every R")
                         if m in set(at80.method)]
        rows = _rows(at80, "method", [*pruning_prior, random_arm])
        invalid += _invalid(rows)
        table = rows.pivot_table(index=["seed", "pruning_rate"], columns="method", values="avg_accuracy")
        cases.append(table[pruning_prior].lt(table[random_arm], axis=0))
        per_seed = pd.concat([c.groupby(level="seed").apply(lambda f: f.to_numpy().ravel().tolist()) for c in cases],
                             axis=1).apply(lambda r: float(np.mean(sum(r.dropna(), []))), axis=1)
        total = sum(int(c.to_numpy().sum()) for c in cases)
        count = sum(c.size for c in cases)
        return Measurement(per_seed, f"{total} of {count} (method, seed, fraction or rate) cases below {random_arm}: "
                                     f"ACS table {'/'.join(prior)}; 80% table {'/'.join(pruning_prior)}", invalid)
    return metric


# ---------------------------------------------------------------- 02, 03: shared BN, gradient angles

def _largest_angle() -> Measurement:
    angles = load_result("gradient_angles.csv")
    angles = angles[angles.model == "resnet8"]
    whole = angles[angles.layer == "all"]
    last = whole[whole.epoch == whole.epoch.max()]
    per_layer = angles[(angles.layer != "all") & (angles.epoch == angles.epoch.max())]
    by_epoch = whole.groupby("epoch").angle.max()
    peak = int(by_epoch.idxmax())
    return Measurement(_by_seed(whole, "layer", "angle", aggfunc="max")["all"],
                       f"largest whole-model angle over the bit pairs and every epoch of the full schedule "
                       f"(largest at epoch {peak}: {by_epoch.max():.1f} deg; at the last epoch {last.angle.min():.1f}-"
                       f"{last.angle.max():.1f} deg over the pairs); {(per_layer.angle < 28).mean():.0%} of per-layer "
                       f"angles < 28 deg at the last epoch; EMQ's sequential bit-wise loop, ResNet-8",
                       _invalid(angles.drop_duplicates("run"), ("model", "seed")))


def _depth_trend() -> Measurement:
    trends = load_result("depth_trends.csv")
    model = trends.loc[trends.layers.idxmax(), "model"]  # the deepest model measured
    deep = trends[trends.model == model].set_index("seed")
    angles = load_result("gradient_angles.csv")
    return Measurement(deep.spearman, f"Spearman correlation of layer depth with the angle at the last epoch over "
                                      f"{int(deep.layers.iloc[0])} quantized layers of {model}; permutation "
                                      f"p-values {', '.join(f'{p:.3f}' for p in deep.p_value)}; ResNet-8 (6 layers): "
                                      f"{trends[trends.model == 'resnet8'].spearman.mean():+.2f}",
                       _invalid(angles[angles.model == model].drop_duplicates("run"), ("model", "seed")))


def _untrained_gap() -> Measurement:
    gaps = load_result("shared_bn_gaps.csv").assign(abs_gap=lambda f: f.gap.abs())
    worst = _by_seed(gaps, "variant", "abs_gap", aggfunc="max")
    plain = worst.get("shared BN, no correction", pd.Series(dtype=float))
    shared = load_result("shared_bn.csv")
    used = shared[shared.variant == "shared BN + correction"].drop_duplicates("run")
    return Measurement(worst["shared BN + correction"],
                       "largest |accuracy gap| of an untrained bit-width (3, 5, 6, 7) to its trained neighbours' mean; "
                       f"without correction: {_seeds_text(plain, ' points', '')}", _invalid(used, ("variant", "seed")))


# ---------------------------------------------------------------- 06, 07: ACS

def _minus(frame: pd.DataFrame, method: str, rivals: str | Sequence[str],
           fractions: Callable[[pd.Index], pd.Index] = lambda c: c) -> tuple[pd.DataFrame, list[str]]:
    """``method`` minus ``rivals`` (one, or the best of several) per seed (rows) and data fraction (columns),
    over the fractions chosen from ``method``'s; a rival "full data" is its one full-data run of that seed.
    Returns the table and the invalid rows it read."""
    rivals = [rivals] if isinstance(rivals, str) else list(rivals)
    rows = _rows(frame, "method", [method, *rivals])
    table = _by_seed(rows, ["method", "fraction"])
    ours = table[method]
    ours = ours[fractions(ours.columns)]
    used = rows[rows.fraction.isin(ours.columns) | (rows.method == labels.FULL_DATA)]
    best = pd.concat({r: (pd.DataFrame({f: table[r].iloc[:, 0] for f in ours.columns}) if r == labels.FULL_DATA
                          else table[r].reindex(columns=ours.columns)) for r in rivals}).groupby(level=1).max()
    return ours - best.reindex(ours.index), _invalid(used)


def _every_fraction(table: pd.DataFrame) -> pd.Series:
    """Per seed, the smallest difference over the fractions ("at every fraction"); a seed that lacks a fraction
    is NaN, so it cannot pass on the fractions it has."""
    return table.min(axis=1, skipna=False)


def _acs_every_fraction(rival: str) -> Callable[[], Measurement]:
    def metric() -> Measurement:
        frame = load_result("acs_fractions.csv")
        table, invalid = _minus(frame, "acs", rival, lambda c: c[(c >= 0.1) & (c <= 0.5)])
        return Measurement(_every_fraction(table), f"ACS - {rival} (seed mean) at {_fraction_text(table)}"
                                                   f"{_signs('acs_baselines.csv', rival)}", invalid)
    return metric


def _acs_at_10(rival: str) -> Callable[[], Measurement]:
    def metric() -> Measurement:
        table, invalid = _minus(load_result("acs_fractions.csv"), "acs", rival, lambda c: c[np.isclose(c, 0.1)])
        return Measurement(table.iloc[:, 0], "", invalid)
    return metric


def _signs(other: str, rivals: str | Sequence[str]) -> str:
    """ACS minus ``rivals`` (seed mean) on the other schedule, from ``other`` (a CSV of the same methods), where
    it has the fractions: the check that an effect keeps its sign between the short and the full schedule."""
    try:
        frame = load_result(other)
        table, _ = _minus(frame, "acs", rivals)
    except (FileNotFoundError, KeyError):
        return ""
    return f"; on the other schedule ({other}): {_fraction_text(table)}"


STATIC = labels.ACS_STATIC_BASELINES
EVERY_BASELINE = (*STATIC, "random", "rs2")


def _acs_vs_baselines(rivals: Sequence[str]) -> Callable[[], Measurement]:
    def metric() -> Measurement:
        frame = load_result("acs_baselines.csv")
        present = [r for r in rivals if r in set(frame.method)]
        table, invalid = _minus(frame, "acs", present, lambda c: c[c < 1.0])
        means = _by_seed(frame[frame.method.isin(["acs", *present])], ["method", "fraction"]).mean().unstack("method")
        best = means.drop(columns="acs").idxmax(axis=1)
        return Measurement(_every_fraction(table),
                           f"ACS - the best of {'/'.join(present)} (seed mean) at {_fraction_text(table)}; best rival: "
                           + ", ".join(f"{f:.0%} {m}" for f, m in best.items() if f < 1.0)
                           + _signs('acs_baselines_long.csv', present), invalid)
    return metric


def _reselection() -> Measurement:
    frame = load_result("acs_interval.csv").astype({"interval": str})
    table = _by_seed(frame, "interval")
    every = sorted((c for c in table.columns if c.isdigit()), key=int)
    means = "; ".join(f"R={c}: {table[c].mean():.2f}" for c in [*every, "once"])
    return Measurement(table[every[0]] - table["once"], f"accuracy at 10% by reselection interval: {means}",
                       _invalid(frame, ("interval", "seed")))


def _cosine_schedule() -> Measurement:
    frame = load_result("acs_schedule.csv")
    table = _by_seed(frame, "schedule")
    others = table.drop(columns="cosine")
    ranking = table.mean().sort_values(ascending=False)
    rank = list(ranking.index).index("cosine") + 1
    return Measurement(table["cosine"] - others.max(axis=1),
                       f"cosine ranks {rank} of {len(ranking)} ({ranking['cosine']:.2f}; best {ranking.index[0]} "
                       f"{ranking.iloc[0]:.2f})", _invalid(frame, ("schedule", "seed")))


def _wrong_labels(noise: pd.DataFrame) -> str:
    """The share of wrong labels in each method's subset, as a multiple of the training set's."""
    rates = noise.assign(rate=noise.subset_flipped / noise.subset_size).pivot_table(
        index="fraction", columns="method", values="rate")
    base = float(rates.loc[1.0, labels.FULL_DATA]) if 1.0 in rates.index else math.nan
    shown = rates.loc[rates.index < 1.0, [m for m in ("acs", "random-once", "random") if m in rates]]
    return ("wrong labels in the subset, x the training set's " + f"{base:.0%}: " +
            "; ".join(f"{m} " + "/".join(f"{r / base:.1f}" for r in shown[m]) for m in shown)
            + f" at {'/'.join(f'{f:.0%}' for f in shown.index)}")


def _noise(rival: str) -> Callable[[], Measurement]:
    def metric() -> Measurement:
        noise = load_result("label_noise.csv")
        table, invalid = _minus(noise, "acs", rival, lambda c: c[(c >= 0.3) & (c < 1.0)])
        return Measurement(_every_fraction(table), f"ACS - {rival} at {_fraction_text(table)}; {_wrong_labels(noise)}"
                                                   f"{_signs('label_noise_long.csv', rival)}", invalid)
    return metric


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
                              f"{'/'.join(f'{f:.0%}' for f in sorted(paired.fraction.unique()))} (training seconds "
                              f"with the teacher minus without); pass counting predicts "
                              f"{100 * cost.teacher_share_passes.mean():.0f}%")


def _acs_vs(name: str, rivals: str | Sequence[str], what: str) -> Callable[[], Measurement]:
    """ACS minus ``rivals`` at every fraction of ``name``."""
    def metric() -> Measurement:
        table, invalid = _minus(load_result(name), "acs", rivals)
        return Measurement(_every_fraction(table), f"ACS - {what} at {_fraction_text(table)}", invalid)
    return metric


def _transfer(rival: str) -> Callable[[], Measurement]:
    def metric() -> Measurement:
        frame = load_result("acs_transfer.csv")
        table = frame.pivot_table(index=["seed", "model"], columns="coreset", values="avg_accuracy")
        transferred = table[[c for c in table.columns if c.startswith("ACS of ")]].max(axis=1)  # the other model's
        gain = (transferred - table[rival]).groupby(level="seed").mean()
        means = table.groupby(level="model").mean()
        return Measurement(gain, "mean over both directions; " + "; ".join(
            f"{m}: own ACS {row['own ACS']:.2f}, transferred {row.filter(like='ACS of').max():.2f}, {rival} "
            f"{row[rival]:.2f}" for m, row in means.iterrows()), _invalid(frame, ("model", "coreset", "seed")))
    return metric


def _overlap() -> Measurement:
    frame = load_result("acs_overlap.csv")
    per_epoch = frame.groupby("epoch").overlap.mean()
    runs = load_result("acs_transfer.csv")
    own = runs[runs.coreset == "own ACS"]
    return Measurement(frame.groupby("seed").overlap.mean(),
                       f"{frame.models.iloc[0]} at {frame.fraction.iloc[0]:.0%}, mean over the selection epochs "
                       f"({', '.join(f'epoch {e}: {v:.0f}%' for e, v in per_epoch.items())}); two uniform draws "
                       f"overlap by {frame.fraction.iloc[0]:.0%} on average", _invalid(own, ("model", "seed")))


def _acs_vit(rival: str) -> Callable[[], Measurement]:
    def metric() -> Measurement:
        frame = load_result("acs_vit.csv")
        table, invalid = _minus(frame, "acs", rival, lambda c: c[np.isclose(c, 0.1)])
        means = _by_seed(frame, "method").mean()
        return Measurement(table.iloc[:, 0], f"ACS {means['acs']:.2f}, {rival} {means[rival]:.2f}; timm ViT, patch 4, "
                                             f"depth 6, width {frame.width.iloc[0]:g}, random init", invalid)
    return metric


# ---------------------------------------------------------------- the claims

CIFAR100 = "needs CIFAR-100, not available offline"
IMAGENET = "needs ImageNet, not available offline"
RANDOM_ONCE, RANDOM = "random, drawn once", "random, re-drawn every epoch"


def _pair(claim_id: str, claim: str, source: str, paper_value: str, notebook: str, paper: tuple, control: tuple,
          control_id: str | None = None, **grading_) -> list[Claim]:
    """A coreset claim against the paper's baseline protocol (``paper``: metric, measure) and, as ``control_id``
    (``<id>b`` unless given), against the strongest control (``control``: metric, measure, its own words for the
    claim)."""
    return [Claim(claim_id, claim, source, paper_value, notebook, *paper, protocol=PAPER, **grading_),
            Claim(control_id or f"{claim_id}b", control[2], source, paper_value, notebook, *control[:2],
                  protocol=CONTROL, **grading_)]


CLAIMS: list[Claim] = [
    *_pair("E1", "average accuracy with bit-wise coreset at most 1 point below EMQ on full data",
           "EMQ Results, CIFAR-10", "92.97% vs 93.46% without coreset (-0.49)", "05_training_cost",
           (_cost_difference(CORESET, labels.EMQ), "coreset - full-data EMQ (joint loop) average accuracy"),
           (_cost_difference(CORESET, labels.FULL_DATA_BITWISE),
            "coreset - full data in the coreset's own bit-wise loop, average accuracy",
            "average accuracy with bit-wise coreset at most 1 point below full data trained in the same bit-wise loop"),
           direction="above", threshold=-1.0),
    Claim("E2", "training time with bit-wise coreset", "EMQ Results, CIFAR-10", "1.52 GPU-h",
          reason="needs a GPU for the 200-epoch CIFAR-10 run (GPU-hours at the paper profile); the training step's "
                 "throughput on one GPU, and the hours it projects for the training passes alone, are in "
                 "results/bench_gpu.csv (python -m emqlib.harness.bench_gpu)"),
    Claim("E3", "speed-up of EMQ + bit-wise coreset over Dedicated", "EMQ abstract/Results, CIFAR-10", "7.88x",
          "05_training_cost", _served_speedup, "wall-clock speed-up over Dedicated on every served bit-width",
          "above", round(0.9 * 7.88, 2), unit="x"),
    Claim("E4", "EMQ without coreset above Dedicated (average accuracy)", "EMQ Results, CIFAR-10; Any-Precision README",
          "93.46% vs 93.08% (+0.38)", "05_training_cost", _cost_difference(labels.EMQ, labels.DEDICATED),
          "EMQ - Dedicated average accuracy", paper_effect=0.38),
    *[Claim(cid, claim, "EMQ Results, CIFAR-100", value, reason=CIFAR100 + gpu)
      for cid, claim, value, gpu in [("E5", "average accuracy with bit-wise coreset", "70.26%", ""),
                                     ("E6", "training time with bit-wise coreset", "1.47 GPU-h",
                                      ", and a GPU (GPU-hours at the paper profile)"),
                                     ("E7", "speed-up over Dedicated", "7.61x", ""),
                                     ("E8", "average accuracy without coreset", "71.84%", "")]],
    *_pair("E9", "bit-wise coreset beats TDDS at 80% pruning (average accuracy)", "EMQ comparative results, CIFAR-10",
           "+4.43 points", "04_pruning",
           (_emq_minus("TDDS, static (class-balanced)"),
            "EMQ - TDDS (one subset from the reference run's dynamics, as TDDS's code) at 80% pruning"),
           (_emq_minus("TDDS, re-scored every R"), "EMQ - TDDS re-scored every R epochs at each bit-width",
            "bit-wise coreset beats TDDS re-scored like EMQ's sampler at 80% pruning"), paper_effect=4.43),
    Claim("E10", "gradient angles between bit-widths are small", "EMQ technical details (sequential bit-wise scheme)",
          "< 28 degrees", "03_gradient_angles", _largest_angle, "largest whole-model angle", "below", 28.0,
          unit=" deg"),
    Claim("E11", "deeper layers are more aligned",
          "a secondary summary of EMQ (not in the paper's text we have)", "qualitative", "03_gradient_angles",
          _depth_trend, "Spearman(layer depth, angle)", "below", 0.0, unit=""),
    Claim("E12", "one shared BN; intermediate bit-widths (3, 5, 6, 7) work without fine-tuning", "EMQ abstract",
          "qualitative", "02_shared_bn", _untrained_gap, "largest |gap| of an untrained bit-width", "below", 1.0),
    Claim("E13", "cost reduction of EMQ + bit-wise coreset at 60% pruning over Dedicated",
          "secondary source, TinyImageNet (GPU-hours)", "8.41x", comparable=False,
          reason="the source gives no bit-widths, baseline or counting behind 8.41x; with our 4 trained and 8 served "
                 "bit-widths at 40% kept the design's pass ratio is 8 / (4 x 0.4) = 5.0x, so 8.41x cannot be reached "
                 "by construction, and matching it would mean guessing the paper's counting"),
    *_pair("E14", "EMQ's bit-wise coreset is at least as good as random selection at 80% pruning",
           "implied by EMQ's comparative results (a selection rule that loses to random has no point)", "not reported",
           "04_pruning", (_emq_minus(RANDOM_ONCE), "EMQ - random (one subset per bit-width) at 80% pruning"),
           (_emq_minus(RANDOM, _every_rate), "EMQ - random re-drawn every epoch at 80% pruning",
            "EMQ's bit-wise coreset at least as good as random re-drawn every epoch at 80% pruning"),
           direction="above", threshold=-NON_INFERIORITY),
    Claim("E14c", "EMQ's bit-wise coreset at least as good as RS2 (random without replacement) at 80% pruning",
          "RS2 (Okanovic et al., ICLR 2024), the strongest known control", "not reported", "04_pruning",
          _emq_minus("RS2 (without replacement)"), "EMQ - RS2 at 80% pruning", "above", -NON_INFERIORITY,
          protocol=CONTROL),
    Claim("E15", "bit-wise coreset beats equal-budget full-data training at 80% pruning",
          "EMQ's premise (coreset as a saving)", "not reported", "04_pruning",
          _emq_minus(labels.EQUAL_BUDGET_BITWISE, _budget_detail),
          "EMQ coreset - full data for the same sample passes and schedule (fewer epochs, learning rate annealed "
          "over its own steps) in the same bit-wise loop", protocol=CONTROL),
    Claim("P1", "joint training (recursive distillation) above Dedicated (average accuracy)",
          "Any-Precision README", "93.50% vs 93.08% (+0.42)", "05_training_cost",
          _cost_difference(labels.JOINT, labels.DEDICATED), "joint - Dedicated average accuracy", paper_effect=0.42),
    *_pair("A1", "ACS beats random selection at every data fraction (10-50%)", "ACS Tab. 1, MobileNetV2 W2/A32 CIFAR-100",
           "+0.95 to +1.84 points", "06_acs",
           (_acs_every_fraction("random-once"), "smallest ACS - random (drawn once) difference over 10-50%"),
           (_acs_every_fraction("random"), "smallest ACS - random (re-drawn every epoch) difference over 10-50%",
            "ACS beats random re-drawn every epoch at every data fraction (10-50%)"), paper_effect=0.95),
    *_pair("A2", "ACS beats every baseline at 10% and across 30-80% of the data (we run 10, 30, 50 and 80%)",
           "ACS Tab. 2, ResNet-18 W4/A4 ImageNet", "e.g. 68.39 at 10%", "06_acs",
           (_acs_vs_baselines(STATIC), "smallest ACS - best baseline (static protocol) difference over the fractions"),
           (_acs_vs_baselines(EVERY_BASELINE), "smallest ACS - best of every baseline and control over the fractions",
            "ACS beats every baseline, random re-drawn every epoch and RS2 included, at every fraction")),
    *_pair("A3", "ACS ahead of random at 10% of the data", "ACS abstract, Tab. 2 (ImageNet)",
           "+4.24 points (68.39 vs 64.15)", "06_acs",
           (_acs_at_10("random-once"), "ACS - random (drawn once) at 10%"),
           (_acs_at_10("random"), "ACS - random (re-drawn every epoch) at 10%",
            "ACS ahead of random re-drawn every epoch at 10% of the data"), paper_effect=4.24),
    Claim("A4", "reselecting more often helps at small fractions", "ACS Tab. 3 (ImageNet, 10%)",
          "68.8 (R=5) > 68.39 (10) > ... > 62.82 (once)", "06_acs", _reselection,
          "most frequent reselection - once, at 10%", paper_effect=round(68.8 - 62.82, 2)),
    Claim("A5", "the cosine beta schedule is best", "ACS Tab. 4 (ImageNet)", "cosine first at 10/30/50/70%",
          "06_acs", _cosine_schedule, "cosine - the best other schedule, at 10%", paper_effect=0.02),
    Claim("A6", "under 10% label noise ACS matches or beats full data for fractions >= 30%",
          "ACS Tab. 5, ResNet-18 CIFAR-10", "89.95-90.23 vs 89.91 (full)", "07_label_noise", _noise(labels.FULL_DATA),
          "smallest ACS - full data difference over the fractions 30-50%", "above", -NON_INFERIORITY),
    *_pair("A6b", "under 10% label noise ACS beats random selection for fractions >= 30%",
           "ACS Tab. 5, ResNet-18 CIFAR-10", "89.95-90.23 vs 84.82-85.33 (+4.90 to +5.13)", "07_label_noise",
           (_noise("random-once"), "smallest ACS - random (drawn once) difference over the fractions 30-50%"),
           (_noise("random"), "smallest ACS - random (re-drawn every epoch) difference over the fractions 30-50%",
            "under 10% label noise ACS beats random re-drawn every epoch for fractions >= 30%"), control_id="A6c",
           paper_effect=4.90),
    Claim("A7", "ACS's selection cost is the same at every data fraction (training time of ACS and baselines)",
          "ACS Tabs. 6-7, ImageNet on 2x RTX 3090", "11.3-53.8 h training; 3.2 h selection", "06_acs",
          _selection_spread, "spread (max - min) / mean of ACS's selection seconds over the fractions", "below",
          25.0, unit="%"),
    Claim("A8", "the teacher's forward passes are a minor share of training time", "ACS Tab. 7, ImageNet",
          "3.2 h selection; KD share of training time", "06_acs", _teacher_share,
          "share of training seconds that is the teacher's forward passes", "below", 50.0, unit="%"),
    *_pair("A9", "ACS beats a full-coverage split (every sample seen once per cycle)", "ACS Tab. 8, MobileNetV2 CIFAR-100",
           "63.37-67.19", "06_acs", (_acs_vs("acs_split.csv", "split", "split"), "smallest ACS - split difference"),
           (_acs_vs("acs_split.csv", "rs2", "RS2"), "smallest ACS - RS2 difference over the fractions",
            "ACS beats RS2 (the split reshuffled every pass)")),
    *_pair("A10", "without distillation (labels only) ACS still beats EL2N and random", "ACS Tab. 9, ImageNet",
           "66.91-70.03", "06_acs",
           (_acs_vs("acs_no_distillation.csv", ["el2n", "random-once"], "the better of EL2N/random (drawn once)"),
            "smallest ACS - max(EL2N, random drawn once), labels only"),
           (_acs_vs("acs_no_distillation.csv", ["el2n", "random"], "the better of EL2N/random (re-drawn)"),
            "smallest ACS - max(EL2N, random re-drawn every epoch), labels only",
            "without distillation ACS still beats EL2N and random re-drawn every epoch")),
    *_pair("A11", "ACS coresets transfer across architectures (ResNet-8 <-> MobileNetV2): better than random",
           "ACS Tab. 10, MobileNetV2 CIFAR-100", "62.94-66.86", "06_acs",
           (_transfer("random-once"), "accuracy on the other architecture's ACS coreset - on random (drawn once)"),
           (_transfer("random"), "accuracy on the other architecture's ACS coreset - on random (re-drawn)",
            "ACS coresets transferred across architectures beat random re-drawn every epoch")),
    Claim("A12", "the two architectures' coresets overlap more than chance", "ACS Tab. 11, CIFAR-100", "29.0-77.3%",
          "06_acs", _overlap, "overlap of ResNet-8's and MobileNetV2's ACS coresets at 10%", "above", 10.0,
          paper_effect=19.0, unit="%"),
    *_pair("A13", "ACS beats random on a ViT at W2/A32 with 10% of the data", "ACS, ViT-B/16 CIFAR-100",
           "78.9% (random 74.6)", "06_acs",
           (_acs_vit("random-once"), "ACS - random (drawn once) at 10% (small timm ViT, no pretraining)"),
           (_acs_vit("random"), "ACS - random (re-drawn every epoch) at 10% (small timm ViT)",
            "ACS beats random re-drawn every epoch on a ViT at W2/A32 with 10% of the data"), paper_effect=4.3),
    Claim("A14", "ACS on object detection", "ACS Tab. 12, RetinaNet COCO", "24.4-26.7 AP",
          reason="object detection is outside this project"),
    *_pair("A15", "most prior coreset methods fail to beat random selection in QAT", "ACS introduction",
           "qualitative", "04_pruning",
           (_prior_below_random(RANDOM_ONCE), "share of prior-method cases below random (drawn once)"),
           (_prior_below_random(RANDOM), "share of prior-method cases below random (re-drawn every epoch)",
            "most prior coreset methods fail to beat random re-drawn every epoch in QAT"),
           direction="above", threshold=0.5, unit=""),
]


def _selection_share() -> Measurement:
    """Selection seconds as a share (%) of the wall-clock of EMQ + bit-wise coreset, per seed."""
    cost = load_result("training_cost.csv")
    rows = cost[cost.method == CORESET]
    shares = _by_seed(rows.assign(share=100 * rows.selection_seconds / rows.wall_seconds), "method", "share")
    return Measurement(shares[CORESET], f"selection {_arm(rows.selection_seconds, ' s')} of "
                                        f"{_arm(rows.wall_seconds, ' s')} wall-clock", _invalid(rows))


# What the bit-wise coreset work set out to reach at the cpu profile (emqlib.harness.targets), graded by the
# claims' rule with the target as threshold (docs/engineering.md's targets block).
TARGETS: list[Claim] = [
    Claim(t.name, t.text, "project target", t.shown, notebook, metric, measure, t.direction, t.threshold, unit=t.unit)
    for t, notebook, metric, measure in [
        (TARGET_TABLE["T1"], "05_training_cost", _cost_difference(CORESET, labels.EMQ),
         "coreset - full-data EMQ average accuracy"),
        (TARGET_TABLE["T2"], "04_pruning", _emq_minus(RANDOM), "EMQ - random average accuracy at 80% pruning"),
        (TARGET_TABLE["T3"], "04_pruning", _emq_minus(labels.EQUAL_BUDGET_BITWISE),
         "EMQ coreset - equal-budget full data in the same bit-wise loop"),
        (TARGET_TABLE["T4"], "05_training_cost", _selection_share, "selection share of the wall-clock"),
        (TARGET_TABLE["T5"], "05_training_cost", _served_speedup,
         "wall-clock speed-up over Dedicated on every served bit-width")]]


# ---------------------------------------------------------------- grading

def grade_claim(claim: Claim, setting: str) -> dict:
    """One row of claims.csv: the claim, our per-seed measurement and its grade; ``invalid`` when a row it read
    fails a run check (the run and the check in ``reason``)."""
    row = dict(claim_id=claim.claim_id, claim=claim.claim, source=claim.source, paper_value=claim.paper_value,
               protocol=claim.protocol, our_value="", our_setting="",
               status=NOT_RUN if claim.comparable else NOT_COMPARABLE, n_seeds=0, ci_low=math.nan, ci_high=math.nan,
               fragile=pd.NA, seeds_to_reproduce="", criterion="", reason=claim.reason, notebook=claim.notebook)
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
    graded = {**row, "our_value": our + (f"; {measured.detail}" if measured.detail else ""),
              "our_setting": f"{setting}{SETTING_NOTES.get(claim.notebook, '')}", "n_seeds": verdict.n_seeds,
              "ci_low": round(verdict.ci_low, 4), "ci_high": round(verdict.ci_high, 4)}
    if measured.invalid:
        return {**graded, "status": INVALID, "reason": "rests on runs that fail a check: " + "; ".join(measured.invalid)}
    return {**graded, "status": verdict.status, "fragile": grading.is_fragile(values, *args),
            "seeds_to_reproduce": grading.seeds_to_reproduce(values, *args),
            "reason": grading.why_not_reproduced(values, *args, claim.unit)}


def build_claims(profile: str, claims: list[Claim] | None = None) -> pd.DataFrame:
    """The claims table, graded from the results CSVs written by notebooks 02-08 at ``profile``."""
    return pd.DataFrame([grade_claim(c, describe_profile(profile, short=c.notebook in SHORT_SCHEDULE_NOTEBOOKS
                                                         or c.claim_id in SHORT_SCHEDULE_CLAIMS))
                         for c in (CLAIMS if claims is None else claims)], columns=COLUMNS)

