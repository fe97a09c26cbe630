"""Notebook 06: ACS (adaptive coreset selection for single-bit QAT, docs/method.md §7) against random
selection and every baseline of the library, its cost, coverage, no distillation, transfer across
architectures and a ViT."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from ...coreset import BETA_SCHEDULES
from .. import labels
from ..build import load_run_data
from ..config import RunConfig, profile_config
from ..cost import FORWARD_PASS_WEIGHT
from ..runs import Run
from .common import acs_config, run, run_all, summarize_plan

# the controls: random drawn once (the protocol of ACS's baselines), re-drawn every epoch and RS2 (the strongest
# known), and the prior methods, each in the protocol its paper used (scored once from the reference run)
RANDOM = ("random-once", "random")
BASELINES = (*RANDOM, "rs2", "el2n", "forgetting", "tdds", "kcenter", "moderate", "emq-ccs")
STATIC_BASELINES = labels.ACS_STATIC_BASELINES
BASELINE_FRACTIONS = (0.1, 0.3, 0.5, 0.8)  # ACS Tab. 2's 10% and 30-80%: its ends and middle
NO_DISTILLATION = {"teacher": "none", "label_weight": 1.0}  # labels only: no teacher in training
# the two architectures of the transfer study and each one's changes to the profile, by part (MobileNetV2 is about
# 15x ResNet-8's CPU time per step at width 0.25 on 28x28 inputs). MobileNetV2 trains on batches of 16: its 50
# quantized convs in series leave its W2 start with nothing of the reference's function (ResNet-8's 6 keep most
# of it), so it must learn afresh, and 10% of the transfer study's data in batches of 128 is 2 steps an epoch
# (it stayed at chance); batches of 16 give it 8x the steps for the same samples and about the same seconds
TRANSFER_MODELS = {"resnet8": {}, "mobilenetv2": {"model": {"width": 0.25}, "optim": {"batch_size": 16}}}
# methods of the tables that are a selection rule with settings: method -> (rule, settings)
METHOD_RULES = {"split": ("rs2", {"reshuffle": False})}  # ACS Tab. 8's full-coverage split: RS2 without reshuffling


def method_config(profile: str, method: str, fraction: float, seed: int, short: bool, **changes) -> RunConfig:
    """The ACS setting trained on the subsets of ``method`` (a selection rule, or a key of :data:`METHOD_RULES`)."""
    rule, settings = METHOD_RULES.get(method, (method, None))
    return acs_config(profile, rule, fraction, seed, short, selection=settings, **changes)


def fraction_plan(profile: str = "cpu", fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5),
                  methods: Sequence[str] = ("acs", *RANDOM), seeds: Sequence[int] = (0,), label_noise: float = 0.0,
                  short: bool = False, full_data: bool = True, **changes) -> list[tuple[dict, RunConfig]]:
    """The (labels, configuration) of each run of :func:`fraction_study`."""
    plan = []
    data = {"label_noise": label_noise, **changes.pop("data", {})}
    for seed in seeds:
        plan += [(dict(method=method, fraction=fraction, seed=seed, label_noise=label_noise),
                  method_config(profile, method, fraction, seed, short, data=data, **changes))
                 for fraction in fractions for method in methods]
        if full_data:
            plan.append((dict(method=labels.FULL_DATA, fraction=1.0, seed=seed, label_noise=label_noise),
                         acs_config(profile, seed=seed, short=short, data=data, **changes)))
    return plan


def fraction_study(profile: str = "cpu", fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5),
                   methods: Sequence[str] = ("acs", *RANDOM), seeds: Sequence[int] = (0,), label_noise: float = 0.0,
                   short: bool = False, full_data: bool = True, **changes) -> pd.DataFrame:
    """Accuracy of the W2/A32 model at each data fraction for each selection rule, and on full data (unless
    ``full_data`` is False); ``changes`` apply to every run (e.g. ``model={"name": "vit"}``)."""
    return summarize_plan(fraction_plan(profile, fractions, methods, seeds, label_noise, short, full_data, **changes))


def schedule_study(profile: str = "cpu", fraction: float = 0.1, seeds: Sequence[int] = (0,),
                   short: bool = True) -> pd.DataFrame:
    """ACS's beta(t) ablation (docs/method.md §7.2) at one data fraction."""
    return summarize_plan([(dict(schedule=s, fraction=fraction, seed=seed),
                            acs_config(profile, "acs", fraction, seed, short, selection={"schedule": s}))
                           for seed in seeds for s in BETA_SCHEDULES])


