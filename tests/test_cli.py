"""Command line: train, eval, bad input, and training under torchrun (DistributedDataParallel)."""
from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from emqlib.harness.cli import build_config, main, parser
from emqlib.harness.config import BITWISE_TRAINING, config_hash, coreset, profile_config
from emqlib.harness.runs import load_run

ROOT = Path(__file__).resolve().parent.parent
CONFIG = profile_config("smoke", method="emq", model={"bits": (2, 32)})
TRAIN_ARGS = ["train", "--profile", "smoke", "--method", "emq", "--bits", "2,32", "--no-progress"]


@pytest.fixture(autouse=True)
def runs_dir(tmp_path, monkeypatch) -> Path:
    """In-process commands use a temporary run cache too."""
    monkeypatch.setenv("EMQ_RUNS_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def env_for(cache: Path) -> dict:
    return {**os.environ, "EMQ_RUNS_DIR": str(cache), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, str]:
    """A run trained by ``python -m emqlib train --out`` (in this process), and what it printed."""
    base = tmp_path_factory.mktemp("cli")
    out = base / "run"
    printed, errors = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed), contextlib.redirect_stderr(errors):
        patch.setenv("EMQ_RUNS_DIR", str(base / "cache"))
        code = main([*TRAIN_ARGS, "--out", str(out)])
    assert code == 0, errors.getvalue()
    return out, printed.getvalue()


def table(text: str) -> pd.DataFrame:
    lines = [line.split() for line in text.strip().splitlines()]
    return pd.DataFrame(lines[1:], columns=lines[0])


def test_train_prints_hash_and_final_metrics(trained) -> None:
    out, printed = trained
    lines = printed.strip().splitlines()
    assert lines[0] == f"run {config_hash(CONFIG)} in {out}"
    final = table("\n".join(lines[1:]))
    assert final.columns.tolist() == ["bits", "test_accuracy", "sample_passes"]
    assert final.bits.tolist() == ["32", "2"]
    assert final.sample_passes.tolist() == ["160", "160"]  # 4 classes x 40 (8 of 48 held out for validation)
    assert (out / "done.json").exists()
    assert load_run(out).config == CONFIG


def test_eval_prints_every_bit_width(trained, capsys) -> None:
    out, _ = trained
    assert main(["eval", str(out), "--bits", "1-8,32"]) == 0
    frame = table(capsys.readouterr().out)
    assert len(frame) == 9
    assert frame.bits.tolist() == ["1", "2", "3", "4", "5", "6", "7", "8", "32"]
    assert frame.trained.tolist() == ["True" if b in ("2", "32") else "False" for b in frame.bits]
    assert frame.accuracy.astype(float).between(0, 100).all()

    assert main(["eval", str(out), "--bits", "3,5", "--recalibrate"]) == 0
    frame = table(capsys.readouterr().out)
    assert frame.bits.tolist() == ["3", "5"] and (frame.recalibrated == "True").all()


def test_eval_by_hash_in_the_run_cache(capsys) -> None:
    from emqlib.harness.build import Runtime
    from emqlib.harness.runs import get_run

    config = CONFIG.replace(optim={"epochs": 1})
    get_run(config, Runtime(progress=False))
    assert main(["eval", config_hash(config), "--bits", "2"]) == 0
    assert len(table(capsys.readouterr().out)) == 1


def build(*argv: str):
    return build_config(parser().parse_args([*TRAIN_ARGS, *argv]))


def test_build_config_from_flags_and_set() -> None:
    config = build("--seed", "3", "--epochs", "4", "--label-noise", "0.1", "--set", "optim.lr=0.01",
                   "--set", "data.augment=true", "--set", "optim.milestones=3,5", "--set", "model.activation_bits=8",
                   "--set", "model.width=0.25", "--set", "model.quant.bias_correction=false",
                   "--set", "training.label_weight=0.5", "--set", "record.snapshot_every=0")
    assert config == CONFIG.replace(seed=3, optim={"epochs": 4, "lr": 0.01, "milestones": (3, 5)},
                                    data={"label_noise": 0.1, "augment": True},
                                    model={"activation_bits": 8, "width": 0.25, "quant": {"bias_correction": False}},
                                    training={"label_weight": 0.5}, record={"snapshot_every": 0})
    cpu = build_config(parser().parse_args(["train", "--profile", "cpu", "--set", "data.train_per_class=none"]))
    assert cpu.data.train_per_class is None and profile_config("cpu").data.train_per_class == 600


