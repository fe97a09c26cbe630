"""Training a multi-bit network, one epoch at a time (docs/method.md §5-§6): the loops of EMQ, joint
training (Any-Precision) and Dedicated training.

A :class:`Learner` is one model with its optimizer and the bit-widths it trains: Dedicated has one per
bit-width, joint training and EMQ one for all. Each epoch a learner goes through one of three loops:

* :func:`joint_epoch`: every bit-width on each batch, in descending order, each learning from its
  teacher (the next-higher bit-width: recursive distillation), then one optimizer step on the summed
  losses (Any-Precision, and EMQ on full data);
* :func:`sequential_epoch`: bit-width by bit-width, each on its own subset, an optimizer step per batch:
  EMQ with bit-wise coreset sampling (docs/method.md §6.2). Dedicated is this loop with one bit-width on
  every sample;
* :func:`batch_epoch`: batches of the union of the bit-widths' subsets, each bit-width on its rows
  (docs/method.md §6.4).

So an EMQ epoch with its bit-wise coreset is::

    for b in bits:                                    # when the sampler is due (every R epochs for top-k)
        subsets[b] = sampler.select(epoch, model, b)  # each bit-width scores and draws its own subset
    sequential_epoch(epoch, learner, subsets)         # each bit-width trains on its subset, distilling

Each loop returns what the epoch cost (:class:`EpochCost`: samples trained, forward passes of the
teacher, the summed loss), per bit-width.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .bits import set_bits
from .coreset.samplers import Sampler
from .distill import Teacher, bit_loss, coreset_joint_step, joint_step

Batches = Callable[[Tensor], Iterable[tuple[Tensor, Tensor, Tensor]]]  # sample indices -> shuffled (x, y, indices)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite at ``epoch`` (``bits``-bit)."""

    def __init__(self, epoch: int, bits: int) -> None:
        super().__init__(f"training loss became non-finite at epoch {epoch} ({bits}-bit)")
        self.epoch, self.bits = epoch, bits


@dataclass
class Learner:
    """One model, its optimizer and learning-rate schedule, and the bit-widths it trains."""

    model: nn.Module  # what the loops call: possibly wrapped (DistributedDataParallel, torch.compile)
    optimizer: torch.optim.Optimizer
    schedule: Callable[[float], float]  # the learning rate's factor at a point of training, from 0 (start) to 1 (end)
    bits: tuple[int, ...]
    module: nn.Module = field(init=False)  # the model without its wrappers (state dicts, evaluation)

    def __post_init__(self) -> None:
        module = self.model
        while isinstance(module, nn.parallel.DistributedDataParallel) or hasattr(module, "_orig_mod"):
            module = module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module._orig_mod
        self.module = module
        for group in self.optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])

    def anneal(self, progress: float) -> None:
        """Set the learning rate for the optimizer step at ``progress`` (the share of training done), so that
        every run anneals over its own steps, however many epochs it has."""
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * self.schedule(progress)


@dataclass
class BitCost:
    """One bit-width's work in one epoch."""

    sample_passes: int = 0  # training forward+backward passes, one per sample and step
    teacher_forwards: int = 0  # forward-only passes of a distillation teacher
    selection_forwards: int = 0  # forward-only passes scoring samples for the coreset
    loss_sum: float = 0.0  # training loss summed over samples (mean loss x batch rows, per step)

    def add_step(self, rows: int, mean_loss: float, teacher_rows: int = 0) -> None:
        """Count one training step of ``rows`` samples whose mean loss was ``mean_loss``."""
        self.sample_passes += rows
        self.teacher_forwards += teacher_rows
        self.loss_sum += mean_loss * rows


@dataclass
class EpochCost:
    """The per-bit-width cost record of one epoch (of one loop, or of the whole epoch)."""

    bits: dict[int, BitCost] = field(default_factory=dict)

    def __getitem__(self, b: int) -> BitCost:
        return self.bits.setdefault(b, BitCost())

    def merge(self, other: EpochCost) -> EpochCost:
        """The sum of two records (e.g. selection and training, or two learners)."""
        merged = EpochCost()
        for record in (self, other):
            for b, c in record.bits.items():
                m = merged[b]
                m.sample_passes += c.sample_passes
                m.teacher_forwards += c.teacher_forwards
                m.selection_forwards += c.selection_forwards
                m.loss_sum += c.loss_sum
        return merged


