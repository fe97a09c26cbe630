"""Distillation between bit-widths: the joint loss on a hand-computed case with each teacher, the teacher
rule of the batch coreset loop, the exact label-loss reduction and the loss of one bit-width."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from emqlib.bits import BitWidthModule
from emqlib.distill import (FullPrecisionChild, Recursive, ReferenceModel, Teacher, bit_loss, coreset_joint_step,
                            joint_step, label_mean, make_teacher, soft_cross_entropy, soft_cross_entropy_per_row)


class FixedLogits(BitWidthModule):
    """A 'model' whose logits at each bit-width are a fixed table, row i for input x = [i]."""

    def __init__(self, tables: dict[int, list[list[float]]]) -> None:
        super().__init__()
        self.tables = nn.ParameterDict({str(b): nn.Parameter(torch.tensor(t, dtype=torch.float64))
                                        for b, t in tables.items()})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tables[str(self.bits)][x[:, 0].long()]


LN3 = math.log(3)


def test_joint_step_on_a_hand_computed_case() -> None:
    # 32 bits: softmax rows (1/2, 1/2) and (3/4, 1/4); 2 bits: (3/4, 1/4) and (1/2, 1/2); both labels 0
    model = FixedLogits({32: [[0, 0], [LN3, 0]], 2: [[LN3, 0], [0, 0]]})
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([0, 0])
    step = joint_step(model, x, y, (32, 2))

    ce_32 = (math.log(2) + math.log(4 / 3)) / 2  # -log p(label) at 32 bits, batch mean
    # 2 bits learns from the 32-bit softmax: -sum_c q_c log p_c per row
    kd_2 = (-(0.5 * math.log(0.75) + 0.5 * math.log(0.25)) - (0.75 * math.log(0.5) + 0.25 * math.log(0.5))) / 2
    assert step.losses[32].item() == pytest.approx(ce_32, rel=1e-12)
    assert step.losses[2].item() == pytest.approx(kd_2, rel=1e-12)
    assert step.total.item() == pytest.approx(ce_32 + kd_2, rel=1e-12)
    assert step.rows == {32: 2, 2: 2}
    assert torch.equal(step.top_logits, model.tables["32"].detach())

    step.total.backward()
    # the teacher is detached: the 32-bit logits get the label gradient only, (p - onehot) / N
    expected_32 = torch.tensor([[(0.5 - 1) / 2, 0.5 / 2], [(0.75 - 1) / 2, 0.25 / 2]], dtype=torch.float64)
    torch.testing.assert_close(model.tables["32"].grad, expected_32, rtol=1e-12, atol=1e-15)
    # the 2-bit logits get (p - q) / N
    expected_2 = torch.tensor([[(0.75 - 0.5) / 2, (0.25 - 0.5) / 2], [(0.5 - 0.75) / 2, (0.5 - 0.25) / 2]],
                              dtype=torch.float64)
    torch.testing.assert_close(model.tables["2"].grad, expected_2, rtol=1e-12, atol=1e-15)


def test_batch_loop_rows_distil_from_the_nearest_higher_bit_width_that_saw_them() -> None:
    g = torch.Generator().manual_seed(0)
    tables = {b: torch.randn(3, 4, generator=g, dtype=torch.float64).tolist() for b in (32, 4, 2)}
    model = FixedLogits(tables)
    x, y = torch.tensor([[0.0], [1.0], [2.0]]), torch.tensor([1, 3, 0])
    members = {32: torch.tensor([True, False, False]), 4: torch.tensor([True, True, False]),
               2: torch.tensor([False, True, True])}
    step = coreset_joint_step(model, x, y, members)

    t = {b: torch.tensor(v, dtype=torch.float64) for b, v in tables.items()}
    ce = lambda b, i: F.cross_entropy(t[b][i:i + 1], y[i:i + 1]).item()  # noqa: E731
    kd = lambda b, teacher, i: soft_cross_entropy(t[b][i:i + 1], F.softmax(t[teacher][i:i + 1], 1)).item()  # noqa: E731
    expected = {32: ce(32, 0),
                4: (kd(4, 32, 0) + ce(4, 1)) / 2,  # row 0 from 32 bits; row 1 was not in 32's coreset: label
                2: (kd(2, 4, 1) + ce(2, 2)) / 2}  # row 1 from 4 bits (the nearest above); row 2: label
    assert {b: loss.item() for b, loss in step.losses.items()} == pytest.approx(expected, rel=1e-12)
    assert step.rows == {32: 1, 4: 2, 2: 2}


def test_a_bit_width_without_rows_sits_the_step_out() -> None:
    model = FixedLogits({32: [[1.0, 0.0]], 2: [[0.0, 1.0]]})
    step = coreset_joint_step(model, torch.tensor([[0.0]]), torch.tensor([1]),
                              {32: torch.tensor([False]), 2: torch.tensor([True])})
    assert list(step.losses) == [2]
    assert step.losses[2].item() == pytest.approx(math.log(1 + math.e) - 1, rel=1e-12)  # label loss, no teacher


def test_label_mean_is_exactly_cross_entropys_mean() -> None:
    g = torch.Generator().manual_seed(1)
    for n in (1, 7, 32, 128, 1000):
        logits = torch.randn(n, 10, generator=g, requires_grad=True)
        y = torch.randint(0, 10, (n,), generator=g)
        reference = F.cross_entropy(logits, y)
        (expected_grad,) = torch.autograd.grad(reference, logits)
        ours = label_mean(F.cross_entropy(logits, y, reduction="none"))
        (grad,) = torch.autograd.grad(ours, logits)
        assert torch.equal(ours, reference) and torch.equal(grad, expected_grad)


def test_soft_cross_entropy_per_row_and_its_mean() -> None:
    logits = torch.tensor([[0.0, 0.0], [LN3, 0.0]], dtype=torch.float64)
    onehot = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    # with one-hot targets it is the label cross-entropy
    rows = soft_cross_entropy_per_row(logits, onehot)
    assert rows.tolist() == pytest.approx([math.log(2), math.log(4)])
    assert soft_cross_entropy(logits, onehot).item() == pytest.approx((math.log(2) + math.log(4)) / 2)


def three_bit_model() -> tuple[FixedLogits, dict[int, torch.Tensor]]:
    g = torch.Generator().manual_seed(2)
    tables = {b: torch.randn(2, 3, generator=g, dtype=torch.float64).tolist() for b in (32, 4, 2)}
    return FixedLogits(tables), {b: torch.tensor(v, dtype=torch.float64) for b, v in tables.items()}


X, Y = torch.tensor([[0.0], [1.0]]), torch.tensor([2, 0])


def test_each_teacher_in_the_joint_step() -> None:
    model, t = three_bit_model()
    ce = {b: F.cross_entropy(t[b], Y).item() for b in t}
    kd = lambda b, teacher: soft_cross_entropy(t[b], F.softmax(t[teacher], 1)).item()  # noqa: E731
    cases = {
        # recursive: each bit-width from the one above it (Any-Precision's recursive distillation)
        "recursive": {32: ce[32], 4: kd(4, 32), 2: kd(2, 4)},
        # fp-child: every bit-width from the 32-bit child's outputs on the same batch ("soft")
        "fp-child": {32: ce[32], 4: kd(4, 32), 2: kd(2, 32)},
        # none: every bit-width from the labels ("hard")
        "none": ce,
    }
    for name, expected in cases.items():
        step = joint_step(model, X, Y, (32, 4, 2), make_teacher(name), label_weight=0.0 if name != "none" else 1.0)
        assert {b: v.item() for b, v in step.losses.items()} == pytest.approx(expected, rel=1e-12), name
        assert step.teacher_rows == {32: 0, 4: 0, 2: 0}, name  # the 32-bit child already ran on the batch
    weighted = joint_step(model, X, Y, (32, 4, 2), Recursive(), label_weight=0.5)
    assert weighted.losses[2].item() == pytest.approx(0.5 * ce[2] + kd(2, 4), rel=1e-12)  # beside the teacher


def test_the_full_precision_child_runs_its_own_forward_in_the_bit_wise_loop() -> None:
    model, t = three_bit_model()
    model.set_bits(2)
    teacher = FullPrecisionChild()
    targets = teacher.targets(model, X, 2, {})
    torch.testing.assert_close(targets, F.softmax(t[32], 1))
    assert model.bits == 2 and teacher.costs_a_forward(2, {})  # back at 2 bits; a forward pass was paid
    assert teacher.targets(model, X, 32, {}) is None  # the 32-bit child learns from the labels
    assert Recursive().targets(model, X, 2, {}) is None  # nothing above it ran on this batch
    assert Teacher().targets(model, X, 2, {}) is None


def test_a_reference_model_teaches_every_bit_width_at_a_forward_each() -> None:
    reference = FixedLogits({32: [[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]]}).double()
    teacher = make_teacher("reference", reference)
    assert isinstance(teacher, ReferenceModel)
    model, _ = three_bit_model()
    step = joint_step(model, X, Y, (32, 2), teacher)
    q = F.softmax(torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]], dtype=torch.float64), 1)
    assert step.losses[2].item() == pytest.approx(soft_cross_entropy(model.tables["2"].detach(), q).item(), rel=1e-12)
    assert step.teacher_rows == {32: 2, 2: 2}
    with pytest.raises(ValueError, match="reference model"):
        make_teacher("reference")
    with pytest.raises(ValueError, match="teacher must be one of"):
        make_teacher("bogus")


def test_the_batch_loop_without_a_teacher_trains_every_row_on_its_label() -> None:
    model, t = three_bit_model()
    members = {32: torch.tensor([True, False]), 2: torch.tensor([True, True])}
    step = coreset_joint_step(model, X, Y, members, Teacher())
    assert step.losses[2].item() == pytest.approx(F.cross_entropy(t[2], Y).item(), rel=1e-12)
    with pytest.raises(ValueError, match="recursively or not at all"):
        coreset_joint_step(model, X, Y, members, FullPrecisionChild())


def test_bit_loss_with_sample_weights() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    labels, targets = torch.tensor([0, 0]), torch.tensor([[0.5, 0.5], [1.0, 0.0]], dtype=torch.float64)
    weights = torch.tensor([2.0, 0.0], dtype=torch.float64)
    ce = F.cross_entropy(logits, labels, reduction="none")
    kd = soft_cross_entropy_per_row(logits, targets)
    assert bit_loss(logits, labels, targets, 0.5, weights).item() == pytest.approx(
        ((0.5 * ce + kd) * weights).mean().item(), rel=1e-12)
    assert bit_loss(logits, labels, None, 0.5, weights).item() == pytest.approx((ce * weights).mean().item())
    assert torch.equal(bit_loss(logits, labels, None, 0.5), F.cross_entropy(logits, labels))
