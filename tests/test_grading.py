"""The grading rule, its t-interval and its leave-one-out check, on hand-made per-seed values."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from emqlib.harness import grading, stats


def _t_cdf_above_zero(q: float, df: int) -> float:
    """P(0 < T < q) for Student's t with ``df`` degrees of freedom, by the trapezoid rule on its density."""
    t = np.linspace(0.0, q, 400_001)
    log_c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    density = np.exp(log_c - (df + 1) / 2 * np.log1p(t * t / df))
    return float(np.sum((density[1:] + density[:-1]) / 2) * (t[1] - t[0]))


@pytest.mark.parametrize("df", sorted(stats.T_975))
def test_t_table_is_the_975_quantile_to_4_decimals(df):
    q = stats.T_975[df]
    assert _t_cdf_above_zero(q - 5e-5, df) < 0.475 < _t_cdf_above_zero(q + 5e-5, df)


def test_t_quantile_between_rows_takes_the_row_below():
    assert stats.t_quantile_975(2) == 4.3027
    assert stats.t_quantile_975(45) == stats.T_975[40]
    assert stats.t_quantile_975(1000) == stats.T_975[120]
    with pytest.raises(ValueError, match="2 values"):
        stats.t_quantile_975(0)


def test_t_interval_by_hand():
    # [1, 2, 3]: mean 2, s = 1, half-width t_{0.975,2} / sqrt(3) = 4.3027 / 1.7320508 = 2.4841650
    mean, low, high = stats.t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert low == pytest.approx(2.0 - 2.4841650, abs=1e-7) and high == pytest.approx(2.0 + 2.4841650, abs=1e-7)
    assert stats.t_interval([1.0, np.nan, 2.0, 3.0]) == (mean, low, high)
    one = stats.t_interval([4.0])
    assert one[0] == 4.0 and math.isnan(one[1]) and math.isnan(one[2])


def test_spearman_and_depth_trend():
    assert stats.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    # ranks [1, 2, 3, 4] vs [4, 2, 1, 3]: 1 - 6 * 14 / (4 * 15) = -0.4
    assert stats.spearman([1, 2, 3, 4], [82.73, 82.21, 81.61, 82.69]) == pytest.approx(-0.4)
    angles = pd.DataFrame({"epoch": [0, 0, 1, 1, 1], "layer_index": [0, 1, -1, 0, 1],
                           "angle": [1.0, 9.0, 50.0, 9.0, 1.0]})
    assert stats.depth_trend(angles) == pytest.approx(-1.0)  # last epoch only, the whole-model row left out


def status(values, direction="beats", threshold=0.0, paper_effect=None) -> str:
    return grading.grade(values, direction, threshold, paper_effect).status


def test_a_clear_three_seed_win_is_reproduced_with_its_interval():
    verdict = grading.grade(pd.Series([2.0, 2.2, 2.1], index=[0, 1, 2]), "beats", paper_effect=3.0)
    assert verdict.status == "reproduced" and verdict.n_seeds == 3
    half = 4.3027 * 0.1 / math.sqrt(3)
    assert verdict.mean == pytest.approx(2.1) and verdict.ci_low == pytest.approx(2.1 - half)
    assert verdict.ci_high == pytest.approx(2.1 + half)


@pytest.mark.parametrize("values", [[-1.0, -2.0, -1.5], [-1.0, 2.0, -3.0], [-0.01], [-5.0, -5.1, -4.9, -5.0]])
def test_the_wrong_direction_is_never_partial(values):
    assert status(values) == "not reproduced"
    assert status(values, paper_effect=0.1) == "not reproduced"


@pytest.mark.parametrize("values", [[5.0], [5.0, 5.1]])
def test_one_or_two_seeds_are_never_reproduced(values):
    assert status(values) == "partial"
    assert status(values, "above", 1.0) == "partial"
    assert status(values, "matches", 10.0) == "partial"


def test_nan_rows_are_excluded():
    verdict = grading.grade([2.0, np.nan, 2.2, 2.1], "beats")
    assert verdict.n_seeds == 3 and verdict.status == "reproduced"
    assert grading.grade([np.nan, np.nan], "beats").status == "not run"


