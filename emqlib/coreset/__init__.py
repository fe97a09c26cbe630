"""EMQ's bit-wise coreset and the rules it is compared with: per-sample scores (:mod:`.scores`), the
selection rules that turn scores into subsets (:mod:`.select`), and the samplers that decide, epoch by
epoch and bit-width by bit-width, which samples are trained on (:mod:`.samplers`)."""

from .samplers import SAMPLERS, Context, Reference, Sampler, Selection, Settings, build_sampler, settings_for
from .scores import BETA_SCHEDULES, acs_beta, acs_score, ds, evs, forgetting_score, grand_last_layer_score, tdds_score
from .select import (ccs_select, check_fraction, class_budgets, equal_budget_epochs, infobatch_prune, kcenter_greedy,
                     moderate_select, pruning_rate, random_subset, rs2_window, score_sample, select, split_part)

__all__ = ["SAMPLERS", "Context", "Reference", "Sampler", "Selection", "Settings", "build_sampler", "settings_for",
           "BETA_SCHEDULES", "acs_beta", "acs_score", "ds", "evs", "forgetting_score", "grand_last_layer_score",
           "tdds_score", "ccs_select", "check_fraction", "class_budgets", "equal_budget_epochs", "infobatch_prune",
           "kcenter_greedy", "moderate_select", "pruning_rate", "random_subset", "rs2_window", "score_sample", "select",
           "split_part"]
