"""What each notebook found, in words generated from the results: its claims' verdicts with their numbers and
caveats (seeds, interval, fragility, invalid runs, schedule), and what its own tables show that a reader would
otherwise have to spot (a contradiction between two of them, a child far below its siblings, an effect that
flips sign between schedules). Each notebook ends with :func:`what_we_found`; the README's findings and the
report's index read the same sentences from results/claims.csv."""
from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from . import claims
from .results import load_result
from .targets import TARGETS

STATUS_WORDS = {"reproduced": "reproduced", "partial": "partly reproduced", "not reproduced": "not reproduced",
                "invalid": "not graded: it rests on a run that fails a check",
                "not comparable": "not comparable", "not run": "not run"}


def claim_sentence(row: pd.Series) -> str:
    """One claim's verdict as a markdown bullet: id, claim, status, our effect with its interval and seeds, the
    paper's value, and the caveats."""
    status = STATUS_WORDS.get(row.status, row.status)
    protocol = f" ({row.protocol})" if isinstance(row.protocol, str) and row.protocol else ""
    head = f"- **{row.claim_id}**{protocol} {row.claim}: **{status}**"
    if row.status in ("not run", "not comparable"):
        return f"{head}. {row.reason}"
    value = measured(row)
    interval = ("" if pd.isna(row.ci_low) else f", 95% interval [{row.ci_low:+.2f}, {row.ci_high:+.2f}]")
    caveats = []
    if row.fragile is True or str(row.fragile) == "True":
        caveats.append("fragile: leaving out one seed changes the status")
    if row.status == "invalid":
        caveats.append(str(row.reason))
    if "short schedule" in str(row.our_setting):
        caveats.append("on the short schedule")
    seeds = f"{int(row.n_seeds)} seed{'s' if row.n_seeds != 1 else ''}"
    missed = f" Missed: {miss}." if (miss := why_missed(row)) else ""
    return (f"{head}. {value}{interval}, {seeds}; paper: {row.paper_value}.{missed}"
            + (f" Caveats: {'; '.join(caveats)}." if caveats else ""))


def why_missed(row: pd.Series) -> str:
    """How a ``not reproduced`` row's mean misses the claim (its ``reason``: the wrong side, or an effect under half
    the paper's); empty for any other row, or a claims table written before graded rows had a reason."""
    reason = row.get("reason")
    return reason if row.status == "not reproduced" and isinstance(reason, str) else ""


def measured(row: pd.Series) -> str:
    """Our measurement of a graded row, its mean without the per-seed values ("EMQ - random ... +1.20 points")."""
    return str(row.our_value).split(" (mean of")[0]


def claim_line(row: pd.Series) -> str:
    """A graded claim in one short markdown bullet (the README's findings): id, claim, our effect with its interval
    and seeds, the paper's value."""
    interval = "" if pd.isna(row.ci_low) else f" [{row.ci_low:+.2f}, {row.ci_high:+.2f}]"
    fragile = ", fragile" if str(row.fragile) == "True" else ""
    short = " (short schedule)" if "short schedule" in str(row.our_setting) else ""
    more = row.get("seeds_to_reproduce")
    more = f"; seeds to reproduce it: {more}" if isinstance(more, str) and more else ""
    missed = f"; {miss}" if (miss := why_missed(row)) else ""
    return (f"- **{row.claim_id}** {row.claim}{short}: {measured(row)}{interval}, {int(row.n_seeds)} seeds{fragile}; "
            f"paper: {row.paper_value}{more}{missed}")


def claim_sentences(table: pd.DataFrame) -> list[str]:
    return [claim_sentence(row) for _, row in table.iterrows()]


# ---------------------------------------------------------------- what each notebook's own tables show

