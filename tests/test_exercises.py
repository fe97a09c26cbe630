"""The exercise checkers of notebook 10: each accepts the right answer, rejects a wrong one with a hint,
says so when nothing is answered yet, and answers a malformed answer with the form it expects."""
from __future__ import annotations

import pytest
import torch

from emqlib.harness import exercises as ex
from emqlib.quant import quantize_weight


@pytest.fixture
def weight() -> torch.Tensor:
    """A conv-shaped weight [out, in, kh, kw] with per-channel means away from 0, as a layer's are."""
    generator = torch.Generator().manual_seed(0)
    return 0.05 * torch.randn(8, 4, 3, 3, generator=generator) + 0.01 * torch.randn(8, 1, 1, 1, generator=generator)


def verdict(capsys, check, *args, **kwargs) -> tuple[bool, str]:
    result = check(*args, **kwargs)
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out  # one line
    return result, out


# ---------------------------------------------------------------- 1. levels (docs/method.md §2.1)

def test_levels_right_from_the_closed_form_in_any_order(capsys, weight):
    a = weight.abs().mean()
    levels = [float(a * (2 * k / 3 - 1)) for k in range(4)]
    ok, out = verdict(capsys, ex.check_levels, list(reversed(levels)), weight, bits=2)
    assert ok and "right" in out
    ok, _ = verdict(capsys, ex.check_levels, [float(a * (2 * k / 7 - 1)) for k in range(8)], weight, bits=3)
    assert ok


@pytest.mark.parametrize("wrong", ["max", "tanh", "three"])
def test_levels_wrong_gets_a_hint(capsys, weight, wrong):
    a = weight.abs().mean()
    answers = {"max": [float(weight.abs().max() * (2 * k / 3 - 1)) for k in range(4)],  # the wrong scale
               "tanh": [float(torch.tanh(a) * (2 * k / 3 - 1)) for k in range(4)],
               "three": [float(a * (2 * k / 2 - 1)) for k in range(3)]}  # 3 levels: 1.5 bits
    ok, out = verdict(capsys, ex.check_levels, answers[wrong], weight, bits=2)
    assert not ok and "not yet. Hint:" in out


@pytest.mark.parametrize("answer", ["0.1, 0.2", {"a": 1}, [[0.1, 0.2], [0.3]]])
def test_levels_malformed_says_the_form(capsys, weight, answer):
    ok, out = verdict(capsys, ex.check_levels, answer, weight, bits=2)
    assert not ok and "list of numbers" in out


# ---------------------------------------------------------------- 2. moments after correction (docs/method.md §3.1)

def test_the_paper_form_matches_the_variance_and_the_exact_form_both(weight):
    assert ex.matched_moments(weight, bits=1) == {"paper": {"variance"}, "exact": {"mean", "variance"}}
    assert ex.matched_moments(weight, bits=2) == {"paper": {"variance"}, "exact": {"mean", "variance"}}


def test_matched_moments_right_and_wrong(capsys, weight):
    ok, out = verdict(capsys, ex.check_matched_moments, {"paper": ["variance"], "exact": {"variance", "mean"}}, weight)
    assert ok and "right" in out
    ok, out = verdict(capsys, ex.check_matched_moments, {"paper": {"mean", "variance"}, "exact": {"mean", "variance"}},
                      weight)
    assert not ok and "scale multiplies the mean" in out
    ok, out = verdict(capsys, ex.check_matched_moments, {"paper": {"variance"}}, weight)
    assert not ok and '"exact"' in out


def test_a_zero_mean_weight_matches_both_moments_in_both_modes():
    # r * E[w] = E[w] when E[w] = 0: the paper form's mean is off only where the reference mean is not 0
    w = torch.tensor([[-0.3, -0.1, 0.1, 0.3], [-0.2, -0.05, 0.05, 0.2]])
    assert ex.matched_moments(w, bits=2) == {"paper": {"mean", "variance"}, "exact": {"mean", "variance"}}


