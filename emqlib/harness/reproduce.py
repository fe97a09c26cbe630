"""``make reproduce``: execute every notebook for one profile, in numeric order except the quickstart
(:data:`RUN_AFTER`).

    python -m emqlib.harness.reproduce --profile {smoke,cpu,paper} [--only NN ...] [--output-dir DIR]

Each source notebook ``notebooks/NN_name.ipynb`` is executed with papermill (``profile``
injected after its ``parameters`` cell) into ``results/notebooks/NN_name.ipynb``; the source
notebooks are never written. The trained runs live in the run cache, so a run interrupted and
started again redoes no finished training. The wall-clock time of each notebook and the total
are recorded in ``results/reproduce_<profile>.json`` (README quotes it), and what produced the
results in ``results/provenance.json`` (commit, profile, seeds, times, CPU and instruction set,
math library and threads, torch version): training on CPU is bit-identical only on the same
machine and library build, so that file says which one it was. At the end
``emqlib.harness.report.update(profile)`` regenerates the report, when that module exists.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import datetime as dt
import importlib
import importlib.util
import numbers
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from . import paths
from .config import PROFILES
from .storage import load_json, save_json

KERNEL = "emqlib"  # registered in .venv by `make setup`
NOTEBOOK_NAME = re.compile(r"^(\d{2})_[\w-]+\.ipynb$")  # NN_name.ipynb: run in numeric order
# The quickstart trains one run, the EMQ run the cost study shares. Executed first it trains that run
# alone: one worker process, one of the two cores idle for two minutes of a cold `make reproduce`.
# Executed after the cost study, whose workers train the run beside others, it finds it in the cache.
RUN_AFTER = {"00_quickstart.ipynb": "04_training_cost.ipynb"}
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]  # no kernel log lines (e.g. the TCP warning) in the terminal
KERNEL_ENVIRONMENT = {"EMQ_PROGRESS": "0"}  # per-epoch progress bars are noise in executed notebooks
# processes that train a notebook's runs at once (emqlib.harness.pool): on 2 CPU cores, two one-thread workers
# train 1.3x the epochs per second of one two-thread process; one GPU trains one run at a time
DEFAULT_WORKERS = {"cpu": 2}
START_TIMEOUT = 180  # seconds for a kernel to start (slow on a loaded 2-core machine)
_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "dict": dict, "tuple": tuple}
_CHOICES = re.compile(r"^\s*[\w.-]+(\s*\|\s*[\w.-]+)+\s*$")  # an inline comment such as "smoke | cpu | paper"


class KernelMissingError(RuntimeError):
    """The Jupyter kernel the notebooks run on is not installed."""


class NotebookFailedError(RuntimeError):
    """A notebook raised an error; its executed copy shows the traceback."""


# ---------------------------------------------------------------- which notebooks

def notebooks(only: Sequence[str | int] | None = None, folder: Path | None = None) -> list[Path]:
    """The source notebooks ``NN_name.ipynb`` in numeric order; ``only`` keeps those whose number
    (``2``, ``"02"``) or name (``"02_shared_bn"``) is listed."""
    folder = Path(folder) if folder is not None else paths.NOTEBOOKS
    found = sorted(p for p in folder.glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))
    if only is None:
        return found
    chosen = []
    for key in only:
        text = str(key).strip()
        if text.isdigit():
            matches = [p for p in found if int(NOTEBOOK_NAME.match(p.name).group(1)) == int(text)]
        else:
            matches = [p for p in found if p.name in (text, f"{text}.ipynb")]
        if not matches:
            raise ValueError(f"no notebook {text!r} in {folder}; choose from {[p.name for p in found]}")
        chosen.extend(m for m in matches if m not in chosen)
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


# ---------------------------------------------------------------- checks before running anything

def _expected_type(spec: dict) -> type | None:
    """The type a parameter must have: its annotation, else the type of its default (None: any)."""
    annotated = spec.get("inferred_type_name")
    if annotated and annotated != "None":
        return _TYPES.get(annotated)  # an annotation we cannot check (Optional[...], ...) accepts anything
    try:
        default = ast.literal_eval(spec["default"])
    except (ValueError, SyntaxError, TypeError):
        return None  # a default that is an expression: nothing to check against
    return None if default is None else type(default)


def _conform(value, expected: type):
    """``value`` as ``expected`` (int for float, any integral for int), or raise TypeError."""
    if expected is bool:
        if isinstance(value, bool):
            return value
    elif expected is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
    elif expected is float:
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
    elif isinstance(value, expected):
        return value
    raise TypeError


def check_parameters(notebook_path: str | os.PathLike, parameters: dict) -> dict:
    """Check ``parameters`` against the notebook's ``parameters`` cell before running it.

    Every name must be declared there, and every value must have the type of the declared default
    (an int is accepted for a float; a bool is never an int); where the inline comment lists the
    choices (``profile = "cpu"  # smoke | cpu | paper``) the value must be one of them. Raises a
    one-line ValueError naming the notebook, the parameter and the expected type; returns the
    parameters with numbers converted to the declared type.
    """
    import papermill

    notebook_path = Path(notebook_path)
    return check_declared(papermill.inspect_notebook(str(notebook_path)), parameters, notebook_path.name)


def check_declared(declared: dict, parameters: dict, notebook_name: str) -> dict:
    """:func:`check_parameters` against ``declared``, papermill's description of a parameters cell
    (name -> {"inferred_type_name", "default", "help"})."""
    checked = {}
    for name, value in parameters.items():
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none: it has no cell tagged 'parameters'"
            raise ValueError(f"{notebook_name}: unknown parameter {name!r} (its parameters: {known})")
        spec = declared[name]
        expected = _expected_type(spec)
        if expected is not None:
            try:
                value = _conform(value, expected)
            except TypeError:
                raise ValueError(f"{notebook_name}: parameter {name!r} must be of type {expected.__name__} "
                                 f"(default {spec['default']}), got {value!r} of type {type(value).__name__}") from None
        help_text = spec.get("help") or ""
        if isinstance(value, str) and _CHOICES.match(help_text):
            choices = [c.strip() for c in help_text.split("|")]
            if value not in choices:
                raise ValueError(f"{notebook_name}: parameter {name!r} must be one of {choices}, got {value!r}")
        checked[name] = value
    return checked


def check_kernel(name: str = KERNEL) -> None:
    """Raise KernelMissingError (saying to run ``make setup``) when Jupyter kernel ``name`` is missing."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise KernelMissingError(f"the Jupyter kernel {name!r} is not installed; run `make setup` "
                                 "(it registers the kernel in .venv)") from None


