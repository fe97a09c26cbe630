"""What each notebook found (emqlib/harness/findings.py), generated from hand-made results (the worlds of
tests/test_claims.py): a sentence per claim of the notebook with its status and interval, an invalid claim said
to be ungraded and why, and the observations of a notebook's own tables only where the tables show them."""
from __future__ import annotations

import pandas as pd
import pytest
from test_claims import CHOSEN, break_runs, write_results
from test_pruning_study import regime

from emqlib.harness import claims, findings, labels
from emqlib.harness.results import load_result, save_result
from emqlib.harness.studies import pruning

GRADING = ("02_shared_bn", "03_gradient_angles", "04_pruning", "05_training_cost", "06_acs", "07_label_noise")
TOPK = "EMQ: top-k EL2N, rescored every R"


@pytest.fixture(autouse=True)
def results_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EMQ_RESULTS_DIR", str(tmp_path))
    return tmp_path


def found(notebook: str) -> tuple[list[str], list[str]]:
    """The verdict bullets and the observation bullets of ``notebook``'s "What we found" cell."""
    text = findings.what_we_found(notebook, "smoke")
    assert text.startswith("## What we found\n\n")
    verdicts, _, notes = text.partition("What the tables above also show:")
    return ([line for line in verdicts.splitlines() if line.startswith("- ")],
            [line for line in notes.splitlines() if line.startswith("- ")])


def verdict(notebook: str, claim_id: str) -> str:
    return next(line for line in found(notebook)[0] if line.startswith(f"- **{claim_id}**"))


@pytest.mark.parametrize("notebook", GRADING)
def test_the_verdicts_name_each_claim_of_the_notebook_with_its_status_and_interval(notebook):
    write_results()
    mine = claims.build_claims("smoke").query("notebook == @notebook")
    lines, _ = found(notebook)
    assert len(lines) == len(mine) > 0
    for line, (_, row) in zip(lines, mine.iterrows()):
        protocol = f" ({row.protocol})" if row.protocol else ""
        assert line.startswith(f"- **{row.claim_id}**{protocol} {row.claim}: **reproduced**. "), line
        assert f", 95% interval [{row.ci_low:+.2f}, {row.ci_high:+.2f}], 3 seeds; paper: {row.paper_value}." in line
        assert line.count("(") == line.count(")") and "Caveats" not in line


def test_one_seed_is_partly_reproduced_fragile_and_without_an_interval():
    write_results(seeds=(0,))
    line = verdict("05_training_cost", "P1")
    assert line.startswith("- **P1** joint training (recursive distillation) above Dedicated (average accuracy): "
                           "**partly reproduced**. joint - Dedicated average accuracy +5.00 points, 1 seed; ")
    assert "interval" not in line and line.endswith("Caveats: fragile: leaving out one seed changes the status.")


def test_a_notebook_without_claims_says_so_and_names_its_failing_runs():
    write_results()
    table = pd.DataFrame({"variant": ["batch extraction, dynamic", "sample extraction, dynamic"], "seed": [0, 0],
                          "fraction": [0.2, 0.2], "valid": [True, True], "invalid_reason": ["", ""]})
    save_result(table, "score_extraction.csv")
    assert findings.what_we_found("08_score_extraction", "smoke") == (
        "## What we found\n\nThis notebook grades no claim of the papers.")
    table.loc[0, ["valid", "invalid_reason"]] = [False, "collapsed child: 2-bit 68.15%"]
    save_result(table, "score_extraction.csv")
    assert findings.what_we_found("08_score_extraction", "smoke") == (
        "## What we found\n\nThis notebook grades no claim of the papers.\n\nWhat the tables above also show:\n\n"
        "- run failing a check: variant batch extraction, dynamic, fraction 0.2, seed 0: collapsed child: 2-bit "
        "68.15%.")


def test_an_invalid_claim_is_not_graded_and_says_why():
    write_results()
    cost = break_runs("training_cost.csv", ["method"], broken={0: [11.0, 10.0, 10.5, 9.8]})
    assert (cost.loc[0, "method"], cost.loc[0, "seed"]) == (labels.DEDICATED, 0)
    why = f"run {cost.run[0]} (method Dedicated, fraction 1.0, seed 0): at chance level (below 32.5%): 32-bit 11.00%"
    p1 = verdict("05_training_cost", "P1")
    assert "**not graded: it rests on a run that fails a check**" in p1 and "reproduced" not in p1
    assert f"Caveats: rests on runs that fail a check: {why}" in p1
    assert "**reproduced**" in verdict("05_training_cost", "E1")  # it reads no Dedicated run
    _, notes = found("05_training_cost")
    assert "- run failing a check: method Dedicated, fraction 1.0, seed 0: at chance level (below 32.5%): 32-bit " \
           "11.00%, 8-bit 10.00%, 4-bit 10.50%, 2-bit 9.80%." in notes


