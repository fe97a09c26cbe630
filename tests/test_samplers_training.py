"""Every coreset sampler inside the trainer (smoke profile): it trains, its selection cost is
counted (free scores: none), InfoBatch weights the kept low-loss samples, a validation split
replaces the test set, and a run interrupted mid-way resumes to the same numbers."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from emqlib.harness.build import Runtime, load_run_data
from emqlib.harness.config import BITWISE_TRAINING, profile_config
from emqlib.harness.runs import get_run
from emqlib.harness.trainer import Trainer

BITS = (32, 2)
SAMPLERS = {
    "random": dict(rule="random", fraction=0.5),
    "random-once": dict(rule="random-once", fraction=0.5),
    "rs2": dict(rule="rs2", fraction=0.5),
    "emq-topk": dict(rule="emq-topk", fraction=0.5, warmup_epochs=1),
    "emq-sample": dict(rule="emq-sample", fraction=0.5, warmup_epochs=1),
    "emq-ccs": dict(rule="emq-ccs", fraction=0.5, warmup_epochs=1, strata=4),
    "emq-sample, free scores": dict(rule="emq-sample", fraction=0.5, warmup_epochs=1, free_scores=True),
    "tdds-rescored": dict(rule="tdds-rescored", fraction=0.5, warmup_epochs=2),
    "infobatch": dict(rule="infobatch"),
}


def smoke(selection: dict | None = None, epochs: int = 3, **changes):
    """EMQ at 32/2 bits on the smoke profile; with a selection rule, in EMQ's bit-wise loop."""
    coreset = {"selection": selection, "training": BITWISE_TRAINING} if selection else {}
    return profile_config("smoke", "emq", model={"bits": BITS}, optim={"epochs": epochs}, **coreset, **changes)


def trained(root: Path, **changes):
    return get_run(smoke(**changes), Runtime(progress=False), root=root)


@pytest.fixture(scope="module")
def sampler_runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("runs")
    return {name: trained(root, selection=selection) for name, selection in SAMPLERS.items()}


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_trains_with_finite_metrics(sampler_runs, name: str) -> None:
    m = sampler_runs[name].metrics
    assert sorted(m.bits.unique()) == [2, 32]
    assert m.train_loss.notna().all() and (m.train_loss < 1e3).all()
    final = sampler_runs[name].final_metrics()
    assert final.test_accuracy.notna().all()


@pytest.mark.parametrize("name", ["random", "random-once", "rs2", "emq-topk", "emq-sample", "emq-ccs", "tdds-rescored"])
def test_fixed_budget_samplers_train_their_fraction_at_every_bit_width(sampler_runs, name: str) -> None:
    m = sampler_runs[name].metrics
    n = len(load_run_data(sampler_runs[name].config)[0])
    assert (m.subset_size == n // 2).all()
    assert (m.sample_passes == n // 2).all()  # one pass over its subset per epoch and bit-width


def test_scoring_samplers_pay_scoring_forwards_and_free_scores_pay_none(sampler_runs) -> None:
    n = len(load_run_data(sampler_runs["emq-sample"].config)[0])
    scored = sampler_runs["emq-sample"].metrics
    # warm-up epoch 0 on random subsets, scored once at epoch 1 (R = 1 at smoke: again at 2)
    assert scored[scored.epoch == 0].selection_forwards.sum() == 0
    assert scored[scored.epoch == 1].selection_forwards.tolist() == [n, n]
    free = sampler_runs["emq-sample, free scores"].metrics
    assert (free.selection_forwards == 0).all()
    assert free.sample_passes.sum() == scored.sample_passes.sum()


def test_random_is_redrawn_every_epoch_and_random_once_is_not(tmp_path) -> None:
    def subsets(coreset):
        trainer = Trainer(smoke({"rule": coreset, "fraction": 0.5}), tmp_path / coreset, Runtime(progress=False))
        drawn = []
        for epoch in range(2):
            trainer.epoch(epoch)
            drawn.append(trainer.subsets[(0, 2)].clone())
        return drawn
    again, once = subsets("random"), subsets("random-once")
    assert not torch.equal(again[0], again[1])
    assert torch.equal(once[0], once[1])


def test_infobatch_prunes_below_the_mean_loss_and_trains_full_data_at_the_end(tmp_path) -> None:
    run = trained(tmp_path, selection={"rule": "infobatch"}, epochs=8)
    m = run.metrics
    n = len(load_run_data(run.config)[0])
    early, last = m[m.epoch < 7], m[m.epoch == 7]
    assert (early[early.epoch >= 1].subset_size < n).all()  # losses seen at epoch 0 decide from epoch 1 on
    assert (last.subset_size == n).all()  # the last 12.5% of epochs on the full data


def test_the_validation_split_is_held_out_of_the_training_images(tmp_path) -> None:
    train, held_out = load_run_data(smoke(), "validation")
    _, test = load_run_data(smoke())
    assert torch.bincount(held_out.targets, minlength=train.num_classes).tolist() == [8] * train.num_classes
    # held-out training images: none is trained on, none is a test image
    as_rows = lambda images: {bytes(row.numpy()) for row in images.flatten(1)}  # noqa: E731
    validation = as_rows(held_out.images)
    assert not validation & as_rows(train.images) and not validation & as_rows(test.images)


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("name", ["emq-sample, free scores", "infobatch", "tdds-rescored"])
def test_interrupted_run_resumes_to_the_same_numbers(tmp_path, monkeypatch, name: str) -> None:
    config = smoke(SAMPLERS[name], epochs=4)
    whole = Trainer(config, tmp_path / "whole", Runtime(progress=False)).run()

    original = Trainer.epoch

    def stop_at_two(self, epoch):
        if epoch == 2:
            raise Interrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "epoch", stop_at_two)
    with pytest.raises(Interrupt):
        Trainer(config, tmp_path / "cut", Runtime(progress=False)).run()
    monkeypatch.setattr(Trainer, "epoch", original)
    resumed = Trainer(config, tmp_path / "cut", Runtime(progress=False))
    assert resumed.start_epoch == 2
    rows = resumed.run()
    drop = [c for c in pd.DataFrame(whole).columns if c.endswith("_seconds")]
    pd.testing.assert_frame_equal(pd.DataFrame(rows).drop(columns=drop), pd.DataFrame(whole).drop(columns=drop),
                                  check_exact=True)
