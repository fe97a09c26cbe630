"""results/claims.csv: every numeric claim of SPEC section 11, the paper's value beside ours.

Each claim has a *criterion*, fixed here before any result is read, that turns our measurement
into a status: ``reproduced``, ``partial``, ``not reproduced``, or ``not run`` (the setting is
out of reach of the profile that produced the results, e.g. ImageNet or GPU-hours). At the
``cpu`` profile absolute accuracies cannot match CIFAR's, so the criteria judge the direction
and size of each effect, as the claim's wording allows.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from .config import describe_profile
from .experiments import depth_trend, mean_std
from .results import load_result

COLUMNS = ["claim_id", "claim", "source", "paper_value", "our_value", "our_setting", "status", "criterion",
           "notebook"]
NOT_RUN = "not run"
SETTING_NOTES = {
    "05_pruning_tdds": "; EMQ multi-bit training on per-bit coresets, the selection rule varied",
    "06_acs": "; ACS setting: one bit-width, W2/A32 with LSQ, initialised from and distilled by the FP reference run",
    "07_label_noise": "; ACS setting (W2/A32, LSQ) with 10% symmetric label noise",
}


def _grade(value: float, reproduced: Callable[[float], bool], partial: Callable[[float], bool]) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return NOT_RUN
    return "reproduced" if reproduced(value) else "partial" if partial(value) else "not reproduced"


def _pm(values: pd.Series, unit: str = "") -> str:
    """'mean ± std unit (n seeds)', or the value and unit for one seed."""
    values = values.dropna()
    if len(values) > 1:
        return f"{values.mean():.2f} ± {values.std():.2f}{unit} ({len(values)} seeds)"
    return f"{values.mean():.2f}{unit}"


# ---------------------------------------------------------------- EMQ claims

def _cost_claims() -> list[dict]:
    cost = load_result("training_cost.csv")
    by = {m: g for m, g in cost.groupby("method")}
    coreset = next(m for m in by if m.startswith("EMQ + bit-wise coreset"))
    emq, dedicated, joint = by["EMQ"], by["Dedicated"], by["Joint (Any-Precision)"]
    drop = (emq.set_index("seed").avg_accuracy - by[coreset].set_index("seed").avg_accuracy)
    gap = emq.set_index("seed").avg_accuracy - dedicated.set_index("seed").avg_accuracy
    joint_gap = joint.set_index("seed").avg_accuracy - dedicated.set_index("seed").avg_accuracy
    speed, speed_all = by[coreset].speedup_wall, by[coreset].speedup_wall_all_bits
    return [
        dict(claim_id="E1", claim="average accuracy with bit-wise coreset (vs 93.46 without: -0.49)",
             source="EMQ Results, CIFAR-10", paper_value="92.97% (0.49 below EMQ without coreset)",
             our_value=f"{_pm(by[coreset].avg_accuracy, '%')}; {_pm(drop, ' points')} below EMQ on full data",
             status=_grade(drop.mean(), lambda d: d <= 1.0, lambda d: d <= 3.0),
             criterion="the coreset's accuracy drop vs full-data EMQ: <= 1.0 point reproduced, <= 3.0 partial",
             notebook="04_training_cost"),
        dict(claim_id="E2", claim="training time with bit-wise coreset", source="EMQ Results, CIFAR-10",
             paper_value="1.52 GPU-h", our_value=f"{by[coreset].wall_seconds.mean():.0f} s on 2 CPU cores",
             status=NOT_RUN, criterion="GPU-hours on CIFAR-10 need the paper profile on a GPU",
             notebook="04_training_cost"),
        dict(claim_id="E3", claim="speed-up of EMQ + bit-wise coreset over Dedicated", source="EMQ abstract/Results, CIFAR-10",
             paper_value="7.88x",
             our_value=(f"{_pm(speed, 'x')} wall-clock vs Dedicated on the trained bit-widths; "
                        f"{_pm(speed_all, 'x')} vs a Dedicated of all 9 supported bit-widths (estimated)"),
             status=("reproduced" if speed.mean() >= 0.9 * 7.88 else
                     "partial" if speed_all.mean() >= 0.9 * 7.88 else "not reproduced"),
             criterion=("measured wall-clock speedup >= 7.1x (90% of 7.88) reproduced; only the 9-model "
                        "estimate >= 7.1x partial (SPEC 5.2)"),
             notebook="04_training_cost"),
        dict(claim_id="E4", claim="average accuracy of EMQ without coreset (Dedicated 93.08, derived)",
             source="EMQ Results, CIFAR-10; Any-Precision README", paper_value="93.46% (+0.38 vs Dedicated)",
             our_value=f"{_pm(emq.avg_accuracy, '%')}; {_pm(gap, ' points')} vs Dedicated",
             status=_grade(gap.mean(), lambda g: g >= -1.0, lambda g: g >= -2.0),
             criterion="EMQ minus Dedicated average accuracy: >= -1.0 point reproduced, >= -2.0 partial",
             notebook="04_training_cost"),
        dict(claim_id="P1", claim="joint training (recursive distillation) matches Dedicated",
             source="Any-Precision README (SPEC 11.3)", paper_value="93.50% vs 93.08% (+0.42)",
             our_value=f"{_pm(joint_gap, ' points')} vs Dedicated",
             status=_grade(joint_gap.mean(), lambda g: g >= -1.0, lambda g: g >= -2.0),
             criterion="joint minus Dedicated average accuracy: >= -1.0 point reproduced, >= -2.0 partial",
             notebook="04_training_cost"),
    ]


def _cifar100_claims() -> list[dict]:
    rows = []
    for claim_id, claim, value in [("E5", "average accuracy with bit-wise coreset", "70.26%"),
                                   ("E6", "training time with bit-wise coreset", "1.47 GPU-h"),
                                   ("E7", "speed-up over Dedicated", "7.61x"),
                                   ("E8", "average accuracy without coreset", "71.84%")]:
        rows.append(dict(claim_id=claim_id, claim=claim, source="EMQ Results, CIFAR-100", paper_value=value,
                         our_value="", status=NOT_RUN, criterion="CIFAR-100 runs need the paper profile on a GPU",
                         notebook="04_training_cost"))
    return rows


def _tdds_claim() -> dict:
    pruning = load_result("pruning.csv")
    at80 = pruning[np.isclose(pruning.pruning_rate, 0.8)].pivot_table(index="seed", columns="method",
                                                                     values="avg_accuracy")
    diff = at80["emq"] - at80["tdds"]
    return dict(claim_id="E9", claim="bit-wise coreset beats TDDS at 80% pruning (average accuracy)",
                source="EMQ comparative results, CIFAR-10", paper_value="+4.43 points",
                our_value=f"{_pm(diff, ' points')} (EMQ {_pm(at80['emq'], '%')}, TDDS {_pm(at80['tdds'], '%')})",
                status=_grade(diff.mean(), lambda d: d >= 4.43 / 2, lambda d: d > 0),
                criterion="EMQ minus TDDS: >= 2.2 points (half the paper's) reproduced, > 0 partial",
                notebook="05_pruning_tdds")


def _angle_claims() -> list[dict]:
    angles = load_result("gradient_angles.csv")
    last = angles[angles.epoch == angles.epoch.max()]
    overall = last[last.layer == "all"]
    per_layer = last[last.layer != "all"]
    trend = depth_trend(angles)
    share = float((per_layer.angle < 28).mean())
    return [
        dict(claim_id="E10", claim="gradient angles between bit-widths are small", source="EMQ technical details",
             paper_value="< 28 degrees",
             our_value=(f"whole-model angle per bit pair {overall.angle.min():.1f}-{overall.angle.max():.1f} deg; "
                        f"{share:.0%} of per-layer angles < 28 deg (last epoch)"),
             status=("reproduced" if (overall.angle < 28).all() else
                     "partial" if overall.angle.median() < 28 else "not reproduced"),
             criterion="every bit pair's whole-model angle < 28 deg reproduced; the median below partial",
             notebook="03_gradient_angles"),
        dict(claim_id="E11", claim="deeper layers are more aligned", source="brief only (not in the seeds)",
             paper_value="qualitative",
             our_value=f"Spearman(layer depth, angle) = {trend:.2f}",
             status=_grade(trend, lambda t: t <= -0.5, lambda t: t < 0),
             criterion="rank correlation of depth with angle <= -0.5 reproduced, < 0 partial",
             notebook="03_gradient_angles"),
    ]


def _shared_bn_claim() -> dict:
    gaps = load_result("shared_bn_gaps.csv")
    ours = gaps[gaps.variant == "shared BN + correction"]
    plain = gaps[gaps.variant == "shared BN, no correction"]
    worst = float(ours.gap.abs().max())
    return dict(claim_id="E12", claim="one shared BN; intermediate bit-widths (3, 5, 6, 7) work without fine-tuning",
                source="EMQ abstract", paper_value="qualitative",
                our_value=(f"untrained bit-widths within {worst:.2f} points of their trained neighbours "
                           f"(largest |gap|; without correction {plain.gap.abs().max():.2f})"),
                status=_grade(worst, lambda w: w <= 1.0, lambda w: w <= 3.0),
                criterion="largest |accuracy gap| of an untrained bit-width to its trained neighbours' mean: "
                          "<= 1.0 point reproduced, <= 3.0 partial",
                notebook="02_shared_bn")


# ---------------------------------------------------------------- ACS claims

def _acs_claims() -> list[dict]:
    fractions = load_result("acs_fractions.csv")
    table = fractions[fractions.method.isin(["acs", "random"])].pivot_table(
        index="fraction", columns="method", values="avg_accuracy")
    ahead = table["acs"] - table["random"]
    schedules = mean_std(load_result("acs_schedule.csv"), ["schedule"]).sort_values("mean", ascending=False)
    rank = list(schedules.schedule).index("cosine") + 1
    intervals = mean_std(load_result("acs_interval.csv"), ["interval"])
    order = intervals["mean"].tolist()
    monotone = all(a >= b for a, b in zip(order, order[1:]))
    noise = load_result("label_noise.csv")
    noisy = noise.pivot_table(index="fraction", columns="method", values="avg_accuracy")
    full = float(noisy.loc[1.0, "full data"]) if 1.0 in noisy.index else np.nan
    above = noisy["acs"].dropna()
    above = above[above.index >= 0.3] - full
    at10 = float(ahead.get(0.1, np.nan))
    return [
        dict(claim_id="A1", claim="ACS beats random selection at every data fraction (10-50%)",
             source="ACS Tab. 1, MobileNetV2 W2/A32 CIFAR-100", paper_value="+0.9 to +1.8 points",
             our_value="; ".join(f"{f:.0%}: {d:+.2f}" for f, d in ahead.items()),
             status=("reproduced" if (ahead > 0).all() else "partial" if (ahead > 0).any() else "not reproduced"),
             criterion="ACS minus random positive at every fraction reproduced, at some partial",
             notebook="06_acs"),
        dict(claim_id="A3", claim="ACS ahead of random at 10% of the data", source="ACS abstract, Tab. 2 (ImageNet)",
             paper_value="+4.24 points (68.39 vs 64.15)", our_value=f"{at10:+.2f} points",
             status=_grade(at10, lambda d: d >= 4.24 / 2, lambda d: d > 0),
             criterion="ACS minus random at 10%: >= 2.1 points reproduced, > 0 partial", notebook="06_acs"),
        dict(claim_id="A4", claim="reselecting more often helps at small fractions", source="ACS Tab. 3 (ImageNet, 10%)",
             paper_value="68.8 (R=5) > 68.39 (10) > ... > 62.82 (once)",
             our_value="; ".join(f"R={r}: {m:.2f}" for r, m in zip(intervals.interval, intervals["mean"])),
             status="reproduced" if monotone else ("partial" if order[0] > order[-1] else "not reproduced"),
             criterion="accuracy non-increasing as R grows (once last) reproduced; most frequent above once partial",
             notebook="06_acs"),
        dict(claim_id="A5", claim="the cosine beta schedule is best", source="ACS Tab. 4 (ImageNet)",
             paper_value="cosine first at 10/30/50/70%",
             our_value=f"cosine ranks {rank} of {len(schedules)} ({schedules['mean'].iloc[rank - 1]:.2f}; best "
                       f"{schedules.schedule.iloc[0]} {schedules['mean'].iloc[0]:.2f})",
             status="reproduced" if rank == 1 else "partial" if rank <= 3 else "not reproduced",
             criterion="cosine first reproduced, in the top three partial", notebook="06_acs"),
        dict(claim_id="A6", claim="under 10% label noise ACS matches or beats full data for fractions >= 30%",
             source="ACS Tab. 5, ResNet-18 CIFAR-10", paper_value="89.95-90.23 vs 89.91 (full)",
             our_value="; ".join(f"{f:.0%}: {d:+.2f} vs full" for f, d in above.items()),
             status=("reproduced" if len(above) and (above >= 0).all() else
                     "partial" if (above >= 0).any() else "not reproduced"),
             criterion="ACS minus full data >= 0 at every fraction >= 30% reproduced, at some partial",
             notebook="07_label_noise"),
        _random_baseline_claim(),
    ]


def _random_baseline_claim() -> dict:
    pruning = load_result("pruning.csv")
    table = pruning.pivot_table(index="pruning_rate", columns="method", values="avg_accuracy")
    baselines = [m for m in ("el2n", "tdds") if m in table]
    below = (table[baselines].lt(table["random"], axis=0)).to_numpy()
    share = float(below.mean())
    return dict(claim_id="A15", claim="most prior coreset methods fail to beat random selection in QAT",
                source="ACS introduction", paper_value="qualitative",
                our_value=f"EL2N/TDDS below random in {share:.0%} of (method, pruning rate) cases",
                status=_grade(share, lambda s: s > 0.5, lambda s: s > 0.25),
                criterion="share of EL2N/TDDS results below random: > 50% reproduced, > 25% partial",
                notebook="05_pruning_tdds")


_OUT_OF_REACH = [
    ("E13", "GPU-hour reduction at 60% pruning", "secondary source, TinyImageNet", "8.41x", "TinyImageNet"),
    ("A2", "ACS vs baselines at 10-80% of the data", "ACS Tab. 2, ResNet-18 W4/A4 ImageNet", "e.g. 68.39 at 10%",
     "ImageNet"),
    ("A7", "training time of ACS and baselines", "ACS Tab. 6, ImageNet on 2x RTX 3090", "11.3-53.8 h", "ImageNet"),
    ("A8", "selection cost constant; KD share of training time", "ACS Tab. 7, ImageNet", "3.2 h selection",
     "ImageNet"),
    ("A9", "ACS beats a full-coverage split", "ACS Tab. 8, MobileNetV2 CIFAR-100", "63.37-67.19",
     "coverage split not implemented"),
    ("A10", "ACS without distillation", "ACS Tab. 9, ImageNet", "66.91-70.03", "ImageNet"),
    ("A11", "coresets transfer across architectures", "ACS Tab. 10, MobileNetV2 CIFAR-100", "62.94-66.86",
     "transfer not implemented"),
    ("A12", "coreset overlap between architectures", "ACS Tab. 11, CIFAR-100", "29.0-77.3%",
     "overlap study not implemented"),
    ("A13", "ACS on ViT-B/16 W2/A32 at 10%", "ACS, CIFAR-100", "78.9% (random 74.6)", "pretrained ViT-B/16"),
    ("A14", "ACS on object detection", "ACS Tab. 12, RetinaNet COCO", "24.4-26.7 AP", "COCO detection"),
]


def build_claims(profile: str) -> pd.DataFrame:
    """The claims table from the results CSVs written by notebooks 02-08 at ``profile``."""
    setting = describe_profile(profile)
    rows = [*_cost_claims(), *_cifar100_claims(), _tdds_claim(), *_angle_claims(), _shared_bn_claim(),
            *_acs_claims()]
    for claim_id, claim, source, value, why in _OUT_OF_REACH:
        rows.append(dict(claim_id=claim_id, claim=claim, source=source, paper_value=value, our_value="",
                         status=NOT_RUN, criterion=f"needs {why}", notebook=""))
    frame = pd.DataFrame(rows)
    frame["our_setting"] = [
        "" if status == NOT_RUN else f"{setting}{SETTING_NOTES.get(notebook, '')}"
        for status, notebook in zip(frame.status, frame.notebook)]
    order = {cid: i for i, cid in enumerate(
        ["E1", "E2", "E3", "E4", "E5", "E6", "E7", "E8", "E9", "E10", "E11", "E12", "E13", "P1",
         *[f"A{i}" for i in range(1, 16)]])}
    frame = frame.sort_values("claim_id", key=lambda s: s.map(order)).reset_index(drop=True)
    return frame[COLUMNS]
