"""Training runs in worker processes (emqlib.harness.pool): the same runs as training them here, one at a time."""
from __future__ import annotations

import time
from multiprocessing.pool import ThreadPool

import pandas as pd
import pytest
import torch

from emqlib.harness import pool
from emqlib.harness.config import BITWISE_TRAINING, profile_config, reference_config
from emqlib.harness.studies.common import acs_config
from emqlib.harness.runs import get_run, is_done, run_path


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("EMQ_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("EMQ_PROGRESS", "0")
    # one torch thread per worker whatever the machine, as this process (conftest): runs compare exactly
    monkeypatch.setattr(pool, "threads_per_worker", lambda count: 1)
    pool.shutdown()
    yield tmp_path / "runs"
    pool.shutdown()


def test_workers_come_from_the_environment(monkeypatch):
    monkeypatch.delenv(pool.WORKERS_VARIABLE, raising=False)
    assert pool.workers() == 1
    monkeypatch.setenv(pool.WORKERS_VARIABLE, "2")
    assert pool.workers() == 2
    for bad in ("0", "-1", "two", ""):
        monkeypatch.setenv(pool.WORKERS_VARIABLE, bad)
        with pytest.raises(ValueError, match="EMQ_WORKERS=.*whole number >= 1"):
            pool.workers()


def test_longest_runs_are_estimated_longest():
    base = profile_config("smoke", "emq")
    flops = pool.forward_flops(base.model.name, base.model.width, base.data.dataset)
    assert pool.estimated_cost(base) == base.optim.epochs * len(base.model.bits) * flops
    pruned = base.replace(selection={"rule": "random", "fraction": 0.2}, training=BITWISE_TRAINING)
    assert pool.estimated_cost(pruned) == pytest.approx(0.2 * pool.estimated_cost(base))
    assert pool.estimated_cost(base.replace(optim={"epochs": 2 * base.optim.epochs})) == 2 * pool.estimated_cost(base)
    # a deeper model's run is longer at the same epochs, bit-widths and fraction
    deeper = base.replace(model={"name": "resnet20-28px"})
    assert pool.estimated_cost(deeper) > 2 * pool.estimated_cost(base)


def test_forward_flops_are_counted_by_hand_and_leave_the_global_seed_alone():
    # ResNet-8 at width 1 on a 28-pixel grey image, multiply-adds x 2: a stride-2 3x3 stem (1 -> 16 channels,
    # 14 pixels), one block per stage of two 3x3 convolutions (16, 32, 64 channels at 14, 7, 4 pixels), the
    # stride-2 first convolution of stages 2 and 3 reading 16 and 32 channels, their 1x1 shortcuts, and the
    # 64 -> 10 classifier
    macs = (9 * 1 * 16 * 14 ** 2 + 2 * 9 * 16 * 16 * 14 ** 2
            + 9 * 16 * 32 * 7 ** 2 + 9 * 32 * 32 * 7 ** 2 + 16 * 32 * 7 ** 2
            + 9 * 32 * 64 * 4 ** 2 + 9 * 64 * 64 * 4 ** 2 + 32 * 64 * 4 ** 2 + 64 * 10)
    torch.manual_seed(5)
    expected = torch.rand(1)
    pool.forward_flops.cache_clear()
    torch.manual_seed(5)
    assert pool.forward_flops("resnet8", 1.0, "fashion-mnist") == 2 * macs
    assert torch.equal(torch.rand(1), expected)


def test_missing_lists_each_unfinished_run_once(runs_dir):
    a, b = profile_config("smoke", "emq", seed=0), profile_config("smoke", "emq", seed=1)
    assert pool.missing([a, b, a]) == [a, b]
    get_run(a)
    assert pool.missing([a, b, a]) == [b]
    assert pool.train_missing([a, b], count=1) == 0  # one worker: get_run trains them when asked
    assert not is_done(run_path(b))


@pytest.mark.slow
def test_two_workers_train_the_runs_this_process_would(runs_dir, tmp_path, monkeypatch):
    # an ACS run needs the full-precision reference run: the pool trains it first
    configs = [profile_config("smoke", "emq", seed=0), acs_config("smoke", "acs", 0.5, seed=0)]
    assert pool.train_missing(configs, count=2, evaluations=[((1, 2, 32), False), None]) == 2
    assert all(is_done(run_path(c)) for c in [*configs, reference_config(configs[1])])
    in_pool = [pd.read_csv(run_path(c) / "metrics.csv") for c in configs]
    assert len(list(run_path(configs[0]).glob("eval-*.csv"))) == 1  # measured by the worker that trained it
    evaluated_in_pool = get_run(configs[0]).evaluate((1, 2, 32))
    assert torch.get_num_threads() == 1
    monkeypatch.setenv("EMQ_RUNS_DIR", str(tmp_path / "here"))
    here = [pd.read_csv(get_run(c).path / "metrics.csv") for c in configs]
    for a, b in zip(in_pool, here):
        columns = [c for c in a.columns if "seconds" not in c]
        pd.testing.assert_frame_equal(a[columns], b[columns])
    pd.testing.assert_frame_equal(evaluated_in_pool, get_run(configs[0]).evaluate((1, 2, 32)))
    assert pool.train_missing(configs, count=2) == 0  # finished: nothing trained again


def test_runs_that_need_no_reference_train_beside_the_reference(runs_dir, monkeypatch):
    # threads stand in for worker processes and a sleep for training: only the order runs start and end in
    # is checked. The EMQ run needs no reference: it starts while the reference trains; the ACS run waits for it.
    acs, emq = acs_config("smoke", "acs", 0.5, seed=0), profile_config("smoke", "emq", seed=0)
    name = {run_path(c).name: label for c, label in [(acs, "acs"), (emq, "emq"), (reference_config(acs), "reference")]}
    events, evaluated = [], {}

    def train(config, evaluations=()):
        label = name[run_path(config).name]
        events.append(("start", label))
        evaluated[label] = list(evaluations)
        time.sleep(0.5 if label == "reference" else 0.05)
        events.append(("end", label))
        return run_path(config).name

    with ThreadPool(2) as threads:
        monkeypatch.setattr(pool, "_train", train)
        monkeypatch.setattr(pool, "_pool", lambda count: threads)
        assert pool.train_missing([acs, emq], count=2, evaluations=[None, ((2, 32), False)]) == 2
    assert events.index(("start", "emq")) < events.index(("end", "reference"))
    assert events.index(("end", "reference")) < events.index(("start", "acs"))
    assert evaluated == {"reference": [], "emq": [((2, 32), False)], "acs": []}
    with pytest.raises(ValueError, match="evaluations has 1 entries for 2 configurations"):
        pool.train_missing([acs, emq], count=2, evaluations=[None])


@pytest.mark.slow
def test_a_run_failing_in_a_worker_is_named(runs_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("EMQ_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setenv("EMQ_DOWNLOAD", "0")
    configs = [profile_config("smoke", "emq", seed=seed).replace(data={"dataset": "cifar10"}) for seed in (0, 1)]
    names = "|".join(run_path(config).name for config in configs)  # two runs: one alone would train here
    with pytest.raises(RuntimeError, match=f"training run ({names}) in a worker failed: .*cifar"):
        pool.train_missing(configs, count=2)


def test_study_costs_count_each_run_and_its_reference_once_for_the_first_csv(runs_dir, tmp_path, monkeypatch):
    from emqlib.harness.runs import load_run
    from emqlib.harness.studies.costs import study_costs

    monkeypatch.setenv("EMQ_RESULTS_DIR", str(tmp_path / "results"))
    emq = get_run(profile_config("smoke", "emq", seed=0))
    acs = get_run(acs_config("smoke", "acs", 0.5, seed=0))
    reference = load_run(run_path(reference_config(acs.config)))
    (tmp_path / "results").mkdir()
    # shared_bn.csv comes first in notebook order: it pays for the EMQ run; training_cost.csv names it again
    pd.DataFrame({"run": [emq.path.name, emq.path.name]}).to_csv(tmp_path / "results" / "shared_bn.csv")
    pd.DataFrame({"run": [emq.path.name, acs.path.name]}).to_csv(tmp_path / "results" / "training_cost.csv")
    costs = study_costs().set_index("result")
    assert list(costs.index) == ["shared_bn.csv", "training_cost.csv"]
    assert costs.new_runs.to_dict() == {"shared_bn.csv": 1, "training_cost.csv": 2}  # the ACS run and its reference
    minutes = lambda *runs: sum(r.cost()["wall_seconds"] for r in runs) / 60  # noqa: E731
    assert costs.train_minutes["shared_bn.csv"] == pytest.approx(minutes(emq))
    assert costs.train_minutes["training_cost.csv"] == pytest.approx(minutes(acs, reference))