@contextlib.contextmanager
def _environment(values: dict) -> Iterator[None]:
    """Set environment variables for the kernels started inside the block; restore them after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _provenance_at_exit(record: dict, seeds: dict) -> Iterator[None]:
    """Rewrite provenance.json when the block ends, finished or not (its status is the record's)."""
    try:
        yield
    finally:
        save_provenance(record, seeds)


# ---------------------------------------------------------------- running

def execute(notebook: Path, output: Path, parameters: dict, progress_bar: bool = False) -> float:
    """Execute ``notebook`` into ``output`` with papermill; returns the wall-clock seconds."""
    import papermill

    start = time.perf_counter()
    papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name=KERNEL,
                               progress_bar=progress_bar, cwd=str(notebook.parent), start_timeout=START_TIMEOUT,
                               extra_arguments=KERNEL_ARGUMENTS)
    return time.perf_counter() - start


def _shown(path: Path) -> str:
    """``path`` relative to the repository when inside it (the record is committed), else absolute."""
    try:
        return str(path.resolve().relative_to(paths.ROOT))
    except ValueError:
        return str(path.resolve())


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _finished_runs() -> int:
    """How many finished runs the run cache holds (0: this reproduction starts from an empty cache)."""
    return sum(1 for _ in paths.runs_dir().glob("*/done.json")) if paths.runs_dir().exists() else 0


def _machine() -> str:
    threads = os.environ.get("OMP_NUM_THREADS")
    return (f"{os.cpu_count()} CPUs, {platform.platform(terse=True)}, Python {platform.python_version()}"
            + (f", OMP_NUM_THREADS={threads}" if threads else ""))


