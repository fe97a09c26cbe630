"""Bit-wise coreset sampling in training: when subsets are drawn, from what, and at what cost."""
from __future__ import annotations

import pytest
import torch

from emqlib.bits import set_bits
from emqlib.harness.config import CORESETS, profile_config
from emqlib.coreset import evs, pruning_rate, select
from emqlib.coreset.sampling import CoresetSampler, Reference
from emqlib.data import synthetic_dataset
from emqlib.models import model_for

TRAIN = synthetic_dataset(train=True)
N = len(TRAIN)


def config(coreset: str, **changes):
    """Smoke settings, 25% kept (InfoBatch sets its own share), R = 2, 6 epochs."""
    fraction = 1.0 if coreset == "infobatch" else 0.25
    return profile_config("smoke", **{"method": "emq", "coreset": coreset, "fraction": fraction, "reselect_every": 2,
                                      "epochs": 6, **changes})


def model(seed: int = 0, bits=(2, 32)):
    torch.manual_seed(seed)
    return model_for(config("emq-topk"), bits).eval()


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
    other_bits = sampler.select(0, model(), 32)  # the teacher's outputs are kept
    later = sampler.select(2, model(), 2)
    assert (first.forwards, other_bits.forwards, later.forwards) == (2 * N, N, N)
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
    for name in ("acs", "el2n", "forgetting", "tdds", "kcenter", "moderate"):
        with pytest.raises(ValueError, match="reference"):
            CoresetSampler(config(name), TRAIN, None)


# ---------------------------------------------------------------- free scores, InfoBatch, state

def training_pass(sampler: CoresetSampler, net, bits: int, indices: torch.Tensor) -> torch.Tensor:
    """What the sequential loop does for the sampler: a forward pass on a batch, then observe."""
    with torch.no_grad():
        set_bits(net, bits)
        logits = net(TRAIN.inputs(indices))
    sampler.observe(bits, indices, logits)
    return logits


