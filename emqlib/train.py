"""Multi-bit training: one code path for Dedicated, joint (Any-Precision) and EMQ (docs/method.md §5-§6).

Each epoch every learner (see :mod:`emqlib.harness.build`) goes through one of three loops, each a
function that returns the epoch's cost record (:class:`emqlib.harness.cost.EpochCost`):

* :func:`joint_epoch`: every bit-width on every batch, recursive distillation from the
  next-higher bit-width, one optimizer step (:func:`emqlib.distill.joint_step`);
* :func:`sequential_epoch`: bit-width by bit-width, each over its own coreset, a step per batch
  (Dedicated is this loop with one bit-width on the full data);
* :func:`batch_epoch`: batches of the union of the coresets, each bit-width on its rows.

:class:`Trainer` runs the epochs: coreset selection, the loops, evaluation, one metrics row per
epoch and bit-width (loss, test accuracy, cost, seconds of training and of selection apart),
and a checkpoint after every epoch, from which it resumes with the same result.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from .harness import checkpoint
from .bits import set_bits
from .harness.build import Learner, Runtime, build_learners, load_run_data
from .harness.config import RunConfig
from .coreset.sampling import CoresetSampler, Reference
from .harness.cost import EpochCost
from .data import ImageDataset, batches
from .distill import coreset_joint_step, joint_step, label_mean, soft_cross_entropy_per_row, teacher_probs
from .harness.distributed import all_sum, barrier, broadcast, is_distributed, rank, shard
from .inference import accuracy
from .seeding import derive_seed, generator
from .harness.storage import save_csv


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


@dataclass
class EpochContext:
    """What every loop of one epoch shares: the data, the teacher, the trajectory and the step."""

    config: RunConfig
    epoch: int
    train_set: ImageDataset
    data_generator: torch.Generator
    runtime: Runtime
    run_dir: Path
    reference: Reference | None
    trajectory: Tensor | None  # [epochs, N, C] training softmax outputs, or None
    sampler: CoresetSampler  # sees each training pass's outputs (free scores) and weights its losses (InfoBatch)
    bar: tqdm

    def batches(self, indices: Tensor):
        """Shuffled batches of ``indices`` (this process's rows), on the training device."""
        c, device = self.config, self.runtime.torch_device()
        for x, y, idx in batches(self.train_set, indices, c.batch_size, self.data_generator, augment=c.augment):
            yield shard(x).to(device, memory_format=self.runtime.memory_format), shard(y).to(device), shard(idx)

    def step(self, learner: Learner, loss: Tensor, bits: int) -> None:
        """One optimizer step on ``loss``; stops the run if the loss is not finite."""
        if not torch.isfinite(loss):
            raise non_finite(self.config, self.run_dir, self.epoch, bits)
        learner.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        learner.optimizer.step()
        self.bar.update()

    def record(self, idx: Tensor, logits: Tensor) -> None:
        """Training-pass softmax outputs by sample index (the trajectory TDDS and forgetting use)."""
        if self.trajectory is not None:
            self.trajectory[self.epoch, idx] = F.softmax(logits.detach(), dim=1).to("cpu", self.trajectory.dtype)


def non_finite(config: RunConfig, run_dir: Path, epoch: int, bits: int) -> NonFiniteLossError:
    kept = f"the last good checkpoint (epoch {epoch - 1}) is kept in {run_dir}" if epoch > 0 else \
        "no checkpoint was written"
    return NonFiniteLossError(f"training loss became non-finite at epoch {epoch} ({bits}-bit); the run stopped and "
                              f"{kept}; lower the learning rate (lr={config.lr}) and start a new run")


# ---------------------------------------------------------------- the three loops

def sequential_epoch(ctx: EpochContext, learner: Learner, subsets: dict[int, Tensor]) -> EpochCost:
    """Bit-width by bit-width, each on its own samples; labels plus the configured teacher."""
    c, cost = ctx.config, EpochCost()
    order = learner.bits if c.bit_order == "descending" else tuple(reversed(learner.bits))
    for b in order:
        set_bits(learner.module, b, c.activation_bits)
        for x, y, idx in ctx.batches(subsets[b]):
            reference = ctx.reference.model if ctx.reference is not None else None
            teacher = teacher_probs(c.distillation, learner.model, x, b, c.activation_bits, reference)
            logits = learner.model(x)
            label_losses = F.cross_entropy(logits, y, reduction="none")
            distil_losses = soft_cross_entropy_per_row(logits, teacher) if teacher is not None else None
            weights = ctx.sampler.loss_weights(b, idx)
            if weights is None:
                # label_mean reduces exactly as F.cross_entropy would, so unweighted runs keep their numbers
                loss = label_mean(label_losses)
                if distil_losses is not None:
                    loss = c.label_loss_weight * loss + distil_losses.mean()
            else:
                per_sample = (label_losses if distil_losses is None
                              else c.label_loss_weight * label_losses + distil_losses)
                loss = (per_sample * weights.to(logits.device)).mean()
            ctx.step(learner, loss, b)
            ctx.sampler.observe(b, idx, logits)
            ctx.record(idx, logits)
            cost[b].add_step(len(x), loss.item(), teacher_rows=len(x) if teacher is not None else 0)
    return cost


def joint_epoch(ctx: EpochContext, learner: Learner, subsets: dict[int, Tensor]) -> EpochCost:
    """Every bit-width on each batch (descending); bit-width k distils from k-1; one step."""
    cost = EpochCost()
    for x, y, idx in ctx.batches(subsets[learner.bits[0]]):
        step = joint_step(learner.model, x, y, learner.bits, ctx.config.activation_bits)
        ctx.record(idx, step.top_logits)
        for b, loss in step.losses.items():
            cost[b].add_step(step.rows[b], loss.item())
        ctx.step(learner, step.total, learner.bits[-1])  # gradients of all bit-widths summed
    return cost


def batch_epoch(ctx: EpochContext, learner: Learner, subsets: dict[int, Tensor]) -> EpochCost:
    """Batches of the union of the bit-widths' coresets; each bit-width trains on its rows,
    distilling from the next-higher bit-width where that one saw the row (else labels)."""
    members, union = membership(subsets, len(ctx.train_set))
    cost = EpochCost()
    for x, y, idx in ctx.batches(union):
        step = coreset_joint_step(learner.model, x, y, {b: members[b][idx] for b in learner.bits},
                                  ctx.config.activation_bits)
        for b, loss in step.losses.items():
            cost[b].add_step(step.rows[b], loss.item())
        ctx.step(learner, step.total, learner.bits[-1])
    return cost


LOOPS = {"joint": joint_epoch, "sequential": sequential_epoch, "batch": batch_epoch}


def membership(subsets: dict[int, Tensor], n: int) -> tuple[dict[int, Tensor], Tensor]:
    """Boolean masks over the training set, one per bit-width's subset, and their union's indices."""
    masks = {b: torch.zeros(n, dtype=torch.bool) for b in subsets}
    for b, indices in subsets.items():
        masks[b][indices] = True
    return masks, torch.nonzero(torch.stack(list(masks.values())).any(0)).flatten()


def steps_per_epoch(loop: str, subsets: dict[int, Tensor], n: int, batch_size: int) -> int:
    """Optimizer steps of one learner in one epoch (for the progress bar)."""
    sizes = {"batch": lambda: [len(membership(subsets, n)[1])], "joint": lambda: [len(next(iter(subsets.values())))],
             "sequential": lambda: [len(s) for s in subsets.values()]}[loop]()
    return sum(math.ceil(size / batch_size) for size in sizes)


# ---------------------------------------------------------------- the trainer

class Trainer:
    """Trains the run ``config`` in ``run_dir``, resuming from its last checkpoint; ``replayed``: the
    recorded subsets of the run that ``config.replay_from`` names (:func:`emqlib.harness.runs.replayed_selections`)."""

    def __init__(self, config: RunConfig, run_dir: Path, runtime: Runtime = Runtime(),
                 reference: Reference | None = None, replayed: dict[tuple[int, int], Tensor] | None = None) -> None:
        if config.needs_reference and reference is None:
            raise ValueError("this configuration needs its full-precision reference run (see runs.get_run)")
        if config.record_trajectory and is_distributed():
            raise ValueError("record_trajectory needs every sample's output in one process; run it without torchrun")
        self.config, self.run_dir, self.runtime, self.reference = config, Path(run_dir), runtime, reference
        if runtime.threads:
            torch.set_num_threads(runtime.threads)
        if reference is not None:
            reference.model.to(runtime.torch_device())
        self.train_set, self.test_set = load_run_data(config)
        self.learners = build_learners(config, reference, runtime)
        self.sampler = CoresetSampler(config, self.train_set, reference, replayed)
        self.subsets: dict[tuple[int, int], Tensor] = {}  # (learner, bits) -> coreset indices
        self.metrics: list[dict] = []
        self.trajectory = (torch.zeros(config.epochs, len(self.train_set), self.train_set.num_classes,
                                       dtype=torch.float16) if config.record_trajectory else None)
        self.start_epoch = self._resume()

    def run(self) -> list[dict]:
        """Train the remaining epochs; returns the metrics rows (one per epoch and bit-width)."""
        for epoch in range(self.start_epoch, self.config.epochs):
            rows = self.epoch(epoch)
            self.metrics.extend(rows)
            for row in rows:
                if not math.isfinite(row["train_loss"]):
                    raise non_finite(self.config, self.run_dir, epoch, row["bits"])
            if rank() == 0:
                self._checkpoint(epoch)
            barrier()
        return self.metrics

    def indices(self, learner_index: int, learner: Learner) -> dict[int, Tensor]:
        """Each bit-width's training samples now: its coreset, or the whole training set."""
        return {b: self.subsets.get((learner_index, b), torch.arange(len(self.train_set))) for b in learner.bits}

    def epoch(self, epoch: int) -> list[dict]:
        """Select coresets, train every learner, evaluate; one metrics row per bit-width."""
        torch.manual_seed(derive_seed(self.config.seed, "epoch", epoch))
        start = time.perf_counter()
        cost = self._select(epoch)
        selection_seconds, start = time.perf_counter() - start, time.perf_counter()
        cost = cost.merge(self._train(epoch))
        train_seconds, start = time.perf_counter() - start, time.perf_counter()
        rows = self._evaluate(epoch, cost)
        seconds = dict(train_seconds=train_seconds, selection_seconds=selection_seconds,
                       eval_seconds=time.perf_counter() - start)
        return [{**row, **seconds} for row in rows]

    def _select(self, epoch: int) -> EpochCost:
        """Draw the coresets due this epoch; rank 0 scores and selects, the other processes receive its subsets."""
        cost = EpochCost()
        if self.sampler.due(epoch):
            for i, learner in enumerate(self.learners):
                for b in learner.bits:
                    chosen = self.sampler.select(epoch, learner.module, b) if rank() == 0 else None
                    self.subsets[(i, b)] = broadcast(chosen.indices if chosen else None)
                    cost[b].selection_forwards += chosen.forwards if chosen else 0
        return cost

    def _train(self, epoch: int) -> EpochCost:
        """One epoch of the configuration's loop for every learner, then its learning-rate step."""
        c, cost = self.config, EpochCost()
        steps = sum(steps_per_epoch(c.training_loop, self.indices(i, l), len(self.train_set), c.batch_size)
                    for i, l in enumerate(self.learners))
        with tqdm(total=steps, desc=f"epoch {epoch + 1}/{c.epochs}", disable=not self.runtime.progress or rank() != 0,
                  leave=False, dynamic_ncols=True) as bar:
            ctx = EpochContext(c, epoch, self.train_set, generator(c.seed, "data", epoch), self.runtime, self.run_dir,
                               self.reference, self.trajectory, self.sampler, bar)
            for i, learner in enumerate(self.learners):
                learner.model.train()
                cost = cost.merge(LOOPS[c.training_loop](ctx, learner, self.indices(i, learner)))
                learner.scheduler.step()
        return cost

    def _evaluate(self, epoch: int, cost: EpochCost) -> list[dict]:
        """Test accuracy (every ``eval_every`` epochs and after the last) and the epoch's totals over processes."""
        c = self.config
        evaluate = (epoch + 1) % c.eval_every == 0 or epoch == c.epochs - 1
        rows = []
        for i, learner in enumerate(self.learners):
            for b, subset in self.indices(i, learner).items():
                evaluation = (accuracy(learner.module, self.test_set, b, c.activation_bits) if evaluate
                              else {"accuracy": math.nan, "loss": math.nan})
                k = cost[b]
                passes, teacher, selection, loss_sum = all_sum(
                    [k.sample_passes, k.teacher_forwards, k.selection_forwards, k.loss_sum])
                rows.append({"epoch": epoch, "bits": b, "train_loss": loss_sum / max(passes, 1),
                             "test_accuracy": evaluation["accuracy"], "test_loss": evaluation["loss"],
                             "sample_passes": int(passes), "teacher_forwards": int(teacher),
                             "selection_forwards": int(selection), "subset_size": len(subset),
                             "subset_flipped": int(self.train_set.flipped[subset].sum()),
                             "lr": learner.optimizer.param_groups[0]["lr"]})
        return rows

    def _checkpoint(self, epoch: int) -> None:
        checkpoint.save(self.run_dir, epoch, {
            "epoch": epoch, "config": self.config.to_dict(), "learners": [checkpoint.learner_state(l) for l in self.learners],
            "subsets": self.subsets, "metrics": self.metrics, "trajectory": self.trajectory,
            "sampler": self.sampler.state_dict()})
        if self.config.snapshot_every and (epoch + 1) % self.config.snapshot_every == 0:
            checkpoint.save_snapshot(self.run_dir, epoch, [l.module.state_dict() for l in self.learners])
        save_csv(pd.DataFrame(self.metrics), self.run_dir / "metrics.csv")

    def _resume(self) -> int:
        """Restore the last checkpoint, if any; returns the first epoch still to train."""
        state = checkpoint.resume(self.run_dir, self.config.to_dict(), self.learners)
        if state is None:
            return 0
        self.subsets, self.metrics, self.trajectory = state["subsets"], state["metrics"], state["trajectory"]
        self.sampler.load_state_dict(state["sampler"])
        return state["epoch"] + 1