# ---------------------------------------------------------------- provenance

ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_tile",
             "amx_bf16", "asimd", "sve")  # the instruction sets that change which math kernels run


def provenance_path() -> Path:
    """Where the provenance of the results in ``results/`` is recorded."""
    return paths.results_dir() / "provenance.json"


def _cpu() -> dict:
    """CPU model and the instruction sets of :data:`ISA_FLAGS` it has (from /proc/cpuinfo where there is one)."""
    model, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    return {"model": model, "cpus": os.cpu_count(), "instruction_sets": [f for f in ISA_FLAGS if f in flags]}


def _math_library() -> dict:
    """torch's version, the CPU kernel path it picked, its BLAS/LAPACK and threading (torch.__config__)."""
    import torch

    built = torch.__config__.show()
    components = [line.strip()[2:] for line in built.splitlines()
                  if line.strip().startswith("- ") and not line.strip().startswith("- Build settings")]
    settings = dict(re.findall(r"(BLAS_INFO|LAPACK_INFO|USE_MKL|USE_MKLDNN|USE_OPENMP)=([^,\s]+)", built))
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: None)()
    return {"torch": torch.__version__, "cpu_capability": capability, "components": components,
            "build_settings": settings, "threads": torch.get_num_threads(),
            "thread_environment": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")},
            "parallel_info": [line.strip() for line in torch.__config__.parallel_info().splitlines() if line.strip()]}


def seed_parameters(selected: Sequence[Path]) -> dict:
    """Each notebook's seed parameters as declared in its ``parameters`` cell (``n_seeds``: seeds
    0 .. n_seeds - 1; ``seed``: the one seed of a single-run study), e.g. {"04_training_cost.ipynb": {"n_seeds": 2}}."""
    import papermill

    found = {}
    for notebook in selected:
        declared = papermill.inspect_notebook(str(notebook))
        seeds = {name: ast.literal_eval(spec["default"]) for name, spec in declared.items() if "seed" in name}
        if seeds:
            found[notebook.name] = seeds
    return found


def provenance(record: dict, seeds: dict) -> dict:
    """What produced the results: commit, profile, seeds, start and end time, CPU, math library, threads."""
    return {"profile": record["profile"], **paths.git_commit(), "seeds": seeds, "started": record["started"],
            "finished": record["finished"], "status": record["status"], "command": record["command"],
            "python": platform.python_version(), "platform": platform.platform(terse=True), "cpu": _cpu(),
            "math_library": _math_library(), **_workers(record.get("workers"))}


def _workers(count: int | None) -> dict:
    """How many processes trained the runs, with how many torch threads each (absent before workers existed)."""
    if count is None:
        return {}
    from .pool import threads_per_worker

    return {"workers": count, "threads_per_worker": threads_per_worker(count) if count > 1 else None}


def save_provenance(record: dict, seeds: dict) -> Path:
    """Write :func:`provenance` to ``results/provenance.json`` atomically."""
    return save_json(provenance_path(), provenance(record, seeds))


def _new_record(profile: str, selected: list[Path], only) -> dict:
    """The timing record. ``notebooks``: seconds per notebook; ``notebook_status``: ok, failed or
    interrupted; ``total_seconds``: their sum; ``wall_seconds``: the last invocation, start to end;
    ``finished_runs_at_start``: runs already in the cache (0: timed from an empty cache). With
    ``only``, the timings of the notebooks not run now are kept from the previous record."""
    seconds, status = {}, {}
    path = paths.reproduce_record(profile)
    if only is not None and path.exists():
        with contextlib.suppress(Exception):  # an unreadable or older record is simply replaced
            old = load_json(path)
            seconds = {k: float(v) for k, v in old.get("notebooks", {}).items()}
            status = {k: str(v) for k, v in old.get("notebook_status", {}).items() if k in seconds}
    for p in selected:
        seconds.pop(p.name, None)
        status.pop(p.name, None)
    return {"profile": profile, "started": _now(), "finished": None, "status": "running",
            "notebooks": seconds, "notebook_status": status, "total_seconds": None, "wall_seconds": None,
            "complete": False, "finished_runs_at_start": _finished_runs(),
            "command": f"python -m emqlib.harness.reproduce --profile {profile}" + (f" --only {' '.join(map(str, only))}"
                                                                            if only is not None else ""),
            "executed_notebooks": None, "machine": _machine(), "commit": paths.git_commit()["commit"]}


