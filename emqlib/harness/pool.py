"""Training many runs at once: worker processes that share the CPU cores, one torch thread each.

On 2 CPU cores two training processes with one thread each do more epochs per second than one process
with two threads: a small convolution does not split well over threads (a step at one thread takes well
under twice its time at two: ``speed_option_ratio`` "1 thread over 2 threads" in results/bench.csv,
README's Cost block). ``EMQ_WORKERS`` (``make reproduce``
sets it per profile) says how many processes :func:`train_missing` trains with; with 1, the default,
runs are trained one after another in this process, as :func:`emqlib.harness.runs.get_run` always did.

Workers train through the run cache and its locks, so a run is trained once whoever asks for it,
and a pool stopped mid-run (Ctrl-C, a failure, a killed parent: workers end with their parent) leaves
resumable checkpoints like any killed run.
"""
from __future__ import annotations

import ast
import atexit
import functools
import multiprocessing
import multiprocessing.connection
import multiprocessing.pool
import os
import queue
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..models import plain_model
from .build import Runtime
from .config import RunConfig, reference_config
from .datasets import DATASET_SHAPES
from .runs import get_run, is_done, run_path
from .timing import count_flops

WORKERS_VARIABLE = "EMQ_WORKERS"
_pools: dict[int, multiprocessing.pool.Pool] = {}


def workers() -> int:
    """How many processes train runs at once: ``$EMQ_WORKERS``, 1 when unset."""
    text = os.environ.get(WORKERS_VARIABLE, "1")
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"{WORKERS_VARIABLE}={text!r} is not a number of worker processes; set it to a whole "
                         "number >= 1 (1 trains runs one after another in this process)")
    return count


