"""Generated document sections: README's findings; docs/engineering.md's claims table, run time, study costs and
benchmark summary.

Everything between ``<!-- begin:NAME -->`` and ``<!-- end:NAME -->`` in README.md and docs/engineering.md is rewritten
from the CSV/JSON files in ``results/``, read by their columns; nothing in those blocks is typed by hand.
"""
from __future__ import annotations

import re

import pandas as pd

from . import findings, grading, paths
from .claims import TARGETS as TARGET_CLAIMS
from .storage import atomic_write_text, load_json
from .targets import BY_METRIC, TARGETS, VERDICTS, Target

README = paths.ROOT / "README.md"
ENGINEERING = paths.ROOT / "docs" / "engineering.md"
# the rows of results/bench.csv that answer the benchmark's targets (the CSV has them all)
BENCH_SUMMARY = ["quant_step_ratio", "bias_correction_ratio", "speedup_wallclock", "accuracy_gap", "selection_share",
                 "efficiency", "scaling_r2", "speed_option_ratio", "compiled_epoch_over_eager", "compile_break_even_epochs"]


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub markdown table (pipes in cells escaped)."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ") if pd.notna(value) else ""

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _interval(low, high) -> str:
    return f"[{float(low):.2f}, {float(high):.2f}]" if pd.notna(low) and pd.notna(high) else ""


def _read(name: str) -> pd.DataFrame | None:
    """``results/<name>``, empty cells as NaN (a cell reading "NA" stays text), or None when it is missing."""
    path = paths.results_dir() / name
    names = dict.fromkeys(["commit", "run", "torch"], str)  # text even where a name is all digits
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=names) if path.exists() else None


def _status_counts(claims: pd.DataFrame) -> tuple[str, int]:
    """How many claims have each status ("9 reproduced, 12 partial, ..."), and how many graded ones are fragile."""
    counts = claims.status.value_counts()
    summary = ", ".join(f"{counts[s]} {s}" for s in (*grading.STATUSES[:3], *grading.UNGRADED, "not run")
                        if s in counts)
    return summary, int((claims.fragile.astype(str) == "True").sum())


def claims_section() -> str:
    claims = _read("claims.csv")
    if claims is None:
        return "(run `make reproduce`)"
    summary, fragile = _status_counts(claims)
    shown = pd.DataFrame({
        "claim_id": claims.claim_id, "claim": claims.claim, "compared as": claims.get("protocol", pd.Series("", index=claims.index)).fillna(""),
        "paper_value": claims.paper_value,
        "our_value (per seed)": claims.our_value, "seeds": claims.n_seeds,
        "95% interval": [_interval(lo, hi) for lo, hi in zip(claims.ci_low, claims.ci_high)],
        # the reason: why a claim is not graded, or how a not-reproduced one's mean misses
        "status": [f"{s}: {r}" if isinstance(r, str) and r else s for s, r in zip(claims.status, claims.reason)],
        "fragile": claims.fragile.astype(str).map({"True": "yes", "False": "no"}).fillna("")})
    return (f"{len(claims)} claims: {summary}; {fragile} of the graded statuses are fragile. {grading.RULES} "
            "The rule and threshold of each row are in the `criterion` column of `results/claims.csv`.\n\n"
            f"{markdown_table(shown)}")


FINDING_GROUPS = [("reproduced", "Holds"), ("partial", "Holds for the mean only (some seed or the interval crosses the "
                                                  "threshold)"),
                  ("not reproduced", "Does not hold here"),
                  ("invalid", "Not graded: a run it reads fails a check")]


# the notebooks whose claims need the profile's schedule to be converged (pruning and cost)
CONVERGED_NOTEBOOKS = ("04_pruning", "05_training_cost")


