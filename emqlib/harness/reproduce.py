"""``make reproduce``: execute every notebook for one profile, in numeric order except the quickstart
(:data:`RUN_AFTER`).

    python -m emqlib.harness.reproduce --profile {smoke,cpu,paper} [--only NN ...] [--output-dir DIR]

Each source notebook ``notebooks/NN_name.ipynb`` is executed with papermill (``profile``
injected after its ``parameters`` cell) into ``results/notebooks/NN_name.ipynb``; the source
notebooks are never written. The trained runs live in the run cache, so a run interrupted and
started again redoes no finished training. The wall-clock time of each notebook and the total
are recorded in ``results/reproduce_<profile>.json`` (docs/engineering.md quotes it), what produced the results in
``results/provenance.json`` (:mod:`emqlib.harness.provenance`); at the end
:func:`emqlib.harness.report.update` regenerates the generated blocks of README.md and docs/engineering.md.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from unittest import mock

import papermill

from . import errors, paths, report, shipped
from .build import Runtime
from .config import PROFILES
from .parameters import check_notebook
from .pool import WORKERS_VARIABLE
from .provenance import save_provenance, seed_parameters
from .storage import load_json, save_json

KERNEL = "emqlib"  # registered in .venv by `make setup`
NOTEBOOK_NAME = re.compile(r"^(\d{2})_[\w-]+\.ipynb$")  # NN_name.ipynb: run in numeric order
# The quickstart trains one run, the full-data EMQ run of notebook 04's convergence check. Executed first it trains
# that run alone: one worker process, one of the two cores idle for minutes of a cold `make reproduce`. Executed
# after notebook 04, whose workers train the run beside others, it finds it in the cache.
RUN_AFTER = {"00_quickstart.ipynb": "04_pruning.ipynb"}
# make reproduce trains every run itself, the one shipped in pretrained/ included
OWN_RUNS = {"00_quickstart": {"use_shipped_run": False}}
# no kernel log lines in the terminal: the TCP warning, and the tasks an interrupted kernel leaves pending (Ctrl-C)
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL",
                    "--IPKernelApp.exec_lines=import logging; logging.getLogger('asyncio').setLevel(logging.CRITICAL)"]
# per-epoch progress bars are noise in executed notebooks; so is, after Ctrl-C, the warning of the kernel's
# multiprocessing resource tracker that it cleans up the semaphores of the stopped workers
KERNEL_ENVIRONMENT = {"EMQ_PROGRESS": "0",
                      "PYTHONWARNINGS": "ignore:resource_tracker:UserWarning:multiprocessing.resource_tracker"}
# processes that train a notebook's runs at once (emqlib.harness.pool): on 2 CPU cores, two one-thread workers
# train more epochs per second than one two-thread process (a small convolution splits poorly over threads:
# speed_option_ratio "1 thread over 2 threads" in results/bench.csv); one GPU trains one run at a time
DEFAULT_WORKERS = {"cpu": 2}
START_TIMEOUT = 180  # seconds for a kernel to start (slow on a loaded 2-core machine)
FOLDERS = "--output-dir for the executed notebooks, EMQ_RESULTS_DIR, EMQ_FIGURES_DIR, or EMQ_RUNS_DIR for the run cache"


class KernelMissingError(RuntimeError):
    """The Jupyter kernel the notebooks run on is not installed."""


class NotebookFailedError(RuntimeError):
    """A notebook raised an error; its executed copy shows the traceback."""


def notebooks(only: Sequence[str | int] | None = None) -> list[Path]:
    """The source notebooks ``NN_name.ipynb`` in numeric order; ``only`` keeps those whose number
    (``2``, ``"02"``) or name (``"02_shared_bn"``) is listed."""
    found = sorted(p for p in paths.NOTEBOOKS.glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))
    chosen = set(found if only is None else ())
    for text in (str(key).strip() for key in only or ()):
        matches = {p for p in found if (int(p.name[:2]) == int(text) if text.isdigit() else
                                        p.name in (text, f"{text}.ipynb"))}
        if not matches:
            raise ValueError(f"no notebook {text!r} in {paths.NOTEBOOKS}; choose from {[p.name for p in found]}")
        chosen |= matches
    return sorted(chosen)


def execution_order(selected: Sequence[Path]) -> list[Path]:
    """``selected`` in numeric order, except that a notebook of :data:`RUN_AFTER` runs right after
    the one it names when that one is selected too."""
    order = sorted(selected)
    for late, anchor in RUN_AFTER.items():
        names = [p.name for p in order]
        if late in names and anchor in names:
            moved = order.pop(names.index(late))
            order.insert([p.name for p in order].index(anchor) + 1, moved)
    return order


def check_kernel(name: str = KERNEL) -> None:
    """Raise KernelMissingError (saying to run ``make setup``) when Jupyter kernel ``name`` is missing."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise KernelMissingError(f"the Jupyter kernel {name!r} is not installed; run `make setup` "
                                 "(it registers the kernel in .venv)") from None


