"""Notebook 08: how EMQ's sampler extracts its scores: bit-wise against batch extraction, dynamic against static
subsets, the bit order, the score, a start from the reference run, and random subsets (docs/method.md §6.3-§6.4),
each a change of EMQ's sampler as notebook 04 chose it."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .common import coreset_config, summarize_plan
from .pruning import ARMS

RECURSIVE_BATCH = {"loop": "batch", "teacher": "recursive", "label_weight": 0.0}
# scores from extra forward passes, where a variant cannot read them from the sequential loop's training passes
SCORED = {"free_scores": False}
# label: (changes of the sampler's settings, changes of the run); None: the rule itself changes to random
VARIANTS = {
    "bit-wise, dynamic (EMQ's sampler)": ({}, {}),
    "bit-wise, static": ({"static": True}, {}),
    "batch extraction, dynamic": (SCORED, {"training": RECURSIVE_BATCH}),
    "batch extraction, static": ({**SCORED, "static": True}, {"training": RECURSIVE_BATCH}),
    "bit-wise, dynamic, ascending bit order": ({}, {"training": {"bit_order": "ascending"}}),
    "bit-wise, dynamic, GraNd score": ({**SCORED, "score": "grand"}, {}),
    # started from the reference run's weights, so its scores are informative from the first epoch
    "bit-wise, dynamic, from the FP reference": ({**SCORED, "warmup_epochs": 0},
                                                 {"training": {"init_from_reference": True}}),
    "bit-wise, random subsets": (None, {}),
}


def variant_settings(base: dict, changes: dict) -> dict:
    """The sampler's settings ``base`` with a variant's ``changes``; free scores re-score every epoch, so a variant
    that scores with forward passes instead does so every R epochs of the profile."""
    settings = {**base, **changes}
    if base.get("free_scores") and changes.get("free_scores") is False:
        settings.pop("reselect_every", None)
    return settings


def extraction_study(profile: str, sampler: str, fraction: float = 0.2, seeds: Sequence[int] = (0,)) -> pd.DataFrame:
    """Each variant of EMQ's sampler ``sampler`` (a label of notebook 04's designs) on the short schedule."""
    rule, base = ARMS[sampler]
    plan = []
    for seed in seeds:
        for label, (settings, changes) in VARIANTS.items():
            chosen_rule, chosen = ("random", {}) if settings is None else (rule, variant_settings(base, settings))
            config = coreset_config(profile, chosen_rule, fraction, seed, short=True, selection=chosen, **changes)
            plan.append((dict(variant=label, sampler=sampler, seed=seed, fraction=fraction), config))
    return summarize_plan(plan, arm=["variant"])