def interval_study(profile: str = "cpu", fraction: float = 0.1, intervals: Sequence[int] = (1, 2, 3),
                   seeds: Sequence[int] = (0,), short: bool = True) -> pd.DataFrame:
    """ACS's reselection-interval ablation (docs/method.md §7.3, ACS Tab. 3), plus a single selection (static)."""
    plan = []
    for seed in seeds:
        plan += [(dict(interval=str(interval), fraction=fraction, seed=seed),
                  acs_config(profile, "acs", fraction, seed, short, selection={"reselect_every": interval}))
                 for interval in intervals]
        plan.append((dict(interval="once", fraction=fraction, seed=seed),
                     acs_config(profile, "acs", fraction, seed, short, selection={"static": True})))
    return summarize_plan(plan)


def baseline_study(profile: str = "cpu", fractions: Sequence[float] = BASELINE_FRACTIONS, seeds: Sequence[int] = (0,),
                   baselines: Sequence[str] = BASELINES, short: bool = True) -> pd.DataFrame:
    """ACS against every baseline of the library at each data fraction (ACS Tab. 2; claims A2, A7, A8):
    random drawn once and the prior methods in the protocol of ACS's table, random re-drawn every epoch and RS2
    beside them. ``emq-ccs`` is the coverage-centric sampler (CCS strata over the EL2N of the model being
    trained)."""
    return fraction_study(profile, fractions, ("acs", *baselines), seeds, short=short)


def sign_check(short: pd.DataFrame, long: pd.DataFrame, reference: str | Sequence[str]) -> pd.DataFrame:
    """Does an effect graded on the short schedule keep its sign on the full one? Per fraction, ACS minus
    ``reference`` (a method, or the best of several, per seed) in mean over seeds on each schedule, and whether
    the signs agree."""
    def effect(frame: pd.DataFrame) -> pd.Series:
        table = frame.pivot_table(index=["seed", "fraction"], columns="method", values="avg_accuracy")
        rivals = [reference] if isinstance(reference, str) else [r for r in reference if r in table]
        return (table["acs"] - table[rivals].max(axis=1)).groupby(level="fraction").mean()
    both = pd.DataFrame({"short": effect(short), "long": effect(long)}).dropna()
    return both.assign(same_sign=(both.short > 0) == (both.long > 0)).reset_index()


def split_study(profile: str = "cpu", fractions: Sequence[float] = (0.1, 0.3, 0.5), seeds: Sequence[int] = (0,),
                short: bool = True) -> pd.DataFrame:
    """ACS against the full-coverage split (every sample seen once per cycle; ACS Tab. 8, claim A9), RS2 (the split
    reshuffled every pass: the stronger control) and random; the ACS, RS2 and random runs are those of
    :func:`baseline_study` at the same fractions."""
    return fraction_study(profile, fractions, ("acs", "split", "rs2", *RANDOM), seeds, short=short, full_data=False)


