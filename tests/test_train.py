"""The trainer and the run cache on the smoke profile: determinism, resume, cost accounting,
methods, evaluation at untrained bit-widths, failures (non-finite loss, corrupt checkpoint,
foreign run folder) and two processes asking for one run."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from emqlib.bn import MultiBitBatchNorm2d
from emqlib.harness.build import Runtime, load_run_data
from emqlib.harness.config import BITWISE_TRAINING, config_hash, profile_config
from emqlib.harness.runs import IncompatibleRunError, get_run, load_run
from emqlib.harness.storage import CorruptFileError, load_json, load_torch
from emqlib.harness.trainer import RunStoppedError, Trainer

ROOT = Path(__file__).resolve().parent.parent
N_TRAIN = 160  # the synthetic training set: 4 classes x 48, 8 of each held out for validation
N_CLASSES = 4
BITS = (32, 4, 2)  # descending, as RunConfig stores them


def train(root: Path, method: str = "emq", bits=BITS, **changes):
    config = profile_config("smoke", method, model={"bits": bits}, **changes)
    return get_run(config, Runtime(progress=False), root=root)


def results(run) -> pd.DataFrame:
    """The metrics without wall-clock columns."""
    m = pd.read_csv(run.path / "metrics.csv")
    return m[[c for c in m.columns if not c.endswith("_seconds")]]


def final_weights(path: Path) -> list[dict]:
    return load_torch(path / "final.pt", load_json(path / "done.json")["final_sha256"])["learners"]


def assert_same_weights(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for state_a, state_b in zip(a, b):
        assert state_a.keys() == state_b.keys()
        for k in state_a:
            assert torch.equal(state_a[k], state_b[k]), k


def cli_env(runs_dir: Path) -> dict:
    return {**os.environ, "EMQ_RUNS_DIR": str(runs_dir), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def method_runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("runs")
    return {m: train(root, m) for m in ("emq", "joint", "dedicated")}


# ---------------------------------------------------------------- determinism

def test_same_seed_same_run_other_seed_other_run(method_runs, tmp_path) -> None:
    first = method_runs["emq"]
    again = train(tmp_path / "a")
    assert again.path != first.path
    pd.testing.assert_frame_equal(results(again), results(first), check_exact=True)
    assert_same_weights(final_weights(again.path), final_weights(first.path))

    other = train(tmp_path / "b", seed=1)
    assert not results(other).test_loss.equals(results(first).test_loss)
    assert not results(other).train_loss.equals(results(first).train_loss)
    a, b = final_weights(other.path)[0], final_weights(first.path)[0]
    assert not torch.equal(a["stem.weight"], b["stem.weight"])


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(tmp_path) -> None:
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "emqlib", "train", "--profile", "smoke", "--set", "optim.epochs=6", "--out", str(out),
           "--no-progress"]
    env = cli_env(tmp_path / "cache")
    pointer = out / "checkpoint.json"
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if pointer.exists() and load_json(pointer)["epoch"] >= 1:
                break
            time.sleep(0.005)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "done.json").exists()
    info = load_json(pointer)
    killed = load_torch(out / info["file"], info["sha256"])
    assert 1 <= killed["epoch"] < 5

    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    config = profile_config("smoke", optim={"epochs": 6})
    assert f"run {config_hash(config)}" in done.stdout
    resumed = load_run(out)
    m = resumed.metrics
    assert sorted(m.epoch.unique()) == list(range(6))
    # the epochs before the kill were not trained again: their timings are the killed process's
    before = pd.DataFrame(killed["metrics"])
    assert len(before) == (killed["epoch"] + 1) * len(config.model.bits)
    assert m.train_seconds.iloc[:len(before)].tolist() == pytest.approx(before.train_seconds.tolist(), rel=1e-12)

    uninterrupted = get_run(config, Runtime(progress=False), root=tmp_path / "clean")
    pd.testing.assert_frame_equal(results(resumed), results(uninterrupted), check_exact=True)
    assert_same_weights(final_weights(out), final_weights(uninterrupted.path))


# ---------------------------------------------------------------- methods and cost accounting

@pytest.mark.parametrize("method", ["emq", "joint", "dedicated"])
def test_methods_train_with_one_pass_per_sample_and_bit(method_runs, method: str) -> None:
    run = method_runs[method]
    m = run.metrics
    epochs = run.config.optim.epochs
    assert sorted(zip(m.epoch, m.bits)) == sorted((e, b) for e in range(epochs) for b in BITS)
    assert (m.sample_passes == N_TRAIN).all()  # the whole training set, once per bit-width per epoch
    assert (m.subset_size == N_TRAIN).all()
    assert (m.teacher_forwards == 0).all()  # recursive distillation reuses the forward of the bit above
    assert (m.selection_forwards == 0).all()
    for b in BITS:
        loss = m[m.bits == b].sort_values("epoch").train_loss.tolist()
        assert loss[-1] < loss[0], (b, loss)
    assert run.final_metrics().set_index("bits").loc[32, "test_accuracy"] > 100 / N_CLASSES + 15
    assert run.cost()["sample_passes"] == epochs * len(BITS) * N_TRAIN

    weights = final_weights(run.path)
    assert len(weights) == (len(BITS) if method == "dedicated" else 1)  # Dedicated: one model per bit
    norms = [mod for mod in run.model(2).modules() if isinstance(mod, MultiBitBatchNorm2d)]
    expected_keys = ["shared"] if method == "emq" else ["2"] if method == "dedicated" else ["32", "4", "2"]
    assert all(list(n.norms) == expected_keys for n in norms)
    assert run.config.model.quant.bias_correction == (method == "emq")


def test_dedicated_models_are_independent(method_runs) -> None:
    run = method_runs["dedicated"]
    w32, w2 = run.model(32).stem.weight, run.model(2).stem.weight
    assert w32.shape == w2.shape and not torch.equal(w32, w2)


def test_emq_coreset_counts(tmp_path) -> None:
    run = train(tmp_path, bits=(2, 32), selection={"rule": "emq-topk", "fraction": 0.5}, training=BITWISE_TRAINING)
    assert run.config.training.loop == "sequential" and run.config.training.teacher == "fp-child"
    m = run.metrics.set_index(["epoch", "bits"])
    per_class = round(0.5 * N_TRAIN / N_CLASSES)
    for (epoch, bits), row in m.iterrows():
        assert row.subset_size == N_CLASSES * per_class
        assert row.sample_passes == N_CLASSES * per_class  # only the bit-width's coreset
        # every low-bit batch also runs the 32-bit child as teacher (no grad)
        assert row.teacher_forwards == (N_CLASSES * per_class if bits != 32 else 0)
        # epoch 0: random subsets (from scratch); from epoch 1 (reselect_every=1): one scoring pass over N
        assert row.selection_forwards == (0 if epoch == 0 else N_TRAIN)
    info = load_json(run.path / "checkpoint.json")
    subsets = load_torch(run.path / info["file"], info["sha256"])["subsets"]
    targets = load_run_data(run.config)[0].targets
    assert sorted(subsets) == [(0, 2), (0, 32)]
    for indices in subsets.values():
        assert len(indices.unique()) == len(indices)
        assert torch.bincount(targets[indices], minlength=N_CLASSES).tolist() == [per_class] * N_CLASSES


# ---------------------------------------------------------------- evaluation

def test_emq_evaluates_every_bit_width(method_runs) -> None:
    run = method_runs["emq"]
    frame = run.evaluate("1-8,32")
    assert frame.bits.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 32]
    assert frame.trained.tolist() == [b in BITS for b in frame.bits]
    assert not frame.recalibrated.any()
    assert frame.loss.map(math.isfinite).all()
    # at the trained bit-widths evaluation reproduces the last epoch's test accuracy
    last = run.final_metrics().set_index("bits")
    for b in BITS:
        row = frame.set_index("bits").loc[b]
        assert row.accuracy == pytest.approx(last.loc[b, "test_accuracy"], abs=1e-9)
        assert row.loss == pytest.approx(last.loc[b, "test_loss"], abs=1e-9)
    pd.testing.assert_frame_equal(run.evaluate("1-8,32"), frame)  # cached


def test_dedicated_evaluates_only_trained_bits(method_runs) -> None:
    frame = method_runs["dedicated"].evaluate("1-8,32")
    assert frame.bits.tolist() == [2, 4, 32]
    assert frame.trained.all()


def test_evaluate_with_recalibration(method_runs) -> None:
    run = method_runs["emq"]
    plain = run.evaluate("1-8,32")
    recalibrated = run.evaluate("1-8,32", recalibrate=True)
    assert recalibrated.bits.tolist() == plain.bits.tolist()
    assert recalibrated.recalibrated.all()
    assert (recalibrated.loss != plain.loss).any()  # the BatchNorm statistics changed
    # the stored run itself is untouched by recalibration
    pd.testing.assert_frame_equal(run.evaluate("1-8,32"), plain)


# ---------------------------------------------------------------- failures

def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch) -> None:
    import emqlib.distill as distill

    calls = {"n": 0}
    soft_cross_entropy = distill.soft_cross_entropy
    batches_per_epoch = N_TRAIN // 32

    def poisoned(logits, teacher):
        calls["n"] += 1
        loss = soft_cross_entropy(logits, teacher)
        return loss * float("nan") if calls["n"] > batches_per_epoch else loss  # NaN from epoch 1 on

    monkeypatch.setattr(distill, "soft_cross_entropy", poisoned)
    config = profile_config("smoke", model={"bits": (2, 32)}, optim={"epochs": 3})
    with pytest.raises(RunStoppedError, match=r"epoch 1\b") as error:
        get_run(config, Runtime(progress=False), root=tmp_path)
    assert "epoch 0" in str(error.value)  # names the checkpoint it kept
    path = tmp_path / config_hash(config)
    assert not (path / "done.json").exists() and not (path / "final.pt").exists()
    info = load_json(path / "checkpoint.json")
    assert info["epoch"] == 0
    state = load_torch(path / info["file"], info["sha256"])  # intact
    assert state["epoch"] == 0 and all(torch.isfinite(v).all() for v in state["learners"][0]["model"].values()
                                       if v.is_floating_point())
    assert pd.read_csv(path / "metrics.csv").epoch.unique().tolist() == [0]


def test_corrupt_checkpoint_is_reported_not_loaded(tmp_path) -> None:
    config = profile_config("smoke", model={"bits": (2, 32)})
    run = get_run(config, Runtime(progress=False), root=tmp_path)
    weights = final_weights(run.path)
    # an intact checkpoint: a run without done.json resumes after its last epoch and finishes alike
    (run.path / "done.json").unlink()
    (run.path / "final.pt").unlink()
    again = get_run(config, Runtime(progress=False), root=tmp_path)
    assert_same_weights(final_weights(again.path), weights)

    (run.path / "done.json").unlink()
    (run.path / "final.pt").unlink()
    checkpoint = run.path / load_json(run.path / "checkpoint.json")["file"]
    data = bytearray(checkpoint.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 8] = bytes(b ^ 0xFF for b in data[middle:middle + 8])
    checkpoint.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError) as error:
        get_run(config, Runtime(progress=False), root=tmp_path)
    assert str(checkpoint) in str(error.value)
    with pytest.raises(CorruptFileError, match="checksum"):
        Trainer(config, run.path, Runtime(progress=False))
    assert not (run.path / "done.json").exists()

    checkpoint.write_bytes(bytes(data[:middle]))  # truncated
    with pytest.raises(CorruptFileError, match=str(checkpoint)):
        get_run(config, Runtime(progress=False), root=tmp_path)


def test_run_folder_of_another_configuration(method_runs, tmp_path) -> None:
    run = method_runs["emq"]
    before = sorted(p.name for p in run.path.iterdir())
    with pytest.raises(IncompatibleRunError, match="seed"):
        get_run(run.config.replace(seed=1), Runtime(progress=False), path=run.path)
    with pytest.raises(IncompatibleRunError, match="method"):
        get_run(run.config.replace(method="joint"), Runtime(progress=False), path=run.path)
    assert sorted(p.name for p in run.path.iterdir()) == before

    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "checkpoint.json").write_text("{}")
    with pytest.raises(IncompatibleRunError, match="config.json"):
        get_run(run.config, Runtime(progress=False), path=stray)


# ---------------------------------------------------------------- two processes, one run

@pytest.mark.slow
def test_two_processes_asking_for_one_run_train_it_once(tmp_path) -> None:
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "emqlib", "train", "--profile", "smoke", "--bits", "2,32", "--no-progress"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=cli_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
    config = profile_config("smoke", model={"bits": (2, 32)})
    first_lines = [out.splitlines()[0] for out, _ in outputs]
    assert first_lines[0] == first_lines[1] == f"run {config_hash(config)} in {cache / config_hash(config)}"
    assert outputs[0][0] == outputs[1][0]  # the same result table
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == [config_hash(config)]
    run = load_run(cache / config_hash(config))
    m = run.metrics
    assert m.epoch.tolist() == [e for e in range(config.optim.epochs) for _ in config.model.bits]
    assert json.loads((run.path / "done.json").read_text())["epochs"] == config.optim.epochs
    final_weights(run.path)  # checksum matches
    info = load_json(run.path / "checkpoint.json")
    assert load_torch(run.path / info["file"], info["sha256"])["epoch"] == config.optim.epochs - 1


# ---------------------------------------------------------------- the learning-rate schedule

def test_the_learning_rate_anneals_per_step_so_short_and_long_runs_end_alike(tmp_path) -> None:
    import math

    lrs = {}
    for epochs in (1, 4):
        run = train(tmp_path / str(epochs), bits=(2, 32), optim={"epochs": epochs})
        m = run.metrics
        steps = int(m.optimizer_steps.iloc[0])  # one learner: the same steps every epoch
        assert steps == math.ceil(N_TRAIN / 32)  # one step per batch of the joint loop
        # the rate of the last step: cosine at (steps - 1) / steps of the epoch, of the last epoch
        last = (epochs - 1 + (steps - 1) / steps) / epochs
        expected = 1e-3 * 0.5 * (1 + math.cos(math.pi * last))
        assert m[m.epoch == epochs - 1].lr.iloc[0] == pytest.approx(expected, rel=1e-9)
        assert run.cost()["optimizer_steps"] == epochs * steps
        lrs[epochs] = run.cost()["final_lr"]
    assert lrs[1] < 1e-4 and lrs[4] < 1e-5  # both anneal (a per-epoch schedule would end the 1-epoch run at 1e-3)


# ---------------------------------------------------------------- starting from the reference

@pytest.mark.parametrize("name,width", [("resnet8", 0.5), ("mobilenetv2", 0.25)])
@pytest.mark.parametrize("bn_mode", ["switchable", "shared"])
def test_a_student_started_from_the_reference_holds_every_weight_of_it(name, width, bn_mode) -> None:
    from emqlib.bits import FULL_PRECISION, set_bits
    from emqlib.harness.build import load_reference_weights, model_for
    from emqlib.harness.config import reference_config
    from emqlib.harness.datasets import DATASET_SHAPES
    from emqlib.harness.studies.common import acs_config

    config = acs_config("smoke", model={"name": name, "width": width, "bn_mode": bn_mode})
    torch.manual_seed(0)
    reference = model_for(reference_config(config))
    with torch.no_grad():  # BatchNorm statistics and affine terms unlike a fresh model's, so a skipped one shows
        for tensor in reference.state_dict().values():
            if tensor.is_floating_point():
                tensor.uniform_(0.5, 1.5)
    student = model_for(config)
    load_reference_weights(student, reference)
    source = reference.state_dict()
    copied = [k for k, v in student.state_dict().items() if any(torch.equal(v, s) for s in source.values())]
    quantizer_state = [k for k in student.state_dict() if "lsq" in k.split(".")]
    assert sorted(copied + quantizer_state) == sorted(student.state_dict())
    _, channels, size = DATASET_SHAPES[config.data.dataset]
    x = torch.randn(4, channels, size, size)
    set_bits(student, FULL_PRECISION)  # the 32-bit path of the plain LSQ weights is the reference's model
    assert torch.allclose(student.eval()(x), reference.eval()(x), rtol=1e-4, atol=1e-4)


def test_a_reference_of_another_architecture_is_refused() -> None:
    from emqlib.harness.build import load_reference_weights, model_for
    from emqlib.harness.config import reference_config
    from emqlib.harness.studies.common import acs_config

    config = acs_config("smoke", model={"name": "mobilenetv2", "width": 0.25})
    other = model_for(reference_config(acs_config("smoke")))
    with pytest.raises(ValueError, match=r"the reference model has no single weight for \d+ of the model's tensors"):
        load_reference_weights(model_for(config), other)
