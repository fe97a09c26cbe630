"""The parts a run is built from, each made from its RunConfig: its data, its model, its learners (model,
optimizer, learning-rate schedule and the bit-widths each trains), and how it executes (Runtime).

Dedicated has one learner per bit-width; joint and EMQ one learner for all of them.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..coreset.samplers import Reference
from ..data import ImageDataset
from ..models import build_model
from ..seeding import derive_seed
from ..train import Learner
from .config import RunConfig
from .datasets import DATASET_SHAPES, add_label_noise, balanced_subset, holdout_validation, load_dataset
from .distributed import is_distributed


@dataclass
class Runtime:
    """How a run executes, not what it computes: not part of the configuration or its hash."""

    threads: int | None = None  # torch intra-op threads (None: leave torch's default)
    progress: bool = field(default_factory=lambda: os.environ.get("EMQ_PROGRESS", "1") != "0")  # tqdm bar per epoch
    device: str = "auto"  # "auto": CUDA when available (the paper profile), else CPU
    channels_last: bool = True  # NHWC tensors: 11-14% faster training steps on CPU (make bench)
    # torch.compile the model: True, False, or None for ``$EMQ_COMPILE`` (1, 0 or auto: the setting of every run
    # of a process, make-reproduce workers included), and where that is unset, where it was measured to pay
    compile: bool | None = None

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def compiles(self) -> bool:
        """Whether runs compile their models. Unset, on CUDA only: the paper profile's EMQ step on an H100
        compiled in 138 s and then projected 1.43 GPU-hours for the 200-epoch recipe against 2.31 eager
        (results/bench_gpu.csv). On the CPU, compiling costs more than it saves even with each worker keeping
        its graphs for all its runs: notebooks executed from an empty run cache took 1.58-2.22x their
        eager time compiled, and 1.03-1.26x again with inductor's cache of that first execution
        (results/compile_check.csv)."""
        chosen = self.compile if self.compile is not None else compile_setting(os.environ.get(COMPILE_VARIABLE, "auto"))
        return chosen if chosen is not None else self.torch_device().type == "cuda"


COMPILE_VARIABLE = "EMQ_COMPILE"


def compile_setting(text: str) -> bool | None:
    """``$EMQ_COMPILE``: 1 compiles, 0 does not, auto (or unset) leaves it to :meth:`Runtime.compiles`."""
    settings = {"1": True, "0": False, "auto": None}
    key = text.strip().lower()
    if key not in settings:
        raise ValueError(f"{COMPILE_VARIABLE}={text!r}: set it to 1 (compile), 0 (eager) or auto "
                         "(compile on CUDA only, where it was measured to pay)")
    return settings[key]


def compile_model(model: nn.Module) -> nn.Module:
    """``model`` under torch.compile, with its graphs kept for every later run of this process: dynamo reuses
    a graph for any model of the same architecture, bit-width and batch shape, so a process compiles each
    once and later runs start compiled. Static shapes, because with dynamo's automatic dynamic shapes the
    first batch of another size (an epoch's last) switches the batches after it to a dynamic graph with
    other kernels: a run's numbers would then depend on what its process had trained before."""
    # a frame's graphs accumulate over the runs of a process (every bit-width, architecture and batch shape),
    # beyond dynamo's default of 8, past which it would run the frame eager without a word: a run's numbers
    # would again depend on what the process trained before. Past these limits it fails instead.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 512)
    torch._dynamo.config.accumulated_recompile_limit = max(torch._dynamo.config.accumulated_recompile_limit, 4096)
    torch._dynamo.config.fail_on_recompile_limit_hit = True
    return torch.compile(model, dynamic=False)


SPLITS = ("test", "validation")


def load_run_data(config: RunConfig, split: str = "test") -> tuple[ImageDataset, ImageDataset]:
    """The training set of a run and the set it is evaluated on: the test set, or (``split="validation"``)
    the ``validation_per_class`` training samples per class held out before the training subset is drawn,
    on which choices are made. Class-balanced subsets are fixed draws; label noise touches the training set
    only. The training set is the same whichever split is asked for, so a run is one model evaluated twice."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    data = config.data
    train, test = load_dataset(data.dataset, train=True), load_dataset(data.dataset, train=False)
    validation = None
    if data.validation_per_class is not None:  # held out first, so no training subset ever contains them
        train, validation = holdout_validation(train, data.validation_per_class)
    if data.train_per_class is not None:
        train = train.subset(balanced_subset(train.targets, n_per_class=data.train_per_class))
    if data.test_per_class is not None:
        test = test.subset(balanced_subset(test.targets, n_per_class=data.test_per_class))
    if data.label_noise > 0:
        train = add_label_noise(train, data.label_noise)
    if split == "validation":
        if validation is None:
            raise ValueError("this run holds out no validation samples; set data.validation_per_class")
        return train, validation
    return train, test


def learner_bits(config: RunConfig) -> list[tuple[int, ...]]:
    """The bit-widths of each learner: one per bit-width for Dedicated, all together otherwise."""
    return [(b,) for b in config.model.bits] if config.method == "dedicated" else [config.model.bits]


def model_for(config: RunConfig, bits: tuple[int, ...] | None = None) -> nn.Module:
    """The model of ``config`` that trains ``bits`` (default: all of the configuration's), shaped for its
    data set, freshly initialised from torch's global seed."""
    num_classes, in_channels, image_size = DATASET_SHAPES[config.data.dataset]
    m = config.model
    return build_model(m.name, num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                       trained_bits=m.bits if bits is None else bits, bn_mode=m.bn_mode, spec=m.quant, width=m.width)


def optimizer_for(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    """LSQ step sizes at lr/10 and no weight decay; weight decay on conv weights only (docs/method.md §2.4)."""
    o = config.optim
    steps, conv_weights, rest = [], [], []
    for name, p in model.named_parameters():
        (steps if ".steps." in name else conv_weights if p.dim() == 4 else rest).append(p)
    groups = [{"params": conv_weights, "weight_decay": o.weight_decay},
              {"params": rest, "weight_decay": 0.0},
              {"params": steps, "weight_decay": 0.0, "lr": o.lr / 10}]
    groups = [g for g in groups if g["params"]]
    if o.optimizer == "adam":
        return torch.optim.Adam(groups, lr=o.lr)
    return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=True)


def lr_schedule(config: RunConfig) -> Callable[[float], float]:
    """The learning rate's factor at training progress p in [0, 1), set before every optimizer step: cosine
    0.5 (1 + cos(pi p)), linear 1 - p, multistep 0.1 per milestone epoch passed, or constant. Stepped per
    optimizer step rather than per epoch, so that a run of few epochs anneals as fully as a long one."""
    o = config.optim
    if o.lr_schedule == "cosine":
        return lambda p: 0.5 * (1 + math.cos(math.pi * p))
    if o.lr_schedule == "multistep":
        return lambda p: 0.1 ** sum(p * o.epochs >= m for m in o.milestones)
    if o.lr_schedule == "linear":
        return lambda p: 1 - p
    return lambda p: 1.0


def load_reference_weights(model: nn.Module, reference: nn.Module) -> None:
    """Copy a full-precision model's weights into ``model``: every parameter and buffer but the quantizer
    steps, which keep their first-batch init. The reference's one BatchNorm per layer (shared, or switchable
    at 32 bits) goes to each of ``model``'s BatchNorms there (one per bit-width in switchable mode). Raises
    ValueError, naming them, when the reference lacks some of ``model``'s weights."""
    source = reference.state_dict()
    target = model.state_dict()
    by_layer: dict[str, list[str]] = {}
    for name in source:
        by_layer.setdefault(_without_norm_key(name), []).append(name)
    missing = []
    for name in target:
        candidates = [name] if name in source else by_layer.get(_without_norm_key(name), [])
        if len(candidates) == 1:
            target[name] = source[candidates[0]]
        elif "lsq" not in name.split("."):
            missing.append(name)
    if missing:
        raise ValueError(f"the reference model has no single weight for {len(missing)} of the model's tensors "
                         f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}): build the reference "
                         "with reference_config(config), the same architecture and width")
    model.load_state_dict(target)


def _without_norm_key(name: str) -> str:
    """A state-dict ``name`` without the key of its BatchNorm ("shared" or a bit-width), if it has one."""
    parts = name.split(".")
    if "norms" in parts:
        del parts[parts.index("norms") + 1]
    return ".".join(parts)


def build_learners(config: RunConfig, reference: Reference | None, runtime: Runtime) -> list[Learner]:
    learners = []
    for i, bits in enumerate(learner_bits(config)):
        torch.manual_seed(derive_seed(config.seed, "init", i))
        model = model_for(config, bits)
        if config.training.init_from_reference:
            load_reference_weights(model, reference.model)
        model = model.to(runtime.torch_device(), memory_format=runtime.memory_format)
        if is_distributed():
            # switchable BN copies and LSQ steps of other bit-widths sit out the steps of one bit-width
            loop = config.training.loop
            unused = loop != "joint" and (config.model.bn_mode == "switchable" or config.model.quant.weight_quantizer == "lsq")
            model = nn.parallel.DistributedDataParallel(model, find_unused_parameters=unused or loop == "batch")
        optimizer = optimizer_for(config, model)
        if runtime.compiles():
            model = compile_model(model)
        learners.append(Learner(model, optimizer, lr_schedule(config), bits))
    return learners
