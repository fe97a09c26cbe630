"""Multi-bit training: one code path for Dedicated, joint (Any-Precision) and EMQ (SPEC 5, 6).

A run trains one or more *learners* (a model with its optimizer and the bit-widths it
trains): Dedicated has one learner per bit-width, joint and EMQ one learner for all of them.
Each epoch a learner goes through one of three loops:

* ``joint``: every bit-width on every batch, recursive distillation from the next-higher
  bit-width, one optimizer step (SPEC 5.1);
* ``sequential``: bit-width by bit-width, each over its own coreset, a step per batch
  (SPEC 6.2 a; Dedicated is this loop with one bit-width on the full data);
* ``batch``: batches of the union of the coresets, each bit-width on its rows (SPEC 6.2 b).

Per epoch the run records loss and test accuracy per bit-width, wall-clock seconds of
training and of coreset selection apart, and the cost in per-sample passes. It checkpoints
after every epoch and resumes from the last checkpoint with the same result.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from .bits import FULL_PRECISION, set_bits
from .config import RunConfig
from .coreset.sampling import CoresetSampler, Reference
from .data import DATASET_SHAPES, ImageDataset, add_label_noise, balanced_subset, batches, load_dataset
from .inference import accuracy
from .models import build_model
from .seeding import derive_seed, generator
from .storage import load_json, load_torch, save_csv, save_json, save_torch


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


@dataclass
class Runtime:
    """How a run executes, not what it computes: not part of the configuration or its hash."""

    threads: int | None = None  # torch intra-op threads (None: leave torch's default)
    progress: bool = field(default_factory=lambda: os.environ.get("EMQ_PROGRESS", "1") != "0")  # tqdm bar per epoch
    device: str = "auto"  # "auto": CUDA when available (the paper profile), else CPU
    channels_last: bool = True  # NHWC tensors: 11-14% faster training steps on CPU (make bench)
    compile: bool = False  # torch.compile the model: ~1.8x faster steps, but ~20-45 s to compile per bit-width

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


@dataclass
class Learner:
    """One model, its optimizer and learning-rate schedule, and the bit-widths it trains."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    bits: tuple[int, ...]
    module: nn.Module = field(init=False)  # the model without DistributedDataParallel / torch.compile wrappers

    def __post_init__(self) -> None:
        module = self.model
        while isinstance(module, nn.parallel.DistributedDataParallel) or hasattr(module, "_orig_mod"):
            module = module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module._orig_mod
        self.module = module


# ---------------------------------------------------------------- building blocks

def load_run_data(config: RunConfig) -> tuple[ImageDataset, ImageDataset]:
    """Training and test sets of a run: class-balanced subsets (fixed draw) and label noise."""
    train, test = load_dataset(config.dataset, train=True), load_dataset(config.dataset, train=False)
    if config.train_per_class is not None:
        train = train.subset(balanced_subset(train.targets, n_per_class=config.train_per_class))
    if config.test_per_class is not None:
        test = test.subset(balanced_subset(test.targets, n_per_class=config.test_per_class))
    if config.label_noise > 0:
        train = add_label_noise(train, config.label_noise)
    return train, test


def build_run_model(config: RunConfig, bits: tuple[int, ...]) -> nn.Module:
    num_classes, in_channels, image_size = DATASET_SHAPES[config.dataset]
    return build_model(config.model, num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                       trained_bits=bits, bn_mode=config.bn_mode, spec=config.quant_spec(), width=config.width)


def learner_bits(config: RunConfig) -> list[tuple[int, ...]]:
    """The bit-widths of each learner: one per bit-width for Dedicated, all together otherwise."""
    return [(b,) for b in config.bits] if config.method == "dedicated" else [config.bits]


def _optimizer(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    """LSQ step sizes at lr/10 and no weight decay; weight decay on conv weights only (SPEC 2.4)."""
    steps, conv_weights, rest = [], [], []
    for name, p in model.named_parameters():
        (steps if ".steps." in name else conv_weights if p.dim() == 4 else rest).append(p)
    groups = [{"params": conv_weights, "weight_decay": config.weight_decay},
              {"params": rest, "weight_decay": 0.0},
              {"params": steps, "weight_decay": 0.0, "lr": config.lr / 10}]
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)


