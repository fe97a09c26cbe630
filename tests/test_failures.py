"""Hostile-but-ordinary use of the command line (issue 17): every failure is one ``error:`` line
with the path and what to do, exit status 2 (130 for Ctrl-C); the run cache never reports an
unverified result; ``--out`` never overwrites a user's files; and nothing outside the run folder
(and the lock in ``<runs>/.locks``) changes when a command fails. Advice is followed in the tests
and the next command must then succeed.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from emqlib.harness import paths, storage
from emqlib.harness.build import Runtime
from emqlib.harness.cli import error_line, main
from emqlib.harness.config import profile_config
from emqlib.harness.parameters import check_injected_parameters
from emqlib.harness.runs import get_run, is_done, load_run
from emqlib.harness.storage import load_json
from emqlib.harness.trainer import Trainer

CONFIG = profile_config("smoke", method="emq", model={"bits": (2, 32)})
TRAIN = ["train", "--profile", "smoke", "--method", "emq", "--bits", "2,32", "--no-progress"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, str]:
    """A finished run and the table ``train`` prints for it."""
    base = tmp_path_factory.mktemp("finished")
    run = get_run(CONFIG, Runtime(progress=False), path=base / "run", root=base / "runs")
    return run.path, run.final_metrics()[["bits", "test_accuracy", "sample_passes"]].to_string(index=False)


@pytest.fixture
def base(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("EMQ_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("EMQ_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("EMQ_PROGRESS", "0")
    return tmp_path


@pytest.fixture
def run(finished, base) -> Path:
    """A private copy of the finished run."""
    return Path(shutil.copytree(finished[0], base / "run"))


def _tree(base: Path, run_folder: Path | None) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``base`` outside ``run_folder`` and the locks, with size and mtime."""
    files = {}
    for p in base.rglob("*"):
        if run_folder is not None and (p == run_folder or run_folder in p.parents):
            continue
        if ".locks" in p.parts or p == base / "runs":  # the runs folder holds the locks
            continue
        files[str(p.relative_to(base))] = (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else (-1, 0)
    return files


def fails(argv: list[str], message: str, capsys, base: Path, run_folder: Path | None = None, status: int = 2) -> str:
    """Run ``main(argv)``; it must end with status ``status`` and one ``error:`` line holding
    ``message``, and change nothing under ``base`` outside ``run_folder``."""
    before = _tree(base, run_folder)
    capsys.readouterr()
    assert main(argv) == status
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err, err
    assert len(err.splitlines()) == 1, err
    assert _tree(base, run_folder) == before, "a failing command changed files outside the run folder"
    return err


def succeeds(argv: list[str], capsys, note: str = "") -> str:
    """Run ``main(argv)``; it must succeed (printing ``note`` on stderr); returns its output."""
    capsys.readouterr()
    status = main(argv)
    printed = capsys.readouterr()
    assert status == 0 and note in printed.err, printed.err
    return printed.out


def _printed_table(out: str) -> str:
    return out.strip().split("\n", 1)[1]


# ---------------------------------------------------------------- 1. --out never overwrites

def test_out_folder_with_other_files_is_refused_untouched(base, capsys) -> None:
    user = base / "mine"
    user.mkdir()
    (user / "metrics.csv").write_text("my,own\n1,2\n")
    (user / "notes.txt").write_text("keep me")
    before = {p.name: p.read_bytes() for p in user.iterdir()}
    fails([*TRAIN, "--out", str(user)], "holds files but no run", capsys, base)
    assert {p.name: p.read_bytes() for p in user.iterdir()} == before


@pytest.mark.parametrize("target", ["a file", "/dev/null"])
def test_out_an_existing_file_is_refused(base, capsys, target) -> None:
    path = Path(target) if target.startswith("/") else base / "file.txt"
    if not path.exists():
        path.write_text("data")
    fails([*TRAIN, "--out", str(path)], "is a file, not a run folder", capsys, base)
    assert not (path.parent / ".locks").exists()


def test_an_empty_out_folder_is_used_and_locks_stay_in_the_runs_folder(base, capsys, finished) -> None:
    out = base / "empty"
    out.mkdir()
    printed = succeeds([*TRAIN, "--out", str(out)], capsys)
    assert _printed_table(printed) == finished[1]
    assert sorted(p.name for p in base.iterdir()) == ["empty", "runs"]  # no .locks next to --out
    assert len(list((base / "runs" / ".locks").glob("*.lock"))) == 1


# ---------------------------------------------------------------- 2. only a verified run is finished

@pytest.mark.parametrize("damage", ["stray done.json", "unparsable done.json", "done.json of another run",
                                    "truncated metrics.csv", "garbled metrics.csv", "missing final.pt",
                                    "corrupt final.pt", "legacy done.json"])
def test_a_finished_run_that_does_not_check_out_is_resumed_to_the_right_result(run, base, capsys, finished,
                                                                               damage) -> None:
    metrics = (run / "metrics.csv").read_bytes()
    if damage == "stray done.json":
        (run / "done.json").write_text("{}")
    elif damage == "unparsable done.json":
        (run / "done.json").write_text('{"final_sha256": ')
    elif damage == "done.json of another run":
        other = load_json(run / "done.json") | {"config_hash": "0123456789abcdef"}
        (run / "done.json").write_text(json.dumps(other))
    elif damage == "truncated metrics.csv":
        (run / "metrics.csv").write_bytes(metrics[:len(metrics) // 3])
    elif damage == "garbled metrics.csv":
        (run / "metrics.csv").write_bytes(b"\x00\xff garbage")
    elif damage == "missing final.pt":
        (run / "final.pt").unlink()
    elif damage == "corrupt final.pt":
        (run / "final.pt").write_bytes((run / "final.pt").read_bytes()[:100])
    else:  # written before done.json recorded metrics.csv
        legacy = load_json(run / "done.json")
        (run / "done.json").write_text(json.dumps({k: legacy[k] for k in ("final_sha256", "epochs")}))
    assert not is_done(run)
    printed = succeeds([*TRAIN, "--out", str(run)], capsys, note=f"{run} is not a verified finished run (its ")
    assert _printed_table(printed) == finished[1]  # the true final result, not epoch 0's
    assert is_done(run) and (run / "metrics.csv").read_bytes() == metrics


def test_a_stray_done_json_in_an_unfinished_run_resumes_training(base, capsys, monkeypatch, finished) -> None:
    out = base / "unfinished"
    real = storage.atomic_write_bytes

    def ctrl_c_at_the_second_checkpoint(path, data):
        if Path(path).name == "checkpoint-0001.pt":
            raise KeyboardInterrupt
        return real(path, data)

    monkeypatch.setattr(storage, "atomic_write_bytes", ctrl_c_at_the_second_checkpoint)
    fails([*TRAIN, "--out", str(out)], "interrupted", capsys, base, out, status=130)
    monkeypatch.undo()
    monkeypatch.setenv("EMQ_RUNS_DIR", str(base / "runs"))
    assert load_json(out / "checkpoint.json")["epoch"] == 0  # killed after the first of two epochs
    (out / "done.json").write_text("{}")
    printed = succeeds([*TRAIN, "--out", str(out)], capsys, note="resuming it from its last checkpoint")
    assert _printed_table(printed) == finished[1]
    assert pd.read_csv(out / "metrics.csv").epoch.unique().tolist() == [0, 1]


# ---------------------------------------------------------------- 3. and 9. the evaluation cache

def test_dedicated_run_at_bit_widths_it_has_no_model_for(base, capsys) -> None:
    config = profile_config("smoke", method="dedicated", model={"bits": (2, 32)}, optim={"epochs": 1})
    out = base / "dedicated"
    get_run(config, Runtime(progress=False), path=out)
    argv = ["eval", str(out), "--bits", "3,4"]
    for _ in range(2):  # the same command, the same answer: nothing was cached
        fails(argv, "has a model for bits 2,32 only; evaluate it at some of those (--bits 2,32)", capsys, base, out)
    assert not list(out.glob("eval-*.csv"))
    assert "2" in succeeds(["eval", str(out), "--bits", "2,32"], capsys)


@pytest.mark.parametrize("content", [b"", b"\x00garbage\n,,,\n", b"bits,accuracy\n"])
def test_a_damaged_cached_evaluation_is_evaluated_again(run, capsys, content) -> None:
    first = succeeds(["eval", str(run), "--bits", "2,32"], capsys)
    (cached,) = run.glob("eval-*.csv")
    good = cached.read_bytes()
    cached.write_bytes(content)
    assert succeeds(["eval", str(run), "--bits", "2,32"], capsys) == first
    assert cached.read_bytes() == good


# ---------------------------------------------------------------- 4. advice that works

def test_corrupt_final_weights_advice_is_followed(run, base, capsys, finished) -> None:
    (run / "final.pt").write_bytes(b"not torch")
    err = fails(["eval", str(run), "--bits", "2"], "run the same `python -m emqlib train` command again", capsys,
                base, run)
    assert str(run) in err and "final.pt" in err
    succeeds([*TRAIN, "--out", str(run)], capsys)  # the advice
    assert succeeds(["eval", str(run), "--bits", "2"], capsys)


@pytest.mark.parametrize("damage", ["flipped bytes", "garbage pointer"])
def test_corrupt_checkpoint_advice_is_followed(run, base, capsys, finished, damage) -> None:
    (run / "done.json").unlink()  # an unfinished run: it must resume from its checkpoint
    pointer = run / "checkpoint.json"
    if damage == "flipped bytes":
        checkpoint = run / load_json(pointer)["file"]
        data = bytearray(checkpoint.read_bytes())
        data[len(data) // 2] ^= 0xFF
        checkpoint.write_bytes(bytes(data))
    else:
        pointer.write_text("{not json")
    err = fails([*TRAIN, "--out", str(run)], f"delete {pointer} and run the same command again", capsys, base, run)
    assert "checksum" in err or "not valid JSON" in err
    pointer.unlink()  # the advice
    assert _printed_table(succeeds([*TRAIN, "--out", str(run)], capsys)) == finished[1]


# ---------------------------------------------------------------- 5. operating-system failures

def test_runs_folder_is_a_file(base, capsys, monkeypatch) -> None:
    (base / "runs-file").write_text("x")
    monkeypatch.setenv("EMQ_RUNS_DIR", str(base / "runs-file"))
    fails([*TRAIN, "--set", "optim.epochs=1"], "Not a directory", capsys, base)


@pytest.mark.parametrize("code, advice", [(errno.ENOSPC, "free some disk space"),
                                          (errno.EACCES, "choose a folder you can write to"),
                                          (errno.EROFS, "choose a folder on a writable disk")])
def test_write_failures_are_one_line_with_the_path(base, capsys, monkeypatch, code, advice) -> None:
    def refuse(*args, dir=None, **kwargs):
        raise OSError(code, os.strerror(code), dir)

    monkeypatch.setattr(storage.tempfile, "mkstemp", refuse)
    out = base / "out"
    err = fails([*TRAIN, "--out", str(out)], advice, capsys, base, out)
    assert f"{os.strerror(code)}: {out}" in err


def test_disk_full_after_some_epochs_then_resume(base, capsys, monkeypatch, finished) -> None:
    out = base / "out"
    real = storage.atomic_write_bytes

    def full(path, data):
        if Path(path).name == "final.pt":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(storage, "atomic_write_bytes", full)
    fails([*TRAIN, "--out", str(out)], "free some disk space and run the same command again", capsys, base, out)
    monkeypatch.undo()
    monkeypatch.setenv("EMQ_RUNS_DIR", str(base / "runs"))
    assert _printed_table(succeeds([*TRAIN, "--out", str(out)], capsys)) == finished[1]


def test_ctrl_c_during_training(base, capsys, monkeypatch) -> None:
    def interrupt(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "run", interrupt)
    out = base / "out"
    fails([*TRAIN, "--out", str(out)], "interrupted; run the same command again", capsys, base, out, status=130)


def test_offline_download(base, capsys, monkeypatch) -> None:
    import torchvision

    def offline(self, *args, **kwargs):
        from urllib.error import URLError

        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.CIFAR10, "__init__", offline)
    monkeypatch.setenv("EMQ_DOWNLOAD", "1")
    monkeypatch.setenv("EMQ_DATA_DIR", str(base / "data"))
    fails(["download", "cifar10"], "check the internet connection", capsys, base, base / "data")


@pytest.mark.parametrize("error, text", [
    (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), "network failure (Connection reset"),
    (PermissionError(errno.EACCES, "Permission denied", "/x/y"), "Permission denied: /x/y; choose a folder"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/x"), "No such file or directory: /x; check"),
])
def test_error_line_of_raw_errors(error, text) -> None:
    assert error_line(error).startswith(f"error: {text}")


@pytest.mark.parametrize("threads", ["0", "-2", "two"])
def test_bad_thread_count(base, capsys, threads) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*TRAIN, "--threads", threads])
    assert exit_.value.code == 2 and "--threads: must be a whole number >= 1" in capsys.readouterr().err
    assert not (base / "runs").exists()


# ---------------------------------------------------------------- 6. an edited config.json

def test_hand_edited_config_is_another_configuration(run, base, capsys) -> None:
    stored = load_json(run / "config.json")
    stored["config"]["model"]["width"] = 0.25
    (run / "config.json").write_text(json.dumps(stored))
    for argv in ([*TRAIN, "--out", str(run)], ["eval", str(run), "--bits", "2"]):
        fails(argv, "config.json was changed after the run was written", capsys, base, run)
    assert "holds another configuration" in error_line(_raised(lambda: load_run(run)))


def _raised(action) -> BaseException:
    try:
        action()
    except Exception as error:  # noqa: BLE001 (the test inspects it)
        return error
    raise AssertionError("no error")


# ---------------------------------------------------------------- 7. checked before anything is written

@pytest.mark.parametrize("setting, message", [("optim.lr=inf", "lr must be a finite number"),
                                              ("optim.lr=nan", "lr must be a finite number"),
                                              ("model.width=inf", "width must be a finite number"),
                                              ("data.train_per_class=100000", "ask for at most")])
def test_checked_before_anything_is_written(base, capsys, setting, message) -> None:
    out = base / "out"
    fails([*TRAIN, "--set", setting, "--out", str(out)], message, capsys, base, out)
    assert not out.exists()


# ---------------------------------------------------------------- 8. papermill parameters

def parameters_cell(notebook: str) -> str:
    """The source of the cell tagged 'parameters' of ``notebooks/<notebook>``."""
    import nbformat

    cells = nbformat.read(paths.NOTEBOOKS / notebook, as_version=4).cells
    return next(c.source for c in cells if "parameters" in c.metadata.get("tags", []))


DECLARED = parameters_cell("05_training_cost.ipynb")  # profile, n_seeds, fraction


@pytest.mark.parametrize("injected, message", [
    ({"nosuch": 1}, "unknown parameter 'nosuch'"),
    ({"n_seeds": "two"}, "parameter 'n_seeds' must be of type int"),
    ({"fraction": "0.5"}, "parameter 'fraction' must be of type float"),
    ({"profile": "gpu"}, "parameter 'profile' must be one of ['smoke', 'cpu', 'paper']"),
    ({"n_seeds": 0}, "parameter 'n_seeds' is a count: give a whole number >= 1, got 0"),
    ({"n_seeds": -1}, "parameter 'n_seeds' is a count: give a whole number >= 1, got -1"),
])
def test_papermill_parameters_are_checked_in_the_kernel(injected, message) -> None:
    source = "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in injected.items())
    namespace = {"profile": "cpu", "n_seeds": 2, "fraction": 0.2, **injected}
    with pytest.raises(ValueError) as error:
        check_injected_parameters(["", DECLARED, source, "check()"], namespace)
    assert message in str(error.value)


@pytest.mark.parametrize("injected, message", [
    ({"rate": "0.8"}, "04_pruning.ipynb: parameter 'rate' must be of type float"),
    ({"rates_seeds": 0}, "parameter 'rates_seeds' is a count: give a whole number >= 1, got 0"),
    ({"fraction": 0.2}, "unknown parameter 'fraction' (its parameters: n_seeds, profile, rate, rates_seeds)"),
])
def test_the_pruning_notebook_checks_its_own_parameters(injected, message) -> None:
    source = "# Parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in injected.items())
    namespace = {"profile": "cpu", "n_seeds": 3, "rate": 0.8, "rates_seeds": 1, **injected}
    with pytest.raises(ValueError) as error:
        check_injected_parameters(["", parameters_cell("04_pruning.ipynb"), source], namespace, "04_pruning.ipynb")
    assert message in str(error.value)


def test_papermill_parameters_of_the_right_type_pass_converted() -> None:
    namespace = {"profile": "smoke", "n_seeds": 2, "fraction": 1}
    check_injected_parameters(["", DECLARED, "# Parameters\nprofile = 'smoke'\nfraction = 1\n"], namespace)
    assert namespace["fraction"] == 1.0 and isinstance(namespace["fraction"], float)
    check_injected_parameters(["", DECLARED, "check()"], {})  # not run by papermill: nothing to check


def test_every_notebook_checks_its_parameters_right_after_the_parameters_cell() -> None:
    import nbformat

    from emqlib.harness.reproduce import notebooks

    for path in notebooks():
        code = [c for c in nbformat.read(path, 4).cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", [])
        assert "check_injected_parameters()" in code[1].source.splitlines()[0], path.name


# ---------------------------------------------------------------- 10. and 11.

@pytest.mark.parametrize("extra, message", [(["--set", "model.bits=2,4"], "model.bits is given twice"),
                                            (["--set", "seed=1", "--set", "seed=2"], "seed is given twice"),
                                            (["--seed", "1", "--set", "seed=2"], "seed is given twice"),
                                            (["--method", "emq", "--set", "method=joint"], "give the method with --method")])
def test_a_field_given_twice_is_an_error(base, capsys, extra, message) -> None:
    fails([*TRAIN, *extra], message, capsys, base)


def test_emq_progress_0_is_honoured(base, capsys, monkeypatch) -> None:
    seen = []

    def record(config, runtime, path=None):
        seen.append(runtime)
        raise ValueError("recorded")

    monkeypatch.setattr("emqlib.harness.runs.get_run", record)
    monkeypatch.setenv("EMQ_PROGRESS", "0")
    main(["train", "--profile", "smoke"])
    monkeypatch.setenv("EMQ_PROGRESS", "1")
    main(["train", "--profile", "smoke"])
    main(["train", "--profile", "smoke", "--no-progress"])
    assert [r.progress for r in seen] == [False, True, False]


def test_reproduce_exits_2_on_bad_input(capsys) -> None:
    from emqlib.harness import reproduce

    assert reproduce.main(["--profile", "smoke", "--only", "99"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "no notebook '99'" in err and len(err.splitlines()) == 1


def _reproduce_fails(capsys, base: Path, message: str) -> str:
    """``python -m emqlib.harness.reproduce --profile smoke --only 03`` ends with one error line holding
    ``message``, status 2, and writes nothing."""
    from emqlib.harness import reproduce

    assert reproduce.main(["--profile", "smoke", "--only", "03"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err, err
    assert not (base / "results").exists() and not (base / "runs").exists()
    return err


def test_reproduce_into_a_read_only_results_folder_names_its_own_options(base, capsys, monkeypatch) -> None:
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if base / "results" in (self, *self.parents):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    err = _reproduce_fails(capsys, base, "choose a folder on a writable disk")
    assert "--output-dir" in err and "EMQ_RESULTS_DIR" in err and "(--out," not in err  # reproduce's, not train's


def test_reproduce_checks_emq_compile_before_anything_starts(base, capsys, monkeypatch) -> None:
    monkeypatch.setenv("EMQ_COMPILE", "garbage")
    _reproduce_fails(capsys, base, "EMQ_COMPILE='garbage': set it to 1 (compile), 0 (eager) or auto")


# ---------------------------------------------------------------- further hostile cases

def test_out_empty_or_the_runs_folder_itself(base, capsys) -> None:
    fails([*TRAIN, "--out", ""], "--out is empty", capsys, base)
    (base / "runs" / ".locks").mkdir(parents=True)
    fails([*TRAIN, "--out", str(base / "runs")], "holds files but no run", capsys, base)


def test_eval_of_a_file_an_empty_folder_and_an_unknown_hash(base, capsys) -> None:
    (base / "plain.txt").write_text("x")
    fails(["eval", str(base / "plain.txt")], "is a file, not a run folder", capsys, base)
    (base / "empty").mkdir()
    fails(["eval", str(base / "empty")], "is not a finished run (it has no done.json)", capsys, base)
    fails(["eval", "0123456789abcdef"], "no such run folder", capsys, base)


def test_garbage_or_missing_config_json(run, base, capsys) -> None:
    (run / "config.json").write_text("{garbage")
    fails([*TRAIN, "--out", str(run)], "config.json is not valid JSON", capsys, base, run)
    (run / "config.json").unlink()
    fails([*TRAIN, "--out", str(run)], "holds files but no run (no config.json)", capsys, base, run)
    fails(["eval", str(run), "--bits", "2"], "its config.json is missing or damaged", capsys, base, run)


def test_a_run_killed_while_it_wrote_its_config_trains_there_and_other_hidden_files_are_refused(finished, base,
                                                                                                capsys) -> None:
    # a kill between the temporary file and its rename (the first write of a run) leaves only that file
    cut_short = base / "cut" / ".config.json.a1b2c3d4.tmp"
    cut_short.parent.mkdir()
    cut_short.write_text('{"sch')
    run = get_run(CONFIG, Runtime(progress=False), path=cut_short.parent)
    assert is_done(run.path) and not cut_short.exists()
    # as if never killed: the same weights (the metrics differ in their measured seconds)
    assert load_json(run.path / "done.json")["final_sha256"] == load_json(finished[0] / "done.json")["final_sha256"]
    # any other file, hidden or not, may be the user's: never trained over
    for name in (".notes.tmp", ".metrics.csv.a1b2c3d4.tmp"):
        folder = base / name.strip(".")
        folder.mkdir()
        (folder / name).write_text("mine")
        fails([*TRAIN, "--out", str(folder)], "holds files but no run (no config.json)", capsys, base, folder)
        assert (folder / name).read_text() == "mine"


def test_a_corrupt_snapshot_says_to_retrain(run) -> None:
    snapshot = next((run / "snapshots").glob("*.pt"))
    snapshot.write_bytes(b"garbage")
    epoch = int(snapshot.stem.split("-")[1])
    with pytest.raises(storage.CorruptFileError, match=f"delete the run folder {run} and train it again"):
        load_run(run).model(2, epoch=epoch)


@pytest.mark.parametrize("value, message", [("two", "parameter 'n_seeds' must be of type int"),
                                            (0, "parameter 'n_seeds' is a count: give a whole number >= 1, got 0")])
def test_papermill_run_directly_fails_naming_the_parameter(tmp_path, value, message) -> None:
    """The real thing: papermill (not emqlib.harness.reproduce) with a wrongly typed value or a count below 1
    stops in the cell after the parameters cell, with an error that names the parameter."""
    import nbformat
    import papermill

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "emqlib", "display_name": "Python (emqlib)", "language": "python"}
    parameters = nbformat.v4.new_code_cell(DECLARED)
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell("from emqlib.harness.parameters import check_injected_parameters; "
                                                      "check_injected_parameters()"),
                nbformat.v4.new_code_cell("raise AssertionError('not reached')")]
    nbformat.write(nb, tmp_path / "nb.ipynb")
    with pytest.raises(papermill.PapermillExecutionError) as error:
        papermill.execute_notebook(str(tmp_path / "nb.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"n_seeds": value}, kernel_name="emqlib", progress_bar=False,
                                   start_timeout=180)
    assert error.value.ename == "ValueError" and message in error.value.evalue