def test_matched_moments_refuses_32_bits(weight):
    with pytest.raises(ValueError, match="identity at 32 bits"):
        ex.matched_moments(weight, bits=32)


# ---------------------------------------------------------------- 3. teachers (docs/method.md §5.1)

def test_teachers_follow_the_library():
    assert ex.teachers((2, 32, 8, 4)) == {32: "labels", 8: 32, 4: 8, 2: 4}
    assert ex.teachers((32, 8, 4, 2), "fp-child") == {32: "labels", 8: 32, 4: 32, 2: 32}
    assert ex.teachers((32, 4), "none") == {32: "labels", 4: "labels"}
    with pytest.raises(ValueError, match="teacher must be one of"):
        ex.teachers((32, 2), "reference")


def test_teachers_right_and_wrong(capsys):
    ok, out = verdict(capsys, ex.check_teachers, {32: "labels", 8: 32, 4: 8, 2: 4}, (32, 8, 4, 2))
    assert ok and "right" in out
    ok, out = verdict(capsys, ex.check_teachers, {32: "labels", 8: 32, 4: 32, 2: 32}, (32, 8, 4, 2))
    assert not ok and "just above it" in out
    ok, out = verdict(capsys, ex.check_teachers, {32: "labels", 8: 32, 4: 32, 2: 32}, (32, 8, 4, 2), "fp-child")
    assert ok
    ok, out = verdict(capsys, ex.check_teachers, {8: 32, 4: 8, 2: 4}, (32, 8, 4, 2))
    assert not ok and "one entry for each of [32, 8, 4, 2]" in out


# ---------------------------------------------------------------- 4. class budgets (docs/method.md §6.2)

LABELS = torch.repeat_interleave(torch.arange(4), torch.tensor([45, 12, 3, 100]))


def test_class_budgets_right_and_wrong(capsys):
    ok, out = verdict(capsys, ex.check_class_budgets, {0: 4, 1: 1, 2: 1, 3: 10}, LABELS, 0.1)
    assert ok and "right" in out
    ok, out = verdict(capsys, ex.check_class_budgets, {0: 5, 1: 1, 2: 1, 3: 10}, LABELS, 0.1)  # round half up
    assert not ok and "even integer" in out
    ok, out = verdict(capsys, ex.check_class_budgets, {0: 4, 1: 1, 2: 0, 3: 10}, LABELS, 0.1)  # no floor of 1
    assert not ok and "max(1" in out
    ok, out = verdict(capsys, ex.check_class_budgets, {0: 4.0, 1: 1, 2: 1, 3: 10}, LABELS, 0.1)
    assert not ok and "an integer for each class" in out


# ---------------------------------------------------------------- every checker

@pytest.mark.parametrize("check, args", [(ex.check_levels, ("weight", 2)), (ex.check_matched_moments, ("weight", 1)),
                                         (ex.check_teachers, ((32, 8, 4, 2),)),
                                         (ex.check_class_budgets, (LABELS, 0.2))])
def test_no_answer_yet_is_said_and_is_not_right(capsys, weight, check, args):
    args = tuple(weight if a == "weight" else a for a in args)
    ok, out = verdict(capsys, check, None, *args)
    assert not ok and "no answer yet" in out


def test_every_checker_names_its_section_of_the_method():
    checkers = [ex.check_levels, ex.check_matched_moments, ex.check_teachers, ex.check_class_budgets]
    for check in checkers:
        assert "docs/method.md §" in check.__doc__, check.__name__


def test_quantizer_levels_hold_every_value_the_library_gives(weight):
    for bits in (1, 2, 3, 4, 8):
        levels = ex.quantizer_levels(weight, bits)
        assert len(levels) == 2**bits and torch.all(levels[1:] > levels[:-1])
        assert torch.isin(quantize_weight(weight, bits).unique(), levels).all()
    assert torch.allclose(ex.quantizer_levels(weight, 1), weight.abs().mean() * torch.tensor([-1.0, 1.0]))
    with pytest.raises(ValueError, match="no levels"):
        ex.quantizer_levels(weight, 32)
