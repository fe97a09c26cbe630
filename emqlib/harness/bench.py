"""Benchmarks of training cost and efficiency: ``python -m emqlib.harness.bench --profile cpu`` (``make bench``).

Every figure is a ratio measured in one process on one machine, from repetitions of the
variants taken in turns, each variant's time the best of its repetitions (:mod:`emqlib.harness.timing`):

1. quantization overhead: a training step at each bit-width over the full-precision step;
2. bias-correction overhead: the step with EMQ's correction over the same step without;
3. method cost: Dedicated, joint, EMQ and EMQ + bit-wise coreset from the run cache
   (wall-clock and sample passes, speed-up over Dedicated, average accuracy; docs/method.md §9);
4. selection overhead: share of EMQ + coreset wall-clock spent scoring and selecting;
5. efficiency: achieved GFLOP/s of a training step over this machine's fp32 matmul rate;
6. scaling: time per epoch as the data set and the number of bit-widths grow, with a linear fit;
7. integer deployment: latency and size of every served bit-width (:func:`emqlib.harness.export.export_bench_rows`);

plus the speed options (torch.compile, channels-last, intra-op threads) on the training step, and the compile
default end to end (whole epochs at one thread, eager and compiled, compilation included). Writes
``results/bench.csv``, one number per row with its facts in the columns :data:`COLUMNS`, and its figure.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from . import labels, paths, plots, report
from ..bits import FULL_PRECISION, SUPPORTED_BITS
from .build import Runtime, compile_model
from .config import PROFILES, RunConfig, profile_config
from .cost import FORWARD_PASS_WEIGHT, ideal_pass_ratio
from .export import export_bench_rows
from .results import load_result
from .runs import get_run
from .studies import cost as cost_study
from .storage import save_csv
from .timing import (Variant, Workload, best, count_flops, epoch_runner, log, random_dataset, row, table,
                     time_interleaved, training_step)

# method: plain (no quantizer), emq, or a method of item 3; bits: one bit-width or a list ("32,8,4,2"); samples:
# the epoch's data set size; repetitions: how many the best was taken of; run, seed, trained: the cached run
COLUMNS = ["metric", "value", "unit", "what", "method", "bits", "bias_correction", "compiled", "samples", "batch",
           "threads", "repetitions", "memory_format", "runtime", "model", "width", "input", "device", "run", "seed",
           "trained"]
CORESET_FRACTION = 0.2  # the EMQ + bit-wise coreset run of items 3 and 4: notebook 05's, seed 0
SHORT_NAMES = {labels.DEDICATED: "dedicated", labels.JOINT: "joint", labels.EMQ: "emq"}  # else emq+coreset
WEIGHTING = f"sample passes + {FORWARD_PASS_WEIGHT:.3g} x (teacher + selection forwards)"


@dataclass(frozen=True)
class BenchSettings:
    """How much each micro-benchmark repeats (per profile)."""

    reps: int  # timed repetitions per variant (items 1, 2, 5 and the speed options)
    warmup: int  # untimed steps per variant first
    scaling_sizes: tuple[int, ...]  # data set sizes of the scaling epochs (item 6)
    scaling_bits_samples: int  # data set size of the epochs with 1..k bit-widths
    scaling_reps: int
    try_compile: bool  # torch.compile takes minutes of compilation on 2 CPU cores
    matmul_n: int = 1024


SETTINGS = {
    "smoke": BenchSettings(reps=5, warmup=2, scaling_sizes=(64, 128, 256), scaling_bits_samples=64, scaling_reps=2,
                           try_compile=False),
    "cpu": BenchSettings(reps=30, warmup=5, scaling_sizes=(1000, 2000, 4000), scaling_bits_samples=1000,
                         scaling_reps=5, try_compile=True),
}
SETTINGS["paper"] = SETTINGS["cpu"]


def linear_fit(x: Sequence[float], y: Sequence[float]) -> tuple[float, float, float]:
    """Least-squares line through (x, y): (slope, intercept, R^2, the squared correlation for such a line)."""
    slope, intercept = np.polyfit(np.asarray(x, dtype=float), np.asarray(y, dtype=float), 1)
    return float(slope), float(intercept), float(np.corrcoef(x, y)[0, 1] ** 2)


def quantized_bits(config: RunConfig) -> list[int]:
    return [b for b in config.model.bits if b != FULL_PRECISION]


def step_variant(name: str) -> tuple[str, dict]:
    """Readable name and columns of a step variant of :func:`measure_steps`: ``fp``, ``32``, ``B`` or ``B+bc``."""
    if name == "fp":
        return "plain FP step (no quantizer)", dict(method="plain", bits=FULL_PRECISION)
    if name == "32":
        return "32-bit path (tanh weights, clamp)", dict(method="emq", bits=FULL_PRECISION)
    bits, _, correction = name.partition("+")
    return (f"{bits}-bit step, bias correction {'on' if correction else 'off'}",
            dict(method="emq", bits=int(bits), bias_correction=bool(correction)))


# ---------------------------------------------------------------- items 1, 2, 5: step overhead and efficiency

def measure_steps(work: Workload, settings: BenchSettings) -> list[dict]:
    """Items 1, 2 and 5: step times at each bit-width with and without bias correction, the
    plain full-precision step, and the fp32 matmul rate, all interleaved in one loop (with each
    step compiled beside it where the settings try torch.compile)."""
    x, y = work.batch()
    specs = {"fp": (work.plain(), FULL_PRECISION), "32": (work.emq(), FULL_PRECISION)}
    for b in quantized_bits(work.config):
        specs[f"{b}+bc"], specs[f"{b}"] = (work.emq(True), b), (work.emq(False), b)
    timed = work.facts(repetitions=settings.reps)
    variants, flops, rows = [], {}, []
    for name, (config, bits) in specs.items():
        model = work.model(config, bits)
        step = training_step(model, work.optimizer(model), x, y)
        flops[name] = count_flops(step)
        variants.append(Variant(name, step))
    if settings.try_compile:  # the same steps compiled, each its own graph (dynamo guards on the bit-width)
        for name, (config, bits) in specs.items():
            label, facts = step_variant(name)
            compile_rows, compiled = _compiled_variant(work, config, bits, x, y, label, dict(**facts, **timed),
                                                       f"{name} compiled")
            rows += compile_rows
            variants += compiled
    n = settings.matmul_n
    a, b_ = torch.randn(n, n, device=work.device), torch.randn(n, n, device=work.device)
    variants.append(Variant("matmul", lambda: torch.mm(a, b_)))

    log(f"timing {len(variants)} step variants x {settings.reps} ({work.describe()})")
    t = best(time_interleaved(variants, settings.reps, settings.warmup, work.device))
    steps = list(specs)
    compiled = [name for name in steps if f"{name} compiled" in t]
    for name in steps:
        label, facts = step_variant(name)
        eager, on = dict(**facts, **timed, compiled=False), dict(**facts, **timed, compiled=True)
        rows.append(row("step_time", t[name] * 1e3, "ms", label, **eager))
        if name in compiled:
            rows += [row("step_time", t[f"{name} compiled"] * 1e3, "ms", f"{label}, torch.compile", **on),
                     row("compiled_over_eager", t[f"{name} compiled"] / t[name], "x",
                         f"{label}: torch.compile over eager (< 1 is faster)", **on)]
            if name != "fp":
                rows.append(row("quant_step_ratio_compiled", t[f"{name} compiled"] / t["fp compiled"], "x",
                                f"{label} over the plain full-precision step, both compiled", **on))
        if name != "fp":
            rows.append(row("quant_step_ratio", t[name] / t["fp"], "x", f"{label} over the plain full-precision step",
                            **eager))
        if name not in ("fp", "32"):
            rows.append(row("quant_step_ratio_vs_path32", t[name] / t["32"], "x",
                            f"{label} over the same model's 32-bit path", **eager))
    rows += [row("bias_correction_ratio", t[f"{b}+bc"] / t[f"{b}"], "x", f"{b}-bit step with bias correction over "
                 "without", method="emq", bits=b, **timed) for b in quantized_bits(work.config)]
    # item 5: achieved GFLOP/s of the FP and the lowest-bit step over the matmul rate
    matmul = 2 * n**3 / t["matmul"] / 1e9
    rows.append(row("matmul_gflops", matmul, "GFLOP/s", f"torch.mm {n}x{n} fp32, 2n^3 FLOPs", **timed))
    counted = "FLOPs of forward + backward matmuls/convs (FlopCounterMode, optimizer not counted)"
    for name in ("fp", f"{min(quantized_bits(work.config))}+bc"):
        label, facts = step_variant(name)
        achieved = flops[name] / t[name] / 1e9
        rows += [row("step_gflop", flops[name] / 1e9, "GFLOP", f"{label}: {counted}", **facts,
                     **{k: v for k, v in timed.items() if k not in ("threads", "repetitions")}),
                 row("step_gflops", achieved, "GFLOP/s", f"{label}: {counted}", **facts, **timed),
                 row("efficiency", 100 * achieved / matmul, "% of matmul rate", label, **facts, **timed)]
    return rows


def _compiled_variant(work: Workload, config: RunConfig, bits: int, x: Tensor, y: Tensor, label: str, facts: dict,
                      name: str = "compiled") -> tuple[list[dict], list[Variant]]:
    """Compile the model of ``config`` at ``bits``, time the first step (compilation included) and
    report whether it works (rows with the columns ``facts``); the compiled step as variant ``name``."""
    model = work.model(config, bits)
    step = training_step(compile_model(model), work.optimizer(model), x, y)
    log(f"compiling the training step ({name}) with torch.compile")
    facts, start = dict(facts, compiled=True), time.perf_counter()
    try:
        step()
    except Exception as error:  # a missing compiler or an unsupported op: report, do not fail the bench
        log(f"torch.compile failed: {type(error).__name__}: {error}")
        return [row("compile_works", 0, "bool", f"torch.compile of the {label} failed ({type(error).__name__})",
                    **facts)], []
    seconds = time.perf_counter() - start
    return ([row("compile_works", 1, "bool", f"torch.compile (mode default) of the {label}", **facts),
             row("compile_seconds", seconds, "s", f"first compiled step of the {label} (forward + backward graphs), "
                 "from inductor's on-disk cache when this machine compiled the step before; each bit-width is a new "
                 "graph (set_bits changes module attributes that dynamo guards on)", **facts)],
            [Variant(name, step)])


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
    facts = work.facts(method="emq", bits=bits, bias_correction=True, repetitions=settings.reps)
    rows = []
    if settings.try_compile:
        rows, compiled = _compiled_variant(work, work.emq(), bits, x, y, f"{bits}-bit EMQ step", facts)
        variants += compiled
    log(f"timing speed options {[v.name for v in variants]} x {settings.reps}")
    t = best(time_interleaved(variants, settings.reps, settings.warmup, work.device))
    ratios = {"1 thread over 2 threads": ("threads=1", "threads=2"), "channels-last over contiguous": (
        "channels_last", "eager"), "torch.compile (mode default) over eager": ("compiled", "eager")}
    return rows + [row("speed_option_ratio", t[a] / t[b], "x", what, **facts)
                   for what, (a, b) in ratios.items() if a in t]


# ---------------------------------------------------------------- item 6: scaling

def bit_list(bits: Sequence[int]) -> str:
    return ",".join(map(str, bits))


def measure_scaling(work: Workload, settings: BenchSettings) -> tuple[list[dict], float]:
    """Item 6: seconds per epoch against the data set size (one bit-width) and against the
    number of bit-widths k (joint step over the k highest, fixed size), with linear fits; and the
    seconds per sample (the slope against the size)."""
    sizes, n_bits = settings.scaling_sizes, settings.scaling_bits_samples
    dataset = random_dataset(work, max(*sizes, n_bits))
    lowest = min(quantized_bits(work.config))
    bit_sets = [work.bits[:k] for k in range(1, len(work.bits) + 1)]
    variants = [Variant(f"n={n}", epoch_runner(work, dataset, n, (lowest,))) for n in sizes]
    variants += [Variant(f"k={len(bs)}", epoch_runner(work, dataset, n_bits, bs)) for bs in bit_sets]
    log(f"timing scaling epochs {[v.name for v in variants]} x {settings.scaling_reps}")
    t = best(time_interleaved(variants, settings.scaling_reps, warmup=1, device=work.device))
    facts = work.facts(method="emq", bias_correction=True, compiled=False, repetitions=settings.scaling_reps)
    one = dict(facts, bits=lowest)
    rows = []
    for n in sizes:
        rows += [row("epoch_time", t[f"n={n}"], "s", "whole epochs, 1 bit-width", samples=n, **one),
                 row("time_per_sample", t[f"n={n}"] / n * 1e3, "ms", "whole epochs, 1 bit-width", samples=n, **one)]
    rows += [row("epoch_time", t[f"k={len(bs)}"], "s", f"whole epochs, joint step over k={len(bs)} bit-widths",
                 samples=n_bits, bits=bit_list(bs), **facts) for bs in bit_sets]
    fit_n = linear_fit(sizes, [t[f"n={n}"] for n in sizes])
    fit_k = linear_fit(range(1, len(bit_sets) + 1), [t[f"k={len(bs)}"] for bs in bit_sets])
    every = dict(facts, bits=bit_list(work.bits), samples=n_bits)
    rows += [row("scaling_slope", fit_n[0] * 1e3, "ms per sample", "epoch time vs N, 1 bit-width", **one),
             row("scaling_intercept", fit_n[1], "s", "epoch time vs N, 1 bit-width", **one),
             row("scaling_r2", fit_n[2], "R^2", "linear fit of epoch time vs N", **one),
             row("scaling_slope", fit_k[0], "s per bit-width", f"epoch time vs k at N={n_bits}", **every),
             row("scaling_intercept", fit_k[1], "s", f"epoch time vs k at N={n_bits}", **every),
             row("scaling_r2", fit_k[2], "R^2", f"linear fit of epoch time vs k at N={n_bits}", **every)]
    return rows, fit_n[0]


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
    n, bits = settings.scaling_sizes[-1], work.bits
    dataset = random_dataset(work, n)
    layout = Runtime().memory_format  # the trainer's (channels-last by default), unlike the steps above
    facts = work.facts(threads, method="emq", bits=bit_list(bits), bias_correction=True, samples=n,
                       memory_format="channels_last" if layout == torch.channels_last else "contiguous")
    log(f"compiling and timing whole epochs, eager and compiled, {threads} thread(s)")
    # as a worker's first run would: none of the step graphs compiled above (at other thread counts, which
    # dynamo guards on) is reused
    torch._dynamo.reset()
    variants = [Variant(name, epoch_runner(work, dataset, n, bits, compiled=name == "compiled", memory_format=layout),
                        threads=threads) for name in ("eager", "compiled")]
    try:  # the first compiled epoch compiles every bit-width's forward and backward, and the last, shorter batch's
        first = time_interleaved(variants[1:], reps=1, warmup=0, device=work.device)["compiled"][0]
    except Exception as error:  # a missing compiler or an unsupported op: report, do not fail the bench
        log(f"torch.compile failed: {type(error).__name__}: {error}")
        return [row("compile_works", 0, "bool", f"torch.compile of whole epochs failed ({type(error).__name__})",
                    compiled=True, **facts)]
    t = best(time_interleaved(variants, settings.scaling_reps, warmup=1, device=work.device))
    timed, joint = dict(facts, repetitions=settings.scaling_reps), f"whole epochs at {threads} thread(s), joint step"
    return [row("epoch_time", t["eager"], "s", joint, compiled=False, **timed),
            row("epoch_time", t["compiled"], "s", joint, compiled=True, **timed),
            row("compiled_epoch_over_eager", t["compiled"] / t["eager"], "x",
                f"{joint}, torch.compile over eager (< 1 is faster)", compiled=True, **timed),
            row("first_compiled_epoch", first, "s", f"{joint}, compilation included (from inductor's on-disk cache "
                "when this machine compiled these graphs before)", compiled=True, **facts),
            row("compile_break_even_epochs", break_even_epochs(first, t["eager"], t["compiled"]), "epochs",
                "epochs a process must train before compiling pays for itself (compile seconds over seconds saved "
                "per epoch, inf: never)", compiled=True, **facts)]


# ---------------------------------------------------------------- items 3, 4: methods from the run cache

def emq_sampler() -> str:
    """EMQ's sampler: the one notebook 04 chose on the validation split
    (:func:`emqlib.harness.studies.pruning.chosen_sampler`, results/sampler_choice.csv)."""
    return str(load_result("sampler_choice.csv").chosen.iloc[0])


def method_configs(profile: str) -> dict[str, RunConfig]:
    """The runs of items 3 and 4: notebook 05's methods on seed 0, with the sampler notebook 04 chose."""
    return {SHORT_NAMES.get(label, "emq+coreset"): config for label, config in cost_study.cost_methods(
        profile, emq_sampler(), CORESET_FRACTION, seed=0).items()}


