"""Notebook 04: EMQ's bit-wise coreset at 80% pruning against every rule and protocol we run, in the regime
where it could hold: is the profile converged (per bit-width), which sampler is EMQ's (chosen on the validation
split), and how it compares with random re-drawn every epoch, RS2, the prior methods in the protocol their
papers used and re-scored like EMQ's sampler, and full data (on every loop, and for the same budget)."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .. import labels
from ..config import RunConfig, profile_config
from ..cost import equal_budget_epochs
from ..stats import spearman, t_interval
from ..targets import TARGETS
from .common import coreset_config, run_all, summarize_plan

# points: a bit-width has converged when doubling the epochs gains less than this
CONVERGENCE_GAIN = TARGETS["converged"].threshold

# The arms of the 80% table: label -> (selection rule, its settings, what the arm is). Warm-up W = 2 epochs on
# uniform subsets wherever scores come from the model being trained (the profile's reselection interval).
EMQ_DESIGNS = {  # EMQ's candidate samplers: scored per bit-width with the model being trained (docs/method.md §6)
    "EMQ: top-k EL2N, rescored every R": ("emq-topk", {}),
    "EMQ: sampled (tau 1, eps 0.1), scored once": ("emq-sample", {"static": True}),
    "EMQ: sampled (tau 1, eps 0.1), free scores": ("emq-sample", {"free_scores": True, "reselect_every": 1}),
}
CONTROLS = {  # uniform draws: the paper's static control, the strongest controls known
    "random, drawn once": ("random-once", {}),
    "random, re-drawn every epoch": ("random", {}),
    "RS2 (without replacement)": ("rs2", {}),
}
PRIOR_METHODS = {  # in the protocol their papers used (one subset from the reference run), and re-scored like EMQ's
    "TDDS, static (class-balanced)": ("tdds", {}),
    "TDDS, re-scored every R": ("tdds-rescored", {"warmup_epochs": 2}),  # scored from three recorded epochs on
    "EL2N, static (class-balanced)": ("el2n", {}),
}
ARMS = {**EMQ_DESIGNS, **CONTROLS, **PRIOR_METHODS}
# a tie on validation goes to the design that costs least to select with (scoring forward passes), then to the
# one with fewest settings: this order
SIMPLEST_FIRST = ("EMQ: sampled (tau 1, eps 0.1), free scores", "EMQ: sampled (tau 1, eps 0.1), scored once",
                  "EMQ: top-k EL2N, rescored every R")
RANDOM = "random, re-drawn every epoch"


def arm_config(profile: str, label: str, fraction: float, seed: int) -> RunConfig:
    """The run of arm ``label`` (a key of :data:`ARMS`) at ``fraction``: EMQ multi-bit training in its bit-wise
    loop, with a weight snapshot per epoch (the gradient angles of notebook 03 are measured on these runs)."""
    if label not in ARMS:
        raise ValueError(f"unknown arm {label!r}; choose one of {list(ARMS)}")
    rule, settings = ARMS[label]
    return coreset_config(profile, rule, fraction, seed, selection=settings, record={"snapshot_every": 1})


def full_data_configs(profile: str, seed: int, epochs: int | None = None) -> dict[str, RunConfig]:
    """Full-data EMQ in the two loops a pruned arm is compared with: EMQ's joint loop (every bit-width on each
    batch, recursive distillation: the paper's full-data EMQ) and the pruned arms' own bit-wise loop (each
    bit-width in turn on every sample, distilling from the 32-bit child); ``epochs``: fewer for equal budget."""
    joint, bitwise = profile_config(profile, "emq", seed=seed), coreset_config(profile, "random", 1.0, seed)
    if epochs is None:
        return {labels.FULL_DATA: joint, labels.FULL_DATA_BITWISE: bitwise}
    return {labels.EQUAL_BUDGET: joint.replace(optim={"epochs": epochs}),
            labels.EQUAL_BUDGET_BITWISE: bitwise.replace(optim={"epochs": epochs})}


def regime_check(profile: str = "cpu", seeds: Sequence[int] = (0, 1, 2), factor: int = 2,
                 eval_every: int = 3, alongside: Sequence[RunConfig] = ()) -> pd.DataFrame:
    """Full-data EMQ at the profile's epochs and at ``factor`` times as many, per seed, with the longer run's
    test accuracy every ``eval_every`` epochs: one row per (seed, epochs, epoch, bits). Pruning and cost claims
    need every trained bit-width converged (:func:`convergence`). ``alongside``: a notebook's later runs, trained
    in the same pool (no worker waits while the last long run trains)."""
    base = profile_config(profile, "emq")
    plan = []
    for seed in seeds:
        plan.append((dict(seed=seed, epochs=base.optim.epochs), base.replace(seed=seed)))
        plan.append((dict(seed=seed, epochs=factor * base.optim.epochs),
                     base.replace(seed=seed, optim={"epochs": factor * base.optim.epochs},
                                  record={"eval_every": eval_every, "validate": False})))
    runs = run_all([c for _, c in plan] + list(alongside))[:len(plan)]
    summaries = summarize_plan(plan, arm=["epochs"])
    frames = []
    for (labels_, _), r, (_, row) in zip(plan, runs, summaries.iterrows()):
        m = r.metrics.dropna(subset=["test_accuracy"])
        frames.append(m[["epoch", "bits", "test_accuracy", "train_loss"]].assign(
            **labels_, run=r.path.name, valid=row.valid, invalid_reason=row.invalid_reason))
    return pd.concat(frames, ignore_index=True)


def convergence(regime: pd.DataFrame) -> pd.DataFrame:
    """Per trained bit-width: the final accuracy of each schedule and the gain of the longer one, per seed (a
    row per seed and bit-width), for :func:`convergence_summary`."""
    final = regime[regime.epoch == regime.epochs - 1]
    table = final.pivot_table(index=["seed", "bits"], columns="epochs", values="test_accuracy")
    short, long = sorted(table.columns)
    return table.rename(columns={short: "profile", long: "doubled"}).assign(
        gain=lambda t: t.doubled - t.profile).reset_index()


def convergence_summary(regime: pd.DataFrame) -> pd.DataFrame:
    """Per trained bit-width: the mean gain of doubling the schedule over seeds, its 95% t-interval, and
    whether it converged (mean gain < :data:`CONVERGENCE_GAIN`)."""
    rows = []
    for b, group in convergence(regime).groupby("bits"):
        mean, low, high = t_interval(group.gain)
        rows.append({"bits": int(b), "seeds": len(group), "profile": group.profile.mean(),
                     "doubled": group.doubled.mean(), "gain": mean, "ci_low": low, "ci_high": high,
                     "converged": bool(mean < CONVERGENCE_GAIN)})
    return pd.DataFrame(rows).sort_values("bits", ascending=False).reset_index(drop=True)


def table_plan(profile: str = "cpu", rate: float = 0.8, seeds: Sequence[int] = (0, 1, 2),
               arms: Sequence[str] = tuple(ARMS)) -> list[tuple[dict, RunConfig]]:
    """(labels, configuration) of every row of :func:`pruning_table`."""
    fraction = round(1 - rate, 6)
    budget = equal_budget_epochs(profile_config(profile).optim.epochs, fraction)
    plan = []
    for seed in seeds:
        plan += [(dict(method=label, pruning_rate=rate, seed=seed), arm_config(profile, label, fraction, seed))
                 for label in arms]
        plan += [(dict(method=label, pruning_rate=0.0, seed=seed), config)
                 for label, config in full_data_configs(profile, seed).items()]
        plan += [(dict(method=label, pruning_rate=rate, seed=seed), config)
                 for label, config in full_data_configs(profile, seed, budget).items()]
    return plan


def pruning_table(profile: str = "cpu", rate: float = 0.8, seeds: Sequence[int] = (0, 1, 2),
                  arms: Sequence[str] = tuple(ARMS)) -> pd.DataFrame:
    """Every arm at ``rate``, and full data in both loops, for the profile's epochs and for the coreset's
    sample passes (equal budget: :func:`emqlib.harness.cost.equal_budget_epochs`), per seed; each run
    evaluated on the test set (``acc_*``) and on the validation split (``val_acc_*``, the profile's
    ``record.validate``)."""
    return summarize_plan(table_plan(profile, rate, seeds, arms), arm=["method"])


def chosen_sampler(table: pd.DataFrame) -> dict:
    """EMQ's sampler, chosen on the validation split among :data:`EMQ_DESIGNS`: the best mean validation
    accuracy, unless it beats the runner-up by no more than the 95% t-interval of their paired difference (a
    tie), in which case the simplest of the tied designs (:data:`SIMPLEST_FIRST`). Returns the choice, the best,
    the runner-up and their paired difference on validation."""
    ours = table[table.method.isin(EMQ_DESIGNS)]
    per_seed = ours.pivot_table(index="seed", columns="method", values="val_avg_accuracy")
    means = per_seed.mean().sort_values(ascending=False)
    best, runner_up = means.index[0], means.index[1]
    mean, low, high = t_interval(per_seed[best] - per_seed[runner_up])
    tied = [d for d in means.index if d == best or
            t_interval(per_seed[best] - per_seed[d])[1] <= 0]  # the interval reaches 0: not distinguishable
    choice = best if len(tied) == 1 else next(d for d in SIMPLEST_FIRST if d in tied)
    return {"chosen": choice, "best": best, "runner_up": runner_up, "difference": mean, "ci_low": low,
            "ci_high": high, "tied": tied, "seeds": len(per_seed)}


def ranking_agreement(table: pd.DataFrame) -> pd.DataFrame:
    """How well the validation split predicts the test set over the pruned arms of the table: per arm the
    mean validation and test accuracy over seeds, their ranks, and the Spearman correlation of the ranks
    (``spearman`` on every row)."""
    pruned = table[table.pruning_rate > 0]
    means = pruned.groupby("method", sort=False)[["val_avg_accuracy", "avg_accuracy"]].mean()
    means["val_rank"] = means.val_avg_accuracy.rank(ascending=False)
    means["test_rank"] = means.avg_accuracy.rank(ascending=False)
    means["spearman"] = spearman(means.val_avg_accuracy, means.avg_accuracy)
    return means.reset_index()


def other_rates(profile: str, chosen: str, rates: Sequence[float] = (0.5, 0.9), seeds: Sequence[int] = (0,),
                arms: Sequence[str] = (RANDOM,)) -> pd.DataFrame:
    """EMQ's chosen sampler and ``arms`` at other pruning rates (is the 80% ranking specific to 80%?)."""
    plan = [(dict(method=label, pruning_rate=rate, seed=seed), arm_config(profile, label, round(1 - rate, 6), seed))
            for rate in rates for seed in seeds for label in (chosen, *arms)]
    return summarize_plan(plan, arm=["method", "pruning_rate"])


def per_bit_width(table: pd.DataFrame, reference: str, arms: Sequence[str]) -> pd.DataFrame:
    """Each arm minus ``reference`` per trained bit-width (paired by seed): mean and 95% t-interval, so that a
    difference carried by one child is seen as such."""
    accuracy = [c for c in table.columns if c.startswith("acc_")]
    rows = []
    ref = table[table.method == reference].set_index("seed")
    for arm in arms:
        mine = table[table.method == arm].set_index("seed")
        for column in accuracy:
            mean, low, high = t_interval((mine[column] - ref[column]).dropna())
            rows.append({"method": arm, "bits": int(column.removeprefix("acc_")), "difference": mean,
                         "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)