def default_workers(profile: str) -> int:
    """The worker processes of ``profile`` (:data:`DEFAULT_WORKERS`; else 1), at most this machine's CPU cores."""
    return max(1, min(DEFAULT_WORKERS.get(profile, 1), os.cpu_count() or 1))


# ---------------------------------------------------------------- the timing record

def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _new_record(profile: str, selected: list[Path], only, output_dir: Path, workers: int) -> dict:
    """The timing record. ``notebooks``: seconds per notebook; ``notebook_status``: ok, failed or
    interrupted; ``total_seconds``: their sum; ``wall_seconds``: the last invocation, start to end;
    ``finished_runs_at_start``: runs already in the cache (0: timed from an empty cache). With
    ``only``, the timings of the notebooks not run now are kept from the previous record."""
    old, now = {}, {p.name for p in selected}
    if only is not None and paths.reproduce_record(profile).exists():
        with contextlib.suppress(Exception):  # an unreadable or older record is simply replaced
            old = load_json(paths.reproduce_record(profile))
    seconds = {k: float(v) for k, v in old.get("notebooks", {}).items() if k not in now}
    status = {k: str(v) for k, v in old.get("notebook_status", {}).items() if k in seconds}
    threads, shown = os.environ.get("OMP_NUM_THREADS"), output_dir.resolve()
    return {"profile": profile, "started": _now(), "finished": None, "status": "running",
            "notebooks": seconds, "notebook_status": status, "total_seconds": None, "wall_seconds": None,
            "complete": False, "finished_runs_at_start": sum(1 for _ in paths.runs_dir().glob("*/done.json")),
            "command": f"python -m emqlib.harness.reproduce --profile {profile}"
                       + (f" --only {' '.join(map(str, only))}" if only is not None else ""),
            # relative inside the repository, where the record is committed
            "executed_notebooks": str(shown.relative_to(paths.ROOT) if shown.is_relative_to(paths.ROOT) else shown),
            "workers": workers, "commit": paths.git_commit()["commit"],
            "machine": (f"{os.cpu_count()} CPUs, {platform.platform(terse=True)}, Python {platform.python_version()}"
                        + (f", OMP_NUM_THREADS={threads}" if threads else ""))}


def _save_record(record: dict, all_notebooks: list[Path], **changes) -> None:
    record.update(changes)
    record["total_seconds"] = round(sum(record["notebooks"].values()), 1)
    record["complete"] = all(record["notebook_status"].get(p.name) == "ok" for p in all_notebooks)
    save_json(paths.reproduce_record(record["profile"]), record)


# ---------------------------------------------------------------- running

def execute(notebook: Path, output: Path, parameters: dict, progress_bar: bool = False) -> None:
    """Execute ``notebook`` into ``output`` with papermill, on the :data:`KERNEL` kernel."""
    papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name=KERNEL, cwd=str(
        notebook.parent), progress_bar=progress_bar, start_timeout=START_TIMEOUT, extra_arguments=KERNEL_ARGUMENTS)