@dataclass
class Epoch:
    """What the loops of one epoch share."""

    number: int  # counted from 0
    batches: Batches  # shuffled batches (inputs, labels, sample indices) of the given samples
    teacher: Teacher
    label_weight: float  # weight of the label cross-entropy beside a teacher's targets
    sampler: Sampler  # sees each training pass's outputs and weights each sample's loss
    activation_bits: int | None = None  # None: activations at the weight bit-width
    bit_order: str = "descending"  # the order of the bit-widths in the bit-wise loop
    watch: Callable[[int, Tensor, Tensor], None] | None = None  # (bits, indices, logits) of each training pass

    def step(self, learner: Learner, loss: Tensor, bits: int) -> None:
        """One optimizer step on ``loss``; a loss that is not finite stops training before it spoils the weights."""
        if not torch.isfinite(loss):
            raise NonFiniteLossError(self.number, bits)
        learner.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        learner.optimizer.step()

    def observe(self, bits: int, indices: Tensor, logits: Tensor) -> None:
        self.sampler.observe(bits, indices, logits)
        if self.watch is not None:
            self.watch(bits, indices, logits)


def sequential_epoch(epoch: Epoch, learner: Learner, subsets: dict[int, Tensor]) -> EpochCost:
    """Bit-width by bit-width, each on its own samples, learning from the labels and its teacher."""
    cost = EpochCost()
    order = learner.bits if epoch.bit_order == "descending" else tuple(reversed(learner.bits))
    for b in order:
        set_bits(learner.module, b, epoch.activation_bits)
        for x, y, idx in epoch.batches(subsets[b]):
            targets = epoch.teacher.targets(learner.model, x, b, {}, epoch.activation_bits)
            logits = learner.model(x)
            loss = bit_loss(logits, y, targets, epoch.label_weight, epoch.sampler.loss_weights(b, idx))
            epoch.step(learner, loss, b)
            epoch.observe(b, idx, logits)
            cost[b].add_step(len(x), loss.item(), len(x) if epoch.teacher.costs_a_forward(b, {}) else 0)
    return cost


def joint_epoch(epoch: Epoch, learner: Learner, subsets: dict[int, Tensor]) -> EpochCost:
    """Every bit-width on each batch (descending), each learning from its teacher; one optimizer step."""
    cost = EpochCost()
    for x, y, idx in epoch.batches(subsets[learner.bits[0]]):
        step = joint_step(learner.model, x, y, learner.bits, epoch.teacher, epoch.label_weight, epoch.activation_bits)
        epoch.observe(learner.bits[0], idx, step.top_logits)
        for b, loss in step.losses.items():
            cost[b].add_step(step.rows[b], loss.item(), step.teacher_rows[b])
        epoch.step(learner, step.total, learner.bits[-1])  # gradients of all bit-widths summed
    return cost


def batch_epoch(epoch: Epoch, learner: Learner, subsets: dict[int, Tensor]) -> EpochCost:
    """Batches of the union of the bit-widths' subsets; each bit-width trains on its rows, distilling
    from the next-higher bit-width where that one saw the row (else from the label)."""
    members, union = membership(subsets, int(torch.cat(list(subsets.values())).max()) + 1)
    cost = EpochCost()
    for x, y, idx in epoch.batches(union):
        step = coreset_joint_step(learner.model, x, y, {b: members[b][idx] for b in learner.bits}, epoch.teacher,
                                  epoch.activation_bits)
        for b, loss in step.losses.items():
            cost[b].add_step(step.rows[b], loss.item())
        epoch.step(learner, step.total, learner.bits[-1])
    return cost


LOOPS = {"joint": joint_epoch, "sequential": sequential_epoch, "batch": batch_epoch}


def membership(subsets: dict[int, Tensor], n: int) -> tuple[dict[int, Tensor], Tensor]:
    """Boolean masks over ``n`` samples, one per bit-width's subset, and their union's indices."""
    masks = {b: torch.zeros(n, dtype=torch.bool) for b in subsets}
    for b, indices in subsets.items():
        masks[b][indices] = True
    return masks, torch.nonzero(torch.stack(list(masks.values())).any(0)).flatten()


def steps_per_epoch(loop: str, subsets: dict[int, Tensor], batch_size: int) -> int:
    """Optimizer steps of one learner in one epoch."""
    if loop == "sequential":
        sizes = [len(s) for s in subsets.values()]
    elif loop == "joint":
        sizes = [len(next(iter(subsets.values())))]
    else:
        sizes = [len(torch.unique(torch.cat(list(subsets.values()))))]
    return sum(math.ceil(size / batch_size) for size in sizes)