def _scheduler(config: RunConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch learning-rate schedule."""
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.lr_schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(config.milestones), gamma=0.1)
    if config.lr_schedule == "linear":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 1 - e / config.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 1.0)


def build_learners(config: RunConfig, reference: Reference | None, runtime: Runtime) -> list[Learner]:
    learners = []
    for i, bits in enumerate(learner_bits(config)):
        torch.manual_seed(derive_seed(config.seed, "init", i))
        model = build_run_model(config, bits)
        if config.init_from_reference:
            load_reference_weights(model, reference.model)
        model = model.to(runtime.torch_device(), memory_format=runtime.memory_format)
        if _distributed():
            # switchable BN copies and LSQ steps of other bit-widths sit out the steps of one bit-width
            unused = config.training_loop != "joint" and (config.bn_mode == "switchable" or config.weight_quantizer == "lsq")
            model = nn.parallel.DistributedDataParallel(model, find_unused_parameters=unused or config.training_loop == "batch")
        optimizer = _optimizer(config, model)
        if runtime.compile:
            model = torch.compile(model)
        learners.append(Learner(model, optimizer, _scheduler(config, optimizer), bits))
    return learners


def load_reference_weights(model: nn.Module, reference: nn.Module) -> None:
    """Copy a full-precision model's weights into ``model``; its one BatchNorm goes to every
    bit-width's BatchNorm (switchable mode). Quantizer steps keep their first-batch init."""
    source = reference.state_dict()
    target = model.state_dict()
    for name in target:
        if name in source:
            target[name] = source[name]
            continue
        parts = name.split(".")
        if "norms" in parts:  # switchable copy <- the reference's single BatchNorm
            i = parts.index("norms")
            shared = ".".join(parts[:i + 1] + ["shared"] + parts[i + 2:])
            if shared in source:
                target[name] = source[shared]
    model.load_state_dict(target)


def soft_cross_entropy(logits: Tensor, teacher_probs: Tensor) -> Tensor:
    """-sum_c q_c log softmax(logits)_c, mean over the batch (distillation at T = 1, SPEC 5.1)."""
    return -(teacher_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


# ---------------------------------------------------------------- distributed helpers

def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _rank() -> int:
    return dist.get_rank() if _distributed() else 0


def _shard(x: Tensor) -> Tensor:
    """This process's rows of a global batch."""
    return x[_rank()::dist.get_world_size()] if _distributed() else x


def _all_sum(values: list[float]) -> list[float]:
    if not _distributed():
        return values
    t = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def _broadcast(obj):
    if not _distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# ---------------------------------------------------------------- the trainer

class Trainer:
    """Trains the run ``config`` in ``run_dir``, resuming from its last checkpoint."""

    def __init__(self, config: RunConfig, run_dir: Path, runtime: Runtime = Runtime(),
                 reference: Reference | None = None) -> None:
        if config.needs_reference and reference is None:
            raise ValueError("this configuration needs its full-precision reference run (see runs.get_run)")
        self.config = config
        self.run_dir = Path(run_dir)
        self.runtime = runtime
        self.reference = reference
        if config.record_trajectory and _distributed():
            raise ValueError("record_trajectory needs every sample's output in one process; run it without torchrun")
        if runtime.threads:
            torch.set_num_threads(runtime.threads)
        self.device = runtime.torch_device()
        if reference is not None:
            reference.model.to(self.device)
        self.train_set, self.test_set = load_run_data(config)
        self.learners = build_learners(config, reference, runtime)
        self.sampler = CoresetSampler(config, self.train_set, reference)
        self.subsets: dict[tuple[int, int], Tensor] = {}
        self.metrics: list[dict] = []
        self.trajectory = (torch.zeros(config.epochs, len(self.train_set), self.train_set.num_classes,
                                       dtype=torch.float16) if config.record_trajectory else None)
        self.start_epoch = self._resume()

    # ---- checkpoints

    def _state(self, epoch: int) -> dict:
        return {"epoch": epoch, "config": self.config.to_dict(),
                "learners": [{"model": l.module.state_dict(), "optimizer": l.optimizer.state_dict(),
                              "scheduler": l.scheduler.state_dict()} for l in self.learners],
                "subsets": self.subsets, "metrics": self.metrics, "trajectory": self.trajectory}

    def _resume(self) -> int:
        pointer = self.run_dir / "checkpoint.json"
        if not pointer.exists():
            return 0
        info = load_json(pointer)
        state = load_torch(self.run_dir / info["file"], info["sha256"])
        if state["config"] != self.config.to_dict():
            raise ValueError(f"checkpoint {self.run_dir / info['file']} belongs to another configuration")
        for learner, saved in zip(self.learners, state["learners"]):
            learner.module.load_state_dict(saved["model"])
            learner.optimizer.load_state_dict(saved["optimizer"])
            learner.scheduler.load_state_dict(saved["scheduler"])
        self.subsets, self.metrics, self.trajectory = state["subsets"], state["metrics"], state["trajectory"]
        return state["epoch"] + 1

    def _checkpoint(self, epoch: int) -> None:
        """Write the new checkpoint, then point to it, then drop the old one: a kill at any
        moment leaves a pointer to a complete checkpoint."""
        if _rank() != 0:
            return
        old = self.run_dir / "checkpoint.json"
        old_file = load_json(old)["file"] if old.exists() else None
        name = f"checkpoint-{epoch:04d}.pt"
        digest = save_torch(self._state(epoch), self.run_dir / name)
        save_json(old, {"epoch": epoch, "file": name, "sha256": digest})
        if old_file and old_file != name:
            (self.run_dir / old_file).unlink(missing_ok=True)
        if self.config.snapshot_every and (epoch + 1) % self.config.snapshot_every == 0:
            save_torch([l.module.state_dict() for l in self.learners], self.run_dir / "snapshots" / f"epoch-{epoch:04d}.pt")
        save_csv(metrics_frame(self.metrics), self.run_dir / "metrics.csv")

    # ---- epochs

    def run(self) -> list[dict]:
        """Train the remaining epochs; returns the metrics rows (one per epoch and bit-width)."""
        for epoch in range(self.start_epoch, self.config.epochs):
            self._epoch(epoch)
            self._checkpoint(epoch)
            if _distributed():
                dist.barrier()
        return self.metrics

    def _epoch(self, epoch: int) -> None:
        c = self.config
        torch.manual_seed(derive_seed(c.seed, "epoch", epoch))
        data_generator = generator(c.seed, "data", epoch)
        cost = {b: {"sample_passes": 0, "teacher_forwards": 0, "selection_forwards": 0, "loss_sum": 0.0}
                for b in c.bits}

        start = time.perf_counter()
        if self.sampler.due(epoch):
            for i, learner in enumerate(self.learners):
                for b in learner.bits:
                    # rank 0 scores and selects; the other processes receive its subset
                    chosen = self.sampler.select(epoch, learner.module, b) if _rank() == 0 else None
                    self.subsets[(i, b)] = _broadcast(chosen.indices if chosen else None)
                    cost[b]["selection_forwards"] += chosen.forwards if chosen else 0
        selection_seconds = time.perf_counter() - start

        start = time.perf_counter()
        total_batches = sum(self._batch_count(i, learner) for i, learner in enumerate(self.learners))
        with tqdm(total=total_batches, desc=f"epoch {epoch + 1}/{c.epochs}", disable=not self.runtime.progress or _rank() != 0,
                  leave=False, dynamic_ncols=True) as bar:
            for i, learner in enumerate(self.learners):
                learner.model.train()
                loop = {"joint": self._joint_epoch, "sequential": self._sequential_epoch,
                        "batch": self._batch_epoch}[c.training_loop]
                loop(epoch, i, learner, data_generator, cost, bar)
                learner.scheduler.step()
        train_seconds = time.perf_counter() - start

        start = time.perf_counter()
        rows = []
        evaluate = (epoch + 1) % c.eval_every == 0 or epoch == c.epochs - 1
        for i, learner in enumerate(self.learners):
            for b in learner.bits:
                evaluation = (accuracy(learner.module, self.test_set, b, c.activation_bits) if evaluate
                              else {"accuracy": math.nan, "loss": math.nan})
                subset = self._indices(i, b)
                passes, teacher, selection, loss_sum = _all_sum(
                    [cost[b]["sample_passes"], cost[b]["teacher_forwards"], cost[b]["selection_forwards"],
                     cost[b]["loss_sum"]])
                rows.append({"epoch": epoch, "bits": b, "train_loss": loss_sum / max(passes, 1),
                             "test_accuracy": evaluation["accuracy"], "test_loss": evaluation["loss"],
                             "sample_passes": int(passes), "teacher_forwards": int(teacher),
                             "selection_forwards": int(selection), "subset_size": len(subset),
                             "subset_flipped": int(self.train_set.flipped[subset].sum()),
                             "lr": learner.optimizer.param_groups[0]["lr"]})
        eval_seconds = time.perf_counter() - start
        for row in rows:
            row.update(train_seconds=train_seconds, selection_seconds=selection_seconds, eval_seconds=eval_seconds)
        self.metrics.extend(rows)
        for row in rows:
            if not math.isfinite(row["train_loss"]):
                self._non_finite(epoch, row["bits"])

    def _union(self, learner_index: int, learner: Learner) -> tuple[dict[int, Tensor], Tensor]:
        """Membership masks of each bit-width's coreset and the indices of their union."""
        members = {b: torch.zeros(len(self.train_set), dtype=torch.bool) for b in learner.bits}
        for b in learner.bits:
            members[b][self._indices(learner_index, b)] = True
        return members, torch.nonzero(torch.stack(list(members.values())).any(0)).flatten()

    def _batch_count(self, learner_index: int, learner: Learner) -> int:
        """Optimizer steps of one learner in one epoch (for the progress bar)."""
        loop = self.config.training_loop
        sizes = ([len(self._union(learner_index, learner)[1])] if loop == "batch" else
                 [len(self._indices(learner_index, learner.bits[0]))] if loop == "joint" else
                 [len(self._indices(learner_index, b)) for b in learner.bits])
        return sum(math.ceil(n / self.config.batch_size) for n in sizes)

    def _indices(self, learner_index: int, bits: int) -> Tensor:
        """The training samples of ``bits`` now: its coreset, or the whole training set."""
        return self.subsets.get((learner_index, bits), torch.arange(len(self.train_set)))

    def _non_finite(self, epoch: int, bits: int) -> None:
        kept = f"the last good checkpoint (epoch {epoch - 1}) is kept in {self.run_dir}" if epoch > 0 else \
            "no checkpoint was written"
        raise NonFiniteLossError(f"training loss became non-finite at epoch {epoch} ({bits}-bit); the run stopped and "
                                 f"{kept}; lower the learning rate (lr={self.config.lr}) and start a new run")

    def _step(self, learner: Learner, loss: Tensor, epoch: int, bits: int) -> None:
        if not torch.isfinite(loss):
            self._non_finite(epoch, bits)
        learner.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        learner.optimizer.step()

    def _batches(self, indices: Tensor, data_generator: torch.Generator):
        for x, y, idx in batches(self.train_set, indices, self.config.batch_size, data_generator,
                                 augment=self.config.augment):
            yield (_shard(x).to(self.device, memory_format=self.runtime.memory_format), _shard(y).to(self.device),
                   _shard(idx))

    def _record(self, epoch: int, idx: Tensor, logits: Tensor) -> None:
        """Training-pass softmax outputs by sample index (the trajectory TDDS and forgetting use)."""
        if self.trajectory is not None:
            self.trajectory[epoch, idx] = F.softmax(logits.detach(), dim=1).to("cpu", self.trajectory.dtype)

    def _teacher_probs(self, learner: Learner, x: Tensor, bits: int) -> Tensor | None:
        """Distillation target for ``bits`` in the sequential loop, or None."""
        c = self.config
        if c.distillation == "reference":
            self.reference.model.eval()
            with torch.no_grad():
                return F.softmax(self.reference.model(x), dim=1)
        if c.distillation == "fp-child" and bits != FULL_PRECISION:
            # the 32-bit child in train mode, as in the joint loop (it also updates shared BN statistics)
            with torch.no_grad():
                set_bits(learner.module, FULL_PRECISION, c.activation_bits)
                probs = F.softmax(learner.model(x), dim=1)
                set_bits(learner.module, bits, c.activation_bits)
            return probs
        return None

    def _sequential_epoch(self, epoch, i, learner, data_generator, cost, bar) -> None:
        c = self.config
        order = learner.bits if c.bit_order == "descending" else tuple(reversed(learner.bits))
        for b in order:
            set_bits(learner.module, b, c.activation_bits)
            for x, y, idx in self._batches(self._indices(i, b), data_generator):
                teacher = self._teacher_probs(learner, x, b)
                logits = learner.model(x)
                loss = F.cross_entropy(logits, y)
                if teacher is not None:
                    loss = c.label_loss_weight * loss + soft_cross_entropy(logits, teacher)
                    cost[b]["teacher_forwards"] += len(x)
                self._step(learner, loss, epoch, b)
                self._record(epoch, idx, logits)
                cost[b]["sample_passes"] += len(x)
                cost[b]["loss_sum"] += loss.item() * len(x)
                bar.update()

    def _joint_epoch(self, epoch, i, learner, data_generator, cost, bar) -> None:
        """SPEC 5.1: every bit-width on each batch, descending; bit-width k distils from k-1."""
        c = self.config
        for x, y, idx in self._batches(self._indices(i, learner.bits[0]), data_generator):
            losses, teacher = [], None
            for b in learner.bits:
                set_bits(learner.module, b, c.activation_bits)
                logits = learner.model(x)
                loss = F.cross_entropy(logits, y) if teacher is None else soft_cross_entropy(logits, teacher)
                teacher = F.softmax(logits.detach(), dim=1)
                losses.append(loss)
                if b == learner.bits[0]:
                    self._record(epoch, idx, logits)
                cost[b]["sample_passes"] += len(x)
                cost[b]["loss_sum"] += loss.item() * len(x)
            # gradients of all bit-widths summed, one step
            self._step(learner, torch.stack(losses).sum(), epoch, learner.bits[-1])
            bar.update()

    def _batch_epoch(self, epoch, i, learner, data_generator, cost, bar) -> None:
        """SPEC 6.2 b: batches of the union of the bit-widths' coresets; each bit-width trains on
        its rows, distilling from the next-higher bit-width where it saw the row (else labels)."""
        c = self.config
        members, union = self._union(i, learner)
        for x, y, idx in self._batches(union, data_generator):
            losses = []
            teacher = torch.zeros(len(x), self.train_set.num_classes, device=self.device)
            has_teacher = torch.zeros(len(x), dtype=torch.bool, device=self.device)
            for b in learner.bits:
                rows = members[b][idx].to(self.device)
                if not rows.any():
                    continue
                set_bits(learner.module, b, c.activation_bits)
                logits = learner.model(x[rows])
                distil = has_teacher[rows]
                per_row = torch.where(distil, -(teacher[rows] * F.log_softmax(logits, 1)).sum(1),
                                      F.cross_entropy(logits, y[rows], reduction="none"))
                loss = per_row.mean()
                teacher[rows] = F.softmax(logits.detach(), dim=1)
                has_teacher[rows] = True
                losses.append(loss)
                cost[b]["sample_passes"] += int(rows.sum())
                cost[b]["loss_sum"] += loss.item() * int(rows.sum())
            self._step(learner, torch.stack(losses).sum(), epoch, learner.bits[-1])
            bar.update()


def metrics_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)
