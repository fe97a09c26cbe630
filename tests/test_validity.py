"""The run checks before grading (emqlib/harness/validity.py) on hand-built cases: a chance-level run, a
non-finite or rising loss, and a collapsed child, which a claim then refuses as invalid."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from emqlib.harness import validity


def metrics(final: dict[int, float], losses: dict[int, list[float]] | None = None) -> pd.DataFrame:
    """A run's metrics table: the given final accuracies, and per bit-width its loss per epoch."""
    losses = losses or {b: [2.0, 1.0] for b in final}
    rows = [{"epoch": e, "bits": b, "train_loss": loss, "test_accuracy": final[b] if e == len(seq) - 1 else math.nan}
            for b, seq in losses.items() for e, loss in enumerate(seq)]
    return pd.DataFrame(rows)


def test_a_healthy_run_passes():
    assert validity.run_failures(metrics({32: 82.0, 2: 80.5}), "fashion-mnist") == []


def test_chance_level_is_refused_at_any_trained_bit_width():
    assert validity.floor("fashion-mnist") == pytest.approx(32.5)
    failures = validity.run_failures(metrics({32: 10.0, 2: 10.0}), "fashion-mnist")
    assert failures == ["at chance level (below 32.5%): 32-bit 10.00%, 2-bit 10.00%"]
    assert validity.run_failures(metrics({32: 82.0, 2: 30.0}), "fashion-mnist")[0].endswith("2-bit 30.00%")
    assert validity.run_failures(metrics({32: 50.0}), "synthetic") == []  # 4 classes: the floor is 43.75%


def test_a_loss_that_is_not_finite_or_does_not_fall_is_refused():
    assert validity.run_failures(metrics({32: 82.0}, {32: [2.0, math.nan]}), "fashion-mnist") == \
        ["non-finite training loss"]
    assert validity.run_failures(metrics({32: 82.0}, {32: [1.0, 1.2]}), "fashion-mnist") == \
        ["32-bit training loss did not fall (1.000 -> 1.200)"]
    assert validity.run_failures(metrics({32: 82.0}), "fashion-mnist", finished=False) == \
        ["not finished or not checksummed"]


def table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{"method": m, "seed": s, **{f"acc_{b}": a for b, a in acc.items()}} for m, s, acc in rows])


def test_a_child_far_below_its_siblings_and_its_seeds_collapsed():
    frame = table([("random", 0, {32: 81.9, 4: 82.1, 2: 71.6}),  # 2 bits: 10 below its siblings and its seeds
                   ("random", 1, {32: 81.7, 4: 81.9, 2: 81.2}),
                   ("random", 2, {32: 82.0, 4: 81.8, 2: 81.5})])
    found = validity.collapsed(frame, ["method"])
    assert found.tolist() == ["2-bit 71.60%", "", ""]
    marked = validity.mark(frame.assign(run=["a", "b", "c"]), ["method"])
    assert marked.valid.tolist() == [False, True, True]
    assert validity.invalid_rows(marked, ["method", "seed"]) == \
        ["run a (method random, seed 0): collapsed child: 2-bit 71.60%"]


def test_a_weaker_bit_width_in_every_seed_or_a_weaker_seed_is_not_a_collapse():
    every_seed = table([("emq", s, {32: 82.0, 4: 81.5, 1: 70.0 + s}) for s in range(3)])  # the method's property
    assert validity.collapsed(every_seed, ["method"]).tolist() == ["", "", ""]
    weaker_seed = table([("emq", 0, {32: 76.0, 4: 75.8, 2: 75.5}), ("emq", 1, {32: 82.0, 4: 81.8, 2: 81.5})])
    assert validity.collapsed(weaker_seed, ["method"]).tolist() == ["", ""]
    # arms are compared within themselves: another arm's seeds are not this arm's
    two_arms = table([("a", 0, {32: 82.0, 2: 81.0}), ("b", 0, {32: 82.0, 2: 70.0})])
    assert validity.collapsed(two_arms, ["method"]).tolist() == ["", "2-bit 70.00%"]  # one seed: siblings only


def test_a_run_started_from_the_reference_may_end_at_a_higher_loss():
    # ACS starts from the trained reference and picks harder subsets every epoch: its loss need not fall
    rising = metrics({2: 72.0}, {2: [1.16, 1.45]})
    assert validity.run_failures(rising, "fashion-mnist", from_scratch=False) == []
    assert validity.run_failures(rising, "fashion-mnist")[0].startswith("2-bit training loss did not fall")
