"""EMQ's bit-wise coreset and ACS: per-sample scores (:mod:`.scores`), the selection rules that turn scores
into subsets (:mod:`.select`), and the samplers that decide, epoch by epoch and bit-width by bit-width, which
samples are trained on (:mod:`.samplers`). The prior methods the papers compare with (EL2N, forgetting, TDDS,
k-center, Moderate, InfoBatch) are comparison arms of the studies: :mod:`emqlib.harness.baselines`."""

from .samplers import SAMPLERS, Context, Reference, Sampler, Selection, Settings, build_sampler, settings_for
from .scores import BETA_SCHEDULES, acs_beta, acs_score, ds, evs, grand_last_layer_score
from .select import (ccs_select, check_fraction, class_budgets, random_subset, rs2_window, score_sample, select,
                     split_part)

__all__ = ["SAMPLERS", "Context", "Reference", "Sampler", "Selection", "Settings", "build_sampler", "settings_for",
           "BETA_SCHEDULES", "acs_beta", "acs_score", "ds", "evs", "grand_last_layer_score", "ccs_select",
           "check_fraction", "class_budgets", "random_subset", "rs2_window", "score_sample", "select", "split_part"]
