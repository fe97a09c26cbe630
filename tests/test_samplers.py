"""The samplers (emqlib/coreset/samplers.py): when each rule draws, from what, at what cost, and that a
resumed sampler draws what the uninterrupted one draws."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from emqlib.bits import set_bits
from emqlib.coreset import evs, select, split_part
from emqlib.coreset.samplers import SAMPLERS, Context, Reference, build_sampler, settings_for
from emqlib.harness.build import model_for
from emqlib.harness.config import profile_config
from emqlib.harness.cost import pruning_rate
from emqlib.harness.datasets import synthetic_dataset
from emqlib.seeding import generator

TRAIN = synthetic_dataset(train=True)
N = len(TRAIN)
EPOCHS = 6


def settings(rule: str, **changes):
    """25% kept (InfoBatch sets its own share), R = W = 2 where the rule has them."""
    names = {f.name for f in dataclasses.fields(SAMPLERS[rule].Settings)}
    defaults = {"fraction": 1.0 if rule in ("infobatch", "none") else 0.25}
    defaults.update({name: 2 for name in ("reselect_every", "warmup_epochs") if name in names})
    return settings_for(rule, **{**defaults, **changes})


def sampler(rule: str, reference_run: Reference | None = None, seed: int = 0, epochs: int = EPOCHS, **changes):
    return build_sampler(settings(rule, **changes), Context(TRAIN, seed, epochs, reference=reference_run))


def model(seed: int = 0, bits=(2, 32)):
    torch.manual_seed(seed)
    return model_for(profile_config("smoke"), bits).eval()


def reference(seed: int = 1) -> Reference:
    trajectory = torch.softmax(torch.randn(4, N, TRAIN.num_classes, generator=torch.Generator().manual_seed(seed)), -1)
    return Reference(model(seed, bits=(32,)), trajectory)


def test_schedules_of_each_sampler():
    def due(rule, **changes):
        drawn = sampler(rule, reference(), **changes)
        return [e for e in range(EPOCHS) if drawn.due(e)]

    # emq-topk: random warm-up subsets re-drawn every epoch for W = R = 2 epochs, then scored every R
    assert due("emq-topk") == [0, 1, 2, 4]
    assert due("emq-topk", static=True) == [0, 1, 2]
    assert due("emq-topk", warmup_epochs=3) == [0, 1, 2, 3, 5]
    assert due("emq-topk", warmup_epochs=0) == [0, 2, 4]  # W = 0 (started from the reference): scored at once
    for redrawn in ("random", "emq-sample", "emq-ccs", "rs2", "infobatch", "tdds-rescored"):
        assert due(redrawn) == list(range(EPOCHS)), redrawn
    assert due("acs") == [0, 2, 4] and due("acs", static=True) == [0]
    for once in ("random-once", "el2n", "tdds", "forgetting", "kcenter", "moderate"):
        assert due(once) == [0], once
    assert not any(sampler("none").due(e) for e in range(EPOCHS))


def test_scoring_epochs_of_the_emq_samplers():
    dynamic = sampler("emq-sample", warmup_epochs=1)
    assert [e for e in range(EPOCHS) if dynamic.scoring(e)] == [1, 3, 5]
    static = sampler("emq-sample", warmup_epochs=1, static=True)
    assert [e for e in range(EPOCHS) if static.scoring(e)] == [1]


def test_same_seed_same_subsets_other_seed_other_subsets():
    first = sampler("random").select(0, model(), 2).indices
    again = sampler("random").select(0, model(), 2).indices
    other = sampler("random", seed=1).select(0, model(), 2).indices
    assert torch.equal(first, again) and not torch.equal(first, other)
    # each bit-width draws its own subset
    assert not torch.equal(first, sampler("random").select(0, model(), 32).indices)


def test_emq_topk_scores_the_current_model_at_each_reselection():
    topk = sampler("emq-topk")
    start = topk.select(0, model(), 2)
    assert start.forwards == 0  # warm-up: random subsets
    net = model()
    scored = topk.select(2, net, 2)
    assert scored.forwards == N  # one forward pass over the training set at that bit-width
    assert torch.equal(topk.select(2, net, 2).indices, scored.indices)  # same model, same scores
    with torch.no_grad():
        net.classifier.weight.mul_(-1)  # the scores change ...
    assert not torch.equal(topk.select(4, net, 2).indices, scored.indices)  # ... and so does the subset


def test_acs_pays_for_the_teacher_once_and_keeps_class_balance():
    acs = sampler("acs", reference())
    first = acs.select(0, model(), 2)
    other_bits = acs.select(0, model(), 32)  # the teacher's outputs are kept
    later = acs.select(2, model(), 2)
    assert (first.forwards, other_bits.forwards, later.forwards) == (2 * N, N, N)
    counts = torch.bincount(TRAIN.targets[later.indices], minlength=TRAIN.num_classes)
    assert counts.tolist() == [round(0.25 * N / TRAIN.num_classes)] * TRAIN.num_classes


def test_reference_scored_baselines_select_once_and_share_the_subset_across_bits():
    for name, forwards in [("el2n", N), ("kcenter", N), ("moderate", N), ("tdds", 0), ("forgetting", 0)]:
        baseline = sampler(name, reference())
        first = baseline.select(0, model(), 2)
        other_bits = baseline.select(0, model(), 32)
        assert first.forwards == forwards and other_bits.forwards == 0, name
        assert torch.equal(first.indices, other_bits.indices), name
    budget = [round(0.25 * N / TRAIN.num_classes)] * TRAIN.num_classes
    for name in ("tdds", "el2n"):  # class-balanced by default; the global top-k of TDDS's code on request
        balanced = sampler(name, reference()).select(0, model(), 2).indices
        assert torch.bincount(TRAIN.targets[balanced]).tolist() == budget, name
        pooled = sampler(name, reference(), class_balanced=False).select(0, model(), 2).indices
        assert len(pooled) == round(0.25 * N), name


def test_baselines_that_need_the_reference_refuse_to_run_without_it():
    for name in ("acs", "el2n", "forgetting", "tdds", "kcenter", "moderate"):
        with pytest.raises(ValueError, match="reference"):
            sampler(name)


# ---------------------------------------------------------------- free scores, InfoBatch, state

def training_pass(drawn, net, bits: int, indices: torch.Tensor) -> torch.Tensor:
    """What the sequential loop does for the sampler: a forward pass on a batch, then observe."""
    with torch.no_grad():
        set_bits(net, bits)
        logits = net(TRAIN.inputs(indices))
    drawn.observe(bits, indices, logits)
    return logits


def test_free_scores_cost_zero_forwards_and_keep_the_last_score_of_samples_not_drawn():
    free = sampler("emq-topk", free_scores=True, warmup_epochs=1)
    net = model()
    warmup = free.select(0, net, 2).indices
    first, second = warmup[: len(warmup) // 2], warmup[len(warmup) // 4:]  # overlapping batches
    training_pass(free, net, 2, first)
    with torch.no_grad():
        net.classifier.weight.mul_(-1)
    logits = training_pass(free, net, 2, second)
    observed = free.observed[2]
    torch.testing.assert_close(observed[second], evs(logits, TRAIN.targets[second]))  # the latest pass wins
    assert torch.isnan(observed).sum() == N - len(warmup)  # samples never trained have no score yet
    # the model is not touched at all: no scoring forward pass
    chosen = free.select(1, None, 2)
    assert chosen.forwards == 0
    filled = free.scores[2]
    for c in range(TRAIN.num_classes):  # a sample not seen takes its class's mean score
        in_class = TRAIN.targets == c
        unseen, seen = in_class & torch.isnan(observed), in_class & ~torch.isnan(observed)
        assert torch.allclose(filled[unseen], observed[seen].mean().expand(int(unseen.sum())))
    assert torch.equal(chosen.indices, select(filled, 0.25, TRAIN.targets))


def test_free_scores_need_an_observed_pass():
    with pytest.raises(RuntimeError, match="observe"):
        sampler("emq-sample", free_scores=True, warmup_epochs=1).select(1, None, 2)


def test_infobatch_weights_and_full_data_at_the_end():
    infobatch = sampler("infobatch", epochs=8, prune_prob=0.5)
    net, sizes = model(), []
    for epoch in range(8):
        kept = infobatch.select(epoch, net, 2).indices
        weights = infobatch.loss_weights(2, kept)
        if epoch == 0 or epoch == 7:  # nothing seen yet; annealing: epoch 7 >= 0.875 * 8
            assert torch.equal(kept, torch.arange(N)) and weights.eq(1).all()
        else:
            losses = infobatch.observed[2]
            low = losses[kept] < losses.mean()
            assert weights[low].eq(2.0).all() and weights[~low].eq(1.0).all()  # 1 / (1 - r) for the kept low-loss
            assert (losses[kept] >= losses.mean()).sum() == (losses >= losses.mean()).sum()  # high-loss all kept
        training_pass(infobatch, net, 2, kept)
        sizes.append(len(kept))
    rate = pruning_rate(sizes, N)
    assert 0.05 < rate < 0.5 * 6 / 8  # at most r x (share below the mean) x (pruning epochs / epochs)
    assert sampler("emq-topk").loss_weights(2, torch.arange(5)) is None


def test_a_resumed_sampler_draws_what_the_uninterrupted_one_draws():
    def run(drawn, epochs):
        net = model()
        for epoch in epochs:
            chosen = drawn.select(epoch, net, 2).indices
            training_pass(drawn, net, 2, chosen)
        return chosen

    for rule, changes in [("emq-sample", {}), ("emq-ccs", {"free_scores": True, "warmup_epochs": 1}),
                          ("infobatch", {}), ("tdds-rescored", {"reselect_every": 1})]:
        whole = run(sampler(rule, **changes), range(4))
        first = sampler(rule, **changes)
        run(first, range(3))
        resumed = sampler(rule, **changes)
        resumed.load_state_dict(first.state_dict())
        assert torch.equal(run(resumed, [3]), whole), rule
    with pytest.raises(RuntimeError, match="state_dict"):
        sampler("emq-sample").select(3, model(), 2)  # past its scoring epoch


@pytest.mark.parametrize("coreset", sorted(set(SAMPLERS) - {"none", "replay"}))
def test_smoke_selection_of_every_sampler(coreset):
    """Selection only, with the tiny smoke model: every epoch the schedule asks for, at two bit-widths,
    with training passes observed; exact class budgets (InfoBatch: none) and costs."""
    changes = {"free_scores": True, "warmup_epochs": 1} if coreset == "emq-ccs" else {}
    drawn = sampler(coreset, reference(), **changes)
    net, budget = model(), round(0.25 * N / TRAIN.num_classes)
    for epoch in range(EPOCHS):
        if not drawn.due(epoch):
            continue
        for bits in (32, 2):
            chosen = drawn.select(epoch, net, bits)
            indices = chosen.indices
            assert indices.unique().numel() == len(indices) and torch.equal(indices, indices.sort().values)
            counts = torch.bincount(TRAIN.targets[indices], minlength=TRAIN.num_classes).tolist()
            if coreset != "infobatch":
                assert counts == [budget] * TRAIN.num_classes, (epoch, bits)
            scoring = coreset in ("emq-topk", "emq-sample") and epoch >= 2 and drawn.scoring(epoch)
            if scoring or coreset in ("acs", "tdds-rescored"):  # ACS pays for the teacher's pass once
                assert chosen.forwards == N * (2 if coreset == "acs" and epoch == 0 and bits == 32 else 1)
            elif coreset not in ("el2n", "kcenter", "moderate") or bits == 2:
                assert chosen.forwards == 0, (coreset, epoch, bits)
            training_pass(drawn, net, bits, indices)


def test_infobatch_refuses_to_run_blind():
    infobatch = sampler("infobatch")
    infobatch.select(0, None, 2)  # epoch 0: every sample, nothing seen yet
    with pytest.raises(RuntimeError, match="observe"):
        infobatch.select(1, None, 2)  # without observed losses InfoBatch would silently train on everything


# ---------------------------------------------------------------- RS2, TDDS re-scored, the registry

def test_rs2_sees_every_sample_once_per_pass_and_reshuffles_between_passes():
    rs2 = sampler("rs2")  # 25% kept: a pass is 4 epochs
    per_class = N // TRAIN.num_classes
    passes = [[rs2.select(e, None, 2).indices for e in range(p * 4, p * 4 + 4)] for p in range(2)]
    for windows in passes:
        seen = torch.cat(windows)
        assert torch.equal(seen.sort().values, torch.arange(N))  # every sample once in the pass, none twice
        for w in windows:
            assert torch.bincount(TRAIN.targets[w]).tolist() == [per_class // 4] * TRAIN.num_classes
    assert not torch.equal(passes[0][0], passes[1][0])  # a new order for the second pass
    assert not torch.equal(passes[0][0], sampler("rs2").select(0, None, 32).indices)  # each bit-width its own
    # without reshuffling: ACS's full-coverage split, one order for the run
    split = sampler("rs2", reshuffle=False)
    for epoch in range(EPOCHS):
        assert torch.equal(split.select(epoch, None, 2).indices,
                           split_part(TRAIN.targets, 0.25, epoch, generator(0, "split", 2)))


def test_rs2_tops_up_a_short_last_window_from_its_pass():
    rs2 = sampler("rs2", fraction=0.3)  # 14 per class of 48: windows of 14, 14, 14 and 6 topped up to 14
    windows = [rs2.select(e, None, 2).indices for e in range(4)]
    for w in windows:
        assert w.unique().numel() == len(w) == TRAIN.num_classes * round(0.3 * N / TRAIN.num_classes)
    assert torch.equal(torch.cat(windows).unique(), torch.arange(N))


def test_tdds_rescored_records_every_epoch_and_scores_the_recorded_dynamics():
    tdds = sampler("tdds-rescored", reselect_every=2, warmup_epochs=2, window=3)
    net = model()
    chosen = [tdds.select(e, net, 2) for e in range(3)]
    assert [c.forwards for c in chosen] == [N, N, N]  # a recording forward pass every epoch
    assert len(tdds.outputs[2]) == 3
    expected = select(tdds.scores[2], 0.25, TRAIN.targets)
    assert torch.equal(chosen[2].indices, expected)  # top TDDS per class, scored at epoch W = 2
    assert torch.equal(tdds.select(3, net, 2).indices, expected)  # kept until the next scoring
    for _ in range(3):
        tdds.select(4, net, 2)
    assert len(tdds.outputs[2]) == 3  # only the last `window` outputs are kept


def test_every_rule_is_registered_with_its_own_settings_and_refuses_unknown_ones():
    for name, cls in SAMPLERS.items():
        assert cls.name == name and dataclasses.is_dataclass(cls.Settings)
    with pytest.raises(ValueError, match="has no settings"):
        settings_for("random", tau=0.5)
    with pytest.raises(ValueError, match="unknown selection rule"):
        settings_for("bogus")
    with pytest.raises(ValueError, match="fraction 1.0 keeps every sample"):
        settings_for("emq-topk", fraction=1.0)
    with pytest.raises(TypeError, match="takes ImportanceSettings"):
        SAMPLERS["emq-topk"].Settings(rule="emq-sample", fraction=0.5)
    with pytest.raises(ValueError, match="warmup_epochs >= 2"):
        settings_for("tdds-rescored", fraction=0.5, warmup_epochs=1)
