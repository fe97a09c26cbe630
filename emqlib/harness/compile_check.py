"""Does compiling pay over whole notebooks? ``python -m emqlib.harness.compile_check --only 02``.

Executes notebooks as ``make reproduce`` does (its workers, each a process that keeps its compiled graphs
for all the runs it trains), each from an empty run cache, three ways: eager; compiled with an empty
inductor cache (what a fresh machine pays); compiled again with the inductor cache the second way filled
(what a machine pays that compiled these graphs before). Only the wall-clock is kept: the results of the
compiled executions differ from the eager ones in their last bits and go to a scratch folder.
Writes ``results/compile_check.csv`` (:data:`COLUMNS`), the measurement behind the compile default of
:meth:`emqlib.harness.build.Runtime.compiles`.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from . import paths
from .build import COMPILE_VARIABLE
from .config import PROFILES
from .storage import load_json, save_csv

# compiled: $EMQ_COMPILE; inductor_cache: empty, or warm from the execution before; workers: make reproduce's
COLUMNS = ["metric", "value", "unit", "what", "notebook", "compiled", "inductor_cache", "profile", "workers", "commit"]
# (compiled, inductor cache), executed in this order with one inductor cache: the second finds it empty, the third warm
MODES = [(False, None), (True, "empty"), (True, "warm")]


def execute_notebook(profile: str, notebook: str, compile: bool, inductor_cache: Path, scratch: Path) -> dict:
    """Execute ``notebook`` (its number or name) alone as ``make reproduce`` does, from an empty run cache and
    with ``$EMQ_COMPILE`` set by ``compile``; its run cache, results and figures go to ``scratch``. Returns the
    seconds, the notebook's name and the worker processes that trained its runs."""
    # the notebook reads what earlier notebooks chose (results/*.csv): it starts from a copy of the repository's
    results = scratch / "results"
    shutil.copytree(paths.ROOT / "results", results, ignore=shutil.ignore_patterns("notebooks"), dirs_exist_ok=True)
    env = {**os.environ, COMPILE_VARIABLE: str(int(compile)), "TORCHINDUCTOR_CACHE_DIR": str(inductor_cache),
           "EMQ_RUNS_DIR": str(scratch / "runs"), "EMQ_RESULTS_DIR": str(results),
           "EMQ_FIGURES_DIR": str(scratch / "figures")}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "emqlib.harness.reproduce", "--profile", profile, "--only", notebook,
                           "--output-dir", str(scratch / "notebooks")], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"executing {notebook} ({COMPILE_VARIABLE}={int(compile)}) failed:\n"
                           f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    executed = next((scratch / "notebooks").glob("*.ipynb")).stem
    return {"seconds": time.perf_counter() - started, "notebook": executed,
            "workers": load_json(results / f"reproduce_{profile}.json")["workers"]}


def compile_check(profile: str, notebooks: Sequence[str], scratch: Path, out_csv: Path,
                  execute: Callable[[str, str, bool, Path, Path], dict] = execute_notebook) -> pd.DataFrame:
    """For each notebook (a number or name, as ``--only`` takes them), its seconds eager and compiled (empty and
    warm inductor cache), and compiled over eager (< 1: compiling pays); written to ``out_csv`` after each
    notebook (an hour's measurement is not lost to a later notebook's failure)."""
    commit = (paths.git_commit()["commit"] or "unknown")[:7]  # no git: a copy of the code
    rows = []
    for key in notebooks:
        done = [execute(profile, key, compiled, scratch / key / "inductor", scratch / key / f"execution-{i}")
                for i, (compiled, _) in enumerate(MODES)]
        facts = [dict(notebook=d["notebook"], compiled=compiled, inductor_cache=cache, profile=profile,
                      workers=d["workers"], commit=commit) for d, (compiled, cache) in zip(done, MODES)]
        rows += [dict(metric="notebook_seconds", value=d["seconds"], unit="s", what="from an empty run cache", **f)
                 for d, f in zip(done, facts)]
        rows += [dict(metric="compiled_over_eager", value=d["seconds"] / done[0]["seconds"], unit="x",
                      what="over eager (< 1: compiling pays)", **f) for d, f in zip(done[1:], facts[1:])]
        save_csv(pd.DataFrame(rows, columns=COLUMNS), out_csv)
    return pd.DataFrame(rows, columns=COLUMNS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emqlib.harness.compile_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="cpu")
    parser.add_argument("--only", nargs="+", required=True, metavar="NN", help="notebooks to execute (02, or names)")
    parser.add_argument("--out-csv", type=Path, help="default: results/compile_check.csv ($EMQ_RESULTS_DIR)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="emq-compile-check-") as scratch:
        table = compile_check(args.profile, args.only, Path(scratch), args.out_csv or paths.results_dir() / "compile_check.csv")
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
