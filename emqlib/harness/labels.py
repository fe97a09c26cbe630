"""The method labels that result tables carry in their ``method`` column, and that figures and
the claims table look up: one definition, so that a relabelled method cannot silently drop out
of a figure or a claim."""
from __future__ import annotations

DEDICATED = "Dedicated"  # one model per bit-width
JOINT = "Joint (Any-Precision)"  # one model, recursive distillation, switchable BatchNorm
EMQ = "EMQ"  # one model, shared BatchNorm and weight bias correction
EMQ_CORESET = "EMQ + bit-wise coreset"  # EMQ on a per-bit-width coreset; labels carry the fraction
FULL_DATA = "full data"  # the multi-bit model trained on every sample (coreset studies' baseline), EMQ's joint loop
FULL_DATA_BITWISE = "full data, bit-wise loop"  # every sample, in the pruned arms' own loop (a step per bit-width)
EQUAL_BUDGET = "equal-budget full data"  # full data for fewer epochs: the coreset's sample passes (joint loop)
# the same, trained bit-width by bit-width like the coreset runs (as many optimizer steps as they take)
EQUAL_BUDGET_BITWISE = "equal-budget full data, bit-wise loop"
# ACS's baselines in the protocol of its Tab. 2 (one subset, selected once), by their rule names
ACS_STATIC_BASELINES = ("random-once", "el2n", "forgetting", "tdds", "kcenter", "moderate", "emq-ccs")


def emq_coreset(fraction: float) -> str:
    """The label of EMQ + bit-wise coreset at ``fraction``, e.g. "EMQ + bit-wise coreset (20%)"."""
    return f"{EMQ_CORESET} ({fraction:.0%})"


def is_emq_coreset(label: str) -> bool:
    return label.startswith(EMQ_CORESET)