def threads_per_worker(count: int) -> int:
    """Each worker's torch threads: the CPU cores shared evenly (at least one)."""
    return max(1, (os.cpu_count() or 1) // count)


@functools.lru_cache(maxsize=None)
def forward_flops(model: str, width: float, dataset: str) -> int:
    """FLOPs (matmuls and convolutions) of one sample's forward pass through ``model`` at ``width``, shaped
    for ``dataset``: what one sample pass of the model costs beside the other models'."""
    classes, channels, size = DATASET_SHAPES[dataset]
    with torch.random.fork_rng(devices=[]):  # building a model draws its initial weights: the caller keeps its own
        network = plain_model(model, num_classes=classes, in_channels=channels, image_size=size, width=width).eval()
    with torch.no_grad():
        return count_flops(lambda: network(torch.zeros(1, channels, size, size)))


def estimated_cost(config: RunConfig) -> float:
    """A run's training work: sample passes per training sample (epochs x bit-widths x the fraction it
    trains on) times the FLOPs of one (:func:`forward_flops`), to start the longest runs first so that the
    workers finish together. FLOPs overstate how much longer a larger model trains (on a CPU a small
    model's time is much per-layer overhead: ResNet-20 at 28 pixels has 3.3 times ResNet-8's FLOPs and
    trains 2.7 times as long), but they order the models as their times do."""
    return (config.optim.epochs * len(config.model.bits) * config.selection.fraction
            * forward_flops(config.model.name, config.model.width, config.data.dataset))


def missing(configs: Sequence[RunConfig]) -> list[RunConfig]:
    """The configurations among ``configs`` with no finished run in the cache, each once, in order."""
    found, seen = [], set()
    for config in configs:
        path = run_path(config)
        if path not in seen and not is_done(path):
            seen.add(path)
            found.append(config)
    return found


def _start_worker(threads: int) -> None:
    import torch

    # Ctrl-C (and Jupyter's interrupt at kernel shutdown, sent to the whole process group) is the
    # parent's to handle: it stops the workers itself
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["EMQ_PROGRESS"] = "0"  # one bar in the parent, not one per worker
    torch.set_num_threads(threads)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(parent_sentinel: int) -> None:
    """End this worker as soon as its parent is gone (killed, SIGKILL included, which no parent can
    handle): nobody would take its result, so it would train on for nothing and then fail sending it.
    The run it trains resumes from its last checkpoint (every file is written atomically)."""
    multiprocessing.connection.wait([parent_sentinel])
    os._exit(1)


def _train(config: RunConfig, evaluations: Sequence[tuple] = ()) -> str:
    """Train ``config`` (or find it in the cache), then measure each (bits, recalibrate[, split]) evaluation
    the study will ask for, cached in the run folder (:meth:`emqlib.harness.runs.Run.evaluate`)."""
    try:
        run = get_run(config, Runtime(progress=False))
        for bits, recalibrate, *split in evaluations:
            run.evaluate(bits, recalibrate=recalibrate, split=split[0] if split else "test")
        return run.path.name
    except Exception as error:  # the parent sees the message only: name the run in it
        raise RuntimeError(f"training run {run_path(config).name} in a worker failed: "
                           f"{type(error).__name__}: {error}") from None


def _unguarded_main_script() -> str | None:
    """The script a spawned worker would run again as it starts, when its top-level code is not
    under ``if __name__ == "__main__":`` (None otherwise, or when there is no such script: the
    command line, a notebook, ``python -m pkg`` running ``pkg/__main__.py``). Such a script's
    studies would start a pool inside every worker, which dies at once; the pool respawns it forever."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None:  # python -m NAME: workers import NAME again, unless it is a __main__ module
        if spec.name == "__main__" or spec.name.endswith(".__main__"):
            return None
        script = spec.origin
    else:
        script = getattr(main, "__file__", None)
    try:
        tree = ast.parse(Path(script).read_bytes())
    except (TypeError, OSError, SyntaxError, ValueError):  # no file, or not Python source: nothing to check
        return None
    guarded = any(isinstance(node, ast.If) and "__name__" in ast.unparse(node.test)
                  and "__main__" in ast.unparse(node.test) for node in tree.body)
    return None if guarded else str(script)


def _pool(count: int) -> multiprocessing.pool.Pool:
    """The pool of ``count`` workers of this process, started on first use (spawned: a forked child
    of a process that has run OpenMP threads can hang)."""
    if count not in _pools:
        script = _unguarded_main_script()
        if script is not None:
            raise RuntimeError(f"{count} worker processes ({WORKERS_VARIABLE}) each start by running {script} "
                               "again, and its studies would start workers of their own: put the script's code "
                               f'under if __name__ == "__main__": (or set {WORKERS_VARIABLE}=1)')
        _pools[count] = multiprocessing.get_context("spawn").Pool(count, initializer=_start_worker,
                                                                 initargs=(threads_per_worker(count),))
    return _pools[count]


@atexit.register
def shutdown() -> None:
    """Stop every worker of this process at once (at exit, or when a pool is interrupted or fails:
    a run stopped mid-way resumes from its last checkpoint when asked for again)."""
    while _pools:
        pool = _pools.popitem()[1]
        pool.terminate()
        pool.join()


def _train_in_pool(configs: list[RunConfig], count: int, evaluations: dict[str, list]) -> None:
    """Train ``configs`` and the missing reference runs they need, ``count`` at a time: references
    first, then the longest runs first. A run waits for its own reference only; the runs that need
    none (or whose reference is finished) train beside it, so no worker idles while one reference
    trains. The first failure stops the rest and is raised."""
    references = missing([reference_config(c) for c in configs if c.needs_reference])
    unfinished = {run_path(r).name for r in references}
    runs = [c for c in configs if run_path(c).name not in unfinished]  # a reference asked for itself trains once
    pending = sorted(references, key=estimated_cost, reverse=True) + sorted(runs, key=estimated_cost, reverse=True)

    def ready(config: RunConfig) -> bool:
        return not (config.needs_reference and run_path(reference_config(config)).name in unfinished)

    outcomes: queue.SimpleQueue = queue.SimpleQueue()
    running = 0
    bar = tqdm(total=len(pending), desc="runs", unit="run", disable=os.environ.get("EMQ_PROGRESS", "1") == "0")
    try:
        while pending or running:
            for config in [c for c in pending if ready(c)][:count - running]:
                pending.remove(config)
                _pool(count).apply_async(_train, (config, evaluations.get(run_path(config).name, ())),
                                         callback=outcomes.put, error_callback=outcomes.put)
                running += 1
            outcome = outcomes.get()
            running -= 1
            if isinstance(outcome, BaseException):
                raise outcome
            unfinished.discard(outcome)
            bar.update()
    except BaseException:
        shutdown()
        raise
    finally:
        bar.close()


def train_missing(configs: Sequence[RunConfig], count: int | None = None,
                  evaluations: Sequence[tuple | None] | None = None) -> int:
    """Train every run of ``configs`` not yet in the cache, with ``count`` workers (default
    :func:`workers`), the full-precision reference runs they need included; returns how many runs
    were trained (references not counted). ``evaluations``, one per configuration (or None), is the
    (bits, recalibrate[, split]) evaluation the study will ask for: the worker that trains the run measures it
    too, beside the other worker's training instead of after the pool. No more workers start than
    there are CPU cores and runs to train (a note on stderr says so when that is fewer than asked for).
    With one worker nothing happens here: :func:`emqlib.harness.runs.get_run` trains each run when it
    is asked for."""
    if evaluations is not None and len(evaluations) != len(configs):
        raise ValueError(f"evaluations has {len(evaluations)} entries for {len(configs)} configurations; give one "
                         "per configuration (None where the study evaluates nothing)")
    asked = workers() if count is None else count
    if asked <= 1:
        return 0
    todo = missing(configs)
    if not todo:
        return 0
    runs = len(todo) + len([r for r in missing([reference_config(c) for c in todo if c.needs_reference])
                            if run_path(r) not in {run_path(c) for c in todo}])
    cores = os.cpu_count() or 1
    started = min(asked, cores, runs)  # each worker holds a training process in memory: none that would idle
    if started < asked:
        where = f" ({WORKERS_VARIABLE}={asked})" if count is None else ""
        print(f"note: {started} worker process{'es' if started > 1 else ''}, not the {asked} asked for{where}: "
              f"{cores} CPU cores, {runs} run{'s' if runs > 1 else ''} to train"
              + (" (in this process)" if started == 1 else ""), file=sys.stderr)
    if started <= 1:
        return 0
    wanted: dict[str, list] = {}
    for config, evaluation in zip(configs, evaluations or [None] * len(configs)):
        if evaluation is not None:
            wanted.setdefault(run_path(config).name, []).append(evaluation)
    _train_in_pool(todo, started, wanted)
    return len(todo)


__all__ = ["WORKERS_VARIABLE", "workers", "threads_per_worker", "forward_flops", "estimated_cost", "missing",
           "train_missing", "shutdown"]
