"""The claims table: each row is graded from hand-made results CSVs by the one rule of emqlib.harness.grading,
and the README blocks are generated from it."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from emqlib.harness import claims, labels, paths, report
from emqlib.harness.results import save_result

CORESET = "EMQ + bit-wise coreset (20%)"
GRADED = ["E1", "E3", "E4", "E9", "E10", "E11", "E12", "E13", "E14", "E15", "P1", "A1", "A3", "A4", "A5", "A6", "A6b", "A15"]


def write_results(seeds=(0, 1, 2), lead: float = 5.0, jitter: float = 0.1) -> None:
    """Hand-made results in the shapes the notebooks write. ``lead``: how far every compared arm is
    ahead in the paper's direction (negative: behind); seed s adds ``jitter * s``."""
    cost, pruning, angles, gaps, fractions, noise, schedules, intervals = [], [], [], [], [], [], [], []
    for seed in seeds:
        d = lead + jitter * seed
        accuracy = {"Dedicated": 80.0, "Joint (Any-Precision)": 80.0 + d, "EMQ": 80.0 + d,
                    CORESET: 80.0 + d - (0.5 if lead > 0 else 9.0)}
        for method, acc in accuracy.items():
            speed = (10.0 if lead > 0 else 2.0) + jitter * seed if method == CORESET else 1.0
            cost.append(dict(method=method, seed=seed, avg_accuracy=acc, speedup_wall=speed / 2,
                             speedup_wall_served=speed, served_bits="2,3,4,5,6,7,8,32", wall_seconds=30.0,
                             selection_seconds=(0.5 if lead > 0 else 20.0) + jitter * seed))
        cost.append(dict(method="EMQ + bit-wise coreset (40%)", seed=seed, avg_accuracy=80.0,
                         speedup_wall=(6.0 if lead > 0 else 1.0) + jitter * seed,
                         speedup_wall_served=(9.0 if lead > 0 else 1.5) + jitter * seed, served_bits="2,4,8,32"))
        for rate in (0.5, 0.8):
            pruning += [dict(method=m, pruning_rate=rate, seed=seed, avg_accuracy=a, pass_equivalents=48000.0) for m, a in
                        [("random", 70.0), ("tdds", 70.0 - d), ("el2n", 70.0 - d), (labels.EMQ_CORESET, 70.0 + d)]]
        pruning += [dict(method=m, pruning_rate=0.8, seed=seed, avg_accuracy=70.0, pass_equivalents=48000.0)
                    for m in (labels.EQUAL_BUDGET, labels.EQUAL_BUDGET_BITWISE)]
        pruning.append(dict(method="full data", pruning_rate=0.0, seed=seed, avg_accuracy=80.0))
        for epoch in (0, 1):
            for pair in [(32, 8), (8, 2)]:
                for index, layer in [(-1, "all"), (0, "l0"), (1, "l1"), (2, "l2")]:
                    depth = 3 - index if index >= 0 else 0  # deeper layers: smaller angles when lead > 0
                    angles.append(dict(bits_a=pair[0], bits_b=pair[1], layer=layer, layer_index=index, seed=seed,
                                       angle=28.0 - d + np.sign(lead) * depth, epoch=epoch))
        gaps += [dict(variant=v, seed=seed, bits=b, gap=g) for b in (3, 5, 6, 7)
                 for v, g in [("shared BN + correction", (0.2 if lead > 0 else 5.0) + jitter * seed / 5),
                              ("shared BN, no correction", 4.0)]]
        for f in (0.1, 0.2, 0.3, 0.4, 0.5):
            fractions += [dict(method="acs", fraction=f, seed=seed, avg_accuracy=70.0 + d),
                          dict(method="random", fraction=f, seed=seed, avg_accuracy=70.0)]
            noise += [dict(method="acs", fraction=f, seed=seed, avg_accuracy=75.0 + d, subset_flipped=60,
                           subset_size=int(8000 * f)),
                      dict(method="random", fraction=f, seed=seed, avg_accuracy=75.0, subset_flipped=int(800 * f),
                           subset_size=int(8000 * f))]
        fractions.append(dict(method="full data", fraction=1.0, seed=seed, avg_accuracy=75.0))
        noise.append(dict(method="full data", fraction=1.0, seed=seed, avg_accuracy=75.0, subset_flipped=800,
                          subset_size=8000))
        schedules += [dict(schedule=s, seed=seed, avg_accuracy=a) for s, a in
                      [("cosine", 70.0 + d), ("linear", 70.0), ("fixed", 69.0)]]
        intervals += [dict(interval=i, seed=seed, avg_accuracy=a) for i, a in
                      [("1", 70.0 + d), ("2", 70.0 + d / 2), ("once", 70.0)]]
    for frame, name in [(cost, "training_cost"), (pruning, "pruning"), (angles, "gradient_angles"),
                        (gaps, "shared_bn_gaps"), (fractions, "acs_fractions"), (noise, "label_noise"),
                        (schedules, "acs_schedule"), (intervals, "acs_interval")]:
        save_result(pd.DataFrame(frame), f"{name}.csv")


