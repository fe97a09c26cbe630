import math

import pytest
import torch

from emqlib.coreset import BETA_SCHEDULES, acs_beta, acs_score, ds, evs, grand_last_layer_score
from emqlib.harness.baselines import forgetting_score, tdds_score


def test_evs_hand_values():
    # uniform softmax (1/3 each) vs one-hot [0, 1, 0]
    # softmax([ln 2, 0, 0]) = [1/2, 1/4, 1/4] vs one-hot [1, 0, 0]
    logits = torch.tensor([[0.0, 0.0, 0.0], [math.log(2.0), 0.0, 0.0]])
    targets = torch.tensor([1, 0])
    expected = torch.tensor(
        [math.sqrt((1 / 3) ** 2 + (2 / 3) ** 2 + (1 / 3) ** 2), math.sqrt(0.5**2 + 0.25**2 + 0.25**2)]
    )
    torch.testing.assert_close(evs(logits, targets), expected)


def test_ds_hand_values_and_zero_for_identical():
    # [1/3, 1/3, 1/3] vs [1/2, 1/4, 1/4]
    logits = torch.tensor([[0.0, 0.0, 0.0]])
    teacher = torch.tensor([[math.log(2.0), 0.0, 0.0]])
    expected = math.sqrt((1 / 2 - 1 / 3) ** 2 + 2 * (1 / 4 - 1 / 3) ** 2)
    torch.testing.assert_close(ds(logits, teacher), torch.tensor([expected]))
    same = torch.randn(5, 3)
    torch.testing.assert_close(ds(same, same.clone()), torch.zeros(5))


def test_acs_score_endpoints_and_mix():
    g = torch.Generator().manual_seed(0)
    logits, teacher = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    targets = torch.tensor([0, 1, 2, 3, 0, 1])
    e, d = evs(logits, targets), ds(logits, teacher)
    torch.testing.assert_close(acs_score(logits, teacher, targets, 1.0), e)
    torch.testing.assert_close(acs_score(logits, teacher, targets, 0.0), d)
    torch.testing.assert_close(acs_score(logits, teacher, targets, 0.25), 0.25 * e + 0.75 * d)
    for bad in (-0.1, 1.1, float("nan")):
        with pytest.raises(ValueError, match=r"beta must be in \[0, 1\]"):
            acs_score(logits, teacher, targets, bad)


def test_scores_reject_bad_shapes():
    with pytest.raises(ValueError, match="targets must have shape"):
        evs(torch.zeros(3, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="same shape"):
        ds(torch.zeros(3, 2), torch.zeros(3, 4))


def test_acs_beta_uses_u_equal_t_over_e():
    # u = t / E (ACS paper and code): epoch 8 of 16 is u = 1/2, the last epoch (15) is u = 15/16
    assert acs_beta(0, 16, "cosine") == 1.0
    assert acs_beta(0, 1, "cosine") == 1.0  # single epoch: u = 0
    assert acs_beta(8, 16, "linear") == 0.5
    assert acs_beta(8, 16, "quadratic") == 0.75
    assert acs_beta(4, 16, "sqrt") == 0.5  # u = 1/4
    assert acs_beta(8, 16, "cosine") == pytest.approx(math.cos(math.pi / 4))
    assert acs_beta(8, 16, "repo-cosine") == pytest.approx(0.5)
    assert acs_beta(2, 4, "linear") == 0.5  # t / (E - 1) would give 1/3
    # the decaying schedules end just above 0: linear at 1/E, cosine at cos(15 pi / 32)
    assert acs_beta(15, 16, "linear") == 1 / 16
    assert acs_beta(15, 16, "quadratic") == 1 - (15 / 16) ** 2
    assert acs_beta(15, 16, "cosine") == pytest.approx(math.cos(15 * math.pi / 32))
    assert acs_beta(15, 16, "cosine") > 0.04
    for epoch in range(17):
        assert acs_beta(epoch, 17, "fixed") == 0.5
        assert acs_beta(epoch, 17, "evs-only") == 1.0
        assert acs_beta(epoch, 17, "ds-only") == 0.0


def test_acs_beta_in_range_and_monotone():
    for schedule in BETA_SCHEDULES:
        values = [acs_beta(e, 17, schedule) for e in range(17)]
        assert all(0.0 <= v <= 1.0 for v in values), schedule
        if schedule in ("cosine", "linear", "sqrt", "quadratic", "repo-cosine"):
            assert values[0] == 1.0
            assert all(a >= b for a, b in zip(values, values[1:])), schedule


def test_acs_beta_validation():
    with pytest.raises(ValueError, match="allowed: cosine, linear, sqrt, quadratic, fixed, evs-only"):
        acs_beta(0, 10, "exp")
    with pytest.raises(ValueError, match=r"epoch must be in \[0, 9\]"):
        acs_beta(10, 10)
    with pytest.raises(ValueError, match=r"epoch must be in \[0, 9\]"):
        acs_beta(-1, 10)
    with pytest.raises(ValueError, match="total_epochs must be >= 1"):
        acs_beta(0, 0)


def test_grand_last_layer_matches_autograd():
    torch.manual_seed(0)
    layer = torch.nn.Linear(5, 3).double()
    feats = torch.randn(4, 5, dtype=torch.float64)
    targets = torch.tensor([0, 2, 1, 2])
    expected = []
    for i in range(4):
        layer.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(feats[i : i + 1]), targets[i : i + 1])
        loss.backward()
        expected.append(torch.sqrt(layer.weight.grad.pow(2).sum() + layer.bias.grad.pow(2).sum()))
    with torch.no_grad():
        logits = layer(feats)
    torch.testing.assert_close(grand_last_layer_score(logits, targets, feats), torch.stack(expected))


