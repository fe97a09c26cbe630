"""Reliability at the level a user meets it: an interrupted `make reproduce` continues from the run
cache, and bad input on the command line is one clear error line, exit status 2, nothing written;
and (issue 30) each path a hostile user found, followed as the user did: special files as --out,
relative folder variables, read-only and full disks, worker processes (their number, a script
without the main guard, a killed parent), symlinked run folders, swapped weights, skipped bit-widths,
non-UTF-8 paths, and evaluations that must not depend on the process that computes them.

(Determinism, kill-and-resume of a training run, corrupt checkpoints, non-finite losses, incompatible
run folders and concurrent use are tested in test_train.py; the other bad inputs in test_config.py,
test_cli.py and test_notebooks.py.)
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from emqlib.harness import build, export, paths, pool, reproduce
from emqlib.harness.build import Runtime
from emqlib.harness.cli import main
from emqlib.harness.config import profile_config
from emqlib.harness.runs import get_run, is_done, load_run, lock_path
from emqlib.harness.storage import file_lock, load_json, save_csv
from emqlib.harness.trainer import Trainer


def _env(base: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "EMQ_DOWNLOAD"}
    env.update(EMQ_RUNS_DIR=str(base / "runs"), EMQ_RESULTS_DIR=str(base / "results"),
               EMQ_FIGURES_DIR=str(base / "figures"), OMP_NUM_THREADS="1", EMQ_PROGRESS="0", **extra)
    return env


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = entry.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


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

    # issue 30, 9: the killed-then-resumed reproduce writes the tables an uninterrupted one does, value for value
    # (seconds are measured, so they differ between any two runs)
    clean = tmp_path / "uninterrupted"
    done = subprocess.run(command, env=_env(clean), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    tables = sorted(p.name for p in (clean / "results").glob("*.csv"))
    assert tables and tables == sorted(p.name for p in (tmp_path / "results").glob("*.csv"))
    for name in tables:
        resumed, uninterrupted = pd.read_csv(tmp_path / "results" / name), pd.read_csv(clean / "results" / name)
        timing = [c for c in resumed.columns if "seconds" in c]
        pd.testing.assert_frame_equal(resumed.drop(columns=timing), uninterrupted.drop(columns=timing),
                                      check_exact=True, obj=name)


@pytest.mark.slow
def test_ctrl_c_on_reproduce_with_workers_is_one_line_and_leaves_no_process(tmp_path) -> None:
    command = [sys.executable, "-m", "emqlib.harness.reproduce", "--profile", "smoke", "--only", "02", "--workers", "2"]
    # its own process group with Ctrl-C's default action, as a terminal's foreground job: a suite started in the
    # background by a shell without job control (`make test &`) starts with SIGINT ignored, which exec passes on
    process = subprocess.Popen(command, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 180
    while not any((tmp_path / "runs").glob("*/config.json")) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    time.sleep(2)  # the workers are training
    below = _descendants(process.pid)
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "INTERRUPTED" in out, (out, err)
    assert err.splitlines() == ["error: interrupted; run the same command again: finished runs are reused from the "
                                "run cache"]
    time.sleep(2)
    assert len(below) >= 3 and not [pid for pid in below if _alive(pid)]  # the kernel and both workers are gone


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


def test_the_quickstart_runs_after_the_pruning_study_that_trains_its_run(monkeypatch) -> None:
    from emqlib.harness.studies import pruning
    from emqlib.harness.reproduce import execution_order, notebooks
    from emqlib.harness.runs import run_path

    names = [p.name for p in execution_order(notebooks())]
    assert names.index("00_quickstart.ipynb") == names.index("04_pruning.ipynb") + 1
    assert [p.name for p in execution_order(notebooks(["00", "02"]))] == ["00_quickstart.ipynb", "02_shared_bn.ipynb"]
    assert [p.name for p in execution_order(notebooks(["04", "00", "09"]))] == [
        "04_pruning.ipynb", "00_quickstart.ipynb", "09_claims.ipynb"]

    # the premise: the quickstart's run (seed 0 EMQ) is among the first runs notebook 04 trains (its convergence check)
    planned = []

    def record(configs, *args):  # the first runs the check asks for, before any is trained
        planned.extend(configs)
        raise StopIteration

    monkeypatch.setattr(pruning, "run_all", record)
    with pytest.raises(StopIteration):
        pruning.regime_check("cpu", seeds=(0,))
    assert run_path(profile_config("cpu", "emq", seed=0)) in {run_path(c) for c in planned}


# ---------------------------------------------------------------- round three (issue 30): what a hostile user found

def _smoke(method: str = "emq", **changes):
    return profile_config("smoke", method, model={"bits": (2, 32)}, **changes)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> dict[str, Path]:
    """Finished smoke runs (seconds each), trained once: EMQ seeds 0 and 1, and a Dedicated run at 2 and 32 bits."""
    root = tmp_path_factory.mktemp("finished")
    configs = {"emq": _smoke(), "emq seed 1": _smoke(seed=1), "dedicated": _smoke(method="dedicated")}
    return {name: get_run(config, Runtime(progress=False), root=root).path for name, config in configs.items()}


@pytest.fixture
def base(tmp_path, monkeypatch) -> Path:
    for name, value in _env(tmp_path).items():
        monkeypatch.setenv(name, value)
    return tmp_path


@pytest.fixture
def run(finished, base) -> Path:
    """A private copy of the finished EMQ run in this test's run cache."""
    return Path(shutil.copytree(finished["emq"], base / "runs" / finished["emq"].name))


