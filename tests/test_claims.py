"""The claims table: each row is graded from hand-made results CSVs (in the shapes the studies write) by the one
rule of emqlib.harness.grading, after the rows it read pass the run checks of emqlib.harness.validity; the README
blocks are generated from it."""
from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from emqlib.harness import claims, labels, paths, report, validity
from emqlib.harness.results import load_result, save_result

CORESET = labels.emq_coreset(0.2)
CHOSEN = "EMQ: sampled (tau 1, eps 0.1), free scores"  # EMQ's sampler in the hand-made sampler_choice.csv
TDDS, TDDS_RESCORED, EL2N = "TDDS, static (class-balanced)", "TDDS, re-scored every R", "EL2N, static (class-balanced)"
TOPK = "EMQ: top-k EL2N, rescored every R"
RANDOM_ONCE, RANDOM, RS2 = "random, drawn once", "random, re-drawn every epoch", "RS2 (without replacement)"
EMQ_BITS = (32, 8, 4, 2)  # the bit-widths EMQ's runs train; the ACS setting trains 2 bits
ACS_PRIOR = ("el2n", "forgetting", "tdds", "kcenter", "moderate", "emq-ccs")
ACS_BASELINE_FRACTIONS = (0.1, 0.3, 0.5, 0.8)
UNGRADED = {"E2", "E5", "E6", "E7", "E8", "A14"}  # not run here (GPU, CIFAR-100, ImageNet, detection)
NOT_COMPARABLE = {"E13"}


def run_id(*labels_) -> str:
    """A run hash as the run cache names runs (16 hex digits)."""
    return hashlib.sha256(repr(labels_).encode()).hexdigest()[:16]


def checked(rows: list[dict], arm: list[str], bits=EMQ_BITS) -> pd.DataFrame:
    """A study's table from one row per run (``avg_accuracy`` given): every trained bit-width at the average, a run
    hash, and the run checks of emqlib.harness.validity (none fails unless a test breaks a run)."""
    frame = pd.DataFrame(rows)
    for b in bits:
        frame[f"acc_{b}"] = frame.avg_accuracy
    frame["run"] = [run_id(*r.values()) for r in rows]
    return validity.mark(frame.assign(invalid_reason=""), arm)


def unchecked(rows: list[dict]) -> pd.DataFrame:
    """A table whose rows carry the checks' columns, every run passing."""
    return pd.DataFrame(rows).assign(valid=True, invalid_reason="")