def test_an_interval_reaching_zero_or_a_seed_against_is_partial():
    assert status([0.5, 3.0, 3.2]) == "partial"  # interval [-1.50, 5.97]
    assert status([0.5, 3.0, 3.2], paper_effect=4.0) == "partial"  # mean 2.23 >= 4 / 2
    # every condition holds but one seed is against: partial (the mean is on the paper's side)
    assert status([3.0, 3.0, 3.0, 3.0, 3.0, -0.1]) == "partial"


def test_an_effect_under_half_the_papers_is_not_reproduced_however_tight():
    # the paper's direction in every seed, interval [1.85, 2.35] clear of 0, but 2.1 < 5 / 2
    assert status([2.0, 2.2, 2.1], paper_effect=5.0) == "not reproduced"
    assert status([2.0, 2.2, 2.1], paper_effect=4.2) == "reproduced"  # 2.1 = 4.2 / 2: half is enough
    assert status([5.0], paper_effect=20.0) == "not reproduced"  # one seed: the mean misses, never partial
    # measured from the threshold: 8.0 is 2.0 above 6.0, under half of 5.0; 30% overlap is 20 above a 10% chance
    assert status([8.0, 8.1, 7.9], "above", 6.0, paper_effect=5.0) == "not reproduced"
    assert status([30.0, 31.0, 29.0], "above", 10.0, paper_effect=19.0) == "reproduced"
    assert status([20.0, 21.0, 22.0], "below", 28.0, paper_effect=20.0) == "not reproduced"  # 7 < 10
    # "matches" states a tolerance, not an effect: no size condition
    assert status([0.1, 0.2, 0.15], "matches", 1.0) == "reproduced"


def test_why_not_reproduced_says_which_way_the_mean_misses():
    assert grading.why_not_reproduced([-1.0, -2.0, -1.5], "beats") == "the mean is on the wrong side of the threshold"
    assert grading.why_not_reproduced([1.5, 1.6, 1.7], "matches", 1.0) == "the mean is outside the tolerance"
    # mean 0.20, paper 4.24: the paper's side, a twentieth of its effect
    assert grading.why_not_reproduced([0.26, 0.18, 0.16], "beats", paper_effect=4.24, unit=" points") == \
        "the mean is on the paper's side, but its effect 0.20 points is under half the paper's 4.24 points"
    assert grading.why_not_reproduced([16.6, 16.5, 16.7], "above", 10.0, paper_effect=19.0, unit="%") == \
        "the mean is on the paper's side, but its effect 6.60% is under half the paper's 19%"
    for values in ([2.0, 2.2, 2.1], [0.5, 3.0, 3.2]):  # reproduced, partial
        assert grading.why_not_reproduced(values, "beats") == ""


def test_matches_needs_the_whole_interval_inside_the_tolerance():
    assert status([0.1, 0.2, 0.15], "matches", 1.0) == "reproduced"
    # every seed within 1 point, but not the interval 0.03 ± 2.24: never reproduced (the mean is: partial)
    assert status([0.1, -0.9, 0.9], "matches", 1.0) == "partial"
    assert status([1.5, 1.6, 1.7], "matches", 1.0) == "not reproduced"


def test_thresholds_above_and_below():
    assert status([20.0, 21.0, 20.5], "below", 28.0) == "reproduced"
    assert status([30.0, 44.0, 40.0], "below", 28.0) == "not reproduced"
    assert status([8.0, 8.1, 8.2], "above", 7.09) == "reproduced"
    # non-inferiority: A - B > -0.5 points
    assert status([-0.2, -0.1, -0.15], "above", -0.5) == "reproduced"
    assert status([-3.8, -9.2], "above", -0.5) == "not reproduced"