def test_coreset_gives_a_joint_method_emqs_bitwise_loop() -> None:
    config = build("--coreset", "emq-sample", "--fraction", "0.3", "--reselect-every", "3", "--static",
                   "--set", "selection.tau=2")
    assert config == profile_config("smoke", model={"bits": (2, 32)}, training=BITWISE_TRAINING,
                                    selection={"rule": "emq-sample", "fraction": 0.3, "reselect_every": 3,
                                               "static": True, "tau": 2.0})
    assert config.selection.warmup_epochs == 1  # the smoke profile's, which --reselect-every leaves alone
    dedicated = build("--method", "dedicated", "--coreset", "random", "--fraction", "0.5")
    assert dedicated.training == profile_config("smoke", method="dedicated").training  # already bit-wise
    # --set changes the bit-wise loop's fields together: the batch loop distils recursively
    batch = build("--coreset", "random", "--fraction", "0.5", "--set", "training.loop=batch",
                  "--set", "training.teacher=recursive")
    assert (batch.training.loop, batch.training.teacher, batch.selection.fraction) == ("batch", "recursive", 0.5)


@pytest.mark.parametrize("argv, message", [
    (["--set", "optim.nosuch=1"], "unknown configuration field 'optim.nosuch': 'nosuch' is not one of ['batch_size', "),
    (["--set", "nosuch.epochs=1"], "'nosuch' is not one of ['data', 'method', 'model', 'optim', "),
    (["--set", "data.epochs=1"], "'epochs' is not one of ['augment', 'dataset', "),
    (["--set", "selection.tau=2"], "selection rule 'none' has no settings ['tau']"),
    (["--epochs", "2", "--set", "optim.epochs=3"], "optim.epochs is given twice"),
    (["--set", "optim.epochs=2", "--set", "optim.epochs=3"], "optim.epochs is given twice"),
    (["--coreset", "random", "--set", "selection.rule=acs"], "selection.rule is given twice"),
    (["--set", "method=joint"], "give the method with --method"),
])
def test_set_with_a_bad_dotted_name_is_one_error_line(argv, message, capsys) -> None:
    assert main([*TRAIN_ARGS, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv, message", [
    (["train", "--profile", "smoke", "--bits", "16"], "1..8 or 32"),
    (["train", "--profile", "smoke", "--bits", "2,x"], "1..8 or 32"),
    (["train", "--profile", "smoke", "--set", "optim.lr=fast"], "optim.lr must be a number"),
    (["train", "--profile", "smoke", "--set", "optim.lr=-1"], "lr must be positive"),
    (["train", "--profile", "smoke", "--set", "data.augment=maybe"], "data.augment must be true or false"),
    (["train", "--profile", "smoke", "--set", "nosuch=1"], "unknown configuration field 'nosuch'"),
    (["train", "--profile", "smoke", "--set", "optim.epochs"], "PART.FIELD=VALUE"),
    (["train", "--profile", "smoke", "--set", "training=x"], "training is a part of the configuration"),
    (["train", "--profile", "nope"], "unknown profile"),
    (["train", "--profile", "smoke", "--method", "magic"], "method must be one of"),
    (["eval", "/nonexistent/run", "--bits", "2"], "not a finished run"),
])
def test_bad_input_is_one_error_line_and_status_2(argv, message, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_train_into_a_folder_of_another_configuration(trained, capsys) -> None:
    out, _ = trained
    before = sorted(p.name for p in out.iterdir())
    assert main([*TRAIN_ARGS, "--seed", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "another configuration" in err and "seed" in err
    assert sorted(p.name for p in out.iterdir()) == before


def test_eval_bad_bits(trained, capsys) -> None:
    out, _ = trained
    assert main(["eval", str(out), "--bits", "9"]) == 2
    assert "1..8 or 32" in capsys.readouterr().err


def torchrun() -> list[str]:
    script = Path(sys.executable).parent / "torchrun"
    return [str(script)] if script.exists() else [sys.executable, "-m", "torch.distributed.run"]


def test_torchrun_two_processes(trained, tmp_path) -> None:
    single, _ = trained
    out = tmp_path / "ddp"
    done = subprocess.run([*torchrun(), "--standalone", "--nproc_per_node", "2", "-m", "emqlib", *TRAIN_ARGS,
                           "--out", str(out)], cwd=ROOT, env=env_for(tmp_path / "cache"), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"run {config_hash(CONFIG)} in {out} (2 processes)" in done.stdout
    assert (out / "done.json").exists()
    run = load_run(out)
    assert run.config == CONFIG
    run.model(2)  # final weights load (checksum checked)
    columns = ["epoch", "bits", "sample_passes", "teacher_forwards", "selection_forwards", "subset_size"]
    pd.testing.assert_frame_equal(run.metrics[columns], load_run(single).metrics[columns])
    assert (run.metrics.sample_passes == 160).all()


def test_torchrun_trains_the_reference_run_and_counts_like_one_process(tmp_path, runs_dir) -> None:
    """A coreset scored by the full-precision reference run: the reference (which records a
    trajectory, so cannot run under DDP) is trained as one process before the group forms,
    and the scoring forwards are counted once, not once per process."""
    from emqlib.harness.build import Runtime
    from emqlib.harness.config import reference_config
    from emqlib.harness.runs import get_run, is_done, run_path

    argv = ["train", "--profile", "smoke", "--method", "emq", "--coreset", "el2n", "--fraction", "0.5",
            "--bits", "2,32", "--no-progress"]
    config = CONFIG.replace(training=BITWISE_TRAINING, selection=coreset("smoke", "el2n", 0.5))
    out = tmp_path / "ddp"
    done = subprocess.run([*torchrun(), "--standalone", "--nproc_per_node", "2", "-m", "emqlib", *argv,
                           "--out", str(out)], cwd=ROOT, env=env_for(runs_dir), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert is_done(run_path(reference_config(config), runs_dir))
    single = get_run(config, Runtime(progress=False), root=runs_dir)  # reuses the cached reference
    columns = ["epoch", "bits", "sample_passes", "teacher_forwards", "selection_forwards", "subset_size"]
    pd.testing.assert_frame_equal(load_run(out).metrics[columns], single.metrics[columns])
    assert single.metrics.selection_forwards.sum() == 160  # one scoring pass of the reference


def test_no_compile_overrides_the_environment_and_the_run_records_how_it_trained(trained, cli, monkeypatch) -> None:
    out, _ = trained
    assert json.loads((out / "done.json").read_text())["trained_with"] == {"device": "cpu", "compiled": False}
    monkeypatch.setenv("EMQ_COMPILE", "1")
    assert parser().parse_args([*TRAIN_ARGS, "--no-compile"]).compile is False
    assert parser().parse_args(TRAIN_ARGS).compile is None  # then $EMQ_COMPILE decides
    code, _, err = cli([*TRAIN_ARGS, "--epochs", "1", "--no-compile", "--out", str(out.parent / "eager")])
    assert code == 0, err
    assert json.loads((out.parent / "eager" / "done.json").read_text())["trained_with"]["compiled"] is False


def test_a_bad_emq_compile_is_one_error_line_before_anything_is_written(cli, runs_dir, monkeypatch) -> None:
    monkeypatch.setenv("EMQ_COMPILE", "yes")
    code, _, err = cli(TRAIN_ARGS)
    assert code == 2 and err.strip().splitlines() == [
        "error: EMQ_COMPILE='yes': set it to 1 (compile), 0 (eager) or auto (compile on CUDA only, where it was "
        "measured to pay)"]
    assert not runs_dir.exists()