def _failing_runs(*names: str) -> list[str]:
    """The runs of results tables ``names`` that fail a check (collapsed children, chance level ...), a line each,
    each run once (a table such as shared_bn.csv has a row per bit-width of a run)."""
    lines = []
    for frame in map(load_result, names):
        if "valid" not in frame.columns:
            continue
        label = [c for c in ("method", "variant", "fraction", "pruning_rate", "seed") if c in frame.columns]
        lines += [f"run failing a check: {', '.join(f'{c} {r[c]}' for c in label)}: {r.invalid_reason}"
                  for _, r in frame[~frame.valid.astype(bool)].iterrows()]
    return list(dict.fromkeys(lines))


def _alignment() -> list[str]:
    frame = load_result("activation_alignment.csv")
    gaps = frame.groupby(["variant", "bits"])[["mean_gap", "var_log_ratio"]].mean().unstack("variant")
    notes = []
    for metric, words in (("mean_gap", "mean gap"), ("var_log_ratio", "variance gap")):
        corrected, plain = gaps[metric]["shared BN + correction"], gaps[metric]["shared BN, no correction"]
        worse = [int(b) for b in gaps.index if corrected[b] > plain[b]]
        if worse:
            notes.append(f"the correction makes the {words} larger, not smaller, at {', '.join(map(str, worse))} "
                         f"bit(s) ({', '.join(f'{corrected[b]:.3f} vs {plain[b]:.3f}' for b in worse)}): it matches "
                         "the weights' moments, not the BatchNorm inputs', and the two differ")
    return notes


def _shared_bn() -> list[str]:
    frame = load_result("shared_bn.csv")
    check = load_result("quant_core_check.csv")
    notes = []
    variant = "shared BN, no correction"
    main = frame[(frame.variant == variant) & (frame.bits == 2)].accuracy
    core = check[(check.variant == variant) & (check.bits == 2)].accuracy
    if len(main) and len(core) and abs(main.mean() - core.mean()) > 1.0:
        notes.append(f"'{variant}' at 2 bits reads {main.mean():.1f}% over {main.size} seed(s) in the variants table "
                     f"and {core.mean():.1f}% in the quant-core check ({core.size} seed): the check is one seed of the "
                     "same runs, so the difference is seed-to-seed spread, not two different models")
    return notes + _failing_runs("shared_bn.csv")


def _angles() -> list[str]:
    angles = load_result("gradient_angles.csv")
    whole = angles[(angles.layer == "all") & (angles.model == "resnet8")]
    by_epoch = whole.groupby("epoch").angle.max()
    notes = [f"the largest whole-model angle moves with training: {by_epoch.iloc[0]:.1f} deg after the first epoch, "
             f"{by_epoch.max():.1f} deg at epoch {int(by_epoch.idxmax())}, {by_epoch.iloc[-1]:.1f} deg at the last"]
    pairs = whole[whole.epoch == whole.epoch.max()].groupby(["bits_a", "bits_b"]).angle.mean()
    over = [f"{a}/{b}" for (a, b), v in pairs.items() if v >= 28]
    if over:
        notes.append(f"at the last epoch only the pairs {', '.join(over)} exceed 28 deg")
    return notes


def _pruning() -> list[str]:
    notes = []
    choice = load_result("sampler_choice.csv").iloc[0]
    if str(choice.tied) != str([choice.best]):
        notes.append(f"on the validation split the best EMQ design ({choice.best}) beats the runner-up "
                     f"({choice.runner_up}) by {choice.difference:+.2f} points [{choice.ci_low:+.2f}, "
                     f"{choice.ci_high:+.2f}]: a tie, so EMQ's sampler is the simplest of the tied designs, "
                     f"{choice.chosen}")
    ranking = load_result("ranking.csv")
    rho, agreement = ranking.spearman.iloc[0], TARGETS["ranking"]
    notes.append(f"validation ranks the pruned arms {'like' if agreement.met(rho) else 'unlike'} the test set: "
                 f"Spearman {rho:.2f} over {len(ranking)} arms (target {agreement.shown})")
    regime = load_result("convergence.csv")
    slow = regime[~regime.converged.astype(bool)]
    if len(slow):
        notes.append("not converged at the profile's epochs (doubling them gains 0.5 points or more): "
                     + ", ".join(f"{int(r.bits)}-bit {r.gain:+.2f}" for _, r in slow.iterrows()))
    falling = regime[regime.gain < -0.5]
    if len(falling):
        notes.append("worse when trained twice as long: " + ", ".join(f"{int(r.bits)}-bit {r.gain:+.2f}"
                                                                        for _, r in falling.iterrows()))
    return notes + _failing_runs("pruning.csv")


