"""Benchmarks of training cost and efficiency: ``python -m emqlib.harness.bench --profile cpu`` (``make bench``).

Every figure is a ratio measured in one process on one machine, from repetitions of the
variants taken in turns. Each variant's time is the best of its repetitions (the timeit
convention): on a shared 2-core machine a 2-thread step is either undisturbed or stalled for
as long as another process holds a core, and the stalls, not the code, set the median.

1. quantization overhead: a training step at each bit-width over the full-precision step;
2. bias-correction overhead: the step with EMQ's correction over the same step without;
3. method cost: Dedicated, joint, EMQ and EMQ + bit-wise coreset from the run cache
   (wall-clock and sample passes, speed-up over Dedicated, average accuracy; docs/method.md §9);
4. selection overhead: share of EMQ + coreset wall-clock spent scoring and selecting;
5. efficiency: achieved GFLOP/s of a training step over this machine's fp32 matmul rate;
6. scaling: time per epoch as the data set and the number of bit-widths grow, with a linear fit;

plus the speed options (torch.compile, channels-last, intra-op threads) on the training step, and
the compile default end to end: whole epochs at one thread, eager and compiled, compilation included.
Writes ``results/bench.csv`` (metric, value, unit, setting) and ``figures/bench.png``.
"""
from __future__ import annotations

import argparse
import io
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from . import experiments, labels, paths, report
from ..bits import FULL_PRECISION, SUPPORTED_BITS, set_bits
from .build import Runtime, compile_model
from .config import PROFILES, RunConfig, profile_config
from .cost import FORWARD_PASS_WEIGHT, ideal_pass_ratio, speedups
from ..data import DATASET_SHAPES, ImageDataset, batches
from ..distill import joint_step
from .export import export_bench_rows
from ..models import model_for
from .runs import get_run
from .storage import atomic_write_bytes, save_csv

COLUMNS = ["metric", "value", "unit", "setting"]
# the four runs of item 3, with the configurations the notebooks use (so the run cache serves both)
CORESET_FRACTION = 0.2  # the EMQ + bit-wise coreset run of items 3 and 4: notebook 04's, seed 0
STEP_RATIO_TARGET = 1.25
SELECTION_SHARE_TARGET = 10.0  # percent
SPEEDUP_TARGET = 8.0
ACCURACY_GAP_TARGET = 1.5  # points


@dataclass(frozen=True)
class BenchSettings:
    """How much each micro-benchmark repeats (per profile)."""

    reps: int  # timed repetitions per variant (items 1, 2, 5 and the speed options)
    warmup: int  # untimed steps per variant first
    scaling_sizes: tuple[int, ...]  # data set sizes of the scaling epochs (item 6)
    scaling_bits_samples: int  # data set size of the epochs with 1..k bit-widths
    scaling_reps: int
    try_compile: bool  # torch.compile costs about a minute of compilation on 2 CPU cores
    matmul_n: int = 1024


SETTINGS = {
    "smoke": BenchSettings(reps=5, warmup=2, scaling_sizes=(64, 128, 256), scaling_bits_samples=64, scaling_reps=2,
                           try_compile=False),
    "cpu": BenchSettings(reps=30, warmup=5, scaling_sizes=(1000, 2000, 4000), scaling_bits_samples=1000,
                         scaling_reps=5, try_compile=True),
    "paper": BenchSettings(reps=30, warmup=5, scaling_sizes=(1000, 2000, 4000), scaling_bits_samples=1000,
                           scaling_reps=5, try_compile=True),
}


def row(metric: str, value: float, unit: str, setting: str) -> dict:
    return {"metric": metric, "value": float(value), "unit": unit, "setting": setting}


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- pure helpers

