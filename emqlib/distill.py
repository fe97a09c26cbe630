"""Distillation between the bit-widths of one multi-bit model, and the loss of one bit-width (docs/method.md §5).

A :class:`Teacher` says where a bit-width's soft targets come from; every training loop asks it:

* ``none``: no teacher, the labels only (Dedicated; Any-Precision's "hard" variant);
* ``recursive``: the next-higher bit-width on the same batch (Any-Precision's recursive distillation,
  temperature 1), so it needs a loop that runs every bit-width on each batch;
* ``fp-child``: the model's own 32-bit path (Any-Precision's "soft" variant); in the bit-wise loop an
  extra forward pass without gradient;
* ``reference``: a separately trained full-precision model (ACS's teacher).

A bit-width with soft targets learns from them (soft cross-entropy) plus ``label_weight`` times the
cross-entropy with the labels; one without learns from the labels (:func:`bit_loss`).

Joint training (Any-Precision, and EMQ on full data) runs every bit-width on each batch in descending
order and sums the losses for one optimizer step (:func:`joint_step`); the caller runs ``backward``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .bits import FULL_PRECISION, set_bits

TEACHERS = ("none", "recursive", "fp-child", "reference")


def soft_cross_entropy_per_row(logits: Tensor, teacher_probs: Tensor) -> Tensor:
    """-sum_c q_c log softmax(logits)_c for each row: cross-entropy with soft targets at T = 1."""
    return -(teacher_probs * F.log_softmax(logits, dim=1)).sum(dim=1)


def soft_cross_entropy(logits: Tensor, teacher_probs: Tensor) -> Tensor:
    """The batch mean of :func:`soft_cross_entropy_per_row`."""
    return soft_cross_entropy_per_row(logits, teacher_probs).mean()


def label_mean(per_row: Tensor) -> Tensor:
    """The mean of per-row label losses, summed in the order ``F.cross_entropy`` sums its mean
    reduction (a cascade sum, unlike ``Tensor.mean``), so that reducing per-sample losses gives
    bit for bit the value (and gradient) of ``F.cross_entropy(logits, y)``."""
    return F.nll_loss(-per_row.unsqueeze(1), torch.zeros(len(per_row), dtype=torch.long, device=per_row.device))


def bit_loss(logits: Tensor, labels: Tensor, targets: Tensor | None, label_weight: float,
             weights: Tensor | None = None) -> Tensor:
    """The loss of one bit-width on a batch (docs/method.md §5.1, §6.2): the cross-entropy with the labels
    where there are no soft ``targets``; with them, the soft cross-entropy plus ``label_weight`` times the
    label cross-entropy. ``weights``: a weight per sample (InfoBatch's rescaled losses), or None."""
    label_losses = F.cross_entropy(logits, labels, reduction="none")
    if weights is not None:
        per_row = label_losses if targets is None else \
            label_weight * label_losses + soft_cross_entropy_per_row(logits, targets)
        return (per_row * weights.to(logits.device)).mean()
    if targets is None:
        return label_mean(label_losses)
    distil = soft_cross_entropy(logits, targets)
    return distil if label_weight == 0 else label_weight * label_mean(label_losses) + distil


class Teacher:
    """Where a bit-width's soft targets come from (one of :data:`TEACHERS`)."""

    name: str = "none"

    def targets(self, model: nn.Module, x: Tensor, bits: int, same_batch: Mapping[int, Tensor],
                activation_bits: int | None = None) -> Tensor | None:
        """Soft targets (probabilities, no gradient) for ``bits`` on the batch ``x``, or None: labels only.
        ``same_batch``: the softmax outputs of the bit-widths that already ran on this batch in this step."""
        return None

    def costs_a_forward(self, bits: int, same_batch: Mapping[int, Tensor]) -> bool:
        """Whether :meth:`targets` runs a forward pass of its own (counted as training cost)."""
        return False


class Recursive(Teacher):
    """The next-higher bit-width that ran on this batch (Any-Precision's recursive distillation)."""

    name = "recursive"

    def targets(self, model, x, bits, same_batch, activation_bits=None):
        higher = [b for b in same_batch if b > bits]
        return same_batch[min(higher)] if higher else None


class FullPrecisionChild(Teacher):
    """The model's own 32-bit path, run in train mode as the joint loop runs it (so it also updates a
    shared BatchNorm's statistics); reused where the 32-bit child already ran on this batch."""

    name = "fp-child"

    def targets(self, model, x, bits, same_batch, activation_bits=None):
        if bits == FULL_PRECISION:
            return None
        if FULL_PRECISION in same_batch:
            return same_batch[FULL_PRECISION]
        with torch.no_grad():
            set_bits(model, FULL_PRECISION, activation_bits)
            probs = F.softmax(model(x), dim=1)
            set_bits(model, bits, activation_bits)
        return probs

    def costs_a_forward(self, bits, same_batch):
        return bits != FULL_PRECISION and FULL_PRECISION not in same_batch


class ReferenceModel(Teacher):
    """A full-precision model trained beforehand (ACS's teacher), in eval mode."""

    name = "reference"

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def targets(self, model, x, bits, same_batch, activation_bits=None):
        self.model.eval()
        with torch.no_grad():
            return F.softmax(self.model(x), dim=1)

    def costs_a_forward(self, bits, same_batch):
        return True


def make_teacher(name: str, reference: nn.Module | None = None) -> Teacher:
    """The teacher called ``name``; ``reference`` is the model of the ``reference`` teacher."""
    if name == "reference":
        if reference is None:
            raise ValueError("the reference teacher needs the full-precision reference model")
        return ReferenceModel(reference)
    teachers = {"none": Teacher, "recursive": Recursive, "fp-child": FullPrecisionChild}
    if name not in teachers:
        raise ValueError(f"teacher must be one of {list(TEACHERS)}, got {name!r}")
    return teachers[name]()


@dataclass
class StepLosses:
    """The losses of one joint step; ``total.backward()`` and one optimizer step train every bit-width."""

    total: Tensor  # sum of the bit-widths' losses
    losses: dict[int, Tensor]  # each bit-width's mean loss over its rows
    rows: dict[int, int]  # how many rows each bit-width trained on
    teacher_rows: dict[int, int]  # rows of forward passes the teacher ran for each bit-width
    top_logits: Tensor  # the highest bit-width's logits (the training trajectory records them)


def joint_step(model: nn.Module, x: Tensor, y: Tensor, bits: Sequence[int], teacher: Teacher = Recursive(),
               label_weight: float = 0.0, activation_bits: int | None = None) -> StepLosses:
    """Every bit-width of ``bits`` (descending) on the batch, each learning from its teacher's targets
    (:func:`bit_loss`); with the recursive teacher the first learns from the labels and each next one from
    the softmax of the one before it."""
    losses, rows, teacher_rows, same_batch, top_logits = {}, {}, {}, {}, None
    for b in bits:
        set_bits(model, b, activation_bits)
        targets = teacher.targets(model, x, b, same_batch, activation_bits)
        teacher_rows[b] = len(x) if teacher.costs_a_forward(b, same_batch) else 0
        logits = model(x)
        losses[b] = bit_loss(logits, y, targets, label_weight)
        same_batch[b] = F.softmax(logits.detach(), dim=1)
        rows[b] = len(x)
        top_logits = logits if top_logits is None else top_logits
    return StepLosses(torch.stack(list(losses.values())).sum(), losses, rows, teacher_rows, top_logits)


def coreset_joint_step(model: nn.Module, x: Tensor, y: Tensor, members: Mapping[int, Tensor],
                       teacher: Teacher = Recursive(), activation_bits: int | None = None) -> StepLosses:
    """The joint step of the batch coreset loop: bit-width b (descending order of ``members``) trains on
    the rows ``members[b]`` marks; with the recursive teacher a row distils from the nearest higher
    bit-width that trained on it in this step, and learns from its label where none did (with no teacher,
    every row from its label). Bit-widths without a row sit the step out."""
    if not isinstance(teacher, Recursive) and teacher.name != "none":
        raise ValueError(f"the batch coreset loop distils recursively or not at all, not from {teacher.name!r}")
    losses, rows, top_logits = {}, {}, None
    soft = None  # per-row softmax of the nearest higher bit-width that trained on the row
    has_teacher = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for b, member in members.items():
        mine = member.to(x.device)
        if not mine.any():
            continue
        set_bits(model, b, activation_bits)
        logits = model(x[mine])
        if soft is None:
            soft = torch.zeros(len(x), logits.shape[1], device=x.device, dtype=logits.dtype)
        per_row = torch.where(has_teacher[mine], soft_cross_entropy_per_row(logits, soft[mine]),
                              F.cross_entropy(logits, y[mine], reduction="none"))
        losses[b] = per_row.mean()
        if teacher.name == "recursive":
            soft[mine] = F.softmax(logits.detach(), dim=1)
            has_teacher[mine] = True
        rows[b] = int(mine.sum())
        top_logits = logits if top_logits is None else top_logits
    return StepLosses(torch.stack(list(losses.values())).sum(), losses, rows, dict.fromkeys(rows, 0), top_logits)
