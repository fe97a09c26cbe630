"""The studies of notebooks 04 (the 80% pruning table) and 05 (the training cost): EMQ's sampler chosen on the
validation split, the convergence check per bit-width, validation against test ranking, differences per
bit-width, full data for the same budget, the served bit-widths, the short/long sign check of the ACS studies;
hand-made tables, and one smoke run of each study."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emqlib.harness import labels
from emqlib.harness.build import lr_schedule
from emqlib.harness.config import config_hash, profile_config
from emqlib.harness.cost import equal_budget_epochs
from emqlib.harness.runs import is_done, run_path
from emqlib.harness.studies import acs, cost, pruning

FREE, ONCE, TOPK = pruning.SIMPLEST_FIRST  # EMQ's designs, simplest first
RANDOM = pruning.RANDOM


def designs(validation: dict[str, list[float]], test: dict[str, list[float]] | None = None) -> pd.DataFrame:
    """A pruning table of EMQ's designs and two baselines: validation accuracy per seed (test accuracy the same
    unless given), random and full data far ahead of every design on both splits."""
    rows = [dict(method=m, pruning_rate=0.8, seed=s, val_avg_accuracy=v, avg_accuracy=(test or validation)[m][s])
            for m, values in validation.items() for s, v in enumerate(values)]
    rows += [dict(method=m, pruning_rate=r, seed=s, val_avg_accuracy=95.0, avg_accuracy=95.0)
             for m, r in [(RANDOM, 0.8), (labels.FULL_DATA, 0.0)] for s in range(3)]
    return pd.DataFrame(rows)


def test_a_clear_winner_on_validation_is_chosen_whatever_the_baselines_score():
    table = designs({TOPK: [80.0, 81.0, 80.5], FREE: [75.0, 75.5, 75.2], ONCE: [74.0, 74.1, 74.3]})
    choice = pruning.chosen_sampler(table)
    assert (choice["chosen"], choice["best"], choice["runner_up"]) == (TOPK, TOPK, FREE)
    assert choice["tied"] == [TOPK] and choice["seeds"] == 3
    assert choice["difference"] == pytest.approx(np.mean([5.0, 5.5, 5.3]))
    assert 0 < choice["ci_low"] < choice["difference"] < choice["ci_high"]


def test_a_tie_within_the_paired_interval_goes_to_the_simplest_tied_design():
    # top-k leads free scores by 0.5 on average, but not in every seed (the interval reaches 0): a tie; scored once
    # is behind top-k in every seed by 3 points: not tied
    table = designs({TOPK: [80.0, 81.0, 80.5], FREE: [81.0, 79.0, 80.0], ONCE: [77.0, 78.0, 77.5]})
    choice = pruning.chosen_sampler(table)
    assert choice["best"] == TOPK and choice["runner_up"] == FREE
    assert sorted(choice["tied"]) == sorted([TOPK, FREE]) and choice["ci_low"] <= 0 < choice["difference"]
    assert choice["chosen"] == FREE  # the first of SIMPLEST_FIRST among the tied
    # scored once tied with top-k instead (0.6 behind, not in every seed): scored once is simpler than top-k
    table = designs({TOPK: [80.0, 81.0, 80.5], FREE: [77.0, 78.0, 77.5], ONCE: [79.0, 81.3, 79.5]})
    assert pruning.chosen_sampler(table)["chosen"] == ONCE


def test_the_choice_reads_the_validation_split_never_the_test_set():
    # the test set puts scored once first by far; validation puts top-k first by far: validation decides
    validation = {TOPK: [82.0, 82.5, 82.2], FREE: [76.0, 76.5, 76.2], ONCE: [75.0, 75.5, 75.2]}
    test = {TOPK: [70.0, 70.5, 70.2], FREE: [71.0, 71.5, 71.2], ONCE: [85.0, 85.5, 85.2]}
    choice = pruning.chosen_sampler(designs(validation, test))
    assert choice["chosen"] == choice["best"] == TOPK
    assert pruning.chosen_sampler(designs(test, validation))["chosen"] == ONCE  # the splits swapped: the choice too


def regime(final: dict[int, tuple[float, float]], seeds=(0, 1, 2), epochs: int = 15) -> pd.DataFrame:
    """What regime_check returns: per seed the profile's run (its last epoch) and the run of twice the epochs
    (evaluated every 5 epochs); ``final``: bits -> (profile's final accuracy, doubled run's final accuracy), seed s
    adding 0.1 s to the doubled run."""
    rows = []
    for seed in seeds:
        for bits, (short, long) in final.items():
            rows.append(dict(seed=seed, epochs=epochs, epoch=epochs - 1, bits=bits, test_accuracy=short))
            rows += [dict(seed=seed, epochs=2 * epochs, epoch=e, bits=bits, test_accuracy=50.0 + e)
                     for e in range(4, 2 * epochs - 1, 5)]  # on the way: not the final accuracy
            rows.append(dict(seed=seed, epochs=2 * epochs, epoch=2 * epochs - 1, bits=bits,
                             test_accuracy=long + 0.1 * seed))
    return pd.DataFrame(rows)


def test_convergence_is_judged_per_bit_width_where_an_average_would_let_a_collapse_pass():
    # doubling the epochs: three children gain 2 points, the 2-bit child collapses (6 points down): the average
    # gain over the bit-widths, 0, would pass the check; per bit-width three children have not converged
    summary = pruning.convergence_summary(regime({32: (80.0, 82.0), 8: (80.0, 82.0), 4: (79.0, 81.0),
                                                  2: (78.0, 72.0)}))
    assert summary.bits.tolist() == [32, 8, 4, 2] and (summary.seeds == 3).all()
    assert np.mean(summary.gain) < pruning.CONVERGENCE_GAIN  # what an average over the children would see
    assert summary.converged.tolist() == [False, False, False, True] and not summary.converged.all()
    two = summary.set_index("bits").loc[2]
    assert two.gain == pytest.approx(-5.9) and two.ci_high < 0  # the collapse stays visible as a loss
    assert summary.set_index("bits").loc[4, ["profile", "doubled"]].tolist() == pytest.approx([79.0, 81.1])


def test_every_bit_width_converged_when_doubling_gains_less_than_the_threshold():
    summary = pruning.convergence_summary(regime({32: (80.0, 80.2), 2: (75.0, 75.1)}))
    assert summary.converged.all() and summary.gain.tolist() == pytest.approx([0.3, 0.2])
    assert (summary.ci_low < summary.gain).all() and (summary.gain < summary.ci_high).all()


def test_ranking_agreement_compares_the_pruned_arms_only():
    table = pd.DataFrame([dict(method=m, pruning_rate=0.8, seed=s, val_avg_accuracy=v + s, avg_accuracy=t + s)
                          for m, v, t in [("a", 80.0, 70.0), ("b", 79.0, 71.0), ("c", 78.0, 72.0)] for s in (0, 1)]
                         + [dict(method=labels.FULL_DATA, pruning_rate=0.0, seed=0, val_avg_accuracy=50.0,
                                 avg_accuracy=99.0)])
    ranking = pruning.ranking_agreement(table)
    assert ranking.method.tolist() == ["a", "b", "c"]  # full data (rate 0) left out
    assert ranking.val_rank.tolist() == [1, 2, 3] and ranking.test_rank.tolist() == [3, 2, 1]
    assert ranking.val_avg_accuracy.tolist() == [80.5, 79.5, 78.5]
    assert (ranking.spearman == -1.0).all()
    table.loc[table.method == "c", "avg_accuracy"] -= 5.0  # c last on both splits now
    assert pruning.ranking_agreement(table).spearman.iloc[0] == pytest.approx(0.5)


def test_per_bit_width_pairs_by_seed_and_shows_a_difference_carried_by_one_child():
    reference = [dict(method="chosen", seed=s, acc_32=80.0 + s, acc_2=75.0 + s) for s in (0, 1, 2)]
    # the other arm matches at 32 bits and is 4-6 points behind at 2 bits; its rows are in another seed order
    other = [dict(method="other", seed=s, acc_32=80.0 + s, acc_2=70.0 + s - (s - 1)) for s in (2, 0, 1)]
    frame = pruning.per_bit_width(pd.DataFrame(reference + other), "chosen", ["other"]).set_index("bits")
    assert frame.loc[32, ["difference", "ci_low", "ci_high"]].tolist() == pytest.approx([0.0, 0.0, 0.0])
    assert frame.loc[2, "difference"] == pytest.approx(-5.0) and frame.loc[2, "ci_low"] < -5.0 < frame.loc[2, "ci_high"]
    assert (frame.method == "other").all()


def _evaluation(accuracy: dict[int, float], trained=(2, 4, 8, 32)) -> pd.DataFrame:
    return pd.DataFrame([{"bits": b, "accuracy": a, "trained": b in trained} for b, a in accuracy.items()])


def test_served_bits_hand_case():
    # 3: neighbours 2 and 4 average 80, 79 is within 1.5 -> served; 5, 6, 7: neighbours 4 and 8 average 84,
    # 83 served, 82.4 not, 82.5 exactly 1.5 below -> served; 1: its one neighbour (2) is 78, 75 is 3 below -> not
    evaluation = _evaluation({1: 75.0, 2: 78.0, 3: 79.0, 4: 82.0, 5: 83.0, 6: 82.4, 7: 82.5, 8: 86.0, 32: 86.5})
    assert cost.served_bits(evaluation) == (2, 3, 4, 5, 7, 8, 32)
    # 1 bit within 1.5 of 2 bits counts too; a wider gap serves everything
    evaluation = _evaluation({1: 77.0, 2: 78.0, 3: 70.0, 4: 82.0, 8: 86.0, 32: 86.5})
    assert cost.served_bits(evaluation) == (1, 2, 4, 8, 32)
    assert cost.served_bits(evaluation, gap=20.0) == (1, 2, 3, 4, 8, 32)


def test_served_bits_averages_the_seeds_first():
    # one seed serves 3 bits, the other does not; their mean (80 - 1.0 = 79) is within 1.5 of 80
    seeds = [_evaluation({2: 78.0, 3: 80.0, 4: 82.0}), _evaluation({2: 78.0, 3: 78.0, 4: 82.0})]
    assert cost.served_bits(pd.concat(seeds)) == (2, 3, 4)


def test_equal_budget_full_data_trains_like_the_arms_for_fewer_epochs_annealed_over_its_own():
    full = pruning.full_data_configs("cpu", seed=1)
    epochs = profile_config("cpu").optim.epochs
    budget = pruning.full_data_configs("cpu", seed=1, epochs=equal_budget_epochs(epochs, 0.2))
    assert set(full) == {labels.FULL_DATA, labels.FULL_DATA_BITWISE}
    assert set(budget) == {labels.EQUAL_BUDGET, labels.EQUAL_BUDGET_BITWISE}
    joint, bitwise = budget[labels.EQUAL_BUDGET], budget[labels.EQUAL_BUDGET_BITWISE]
    assert joint.optim.epochs == bitwise.optim.epochs == 3 == 0.2 * epochs  # exact at 80% on the cpu profile
    # the same loop and teacher as the pruned arms, every sample; the same seed; only the epochs differ
    arm = pruning.arm_config("cpu", FREE, 0.2, seed=1)
    assert (joint.training.loop, bitwise.training.loop) == ("joint", arm.training.loop) == ("joint", "sequential")
    assert bitwise.training == arm.training and bitwise.training != joint.training
    assert bitwise.selection.fraction == 1.0 and bitwise.selection.rule == "random" and bitwise.seed == joint.seed == 1
    assert bitwise.replace(optim={"epochs": epochs}) == full[labels.FULL_DATA_BITWISE]
    assert joint.replace(optim={"epochs": epochs}) == full[labels.FULL_DATA] == profile_config("cpu", "emq", seed=1)
    # annealed over its own 3 epochs (the trainer sets the rate before every step at its share of the run's
    # epochs), not cut from the 15-epoch schedule, where 3 epochs would end at 90% of the initial rate
    schedule = lr_schedule(bitwise)
    assert bitwise.optim.lr_schedule == arm.optim.lr_schedule == "cosine"
    assert [schedule(e / bitwise.optim.epochs) for e in range(3)] == pytest.approx([1.0, 0.75, 0.25])
    assert schedule(1.0) == pytest.approx(0.0) and lr_schedule(arm)(3 / epochs) == pytest.approx(0.905, abs=1e-3)


def test_an_unknown_arm_is_named_with_the_choices():
    with pytest.raises(ValueError, match="unknown arm 'top-1'; choose one of"):
        pruning.arm_config("cpu", "top-1", 0.2, 0)


def test_the_sign_check_compares_the_two_schedules_per_fraction():
    def frame(acs_minus: dict[float, float], rivals=("random-once",)) -> pd.DataFrame:
        return pd.DataFrame([dict(method=m, fraction=f, seed=s, avg_accuracy=70.0 + (d + s if m == "acs" else 0.0))
                             for f, d in acs_minus.items() for s in (0, 1) for m in ("acs", *rivals)])
    short, long = frame({0.1: 2.0, 0.3: -3.0, 0.5: 1.0}), frame({0.1: 1.0, 0.3: 2.0})
    signs = acs.sign_check(short, long, "random-once")
    assert signs.fraction.tolist() == [0.1, 0.3]  # only the fractions both schedules ran
    assert signs.short.tolist() == [2.5, -2.5] and signs.long.tolist() == [1.5, 2.5]
    assert signs.same_sign.tolist() == [True, False]
    # against several rivals: the best of those each frame has, per seed
    rivals = frame({0.1: 2.0}, ("random-once", "rs2"))
    rivals.loc[rivals.method == "rs2", "avg_accuracy"] = 73.0
    best = acs.sign_check(rivals, long, ["random-once", "rs2", "el2n"])
    assert best.short.tolist() == [-0.5] and best.long.tolist() == [1.5] and not best.same_sign.iloc[0]


def test_the_cpu_profile_is_the_converged_one_and_its_short_schedule_the_old_one():
    long, short = profile_config("cpu"), profile_config("cpu", short=True)
    assert (long.optim.epochs, short.optim.epochs) == (15, 6)
    assert profile_config("smoke", short=True) == profile_config("smoke")  # no short schedule: the full one


@pytest.mark.slow
def test_smoke_studies_of_notebooks_04_and_05(tmp_path, monkeypatch):
    monkeypatch.setenv("EMQ_RUNS_DIR", str(tmp_path / "runs"))
    smoke = profile_config("smoke")
    bits = set(smoke.model.bits)

    plan = pruning.table_plan("smoke", seeds=(0,), arms=(FREE, RANDOM))
    assert not any(is_done(run_path(config)) for _, config in plan)
    checked = pruning.regime_check("smoke", seeds=(0,), alongside=[config for _, config in plan])
    assert all(is_done(run_path(config)) for _, config in plan)  # the table's runs trained in the same call
    assert sorted(checked.epochs.unique()) == [2, 4] and set(checked.bits) == bits
    assert {"seed", "epoch", "test_accuracy", "train_loss", "run", "valid", "invalid_reason"} <= set(checked.columns)
    summary = pruning.convergence_summary(checked)
    assert set(summary.bits) == bits and (summary.seeds == 1).all()
    final = checked[checked.epoch == checked.epochs - 1].pivot_table(index="bits", columns="epochs",
                                                                     values="test_accuracy")
    assert summary.set_index("bits").gain.to_dict() == pytest.approx((final[4] - final[2]).to_dict())

    table = pruning.pruning_table("smoke", seeds=(0,), arms=(FREE, RANDOM))
    assert table.method.tolist() == [FREE, RANDOM, labels.FULL_DATA, labels.FULL_DATA_BITWISE, labels.EQUAL_BUDGET,
                                     labels.EQUAL_BUDGET_BITWISE]
    assert table.pruning_rate.tolist() == [0.8, 0.8, 0.0, 0.0, 0.8, 0.8]
    assert {"val_avg_accuracy", "avg_accuracy", "sample_passes", "optimizer_steps", "final_lr", "run", "valid",
            "invalid_reason", *(f"acc_{b}" for b in bits), *(f"val_acc_{b}" for b in bits)} <= set(table.columns)
    assert table.run.is_unique
    passes = table.set_index("method").sample_passes
    budget = equal_budget_epochs(smoke.optim.epochs, 0.2)  # 1 epoch of 2 at the smoke profile
    assert passes[labels.EQUAL_BUDGET_BITWISE] == passes[labels.FULL_DATA_BITWISE] * budget / smoke.optim.epochs
    assert passes[FREE] == passes[RANDOM] < passes[labels.FULL_DATA_BITWISE]
    # every run annealed to the end of its own schedule, the shorter equal-budget runs included
    assert (table.final_lr < 0.1 * smoke.optim.lr).all()

    trained = []
    real_run_all = cost.run_all

    def recording(configs, *args):
        trained.extend(configs)
        return real_run_all(configs, *args)

    monkeypatch.setattr(cost, "run_all", recording)
    frame = cost.training_cost("smoke", FREE, seeds=(0, 1))
    assert frame.method.tolist() == 2 * [labels.DEDICATED, labels.JOINT, labels.EMQ, labels.FULL_DATA_BITWISE,
                                         labels.emq_coreset(0.2)]
    multi_bit = frame[frame.method.isin([labels.EMQ, labels.emq_coreset(0.2)])]
    assert frame.drop(multi_bit.index)[["served_bits", "speedup_wall_served", "design_pass_ratio"]].isna().all().all()
    untrained = set()
    for _, row in multi_bit.iterrows():
        served = {int(b) for b in row.served_bits.split(",")}
        assert bits <= served
        untrained |= served - bits
        assert row.design_pass_ratio == pytest.approx(len(served) / (len(bits) * row.fraction))
        assert (row.speedup_passes_served > row.speedup_passes) == bool(served - bits)
    assert frame.groupby("method").served_bits.nunique().max() == 1  # chosen once, for every seed
    assert untrained, "the smoke models serve no untrained bit-width: nothing to check per seed"
    # each seed trains and times its own Dedicated model for each untrained served bit-width
    extra = [c for c in trained if c.method == "dedicated" and len(c.model.bits) == 1]
    assert {(c.model.bits[0], c.seed) for c in extra} == {(b, s) for b in untrained for s in (0, 1)}
    for b in untrained:
        hashes = {c.seed: config_hash(c) for c in extra if c.model.bits == (b,)}
        assert hashes[0] != hashes[1]
        assert all((tmp_path / "runs" / h / "done.json").exists() for h in hashes.values())