def _c(p_prev, p_next):
    """Hand formula of TDDS's per-epoch change c_e (docs/method.md §8.2), without the 1e-8 (tests use probabilities far from 0)."""
    return sum(abs(b * (math.log(b) - math.log(a))) for a, b in zip(p_prev, p_next))


def test_tdds_oscillating_beats_stable():
    T = 12
    # irregular flips between classes 0 and 1 (a strictly periodic flip would give constant c_e)
    osc = [[0.8, 0.1, 0.1] if k == 0 else [0.1, 0.8, 0.1] for k in [0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0]]
    # the stable sample drifts slowly and smoothly towards class 0
    stable = [[0.5 + 0.02 * e, 0.25 - 0.01 * e, 0.25 - 0.01 * e] for e in range(T)]
    traj = torch.tensor([[osc[e], stable[e]] for e in range(T)])
    score = tdds_score(traj, window=4, decay=0.9)
    assert score[0] > score[1] >= 0


def test_tdds_window_two_is_zero():
    traj = torch.tensor([[[0.5, 0.5]], [[0.9, 0.1]], [[0.2, 0.8]]])
    torch.testing.assert_close(tdds_score(traj, window=2, decay=0.5), torch.zeros(1))


def test_tdds_window_three_hand_case():
    P = [[0.5, 0.5], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]]
    c = [_c(P[e], P[e + 1]) for e in range(3)]
    # W = 3: windows (c0, c1) and (c1, c2); population "std" of two values = |a - b| / sqrt(2)
    v0, v1 = abs(c[0] - c[1]) / math.sqrt(2), abs(c[1] - c[2]) / math.sqrt(2)
    lam = 0.9
    expected = v0 * lam * (1 - lam) ** 1 + v1 * lam * (1 - lam) ** 0
    traj = torch.tensor(P, dtype=torch.float64).unsqueeze(1)
    got = tdds_score(traj, window=3, decay=lam)
    torch.testing.assert_close(got, torch.tensor([expected], dtype=torch.float64), rtol=0, atol=1e-6)


def test_tdds_validation():
    probs = torch.full((5, 2, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"\[T, N, C\]"):
        tdds_score(probs[0])
    with pytest.raises(ValueError, match="T >= window >= 2"):
        tdds_score(probs, window=6)
    with pytest.raises(ValueError, match="T >= window >= 2"):
        tdds_score(probs, window=1)
    with pytest.raises(ValueError, match=r"decay must be in \(0, 1\)"):
        tdds_score(probs, window=3, decay=1.0)
    with pytest.raises(ValueError, match="summing to 1"):
        tdds_score(probs * 2, window=3)
    with pytest.raises(ValueError, match="non-negative"):
        tdds_score(torch.tensor([[[1.5, -0.5]]] * 3), window=3)


def test_forgetting_hand_case():
    right, wrong = [0.9, 0.1], [0.2, 0.8]  # class 0 is "right" for target 0
    steps = [
        # sample 0: correct, incorrect, correct, incorrect; sample 1: always correct; sample 2: never
        [right, right, wrong],
        [wrong, right, wrong],
        [right, right, wrong],
        [wrong, right, wrong],
    ]
    traj = torch.tensor(steps)
    score = forgetting_score(traj, torch.tensor([0, 0, 0]))
    assert score.dtype.is_floating_point
    assert score.tolist() == [2.0, 0.0, math.inf]
