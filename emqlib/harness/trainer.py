"""The trainer of a run: the method's epochs (:mod:`emqlib.train`) with everything a reproducible run adds.

:class:`Trainer` runs the epochs of one RunConfig: the subsets due (drawn on rank 0 under torchrun and
sent to the other processes, and recorded, packed, for replays and overlaps), the configuration's loop
for every learner, the learning-rate step, the test evaluation, one metrics row per epoch and bit-width
(loss, accuracy, cost, seconds of training and of selection apart), and a checkpoint after every epoch,
from which it resumes with the same result.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from ..bits import FULL_PRECISION
from ..coreset.samplers import Context, Reference, build_sampler
from ..data import batches
from ..distill import make_teacher
from ..inference import accuracy
from ..seeding import derive_seed, generator
from ..train import LOOPS, Epoch, EpochCost, NonFiniteLossError, steps_per_epoch
from . import checkpoint
from .build import Runtime, build_learners, load_run_data
from .config import RunConfig
from .distributed import all_sum, barrier, broadcast, is_distributed, rank, shard
from .storage import save_csv


class RunStoppedError(RuntimeError):
    """Training stopped on a non-finite loss; the run kept its last good checkpoint."""


class Trainer:
    """Trains the run ``config`` in ``run_dir``, resuming from its last checkpoint; ``replayed``: the recorded
    subsets of the run a ``replay`` rule repeats (:func:`emqlib.harness.runs.replayed_selections`)."""

    def __init__(self, config: RunConfig, run_dir: Path, runtime: Runtime = Runtime(),
                 reference: Reference | None = None, replayed: dict[tuple[int, int], Tensor] | None = None) -> None:
        if config.needs_reference and reference is None:
            raise ValueError("this configuration needs its full-precision reference run (see runs.get_run)")
        if config.record.record_trajectory and is_distributed():
            raise ValueError("record_trajectory needs every sample's output in one process; run it without torchrun")
        self.config, self.run_dir, self.runtime, self.reference = config, Path(run_dir), runtime, reference
        if runtime.threads:
            torch.set_num_threads(runtime.threads)
        if reference is not None:
            reference.model.to(runtime.torch_device())
        self.train_set, self.test_set = load_run_data(config)
        self.validation_set = load_run_data(config, "validation")[1] if config.record.validate else None
        self.learners = build_learners(config, reference, runtime)
        # whether each stretch of epochs ran compiled (a run killed and resumed may mix both; None: not recorded)
        self.compiled = {any(hasattr(l.model, "_orig_mod") for l in self.learners)}
        self.sampler = build_sampler(config.selection, Context(self.train_set, config.seed, config.optim.epochs,
                                                               config.model.activation_bits, reference, replayed))
        if self.sampler.watches_training() and is_distributed():
            raise ValueError(f"selection rule {config.selection.rule!r} reads every sample's training loss in one "
                             "process; run it without torchrun")
        self.teacher = make_teacher(config.training.teacher, reference.model if reference is not None else None)
        self.subsets: dict[tuple[int, int], Tensor] = {}  # (learner, bits) -> the samples trained on now
        self.history: dict[tuple[int, int], Tensor] = {}  # (epoch, bits) -> the subset drawn then, packed
        self.metrics: list[dict] = []
        self.trajectory = (torch.zeros(config.optim.epochs, len(self.train_set), self.train_set.num_classes,
                                       dtype=torch.float16) if config.record.record_trajectory else None)
        self.start_epoch = self._resume()

    def run(self) -> list[dict]:
        """Train the remaining epochs; returns the metrics rows (one per epoch and bit-width)."""
        for epoch in range(self.start_epoch, self.config.optim.epochs):
            try:
                rows = self.epoch(epoch)
                for row in rows:
                    if not math.isfinite(row["train_loss"]):
                        raise NonFiniteLossError(epoch, row["bits"])
            except NonFiniteLossError as error:
                kept = (f"the last good checkpoint (epoch {error.epoch - 1}) is kept in {self.run_dir}"
                        if error.epoch > 0 else "no checkpoint was written")
                raise RunStoppedError(f"{error}; the run stopped and {kept}; lower the learning rate "
                                      f"(optim.lr={self.config.optim.lr}) and start a new run") from None
            self.metrics.extend(rows)
            if rank() == 0:
                self._checkpoint(epoch)
            barrier()
        return self.metrics

    def indices(self, learner_index: int, bits: tuple[int, ...]) -> dict[int, Tensor]:
        """Each bit-width's training samples now: its subset, or the whole training set."""
        return {b: self.subsets.get((learner_index, b), torch.arange(len(self.train_set))) for b in bits}

    def epoch(self, epoch: int) -> list[dict]:
        """Draw the subsets due, train every learner, evaluate; one metrics row per bit-width."""
        torch.manual_seed(derive_seed(self.config.seed, "epoch", epoch))
        start = time.perf_counter()
        cost = self._select(epoch)
        selection_seconds, start = time.perf_counter() - start, time.perf_counter()
        trained, optimizer_steps = self._train(epoch)
        cost = cost.merge(trained)
        train_seconds, start = time.perf_counter() - start, time.perf_counter()
        rows = self._evaluate(epoch, cost)
        # per epoch, like the seconds: every row of the epoch carries the epoch's total
        totals = dict(optimizer_steps=optimizer_steps, train_seconds=train_seconds, selection_seconds=selection_seconds,
                      eval_seconds=time.perf_counter() - start)
        return [{**row, **totals} for row in rows]

    def _select(self, epoch: int) -> EpochCost:
        """Draw the subsets due this epoch; rank 0 scores and selects, the other processes receive its subsets."""
        cost = EpochCost()
        if self.sampler.due(epoch):
            for i, learner in enumerate(self.learners):
                for b in learner.bits:
                    chosen = self.sampler.select(epoch, learner.module, b) if rank() == 0 else None
                    self.subsets[(i, b)] = broadcast(chosen.indices if chosen else None)
                    self.history[(epoch, b)] = pack_subset(self.subsets[(i, b)], len(self.train_set))
                    cost[b].selection_forwards += chosen.forwards if chosen else 0
        return cost

    def steps(self, epoch_subsets: list[dict[int, Tensor]]) -> list[int]:
        """Each learner's optimizer steps in an epoch on these subsets (one per batch, in every loop)."""
        return [steps_per_epoch(self.config.training.loop, subsets, self.config.optim.batch_size)
                for subsets in epoch_subsets]

    def _train(self, epoch: int) -> tuple[EpochCost, int]:
        """One epoch of the configuration's loop for every learner, its learning rate set before each step from
        the share of training done; returns the cost and the optimizer steps taken."""
        c, cost = self.config, EpochCost()
        subsets = [self.indices(i, l.bits) for i, l in enumerate(self.learners)]
        steps = self.steps(subsets)
        device, data_draw = self.runtime.torch_device(), generator(c.seed, "data", epoch)

        def annealed(learner, n_steps: int):
            """Shuffled batches on the training device, the learner's learning rate set before each (one step each)."""
            done = 0

            def batches_of(indices: Tensor):
                nonlocal done
                for x, y, idx in batches(self.train_set, indices, c.optim.batch_size, data_draw, augment=c.data.augment):
                    learner.anneal((epoch + done / n_steps) / c.optim.epochs)
                    yield shard(x).to(device, memory_format=self.runtime.memory_format), shard(y).to(device), shard(idx)
                    done += 1
                    bar.update()
            return batches_of

        with tqdm(total=sum(steps), desc=f"epoch {epoch + 1}/{c.optim.epochs}", leave=False, dynamic_ncols=True,
                  disable=not self.runtime.progress or rank() != 0) as bar:
            for learner, learner_subsets, n_steps in zip(self.learners, subsets, steps):
                state = Epoch(epoch, annealed(learner, n_steps), self.teacher, c.training.label_weight, self.sampler,
                              c.model.activation_bits, c.training.bit_order,
                              self._record if self.trajectory is not None else None)
                learner.model.train()
                cost = cost.merge(LOOPS[c.training.loop](state, learner, learner_subsets))
        return cost, sum(steps)

    def _record(self, bits: int, indices: Tensor, logits: Tensor) -> None:
        """Training-pass softmax outputs by sample index (the trajectory TDDS and forgetting use)."""
        epoch = len(self.metrics) // max(1, sum(len(l.bits) for l in self.learners))
        self.trajectory[epoch, indices] = F.softmax(logits.detach(), dim=1).to("cpu", self.trajectory.dtype)

    def _evaluate(self, epoch: int, cost: EpochCost) -> list[dict]:
        """Test (and, with ``record.validate``, validation) accuracy every ``eval_every`` epochs and after the last,
        and the epoch's totals over processes."""
        c = self.config
        evaluate = (epoch + 1) % c.record.eval_every == 0 or epoch == c.optim.epochs - 1
        missing = {"accuracy": math.nan, "loss": math.nan}
        rows = []
        for i, learner in enumerate(self.learners):
            for b, subset in self.indices(i, learner.bits).items():
                evaluation = accuracy(learner.module, self.test_set, b, c.model.activation_bits) if evaluate else missing
                validation = (accuracy(learner.module, self.validation_set, b, c.model.activation_bits)
                              if evaluate and self.validation_set is not None else missing)
                k = cost[b]
                passes, teacher, selection, loss_sum = all_sum(
                    [k.sample_passes, k.teacher_forwards, k.selection_forwards, k.loss_sum])
                rows.append({"epoch": epoch, "bits": b, "train_loss": loss_sum / max(passes, 1),
                             "test_accuracy": evaluation["accuracy"], "test_loss": evaluation["loss"],
                             "val_accuracy": validation["accuracy"],
                             "sample_passes": int(passes), "teacher_forwards": int(teacher),
                             "selection_forwards": int(selection), "subset_size": len(subset),
                             "subset_flipped": int(self.train_set.flipped[subset].sum()),
                             "lr": learner.optimizer.param_groups[0]["lr"]})
        return rows

    def recorded(self) -> dict:
        """What ``selections.pt`` holds: the training set's size and every subset drawn, packed by
        (epoch, bits); :func:`unpack_selections` gives the sorted indices back."""
        return {"n": len(self.train_set), "subsets": dict(self.history)}

    def _checkpoint(self, epoch: int) -> None:
        checkpoint.save(self.run_dir, epoch, {
            "epoch": epoch, "config": self.config.to_dict(),
            "learners": [checkpoint.learner_state(l) for l in self.learners], "subsets": self.subsets,
            "history": self.history, "metrics": self.metrics, "trajectory": self.trajectory,
            "sampler": self.sampler.state_dict(), "compiled": sorted(self.compiled, key=str)})
        if self.config.record.snapshot_every and (epoch + 1) % self.config.record.snapshot_every == 0:
            checkpoint.save_snapshot(self.run_dir, epoch, [l.module.state_dict() for l in self.learners])
        save_csv(pd.DataFrame(self.metrics), self.run_dir / "metrics.csv")

    def _resume(self) -> int:
        """Restore the last checkpoint, if any; returns the first epoch still to train."""
        state = checkpoint.resume(self.run_dir, self.config.to_dict(), self.learners)
        if state is None:
            return 0
        self.subsets, self.metrics, self.trajectory = state["subsets"], state["metrics"], state["trajectory"]
        self.history = state["history"]
        self.compiled.update(state.get("compiled", [None]))
        self.sampler.load_state_dict(state["sampler"])
        return state["epoch"] + 1


def pack_subset(indices: Tensor, n: int) -> Tensor:
    """The set ``indices`` of ``range(n)`` as a bit mask packed 8 samples to a byte (uint8)."""
    mask = np.zeros(n, dtype=bool)
    mask[indices.numpy()] = True
    return torch.from_numpy(np.packbits(mask))


def unpack_selections(recorded: dict) -> dict[tuple[int, int], Tensor]:
    """The sorted indices of every subset in :meth:`Trainer.recorded`'s record."""
    n = recorded["n"]
    return {key: torch.from_numpy(np.flatnonzero(np.unpackbits(packed.numpy(), count=n))).long()
            for key, packed in recorded["subsets"].items()}


__all__ = ["Trainer", "RunStoppedError", "pack_subset", "unpack_selections", "FULL_PRECISION"]