def regime_lines(claims: pd.DataFrame) -> list[str]:
    """Whether the schedule of the pruning and cost claims has converged, per trained bit-width
    (``convergence.csv``), and, where a child has not, the claims it touches."""
    convergence = _read("convergence.csv")
    if convergence is None:
        return []
    slow = convergence[~convergence.converged.astype(bool)]
    touched = ", ".join(claims[claims.notebook.isin(CONVERGED_NOTEBOOKS)
                               & ~claims.status.isin(["not run", "not comparable"])].claim_id)
    gains = ", ".join(f"{int(r.bits)}-bit {r.gain:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
                      for _, r in convergence.iterrows())
    if slow.empty:
        return ["", f"**The regime.** Doubling the schedule gains under 0.5 points at every trained bit-width "
                    f"({gains}; mean over {int(convergence.seeds.min())} seeds), so the pruning and cost claims "
                    f"({touched}) are judged where more epochs no longer help."]
    bits = [f"{int(b)}-bit" for b in slow.bits]
    named = bits[0] + " child gains" if len(bits) == 1 else ", ".join(bits[:-1]) + f" and {bits[-1]} children gain"
    return ["", f"**The regime.** Not converged at the profile's schedule: the {named} 0.5 points or more from "
                f"twice the epochs ({gains}; mean over {int(convergence.seeds.min())} seeds), so the pruning and cost "
                f"claims ({touched}) are judged before training has converged for {'it' if len(bits) == 1 else 'them'}."]


def findings_section() -> str:
    """README's findings: every graded claim in one line, grouped by verdict, then the claims not graded here."""
    claims = _read("claims.csv")
    if claims is None:
        return "(run `make reproduce`)"
    summary, fragile = _status_counts(claims)
    lines = [f"Of {len(claims)} claims, {summary}; {fragile} graded verdicts are fragile (leaving out one seed "
             "changes them). Each line: our effect, its 95% interval over seeds (paired by seed), the seeds, and the "
             "paper's value."]
    for status, title in FINDING_GROUPS:
        rows = claims[claims.status == status]
        if len(rows):
            lines += ["", f"**{title}** ({len(rows)})", ""] + [findings.claim_line(r) for _, r in rows.iterrows()]
    lines += regime_lines(claims)
    for status in ("not comparable", "not run"):
        rows = claims[claims.status == status]
        if len(rows):
            lines += ["", f"**{status.capitalize()}** ({len(rows)}): " + "; ".join(
                f"{r.claim_id} ({r.reason.split(';')[0].split(' (')[0]})" for _, r in rows.iterrows())]
    return "\n".join(lines)


def timing_section(profile: str) -> str:
    """The last `make reproduce` beside the last one from an empty run cache (``reproduce_<profile>_cold.json``,
    a copy of the record of a cold run), notebook by notebook."""
    records = {"last run": paths.reproduce_record(profile), "last cold run": paths.reproduce_record(profile, cold=True)}
    timings = {name: load_json(path) for name, path in records.items() if path.exists()}
    if not timings:
        return f"(no `make reproduce PROFILE={profile}` record yet)"
    lines = []
    for name, timing in timings.items():
        cache = ("from an empty run cache" if timing.get("finished_runs_at_start") == 0 else
                 f"reusing {timing.get('finished_runs_at_start')} runs already in the cache")
        workers = f", {timing['workers']} worker processes" if timing.get("workers") else ""
        lines.append(f"{name}: `make reproduce PROFILE={profile}` took **{timing['total_seconds'] / 60:.1f} minutes** "
                     f"on this machine ({timing.get('machine', 'unknown machine')}{workers}), {cache}, "
                     f"finished {timing.get('finished')}.")
    rows = pd.DataFrame({f"seconds ({name})": {k: f"{v:.0f}" for k, v in t["notebooks"].items()}
                         for name, t in timings.items()}).rename_axis("notebook").reset_index()
    return "\n\n".join(lines) + f"\n\n{markdown_table(rows)}"


def bench_section() -> str:
    every = _read("bench.csv")
    if every is None:
        return "(run `make bench`)"
    frame = every[every.metric.isin(BENCH_SUMMARY)].sort_values("metric", key=lambda m: m.map(BENCH_SUMMARY.index),
                                                                 kind="stable")
    targets = [f"{t.shown}: {'met' if t.met(v) else 'missed'}" if (t := BY_METRIC.get(m)) else ""
               for m, v in zip(frame.metric, frame.value)]
    shown = frame.assign(value=frame.value.map(lambda v: f"{v:.3g}"), target=targets,
                         seed=frame.seed.map(lambda s: "" if pd.isna(s) else f"{s:.0f}"))
    return (f"{markdown_table(shown[['metric', 'value', 'unit', 'seed', 'target', 'what']])}\n\n"
            "A row with a seed is one run of that seed, read from the run cache (the claims table above pairs "
            "every seed); a row without one is a timing measured by `make bench`. Targets: "
            "`emqlib.harness.targets`. All rows, each fact in a column: `results/bench.csv`; figure: "
            "`figures/bench.png`." + export_section(every))


