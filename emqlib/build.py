"""The parts a run is built from, each made from its RunConfig: its data, its learners (model,
optimizer, learning-rate schedule and the bit-widths each trains), and how it executes (Runtime).

Dedicated has one learner per bit-width; joint and EMQ one learner for all of them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import nn

from .config import RunConfig
from .coreset.sampling import Reference
from .data import ImageDataset, add_label_noise, balanced_subset, holdout_validation, load_dataset
from .distributed import is_distributed
from .models import model_for
from .seeding import derive_seed


@dataclass
class Runtime:
    """How a run executes, not what it computes: not part of the configuration or its hash."""

    threads: int | None = None  # torch intra-op threads (None: leave torch's default)
    progress: bool = field(default_factory=lambda: os.environ.get("EMQ_PROGRESS", "1") != "0")  # tqdm bar per epoch
    device: str = "auto"  # "auto": CUDA when available (the paper profile), else CPU
    channels_last: bool = True  # NHWC tensors: 11-14% faster training steps on CPU (make bench)
    # torch.compile the model: off. In a cpu-profile EMQ run with one thread (as in a make-reproduce worker)
    # a compiled epoch took 7.0-7.3 s against 8.3-8.8 s eager, but the first one paid 33 s of compiling with
    # inductor's disk cache warm and 150 s with it cold: a 15-epoch run saves about 20 s
    compile: bool = False

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

    model: nn.Module  # what the loops call: possibly wrapped by DistributedDataParallel / torch.compile
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    bits: tuple[int, ...]
    module: nn.Module = field(init=False)  # the model without its wrappers (state dicts, evaluation)

    def __post_init__(self) -> None:
        module = self.model
        while isinstance(module, nn.parallel.DistributedDataParallel) or hasattr(module, "_orig_mod"):
            module = module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module._orig_mod
        self.module = module


def load_run_data(config: RunConfig) -> tuple[ImageDataset, ImageDataset]:
    """Training and test sets of a run: class-balanced subsets (fixed draw) and label noise; with
    ``validation_per_class`` the "test" set is held-out training samples (choices are made on it)."""
    train, test = load_dataset(config.dataset, train=True), load_dataset(config.dataset, train=False)
    if config.validation_per_class is not None:  # choose settings on held-out training samples, never the test set
        train, test = holdout_validation(train, config.validation_per_class)
    if config.train_per_class is not None:
        train = train.subset(balanced_subset(train.targets, n_per_class=config.train_per_class))
    if config.test_per_class is not None:
        test = test.subset(balanced_subset(test.targets, n_per_class=config.test_per_class))
    if config.label_noise > 0:
        train = add_label_noise(train, config.label_noise)
    return train, test


def learner_bits(config: RunConfig) -> list[tuple[int, ...]]:
    """The bit-widths of each learner: one per bit-width for Dedicated, all together otherwise."""
    return [(b,) for b in config.bits] if config.method == "dedicated" else [config.bits]


def optimizer_for(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    """LSQ step sizes at lr/10 and no weight decay; weight decay on conv weights only (docs/method.md §2.4)."""
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


def scheduler_for(config: RunConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch learning-rate schedule."""
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.lr_schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(config.milestones), gamma=0.1)
    if config.lr_schedule == "linear":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 1 - e / config.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 1.0)


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


def build_learners(config: RunConfig, reference: Reference | None, runtime: Runtime) -> list[Learner]:
    learners = []
    for i, bits in enumerate(learner_bits(config)):
        torch.manual_seed(derive_seed(config.seed, "init", i))
        model = model_for(config, bits)
        if config.init_from_reference:
            load_reference_weights(model, reference.model)
        model = model.to(runtime.torch_device(), memory_format=runtime.memory_format)
        if is_distributed():
            # switchable BN copies and LSQ steps of other bit-widths sit out the steps of one bit-width
            unused = config.training_loop != "joint" and (config.bn_mode == "switchable" or config.weight_quantizer == "lsq")
            model = nn.parallel.DistributedDataParallel(model, find_unused_parameters=unused or config.training_loop == "batch")
        optimizer = optimizer_for(config, model)
        if runtime.compile:
            model = torch.compile(model)
        learners.append(Learner(model, optimizer, scheduler_for(config, optimizer), bits))
    return learners