def test_free_scores_cost_zero_forwards_and_keep_the_last_score_of_samples_not_drawn():
    sampler = CoresetSampler(config("emq-topk", free_scores=True, warmup_epochs=1), TRAIN, None)
    net = model()
    warmup = sampler.select(0, net, 2).indices
    first, second = warmup[: len(warmup) // 2], warmup[len(warmup) // 4:]  # overlapping batches
    training_pass(sampler, net, 2, first)
    with torch.no_grad():
        net.classifier.weight.mul_(-1)
    logits = training_pass(sampler, net, 2, second)
    observed = sampler.observed[2]
    torch.testing.assert_close(observed[second], evs(logits, TRAIN.targets[second]))  # the latest pass wins
    assert torch.isnan(observed).sum() == N - len(warmup)  # samples never trained have no score yet
    # the model is not touched at all: no scoring forward pass
    chosen = sampler.select(1, None, 2)
    assert chosen.forwards == 0
    filled = sampler.scores[2]
    for c in range(TRAIN.num_classes):  # a sample not seen takes its class's mean score
        in_class = TRAIN.targets == c
        unseen, seen = in_class & torch.isnan(observed), in_class & ~torch.isnan(observed)
        assert torch.allclose(filled[unseen], observed[seen].mean().expand(int(unseen.sum())))
    assert torch.equal(chosen.indices, select(filled, 0.25, TRAIN.targets))


def test_free_scores_need_an_observed_pass():
    sampler = CoresetSampler(config("emq-sample", free_scores=True, warmup_epochs=1), TRAIN, None)
    with pytest.raises(RuntimeError, match="observe"):
        sampler.select(1, None, 2)


def test_infobatch_weights_and_full_data_at_the_end():
    sampler = CoresetSampler(config("infobatch", epochs=8, infobatch_prune_prob=0.5), TRAIN, None)
    net, sizes = model(), []
    for epoch in range(8):
        kept = sampler.select(epoch, net, 2).indices
        weights = sampler.loss_weights(2, kept)
        if epoch == 0 or epoch == 7:  # nothing seen yet; annealing: epoch 7 >= 0.875 * 8
            assert torch.equal(kept, torch.arange(N)) and weights.eq(1).all()
        else:
            losses = sampler.observed[2]
            low = losses[kept] < losses.mean()
            assert weights[low].eq(2.0).all() and weights[~low].eq(1.0).all()  # 1 / (1 - r) for the kept low-loss
            assert (losses[kept] >= losses.mean()).sum() == (losses >= losses.mean()).sum()  # high-loss all kept
        training_pass(sampler, net, 2, kept)
        sizes.append(len(kept))
    rate = pruning_rate(sizes, N)
    assert 0.05 < rate < 0.5 * 6 / 8  # at most r x (share below the mean) x (pruning epochs / epochs)
    assert CoresetSampler(config("emq-topk"), TRAIN, None).loss_weights(2, torch.arange(5)) is None


def test_a_resumed_sampler_draws_what_the_uninterrupted_one_draws():
    def run(sampler, epochs):
        net = model()
        for epoch in epochs:
            chosen = sampler.select(epoch, net, 2).indices
            training_pass(sampler, net, 2, chosen)
        return chosen

    for coreset, changes in [("emq-sample", {}), ("emq-ccs", {"free_scores": True, "warmup_epochs": 1}),
                             ("infobatch", {})]:
        whole = run(CoresetSampler(config(coreset, **changes), TRAIN, None), range(4))
        first = CoresetSampler(config(coreset, **changes), TRAIN, None)
        run(first, range(3))
        resumed = CoresetSampler(config(coreset, **changes), TRAIN, None)
        resumed.load_state_dict(first.state_dict())
        assert torch.equal(run(resumed, [3]), whole), coreset
    with pytest.raises(RuntimeError, match="state_dict"):
        CoresetSampler(config("emq-sample"), TRAIN, None).select(3, model(), 2)  # past its scoring epoch


@pytest.mark.parametrize("coreset", [c for c in CORESETS if c != "none"])
def test_smoke_selection_of_every_sampler(coreset):
    """Selection only, with the tiny smoke model: every epoch the schedule asks for, at two bit-widths,
    with training passes observed; exact class budgets (TDDS: global, InfoBatch: none) and costs."""
    changes = {"free_scores": True, "warmup_epochs": 1} if coreset == "emq-ccs" else {}
    sampler = CoresetSampler(config(coreset, **changes), TRAIN, reference())
    net, budget = model(), round(0.25 * N / TRAIN.num_classes)
    for epoch in range(6):
        if not sampler.due(epoch):
            continue
        for bits in (32, 2):
            chosen = sampler.select(epoch, net, bits)
            indices = chosen.indices
            assert indices.unique().numel() == len(indices) and torch.equal(indices, indices.sort().values)
            counts = torch.bincount(TRAIN.targets[indices], minlength=TRAIN.num_classes).tolist()
            if coreset == "tdds":
                assert len(indices) == round(0.25 * N)
            elif coreset != "infobatch":
                assert counts == [budget] * TRAIN.num_classes, (epoch, bits)
            scoring = coreset in ("emq-topk", "emq-sample") and epoch >= 2 and sampler._scoring(epoch)
            if scoring or coreset == "acs":  # ACS pays for the teacher's pass once, at the first bit-width
                assert chosen.forwards == N * (2 if coreset == "acs" and epoch == 0 and bits == 32 else 1)
            elif coreset not in ("el2n", "kcenter", "moderate") or bits == 2:
                assert chosen.forwards == 0, (coreset, epoch, bits)
            training_pass(sampler, net, bits, indices)


def test_infobatch_refuses_to_run_blind():
    sampler = CoresetSampler(config("infobatch"), TRAIN, None)
    sampler.select(0, None, 2)  # epoch 0: every sample, nothing seen yet
    with pytest.raises(RuntimeError, match="observe"):
        sampler.select(1, None, 2)  # without observed losses InfoBatch would silently train on everything