def export_section(frame: pd.DataFrame) -> str:
    """Integer deployment per bit-width: latency of the fake-quantized PyTorch model and of the
    onnxruntime exports at batch 1 and 128, and the weights' size packed at the bit-width."""
    rows = frame[frame.metric.isin(["export_latency", "export_packed_size"])]
    if rows.empty:
        return ""
    latency = rows.metric == "export_latency"
    runtime = rows.runtime.str.replace("onnxruntime float", "onnxruntime qdq")  # at 32 bits the float model stands in
    rows = rows.assign(bits=pd.to_numeric(rows.bits).astype(int), cell=rows.value.map("{:.3g}".format).where(
        latency, rows.value.map("{:,.0f}".format)), column=(runtime + ", batch " + rows.batch.map("{:.0f}".format)
                                                          + " (ms)").where(latency, "weights packed (bytes)"))
    rows = rows[latency | (runtime == "onnxruntime qdq")]
    columns = ["weights packed (bytes)", *dict.fromkeys(rows.column[rows.metric == "export_latency"])]
    table = rows.pivot(index="bits", columns="column", values="cell").reindex(columns=columns).fillna("")
    return ("\n\nInteger deployment (`python -m emqlib export`; at 32 bits the float model) of the cached EMQ run, "
            "per bit-width, best of interleaved repetitions:\n\n" + markdown_table(table.reset_index()))


def compile_check_section() -> str:
    """Notebooks executed from an empty run cache eager and compiled (``python -m emqlib.harness.compile_check``):
    seconds of each, and compiled over eager."""
    frame = _read("compile_check.csv")
    if frame is None:
        return "(run `python -m emqlib.harness.compile_check --only NN`)"
    seconds = frame[frame.metric == "notebook_seconds"].assign(mode=lambda f: [
        f"compiled, {cache} inductor cache" if compiled else "eager" for compiled, cache in zip(f.compiled, f.inductor_cache)])
    modes = list(dict.fromkeys(seconds["mode"]))  # as executed: eager first
    table = seconds.pivot(index="notebook", columns="mode", values="value")[modes]
    ratios = table[modes[1:]].div(table["eager"], axis=0)
    shown = pd.concat([table.map(lambda v: f"{v:.0f}").add_suffix(" (s)"),
                       ratios.map(lambda v: f"{v:.2f}x").add_suffix(" over eager")], axis=1).reset_index()
    return (f"Each notebook executed alone by `make reproduce`'s workers from an empty run cache, three times in a row "
            f"(`python -m emqlib.harness.compile_check`, profile {', '.join(seconds.profile.unique())}, commit "
            f"{', '.join(sorted(seconds.commit.unique()))}; `results/compile_check.csv`). The second execution "
            "compiles with an empty inductor cache (a fresh machine), the third with the one the second filled.\n\n"
            + markdown_table(shown))