def reproduce(profile: str = "cpu", only: Sequence[str | int] | None = None, output_dir: str | os.PathLike | None = None,
              progress_bar: bool = False, echo: Callable[..., None] = print, workers: int | None = None) -> dict:
    """Execute the notebooks (all, or ``only`` those) for ``profile``; returns the timing record.

    Each notebook trains its missing runs with ``workers`` processes (default
    :func:`default_workers`). Checks the input ($EMQ_COMPILE included), the kernel and every notebook's
    parameters before running anything; prints one line per notebook; raises NotebookFailedError naming
    the executed copy when a notebook fails.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {list(PROFILES)}")
    workers = default_workers(profile) if workers is None else workers
    if workers < 1:
        raise ValueError(f"--workers {workers}: give a number of worker processes >= 1")
    Runtime().compiles()  # a bad $EMQ_COMPILE fails here, not in the first run a notebook trains
    check_kernel(KERNEL)
    all_notebooks, selected = notebooks(), notebooks(only)
    if not selected:
        raise ValueError(f"no notebooks NN_name.ipynb found in {paths.NOTEBOOKS}")
    output_dir = Path(output_dir) if output_dir is not None else paths.executed_notebooks_dir()
    if output_dir.resolve() == paths.NOTEBOOKS.resolve():
        raise ValueError(f"--output-dir {output_dir} is the source notebook folder; source notebooks are never overwritten")
    parameters = {p: check_notebook(p, {"profile": profile, **OWN_RUNS.get(p.stem, {})}) for p in selected}
    output_dir.mkdir(parents=True, exist_ok=True)

    record = _new_record(profile, selected, only, output_dir, workers)
    _save_record(record, all_notebooks)
    seeds = seed_parameters(selected)
    save_provenance(record, seeds)
    start, width = time.perf_counter(), max(len(p.name) for p in selected)
    kernel_environment = {**KERNEL_ENVIRONMENT, **paths.folder_environment(), WORKERS_VARIABLE: str(workers)}
    try:
        with mock.patch.dict(os.environ, kernel_environment):
            for i, notebook in enumerate(execution_order(selected), 1):
                output = output_dir / notebook.name
                echo(f"[{i:>{len(str(len(selected)))}}/{len(selected)}] {notebook.name:<{width}} ", end="", flush=True)
                t0, status = time.perf_counter(), "failed"
                try:
                    execute(notebook, output, parameters[notebook], progress_bar)
                    status = "ok"
                except KeyboardInterrupt:
                    status = "interrupted"
                    raise
                except Exception as error:
                    cause = f"{getattr(error, 'ename', type(error).__name__)}: {getattr(error, 'evalue', error)}"
                    raise NotebookFailedError(f"{notebook.name} failed with {cause.strip().splitlines()[0]}; "
                                              f"the traceback is in {output}") from error
                finally:
                    seconds = time.perf_counter() - t0
                    echo(f"{seconds:7.1f} s" + ("" if status == "ok" else f"  {status.upper()}"), flush=True)
                    record["notebooks"][notebook.name] = round(seconds, 1)
                    record["notebook_status"][notebook.name] = status
                    _save_record(record, all_notebooks, **({} if status == "ok" else dict(
                        status=status, finished=_now(), wall_seconds=round(time.perf_counter() - start, 1))))
        _save_record(record, all_notebooks, status="ok", finished=_now(),
                     wall_seconds=round(time.perf_counter() - start, 1))
        if record["finished_runs_at_start"] == 0 and only is None:
            save_json(paths.reproduce_record(profile, cold=True), record)
        if profile == "cpu" and only is None and paths.results_dir().resolve() == (paths.ROOT / "results").resolve():
            shipped.ship_quickstart_run(profile)
    finally:
        save_provenance(record, seeds)
    report.update(profile)
    echo(f"done: {len(selected)} notebook(s) in {record['wall_seconds']:.0f} s; "
         f"timings in {paths.reproduce_record(profile)}", flush=True)
    return record


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m emqlib.harness.reproduce", description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="cpu", choices=list(PROFILES),
                   help="smoke: seconds (tests); cpu: Fashion-MNIST on 2 CPU cores; paper: CIFAR-10 on a GPU")
    p.add_argument("--only", nargs="+", metavar="NN", help="run only these notebooks (numbers such as 02, or names)")
    p.add_argument("--output-dir", type=Path, default=None,
                   help="where the executed notebooks go (default: results/notebooks/)")
    p.add_argument("--cell-progress", action="store_true", help="show papermill's per-cell progress bar")
    p.add_argument("--workers", type=int, default=None,
                   help=f"processes that train runs at once (default: {DEFAULT_WORKERS} per profile, else 1)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        reproduce(args.profile, args.only, args.output_dir, progress_bar=args.cell_progress, workers=args.workers)
    except (ValueError, OSError, KernelMissingError, NotebookFailedError) as error:
        print(errors.error_line(error, FOLDERS), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # the interrupted notebook's cell task fails unobserved; asyncio would log its traceback at exit
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        print("error: interrupted; run the same command again: finished runs are reused from the run cache",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
