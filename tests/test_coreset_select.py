import time

import pytest
import torch

from emqlib.coreset import check_fraction, class_budgets, random_subset, select
from emqlib.harness.baselines import kcenter_greedy, moderate_select

BAD_FRACTIONS = [0, 0.0, -0.1, 1.5, float("nan"), True, "0.5", None]


@pytest.mark.parametrize("bad", BAD_FRACTIONS)
def test_bad_fractions_raise_everywhere(bad):
    labels = torch.tensor([0, 0, 1, 1])
    msg = r"fraction must be in \(0, 1\], got .*; e.g. 0.2 keeps 20% of the samples"
    calls = [
        lambda: check_fraction(bad),
        lambda: class_budgets(labels, bad),
        lambda: select(torch.arange(4.0), bad, labels),
        lambda: random_subset(labels, bad, torch.Generator().manual_seed(0)),
        lambda: kcenter_greedy(torch.randn(4, 2), bad, labels, torch.Generator().manual_seed(0)),
        lambda: moderate_select(torch.randn(4, 2), labels, bad),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=msg):
            call()


def test_check_fraction_accepts_valid():
    assert check_fraction(1) == 1.0
    assert check_fraction(0.2) == 0.2


def test_class_budgets():
    labels = torch.tensor([0] * 60 + [1] * 40 + [7])
    assert class_budgets(labels, 0.25) == {0: 15, 1: 10, 7: 1}  # a present class keeps >= 1
    assert class_budgets(labels, 1.0) == {0: 60, 1: 40, 7: 1}


def test_select_keeps_class_proportions_and_direction():
    labels = torch.tensor([0] * 60 + [1] * 40)
    scores = torch.arange(100.0)
    top = select(scores, 0.25, labels)
    assert (labels[top] == 0).sum() == 15 and (labels[top] == 1).sum() == 10
    assert top.tolist() == list(range(45, 60)) + list(range(90, 100))
    low = select(scores, 0.25, labels, largest=False)
    assert low.tolist() == list(range(0, 15)) + list(range(60, 70))


def test_select_global():
    scores = torch.tensor([0.3, 0.9, 0.1, 0.7, 0.5])
    assert select(scores, 0.4, class_balanced=False).tolist() == [1, 3]
    assert select(scores, 0.4, class_balanced=False, largest=False).tolist() == [0, 2]
    assert select(scores, 0.01, class_balanced=False).tolist() == [1]  # at least one sample


def test_select_ties_go_to_lower_index():
    scores = torch.tensor([1.0, 2.0, 2.0, 2.0, 0.0, 0.0])
    assert select(scores, 2 / 6, class_balanced=False).tolist() == [1, 2]
    assert select(scores, 3 / 6, class_balanced=False, largest=False).tolist() == [0, 4, 5]
    labels = torch.tensor([0, 1, 0, 1, 0, 1])
    # class 0: idx 0, 2, 4 with scores 1, 2, 0; class 1: idx 1, 3, 5 with scores 2, 2, 0
    assert select(scores, 1 / 3, labels).tolist() == [1, 2]


def test_select_full_fraction_and_errors():
    labels = torch.tensor([0, 1, 1, 2, 2, 2])
    scores = torch.rand(6)
    assert select(scores, 1.0, labels).tolist() == list(range(6))
    assert select(scores, 1.0, class_balanced=False).tolist() == list(range(6))
    with pytest.raises(ValueError, match="needs labels"):
        select(scores, 0.5)
    with pytest.raises(ValueError, match="NaN"):
        select(torch.tensor([0.1, float("nan")]), 0.5, class_balanced=False)
    with pytest.raises(ValueError, match="labels must have shape"):
        select(scores, 0.5, labels[:5])
    with pytest.raises(ValueError, match="scores must have shape"):
        select(scores.view(2, 3), 0.5, class_balanced=False)


def test_random_subset_seeded_and_balanced():
    labels = torch.tensor([0] * 60 + [1] * 40)
    a = random_subset(labels, 0.25, torch.Generator().manual_seed(1))
    b = random_subset(labels, 0.25, torch.Generator().manual_seed(1))
    c = random_subset(labels, 0.25, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (labels[a] == 0).sum() == 15 and (labels[a] == 1).sum() == 10
    assert a.unique().numel() == 25 and torch.equal(a, a.sort().values)
    g = random_subset(labels, 0.3, torch.Generator().manual_seed(1), class_balanced=False)
    assert g.unique().numel() == 30


# Points 0, 1, 2, 10, 11, 20 with budget 3: the hand-computed greedy result for each start index.
KCENTER_POINTS = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0], [20.0]])
KCENTER_BY_START = {
    0: [0, 3, 5],  # 0 -> 20 -> 10 (10 is 10 from 0; 11 is only 9 from 20)
    1: [1, 3, 5],  # 1 -> 20 -> 10/11 tie at 9 -> lower index 3
    2: [2, 4, 5],  # 2 -> 20 -> 11 (9 from 2) beats 10 (8 from 2)
    3: [0, 3, 5],  # 10 -> 0/20 tie at 10 -> 0 -> 20
    4: [0, 4, 5],  # 11 -> 0 -> 20
    5: [0, 3, 5],  # 20 -> 0 -> 10
}


def test_kcenter_hand_case_1d():
    labels = torch.zeros(6, dtype=torch.long)
    starts = set()
    for seed in range(12):
        start = int(torch.randint(6, (1,), generator=torch.Generator().manual_seed(seed)))
        starts.add(start)
        got = kcenter_greedy(KCENTER_POINTS, 0.5, labels, torch.Generator().manual_seed(seed))
        assert got.tolist() == KCENTER_BY_START[start], (seed, start)
    assert len(starts) > 1


def test_kcenter_per_class_and_duplicates():
    feats = torch.tensor([[0.0], [0.0], [0.0], [5.0], [5.0], [9.0]])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    got = kcenter_greedy(feats, 2 / 3, labels, torch.Generator().manual_seed(0))
    assert (labels[got] == 0).sum() == 2 and (labels[got] == 1).sum() == 2
    assert got.unique().numel() == 4  # identical points are never picked twice
    everything = kcenter_greedy(feats, 1.0, None, torch.Generator().manual_seed(0), class_balanced=False)
    assert everything.tolist() == list(range(6))


def test_kcenter_speed():
    feats = torch.randn(10000, 64, generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    got = kcenter_greedy(feats, 0.2, None, torch.Generator().manual_seed(0), class_balanced=False)
    assert time.perf_counter() - t0 < 5.0
    assert got.unique().numel() == 2000


def test_moderate_hand_case():
    # class 0 (1-D): centre 2, distances 2, 1, 0, 1, 8, their median 1 -> |d - 1| = 1, 0, 1, 0, 7
    # class 1 (2-D, even size): per-dimension median (1, 1) -> distances sqrt2 x3, 3 sqrt2 -> first two
    #   (torch's lower median (0, 0) would instead keep indices 6 and 7)
    feats = torch.tensor(
        [[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [10.0, 0.0]]  # class 0
        + [[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [4.0, 4.0]]  # class 1
    )
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 1])
    assert moderate_select(feats, labels, 0.4).tolist() == [1, 3, 5, 6]
    # budgets 3 and 2: the tie between idx 0 and 2 (|d - 1| = 1) goes to idx 0
    assert moderate_select(feats, labels, 0.6).tolist() == [0, 1, 3, 5, 6]
