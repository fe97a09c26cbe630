"""Notebook 07: ACS, EL2N and random selection under symmetric label noise (docs/method.md §10)."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .acs import fraction_study


def label_noise_study(profile: str = "cpu", fractions: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5),
                      noise: float = 0.1, seeds: Sequence[int] = (0,)) -> pd.DataFrame:
    """ACS vs EL2N vs random under symmetric label noise; records the wrong labels kept."""
    return fraction_study(profile, fractions, ("acs", "el2n", "random"), seeds, label_noise=noise, short=True)