def _cost() -> list[str]:
    cost = load_result("training_cost.csv")
    coreset = cost[cost.method == claims.CORESET]
    notes = []
    if len(coreset) and "design_pass_ratio" in coreset:
        notes.append(f"the speed-up on served bit-widths is {coreset.speedup_wall_served.mean():.2f}x in wall-clock "
                     f"against {coreset.design_pass_ratio.mean():.2f}x that the design's pass counting promises: the "
                     "rest is the 32-bit teacher's forwards, scoring and per-step overhead")
    return notes + _failing_runs("training_cost.csv")


def _acs() -> list[str]:
    notes = []
    for long_name, short_name in (("acs_fractions.csv", "acs_baselines.csv"),):
        try:
            long, short = load_result(long_name), load_result(short_name)
        except FileNotFoundError:
            continue
        from .studies.acs import sign_check  # studies sit above this module's callers only here

        signs = sign_check(short, long, "random-once")
        flips = signs[~signs.same_sign]
        if len(flips):
            notes.append("ACS - random (drawn once) changes sign between the short and the full schedule at "
                         + ", ".join(f"{f:.0%} ({s:+.2f} short, {l:+.2f} converged)"
                                     for f, s, l in zip(flips.fraction, flips.short, flips.long)))
    return notes + _failing_runs("acs_fractions.csv", "acs_baselines.csv", "acs_transfer.csv")


def _label_noise() -> list[str]:
    noise = load_result("label_noise.csv")
    rates = noise.assign(rate=noise.subset_flipped / noise.subset_size).groupby("method").rate.mean()
    base = rates.get(claims.labels.FULL_DATA, math.nan)
    notes = []
    if "acs" in rates and not math.isnan(base) and rates["acs"] > 1.5 * base:
        notes.append(f"ACS's subsets hold {rates['acs'] / base:.1f}x the training set's share of wrong labels "
                     f"({rates['acs']:.1%} against {base:.1%}): its scores favour the samples the model gets wrong, "
                     "mislabelled ones among them, where ACS's paper reports that it avoids them")
    return notes + _failing_runs("label_noise.csv")


OBSERVATIONS: dict[str, Callable[[], list[str]]] = {
    "01_activation_alignment": _alignment, "02_shared_bn": _shared_bn, "03_gradient_angles": _angles,
    "04_pruning": _pruning, "05_training_cost": _cost, "06_acs": _acs, "07_label_noise": _label_noise,
    "08_score_extraction": lambda: _failing_runs("score_extraction.csv")}


def observations(notebook: str) -> list[str]:
    """What ``notebook``'s own tables show beside its claims (empty where it has no such check)."""
    try:
        return OBSERVATIONS.get(notebook, lambda: [])()
    except (FileNotFoundError, KeyError, IndexError) as missing:  # a study not run (yet): nothing to say
        return [f"(not checked: {missing})"]


def what_we_found(notebook: str, profile: str) -> str:
    """The markdown of a notebook's last cell: its claims' verdicts, then what its tables show."""
    # its own claims only: the CSVs of a notebook not yet run again may be in an older study's columns
    mine = claims.build_claims(profile, [c for c in claims.CLAIMS if c.notebook == notebook])
    lines = ["## What we found", ""]
    lines += claim_sentences(mine) or ["This notebook grades no claim of the papers."]
    notes = observations(notebook)
    if notes:
        lines += ["", "What the tables above also show:", ""] + [f"- {n}." for n in notes]
    return "\n".join(lines)
