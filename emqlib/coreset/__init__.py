"""Coreset scores and selection rules for EMQ bit-wise sampling, ACS and the baselines (SPEC 6-8)."""

from .scores import (
    BETA_SCHEDULES,
    acs_beta,
    acs_score,
    ds,
    evs,
    forgetting_score,
    grand_last_layer_score,
    tdds_score,
)
from .select import check_fraction, class_budgets, kcenter_greedy, moderate_select, random_subset, select

__all__ = [
    "BETA_SCHEDULES",
    "acs_beta",
    "acs_score",
    "ds",
    "evs",
    "forgetting_score",
    "grand_last_layer_score",
    "tdds_score",
    "check_fraction",
    "class_budgets",
    "kcenter_greedy",
    "moderate_select",
    "random_subset",
    "select",
]
