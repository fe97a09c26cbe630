"""Distillation between the bit-widths of one multi-bit model (docs/method.md §5).

Joint training (Any-Precision, and EMQ without coreset) runs every bit-width on each batch in
descending order: the highest bit-width learns from the labels, every lower one from the
softened output of the bit-width just above it (recursive distillation, temperature 1); the
losses are summed and one optimizer step follows. The bit-wise coreset loops (EMQ, bit-wise
coreset sampling) use the same rule on the rows a bit-width trains on, and the sequential loop
takes its teacher from the 32-bit child or from a full-precision reference model.

The caller owns the optimizer: :func:`joint_step` returns the losses, the caller runs
``backward`` and ``step``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .bits import FULL_PRECISION, set_bits

# the teacher of each bit-width: none (labels only), recursive (the next-higher bit-width on the
# same batch), fp-child (the model's own 32-bit path, no gradient) or reference (a full-precision run)
DISTILLATION = ("none", "recursive", "fp-child", "reference")


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


def default_distillation(method: str, coreset: str, coreset_training: str) -> str:
    """The teacher a configuration uses unless it names one: the reference run for ACS (ACS,
    training with the early model's guidance), none for Dedicated, recursive where every
    bit-width sees each batch (joint loop, batch coreset loop), the 32-bit child otherwise."""
    if coreset == "acs":
        return "reference"
    if method == "dedicated":
        return "none"
    if coreset == "none" or coreset_training == "batch":
        return "recursive"
    return "fp-child"


def teacher_probs(distillation: str, model: nn.Module, x: Tensor, bits: int, activation_bits: int | None,
                  reference: nn.Module | None = None) -> Tensor | None:
    """Soft targets for ``bits`` in the sequential loop (no gradient), or None to train on labels only.

    ``fp-child`` runs the model's 32-bit path in train mode, as the joint loop does (it also
    updates the shared BatchNorm statistics), and switches back to ``bits``.
    """
    if distillation == "reference":
        reference.eval()
        with torch.no_grad():
            return F.softmax(reference(x), dim=1)
    if distillation == "fp-child" and bits != FULL_PRECISION:
        with torch.no_grad():
            set_bits(model, FULL_PRECISION, activation_bits)
            probs = F.softmax(model(x), dim=1)
            set_bits(model, bits, activation_bits)
        return probs
    return None


@dataclass
class StepLosses:
    """The losses of one joint step; ``total.backward()`` and one optimizer step train every bit-width."""

    total: Tensor  # sum of the bit-widths' losses
    losses: dict[int, Tensor]  # each bit-width's mean loss over its rows
    rows: dict[int, int]  # how many rows each bit-width trained on
    top_logits: Tensor  # the highest bit-width's logits (the training trajectory records them)


def joint_step(model: nn.Module, x: Tensor, y: Tensor, bits: Sequence[int],
               activation_bits: int | None = None) -> StepLosses:
    """Every bit-width of ``bits`` (descending) on the batch: the first learns from the labels
    (cross-entropy), each next one from the softmax of the one before it (soft cross-entropy)."""
    losses, rows, teacher, top_logits = {}, {}, None, None
    for b in bits:
        set_bits(model, b, activation_bits)
        logits = model(x)
        if teacher is None:
            losses[b] = label_mean(F.cross_entropy(logits, y, reduction="none"))
            top_logits = logits
        else:
            losses[b] = soft_cross_entropy(logits, teacher)
        teacher = F.softmax(logits.detach(), dim=1)
        rows[b] = len(x)
    return StepLosses(torch.stack(list(losses.values())).sum(), losses, rows, top_logits)


def coreset_joint_step(model: nn.Module, x: Tensor, y: Tensor, members: Mapping[int, Tensor],
                       activation_bits: int | None = None) -> StepLosses:
    """The joint step of the batch coreset loop: bit-width b (descending order of ``members``)
    trains on the rows ``members[b]`` marks; a row distils from the nearest higher bit-width that
    trained on it in this step, and learns from its label where none did. Bit-widths without a
    row sit the step out."""
    losses, rows, top_logits = {}, {}, None
    teacher = None  # per-row softmax of the nearest higher bit-width that trained on the row
    has_teacher = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for b, member in members.items():
        mine = member.to(x.device)
        if not mine.any():
            continue
        set_bits(model, b, activation_bits)
        logits = model(x[mine])
        if teacher is None:
            teacher = torch.zeros(len(x), logits.shape[1], device=x.device, dtype=logits.dtype)
        per_row = torch.where(has_teacher[mine], soft_cross_entropy_per_row(logits, teacher[mine]),
                              F.cross_entropy(logits, y[mine], reduction="none"))
        losses[b] = per_row.mean()
        teacher[mine] = F.softmax(logits.detach(), dim=1)
        has_teacher[mine] = True
        rows[b] = int(mine.sum())
        top_logits = logits if top_logits is None else top_logits
    return StepLosses(torch.stack(list(losses.values())).sum(), losses, rows, top_logits)
