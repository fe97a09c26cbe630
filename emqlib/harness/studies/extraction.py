"""Notebook 08: bit-wise against batch score extraction, static against dynamic subsets, and variants of
EMQ's score (docs/method.md §6.3-§6.4)."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .common import coreset_config, summarize_plan

RECURSIVE_BATCH = {"loop": "batch", "teacher": "recursive", "label_weight": 0.0}
# label: (rule, its settings, other changes); every variant starts from top-k EMQ scores at the profile's R
VARIANTS = {
    "bit-wise, dynamic (EMQ)": ("emq-topk", {}, {}),
    "bit-wise, static": ("emq-topk", {"static": True}, {}),
    "batch extraction, dynamic": ("emq-topk", {}, {"training": RECURSIVE_BATCH}),
    "batch extraction, static": ("emq-topk", {"static": True}, {"training": RECURSIVE_BATCH}),
    "bit-wise, dynamic, ascending bit order": ("emq-topk", {}, {"training": {"bit_order": "ascending"}}),
    "bit-wise, dynamic, GraNd score": ("emq-topk", {"score": "grand"}, {}),
    # started from the reference run's weights, so its scores are informative from the first epoch
    "bit-wise, dynamic, from the FP reference": ("emq-topk", {"warmup_epochs": 0},
                                                 {"training": {"init_from_reference": True}}),
    "bit-wise, random subsets": ("random", {}, {}),
}


def extraction_study(profile: str = "cpu", fraction: float = 0.2, seeds: Sequence[int] = (0,)) -> pd.DataFrame:
    """Bit-wise vs batch score extraction, static vs dynamic subsets, and EMQ-score variants."""
    plan = []
    for seed in seeds:
        for label, (rule, settings, changes) in VARIANTS.items():
            config = coreset_config(profile, rule, fraction, seed, short=True, selection=settings, **changes)
            plan.append((dict(variant=label, seed=seed, fraction=fraction), config))
    return summarize_plan(plan)