def _save_record(record: dict, all_notebooks: list[Path]) -> None:
    record["total_seconds"] = round(sum(record["notebooks"].values()), 1)
    record["complete"] = all(record["notebook_status"].get(p.name) == "ok" for p in all_notebooks)
    save_json(paths.reproduce_record(record["profile"]), record)


def update_report(profile: str) -> bool:
    """Call ``emqlib.harness.report.update(profile)`` if that module exists; returns whether it did."""
    if importlib.util.find_spec("emqlib.harness.report") is None:
        return False
    importlib.import_module("emqlib.harness.report").update(profile)
    return True


def default_workers(profile: str) -> int:
    """The worker processes a profile trains its runs with (:data:`DEFAULT_WORKERS`; 1 elsewhere),
    never more than this machine's CPU cores."""
    return max(1, min(DEFAULT_WORKERS.get(profile, 1), os.cpu_count() or 1))


def reproduce(profile: str = "cpu", only: Sequence[str | int] | None = None, output_dir: str | os.PathLike | None = None,
              progress_bar: bool = False, echo: Callable[..., None] = print, workers: int | None = None) -> dict:
    """Execute the notebooks (all, or ``only`` those) for ``profile``; returns the timing record.

    Each notebook trains its missing runs with ``workers`` processes (default
    :func:`default_workers`). Checks the kernel and every notebook's parameters before running
    anything; prints one line per notebook; raises NotebookFailedError naming the executed copy
    when a notebook fails.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {list(PROFILES)}")
    workers = default_workers(profile) if workers is None else workers
    if workers < 1:
        raise ValueError(f"--workers {workers}: give a number of worker processes >= 1")
    check_kernel(KERNEL)
    all_notebooks = notebooks()
    selected = notebooks(only)
    if not selected:
        raise ValueError(f"no notebooks NN_name.ipynb found in {paths.NOTEBOOKS}")
    output_dir = Path(output_dir) if output_dir is not None else paths.executed_notebooks_dir()
    if output_dir.resolve() == paths.NOTEBOOKS.resolve():
        raise ValueError(f"--output-dir {output_dir} is the source notebook folder; source notebooks are never overwritten")
    parameters = {p: check_parameters(p, {"profile": profile}) for p in selected}
    output_dir.mkdir(parents=True, exist_ok=True)

    record = _new_record(profile, selected, only)
    record.update(executed_notebooks=_shown(output_dir), workers=workers)
    _save_record(record, all_notebooks)
    seeds = seed_parameters(selected)
    save_provenance(record, seeds)
    start = time.perf_counter()
    width = max(len(p.name) for p in selected)
    from .pool import WORKERS_VARIABLE

    kernel_environment = {**KERNEL_ENVIRONMENT, **paths.folder_environment(), WORKERS_VARIABLE: str(workers)}
    with _environment(kernel_environment), _provenance_at_exit(record, seeds):
        for i, notebook in enumerate(execution_order(selected), 1):
            output = output_dir / notebook.name
            echo(f"[{i:>{len(str(len(selected)))}}/{len(selected)}] {notebook.name:<{width}} ", end="", flush=True)
            t0 = time.perf_counter()
            status = "failed"
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
                if status != "ok":
                    record.update(status=status, finished=_now(), wall_seconds=round(time.perf_counter() - start, 1))
                _save_record(record, all_notebooks)
        record.update(status="ok", finished=_now(), wall_seconds=round(time.perf_counter() - start, 1))
        _save_record(record, all_notebooks)
        if record["finished_runs_at_start"] == 0 and only is None:
            save_json(paths.reproduce_record(profile, cold=True), record)
    if update_report(profile):
        echo("report updated (emqlib.harness.report)", flush=True)
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
        from .cli import error_line

        print(error_line(error), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again; finished runs are reused from the run cache",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
