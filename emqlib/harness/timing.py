"""What the benchmarks time and how (``make bench``, the export's bench rows, the GPU benchmark): a profile's
workload (its model, a batch, a training step, whole epochs), variants timed in turns on a shared machine, and the
rows the timings go into, one number per row with its facts in columns."""
from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from ..bits import set_bits
from .build import compile_model, model_for
from .config import RunConfig
from ..data import ImageDataset, batches
from .datasets import DATASET_SHAPES
from ..distill import joint_step


@dataclass
class Variant:
    """One thing to time: ``step`` runs once per repetition, with ``threads`` intra-op threads."""

    name: str
    step: Callable[[], object]
    threads: int | None = None  # None: the thread count the benchmark started with


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_interleaved(variants: Sequence[Variant], reps: int, warmup: int,
                     device: torch.device = torch.device("cpu")) -> dict[str, list[float]]:
    """Seconds of each variant's step, ``reps`` times each.

    Variants take turns within a repetition (in a rotating order), so that a slow spell of a
    shared machine hits all of them alike.
    """
    default_threads = torch.get_num_threads()
    times: dict[str, list[float]] = {v.name: [] for v in variants}
    variants = list(variants)
    try:
        for v in variants:
            torch.set_num_threads(v.threads or default_threads)
            for _ in range(warmup):
                v.step()
        for r in range(reps):
            shift = r % len(variants)
            for v in variants[shift:] + variants[:shift]:
                torch.set_num_threads(v.threads or default_threads)
                _sync(device)
                start = time.perf_counter()
                v.step()
                _sync(device)
                times[v.name].append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(default_threads)
    return times


def best(times: dict[str, list[float]]) -> dict[str, float]:
    """Each variant's fastest repetition: other processes only ever add time (the timeit convention)."""
    return {name: min(t) for name, t in times.items()}


def row(metric: str, value: float, unit: str, what: str, **facts) -> dict:
    """One number, ``what`` it is in words, and ``facts`` (columns such as bits, threads, compiled)."""
    return {"metric": metric, "value": float(value), "unit": unit, "what": what, **facts}


def table(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """``rows`` as a table of ``columns``; a fact that no column names is an error, not dropped."""
    if unknown := {key for r in rows for key in r} - set(columns):
        raise ValueError(f"facts without a column: {sorted(unknown)}")
    return pd.DataFrame(rows, columns=columns).convert_dtypes()  # whole numbers stay whole beside empty cells


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matmuls and convolutions (forward and backward) that ``fn`` runs."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@dataclass
class Workload:
    """One model architecture and one batch of the profile, on one device."""

    config: RunConfig  # the profile's EMQ configuration (model, width, data shape, batch size, bits)
    device: torch.device

    @property
    def bits(self) -> tuple[int, ...]:
        return self.config.model.bits

    @property
    def batch_size(self) -> int:
        return self.config.optim.batch_size

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of an input."""
        _, channels, size = DATASET_SHAPES[self.config.data.dataset]
        return channels, size, size

    def facts(self, threads: int | None = None, **more) -> dict:
        """The workload's columns of a row (threads on the CPU only)."""
        m = self.config.model
        return dict(model=m.name, width=m.width, input="x".join(map(str, self.shape)), batch=self.batch_size,
                    device=self.device.type, **more,
                    threads=(threads or torch.get_num_threads()) if self.device.type == "cpu" else None)

    def describe(self) -> str:
        m, where = self.config.model, f"{torch.get_num_threads()} threads" if self.device.type == "cpu" else str(self.device)
        return f"{m.name} width {m.width:g}, {'x'.join(map(str, self.shape))} input, batch {self.batch_size}, {where}"

    def emq(self, bias_correction: bool = True) -> RunConfig:
        return self.config.replace(model={"quant": {"bias_correction": bias_correction}})

    def plain(self) -> RunConfig:
        """A plain full-precision network: untransformed weights and ReLU (no quantizer at all)."""
        return self.config.replace(model={"quant": dict(bias_correction=False, full_precision_weight="plain",
                                                        full_precision_activation="relu")})

    def model(self, config: RunConfig, bits: int) -> nn.Module:
        """A fresh model of ``config`` (same initial weights every time) running at ``bits``."""
        torch.manual_seed(0)
        model = model_for(config)
        set_bits(model, bits)
        return model.to(self.device).train()

    def batch(self) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(self.batch_size, *self.shape, generator=g)
        y = torch.randint(0, DATASET_SHAPES[self.config.data.dataset][0], (self.batch_size,), generator=g)
        return x.to(self.device), y.to(self.device)

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=self.config.optim.lr)


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor) -> Callable[[], None]:
    """One full training step (forward, cross-entropy, backward, optimizer step) as a callable."""
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return step


def random_dataset(work: Workload, n: int) -> ImageDataset:
    """``n`` random images of the profile's shape, in memory (content does not change timing)."""
    g = torch.Generator().manual_seed(1)
    dataset = work.config.data.dataset
    images = torch.randint(0, 256, (n, *work.shape), generator=g, dtype=torch.uint8)
    num_classes = DATASET_SHAPES[dataset][0]
    return ImageDataset(dataset, images, torch.randint(0, num_classes, (n,), generator=g), num_classes)


def epoch_runner(work: Workload, dataset: ImageDataset, n: int, bits: Sequence[int], compiled: bool = False,
                 memory_format: torch.memory_format = torch.contiguous_format) -> Callable[[], None]:
    """An epoch over the first ``n`` samples (shuffled batches, the library's data path) with the
    joint step over ``bits``; one model and optimizer per runner, the model compiled as the trainer
    compiles it (:func:`emqlib.harness.build.compile_model`) when ``compiled``, model and images in ``memory_format``."""
    model = work.model(work.emq(), bits[0]).to(memory_format=memory_format)
    optimizer = work.optimizer(model)
    forward = compile_model(model) if compiled else model
    g = torch.Generator().manual_seed(2)

    def epoch() -> None:
        for x, y, _ in batches(dataset, torch.arange(n), work.batch_size, g):
            # the trainer's joint step (emqlib.distill), then backward and one optimizer step, as the trainer does
            optimizer.zero_grad(set_to_none=True)
            joint_step(forward, x.to(work.device, memory_format=memory_format), y.to(work.device), bits).total.backward()
            optimizer.step()
    return epoch
