"""GPU throughput of the paper recipe and the GPU-hours it projects (`python -m emqlib.harness.bench_gpu`).

On the ``paper`` profile's model (ResNet-20 x5, CIFAR-shaped random data, batch 128) it times,
interleaved, the training step of every bit-width alone (a Dedicated model's step) and the
joint step over all bit-widths without and with EMQ's weight bias correction, eager and
torch.compile'd, in fp32 and under bf16 autocast. From the median step it writes images/s and
the GPU-hours of the 200-epoch recipe on 50,000 images:

* Dedicated: the sum over bit-widths of one model trained alone;
* joint (Any-Precision): one joint step per batch, every bit-width on it;
* EMQ: the joint step with bias correction;
* EMQ + coreset at 80%: 0.8 x EMQ (training passes only: coreset scoring and selection are not
  timed here), next to the paper's 1.52 GPU-h for EMQ with its bit-wise coreset (CIFAR-10).

Each (mode, precision) is timed in its own interleaved loop and the table is saved after each, in
the order eager before compiled, so that a run cut short (compiling every bit-width's graphs takes
minutes) keeps every setting it finished. A compiled variant's first step, its compilation
included, is timed once before the warm-up (``first_step_seconds``). The rows of settings a run
does not measure are kept from the file it writes, so that runs too short for every setting add
up to one table; each row names the torch version and commit it was measured with.

It refuses to run without a CUDA device unless ``--allow-cpu`` is given together with an
explicit ``--out`` (for tests), so that ``results/bench_gpu.csv`` only ever holds GPU numbers.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import paths
from .build import compile_model
from ..distill import joint_step
from .config import profile_config
from .storage import save_csv
from .timing import Variant, Workload, log, row, table, time_interleaved

PAPER_GPU_HOURS = 1.52  # EMQ with bit-wise coreset, CIFAR-10, ResNet-20 x5 (the paper's Results)
CORESET_FRACTION = 0.8
TRAIN_IMAGES = 50_000  # CIFAR-10 training set
MODES = ("eager", "compiled")
PRECISIONS = ("fp32", "bf16")
# step: single (one bit-width alone), joint or emq; method: of the projected GPU-hours; threads: on a CPU only;
# repetitions: the steps the median is of; epochs and images: the recipe projected; torch and commit: what measured it
COLUMNS = ["metric", "value", "unit", "what", "step", "method", "bits", "compiled", "precision", "device", "threads",
           "model", "width", "input", "batch", "repetitions", "epochs", "images", "torch", "commit"]


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _steps(work: Workload, mode: str, precision: str, x: torch.Tensor, y: torch.Tensor) -> dict[str, Callable[[], None]]:
    """The step callables of one (mode, precision): each bit-width alone, joint, joint + correction."""
    bits = work.bits
    steps = {}

    def build(correction: bool, first_bits: int) -> tuple[nn.Module, torch.optim.Optimizer]:
        model = work.model(work.emq(correction), first_bits).to(memory_format=torch.channels_last)
        optimizer = work.optimizer(model)
        return (compile_model(model) if mode == "compiled" else model), optimizer

    for b in bits:
        model, optimizer = build(False, b)

        def single(model=model, optimizer=optimizer) -> None:
            optimizer.zero_grad(set_to_none=True)
            with _autocast(work.device, precision):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        steps[str(b)] = single
    for name, correction in (("joint", False), ("emq", True)):
        model, optimizer = build(correction, bits[0])

        def joint(model=model, optimizer=optimizer) -> None:
            optimizer.zero_grad(set_to_none=True)
            with _autocast(work.device, precision):
                total = joint_step(model, x, y, bits).total
            total.backward()  # gradients of all bit-widths summed, one step (as the trainer's joint loop)
            optimizer.step()
        steps[name] = joint
    return steps


def measure(work: Workload, mode: str, precision: str, steps: int, warmup: int) -> tuple[pd.DataFrame, list[dict]]:
    """Median step seconds of one (mode, precision)'s variants, interleaved in one loop, and the rows
    of the compiled variants' first step (compilation included)."""
    x, y = work.batch()
    x = x.contiguous(memory_format=torch.channels_last)
    if mode == "compiled":
        torch._dynamo.reset()  # the previous precision's graphs are not reused: each first step compiles
    variants = [Variant(name, step) for name, step in _steps(work, mode, precision, x, y).items()]
    first_rows = []
    if mode == "compiled":
        # one step each, in order, no warm-up: the compilation is in it (the trainer's compile_model: past
        # dynamo's limit of graphs per function it fails rather than running the rest eagerly)
        for name, (seconds,) in time_interleaved(variants, reps=1, warmup=0, device=work.device).items():
            first_rows.append(row("first_step_seconds", seconds, "s", "compilation included",
                                  **facts(work, mode, precision, name)))
            log(f"{mode} {precision} {name}: first step {seconds:.1f} s")
    log(f"timing {len(variants)} variants x {steps} steps after {warmup} warm-up steps ({mode}, {precision})")
    times = time_interleaved(variants, steps, warmup, work.device)
    medians = pd.DataFrame([dict(mode=mode, precision=precision, step=name, seconds=statistics.median(t))
                            for name, t in times.items()])
    return medians, first_rows


def facts(work: Workload, mode: str, precision: str, step: str | None = None, **more) -> dict:
    """The columns of a row: the workload, the (mode, precision), and ``step`` (a bit-width, joint or emq)."""
    bits = ",".join(map(str, work.bits))
    kind = {} if step is None else dict(step="single", bits=step) if step.isdigit() else dict(step=step, bits=bits)
    return {**work.facts(), **kind, "compiled": mode == "compiled", "precision": precision,
            "device": device_name(work.device), **more}