def train_methods(profile: str) -> pd.DataFrame:
    """Items 3 and 4: notebook 05's cost table on seed 0 (:func:`emqlib.harness.studies.cost.training_cost`), its
    runs from the run cache (trained now if absent), with each method's short name and when its run finished."""
    log("methods: notebook 05's runs of seed 0, from the run cache (training them first if absent)")
    cost = cost_study.training_cost(profile, emq_sampler(), seeds=(0,), fraction=CORESET_FRACTION)
    return cost.assign(method=[SHORT_NAMES.get(m, "emq+coreset") for m in cost.method], trained=[
        datetime.fromtimestamp((paths.runs_dir() / r / "done.json").stat().st_mtime).isoformat(timespec="minutes")
        for r in cost.run])


def method_rows(cost: pd.DataFrame, config: RunConfig, seconds_per_pass_now: float, now: str) -> list[dict]:
    """Items 3 and 4 from :func:`train_methods`' table; ``config`` is the EMQ + coreset configuration. Each run's
    slowdown: a cached wall-clock is from when the run was trained, and other processes on a 2-core machine can
    slow a 2-thread run many times over; about 1 for a run timed on a quiet machine."""
    k, trained, rows = len(config.model.bits), bit_list(config.model.bits), []
    runs = {r.method: (r, dict(method=r.method, run=r.run, seed=0, trained=r.trained)) for r in cost.itertuples()}
    for name, (r, facts) in runs.items():
        rows += [row("method_wallclock", r.wall_seconds, "s", "train + selection seconds", **facts),
                 row("method_sample_passes", r.sample_passes, "passes", "forward+backward sample passes", **facts),
                 row("method_weighted_passes", r.pass_equivalents, "passes", WEIGHTING, **facts),
                 row("method_avg_accuracy", r.avg_accuracy, "%", "mean final test accuracy over the trained "
                     "bit-widths", bits=trained, **facts)]
        if name != "dedicated":
            rows += [row("speedup_wallclock", r.speedup_wall, "x", f"Dedicated ({k} models) over {name}, wall-clock",
                         **facts),
                     row("speedup_passes", r.speedup_passes, "x", f"Dedicated over {name}, {WEIGHTING}", **facts),
                     row("accuracy_gap", runs["dedicated"][0].avg_accuracy - r.avg_accuracy, "points",
                         f"Dedicated minus {name} average accuracy", bits=trained, **facts)]
    supported = len(SUPPORTED_BITS)
    rows += [row("ideal_pass_ratio", ideal_pass_ratio(n, k, config.selection.fraction), "x", f"derived (docs/method.md §9): "
                 f"Dedicated over {which} / ({k} trained x S={config.selection.fraction:g})", bits=trained)
             for n, which in ((supported, f"all {supported} supported bit-widths"), (k, f"the {k} trained bit-widths"))]
    for name, (r, facts) in runs.items():
        if isinstance(r.served_bits, str):  # (b): Dedicated trained on every bit-width the model serves
            over = f"Dedicated trained on every bit-width {name} serves (the untrained ones trained for this) over {name}"
            rows += [row("speedup_wallclock_served", r.speedup_wall_served, "x", f"{over}, wall-clock",
                         bits=r.served_bits, **facts),
                     row("speedup_passes_served", r.speedup_passes_served, "x", f"{over}, {WEIGHTING}",
                         bits=r.served_bits, **facts)]
    coreset, facts = runs["emq+coreset"]
    rows += [row("selection_seconds", coreset.selection_seconds, "s", "scoring + selection of emq+coreset", **facts),
             row("selection_share", 100 * coreset.selection_seconds / coreset.wall_seconds, "%",
                 "selection seconds / (train + selection) of emq+coreset", **facts),
             row("selection_share_passes", 100 * FORWARD_PASS_WEIGHT * coreset.selection_forwards
                 / coreset.pass_equivalents, "%",
                 f"selection forwards x {FORWARD_PASS_WEIGHT:.3g} / weighted passes of emq+coreset", **facts)]
    for r, facts in runs.values():
        per_pass = r.wall_seconds / r.pass_equivalents
        rows += [row("method_time_per_pass", per_pass * 1e3, "ms", "wall-clock / weighted passes", **facts),
                 row("run_slowdown", per_pass / seconds_per_pass_now, "x", "time per weighted pass when trained over "
                     f"the per-sample time measured now ({now}); >> 1 means the cached timing was disturbed", **facts)]
    return rows