def write_results(seeds=(0, 1, 2), lead: float = 5.0, jitter: float = 0.1) -> None:
    """Hand-made results in the shapes the notebooks write, every run passing its checks. ``lead``: how far every
    compared arm is ahead in the paper's direction (negative: behind); seed s adds ``jitter * s``."""
    holds = lead > 0
    t = {k: [] for k in ("cost", "pruning", "rates", "angles", "trends", "shared", "gaps", "fractions", "baselines",
                         "long", "interval", "schedule", "noise", "noise_long", "cost_acs", "split", "no_kd",
                         "transfer", "overlap", "vit")}
    for seed in seeds:
        d = lead + jitter * seed
        # 05: cost, per seed; Dedicated below the multi-bit models by d
        for method, acc in {labels.DEDICATED: 80.0, labels.JOINT: 80.0 + d, labels.EMQ: 80.0 + d,
                            labels.FULL_DATA_BITWISE: 80.0 + d, CORESET: 80.0 + d - (0.5 if holds else 9.0)}.items():
            row = dict(method=method, seed=seed, fraction=0.2 if method == CORESET else 1.0, avg_accuracy=acc,
                       wall_seconds=30.0, selection_seconds=0.0, speedup_wall=1.0, speedup_passes=1.0)
            if method == CORESET:
                speed = (10.0 if holds else 2.0) + jitter * seed
                row.update(selection_seconds=(0.5 if holds else 20.0) + jitter * seed, speedup_wall=speed / 2,
                           speedup_passes=speed / 1.5, served_bits="2,3,4,5,6,7,8,32", speedup_wall_served=speed,
                           speedup_passes_served=speed * 1.2, design_pass_ratio=10.0)
            elif method == labels.EMQ:
                row.update(served_bits="2,3,4,5,6,7,8,32", speedup_wall_served=1.5, speedup_passes_served=2.0,
                           design_pass_ratio=2.0)
            t["cost"].append(row)
        # 04: the 80% table, full data at 0% and the equal-budget arms at 80%
        arms = {CHOSEN: 70.0 + d, TOPK: 70.0 - d, "EMQ: sampled (tau 1, eps 0.1), scored once": 70.0,
                RANDOM_ONCE: 70.0, RANDOM: 70.0,
                RS2: 70.0, TDDS: 70.0 - d, TDDS_RESCORED: 70.0 - d, EL2N: 70.0 - d,
                labels.EQUAL_BUDGET: 70.0, labels.EQUAL_BUDGET_BITWISE: 70.0, labels.FULL_DATA: 80.0,
                labels.FULL_DATA_BITWISE: 80.0}
        for method, acc in arms.items():
            full = method in (labels.FULL_DATA, labels.FULL_DATA_BITWISE)
            budget = method in (labels.EQUAL_BUDGET, labels.EQUAL_BUDGET_BITWISE)
            t["pruning"].append(dict(method=method, pruning_rate=0.0 if full else 0.8, seed=seed, avg_accuracy=acc,
                                     val_avg_accuracy=acc + 2.0 + (2 * abs(d) if method == CHOSEN else 0.0),
                                     sample_passes=2560 if budget else 12800 if full else 2560,
                                     optimizer_steps=20 if budget and "bit-wise" not in method else 80,
                                     final_lr=1e-5 if not budget else 2e-5))
        # 03: angles per model, seed, epoch, bit pair and layer (deeper layers smaller when the paper holds)
        for model in ("resnet8", "resnet20"):
            for epoch in (0, 1):
                for pair in [(32, 8), (8, 2)]:
                    for index, layer in [(-1, "all"), (0, "l0"), (1, "l1"), (2, "l2")]:
                        depth = 3 - index if index >= 0 else 0
                        t["angles"].append(dict(bits_a=pair[0], bits_b=pair[1], layer=layer, layer_index=index,
                                                angle=28.0 - d + np.sign(lead) * depth, model=model, seed=seed,
                                                epoch=epoch, run=run_id("angles", model, seed)))
            t["trends"].append(dict(model=model, seed=seed, layers=18 if model == "resnet20" else 6,
                                    spearman=-np.sign(lead) * (0.8 + jitter * seed / 5), p_value=0.01))
        # 02: shared BN, the untrained bit-widths' gaps to their trained neighbours
        for variant, gap in [("shared BN + correction", (0.2 if holds else 5.0) + jitter * seed / 5),
                             ("shared BN, no correction", 4.0)]:
            t["shared"] += [dict(variant=variant, seed=seed, bits=b, accuracy=80.0, trained=b in EMQ_BITS,
                                 run=run_id("shared", variant, seed)) for b in (2, 3, 4, 5, 6, 7, 8, 32)]
            t["gaps"] += [dict(variant=variant, seed=seed, bits=b, accuracy=80.0 + gap, neighbours=80.0, gap=gap)
                          for b in (3, 5, 6, 7)]
        # 06: ACS against random (drawn once and re-drawn), every baseline, ablations
        for f in (0.1, 0.2, 0.3, 0.4, 0.5):
            t["fractions"] += [dict(method=m, fraction=f, seed=seed, label_noise=0.0, avg_accuracy=a)
                               for m, a in [("acs", 70.0 + d), ("random-once", 70.0), ("random", 70.0)]]
        t["fractions"].append(dict(method=labels.FULL_DATA, fraction=1.0, seed=seed, label_noise=0.0,
                                   avg_accuracy=75.0))
        baseline = {"acs": 70.0 + d, "random-once": 70.0, "random": 70.0, "rs2": 70.0,
                    **{m: 70.0 - d for m in ACS_PRIOR}}
        for f in ACS_BASELINE_FRACTIONS:
            t["baselines"] += [dict(method=m, fraction=f, seed=seed, avg_accuracy=a) for m, a in baseline.items()]
            selection = 2.0 + 0.05 * (f > 0.3) if holds else 10 * f  # ACS's: the same at every fraction, or not
            t["cost_acs"] += [dict(method=m, fraction=f, seed=seed, selection_seconds=selection if m == "acs" else 0.1,
                                   wall_seconds=20.0, reference_seconds=5.0, selection_forwards=5000,
                                   teacher_share_measured=0.2 if holds else 0.7, teacher_share_passes=0.25)
                              for m in ("acs", "random-once", "el2n")]
        t["baselines"].append(dict(method=labels.FULL_DATA, fraction=1.0, seed=seed, avg_accuracy=75.0))
        if seed == seeds[0]:  # the full-schedule checks run on one seed
            t["long"] += [dict(method=m, fraction=0.1, seed=seed, avg_accuracy=a) for m, a in baseline.items()]
            t["rates"] += [dict(method=m, pruning_rate=r, seed=seed, avg_accuracy=a)
                           for r in (0.5, 0.9) for m, a in [(CHOSEN, 72.0 + d), (RANDOM, 72.0)]]
        t["interval"] += [dict(interval=i, fraction=0.1, seed=seed, avg_accuracy=a)
                          for i, a in [("1", 70.0 + d), ("2", 70.0 + d / 2), ("3", 70.0 + d / 3), ("once", 70.0)]]
        t["schedule"] += [dict(schedule=s, fraction=0.1, seed=seed, avg_accuracy=a)
                          for s, a in [("cosine", 70.0 + d), ("linear", 70.0), ("fixed", 69.0)]]
        for f in (0.3, 0.4, 0.5):
            size = int(8000 * f)
            t["noise"] += [dict(method=m, fraction=f, seed=seed, label_noise=0.1, avg_accuracy=a, subset_flipped=n,
                                subset_size=size)
                           for m, a, n in [("acs", 75.0 + d, 60), ("el2n", 75.0 - d, size // 5),
                                           ("random-once", 75.0, size // 10), ("random", 75.0, size // 10)]]
        t["noise"].append(dict(method=labels.FULL_DATA, fraction=1.0, seed=seed, label_noise=0.1, avg_accuracy=75.0,
                               subset_flipped=800, subset_size=8000))
        if seed == seeds[0]:
            t["noise_long"] += [dict(method=m, fraction=0.3, seed=seed, label_noise=0.1, avg_accuracy=a,
                                     subset_flipped=0, subset_size=2400)
                                for m, a in [("acs", 75.0 + d), ("random-once", 75.0), ("random", 75.0)]]
        for f in (0.1, 0.3, 0.5):
            t["split"] += [dict(method=m, fraction=f, seed=seed, avg_accuracy=70.0 + d if m == "acs" else 70.0)
                           for m in ("acs", "split", "rs2", "random-once", "random")]
            t["no_kd"] += [dict(method=m, fraction=f, seed=seed, distillation="none", avg_accuracy=a)
                           for m, a in [("acs", 70.0 + d), ("el2n", 70.0 - d), ("random-once", 70.0),
                                        ("random", 70.0)]]
        for model, other in [("resnet8", "mobilenetv2"), ("mobilenetv2", "resnet8")]:
            t["transfer"] += [dict(model=model, coreset=c, fraction=0.1, seed=seed, avg_accuracy=a)
                              for c, a in [("own ACS", 70.0 + d), (f"ACS of {other}", 70.0 + d),
                                           ("random-once", 70.0), ("random", 70.0)]]
        t["overlap"] += [dict(epoch=e, bits=2, overlap=(40.0 if holds else 5.0) + jitter * seed,
                              models="resnet8 / mobilenetv2", fraction=0.1, seed=seed) for e in (0, 2, 4)]
        t["vit"] += [dict(method=m, fraction=0.1, seed=seed, avg_accuracy=a, model="vit", width=0.25)
                     for m, a in [("acs", 70.0 + d), ("random-once", 70.0), ("random", 70.0)]]
    acs_bits = (2,)
    tables = {
        "training_cost": checked(t["cost"], ["method"]),
        "pruning": checked(t["pruning"], ["method"]),
        "pruning_rates": checked(t["rates"], ["method", "pruning_rate"]),
        "gradient_angles": unchecked(t["angles"]),
        "depth_trends": pd.DataFrame(t["trends"]),
        "shared_bn": unchecked(t["shared"]),
        "shared_bn_gaps": pd.DataFrame(t["gaps"]),
        "acs_fractions": checked(t["fractions"], ["method", "fraction", "label_noise"], acs_bits),
        "acs_baselines": checked(t["baselines"], ["method", "fraction"], acs_bits),
        "acs_baselines_long": checked(t["long"], ["method", "fraction"], acs_bits),
        "acs_interval": checked(t["interval"], ["interval", "fraction"], acs_bits),
        "acs_schedule": checked(t["schedule"], ["schedule", "fraction"], acs_bits),
        "label_noise": checked(t["noise"], ["method", "fraction", "label_noise"], acs_bits),
        "label_noise_long": checked(t["noise_long"], ["method", "fraction", "label_noise"], acs_bits),
        "acs_cost": pd.DataFrame(t["cost_acs"]),
        "acs_split": checked(t["split"], ["method", "fraction"], acs_bits),
        "acs_no_distillation": checked(t["no_kd"], ["method", "fraction", "distillation"], acs_bits),
        "acs_transfer": checked(t["transfer"], ["model", "coreset", "fraction"], acs_bits),
        "acs_overlap": pd.DataFrame(t["overlap"]),
        "acs_vit": checked(t["vit"], ["method", "fraction", "model", "width"], acs_bits),
    }
    for name, frame in tables.items():
        save_result(frame, f"{name}.csv")
    n = len(seeds)
    save_result(pd.DataFrame([dict(chosen=CHOSEN, best=CHOSEN, runner_up="EMQ: sampled (tau 1, eps 0.1), scored once",
                                   difference=2 * abs(lead), ci_low=2 * abs(lead) - 0.5, ci_high=2 * abs(lead) + 0.5,
                                   tied=str([CHOSEN]), seeds=n)]), "sampler_choice.csv")
    pruned = tables["pruning"][tables["pruning"].pruning_rate > 0].groupby("method", sort=False)[
        ["val_avg_accuracy", "avg_accuracy"]].mean()
    save_result(pruned.assign(val_rank=pruned.val_avg_accuracy.rank(ascending=False),
                              test_rank=pruned.avg_accuracy.rank(ascending=False), spearman=0.9).reset_index(),
                "ranking.csv")
    save_result(pd.DataFrame([dict(bits=b, seeds=n, profile=80.0, doubled=80.2, gain=0.2, ci_low=0.0, ci_high=0.4,
                                   converged=True) for b in EMQ_BITS]), "convergence.csv")


@pytest.fixture(autouse=True)
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EMQ_RESULTS_DIR", str(tmp_path))
    return tmp_path


def row(table: pd.DataFrame, claim_id: str) -> pd.Series:
    return table.set_index("claim_id").loc[claim_id]


def graded_ids() -> list[str]:
    return [c.claim_id for c in claims.CLAIMS if c.metric is not None]


def test_the_hand_made_results_carry_the_labels_the_studies_write():
    from emqlib.harness.studies import acs, pruning

    assert {CHOSEN, TOPK, RANDOM_ONCE, RANDOM, RS2, TDDS, TDDS_RESCORED, EL2N} <= set(pruning.ARMS)
    assert CHOSEN in pruning.EMQ_DESIGNS and TOPK in pruning.EMQ_DESIGNS
    assert set(acs.BASELINES) == {"random-once", "random", "rs2", *ACS_PRIOR}
    assert acs.BASELINE_FRACTIONS == ACS_BASELINE_FRACTIONS


def test_every_claim_has_one_row_a_status_and_a_criterion_or_a_reason():
    write_results()
    table = claims.build_claims("smoke")
    assert list(table.claim_id) == [c.claim_id for c in claims.CLAIMS] and table.claim_id.is_unique
    assert {f"E{i}" for i in range(1, 16)} | {f"A{i}" for i in range(1, 16)} | {"P1", "E14c"} <= set(table.claim_id)
    assert list(table.columns) == claims.COLUMNS
    assert set(table.status) <= {"reproduced", "partial", "not reproduced", "not run", "invalid", "not comparable"}
    graded = table[table.claim_id.isin(graded_ids())]
    assert set(table.claim_id) - set(graded.claim_id) == UNGRADED | NOT_COMPARABLE
    assert (graded.criterion != "").all() and (graded.n_seeds == 3).all()
    # a graded row has a reason only where its mean misses the claim (which way it misses)
    assert ((graded.reason != "") == (graded.status == "not reproduced")).all()
    assert graded.our_setting.str.startswith("smoke profile").all() and graded.our_value.str.contains("seed 2").all()
    apart = table[~table.claim_id.isin(graded_ids())]
    assert (apart.reason != "").all() and (apart.n_seeds == 0).all() and apart.fragile.isna().all()
    assert (apart.criterion == "").all() and (apart.our_value == "").all()
    assert row(table, "E5").reason == "needs CIFAR-100, not available offline"


def test_a_world_where_the_paper_holds_on_three_seeds_is_reproduced_and_stable():
    write_results(seeds=(0, 1, 2))
    table = claims.build_claims("smoke").set_index("claim_id").loc[graded_ids()]
    assert (table.status == "reproduced").all(), table.status[table.status != "reproduced"]
    assert not table.fragile.astype(bool).any()
    assert (table.ci_low <= table.ci_high).all()


@pytest.mark.parametrize("seeds", [(0,), (0, 1)])
def test_one_or_two_seeds_are_at_most_partial(seeds):
    write_results(seeds=seeds)
    table = claims.build_claims("smoke").set_index("claim_id").loc[graded_ids()]
    assert (table.status == "partial").all(), table.status[table.status != "partial"]
    assert (table.n_seeds == len(seeds)).all()
    if len(seeds) == 1:
        assert table.fragile.astype(bool).all() and table.ci_low.isna().all()


def test_a_world_where_the_paper_fails_is_not_reproduced_even_with_few_seeds():
    write_results(seeds=(0, 1), lead=-1.0)
    table = claims.build_claims("smoke").set_index("claim_id").loc[graded_ids()]
    assert (table.status == "not reproduced").all(), table.status[table.status != "not reproduced"]


def test_e13_is_not_comparable_with_its_reason_and_no_grade():
    write_results()
    e13 = row(claims.build_claims("smoke"), "E13")
    assert e13.status == "not comparable" and "cannot be reached by construction" in e13.reason
    assert e13.n_seeds == 0 and np.isnan(e13.ci_low) and e13.our_value == "" and pd.isna(e13.fragile)


def test_each_coreset_claim_comes_in_the_papers_protocol_and_against_the_strongest_control():
    write_results()
    table = claims.build_claims("smoke").set_index("claim_id")
    paper = table[table.protocol == claims.PAPER].index
    assert {"E1", "E9", "E14", "A1", "A2", "A3", "A6b", "A9", "A10", "A11", "A13", "A15"} <= set(paper)
    for claim_id in paper:  # its pair, against the strongest control, from the same source
        control = table.loc["A6c" if claim_id == "A6b" else f"{claim_id}b"]
        assert control.protocol == claims.CONTROL and control.source == table.loc[claim_id, "source"]
        assert control.notebook == table.loc[claim_id, "notebook"] and control.claim != table.loc[claim_id, "claim"]
    assert table.loc["E14c", "protocol"] == table.loc["E15", "protocol"] == claims.CONTROL  # controls alone
    assert (table.loc[["E3", "E4", "E10", "E12", "P1", "A4", "A6", "E13"], "protocol"].fillna("") == "").all()


def test_each_pair_is_graded_against_its_own_baseline():
    write_results()
    pruning = load_result("pruning.csv")
    # EMQ ties random drawn once (it is the arm EMQ must at least match) and loses to RS2 by 2 points
    emq = pruning.loc[pruning.method == CHOSEN].set_index("seed").avg_accuracy
    for arm, behind in [(RANDOM_ONCE, 0.0), (RS2, 2.0)]:
        rows = pruning.method == arm
        pruning.loc[rows, "avg_accuracy"] = emq.loc[pruning.seed[rows]].to_numpy() + behind
    save_result(pruning, "pruning.csv")
    # ACS beats random drawn once at every fraction, not random re-drawn every epoch
    fractions = load_result("acs_fractions.csv")
    fractions.loc[fractions.method == "random", "avg_accuracy"] = 80.0
    save_result(fractions, "acs_fractions.csv")
    table = claims.build_claims("smoke")
    assert row(table, "E14").status == "reproduced" and "+0.00 points" in row(table, "E14").our_value
    assert row(table, "E14c").status == "not reproduced" and row(table, "E14c").ci_high < 0
    assert row(table, "E14b").status == "reproduced"  # random re-drawn every epoch is unchanged
    assert (row(table, "A1").status, row(table, "A1b").status) == ("reproduced", "not reproduced")
    assert "random-once" in row(table, "A1").our_value and "random (re-drawn" in row(table, "A1b").criterion


def break_runs(name: str, arm: list[str], broken: dict[int, list[str]] | None = None,
               collapse: tuple[int, int] | None = None, dataset: str = "fashion-mnist") -> pd.DataFrame:
    """Re-check the runs of result ``name`` as its study does: row i's own failures from
    :func:`validity.run_failures` on the metrics given in ``broken`` (row -> the run's final accuracy per trained
    bit-width), and ``collapse`` (row, bits): that child 10 points below the rest, then :func:`validity.mark`."""
    frame = load_result(name).drop(columns=["valid", "invalid_reason"])
    accuracy = [c for c in frame.columns if c.startswith("acc_")]
    reasons = pd.Series("", index=frame.index)
    for i, final in (broken or {}).items():
        metrics = pd.DataFrame([{"epoch": e, "bits": b, "train_loss": 2.0 - e, "test_accuracy": final[j]}
                                for e in (0, 1) for j, b in enumerate(int(c.removeprefix("acc_")) for c in accuracy)])
        frame.loc[i, accuracy] = final
        reasons[i] = " ; ".join(validity.run_failures(metrics, dataset))
    if collapse:
        i, bits = collapse
        frame.loc[i, f"acc_{bits}"] -= 10.0
    frame["avg_accuracy"] = frame[accuracy].mean(axis=1)
    marked = validity.mark(frame.assign(invalid_reason=reasons), arm)
    save_result(marked, name)
    return marked


def test_a_chance_level_run_and_a_collapsed_child_make_the_claims_that_read_them_invalid():
    write_results()
    cost = load_result("training_cost.csv")
    dedicated = cost.index[(cost.method == labels.DEDICATED) & (cost.seed == 1)][0]
    cost = break_runs("training_cost.csv", ["method"], broken={dedicated: [11.0, 10.0, 10.5, 9.8]})
    pruning = load_result("pruning.csv")
    chosen = pruning.index[(pruning.method == CHOSEN) & (pruning.seed == 2)][0]
    pruning = break_runs("pruning.csv", ["method"], collapse=(chosen, 2))
    # the flags come from the checks: chance level below 32.5% (Fashion-MNIST), a 2-bit child 10 points down
    assert cost.loc[dedicated, "invalid_reason"].startswith("at chance level (below 32.5%): 32-bit 11.00%")
    assert pruning.loc[chosen, "invalid_reason"] == "collapsed child: 2-bit 65.20%"
    assert (~cost.valid).sum() == (~pruning.valid).sum() == 1
    table = claims.build_claims("smoke").set_index("claim_id")
    invalid = set(table.index[table.status == "invalid"])
    # every claim that reads Dedicated's seed 1 (its accuracy or its cost) or EMQ's chosen sampler at seed 2
    assert {"E3", "E4", "P1", "E9", "E9b", "E14", "E14b", "E14c", "E15"} <= invalid
    assert not invalid & {"E1", "E1b", "A1", "A6", "E10", "E12"}  # the other rows pass: graded as before
    dedicated_run, chosen_run = cost.loc[dedicated, "run"], pruning.loc[chosen, "run"]
    p1 = table.loc["P1"]
    assert p1.reason == (f"rests on runs that fail a check: run {dedicated_run} (method Dedicated, fraction 1.0, "
                         f"seed 1): {cost.loc[dedicated, 'invalid_reason']}")
    assert f"run {chosen_run} (method {CHOSEN}, seed 2): collapsed child: 2-bit 65.20%" in table.loc["E9", "reason"]
    # not graded, but measured: the values are shown beside the reason, with no fragility
    assert table.loc["E9", "n_seeds"] == 3 and "seed 2" in table.loc["E9", "our_value"]
    assert table.loc[list(invalid), "fragile"].isna().all()


def test_a_weaker_bit_width_in_every_seed_is_graded_not_refused():
    write_results()
    pruning = load_result("pruning.csv")
    for i in pruning.index[pruning.method == CHOSEN]:  # a property of the method, not a collapse
        pruning = break_runs("pruning.csv", ["method"], collapse=(i, 2))
    assert pruning.valid.all()
    assert row(claims.build_claims("smoke"), "E9").status == "reproduced"


def test_joint_below_dedicated_in_every_seed_is_not_reproduced():
    write_results()
    cost = load_result("training_cost.csv")
    cost.loc[cost.method == labels.JOINT, "avg_accuracy"] = 79.0 + 0.1 * cost.seed
    save_result(cost, "training_cost.csv")
    p1 = row(claims.build_claims("smoke"), "P1")
    assert p1.status == "not reproduced"
    assert "seed 0: -1.00 points, seed 1: -0.90 points, seed 2: -0.80 points" in p1.our_value
    assert p1.ci_high < 0


def test_acs_must_beat_random_at_every_fraction():
    write_results()
    fractions = load_result("acs_fractions.csv")
    behind = (fractions.method == "acs") & (fractions.fraction != 0.3)
    fractions.loc[behind, "avg_accuracy"] = 69.0  # ahead at 30% only
    save_result(fractions, "acs_fractions.csv")
    table = claims.build_claims("smoke")
    assert row(table, "A1").status == row(table, "A1b").status == "not reproduced"
    assert row(table, "A3").status == "not reproduced"  # at 10% ACS is behind


def test_a_seed_missing_an_arm_is_left_out():
    write_results(seeds=(0, 1, 2, 3))
    pruning = load_result("pruning.csv")
    save_result(pruning[~((pruning.seed == 3) & (pruning.method == TDDS))], "pruning.csv")
    table = claims.build_claims("smoke")
    assert row(table, "E9").n_seeds == 3 and row(table, "E9b").n_seeds == row(table, "E14").n_seeds == 4
    assert "seed 3" not in row(table, "E9").our_value.split(";")[0]


def test_the_share_below_random_counts_every_prior_method_case():
    write_results(seeds=(0, 1, 2))
    a15 = row(claims.build_claims("smoke"), "A15")
    # ACS's table: 6 prior methods x 4 fractions x 3 seeds; the 80% table: TDDS (twice), EL2N, EMQ's top-k x 3
    assert "seed 0: 1.00, seed 1: 1.00, seed 2: 1.00" in a15.our_value
    assert "84 of 84" in a15.our_value and a15.status == "reproduced"


def test_label_noise_reports_the_wrong_label_rates():
    write_results()
    a6 = row(claims.build_claims("smoke"), "A6")
    assert "ACS - full data at 30%: +5.10" in a6.our_value
    # ACS keeps 60 wrong labels in 2400 (2.5%, 0.25x the 10% of the training set); random 10% (1.0x)
    assert "acs 0.2/0.2/0.1; random-once 1.0/1.0/1.0; random 1.0/1.0/1.0 at 30%/40%/50%" in a6.our_value


def test_a_missing_study_is_not_run_and_names_its_notebook():
    write_results()
    (paths.results_dir() / "acs_interval.csv").unlink()
    a4 = row(claims.build_claims("smoke"), "A4")
    assert a4.status == "not run" and "06_acs.ipynb" in a4.reason


def test_a_study_without_an_arm_is_not_run_and_says_which():
    write_results()
    pruning = load_result("pruning.csv")
    save_result(pruning[pruning.method != TDDS], "pruning.csv")
    table = claims.build_claims("smoke")
    e9 = row(table, "E9")
    assert e9.status == "not run" and e9.reason == f"the results of 04_pruning have no '{TDDS}'"
    assert row(table, "E9b").status == "reproduced"  # TDDS re-scored is still there


def test_claims_read_csvs_without_the_training_stack():
    code = ("import sys, emqlib.harness.claims; "
            "assert not {'emqlib.harness.studies', 'emqlib.train', 'emqlib.harness.runs'} & set(sys.modules), "
            "sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=paths.ROOT)


def test_a_claim_is_a_metric_or_a_reason():
    with pytest.raises(ValueError, match="the reason it is not run"):
        claims.Claim("X1", "x", "src", "1")
    with pytest.raises(ValueError, match="direction must be one of"):
        claims.Claim("X1", "x", "src", "1", reason="r", direction="exceeds")


def test_the_claims_block_shows_seeds_interval_fragility_and_the_ungraded_with_their_reasons():
    write_results(seeds=(0, 1))
    break_runs("training_cost.csv", ["method"], broken={0: [11.0, 10.0, 10.5, 9.8]})  # Dedicated, seed 0
    save_result(claims.build_claims("smoke"), "claims.csv")
    block = report.claims_section()
    header = next(line for line in block.splitlines() if line.startswith("| claim_id"))
    assert header.split(" | ")[2] == "compared as"
    assert header.split(" | ")[5:] == ["seeds", "95% interval", "status", "fragile |"]
    e1 = next(line for line in block.splitlines() if line.startswith("| E1 "))
    assert "| 2 | [" in e1 and e1.endswith("| partial | no |")
    e2 = next(line for line in block.splitlines() if line.startswith("| E2 "))
    assert "not run: needs a GPU" in e2
    p1 = next(line for line in block.splitlines() if line.startswith("| P1 "))
    assert "| invalid: rests on runs that fail a check: run " in p1 and "at chance level" in p1
    e13 = next(line for line in block.splitlines() if line.startswith("| E13 "))
    assert "| not comparable: the source gives no bit-widths" in e13
    assert "invalid" in block.split("\n")[0] and "not comparable" in block.split("\n")[0]  # counted in the summary


def test_readme_findings_group_the_claims_by_verdict_with_the_ungraded_last():
    write_results()
    break_runs("training_cost.csv", ["method"], broken={0: [11.0, 10.0, 10.5, 9.8]})  # Dedicated, seed 0
    fractions = load_result("acs_fractions.csv")
    fractions.loc[fractions.method == "acs", "avg_accuracy"] = 60.0  # ACS behind random at every fraction
    save_result(fractions, "acs_fractions.csv")
    table = claims.build_claims("smoke")
    save_result(table, "claims.csv")
    groups: dict[str, list[str]] = {}  # each group's title and the claims listed under it
    for line in report.findings_section().splitlines():
        if heading := re.fullmatch(r"\*\*(.+?)\*\* \(\d+\)(?:: (.*))?", line):  # the ungraded: listed in the line
            groups[heading[1]] = heading[2] or []
        elif line.startswith("- **"):
            groups[list(groups)[-1]].append(line.split("**")[1])
    assert list(groups) == ["Holds", "Does not hold here", "Not graded: a run it reads fails a check", "Not comparable",
                            "Not run"]
    assert len(groups["Holds"]) == (table.status == "reproduced").sum()
    assert {"A1", "A1b", "A3", "A3b"} <= set(groups["Does not hold here"]) and "A1" not in groups["Holds"]
    assert groups["Not graded: a run it reads fails a check"] == ["E3", "E4", "P1"]  # they read Dedicated's seed 0
    assert groups["Not comparable"].startswith("E13 (the source gives no bit-widths, baseline or counting")
    a1 = row(table, "A1")
    assert f"- **A1** {a1.claim}: {a1.our_value.split(' (mean of')[0]} [{a1.ci_low:+.2f}, {a1.ci_high:+.2f}], 3 seeds; " \
           "paper: +0.95 to +1.84 points; the mean is on the wrong side of the threshold" in \
        report.findings_section().splitlines()


def test_readme_findings_name_a_child_that_has_not_converged_and_the_claims_it_touches():
    write_results()
    save_result(claims.build_claims("smoke"), "claims.csv")
    converged = pd.DataFrame({"bits": [32, 8, 4, 2], "seeds": 3, "gain": [0.1, 0.2, -0.1, 0.9],
                              "ci_low": [-0.2, -0.1, -0.5, 0.4], "ci_high": [0.4, 0.5, 0.3, 1.4],
                              "converged": [True, True, True, False]})
    save_result(converged, "convergence.csv")
    line = next(l for l in report.findings_section().splitlines() if l.startswith("**The regime.**"))
    assert "the 2-bit child gains 0.5 points or more" in line and "2-bit +0.90 [+0.40, +1.40]" in line
    assert "(E1, E1b, E3, E4, E9," in line and "before training has converged for it" in line  # graded claims
    save_result(converged.assign(converged=[False, True, True, False]), "convergence.csv")
    line = next(l for l in report.findings_section().splitlines() if l.startswith("**The regime.**"))
    assert "the 32-bit and 2-bit children gain 0.5 points or more" in line and "converged for them" in line
    save_result(converged.assign(gain=0.1, converged=True), "convergence.csv")
    line = next(l for l in report.findings_section().splitlines() if l.startswith("**The regime.**"))
    assert "gains under 0.5 points at every trained bit-width" in line


def test_evidence_targets_are_measured_from_the_results_and_marked_met_or_missed():
    statuses = ["reproduced"] * 7 + ["not reproduced"] * 2 + ["partial", "not run", "not comparable"]
    seeds = [3] * 8 + [2] + [3, 0, 0]  # the second "not reproduced" rests on 2 seeds: not settled
    save_result(pd.DataFrame({"claim_id": [f"C{i}" for i in range(12)], "status": statuses, "n_seeds": seeds}),
                "claims.csv")
    save_result(pd.DataFrame({"bits": [32, 2], "seeds": 3, "gain": [0.2, 0.9]}), "convergence.csv")
    save_result(pd.DataFrame({"method": ["a", "b"], "spearman": 0.75}), "ranking.csv")
    lines = report.evidence_lines()
    assert lines == [
        "- graded claims settled (reproduced or not reproduced, on at least 3 seeds) (> 80%): 80% (8 of 10 graded "
        "rows): **missed**",  # 80% is not more than 80%
        "- gain of each trained bit-width from twice the epochs (mean over seeds) (< 0.5 points): 32-bit +0.20, "
        "2-bit +0.90 over 3 seeds: **missed by 2-bit**",
        "- Spearman correlation of the pruned arms' validation and test ranks (> 0.8): 0.75 over 2 arms: **missed**"]
    save_result(pd.DataFrame({"bits": [32, 2], "seeds": 3, "gain": [0.2, 0.4]}), "convergence.csv")
    save_result(pd.DataFrame({"method": ["a", "b"], "spearman": 0.85}), "ranking.csv")
    assert [line.rsplit(" ", 1)[-1] for line in report.evidence_lines()[1:]] == ["**met**", "**met**"]
    assert "**met**" in report.targets_section("cpu").splitlines()[-1]


def test_the_settled_target_says_what_more_seeds_could_settle():
    statuses = ["reproduced"] * 7 + ["not reproduced", "partial", "partial", "not run"]
    more = [""] * 8 + ["4 (if they keep these 3 seeds' mean and spread)", "none (seed 2 is against the paper's "
                       "direction)", ""]
    save_result(pd.DataFrame({"claim_id": [f"C{i}" for i in range(11)], "status": statuses, "n_seeds": [3] * 10 + [0],
                              "seeds_to_reproduce": more}), "claims.csv")
    line = report.evidence_lines()[0]
    assert line.startswith("- graded claims settled (reproduced or not reproduced, on at least 3 seeds) (> 80%): 80% "
                           "(8 of 10 graded rows): **missed**. Of the 2 partial rows, more seeds could reproduce 1 "
                           "(C8 4 seeds in all, if they keep the mean and spread of the seeds run), which would settle "
                           "90%; no number of seeds reproduces the other 1 (C9: ")


def test_the_documents_are_rewritten_from_the_repository_results_only(tmp_path, monkeypatch):
    stale = {}
    for name, block in [("README", "findings"), ("ENGINEERING", "claims")]:  # copies: the repository's stay as they are
        text = getattr(report, name).read_text().replace(f"<!-- begin:{block} -->\n", f"<!-- begin:{block} -->\nstale\n")
        copy = tmp_path / f"{name}.md"
        copy.write_text(text)
        monkeypatch.setattr(report, name, copy)
        stale[copy] = text
    write_results()
    report.update("cpu")  # results in $EMQ_RESULTS_DIR (a scratch folder): the documents are not theirs to rewrite
    assert all(copy.read_text() == text for copy, text in stale.items())
    monkeypatch.delenv("EMQ_RESULTS_DIR")
    report.update("cpu")
    assert all("stale" not in copy.read_text() for copy in stale)


def test_markdown_table_escapes_pipes():
    table = report.markdown_table(pd.DataFrame({"a": ["x|y"], "b": [1.5]}))
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 1.5 |"]


def test_bench_block_reads_the_seed_and_the_target_from_columns():
    bench = pd.DataFrame({"metric": ["speedup_wallclock", "speedup_wallclock_served", "quant_step_ratio"],
                          "value": [2.5, 5.6, 1.3], "unit": ["x", "x", "x"], "seed": [1, 1, None],
                          "what": ["Dedicated over emq+coreset", "served", "8-bit step"]})
    save_result(bench, "bench.csv")
    lines = report.bench_section().splitlines()
    assert lines[0] == "| metric | value | unit | seed | target | what |"
    assert "| quant_step_ratio | 1.3 | x |  | < 1.25x: missed | 8-bit step |" in lines
    assert "| speedup_wallclock | 2.5 | x | 1 |  | Dedicated over emq+coreset |" in lines
    assert not any(line.startswith("| speedup_wallclock_served") for line in lines)  # not in the summary


def test_bench_block_tabulates_the_export_rows_per_bit_width():
    rows = [("export_size", 332475, None, None, "PyTorch fake-quant"),
            ("export_packed_size", 37482, 2, None, "onnxruntime qdq"),
            ("export_size", 108123, 2, None, "onnxruntime qdq"),
            ("export_packed_size", 39000, 2, None, "onnxruntime integer"),
            ("export_latency", 3.5, 2, 1, "PyTorch fake-quant"),
            ("export_latency", 0.125, 2, 1, "onnxruntime qdq"),
            ("export_latency", 0.11, 32, 1, "onnxruntime float"),
            ("export_shift_cost", 1.02, 2, 1, "onnxruntime integer")]
    save_result(pd.DataFrame(rows, columns=["metric", "value", "bits", "batch", "runtime"]).assign(
        unit="ms", what="", seed=None), "bench.csv")
    block = report.bench_section()
    table = block[block.index("| bits |"):].splitlines()
    assert table[0] == "| bits | weights packed (bytes) | PyTorch fake-quant, batch 1 (ms) | onnxruntime qdq, batch 1 (ms) |"
    assert table[2] == "| 2 | 37,482 | 3.5 | 0.125 |"
    assert table[3] == "| 32 |  |  | 0.11 |"


@pytest.mark.parametrize("lead, minutes, verdict, budget", [(5.0, 70.0, "met", "within the limit, over the target"),
                                                            (-5.0, 80.0, "missed", "over the limit")])
def test_targets_block_grades_each_target_and_the_time_budget(lead, minutes, verdict, budget):
    from emqlib.harness.storage import save_json

    write_results(lead=lead)
    save_json(paths.reproduce_record("cpu", cold=True), {"wall_seconds": minutes * 60})
    block = report.targets_section("cpu")
    assert f"took {minutes:.1f} minutes against a target of 60 and a limit of 75: {budget}." in block
    table = [line.split(" | ") for line in block.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(table) == len(claims.TARGETS) == 5
    assert all(cells[-1].rstrip(" |") == verdict for cells in table), table
    share = next(cells for cells in table if "selection" in cells[0])[2]  # selection seconds over 30 s of wall-clock
    assert share == ("2.00% (1.67, 2.00, 2.33)" if lead > 0 else "67.00% (66.67, 67.00, 67.33)")


def test_a_target_that_reads_a_failing_run_is_invalid_never_met():
    write_results()
    cost = break_runs("training_cost.csv", ["method"], broken={0: [11.0, 10.0, 10.5, 9.8]})  # Dedicated, seed 0
    table = [line.split(" | ") for line in report.targets_section("cpu").splitlines() if line.startswith("| ")][1:]
    verdicts = {cells[0].lstrip("| "): cells[-1].rstrip(" |") for cells in table}
    served = next(v for t, v in verdicts.items() if "every served bit-width" in t)  # T5 reads Dedicated's cost
    assert served.startswith(f"invalid: run {cost.run[0]} (method Dedicated, fraction 1.0, seed 0): at chance level")
    assert sum(v == "met" for v in verdicts.values()) == 4  # the others read no Dedicated run


def test_targets_block_without_results_says_not_run():
    block = report.targets_section("cpu")
    assert "make reproduce` (empty run cache) took" not in block  # no cold run recorded
    rows = [line for line in block.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == len(claims.TARGETS) and all("| not run |" in line for line in rows)
