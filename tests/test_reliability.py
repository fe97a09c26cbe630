"""Reliability at the level a user meets it: an interrupted `make reproduce` continues from the run
cache, and bad input on the command line is one clear error line, exit status 2, nothing written.

(Determinism, kill-and-resume of a training run, corrupt checkpoints, non-finite losses, incompatible
run folders and concurrent use are tested in test_train.py; the other bad inputs in test_config.py,
test_cli.py and test_notebooks.py.)
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _env(base: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "EMQ_DOWNLOAD"}
    env.update(EMQ_RUNS_DIR=str(base / "runs"), EMQ_RESULTS_DIR=str(base / "results"),
               EMQ_FIGURES_DIR=str(base / "figures"), OMP_NUM_THREADS="1", EMQ_PROGRESS="0", **extra)
    return env


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _finished_runs(runs: Path) -> dict[str, float]:
    """Finished runs in the cache and when each was marked done."""
    return {p.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/done.json")}


def test_interrupted_reproduce_continues_from_the_run_cache(tmp_path) -> None:
    env = _env(tmp_path)
    command = [sys.executable, "-m", "emqlib.harness.reproduce", "--profile", "smoke", "--only", "02"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(_finished_runs(tmp_path / "runs")) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    for pid in [process.pid, *_descendants(process.pid)]:  # the papermill kernel runs in a session of its own
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()
    before = _finished_runs(tmp_path / "runs")
    assert len(before) >= 2, "the notebook should have finished some runs before it was killed"

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    after = _finished_runs(tmp_path / "runs")
    # every run finished before the kill is reused as it was, not trained again
    assert {name: after[name] for name in before} == before
    assert len(after) > len(before)
    record = json.loads((tmp_path / "results" / "reproduce_smoke.json").read_text())
    assert record["finished_runs_at_start"] == len(before)


@pytest.mark.parametrize("args, message", [
    (["--set", "model.name=nosuch"], "model must be one of"),
    (["--set", "data.dataset=nosuch"], "dataset must be one of"),
    (["--set", "dataset=nosuch"], "unknown configuration field 'dataset'"),
    (["--coreset", "nosuch", "--fraction", "0.5"], "unknown selection rule 'nosuch'"),
    (["--bits", "0"], "1..8 or 32"),
    (["--bits=-1"], "1..8 or 32"),
    (["--bits", ""], "empty"),
    (["--coreset", "random", "--fraction", "-0.1"], "fraction must be in (0, 1]"),
    (["--set", "data.dataset=cifar10"], "EMQ_DOWNLOAD=1 python -m emqlib download cifar10"),
])
def test_command_line_bad_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, cli, args, message) -> None:
    # in this process: the exit status of the real entry point is tested in test_config.py
    for name, value in _env(tmp_path, EMQ_DATA_DIR=str(tmp_path / "no-data")).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("EMQ_DOWNLOAD", raising=False)
    code, out, err = cli(["train", "--profile", "smoke", *args])
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*"))


def test_the_quickstart_runs_after_the_cost_study_that_trains_its_run(monkeypatch) -> None:
    from emqlib.harness.config import profile_config
    from emqlib.harness.studies import cost
    from emqlib.harness.reproduce import execution_order, notebooks
    from emqlib.harness.runs import run_path

    names = [p.name for p in execution_order(notebooks())]
    assert names.index("00_quickstart.ipynb") == names.index("04_training_cost.ipynb") + 1
    assert [p.name for p in execution_order(notebooks(["00", "02"]))] == ["00_quickstart.ipynb", "02_shared_bn.ipynb"]
    assert [p.name for p in execution_order(notebooks(["04", "00", "09"]))] == [
        "04_training_cost.ipynb", "00_quickstart.ipynb", "09_claims.ipynb"]

    # the premise: the quickstart's run (seed 0 EMQ) is among the first runs notebook 04 trains
    planned = []

    def record(plan):
        planned.extend(config for _, config in plan)
        raise StopIteration

    monkeypatch.setattr(cost, "summarize_plan", record)
    with pytest.raises(StopIteration):
        cost.regime_check("cpu", seeds=(0,))
    assert run_path(profile_config("cpu", "emq", seed=0)) in {run_path(c) for c in planned}