def test_a_status_that_hangs_on_one_seed_is_fragile():
    seeds = [0, 1, 2]
    # each pair keeps a tight interval (2.1 ± 12.706 * 0.141 / 1.414 = [0.83, 3.37]): stable
    assert not grading.is_fragile(pd.Series([2.0, 2.2, 2.1], index=seeds), "beats")
    # partial with all three; without seed 0 the other two are reproduced (seed minimum lowered to 2)
    assert grading.is_fragile(pd.Series([0.5, 3.0, 3.2], index=seeds), "beats")
    # partial on two seeds, one of which is against: without it the status changes
    assert grading.is_fragile(pd.Series([1.0, -0.5], index=[0, 1]), "beats")
    assert not grading.is_fragile(pd.Series([1.0, 0.5], index=[0, 1]), "beats")
    # one seed: leaving it out leaves nothing
    assert grading.is_fragile(pd.Series([5.0], index=[0]), "beats")
    assert not grading.is_fragile(pd.Series([np.nan], index=[0]), "beats")


def test_four_seeds_keep_the_three_seed_minimum_when_one_is_left_out():
    values = pd.Series([2.0, 2.2, 2.1, 2.15], index=range(4))
    assert grading.grade(values, "beats").status == "reproduced"
    assert not grading.is_fragile(values, "beats")


def test_seeds_to_reproduce_projects_the_mean_and_spread_by_hand():
    # 1, 2, 3: mean 2, s 1; 3 seeds: 2 - 4.3027/sqrt(3) = -0.48 (partial); 4: 2 - 3.1824/2 = +0.41 (clears 0)
    assert grading.seeds_to_reproduce(pd.Series([1.0, 2.0, 3.0]), "beats") == \
        "4 (if they keep these 3 seeds' mean and spread)"
    # -0.57, -0.10, -0.44 below 0: mean -0.37, s 0.2427; 4 seeds: half 0.386 (not clear), 5: half 0.301
    assert grading.seeds_to_reproduce(pd.Series([-0.57, -0.10, -0.44]), "below").startswith("5 (")
    # nine seeds at 0.001 and one at 1: mean 0.10, s 0.32: about 40 seeds would be needed
    assert grading.seeds_to_reproduce(pd.Series([0.001] * 9 + [1.0]), "beats").startswith("more than 30 (")
    assert grading.seeds_to_reproduce(pd.Series([0.5]), "beats").startswith("at least 3 (")


def test_no_number_of_seeds_reproduces_a_seed_against():
    against = pd.Series([-0.61, -0.60, -1.03], index=[0, 1, 2])
    assert grading.seeds_to_reproduce(against, "above", -1.0) == \
        "none (seed 2 is against the paper's direction)"
    assert grading.seeds_to_reproduce(pd.Series([0.3, -0.2, 0.25, -0.1]), "beats") == \
        "none (seeds 1, 3 are against the paper's direction)"
    # an effect under half the paper's is not reproduced, so not a partial row that seeds could settle
    small = pd.Series([0.26, 0.18, 0.16])
    assert grading.grade(small, "beats").status == "reproduced"
    assert grading.seeds_to_reproduce(small, "beats", paper_effect=4.24) == ""


@pytest.mark.parametrize("values", [[1.0, 1.1, 1.2], [-1.0, 0.2, -0.5]])
def test_settled_statuses_need_no_more_seeds(values):
    assert grading.seeds_to_reproduce(pd.Series(values), "beats") == ""


def test_bad_directions_are_refused():
    with pytest.raises(ValueError, match="direction must be one of"):
        grading.grade([1.0], "exceeds")
    with pytest.raises(ValueError, match="use 'above'"):
        grading.grade([1.0], "beats", 2.0)
    with pytest.raises(ValueError, match="positive tolerance"):
        grading.grade([1.0], "matches", 0.0)


def test_criterion_states_the_rule_with_its_numbers():
    text = grading.criterion("beats", 0.0, 4.43, "EMQ - TDDS", " points")
    assert "EMQ - TDDS > 0" in text and ">= 3 seeds" in text and ">= 2.21 points (half the paper's 4.43)" in text
    assert "|gap| <= 1 points" in grading.criterion("matches", 1.0, None, "gap", " points")
