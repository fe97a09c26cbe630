"""Notebook 07: ACS, EL2N and random selection (drawn once, as in ACS's table, and re-drawn every epoch) under
symmetric label noise (docs/method.md §10)."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .acs import RANDOM, fraction_study


def label_noise_study(profile: str = "cpu", fractions: Sequence[float] = (0.3, 0.4, 0.5), noise: float = 0.1,
                      seeds: Sequence[int] = (0,), short: bool = True,
                      methods: Sequence[str] = ("acs", "el2n", *RANDOM)) -> pd.DataFrame:
    """ACS vs EL2N vs random under symmetric label noise, with full data; records the wrong labels kept.
    ``short``: the profile's short schedule (``False``: the full one, to check the effects' signs)."""
    return fraction_study(profile, fractions, methods, seeds, label_noise=noise, short=short)