@pytest.fixture(autouse=True)
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EMQ_RESULTS_DIR", str(tmp_path))
    return tmp_path


def row(table: pd.DataFrame, claim_id: str) -> pd.Series:
    return table.set_index("claim_id").loc[claim_id]


def test_every_claim_has_one_row_a_status_and_a_criterion_or_a_reason():
    write_results()
    table = claims.build_claims("smoke")
    expected = ({f"E{i}" for i in range(1, 16)} | {f"A{i}" for i in range(1, 16)} | {"P1", "A6b"})
    assert set(table.claim_id) == expected and table.claim_id.is_unique
    assert list(table.columns) == claims.COLUMNS
    assert set(table.status) <= {"reproduced", "partial", "not reproduced", "not run"}
    run, not_run = table[table.status != "not run"], table[table.status == "not run"]
    assert set(run.claim_id) == set(GRADED)
    assert (run.criterion != "").all() and (run.reason == "").all() and (run.n_seeds == 3).all()
    assert (run.our_setting.str.startswith("smoke profile")).all() and run.our_value.str.contains("seed 2").all()
    assert (not_run.reason != "").all() and (not_run.n_seeds == 0).all() and not_run.fragile.isna().all()
    assert row(table, "E5").reason == "needs CIFAR-100, not available offline"


def test_a_world_where_the_paper_holds_on_three_seeds_is_reproduced_and_stable():
    write_results(seeds=(0, 1, 2))
    table = claims.build_claims("smoke").set_index("claim_id").loc[GRADED]
    assert (table.status == "reproduced").all(), table.status[table.status != "reproduced"]
    assert not table.fragile.astype(bool).any()
    assert (table.ci_low <= table.ci_high).all()


@pytest.mark.parametrize("seeds", [(0,), (0, 1)])
def test_one_or_two_seeds_are_at_most_partial(seeds):
    write_results(seeds=seeds)
    table = claims.build_claims("smoke").set_index("claim_id").loc[GRADED]
    assert (table.status == "partial").all()
    assert (table.n_seeds == len(seeds)).all()
    if len(seeds) == 1:
        assert table.fragile.astype(bool).all() and table.ci_low.isna().all()


def test_a_world_where_the_paper_fails_is_not_reproduced_even_with_few_seeds():
    write_results(seeds=(0, 1), lead=-1.0)
    table = claims.build_claims("smoke").set_index("claim_id").loc[GRADED]
    assert (table.status == "not reproduced").all(), table.status[table.status != "not reproduced"]


def test_joint_below_dedicated_in_every_seed_is_not_reproduced():
    write_results()
    cost = pd.read_csv(paths.results_dir() / "training_cost.csv")
    cost.loc[cost.method == "Joint (Any-Precision)", "avg_accuracy"] = 79.0 + 0.1 * cost.seed
    save_result(cost, "training_cost.csv")
    p1 = row(claims.build_claims("smoke"), "P1")
    assert p1.status == "not reproduced"
    assert "seed 0: -1.00 points, seed 1: -0.90 points, seed 2: -0.80 points" in p1.our_value
    assert p1.ci_high < 0


def test_acs_must_beat_random_at_every_fraction():
    write_results()
    fractions = pd.read_csv(paths.results_dir() / "acs_fractions.csv")
    behind = (fractions.method == "acs") & (fractions.fraction != 0.3)
    fractions.loc[behind, "avg_accuracy"] = 69.0  # ahead at 30% only
    save_result(fractions, "acs_fractions.csv")
    assert row(claims.build_claims("smoke"), "A1").status == "not reproduced"


def test_a_seed_missing_an_arm_is_left_out():
    write_results(seeds=(0, 1, 2, 3))
    pruning = pd.read_csv(paths.results_dir() / "pruning.csv")
    save_result(pruning[~((pruning.seed == 3) & (pruning.method == "tdds"))], "pruning.csv")
    table = claims.build_claims("smoke")
    assert row(table, "E9").n_seeds == 3 and row(table, "E14").n_seeds == 4
    assert "seed 3" not in row(table, "E9").our_value