def test_a_collapsed_child_is_told_among_the_pruning_tables_observations():
    write_results()
    pruning_table = load_result("pruning.csv")
    chosen = pruning_table.index[(pruning_table.method == CHOSEN) & (pruning_table.seed == 2)][0]
    assert not any("failing a check" in n for n in found("04_pruning")[1])
    break_runs("pruning.csv", ["method"], collapse=(chosen, 2))
    assert (f"- run failing a check: method {CHOSEN}, pruning_rate 0.8, seed 2: collapsed child: 2-bit 65.20%."
            in found("04_pruning")[1])


def test_a_failing_run_with_a_row_per_bit_width_is_told_once():
    write_results()
    table = load_result("shared_bn.csv")
    run = (table.variant == table.variant.iloc[0]) & (table.seed == table.seed.iloc[0])
    assert run.sum() > 1  # a row per bit-width the run was evaluated at
    save_result(table, "quant_core_check.csv")  # the notebook's other table, here the same runs, all valid
    table["invalid_reason"] = table.invalid_reason.astype(object)
    table.loc[run, "valid"], table.loc[run, "invalid_reason"] = False, "collapsed child: 32-bit 73.33%"
    save_result(table, "shared_bn.csv")
    told = [n for n in found("02_shared_bn")[1] if "failing a check" in n]
    assert told == [f"- run failing a check: variant {table.variant.iloc[0]}, seed {table.seed.iloc[0]}: collapsed "
                    "child: 32-bit 73.33%."]


def save_choice(table: pd.DataFrame) -> dict:
    """EMQ's sampler chosen on ``table`` and saved as notebook 04 saves it."""
    choice = pruning.chosen_sampler(table)
    save_result(pd.DataFrame([{**choice, "tied": str(choice["tied"])}]), "sampler_choice.csv")
    return choice


def test_a_tie_in_the_sampler_choice_is_told_and_a_clear_choice_is_not():
    write_results()
    table = load_result("pruning.csv")
    assert save_choice(table)["tied"] == [CHOSEN]
    assert not any("a tie" in n for n in found("04_pruning")[1])
    # top-k now leads free scores on validation by 0.2 on average, behind it in one seed: a tie
    free = table[table.method == CHOSEN].set_index("seed").val_avg_accuracy
    topk = table.method == TOPK
    table.loc[topk, "val_avg_accuracy"] = (free.loc[table.seed[topk]] + [0.5, -0.3, 0.4]).to_numpy()
    save_result(table, "pruning.csv")
    choice = save_choice(table)
    assert (choice["best"], choice["runner_up"], choice["chosen"]) == (TOPK, CHOSEN, CHOSEN)
    assert (f"- on the validation split the best EMQ design ({TOPK}) beats the runner-up ({CHOSEN}) by +0.20 points "
            f"[{choice['ci_low']:+.2f}, {choice['ci_high']:+.2f}]: a tie, so EMQ's sampler is the simplest of the "
            f"tied designs, {CHOSEN}.") in found("04_pruning")[1]


def test_a_bit_width_that_did_not_converge_or_fell_when_trained_longer_is_named():
    write_results()  # every bit-width converged
    assert not any("converged" in n or "twice as long" in n for n in found("04_pruning")[1])
    save_result(pruning.convergence_summary(regime({32: (80.0, 80.2), 8: (80.0, 80.1), 4: (79.0, 79.1),
                                                    2: (75.0, 77.0)})), "convergence.csv")
    notes = found("04_pruning")[1]
    assert "- not converged at the profile's epochs (doubling them gains 0.5 points or more): 2-bit +2.10." in notes
    save_result(pruning.convergence_summary(regime({32: (80.0, 80.2), 2: (78.0, 72.0)})), "convergence.csv")
    notes = found("04_pruning")[1]
    assert "- worse when trained twice as long: 2-bit -5.90." in notes and not any("not converged" in n for n in notes)