# ---------------------------------------------------------------- main

def run_bench(profile: str, out_csv: Path, out_png: Path, runtime: Runtime = Runtime(progress=False)) -> pd.DataFrame:
    """Every measurement of ``profile``; writes the CSV and its figure (:func:`emqlib.harness.plots.plot_bench`)."""
    started, settings, cost, configs = time.perf_counter(), SETTINGS[profile], train_methods(profile), method_configs(profile)
    work = Workload(profile_config(profile, method="emq"), runtime.torch_device())
    rows = measure_steps(work, settings)
    scaling_rows, per_sample = measure_scaling(work, settings)
    now = f"{min(quantized_bits(work.config))}-bit EMQ step, slope of epoch time vs N, {work.describe()}"
    rows += method_rows(cost, configs["emq+coreset"], per_sample, now) + scaling_rows
    rows += measure_speed_options(work, settings) + measure_compiled_epochs(work, settings)
    # integer deployment: latency and size of every served bit-width, fake-quant vs onnxruntime
    rows += export_bench_rows(get_run(configs["emq"], runtime), threads=torch.get_num_threads())
    written = table(rows, COLUMNS)
    save_csv(written, out_csv)
    plots.plot_bench(out_csv, out_png)
    log(f"wrote {out_csv} and {out_png} in {time.perf_counter() - started:.0f} s")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emqlib.harness.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="cpu")
    parser.add_argument("--out-csv", type=Path, help="default: results/bench.csv ($EMQ_RESULTS_DIR)")
    parser.add_argument("--out-png", type=Path, help="default: figures/bench.png ($EMQ_FIGURES_DIR)")
    args = parser.parse_args(argv)
    written = run_bench(args.profile, args.out_csv or paths.results_dir() / "bench.csv",
                        args.out_png or paths.figures_dir() / "bench.png")
    with pd.option_context("display.max_rows", None, "display.max_colwidth", 60, "display.width", 200):
        print(written[["metric", "value", "unit", "what"]].to_string(index=False))
    if args.out_csv is None:
        report.update(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