def projected_rows(medians: pd.DataFrame, work: Workload, steps: int) -> list[dict]:
    """images/s per step and the GPU-hours of the recipe per method, for each (mode, precision)."""
    epochs = work.config.optim.epochs
    rows = []
    for (mode, precision), group in medians.groupby(["mode", "precision"], sort=False):
        seconds = dict(zip(group["step"], group["seconds"]))
        rows += [row("images_per_second", work.batch_size / s, "images/s", f"median of {steps} interleaved steps",
                     **facts(work, mode, precision, name, repetitions=steps)) for name, s in seconds.items()]
        hours = {name: epochs * TRAIN_IMAGES / work.batch_size * s / 3600 for name, s in seconds.items()}
        recipe = facts(work, mode, precision, bits=",".join(map(str, work.bits)), epochs=epochs, images=TRAIN_IMAGES,
                       repetitions=steps)
        rows += [row("projected_gpu_hours", value, "GPU-h", what, method=method, **recipe) for method, what, value in [
            ("Dedicated", "one model per bit-width", sum(hours[str(b)] for b in work.bits)),
            ("joint", "Any-Precision", hours["joint"]), ("EMQ", "joint + bias correction", hours["emq"]),
            (f"EMQ + coreset at {CORESET_FRACTION:.0%}", f"training passes only, selection not timed; paper: "
             f"{PAPER_GPU_HOURS} GPU-h", CORESET_FRACTION * hours["emq"])]]
    rows.append(row("paper_gpu_hours", PAPER_GPU_HOURS, "GPU-h", "EMQ + bit-wise coreset, CIFAR-10 (the paper)"))
    return rows


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def kept_rows(out: Path, settings: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """The rows of ``out`` (when it exists) of every (mode, precision) not in ``settings``, without the
    paper's number (written anew)."""
    if not out.exists():
        return pd.DataFrame(columns=COLUMNS)
    old = pd.read_csv(out, dtype={"commit": str, "torch": str})  # a commit of digits only stays its text
    measured_now = pd.Series([setting in settings for setting in zip(
        old.compiled.map({True: "compiled", False: "eager"}), old.precision)], index=old.index)
    return old[~measured_now & (old.metric != "paper_gpu_hours")]


def run(out: Path, steps: int, warmup: int, modes: Sequence[str], precisions: Sequence[str],
        device: torch.device, commit: str | None = None, **overrides) -> pd.DataFrame:
    work = Workload(profile_config("paper", method="emq", **overrides), device)
    kept = kept_rows(out, [(m, p) for m in modes for p in precisions])
    source = {"torch": torch.__version__, "commit": commit[:7] if commit else None}  # what measured the rows
    medians, first_rows = [], []
    for mode in modes:
        for precision in precisions:
            m, first = measure(work, mode, precision, steps, warmup)
            medians.append(m)
            first_rows += first
            new = table([r if r["metric"] == "paper_gpu_hours" else {**r, **source}
                         for r in projected_rows(pd.concat(medians), work, steps) + first_rows], COLUMNS)
            written = pd.concat([kept, new], ignore_index=True)
            save_csv(written, out)
            log(f"wrote {out} ({mode}, {precision} done; {len(kept)} rows of other settings kept)")
    return written


def _choices(text: str, allowed: Sequence[str], what: str) -> list[str]:
    chosen = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in chosen if t not in allowed]
    if bad or not chosen:
        raise SystemExit(f"--{what} takes a comma-separated subset of {','.join(allowed)}, got {text!r}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emqlib.harness.bench_gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="timed steps per variant (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps per variant first (compilation included)")
    parser.add_argument("--modes", default=",".join(MODES), help="eager,compiled")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), help="fp32,bf16")
    parser.add_argument("--out", type=Path, help="default: results/bench_gpu.csv ($EMQ_RESULTS_DIR)")
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU (needs --out; for tests)")
    parser.add_argument("--width", type=float, help="model width instead of the paper's 5 (for tests)")
    parser.add_argument("--batch-size", type=int, help="batch instead of the paper's 128 (for tests)")
    parser.add_argument("--commit", help="the commit this code is, named in each row (default: git's HEAD here; "
                                         "give it where the code was copied without its git folder)")
    args = parser.parse_args(argv)
    modes, precisions = _choices(args.modes, MODES, "modes"), _choices(args.precisions, PRECISIONS, "precisions")
    if args.steps < 1 or args.warmup < 0:
        raise SystemExit("--steps must be at least 1 and --warmup at least 0")
    if torch.cuda.is_available():
        device = torch.device("cuda")
    elif args.allow_cpu and args.out is not None:
        device = torch.device("cpu")
    else:
        print("bench_gpu needs a CUDA GPU: results/bench_gpu.csv holds GPU numbers only "
              "(on a CPU, pass --allow-cpu with --out PATH to try the script)", file=sys.stderr)
        return 2
    overrides = {part: {name: value} for part, name, value in (("model", "width", args.width),
                                                               ("optim", "batch_size", args.batch_size)) if value is not None}
    commit = args.commit or paths.git_commit()["commit"]
    written = run(args.out or paths.results_dir() / "bench_gpu.csv", args.steps, args.warmup, modes, precisions,
                device, commit, **overrides)
    with pd.option_context("display.max_rows", None, "display.max_colwidth", 90, "display.width", 220):
        print(written.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
