"""Bit-wise coreset sampling in training: when subsets are drawn, from what, and at what cost."""
from __future__ import annotations

import pytest
import torch

from emqlib.config import profile_config
from emqlib.coreset.sampling import CoresetSampler, Reference
from emqlib.data import synthetic_dataset
from emqlib.train import build_run_model

TRAIN = synthetic_dataset(train=True)
N = len(TRAIN)


def config(coreset: str, **changes):
    """Smoke settings, 25% kept (InfoBatch sets its own share), R = 2, 6 epochs."""
    fraction = 1.0 if coreset == "infobatch" else 0.25
    return profile_config("smoke", **{"method": "emq", "coreset": coreset, "fraction": fraction, "reselect_every": 2,
                                      "epochs": 6, **changes})


def model(seed: int = 0, bits=(2, 32)):
    torch.manual_seed(seed)
    return build_run_model(config("emq-topk"), bits).eval()


def reference(seed: int = 1) -> Reference:
    trajectory = torch.softmax(torch.randn(4, N, TRAIN.num_classes, generator=torch.Generator().manual_seed(seed)), -1)
    return Reference(model(seed, bits=(32,)), trajectory)


def test_schedules_of_each_sampler():
    def due(coreset, **changes):
        sampler = CoresetSampler(config(coreset, **changes), TRAIN, reference())
        return [e for e in range(6) if sampler.due(e)]

    # emq-topk: random warm-up subsets re-drawn every epoch for W = R = 2 epochs, then scored every R
    assert due("emq-topk") == [0, 1, 2, 4]
    assert due("emq-topk", static=True) == [0, 1, 2]
    assert due("emq-topk", warmup_epochs=3) == [0, 1, 2, 3, 5]
    assert due("emq-topk", init_from_reference=True) == [0, 2, 4]  # W = 0: scored from the start
    for redrawn in ("random", "emq-sample", "emq-ccs"):
        assert due(redrawn) == list(range(6)), redrawn
    assert due("infobatch") == list(range(6))
    assert due("acs") == [0, 2, 4] and due("acs", static=True) == [0]
    for once in ("random-once", "el2n", "tdds", "forgetting", "kcenter", "moderate"):
        assert due(once) == [0], once
    assert not any(CoresetSampler(profile_config("smoke"), TRAIN, None).due(e) for e in range(6))


def test_scoring_epochs_of_the_emq_samplers():
    sampler = CoresetSampler(config("emq-sample", warmup_epochs=1), TRAIN, None)
    assert [e for e in range(6) if sampler._scoring(e)] == [1, 3, 5]
    static = CoresetSampler(config("emq-sample", warmup_epochs=1, static=True), TRAIN, None)
    assert [e for e in range(6) if static._scoring(e)] == [1]


def test_same_seed_same_subsets_other_seed_other_subsets():
    first = CoresetSampler(config("random"), TRAIN, None).select(0, model(), 2).indices
    again = CoresetSampler(config("random"), TRAIN, None).select(0, model(), 2).indices
    other = CoresetSampler(config("random", seed=1), TRAIN, None).select(0, model(), 2).indices
    assert torch.equal(first, again) and not torch.equal(first, other)
    # each bit-width draws its own subset
    assert not torch.equal(first, CoresetSampler(config("random"), TRAIN, None).select(0, model(), 32).indices)


def test_emq_topk_scores_the_current_model_at_each_reselection():
    sampler = CoresetSampler(config("emq-topk"), TRAIN, None)
    start = sampler.select(0, model(), 2)
    assert start.forwards == 0  # warm-up: random subsets
    net = model()
    scored = sampler.select(2, net, 2)
    assert scored.forwards == N  # one forward pass over the training set at that bit-width
    assert torch.equal(sampler.select(2, net, 2).indices, scored.indices)  # same model, same scores
    with torch.no_grad():
        net.classifier.weight.mul_(-1)  # the scores change ...
    assert not torch.equal(sampler.select(4, net, 2).indices, scored.indices)  # ... and so does the subset


def test_acs_pays_for_the_teacher_once_and_keeps_class_balance():
    sampler = CoresetSampler(config("acs"), TRAIN, reference())
    first = sampler.select(0, model(), 2)
    later = sampler.select(2, model(), 2)
    assert (first.forwards, later.forwards) == (2 * N, N)
    counts = torch.bincount(TRAIN.targets[later.indices], minlength=TRAIN.num_classes)
    assert counts.tolist() == [round(0.25 * N / TRAIN.num_classes)] * TRAIN.num_classes


def test_reference_scored_baselines_select_once_and_share_the_subset_across_bits():
    for name, forwards in [("el2n", N), ("kcenter", N), ("moderate", N), ("tdds", 0), ("forgetting", 0)]:
        sampler = CoresetSampler(config(name), TRAIN, reference())
        first = sampler.select(0, model(), 2)
        other_bits = sampler.select(0, model(), 32)
        assert first.forwards == forwards and other_bits.forwards == 0, name
        assert torch.equal(first.indices, other_bits.indices), name
    tdds = CoresetSampler(config("tdds"), TRAIN, reference()).select(0, model(), 2).indices
    assert len(tdds) == round(0.25 * N)  # TDDS prunes globally, not per class


def test_baselines_that_need_the_reference_refuse_to_run_without_it():
    with pytest.raises(ValueError, match="reference"):
        CoresetSampler(config("tdds"), TRAIN, None)
