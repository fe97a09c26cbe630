"""What the studies share: their runs (trained once, through the run cache, by worker processes), one
summary row per run, and the configurations of EMQ's bit-wise coreset and of ACS's setting."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ...bits import FULL_PRECISION
from ...quant import QuantSpec
from ..build import Runtime
from ..config import BITWISE_TRAINING, RunConfig, coreset, profile_config, reference_config
from .. import validity
from ..pool import train_missing
from ..runs import Run, get_run


def run(config: RunConfig) -> Run:
    """The finished run of ``config`` (trained now if it is not in the cache, by a worker process when
    ``$EMQ_WORKERS`` > 1, so that every run of a study is timed alike: one torch thread per worker)."""
    return run_all([config])[0]


def run_all(configs: Sequence[RunConfig], evaluations: Sequence[tuple | None] | None = None
            ) -> list[Run]:
    """The finished runs of ``configs``, in order; the missing ones are trained first, by ``$EMQ_WORKERS``
    processes at once (:mod:`emqlib.harness.pool`), else one by one here. ``evaluations`` (one (bits,
    recalibrate[, split]) or None per configuration) are measured by the worker that trains the run, so that the
    study's own :meth:`Run.evaluate` finds them in the run folder."""
    train_missing(configs, evaluations=evaluations)
    return [get_run(c, Runtime()) for c in configs]


def summarize_plan(plan: Sequence[tuple[dict, RunConfig]], arm: Sequence[str] | None = None) -> pd.DataFrame:
    """One :func:`summarize` row per (labels, configuration) of ``plan``, its runs trained by :func:`run_all`,
    each checked (:func:`emqlib.harness.validity.mark`: a child far below its siblings and the arm's other
    seeds collapsed). ``arm``: the label columns that name an arm (default: every label but ``seed``)."""
    runs = run_all([config for _, config in plan])
    frame = pd.DataFrame([summarize(r, **labels_) for (labels_, _), r in zip(plan, runs)])
    arm = [k for k in plan[0][0] if k != "seed"] if arm is None else list(arm)
    return validity.mark(frame, arm)


def with_checks(frame: pd.DataFrame, plan: Sequence[tuple[dict, RunConfig]], arm: Sequence[str]) -> pd.DataFrame:
    """``frame`` (a study's table with a ``run`` column, any number of rows per run) with each run's ``valid`` and
    ``invalid_reason`` from :func:`summarize_plan` of ``plan``: the checks every table that feeds a claim carries."""
    checks = summarize_plan(plan, arm).drop_duplicates("run").set_index("run")[["valid", "invalid_reason"]]
    return frame.join(checks, on="run")


def summarize(run_: Run, **labels) -> dict:
    """One row per run: final accuracy per trained bit-width, their average, the run's cost, and why it may
    not feed a claim (``invalid_reason``, empty when it passes the run's own checks)."""
    final = run_.final_metrics()
    row = dict(labels)
    row.update({f"acc_{int(b)}": float(a) for b, a in zip(final.bits, final.test_accuracy)})
    row["avg_accuracy"] = float(final.test_accuracy.mean())
    if final.val_accuracy.notna().all():  # runs that record.validate: the same model on the validation split
        row.update({f"val_acc_{int(b)}": float(a) for b, a in zip(final.bits, final.val_accuracy)})
        row["val_avg_accuracy"] = float(final.val_accuracy.mean())
    row.update(run_.cost())
    row["subset_size"] = int(final.subset_size.sum())
    row["subset_flipped"] = int(final.subset_flipped.sum())
    row.update(reference_cost(run_.config))
    row["total_seconds"] = row["wall_seconds"] + row["reference_seconds"]  # what a user pays, reference run included
    row["run"] = run_.path.name
    row["invalid_reason"] = " ; ".join(validity.run_failures(
        run_.metrics, run_.config.data.dataset, from_scratch=not run_.config.training.init_from_reference))
    return row


def reference_cost(config: RunConfig) -> dict:
    """Training seconds of the full-precision reference run ``config`` uses (0 when none)."""
    if not config.needs_reference:
        return {"reference_seconds": 0.0}
    return {"reference_seconds": run(reference_config(config)).cost()["train_seconds"]}


def coreset_config(profile: str, rule: str, fraction: float, seed: int, short: bool = False,
                   selection: dict | None = None, **changes) -> RunConfig:
    """EMQ multi-bit training (shared BN + correction) on per-bit coresets of selection rule ``rule``
    (``selection``: the rule's settings). Every rule trains the same way (sequential bit-wise,
    distillation from the 32-bit child, :data:`~emqlib.harness.config.BITWISE_TRAINING`), so that only the
    selection differs."""
    training = {**BITWISE_TRAINING, **changes.pop("training", {})}
    return profile_config(profile, "emq", short, seed=seed, training=training,
                          selection=coreset(profile, rule, fraction, **(selection or {})), **changes)


def acs_config(profile: str, rule: str = "none", fraction: float = 1.0, seed: int = 0, short: bool = False,
               selection: dict | None = None, **changes) -> RunConfig:
    """The ACS setting (docs/method.md §7, §11): one bit-width (W2/A32) with LSQ, started from the
    full-precision reference run and distilled from it (KD only, no label term)."""
    training = {"init_from_reference": True, "teacher": "reference", "label_weight": 0.0, **changes.pop("training", {})}
    return profile_config(profile, "dedicated", short, seed=seed,
                          model=dict(bits=(2,), activation_bits=FULL_PRECISION,
                                     quant=QuantSpec(weight_quantizer="lsq", full_precision_weight="plain"),
                                     **changes.pop("model", {})),
                          training=training, selection=coreset(profile, rule, fraction, **(selection or {})), **changes)