# workers start only where there are cores for them (emqlib.harness.pool caps them)
needs_two_cores = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="two worker processes need two CPU cores")


def _one_error_line(code: int, err: str, *messages: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for message in messages:
        assert message in lines[0], lines[0]
    return lines[0]


# 1. an existing --out that is not a regular file is refused, with or without --force

@pytest.mark.parametrize("force", [[], ["--force"]])
def test_export_never_replaces_a_fifo(run, base, cli, force) -> None:
    fifo = base / "pipe"
    os.mkfifo(fifo)
    code, out, err = cli(["export", str(run), "--bits", "4", "--out", str(fifo), *force])
    _one_error_line(code, err, str(fifo), "not a regular file")
    assert out == "" and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_train_out_a_fifo_is_refused(base, cli) -> None:
    fifo = base / "pipe"
    os.mkfifo(fifo)
    code, _, err = cli(["train", "--profile", "smoke", "--out", str(fifo)])
    _one_error_line(code, err, str(fifo), "not a run folder")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.parametrize("where", ["the file", "its folder"])
def test_atomic_writes_never_replace_a_fifo(base, where) -> None:
    """The writer of every result, figure, run file and export (emqlib.harness.storage)."""
    fifo = base / "pipe"
    os.mkfifo(fifo)
    target = fifo if where == "the file" else fifo / "table.csv"
    with pytest.raises((ValueError, OSError), match="pipe"):
        save_csv(pd.DataFrame({"a": [1]}), target)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and [p.name for p in base.iterdir()] == ["pipe"]


# 2. relative EMQ_*_DIR: one place for everything, whatever the working directory of the process that writes

def test_relative_folder_variables_are_resolved_against_the_working_directory(base, monkeypatch) -> None:
    monkeypatch.chdir(base)
    for variable in ("EMQ_RUNS_DIR", "EMQ_RESULTS_DIR", "EMQ_FIGURES_DIR", "EMQ_DATA_DIR"):
        monkeypatch.setenv(variable, "rel_" + variable.lower())
    assert paths.runs_dir() == base / "rel_emq_runs_dir"
    assert paths.results_dir() == base / "rel_emq_results_dir"
    assert paths.figures_dir() == base / "rel_emq_figures_dir"
    assert paths.data_dir() == base / "rel_emq_data_dir"


def test_reproduce_gives_its_notebook_kernels_absolute_folders(base, monkeypatch) -> None:
    """The kernels run in notebooks/: a relative folder would mean another place there."""
    monkeypatch.chdir(base)
    for variable in ("EMQ_RUNS_DIR", "EMQ_RESULTS_DIR", "EMQ_FIGURES_DIR"):
        monkeypatch.setenv(variable, "rel_" + variable.lower())
    seen = {}

    def execute(notebook, output, parameters, progress_bar=False):
        seen.update({v: os.environ[v] for v in ("EMQ_RUNS_DIR", "EMQ_RESULTS_DIR", "EMQ_FIGURES_DIR")})

    monkeypatch.setattr(reproduce, "execute", execute)
    monkeypatch.setattr(reproduce, "check_kernel", lambda name: None)
    # the report it updates at the end leaves README.md alone: the results are not the repository's
    reproduce.reproduce("smoke", only=["00"], echo=lambda *args, **kwargs: None)
    assert seen == {v: str(base / ("rel_" + v.lower())) for v in seen} and len(seen) == 3
    assert (base / "rel_emq_results_dir" / "reproduce_smoke.json").exists()


# 3. a folder or an empty --out is refused first, with the reason, before anything is computed

@pytest.mark.parametrize("force", [[], ["--force"]])
@pytest.mark.parametrize("target", ["a folder", "empty"])
def test_export_out_a_folder_or_empty_is_refused_first(run, base, cli, monkeypatch, target, force) -> None:
    monkeypatch.chdir(base)  # '' is the working directory, where a failed write would leave its temporary file
    out = str(base / "folder") if target == "a folder" else ""
    if out:
        os.mkdir(out)
    code, _, err = cli(["export", str(run), "--bits", "4", "--out", out, *force])
    line = _one_error_line(code, err, "a folder, not a regular file" if out else "--out is empty")
    assert "exists" not in line
    assert not list(run.glob("eval-*.csv")), "the command computed before it refused its --out"


# 4. the evaluation cache of a run on a read-only disk is best effort

@pytest.fixture
def read_only(run, monkeypatch) -> Path:
    """``run`` as on a read-only mount: every write into it fails as the kernel would fail it (EROFS);
    a chmod would not stop root."""
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == run.resolve():
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    return run


def test_eval_of_a_run_on_a_read_only_disk_answers_with_a_note(read_only, cli) -> None:
    code, out, err = cli(["eval", str(read_only), "--bits", "2,4"])
    assert code == 0 and out.split()[:2] == ["bits", "accuracy"], err
    assert len(out.strip().splitlines()) == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("note: ") and str(read_only) in lines[0], err


def test_export_of_a_run_on_a_read_only_disk_answers_with_a_note(read_only, base, cli) -> None:
    code, out, err = cli(["export", str(read_only), "--bits", "4", "--out", str(base / "model.onnx")])
    assert code == 0 and out.startswith(f"wrote {base / 'model.onnx'}"), err
    assert (base / "model.onnx").stat().st_size > 0
    assert err.startswith("note: ") and len(err.strip().splitlines()) == 1, err


# 6. EMQ_WORKERS is capped at the CPU cores and at the runs to train

@pytest.mark.parametrize("runs, expected", [(3, 2), (1, None)])
def test_workers_are_capped_at_the_cores_and_the_runs_to_train(base, monkeypatch, capsys, runs, expected) -> None:
    started = []
    monkeypatch.setenv(pool.WORKERS_VARIABLE, "8")
    monkeypatch.setattr(pool.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(pool, "_train_in_pool", lambda configs, count, evaluations: started.append(count))
    pool.train_missing([_smoke(seed=seed) for seed in range(runs)])
    assert started == ([] if expected is None else [expected])  # one run: trained here, by the study's get_run
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("note: ") and "EMQ_WORKERS=8" in lines[0], lines
    assert f"{expected or 1} worker" in lines[0] and "2 CPU cores" in lines[0] and f"{runs} run" in lines[0]


# 7. a script without the main guard fails at once instead of respawning workers forever

SCRIPT_WITHOUT_GUARD = """
from emqlib.harness.config import profile_config
from emqlib.harness.pool import train_missing
train_missing([profile_config("smoke", "emq", seed=s) for s in (0, 1)])
"""


@needs_two_cores
def test_a_script_without_the_main_guard_fails_at_once(base) -> None:
    script = base / "study.py"
    script.write_text(SCRIPT_WITHOUT_GUARD)
    start = time.monotonic()
    process = subprocess.Popen([sys.executable, str(script)], env=_env(base, EMQ_WORKERS="2"), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        _, err = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the script and the workers it keeps respawning
        process.communicate()
        raise AssertionError("the script hung: its spawned workers died at bootstrap and were respawned") from None
    assert process.returncode != 0 and time.monotonic() - start < 60
    last = err.strip().splitlines()[-1]
    assert 'if __name__ == "__main__":' in last and str(script) in last, err[-2000:]
    assert not (base / "runs").exists()


# 9. an evaluation does not depend on the process that computes it

def test_an_evaluation_is_the_same_here_with_two_threads_and_in_a_worker(run) -> None:
    """The notebook's process (a kernel: torch's threads, 2 on 2 cores) evaluates a finished run whose
    evaluation a Ctrl-C stopped; a worker (one thread) evaluates the runs it trains. Recalibration sums
    BatchNorm statistics, whose order follows the threads."""
    evaluation = ((2, 4, 32), True)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        load_run(run).evaluate(*evaluation)
    finally:
        torch.set_num_threads(threads)
    [cache] = run.glob("eval-*.csv")
    here = cache.read_bytes()
    cache.unlink()
    with multiprocessing.get_context("spawn").Pool(1, initializer=pool._start_worker, initargs=(1,)) as workers:
        workers.apply(pool._train, (load_run(run).config, [evaluation]))
    assert cache.read_bytes() == here


@pytest.mark.slow
def test_a_study_whose_evaluations_were_interrupted_writes_the_same_table(base) -> None:
    """A study's runs trained (and evaluated) by two workers; then the evaluations are lost, as when a
    Ctrl-C stops the study between a run's training and its evaluation, and the study runs again:
    this process (with two threads, as a notebook's kernel) evaluates them now."""
    configs = [_smoke(method="joint"), _smoke()]
    evaluations = [((2, 4), True)] * 2

    def study() -> bytes:
        pool.train_missing(configs, count=2, evaluations=evaluations)
        frames = [get_run(c).evaluate(*e) for c, e in zip(configs, evaluations)]
        return b"".join(f.to_csv(index=False).encode() for f in frames)

    try:
        first = study()
    finally:
        pool.shutdown()
    lost = list((base / "runs").glob("*/eval-*.csv"))
    assert len(lost) == 2
    for cache in lost:
        cache.unlink()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert study() == first
    finally:
        torch.set_num_threads(threads)


# 11. done.json says how a run was trained, also when it was resumed under another setting

def test_a_run_killed_compiled_and_resumed_eager_records_mixed(base, monkeypatch) -> None:
    # a real torch.compile (dynamo), without inductor's code generation: seconds instead of minutes
    monkeypatch.setattr(build, "compile_model", lambda model: torch.compile(model, backend="eager", dynamic=False))
    real_epoch = Trainer.epoch

    def killed_after_the_first_epoch(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return real_epoch(self, epoch)

    monkeypatch.setattr(Trainer, "epoch", killed_after_the_first_epoch)
    monkeypatch.setenv("EMQ_COMPILE", "1")
    with pytest.raises(KeyboardInterrupt):
        get_run(_smoke(), Runtime(progress=False))
    monkeypatch.setattr(Trainer, "epoch", real_epoch)
    monkeypatch.setenv("EMQ_COMPILE", "0")
    run = get_run(_smoke(), Runtime(progress=False))
    assert load_json(run.path / "done.json")["trained_with"] == {"device": "cpu", "compiled": "mixed"}


# 12. a full disk names the file, and the advice fits the command

def test_disk_full_names_the_file_and_gives_the_advice_of_the_command(run, base, cli, monkeypatch) -> None:
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as write(2) reports it: no file name

    monkeypatch.setattr(os, "fsync", full)
    out = base / "model.onnx"
    code, _, err = cli(["export", str(run), "--bits", "4", "--out", str(out)])
    line = err.strip().splitlines()[-1]
    assert code == 2 and line.startswith(f"error: No space left on device: {out}; free some disk space"), err
    assert "training" not in line and not out.exists()
    new = base / "new"
    code, _, err = cli(["train", "--profile", "smoke", "--method", "emq", "--bits", "2,32", "--out", str(new)])
    _one_error_line(code, err, f"No space left on device: {new}/", "training resumes from its last checkpoint")


def test_ctrl_c_of_an_export_does_not_speak_of_training(run, base, cli, monkeypatch) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "compare", interrupted)
    code, _, err = cli(["export", str(run), "--bits", "4", "--out", str(base / "model.onnx")])
    assert code == 130 and err.startswith("error: interrupted") and "training" not in err, err


# 13. workers stop when the process that started them is gone

PARENT_OF_WORKERS = """
import os, time
from emqlib.harness import pool


def train(seconds):  # a run's training, for this test: says which worker took it
    os.write(1, f"{os.getpid()}\\n".encode())  # one write: the two workers' lines do not interleave
    time.sleep(seconds)


if __name__ == "__main__":
    workers = pool._pool(2)
    for _ in range(2):
        workers.apply_async(train, (120,))
    time.sleep(120)
"""


@pytest.mark.slow
def test_workers_stop_when_their_parent_is_killed(base) -> None:
    script = base / "study.py"
    script.write_text(PARENT_OF_WORKERS)
    with open(base / "stderr.txt", "w") as log:
        process = subprocess.Popen([sys.executable, str(script)], env=_env(base), stdout=subprocess.PIPE,
                                   stderr=log, text=True, start_new_session=True)
    try:
        lines = [process.stdout.readline() for _ in range(2)]  # each worker has taken a task
        assert all(line.strip().isdigit() for line in lines), lines
        workers = [int(line) for line in lines]
        process.kill()
        process.wait()
        deadline = time.monotonic() + 10
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [pid for pid in workers if _alive(pid)]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert not left, "workers went on with their tasks for a parent that is gone"
    assert "Traceback" not in (base / "stderr.txt").read_text()


# 14. one lock per run folder, whatever path names it

def test_the_same_new_run_by_its_path_and_by_a_symlink_takes_one_lock(base) -> None:
    real, link = base / "real", base / "link"
    real.mkdir()
    link.symlink_to(real)
    assert lock_path(link) == lock_path(real)
    with file_lock(lock_path(real)):  # another process trains the run in real/
        second = threading.Thread(target=get_run, args=(_smoke(), Runtime(progress=False)), kwargs={"path": link})
        second.start()
        second.join(timeout=2)
        waited = second.is_alive() and not (real / "config.json").exists()
    second.join()
    assert waited and is_done(real)


# 15. final.pt belongs to its run

def test_final_weights_swapped_in_from_another_run_are_refused(finished, base, cli) -> None:
    ours = Path(shutil.copytree(finished["emq"], base / "ours"))
    (ours / "final.pt").write_bytes((finished["emq seed 1"] / "final.pt").read_bytes())
    done = json.loads((ours / "done.json").read_text())
    done["final_sha256"] = hashlib.sha256((ours / "final.pt").read_bytes()).hexdigest()
    (ours / "done.json").write_text(json.dumps(done))
    code, _, err = cli(["eval", str(ours), "--bits", "2"])
    _one_error_line(code, err, str(ours / "final.pt"), "another configuration")


# 17. eval says which bit-widths it skipped

def test_eval_of_a_dedicated_run_says_which_bit_widths_it_skipped(finished, cli) -> None:
    code, out, err = cli(["eval", str(finished["dedicated"]), "--bits", "2,4"])
    assert code == 0 and [line.split()[0] for line in out.strip().splitlines()[1:]] == ["2"], err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("note: ") and "bits 4" in lines[0] and "Dedicated" in lines[0], err


# 18. messages name the right path and the right command

def test_a_non_utf8_out_path_is_trained_into_and_named(base, capfdbinary) -> None:
    """A Linux path is bytes: one that is not UTF-8 is trained into and printed as those bytes."""
    out = os.fsencode(base) + b"/run-\xff"
    code = main(["train", "--profile", "smoke", "--method", "emq", "--bits", "2,32", "--out", os.fsdecode(out)])
    printed = capfdbinary.readouterr()
    assert code == 0, printed.err.decode(errors="replace")
    assert printed.out.splitlines()[0].endswith(b" in " + out)
    assert os.path.exists(out + b"/done.json")


def test_export_of_a_file_asks_for_a_run_folder_without_naming_eval(run, base, cli) -> None:
    code, _, err = cli(["export", str(run / "config.json"), "--bits", "4", "--out", str(base / "model.onnx")])
    line = _one_error_line(code, err, str(run / "config.json"), "not a run folder")
    assert "eval" not in line