def test_the_share_below_random_leaves_out_the_full_data_rows():
    write_results(seeds=(0, 1, 2))
    a15 = row(claims.build_claims("smoke"), "A15")
    assert "seed 0: 1.00, seed 1: 1.00, seed 2: 1.00" in a15.our_value
    assert "12 of 12" in a15.our_value and a15.status == "reproduced"


def test_label_noise_reports_random_and_the_wrong_label_rates():
    write_results()
    a6 = row(claims.build_claims("smoke"), "A6")
    assert "random - full data at 30%: +0.00" in a6.our_value
    # ACS keeps 60 wrong labels in 2400 (2.5%, 0.25x the 10% of the training set); random 10% (1.0x)
    assert "acs 0.2/0.2/0.1; random 1.0/1.0/1.0 at 30%/40%/50%" in a6.our_value


def test_a_missing_study_is_not_run_and_names_its_notebook():
    write_results()
    (paths.results_dir() / "acs_interval.csv").unlink()
    a4 = row(claims.build_claims("smoke"), "A4")
    assert a4.status == "not run" and "06_acs.ipynb" in a4.reason


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


def test_readme_claims_block_shows_seeds_interval_and_fragility():
    write_results(seeds=(0, 1))
    save_result(claims.build_claims("smoke"), "claims.csv")
    block = report.claims_section()
    header = next(line for line in block.splitlines() if line.startswith("| claim_id"))
    assert header.split(" | ")[4:] == ["seeds", "95% interval", "status", "fragile |"]
    p1 = next(line for line in block.splitlines() if line.startswith("| P1 "))
    assert "| 2 | [" in p1 and p1.endswith("| partial | no |")
    e2 = next(line for line in block.splitlines() if line.startswith("| E2 "))
    assert "not run: needs a GPU" in e2


def test_readme_blocks_are_replaced_and_a_missing_block_is_an_error():
    text = "intro\n<!-- begin:claims -->\nold\n<!-- end:claims -->\nrest\n"
    new = report.replace_block(text, "claims", "| a |\n|---|\n| 1 |")
    assert new == "intro\n<!-- begin:claims -->\n| a |\n|---|\n| 1 |\n<!-- end:claims -->\nrest\n"
    with pytest.raises(ValueError, match="begin:bench"):
        report.replace_block(text, "bench", "x")


def test_readme_is_rewritten_from_the_repository_results_only(tmp_path, monkeypatch):
    stale = (paths.ROOT / "README.md").read_text().replace("<!-- begin:claims -->\n", "<!-- begin:claims -->\nstale\n")
    readme = tmp_path / "README.md"
    readme.write_text(stale)
    monkeypatch.setattr(report, "README", readme)
    write_results()
    report.update("cpu")  # results in $EMQ_RESULTS_DIR (a scratch folder): README is not theirs to rewrite
    assert readme.read_text() == stale
    monkeypatch.delenv("EMQ_RESULTS_DIR")
    report.update("cpu")
    assert "stale" not in readme.read_text()


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


def test_a_study_without_an_arm_is_not_run_and_says_which():
    write_results()
    pruning = pd.read_csv(paths.results_dir() / "pruning.csv")
    save_result(pruning[pruning.method != "tdds"], "pruning.csv")
    e9 = row(claims.build_claims("smoke"), "E9")
    assert e9.status == "not run" and e9.reason == "the results of 05_pruning_tdds have no 'tdds'"


@pytest.mark.parametrize("lead, minutes, verdict, budget", [(5.0, 50.0, "met", "within the limit, over the target"),
                                                            (-5.0, 70.0, "missed", "over the limit")])
def test_targets_block_grades_each_target_and_the_time_budget(lead, minutes, verdict, budget):
    from emqlib.harness.storage import save_json

    write_results(lead=lead)
    save_json(paths.reproduce_record("cpu", cold=True), {"wall_seconds": minutes * 60})
    block = report.targets_section("cpu")
    assert f"took {minutes:.1f} minutes against a target of 45 and a limit of 60: {budget}." in block
    table = [line.split(" | ") for line in block.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(table) == len(claims.TARGETS) == 5
    assert all(cells[-1].rstrip(" |") == verdict for cells in table), table
    share = next(cells for cells in table if "selection" in cells[0])[2]  # selection seconds over 30 s of wall-clock
    assert share == ("2.00% (1.67, 2.00, 2.33)" if lead > 0 else "67.00% (66.67, 67.00, 67.33)")


def test_targets_block_without_results_says_not_run():
    block = report.targets_section("cpu")
    assert "make reproduce` (empty run cache) took" not in block  # no cold run recorded
    rows = [line for line in block.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == len(claims.TARGETS) and all("| not run |" in line for line in rows)
