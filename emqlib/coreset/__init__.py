"""Coreset scores and selection rules for EMQ bit-wise sampling, ACS and the baselines."""

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
from .select import (
    ccs_select,
    check_fraction,
    class_budgets,
    equal_budget_epochs,
    infobatch_prune,
    kcenter_greedy,
    moderate_select,
    pruning_rate,
    random_subset,
    score_sample,
    select,
    split_part,
)

__all__ = [
    "BETA_SCHEDULES",
    "acs_beta",
    "acs_score",
    "ds",
    "evs",
    "forgetting_score",
    "grand_last_layer_score",
    "tdds_score",
    "ccs_select",
    "check_fraction",
    "class_budgets",
    "equal_budget_epochs",
    "infobatch_prune",
    "kcenter_greedy",
    "moderate_select",
    "pruning_rate",
    "random_subset",
    "score_sample",
    "select",
    "split_part",
]
