"""Compiled runs share their process's graphs: a run's numbers do not depend on what its process trained before."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from emqlib.harness.build import Runtime, compile_setting

pytest.importorskip("torch._inductor")

# trains the runs of the given seeds one after another in this process, compiled; prints what each produced
TRAIN_IN_ORDER = """
import json, sys
from torch._dynamo.utils import counters
from emqlib.harness.build import Runtime
from emqlib.harness.config import profile_config
from emqlib.harness.runs import get_run
out = {}
for seed in map(int, sys.argv[1:]):
    config = profile_config("smoke", "emq", seed=seed, model={"bits": (2,)}, data={"train_per_class": 20},
                            optim={"epochs": 2})
    run = get_run(config, Runtime(threads=1, progress=False, compile=True))
    done = json.loads((run.path / "done.json").read_text())
    out[seed] = {"final": done["final_sha256"], "graphs": counters["stats"]["unique_graphs"],
                 "trained_with": done["trained_with"]}
print(json.dumps(out))
"""


def train_in_order(seeds: list[int], runs_dir) -> dict:
    env = {**os.environ, "EMQ_RUNS_DIR": str(runs_dir), "OMP_NUM_THREADS": "1", "EMQ_PROGRESS": "0"}
    done = subprocess.run([sys.executable, "-c", TRAIN_IN_ORDER, *map(str, seeds)], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_compiled_run_after_another_reuses_its_graphs_and_computes_the_same(tmp_path) -> None:
    # 80 samples in batches of 32: an epoch ends with a batch of 16, the shape change that would turn later
    # batches to a dynamic graph (other kernels) if shapes were not kept static
    alone = train_in_order([0], tmp_path / "alone")
    after = train_in_order([1, 0], tmp_path / "after")
    assert after["0"]["final"] == alone["0"]["final"]  # bit-identical, whatever the process compiled before
    assert after["0"]["graphs"] == after["1"]["graphs"] > 0  # the second run compiled nothing new
    assert alone["0"]["trained_with"] == {"device": "cpu", "compiled": True}


def test_compiling_is_on_where_it_was_measured_to_pay(monkeypatch) -> None:
    monkeypatch.delenv("EMQ_COMPILE", raising=False)
    assert not Runtime(device="cpu").compiles() and Runtime(device="cuda").compiles()
    assert Runtime(device="cpu", compile=True).compiles() and not Runtime(device="cuda", compile=False).compiles()
    monkeypatch.setenv("EMQ_COMPILE", "1")
    assert Runtime(device="cpu").compiles()
    monkeypatch.setenv("EMQ_COMPILE", "0")
    assert not Runtime(device="cuda").compiles()
    assert compile_setting(" Auto ") is None
    with pytest.raises(ValueError, match="EMQ_COMPILE='yes': set it to 1 .compile., 0 .eager. or auto"):
        compile_setting("yes")