def gpu_bench_section() -> str:
    """`python -m emqlib.harness.bench_gpu` on a GPU: images/s per step and the projected GPU-hours of the
    paper recipe, one column per (mode, precision) that the run finished."""
    frame = _read("bench_gpu.csv")
    if frame is None:
        return "(not measured: `python -m emqlib.harness.bench_gpu` on a machine with a CUDA GPU writes `results/bench_gpu.csv`)"
    paper = frame.loc[frame.metric == "paper_gpu_hours", "value"]
    frame = frame[frame.metric != "paper_gpu_hours"].copy()
    frame["column"] = [f"{'compiled' if c else 'eager'}, {p}" for c, p in zip(frame.compiled, frame.precision)]
    names = [f"{bits}-bit" if step == "single" else step for step, bits in zip(frame.step, frame.bits)]
    frame["row"] = [f"{n} step (images/s)" if m == "images_per_second" else f"{n}: first compiled step (s)"
                    if m == "first_step_seconds" else f"{method} (GPU-h, {e:.0f} epochs)"
                    for m, n, method, e in zip(frame.metric, names, frame.method, frame.epochs)]
    frame["cell"] = [f"{v:,.0f}" if m == "images_per_second" else f"{v:.1f}" if m == "first_step_seconds" else
                     f"{v:.2f}" for m, v in zip(frame.metric, frame.value)]
    every = [f"{m}, {p}" for m in ("eager", "compiled") for p in ("fp32", "bf16")]
    columns, missing = [c for c in every if c in set(frame.column)], [c for c in every if c not in set(frame.column)]
    table = frame.pivot(index="row", columns="column", values="cell").reindex(
        index=list(dict.fromkeys(frame.row)), columns=columns).fillna("").rename_axis("").reset_index()
    sources = frame.groupby("column")[["torch", "commit"]].first()
    measured_with = [f"{c}: " + (f"torch {sources.torch[c]}, commit {sources.commit[c]}" if pd.notna(sources.torch[c])
                                 else "not recorded") for c in columns]
    return (f"Measured on {', '.join(sorted(frame.device.unique()))} (`python -m emqlib.harness.bench_gpu`: the paper "
            "profile's ResNet-20 x5, CIFAR-shaped random batches of 128, median of interleaved steps; "
            "`results/bench_gpu.csv`). The GPU-hours project training steps only (no data loading, evaluation or "
            f"coreset selection), against the paper's {paper.iloc[0] if len(paper) else '?'} GPU-h for EMQ with its "
            "bit-wise coreset." + (f" Not measured: {'; '.join(missing)} (the run ended before it)." if missing else "")
            + f" Measured with: {'; '.join(measured_with)}. A joint step's first compiled step reuses the graphs of "
            "the single-bit steps before it (the same forward at the same bit-widths); with bias correction the "
            f"graphs are new.\n\n{markdown_table(table)}")


def targets_section(profile: str = "cpu") -> str:
    """The targets of :mod:`emqlib.harness.targets` measured per seed (:data:`emqlib.harness.claims.TARGETS`),
    graded by the claims' rule with each target as threshold, and the cold `make reproduce` against its time."""
    rows = []
    for target in TARGET_CLAIMS:
        try:
            measured = target.metric()
        except (FileNotFoundError, KeyError):  # a study not run, or run without an arm the target compares
            rows.append({"target": target.claim, "threshold": target.paper_value, "measured (per seed)": "not run"})
            continue
        values = measured.values.dropna()
        verdict = grading.grade(values, target.direction, target.threshold)
        seeds = ", ".join(f"{v:.2f}" for v in values)
        rows.append({"target": target.claim, "threshold": target.paper_value,
                     "measured (per seed)": f"{verdict.mean:.2f}{target.unit} ({seeds})",
                     "95% interval": _interval(verdict.ci_low, verdict.ci_high),
                     "verdict": (f"invalid: {'; '.join(measured.invalid)}" if measured.invalid  # never met on them
                                 else VERDICTS[verdict.status])})
    cold, budget = paths.reproduce_record(profile, cold=True), ""
    if cold.exists():
        minutes, goal, limit = load_json(cold)["wall_seconds"] / 60, TARGETS["reproduce"], TARGETS["reproduce_limit"]
        verdict = ("within the target" if goal.met(minutes) else "within the limit, over the target"
                   if limit.met(minutes) else "over the limit")
        budget = (f"A cold `make reproduce` (empty run cache) took {minutes:.1f} minutes against a target of "
                  f"{goal.threshold:g} and a limit of {limit.threshold:g}: {verdict}. ")
    return (budget + "Each target is graded by the claims' rule, with the target as threshold: **met** when every "
            "seed (at least 3) and the 95% interval lie on its side.\n\n" + markdown_table(pd.DataFrame(rows))
            + "\n\nThe evidence the claims rest on:\n\n" + "\n".join(evidence_lines()))


