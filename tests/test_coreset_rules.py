"""The sampling rules of the coreset design space on hand-made cases: importance sampling, CCS
strata, InfoBatch's soft pruning, and the equal-budget and pruning-rate arithmetic."""
from __future__ import annotations

import pytest
import torch

from emqlib.coreset import ccs_select, class_budgets, random_subset, score_sample, select
from emqlib.harness.baselines import infobatch_prune
from emqlib.harness.cost import equal_budget_epochs, pruning_rate
from emqlib.coreset.select import _strata_budgets

# three classes of unequal size, so that per-class budgets differ (round(0.3 * n_c) = 6, 4, 2)
LABELS = torch.tensor([0] * 20 + [1] * 13 + [2] * 7)
SCORES = torch.rand(len(LABELS), generator=torch.Generator().manual_seed(0)) + 0.05  # distinct, > 0


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def per_class(indices: torch.Tensor, labels: torch.Tensor = LABELS) -> dict[int, int]:
    return {int(c): int((labels[indices] == c).sum()) for c in torch.unique(labels)}


# ---------------------------------------------------------------- importance sampling

def test_score_sample_with_large_tau_is_the_top_k_rule():
    top = select(SCORES, 0.3, LABELS)
    for seed in range(20):
        assert torch.equal(score_sample(SCORES, 0.3, LABELS, tau=1e4, uniform_share=0.0, generator=gen(seed)), top)


def test_score_sample_with_uniform_share_one_is_uniform():
    # scores 1 and 1000: ignoring them, each sample of class c is kept with probability k_c / n_c
    scores = torch.where(torch.arange(len(LABELS)) % 2 == 0, 1.0, 1000.0)
    budgets = class_budgets(LABELS, 0.3)
    draws, g = 1500, gen(0)  # one stream of draws
    counts = torch.zeros(len(LABELS))
    for _ in range(draws):
        kept = score_sample(scores, 0.3, LABELS, tau=1.0, uniform_share=1.0, generator=g)
        assert per_class(kept) == budgets
        counts[kept] += 1
    expected = torch.tensor([budgets[int(c)] / int((LABELS == c).sum()) for c in LABELS])
    # binomial standard deviation <= 0.013 at 1500 draws: 0.055 is over 4 sigma (score-driven: ~0.6 vs 0.3)
    assert (counts / draws - expected).abs().max() < 0.055


def test_score_sample_probabilities_mix_scores_and_uniform():
    # one class of two samples, budget 1: p = (1 - eps) * [1, 3] / 4 + eps / 2
    labels, scores, g = torch.tensor([0, 0]), torch.tensor([1.0, 3.0]), gen(0)
    for eps, p_second in [(0.0, 0.75), (0.5, 0.625)]:
        picks = [int(score_sample(scores, 0.5, labels, 1.0, eps, g)) for _ in range(1500)]
        assert abs(sum(picks) / len(picks) - p_second) < 0.05  # sd <= 0.0125
    # tau = 2: p proportional to [1, 9]
    picks = [int(score_sample(scores, 0.5, labels, 2.0, 0.0, g)) for _ in range(1500)]
    assert abs(sum(picks) / len(picks) - 0.9) < 0.035  # sd 0.0077


def test_score_sample_edge_scores_and_errors():
    labels = torch.tensor([0, 0, 0, 0])
    # zero scores are never drawn while positive ones remain (epsilon = 0)
    for seed in range(10):
        assert score_sample(torch.tensor([0.0, 2.0, 0.0, 1.0]), 0.5, labels, 1.0, 0.0, gen(seed)).tolist() == [1, 3]
    # all scores zero: uniform over the class, still the exact budget
    assert len(score_sample(torch.zeros(4), 0.5, labels, 1.0, 0.0, gen(0))) == 2
    with pytest.raises(ValueError, match="scores >= 0"):
        score_sample(torch.tensor([-1.0, 1, 1, 1]), 0.5, labels, 1.0, 0.1, gen(0))
    with pytest.raises(ValueError, match="uniform_share"):
        score_sample(torch.ones(4), 0.5, labels, 1.0, 1.5, gen(0))
    with pytest.raises(ValueError, match="tau"):
        score_sample(torch.ones(4), 0.5, labels, -1.0, 0.1, gen(0))


# ---------------------------------------------------------------- coverage-centric strata (CCS)

def test_strata_budgets_smallest_first_hand_case():
    # sizes 10, 1, 0, 5 and budget 9: the empty stratum takes 0, the 1-sample one 1 (of floor(9/3) = 3),
    # the 5-sample one floor(8/2) = 4, the last the remaining 4
    assert _strata_budgets([10, 1, 0, 5], 9) == [4, 1, 0, 4]
    assert _strata_budgets([3, 3, 3], 8) == [2, 3, 3]
    assert _strata_budgets([2, 2, 4], 6) == [2, 2, 2]


# one class of 10: the two highest scores (5, 7) are the hardest 20%; the rest spans [0, 1]
CCS_SCORES = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.9, 1.0, 5.0, 7.0])
CCS_LABELS = torch.zeros(10, dtype=torch.long)


