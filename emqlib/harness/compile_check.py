"""Does compiling pay over whole notebooks? ``python -m emqlib.harness.compile_check --only 02``.

Executes notebooks as ``make reproduce`` does (its workers, each a process that keeps its compiled graphs
for all the runs it trains), each from an empty run cache, three ways: eager; compiled with an empty
inductor cache (what a fresh machine pays); compiled again with the inductor cache the second way filled
(what a machine pays that compiled these graphs before). Only the wall-clock is kept: the results of the
compiled executions differ from the eager ones in their last bits and go to a scratch folder.
Writes ``results/compile_check.csv`` (metric, value, unit, setting), the measurement behind the compile
default of :meth:`emqlib.harness.build.Runtime.compiles`.
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
from .reproduce import default_workers, notebooks as source_notebooks
from .storage import save_csv

COLUMNS = ["metric", "value", "unit", "setting"]
# (what, $EMQ_COMPILE), executed in this order with one inductor cache: the second finds it empty, the third filled
MODES = [("eager", "0"), ("compiled, empty inductor cache", "1"), ("compiled, inductor cache of the execution before", "1")]


def execute_notebook(profile: str, notebook: str, compile: str, inductor_cache: Path, scratch: Path) -> float:
    """Seconds ``make reproduce`` takes to execute ``notebook`` alone from an empty run cache, with
    ``$EMQ_COMPILE`` = ``compile``; its run cache, results and figures go to ``scratch``."""
    # the notebook reads what earlier notebooks chose (results/*.csv): it starts from a copy of the repository's
    results = scratch / "results"
    shutil.copytree(paths.ROOT / "results", results, ignore=shutil.ignore_patterns("notebooks"), dirs_exist_ok=True)
    env = {**os.environ, COMPILE_VARIABLE: compile, "TORCHINDUCTOR_CACHE_DIR": str(inductor_cache),
           "EMQ_RUNS_DIR": str(scratch / "runs"), "EMQ_RESULTS_DIR": str(results),
           "EMQ_FIGURES_DIR": str(scratch / "figures")}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "emqlib.harness.reproduce", "--profile", profile, "--only", notebook,
                           "--output-dir", str(scratch / "notebooks")], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"executing {notebook} (EMQ_COMPILE={compile}) failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.perf_counter() - started


def compile_check(profile: str, notebooks: Sequence[str], scratch: Path, out_csv: Path,
                  execute: Callable[[str, str, str, Path, Path], float] = execute_notebook) -> pd.DataFrame:
    """For each notebook, its seconds eager and compiled (empty and filled inductor cache), and compiled
    over eager (< 1: compiling pays); written to ``out_csv`` after each notebook (an hour's measurement is
    not lost to a later notebook's failure)."""
    commit = (paths.git_commit()["commit"] or "unknown")[:7]  # no git: a copy of the code
    rows = []
    for notebook in notebooks:
        inductor_cache = scratch / notebook / "inductor"
        seconds = {}
        for i, (mode, compile) in enumerate(MODES):
            seconds[mode] = execute(profile, notebook, compile, inductor_cache, scratch / notebook / f"execution-{i}")
        where = (f"{notebook}, profile {profile}, from an empty run cache, {default_workers(profile)} worker "
                 f"process(es), commit {commit}")
        rows += [dict(metric="notebook_seconds", value=seconds[mode], unit="s", setting=f"{mode}; {where}")
                 for mode in seconds]
        rows += [dict(metric="compiled_over_eager", value=seconds[mode] / seconds["eager"], unit="x",
                      setting=f"{mode} over eager (< 1: compiling pays); {where}") for mode in list(seconds)[1:]]
        save_csv(pd.DataFrame(rows, columns=COLUMNS), out_csv)
    return pd.DataFrame(rows, columns=COLUMNS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emqlib.harness.compile_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=list(PROFILES), default="cpu")
    parser.add_argument("--only", nargs="+", required=True, metavar="NN", help="notebooks to execute (02, or names)")
    parser.add_argument("--out-csv", type=Path, help="default: results/compile_check.csv ($EMQ_RESULTS_DIR)")
    args = parser.parse_args(argv)
    notebooks = [p.stem for p in source_notebooks(args.only)]
    with tempfile.TemporaryDirectory(prefix="emq-compile-check-") as scratch:
        table = compile_check(args.profile, notebooks, Path(scratch), args.out_csv or paths.results_dir() / "compile_check.csv")
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