def evidence_lines() -> list[str]:
    """The evidence targets (settled verdicts, convergence per bit-width, a validation split that ranks like the
    test set), each measured from the results and marked met or missed; one list item each."""
    lines = []
    claims = _read("claims.csv")
    if claims is not None:
        graded = claims[claims.status.isin(grading.STATUSES[:3])]
        settled = graded[graded.status.isin(["reproduced", "not reproduced"]) & (graded.n_seeds >= 3)]
        share = 100.0 * len(settled) / max(1, len(graded))
        lines.append(_evidence(TARGETS["settled"], f"{share:.0f}% ({len(settled)} of {len(graded)} graded rows)",
                               TARGETS["settled"].met(share)) + _what_seeds_could_settle(graded, len(settled)))
    convergence = _read("convergence.csv")
    if convergence is not None:
        slow = [f"{int(r.bits)}-bit" for r in convergence.itertuples() if not TARGETS["converged"].met(r.gain)]
        gains = ", ".join(f"{int(r.bits)}-bit {r.gain:+.2f}" for r in convergence.itertuples())
        lines.append(_evidence(TARGETS["converged"], f"{gains} over {int(convergence.seeds.min())} seeds",
                               not slow, f"missed by {', '.join(slow)}"))
    ranking = _read("ranking.csv")
    if ranking is not None:
        rho = float(ranking.spearman.iloc[0])
        lines.append(_evidence(TARGETS["ranking"], f"{rho:.2f} over {len(ranking)} arms", TARGETS["ranking"].met(rho)))
    return lines or ["- (run `make reproduce`)"]


def _what_seeds_could_settle(graded: pd.DataFrame, settled: int) -> str:
    """Of the partial rows: those more seeds could reproduce (how many seeds each would need, from the
    ``seeds_to_reproduce`` column), those no number of seeds can, and the settled share at most seeds can reach."""
    partial = graded[graded.status == "partial"]
    if "seeds_to_reproduce" not in partial.columns or partial.empty:
        return ""
    more = partial.set_index("claim_id").seeds_to_reproduce.fillna("").astype(str)
    cannot = more[more.str.startswith(grading.NO_NUMBER)]
    could = more.drop(cannot.index)
    best = 100.0 * (settled + len(could)) / len(graded)
    could_text = ", ".join(f"{claim} {text.split(' (')[0]}" for claim, text in could.items()) or "none"
    return (f". Of the {len(partial)} partial rows, more seeds could reproduce {len(could)} ({could_text} seeds in "
            f"all, if they keep the mean and spread of the seeds run), which would settle {best:.0f}%; no number of "
            f"seeds reproduces the other {len(cannot)} ({', '.join(cannot.index)}: a seed against the paper's "
            "direction; `seeds_to_reproduce` in results/claims.csv)")


def _evidence(target: Target, measured: str, met: bool, missed: str = "missed") -> str:
    return f"- {target.text} ({target.shown}): {measured}: **{'met' if met else missed}**"


def study_costs_section() -> str:
    costs = _read("study_costs.csv")
    if costs is None:
        return "(run `make reproduce`)"
    shown = costs.assign(train_minutes=costs.train_minutes.map(lambda m: f"{m:.1f}"))
    return (f"{markdown_table(shown)}\n\nIn all {costs.new_runs.sum()} runs, {costs.train_minutes.sum():.0f} minutes of "
            "training as the workers timed it (`results/study_costs.csv`, written by notebook 09).")


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- begin:{name} -->\n).*?(<!-- end:{name} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"no <!-- begin:{name} --> ... <!-- end:{name} --> block")
    return pattern.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text)


def blocks(profile: str) -> dict:
    """Each generated document and its blocks: the README leads with the findings, docs/engineering.md holds the
    rest (the claims in full, time, cost, benchmarks)."""
    return {README: {"findings": findings_section},
            ENGINEERING: {"claims": claims_section, "timing": lambda: timing_section(profile),
                          "bench": bench_section, "gpu_bench": gpu_bench_section, "study_costs": study_costs_section,
                          "targets": lambda: targets_section(profile), "compile_check": compile_check_section}}


def update(profile: str = "cpu") -> None:
    """Rewrite the generated blocks of README.md and docs/engineering.md from ``results/`` (only the cpu
    profile's results are what they show; other profiles, and results written elsewhere with
    ``$EMQ_RESULTS_DIR``, leave them alone)."""
    if profile != "cpu" or paths.results_dir().resolve() != (paths.ROOT / "results").resolve():
        return
    for document, sections in blocks(profile).items():
        text = document.read_text()
        for name, section in sections.items():
            try:
                text = replace_block(text, name, section())
            except ValueError as missing:
                raise ValueError(f"{document.name}: {missing}") from None
        atomic_write_text(document, text)