def test_ccs_spends_the_budget_over_the_strata_hand_case():
    # k = 2 strata of width 0.5: {0, .1, .2, .3, .4} (5) and {.5, .9, 1} (3)
    for seed in range(10):
        kept = ccs_select(CCS_SCORES, 0.4, CCS_LABELS, hard_share=0.2, strata=2, generator=gen(seed))
        assert len(kept) == 4 and not {8, 9} & set(kept.tolist())  # the hardest 20% are dropped
        assert (kept < 5).sum() == 2 and (kept >= 5).sum() == 2  # the small stratum first: min(3, 4 // 2) = 2
        kept = ccs_select(CCS_SCORES, 0.7, CCS_LABELS, hard_share=0.2, strata=2, generator=gen(seed))
        assert (kept < 5).sum() == 4 and set(kept[kept >= 5].tolist()) == {5, 6, 7}  # min(3, 7 // 2) = 3, then 4
    # k = 3 strata of width 1/3: sizes 4, 2, 2 -> 2 each for a budget of 6
    kept = ccs_select(CCS_SCORES, 0.6, CCS_LABELS, hard_share=0.2, strata=3, generator=gen(0))
    assert [int(((kept >= lo) & (kept < hi)).sum()) for lo, hi in [(0, 4), (4, 6), (6, 8)]] == [2, 2, 2]


def test_ccs_drops_no_more_hard_samples_than_the_budget_allows():
    # budget 9 of 10: only the single hardest sample can be dropped
    kept = ccs_select(CCS_SCORES, 0.9, CCS_LABELS, hard_share=0.2, strata=2, generator=gen(0))
    assert kept.tolist() == list(range(9))
    # beta = 0 and one stratum: a uniform draw from the whole class
    assert len(ccs_select(CCS_SCORES, 0.5, CCS_LABELS, hard_share=0.0, strata=1, generator=gen(0))) == 5
    with pytest.raises(ValueError, match="hard_share"):
        ccs_select(CCS_SCORES, 0.5, CCS_LABELS, hard_share=1.0, strata=2, generator=gen(0))
    with pytest.raises(ValueError, match="strata"):
        ccs_select(CCS_SCORES, 0.5, CCS_LABELS, hard_share=0.1, strata=0, generator=gen(0))


# ---------------------------------------------------------------- budgets

@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.8])
def test_per_class_budgets_are_exact_for_every_rule(fraction):
    budgets = class_budgets(LABELS, fraction)
    rules = {
        "top-k": lambda g: select(SCORES, fraction, LABELS),
        "random": lambda g: random_subset(LABELS, fraction, g),
        "sample": lambda g: score_sample(SCORES, fraction, LABELS, 1.0, 0.1, g),
        "sample-sharp": lambda g: score_sample(SCORES, fraction, LABELS, 50.0, 0.0, g),
        "ccs": lambda g: ccs_select(SCORES, fraction, LABELS, 0.1, 5, g),
        "ccs-many-strata": lambda g: ccs_select(SCORES, fraction, LABELS, 0.3, 50, g),
    }
    for name, rule in rules.items():
        for seed in range(5):
            kept = rule(gen(seed))
            assert per_class(kept) == budgets, (name, seed)
            assert kept.unique().numel() == len(kept) and torch.equal(kept, kept.sort().values), name


# ---------------------------------------------------------------- InfoBatch

def test_infobatch_prunes_only_below_the_mean_and_rescales_the_kept():
    # mean of the seen losses: (0.1 + 0.2 + 0.3 + 1 + 2) / 5 = 0.72 -> samples 0, 1, 2 are well learned;
    # sample 5 is not seen yet and is always kept
    losses = torch.tensor([0.1, 0.2, 0.3, 1.0, 2.0, float("nan")])
    pruned, weight_sums, g = [], [], gen(0)
    for _ in range(4000):
        kept, weights = infobatch_prune(losses, 0.5, g)
        assert set(kept.tolist()) >= {3, 4, 5}
        assert weights[3:].tolist() == [1.0, 1.0, 1.0]
        assert torch.equal(torch.nonzero(weights).flatten(), kept)
        assert set(weights[:3].tolist()) <= {0.0, 2.0}  # dropped, or kept with 1 / (1 - 0.5)
        pruned.append(1 - len(kept) / 6)
        weight_sums.append(float(weights.sum()))
    # achieved pruning rate r * 3/6 = 0.25; the weights are unbiased: E[sum] = 6
    assert abs(sum(pruned) / len(pruned) - 0.25) < 0.01  # sd 0.0034
    assert abs(sum(weight_sums) / len(weight_sums) - 6.0) < 0.05  # sd 0.027


def test_infobatch_keeps_everything_before_any_loss_is_seen():
    kept, weights = infobatch_prune(torch.full((5,), float("nan")), 0.5, gen(0))
    assert kept.tolist() == list(range(5)) and weights.tolist() == [1.0] * 5
    with pytest.raises(ValueError, match="prune_prob"):
        infobatch_prune(torch.zeros(3), 1.0, gen(0))


def test_pruning_rate_and_equal_budget_epochs():
    assert pruning_rate([6, 4, 5], 6) == pytest.approx(1 / 6)
    assert pruning_rate([10, 10], 10) == 0.0
    with pytest.raises(ValueError, match="at least one epoch"):
        pruning_rate([], 10)
    assert equal_budget_epochs(24, 0.2) == 5  # 4.8 epochs of full data
    assert equal_budget_epochs(10, 0.5) == 5
    assert equal_budget_epochs(6, 0.2) == 1
    assert equal_budget_epochs(2, 0.2) == 1  # at least one epoch
    with pytest.raises(ValueError, match="epochs must be an integer"):
        equal_budget_epochs(0, 0.2)
