"""The exercises of notebook 10 (EMQ by hand): each checker takes the reader's answer, works out the right one
with the library, prints one line (right, or wrong with a hint) and returns whether the answer is right.

An answer left at ``None`` is "not answered yet": a line saying which variable to fill, and False. An answer
of the wrong form says what form is expected instead of raising, so a reader's typo never stops the notebook.
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from ..bits import FULL_PRECISION, check_bits
from ..budgets import class_budgets
from ..correction import CORRECTION_MODES, bias_correct
from ..distill import make_teacher
from ..quant import quantize_unit, quantize_weight

MOMENTS = ("mean", "variance")
TEACHERS_WITHOUT_MODEL = ("none", "recursive", "fp-child")  # the teachers the exercise asks about
MEAN_TOLERANCE = 1e-4  # a mean "matches" within this share of the reference's mean per-channel std
VARIANCE_TOLERANCE = 1e-3  # a variance "matches" within this relative error (the correction's eps moves it by less)


def _verdict(title: str, right: bool, hint: str) -> bool:
    print(f"{title}: right." if right else f"{title}: not yet. Hint: {hint}")
    return right


def _no_answer(title: str, form: str) -> bool:
    print(f"{title}: no answer yet; set the variable marked `# your answer` to {form}.")
    return False


def quantizer_levels(weight: Tensor, bits: int) -> Tensor:
    """The 2^b values the ``bits``-bit DoReFa quantizer can give the tensor ``weight`` (docs/method.md §2.1),
    ascending: A (2 Q_b(u) - 1) at the grid points u = k / (2^b - 1), with A = mean|W| over the tensor.
    Raises RuntimeError if ``quantize_weight(weight, bits)`` takes a value outside them (a library bug)."""
    bits = check_bits(bits)
    if bits == FULL_PRECISION:
        raise ValueError("the 32-bit path is not rounded: it has no levels; ask about a bit-width below 32")
    w = weight.detach()
    grid = torch.arange(2**bits, dtype=w.dtype) / (2**bits - 1)
    levels = w.abs().mean() * (2 * quantize_unit(grid, bits) - 1)
    taken = quantize_weight(w, bits).unique()
    if not torch.isclose(taken[:, None], levels[None, :], rtol=1e-6, atol=0).any(dim=1).all():
        raise RuntimeError(f"quantize_weight gives values outside the {bits}-bit levels of docs/method.md §2.1")
    return levels


def check_levels(answer, weight: Tensor, bits: int = 2) -> bool:
    """Exercise 1 (docs/method.md §2.1): the levels of the ``bits``-bit weight quantizer for the tensor
    ``weight`` (:func:`quantizer_levels`), in any order."""
    bits = check_bits(bits)
    title = f"Exercise 1 (levels of the {bits}-bit weight quantizer, docs/method.md §2.1)"
    if answer is None:
        return _no_answer(title, "a list of numbers")
    expected = quantizer_levels(weight, bits).double()
    try:
        given = torch.as_tensor(answer, dtype=torch.float64).flatten().sort().values
    except (TypeError, ValueError, RuntimeError):
        return _verdict(title, False, f"give a list of numbers, got {answer!r}")
    if len(given) != len(expected):
        return _verdict(title, False, f"a {bits}-bit quantizer has {len(expected)} levels; you gave {len(given)}")
    right = torch.allclose(given, expected, rtol=1e-5, atol=1e-9)
    return _verdict(title, right, "the levels are A (2k / (2^b - 1) - 1), k = 0 .. 2^b - 1, with A = mean|W| "
                                  "over the whole tensor (not tanh(W), not max|W|)")


def matched_moments(weight: Tensor, bits: int = 1) -> dict[str, set[str]]:
    """For each correction mode, which per-channel moments of the corrected ``bits``-bit weight equal the
    reference's (the 32-bit path of ``weight``, docs/method.md §3.1): a mean within
    :data:`MEAN_TOLERANCE` of the reference's mean per-channel std, a variance within
    :data:`VARIANCE_TOLERANCE` relative error. ``weight``: [out, ...] (moments per output channel)."""
    bits = check_bits(bits)
    if bits == FULL_PRECISION:
        raise ValueError("the correction is the identity at 32 bits; ask about a bit-width below 32")
    w = weight.detach()
    reference, quantized = quantize_weight(w, FULL_PRECISION), quantize_weight(w, bits)
    dims = tuple(range(1, w.dim()))
    var_ref, mean_ref = torch.var_mean(reference, dim=dims, correction=0)
    scale = var_ref.sqrt().mean()
    found = {}
    for mode in CORRECTION_MODES:
        var, mean = torch.var_mean(bias_correct(reference, quantized, mode=mode), dim=dims, correction=0)
        found[mode] = {name for name, ok in (
            ("mean", bool(((mean - mean_ref).abs() <= MEAN_TOLERANCE * scale).all())),
            ("variance", bool(((var / var_ref - 1).abs() <= VARIANCE_TOLERANCE).all()))) if ok}
    return found


def check_matched_moments(answer, weight: Tensor, bits: int = 1) -> bool:
    """Exercise 2 (docs/method.md §3.1): for each correction mode ("paper", "exact"), the moments of the
    corrected ``bits``-bit weight that equal the reference's in every output channel, as a dict
    ``{"paper": {...}, "exact": {...}}`` of sets of "mean" and "variance" (:func:`matched_moments`)."""
    title = f"Exercise 2 (moments after the {bits}-bit correction, docs/method.md §3.1)"
    form = '{"paper": {...}, "exact": {...}}, each a set of "mean" and "variance"'
    if answer is None:
        return _no_answer(title, form)
    if not isinstance(answer, Mapping) or set(answer) != set(CORRECTION_MODES) or not all(
            isinstance(v, (set, frozenset, list, tuple)) and set(v) <= set(MOMENTS) for v in answer.values()):
        return _verdict(title, False, f"give {form}; got {answer!r}")
    expected = matched_moments(weight, bits)
    right = {mode: set(v) for mode, v in answer.items()} == expected
    return _verdict(title, right, "the paper form multiplies the *shifted* tensor by r = sqrt(V[w] / V[w_q]): "
                                  "a scale multiplies the mean too; the exact form scales before it shifts")


def teachers(bits: Sequence[int], teacher: str = "recursive") -> dict[int, int | str]:
    """Where each bit-width of a joint step over ``bits`` (run in descending order, as
    :func:`emqlib.distill.joint_step` runs them) takes its targets from, asking the library's teacher:
    the bit-width whose softmax it distils from, or "labels"."""
    if teacher not in TEACHERS_WITHOUT_MODEL:
        raise ValueError(f"teacher must be one of {list(TEACHERS_WITHOUT_MODEL)}, got {teacher!r}")
    order = sorted((check_bits(b) for b in bits), reverse=True)
    chosen, same_batch = make_teacher(teacher), {}
    found: dict[int, int | str] = {}
    for b in order:
        targets = chosen.targets(None, None, b, same_batch)  # a marker tensor per bit-width that already ran
        found[b] = "labels" if targets is None else next(k for k, v in same_batch.items() if v is targets)
        same_batch[b] = torch.tensor([float(b)])
    return found


def check_teachers(answer, bits: Sequence[int], teacher: str = "recursive") -> bool:
    """Exercise 3 (docs/method.md §5.1, §5.2): for each trained bit-width, the bit-width it distils from
    under ``teacher``, or "labels" for one that learns from the labels (:func:`teachers`), as a dict
    ``{bits: teacher}``."""
    title = f"Exercise 3 (the {teacher} teacher of each bit-width, docs/method.md §5.1)"
    form = '{bit-width: the bit-width it distils from, or "labels"}'
    if answer is None:
        return _no_answer(title, form)
    expected = teachers(bits, teacher)
    if not isinstance(answer, Mapping) or set(answer) != set(expected):
        return _verdict(title, False, f"give {form} with one entry for each of {sorted(expected, reverse=True)}; "
                                      f"got {answer!r}")
    right = all(answer[b] == expected[b] for b in expected)
    hint = ("the bit-widths run in descending order; the first learns from the labels, each next one from the one "
            "just above it" if teacher == "recursive" else
            "the 32-bit child learns from the labels, every other bit-width from the 32-bit child"
            if teacher == "fp-child" else "without a teacher every bit-width learns from the labels")
    return _verdict(title, right, hint)


def check_class_budgets(answer, labels: Tensor, fraction: float) -> bool:
    """Exercise 4 (docs/method.md §6.2): how many samples of each class a coreset of kept fraction
    ``fraction`` keeps of the samples labelled ``labels``, as a dict ``{class: count}``
    (:func:`emqlib.budgets.class_budgets`)."""
    title = f"Exercise 4 (per-class budget of a {fraction:.0%} coreset, docs/method.md §6.2)"
    form = "{class: samples kept}"
    if answer is None:
        return _no_answer(title, form)
    expected = class_budgets(labels, fraction)
    if not isinstance(answer, Mapping) or set(answer) != set(expected) or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in answer.values()):
        return _verdict(title, False, f"give {form} with an integer for each class of {sorted(expected)}; "
                                      f"got {answer!r}")
    right = {c: int(v) for c, v in answer.items()} == expected
    return _verdict(title, right, "the budget is max(1, round(S n_c)) per class, and Python's round sends an "
                                  "exact half to the even integer (round(4.5) = 4)")