def test_the_wrong_label_share_of_acs_subsets_is_told_when_it_is_high():
    write_results()  # ACS keeps 60 wrong labels per subset: under the training set's share
    assert not any("wrong labels" in n for n in found("07_label_noise")[1])
    noise = load_result("label_noise.csv")
    acs = noise.method == "acs"
    noise.loc[acs, "subset_flipped"] = (0.3 * noise.subset_size[acs]).round().astype(int)
    save_result(noise, "label_noise.csv")
    note = next(n for n in found("07_label_noise")[1] if "wrong labels" in n)
    assert note.startswith("- ACS's subsets hold 3.0x the training set's share of wrong labels (30.0% against 10.0%)")


def test_an_acs_effect_that_changes_sign_between_the_schedules_is_told():
    write_results()
    assert not any("changes sign" in n for n in found("06_acs")[1])
    baselines = load_result("acs_baselines.csv")  # the short schedule; acs_fractions.csv the full one
    baselines.loc[(baselines.method == "acs") & (baselines.fraction == 0.3), "avg_accuracy"] = 69.0
    save_result(baselines, "acs_baselines.csv")
    assert ("- ACS - random (drawn once) changes sign between the short and the full schedule at 30% "
            "(-1.00 short, +5.10 converged).") in found("06_acs")[1]


def test_a_notebook_grades_its_own_claims_whatever_another_notebooks_results_hold():
    write_results()
    # notebook 03's table as an older version of its study wrote it (no model column): 05 does not read it
    save_result(load_result("gradient_angles.csv").drop(columns="model"), "gradient_angles.csv")
    lines, _ = found("05_training_cost")
    assert len(lines) == 5 and all("**reproduced**" in line for line in lines)
    assert findings.what_we_found("01_activation_alignment", "smoke").startswith(
        "## What we found\n\nThis notebook grades no claim of the papers.")


def test_a_partial_claims_line_says_what_more_seeds_could_do():
    claim = pd.Series({"claim_id": "E12", "claim": "untrained bit-widths work", "status": "partial",
                       "our_setting": "cpu profile",
                       "our_value": "largest gap 0.53 points (mean of 3; seed 0: 0.85 points)", "ci_low": -0.18,
                       "ci_high": 1.24, "n_seeds": 3, "fragile": "True", "paper_value": "qualitative",
                       "seeds_to_reproduce": "4 (if they keep these 3 seeds' mean and spread)"})
    assert findings.claim_line(claim) == (
        "- **E12** untrained bit-widths work: largest gap 0.53 points [-0.18, +1.24], 3 seeds, fragile; paper: "
        "qualitative; seeds to reproduce it: 4 (if they keep these 3 seeds' mean and spread)")
    settled = claim.drop("seeds_to_reproduce")  # a claims table written before the column
    assert findings.claim_line(settled).endswith("paper: qualitative")
    read_back = claim.copy()
    read_back["seeds_to_reproduce"] = float("nan")  # an empty cell of claims.csv read back
    assert findings.claim_line(read_back).endswith("paper: qualitative")


def test_a_claim_that_is_not_reproduced_says_how_its_mean_misses():
    claim = pd.Series({"claim_id": "A3b", "claim": "ACS ahead of random", "status": "not reproduced",
                       "protocol": "strongest control", "our_setting": "cpu profile",
                       "our_value": "ACS - random +0.20 points (mean of 3; seed 0: +0.26 points)", "ci_low": 0.07,
                       "ci_high": 0.33, "n_seeds": 3, "fragile": "False", "paper_value": "+4.24 points",
                       "seeds_to_reproduce": float("nan"), "reason": "the mean is on the paper's side, but its effect "
                       "0.20 points is under half the paper's 4.24 points"})
    assert findings.claim_line(claim) == (
        "- **A3b** ACS ahead of random: ACS - random +0.20 points [+0.07, +0.33], 3 seeds; paper: +4.24 points; the "
        "mean is on the paper's side, but its effect 0.20 points is under half the paper's 4.24 points")
    assert findings.claim_sentence(claim) == (
        "- **A3b** (strongest control) ACS ahead of random: **not reproduced**. ACS - random +0.20 points, 95% "
        "interval [+0.07, +0.33], 3 seeds; paper: +4.24 points. Missed: the mean is on the paper's side, but its "
        "effect 0.20 points is under half the paper's 4.24 points.")
    older = claim.copy()
    older["reason"] = float("nan")  # a claims table written before graded rows had a reason
    assert findings.claim_line(older).endswith("paper: +4.24 points")