def no_distillation_study(profile: str = "cpu", fractions: Sequence[float] = (0.1, 0.3, 0.5),
                          seeds: Sequence[int] = (0,), short: bool = True) -> pd.DataFrame:
    """ACS without distillation (ACS Tab. 9; claim A10): every run trains on labels only; ACS scores with EVS
    only (its DS term compares with the teacher), against EL2N and random, accuracy and seconds."""
    plan = [(dict(method=method, fraction=fraction, seed=seed, distillation="none"),
             acs_config(profile, method, fraction, seed, short, training=NO_DISTILLATION,
                        selection={"schedule": "evs-only"} if method == "acs" else None))
            for seed in seeds for fraction in fractions for method in ("acs", "el2n", *RANDOM)]
    return summarize_plan(plan)


def cost_split(baselines: pd.DataFrame, no_distillation: pd.DataFrame) -> pd.DataFrame:
    """Each run's seconds split into selection, the student's training passes and the teacher's forward
    passes, with the reference run's seconds apart (ACS Tabs. 6-7; claims A7, A8).

    The teacher's seconds are measured where the same method and fraction also ran without distillation (the
    same number of training passes, no teacher): training seconds with the teacher minus without.
    ``teacher_share_passes`` is the share that pass counting predicts (a forward-only pass at
    :data:`emqlib.harness.cost.FORWARD_PASS_WEIGHT` of a training pass)."""
    keys = ["method", "fraction", "seed"]
    runs = baselines[baselines.method != labels.FULL_DATA]
    plain = no_distillation.set_index(keys)
    frame = runs.join(plain.train_seconds.rename("train_seconds_without_teacher"), on=keys)
    # a measured teacher share reads two runs: both must pass their checks
    without = plain.reindex(pd.MultiIndex.from_frame(frame[keys]))
    partner_ok = without.valid.fillna(True).astype(bool).to_numpy()
    frame["invalid_reason"] = [reason if ok else "; ".join(filter(None, [reason, f"its run without a teacher: {other}"]))
                               for reason, ok, other in zip(frame.invalid_reason, partner_ok,
                                                            without.invalid_reason.fillna(""))]
    frame["valid"] = frame.valid.astype(bool).to_numpy() & partner_ok
    teacher = FORWARD_PASS_WEIGHT * frame.teacher_forwards
    frame["teacher_share_passes"] = teacher / (frame.sample_passes + teacher)
    frame["teacher_seconds"] = frame.train_seconds - frame.train_seconds_without_teacher
    frame["teacher_share_measured"] = frame.teacher_seconds / frame.train_seconds
    frame["student_seconds"] = frame.train_seconds - frame.teacher_seconds
    columns = [*keys, "selection_seconds", "student_seconds", "teacher_seconds", "train_seconds", "wall_seconds",
               "reference_seconds", "teacher_share_measured", "teacher_share_passes", "selection_forwards",
               "teacher_forwards", "sample_passes", "run", "valid", "invalid_reason"]
    return frame[columns].reset_index(drop=True)


def _model_config(profile: str, rule: str, fraction: float, seed: int, model: str, models: dict, short: bool,
                  selection: dict | None = None, **changes) -> RunConfig:
    """The ACS setting for ``model`` with its changes in ``models`` (part -> fields) merged into ``changes``."""
    parts = {part: {**changes.get(part, {}), **fields} for part, fields in models[model].items()}
    parts["model"] = {**parts.get("model", {}), "name": model}
    return acs_config(profile, rule, fraction, seed, short, selection=selection, **{**changes, **parts})


def transfer_changes(profile: str, data_share: float = 1.0) -> dict:
    """The changes that train the transfer study on ``data_share`` of the profile's training samples of each
    class (class-balanced); none at 1.0."""
    if data_share == 1.0:
        return {}
    base = profile_config(profile)
    per_class = base.data.train_per_class or int(torch.bincount(load_run_data(base)[0].targets).min())
    return {"data": {"train_per_class": max(1, round(data_share * per_class))}}


