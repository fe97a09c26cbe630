"""The converged-regime studies of notebooks 04 and 05: the convergence check, the sampling design
judged on held-out samples, the choice of EMQ's sampler, equal-budget full data in both loops, and
the speed-up over Dedicated on every served bit-width; hand-made cases and smoke runs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emqlib.harness import labels
from emqlib.harness.config import profile_config
from emqlib.harness.studies import cost

SAMPLER = "sampled (tau 1, eps 0.1), free scores"


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


def test_the_chosen_design_is_emqs_best_on_validation_whatever_the_baselines_score():
    design = pd.DataFrame([
        dict(variant="random, re-drawn every epoch", coreset="random", seed=s, avg_accuracy=90.0) for s in (0, 1)] + [
        dict(variant="a", coreset="emq-topk", seed=0, avg_accuracy=80.0),
        dict(variant="a", coreset="emq-topk", seed=1, avg_accuracy=84.0),  # mean 82
        dict(variant="b", coreset="emq-sample", seed=0, avg_accuracy=83.0),
        dict(variant="b", coreset="emq-sample", seed=1, avg_accuracy=81.0),  # mean 82: tie, "a" is listed first
        dict(variant="c", coreset="emq-ccs", seed=0, avg_accuracy=81.9),
        dict(variant=labels.FULL_DATA, coreset="none", seed=0, avg_accuracy=95.0)])
    assert cost.chosen_design(design) == "a"
    design.loc[design.variant == "c", "avg_accuracy"] = 82.1
    assert cost.chosen_design(design) == "c"


def test_equal_budget_configs_spend_the_coresets_sample_passes_in_both_loops():
    configs = cost.equal_budget_configs("cpu", 0.2, seed=1)
    full = profile_config("cpu", "emq", seed=1)
    joint, bitwise = configs[labels.EQUAL_BUDGET], configs[labels.EQUAL_BUDGET_BITWISE]
    epochs = full.optim.epochs
    assert joint.optim.epochs == bitwise.optim.epochs == round(0.2 * epochs) and epochs % 5 == 0  # exact at 80%
    assert (joint.training.loop, bitwise.training.loop) == ("joint", "sequential")
    assert bitwise.selection.fraction == 1.0 and bitwise.selection.rule == "random"
    assert bitwise.seed == joint.seed == 1
    # the bit-wise arm trains like the coreset runs: same teacher, same loop, only the subset differs
    coreset = cost.emq_coreset_config("cpu", SAMPLER, 0.2, 1)
    assert bitwise.training == coreset.training


def test_emq_coreset_config_names_an_unknown_design():
    with pytest.raises(ValueError, match="unknown coreset design 'top-1'; choose one of"):
        cost.emq_coreset_config("cpu", "top-1", 0.2, 0)


def test_the_cpu_profile_is_the_converged_one_and_its_short_schedule_the_old_one():
    long, short = profile_config("cpu"), profile_config("cpu", short=True)
    assert (long.optim.epochs, short.optim.epochs) == (15, 6)
    assert profile_config("smoke", short=True) == profile_config("smoke")  # no short schedule: the full one


@pytest.mark.slow
def test_smoke_studies_of_the_converged_regime(tmp_path, monkeypatch):
    monkeypatch.setenv("EMQ_RUNS_DIR", str(tmp_path / "runs"))
    regime = cost.regime_check("smoke", seeds=(0,))
    assert regime.epochs.tolist() == [2, 4] and regime.gain_over_profile.iloc[0] == 0.0
    assert regime.gain_over_profile.iloc[1] == pytest.approx(regime.avg_accuracy.iloc[1] - regime.avg_accuracy.iloc[0])

    design = cost.coreset_design_study("smoke", seeds=(0,))
    assert {labels.EQUAL_BUDGET, labels.EQUAL_BUDGET_BITWISE, labels.FULL_DATA, "InfoBatch (r 0.5)",
            *cost.DESIGN_VARIANTS} == set(design.variant)
    infobatch = design[design.coreset == "infobatch"].pruning_rate.item()
    assert 0.0 < infobatch < 0.8  # soft pruning reaches its own rate, never the 80% of the others
    assert design.selection_share.between(0, 1).all()

    frame = cost.training_cost("smoke", SAMPLER, seeds=(0,), extra_fractions=(0.4,))
    coreset = frame[frame.method == labels.emq_coreset(0.2)].iloc[0]
    served = tuple(int(b) for b in coreset.served_bits.split(","))
    assert set(profile_config("smoke").model.bits) <= set(served)
    # (b) adds the measured cost of every extra served bit-width's Dedicated model to (a)'s baseline
    extra = [b for b in served if b not in profile_config("smoke").model.bits]
    assert (coreset.speedup_passes_served > coreset.speedup_passes) == bool(extra)
    assert np.isnan(frame[frame.method == labels.DEDICATED].speedup_wall_served).all()
    assert (frame.method == labels.emq_coreset(0.4)).sum() == 1