def linear_fit(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares line through (x, y): (slope, intercept, R^2)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    residual = float(((y - (slope * x + intercept)) ** 2).sum())
    total = float(((y - y.mean()) ** 2).sum())
    return float(slope), float(intercept), 1.0 - residual / total if total > 0 else 1.0


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matmuls and convolutions (forward and backward) that ``fn`` runs."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# ---------------------------------------------------------------- timing

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
    """Each variant's fastest repetition: other processes only ever add time."""
    return {name: min(t) for name, t in times.items()}


# ---------------------------------------------------------------- the micro-benchmark workload

@dataclass
class Workload:
    """One model architecture and one batch of the profile, on one device."""

    config: RunConfig  # the profile's EMQ configuration (model, width, data shape, batch size, bits)
    device: torch.device

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of an input."""
        _, channels, size = DATASET_SHAPES[self.config.dataset]
        return channels, size, size

    def describe(self, threads: int | None = None) -> str:
        c, (ch, h, w) = self.config, self.shape
        where = f"{threads or torch.get_num_threads()} threads" if self.device.type == "cpu" else str(self.device)
        return f"{c.model} width {c.width:g}, {ch}x{h}x{w} input, batch {c.batch_size}, {where}"

    def emq(self, bias_correction: bool = True) -> RunConfig:
        return self.config.replace(bias_correction=bias_correction)

    def plain(self) -> RunConfig:
        """A plain full-precision network: untransformed weights and ReLU (no quantizer at all)."""
        return self.config.replace(bias_correction=False, full_precision_weight="plain",
                                   full_precision_activation="relu")

    def model(self, config: RunConfig, bits: int) -> nn.Module:
        """A fresh model of ``config`` (same initial weights every time) running at ``bits``."""
        torch.manual_seed(0)
        model = model_for(config)
        set_bits(model, bits)
        return model.to(self.device).train()

    def batch(self) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(self.config.batch_size, *self.shape, generator=g)
        y = torch.randint(0, DATASET_SHAPES[self.config.dataset][0], (self.config.batch_size,), generator=g)
        return x.to(self.device), y.to(self.device)

    def optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(model.parameters(), lr=self.config.lr)


def training_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor) -> Callable[[], None]:
    """One full training step (forward, cross-entropy, backward, optimizer step) as a callable."""
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return step


def quantized_bits(config: RunConfig) -> list[int]:
    return [b for b in config.bits if b != FULL_PRECISION]


# ---------------------------------------------------------------- items 1, 2, 5: step overhead and efficiency

def measure_steps(work: Workload, settings: BenchSettings) -> tuple[list[dict], dict[str, float]]:
    """Items 1, 2 and 5: step times at each bit-width with and without bias correction, the
    plain full-precision step, and the fp32 matmul rate, all interleaved in one loop."""
    x, y = work.batch()
    variants, flops, compile_rows = [], {}, []
    setting = f"{work.describe()}, best of {settings.reps} interleaved"
    specs = {"fp": (work.plain(), FULL_PRECISION), "32": (work.emq(), FULL_PRECISION)}
    for b in quantized_bits(work.config):
        specs[f"{b}+bc"], specs[f"{b}"] = (work.emq(True), b), (work.emq(False), b)
    for name, (config, bits) in specs.items():
        model = work.model(config, bits)
        step = training_step(model, work.optimizer(model), x, y)
        flops[name] = count_flops(step)
        variants.append(Variant(name, step))
    steps = list(specs)
    if settings.try_compile:  # the same steps compiled, each its own graph (dynamo guards on the bit-width)
        for name, (config, bits) in specs.items():
            rows_, compiled = _compiled_variant(work, config, bits, x, y, f"{_label(name)}; {setting}",
                                                f"{name} compiled")
            compile_rows += rows_
            variants += compiled
    n = settings.matmul_n
    a, b_ = torch.randn(n, n, device=work.device), torch.randn(n, n, device=work.device)
    variants.append(Variant("matmul", lambda: torch.mm(a, b_)))

    log(f"timing {len(variants)} step variants x {settings.reps} ({work.describe()})")
    t = best(time_interleaved(variants, settings.reps, settings.warmup, work.device))
    over_fp = {name: t[name] / t["fp"] for name in steps}
    rows = [row("step_time", t[name] * 1e3, "ms", f"{_label(name)}; {setting}") for name in steps]
    rows += compile_rows
    if "fp compiled" in t:
        compiled = [name for name in steps if f"{name} compiled" in t]
        rows += [row("step_time", t[f"{name} compiled"] * 1e3, "ms", f"{_label(name)}, torch.compile; {setting}")
                 for name in compiled]
        rows += [row("quant_step_ratio_compiled", t[f"{name} compiled"] / t["fp compiled"], "x",
                     f"{_label(name)} over the plain full-precision step, both compiled; {setting}")
                 for name in compiled[1:]]
        rows += [row("compiled_over_eager", t[f"{name} compiled"] / t[name], "x",
                     f"{_label(name)}: torch.compile over eager (< 1 is faster); {setting}") for name in compiled]
    rows += [row("quant_step_ratio", over_fp[name], "x",
                 f"{_label(name)} over the plain full-precision step (target <= {STEP_RATIO_TARGET}); {setting}")
             for name in steps[1:]]
    rows += [row("quant_step_ratio_vs_path32", t[name] / t["32"], "x",
                 f"{_label(name)} over the same model's 32-bit path; {setting}") for name in steps[2:]]
    rows += [row("bias_correction_ratio", t[f"{b}+bc"] / t[f"{b}"], "x",
                 f"{b}-bit step with bias correction over without; {setting}") for b in quantized_bits(work.config)]
    rows += efficiency_rows(t, flops, n, setting, lowest=f"{min(quantized_bits(work.config))}+bc")
    return rows, over_fp


def _label(name: str) -> str:
    """Readable name of a step variant of :func:`measure_steps`."""
    if name == "fp":
        return "plain FP step (no quantizer)"
    if name == "32":
        return "32-bit path (tanh weights, clamp)"
    bits, _, correction = name.partition("+")
    return f"{bits}-bit step, bias correction {'on' if correction else 'off'}"


def efficiency_rows(t: dict[str, float], flops: dict[str, int], n: int, setting: str, lowest: str) -> list[dict]:
    """Item 5: achieved GFLOP/s of the FP and the lowest-bit step over the matmul rate."""
    matmul = 2 * n**3 / t["matmul"] / 1e9
    rows = [row("matmul_gflops", matmul, "GFLOP/s", f"torch.mm {n}x{n} fp32, 2n^3 FLOPs; {setting}")]
    for name in ("fp", lowest):
        achieved = flops[name] / t[name] / 1e9
        what = f"{_label(name)}; FLOPs of forward + backward matmuls/convs (FlopCounterMode, optimizer not counted)"
        rows += [row("step_gflop", flops[name] / 1e9, "GFLOP", what),
                 row("step_gflops", achieved, "GFLOP/s", f"{what}; {setting}"),
                 row("efficiency", 100 * achieved / matmul, "% of matmul rate", f"{_label(name)}; {setting}")]
    return rows


# ---------------------------------------------------------------- speed options

def measure_speed_options(work: Workload, settings: BenchSettings) -> list[dict]:
    """torch.compile, channels-last and 1 vs 2 intra-op threads on the lowest-bit EMQ step
    (bias correction on), interleaved; ratios < 1 are faster than the eager default."""
    bits = min(quantized_bits(work.config))
    x, y = work.batch()
    eager = work.model(work.emq(), bits)
    base = training_step(eager, work.optimizer(eager), x, y)
    variants = [Variant("eager", base), Variant("threads=1", base, threads=1), Variant("threads=2", base, threads=2)]
    cl_model = work.model(work.emq(), bits).to(memory_format=torch.channels_last)
    variants.append(Variant("channels_last", training_step(cl_model, work.optimizer(cl_model),
                                                           x.contiguous(memory_format=torch.channels_last), y)))
    setting = f"{bits}-bit EMQ step; {work.describe()}, best of {settings.reps} interleaved"
    rows = []
    if settings.try_compile:
        compiled_rows, compiled = _compiled_variant(work, work.emq(), bits, x, y, setting)
        rows += compiled_rows
        variants += compiled
    log(f"timing speed options {[v.name for v in variants]} x {settings.reps}")
    t = best(time_interleaved(variants, settings.reps, settings.warmup, work.device))
    rows.append(row("speed_option_ratio", t["threads=1"] / t["threads=2"], "x", f"1 thread over 2 threads; {setting}"))
    rows.append(row("speed_option_ratio", t["channels_last"] / t["eager"], "x",
                    f"channels-last over contiguous; {setting}"))
    if "compiled" in t:
        rows.append(row("speed_option_ratio", t["compiled"] / t["eager"], "x",
                        f"torch.compile (mode default) over eager; {setting}"))
    return rows


def _compiled_variant(work: Workload, config: RunConfig, bits: int, x: Tensor, y: Tensor, setting: str,
                      name: str = "compiled") -> tuple[list[dict], list[Variant]]:
    """Compile the model of ``config`` at ``bits``, time the first step (compilation included) and
    report whether it works; the compiled step as variant ``name``."""
    model = work.model(config, bits)
    step = training_step(compile_model(model), work.optimizer(model), x, y)
    log(f"compiling the training step ({name}) with torch.compile (up to a minute on 2 CPU cores)")
    start = time.perf_counter()
    try:
        step()
    except Exception as error:  # a missing compiler or an unsupported op: report, do not fail the bench
        log(f"torch.compile failed: {type(error).__name__}: {error}")
        return [row("compile_works", 0, "bool", f"torch.compile failed ({type(error).__name__}); {setting}")], []
    seconds = time.perf_counter() - start
    note = ("from inductor's on-disk cache when this machine compiled the step before; each bit-width is a new graph "
            "(set_bits changes module attributes that dynamo guards on)")
    return ([row("compile_works", 1, "bool", f"torch.compile (mode default); {setting}"),
             row("compile_seconds", seconds, "s", f"first compiled step (forward + backward graphs); {note}; {setting}")],
            [Variant(name, step)])


# ---------------------------------------------------------------- item 6: scaling

def random_dataset(work: Workload, n: int) -> ImageDataset:
    """``n`` random images of the profile's shape, in memory (content does not change timing)."""
    g = torch.Generator().manual_seed(1)
    num_classes = DATASET_SHAPES[work.config.dataset][0]
    images = torch.randint(0, 256, (n, *work.shape), generator=g, dtype=torch.uint8)
    return ImageDataset(work.config.dataset, images, torch.randint(0, num_classes, (n,), generator=g), num_classes)


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
        for x, y, _ in batches(dataset, torch.arange(n), work.config.batch_size, g):
            # the trainer's joint step (emqlib.distill), then backward and one optimizer step, as the trainer does
            optimizer.zero_grad(set_to_none=True)
            joint_step(forward, x.to(work.device, memory_format=memory_format), y.to(work.device), bits).total.backward()
            optimizer.step()
    return epoch


def measure_scaling(work: Workload, settings: BenchSettings) -> tuple[list[dict], dict]:
    """Item 6: seconds per epoch against the data set size (one bit-width) and against the
    number of bit-widths k (joint step over the k highest, fixed size), with linear fits."""
    sizes, n_bits = settings.scaling_sizes, settings.scaling_bits_samples
    dataset = random_dataset(work, max(*sizes, n_bits))
    lowest = min(quantized_bits(work.config))
    bit_sets = [work.config.bits[:k] for k in range(1, len(work.config.bits) + 1)]
    variants = [Variant(f"n={n}", epoch_runner(work, dataset, n, (lowest,))) for n in sizes]
    variants += [Variant(f"k={len(bs)}", epoch_runner(work, dataset, n_bits, bs)) for bs in bit_sets]
    log(f"timing scaling epochs {[v.name for v in variants]} x {settings.scaling_reps}")
    t = best(time_interleaved(variants, settings.scaling_reps, warmup=1, device=work.device))
    where = f"{work.describe()}, whole epochs, best of {settings.scaling_reps} interleaved"
    rows = []
    for n in sizes:
        rows.append(row("epoch_time", t[f"n={n}"], "s", f"N={n} samples, 1 bit-width ({lowest}-bit EMQ); {where}"))
        rows.append(row("time_per_sample", t[f"n={n}"] / n * 1e3, "ms", f"N={n}, 1 bit-width ({lowest}-bit); {where}"))
    for bs in bit_sets:
        rows.append(row("epoch_time", t[f"k={len(bs)}"], "s",
                        f"N={n_bits}, k={len(bs)} bit-widths {','.join(map(str, bs))} (joint step); {where}"))
    fit_n = linear_fit(sizes, [t[f"n={n}"] for n in sizes])
    fit_k = linear_fit(range(1, len(bit_sets) + 1), [t[f"k={len(bs)}"] for bs in bit_sets])
    rows += [row("scaling_slope", fit_n[0] * 1e3, "ms per sample", f"epoch time vs N, 1 bit-width; {where}"),
             row("scaling_intercept", fit_n[1], "s", f"epoch time vs N, 1 bit-width; {where}"),
             row("scaling_r2", fit_n[2], "R^2", f"linear fit of epoch time vs N; {where}"),
             row("scaling_slope", fit_k[0], "s per bit-width", f"epoch time vs k at N={n_bits}; {where}"),
             row("scaling_intercept", fit_k[1], "s", f"epoch time vs k at N={n_bits}; {where}"),
             row("scaling_r2", fit_k[2], "R^2", f"linear fit of epoch time vs k at N={n_bits}; {where}")]
    curves = {"sizes": list(sizes), "size_times": [t[f"n={n}"] for n in sizes], "size_fit": fit_n,
              "k": list(range(1, len(bit_sets) + 1)), "k_times": [t[f"k={len(bs)}"] for bs in bit_sets],
              "k_fit": fit_k, "n_bits": n_bits, "lowest": lowest}
    return rows, curves


# ---------------------------------------------------------------- items 3, 4: methods from the run cache

def _short_name(label: str) -> str:
    return {labels.DEDICATED: "dedicated", labels.JOINT: "joint", labels.EMQ: "emq"}.get(label, "emq+coreset")


def method_configs(profile: str) -> dict[str, RunConfig]:
    """The runs of items 3 and 4: notebook 04's methods on seed 0, EMQ's default sampler."""
    configs = experiments.cost_methods(profile, experiments.EMQ_SAMPLER, CORESET_FRACTION, seed=0)
    return {_short_name(label): config for label, config in configs.items()}


def method_summaries(cost: pd.DataFrame) -> dict[str, dict]:
    """Wall-clock, passes, average final test accuracy and speed-ups (a) and (b) of each method,
    from :func:`emqlib.harness.experiments.training_cost`'s rows of seed 0."""
    summaries = {}
    for row in cost[cost.seed == 0].itertuples():
        trained = datetime.fromtimestamp((paths.runs_dir() / row.run / "done.json").stat().st_mtime)
        summaries[_short_name(row.method)] = {
            **{key: getattr(row, key) for key in ("wall_seconds", "train_seconds", "selection_seconds",
                                                  "sample_passes", "teacher_forwards", "selection_forwards",
                                                  "pass_equivalents")},
            "accuracy": row.avg_accuracy, "served_bits": getattr(row, "served_bits", None),
            "speedup_wall_served": getattr(row, "speedup_wall_served", np.nan),
            "speedup_passes_served": getattr(row, "speedup_passes_served", np.nan),
            "source": f"seed 0, from run cache {row.run} (timed when trained, "
                      f"{trained.isoformat(timespec='minutes')})"}
    return summaries


def method_rows(summaries: dict[str, dict], config: RunConfig) -> list[dict]:
    """Items 3 and 4 from the runs' summaries; ``config`` is the EMQ + coreset configuration."""
    dedicated = summaries["dedicated"]
    bits = ",".join(map(str, config.bits))
    weighting = f"sample passes + {FORWARD_PASS_WEIGHT:.3g} x (teacher + selection forwards)"
    rows = []
    for name, s in summaries.items():
        src = f"{name}; {s['source']}"
        rows += [row("method_wallclock", s["wall_seconds"], "s", f"train + selection seconds; {src}"),
                 row("method_sample_passes", s["sample_passes"], "passes", f"forward+backward sample passes; {src}"),
                 row("method_weighted_passes", s["pass_equivalents"], "passes", f"{weighting}; {src}"),
                 row("method_avg_accuracy", s["accuracy"], "%", f"mean final test accuracy over bits {bits}; {src}")]
        if name == "dedicated":
            continue
        speedup = speedups(dedicated, s)
        rows += [row("speedup_wallclock", speedup["speedup_wall"], "x",
                     f"Dedicated ({len(config.bits)} models) over {name}, wall-clock; {src}"),
                 row("speedup_passes", speedup["speedup_passes"], "x",
                     f"Dedicated over {name}, {weighting}; {src}"),
                 row("accuracy_gap", dedicated["accuracy"] - s["accuracy"], "points",
                     f"Dedicated minus {name} average accuracy (target <= {ACCURACY_GAP_TARGET}); {src}")]
    k, supported, coreset = len(config.bits), len(SUPPORTED_BITS), summaries["emq+coreset"]
    rows += [row("ideal_pass_ratio", ideal_pass_ratio(supported, k, config.fraction), "x",
                 f"derived (docs/method.md §9): Dedicated over all {supported} supported bit-widths / ({k} trained x "
                 f"S={config.fraction:g})"),
             row("ideal_pass_ratio", ideal_pass_ratio(k, k, config.fraction), "x",
                 f"derived (docs/method.md §9): Dedicated over the {k} trained bit-widths / ({k} trained x S={config.fraction:g})"),
             ]
    for name, s in summaries.items():
        if isinstance(s.get("served_bits"), str):  # (b): Dedicated trained on every bit-width the model serves
            src = (f"Dedicated trained on every bit-width {name} serves ({s['served_bits']}; the untrained ones "
                   f"trained for this, seed 0) over {name}")
            rows += [row("speedup_wallclock_served", s["speedup_wall_served"], "x",
                         f"{src}, wall-clock (target >= {SPEEDUP_TARGET} for emq+coreset, paper 7.88); {s['source']}"),
                     row("speedup_passes_served", s["speedup_passes_served"], "x", f"{src}, {weighting}; {s['source']}")]
    total = coreset["wall_seconds"]
    rows += [row("selection_seconds", coreset["selection_seconds"], "s", f"scoring + selection; emq+coreset; "
                                                                         f"{coreset['source']}"),
             row("selection_share", 100 * coreset["selection_seconds"] / total, "%",
                 f"selection seconds / (train + selection) of emq+coreset (target <= {SELECTION_SHARE_TARGET:g}); "
                 f"{coreset['source']}"),
             row("selection_share_passes",
                 100 * FORWARD_PASS_WEIGHT * coreset["selection_forwards"] / coreset["pass_equivalents"], "%", f"selection forwards x {FORWARD_PASS_WEIGHT:.3g} / weighted passes of emq+coreset; "
                      f"{coreset['source']}")]
    return rows


def disturbance_rows(summaries: dict[str, dict], seconds_per_pass_now: float, where: str) -> list[dict]:
    """How much slower each cached run trained than this machine trains now: a cached wall-clock
    is from when the run was trained, and other processes on a 2-core machine can slow a
    2-thread run many times over. About 1 for a run timed on a quiet machine."""
    rows = []
    for name, s in summaries.items():
        per_pass = s["wall_seconds"] / s["pass_equivalents"]
        rows += [row("method_time_per_pass", per_pass * 1e3, "ms", f"wall-clock / weighted passes; {name}; "
                                                                    f"{s['source']}"),
                 row("run_slowdown", per_pass / seconds_per_pass_now, "x",
                     f"{name}: time per weighted pass when trained over the per-sample time measured now "
                     f"({where}); >> 1 means the cached timing was disturbed; {s['source']}")]
    return rows


def train_methods(profile: str) -> dict[str, dict]:
    """Items 3 and 4: notebook 04's cost table on seed 0, its runs from the run cache (trained now if absent)."""
    log("methods: notebook 04's runs of seed 0, from the run cache (training them first if absent)")
    return method_summaries(experiments.training_cost(profile, experiments.EMQ_SAMPLER, seeds=(0,),
                                                      fraction=CORESET_FRACTION))


# ---------------------------------------------------------------- figure

def plot(over_fp: dict[str, float], config: RunConfig, summaries: dict[str, dict], curves: dict,
         title: str) -> Figure:
    """Four panels: step overhead by bit-width, method cost, and the two scaling lines."""
    fig = Figure(figsize=(12, 9), layout="constrained")
    (a, b), (c, d) = fig.subplots(2, 2)
    fig.suptitle(title)

    labels = ["32"] + [str(bit) for bit in quantized_bits(config)]
    on = [over_fp[k if k == "32" else f"{k}+bc"] for k in labels]
    off = [np.nan if k == "32" else over_fp[k] for k in labels]  # 32 bits: no correction
    pos = np.arange(len(labels))
    a.bar(pos - 0.2, on, 0.4, label="bias correction on")
    a.bar(pos + 0.2, off, 0.4, label="bias correction off")
    a.axhline(1.0, color="gray", lw=1)
    a.axhline(STEP_RATIO_TARGET, color="red", ls="--", lw=1, label=f"target {STEP_RATIO_TARGET}x")
    a.set_xticks(pos, [f"{lab}-bit" for lab in labels])
    a.set(xlabel="bit-width of the step", ylabel="step time / plain FP step (x)",
          title="(a) quantization overhead of a training step")
    a.legend(fontsize=8)

    names = list(summaries)
    walls = [summaries[n]["wall_seconds"] for n in names]
    bars = b.bar(names, walls, color=["gray", "tab:blue", "tab:orange", "tab:green"][:len(names)])
    for bar, n in zip(bars, names):
        speedup = summaries["dedicated"]["wall_seconds"] / summaries[n]["wall_seconds"]
        b.annotate(f"{speedup:.2f}x\nacc {summaries[n]['accuracy']:.1f}%", (bar.get_x() + bar.get_width() / 2,
                   bar.get_height()), ha="center", va="bottom", fontsize=9)
    b.set_ylim(0, max(walls) * 1.3)
    b.set(xlabel="method (run cache)", ylabel="train + selection wall-clock (s)",
          title="(b) method cost: speed-up over Dedicated, avg accuracy")

    _scaling_panel(c, curves["sizes"], curves["size_times"], curves["size_fit"],
                   xlabel="data set size N (samples)", title=f"(c) epoch time vs N ({curves['lowest']}-bit step)")
    _scaling_panel(d, curves["k"], curves["k_times"], curves["k_fit"], xlabel="number of bit-widths k (joint step)",
                   title=f"(d) epoch time vs bit-widths (N={curves['n_bits']})")
    d.set_xticks(curves["k"])
    return fig


def _scaling_panel(ax, x: list, y: list, fit: tuple[float, float, float], xlabel: str, title: str) -> None:
    slope, intercept, r2 = fit
    line = np.linspace(0, max(x), 50)
    ax.plot(x, y, "o", label="measured (best of repetitions)")
    ax.plot(line, slope * line + intercept, "--", label=f"linear fit, R$^2$={r2:.4f}")
    ax.set(xlabel=xlabel, ylabel="time per epoch (s)", title=title, xlim=(0, None), ylim=(0, None))
    ax.legend(fontsize=8)


def save_figure(fig: Figure, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())


def break_even_epochs(first_compiled: float, eager: float, compiled: float) -> float:
    """Epochs after which a compiled run has caught up with an eager one: the compile seconds (the
    first compiled epoch less a compiled epoch) over the seconds each later epoch saves; inf when
    compiled epochs are not faster."""
    saved = eager - compiled
    return (first_compiled - compiled) / saved if saved > 0 else math.inf


def measure_compiled_epochs(work: Workload, settings: BenchSettings, threads: int = 1) -> list[dict]:
    """The compile default, end to end: whole epochs of the joint step over every trained bit-width
    with ``threads`` torch threads (one: a `make reproduce` worker's), eager and compiled, the first
    compiled epoch (compilation included) and the epochs a run needs before compiling pays for itself."""
    if not settings.try_compile:
        return []
    n, bits = settings.scaling_sizes[-1], work.config.bits
    dataset = random_dataset(work, n)
    layout = Runtime().memory_format  # the trainer's (channels-last by default), unlike the steps above
    eager = epoch_runner(work, dataset, n, bits, memory_format=layout)
    compiled = epoch_runner(work, dataset, n, bits, compiled=True, memory_format=layout)
    where = (f"N={n}, k={len(bits)} bit-widths {','.join(map(str, bits))} (joint step); "
             f"{work.describe(threads)}, {'channels-last' if layout == torch.channels_last else 'contiguous'}, "
             "whole epochs")
    log(f"compiling and timing whole epochs, eager and compiled, {threads} thread(s)")
    # as a worker's first run would: none of the step graphs compiled above (at other thread counts, which
    # dynamo guards on) is reused
    torch._dynamo.reset()
    variants = [Variant("eager", eager, threads=threads), Variant("compiled", compiled, threads=threads)]
    try:  # the first compiled epoch compiles every bit-width's forward and backward, and the last, shorter batch's
        first = time_interleaved(variants[1:], reps=1, warmup=0, device=work.device)["compiled"][0]
    except Exception as error:  # a missing compiler or an unsupported op: report, do not fail the bench
        log(f"torch.compile failed: {type(error).__name__}: {error}")
        return [row("compile_works", 0, "bool", f"torch.compile of whole epochs failed ({type(error).__name__}); {where}")]
    t = best(time_interleaved(variants, settings.scaling_reps, warmup=1, device=work.device))
    where_best = f"{where}, best of {settings.scaling_reps} interleaved"
    return [row("epoch_time", t["eager"], "s", f"eager; {where_best}"),
            row("epoch_time", t["compiled"], "s", f"torch.compile; {where_best}"),
            row("compiled_epoch_over_eager", t["compiled"] / t["eager"], "x",
                f"whole epochs at {threads} thread(s), torch.compile over eager (< 1 is faster); {where_best}"),
            row("first_compiled_epoch", first, "s", f"compilation included (from inductor's on-disk cache when this "
                                                     f"machine compiled these graphs before); {where}"),
            row("compile_break_even_epochs", break_even_epochs(first, t["eager"], t["compiled"]), "epochs",
                f"epochs a process must train before compiling pays for itself (compile seconds over seconds saved "
                f"per epoch, inf: never); {where}")]


# ---------------------------------------------------------------- main

def run_bench(profile: str, out_csv: Path, out_png: Path, runtime: Runtime = Runtime(progress=False)) -> pd.DataFrame:
    """Every measurement of ``profile``; writes the CSV and the figure and returns the table."""
    started = time.perf_counter()
    settings = SETTINGS[profile]
    summaries = train_methods(profile)
    work = Workload(profile_config(profile, method="emq"), runtime.torch_device())
    step_rows, over_fp = measure_steps(work, settings)
    scaling_rows, curves = measure_scaling(work, settings)
    option_rows = measure_speed_options(work, settings) + measure_compiled_epochs(work, settings)
    cost_rows = method_rows(summaries, method_configs(profile)["emq+coreset"])
    cost_rows += disturbance_rows(summaries, curves["size_fit"][0], f"{curves['lowest']}-bit EMQ step, slope of "
                                                                    f"epoch time vs N, {work.describe()}")
    # integer deployment: latency and size of every served bit-width, fake-quant vs onnxruntime
    export_rows = export_bench_rows(get_run(method_configs(profile)["emq"], runtime), threads=torch.get_num_threads())
    table = pd.DataFrame(step_rows + cost_rows + scaling_rows + option_rows + export_rows, columns=COLUMNS)
    save_csv(table, out_csv)
    title = f"emqlib bench, profile {profile}: {work.describe()}"
    save_figure(plot(over_fp, work.config, summaries, curves, title), out_png)
    log(f"wrote {out_csv} and {out_png} in {time.perf_counter() - started:.0f} s")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emqlib.harness.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="cpu")
    parser.add_argument("--out-csv", type=Path, help="default: results/bench.csv ($EMQ_RESULTS_DIR)")
    parser.add_argument("--out-png", type=Path, help="default: figures/bench.png ($EMQ_FIGURES_DIR)")
    args = parser.parse_args(argv)
    table = run_bench(args.profile, args.out_csv or paths.results_dir() / "bench.csv",
                      args.out_png or paths.figures_dir() / "bench.png")
    with pd.option_context("display.max_rows", None, "display.max_colwidth", 60, "display.width", 200):
        print(table[["metric", "value", "unit", "setting"]].to_string(index=False))
    if args.out_csv is None:
        report.update(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