def transfer_study(profile: str = "cpu", fraction: float = 0.1, models: dict = TRANSFER_MODELS,
                   seeds: Sequence[int] = (0,), data_share: float = 1.0, short: bool = True,
                   alongside: Sequence[RunConfig] = ()) -> pd.DataFrame:
    """Coresets across architectures (ACS Tab. 10; claim A11): each model trained on its own ACS subsets, on
    the other model's (its recorded subsets replayed epoch by epoch, the ``replay`` rule), and on random
    subsets. ``models``: architecture -> its changes to the profile, by part; ``data_share``: see
    :func:`transfer_changes`; ``coreset`` names whose subsets a row trained on. ``alongside``: a notebook's
    other runs, trained together with the own-subset runs (MobileNetV2's reference and own run train one after
    the other while the second worker would have nothing to do)."""
    changes = transfer_changes(profile, data_share)
    own = {(seed, m): _model_config(profile, "acs", fraction, seed, m, models, short, **changes)
           for seed in seeds for m in models}
    own_runs = dict(zip(own, run_all([*own.values(), *alongside])))  # before the runs that replay their subsets
    plan = []
    for seed in seeds:
        for m in models:
            plan.append((dict(model=m, coreset="own ACS", fraction=fraction, seed=seed), own[seed, m]))
            plan += [(dict(model=m, coreset=f"ACS of {source}", fraction=fraction, seed=seed),
                      _model_config(profile, "replay", fraction, seed, m, models, short,
                                    selection={"source_run": own_runs[seed, source].path.name}, **changes))
                     for source in models if source != m]
            plan += [(dict(model=m, coreset=rule, fraction=fraction, seed=seed),
                      _model_config(profile, rule, fraction, seed, m, models, short, **changes)) for rule in RANDOM]
    return summarize_plan(plan)


def subset_overlap(a: Run, b: Run) -> pd.DataFrame:
    """Per (epoch, bits) where both runs drew a subset: the share (%) of ``a``'s subset also in ``b``'s."""
    mine, theirs = a.selections(), b.selections()
    rows = [{"epoch": e, "bits": bits, "overlap": 100 * np.isin(mine[e, bits].numpy(), theirs[e, bits].numpy()).mean()}
            for e, bits in sorted(mine) if (e, bits) in theirs]
    return pd.DataFrame(rows)


def overlap_study(profile: str = "cpu", fraction: float = 0.1, models: dict = TRANSFER_MODELS,
                  seeds: Sequence[int] = (0,), data_share: float = 1.0, short: bool = True) -> pd.DataFrame:
    """Overlap (%) of the ACS coresets two architectures choose at each selection epoch (ACS Tab. 11; claim
    A12), the runs of :func:`transfer_study`; two independent uniform draws overlap by ``fraction`` (as a %)
    on average."""
    a, b = models
    changes = transfer_changes(profile, data_share)
    frames = [subset_overlap(*(run(_model_config(profile, "acs", fraction, seed, m, models, short, **changes))
                               for m in (a, b)))
              .assign(models=f"{a} / {b}", fraction=fraction, seed=seed)
              for seed in seeds]
    return pd.concat(frames, ignore_index=True)


def vit_plan(profile: str = "cpu", fraction: float = 0.1, seeds: Sequence[int] = (0,), width: float = 0.25,
             short: bool = True) -> list[tuple[dict, RunConfig]]:
    """The runs of :func:`vit_study` (to train them beside another study's, ``alongside``)."""
    return fraction_plan(profile, (fraction,), ("acs", *RANDOM), seeds, short=short, full_data=False,
                         model={"name": "vit", "width": width})


def vit_study(profile: str = "cpu", fraction: float = 0.1, seeds: Sequence[int] = (0,), width: float = 0.25,
              short: bool = True) -> pd.DataFrame:
    """ACS vs random on a small ViT (timm, random init, patch 4, depth 6, embed dim 192 x ``width``) at W2/A32
    (claim A13)."""
    return summarize_plan(vit_plan(profile, fraction, seeds, width, short)).assign(model="vit", width=width)
