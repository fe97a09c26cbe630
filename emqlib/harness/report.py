"""Generated README sections: the claims table, the run time, what each study cost and the benchmark summary.

Everything between ``<!-- begin:NAME -->`` and ``<!-- end:NAME -->`` in README.md is rewritten
from the CSV/JSON files in ``results/``; nothing in those blocks is typed by hand.
"""
from __future__ import annotations

import re

import pandas as pd

from . import grading, paths
from .storage import atomic_write_text, load_json

README = paths.ROOT / "README.md"


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub markdown table (pipes in cells escaped)."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ") if pd.notna(value) else ""

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def _interval(low, high) -> str:
    return f"[{float(low):.2f}, {float(high):.2f}]" if low != "" and high != "" else ""


def claims_section() -> str:
    path = paths.results_dir() / "claims.csv"
    if not path.exists():
        return "(run `make reproduce`)"
    claims = pd.read_csv(path, keep_default_na=False)
    counts = claims.status.value_counts()
    summary = ", ".join(f"{counts[s]} {s}" for s in ("reproduced", "partial", "not reproduced", "not run")
                        if s in counts)
    fragile = int((claims.fragile.astype(str) == "True").sum())
    shown = pd.DataFrame({
        "claim_id": claims.claim_id, "claim": claims.claim, "paper_value": claims.paper_value,
        "our_value (per seed)": claims.our_value, "seeds": claims.n_seeds,
        "95% interval": [_interval(lo, hi) for lo, hi in zip(claims.ci_low, claims.ci_high)],
        "status": [s if s != "not run" else f"not run: {r}" for s, r in zip(claims.status, claims.reason)],
        "fragile": claims.fragile.astype(str).map({"True": "yes", "False": "no"}).fillna("")})
    return (f"{len(claims)} claims: {summary}; {fragile} of the graded statuses are fragile. {grading.RULES} "
            "The rule and threshold of each row are in the `criterion` column of `results/claims.csv`.\n\n"
            f"{markdown_table(shown)}")


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


# the rows of results/bench.csv that answer the benchmark's targets (the CSV has them all). Left out:
# speedup_wallclock_derived, which scales Dedicated to 9 models although the model serves 1 bit at
# 16-22% accuracy, so it counts bit-widths nobody would deploy.
BENCH_SUMMARY = ["quant_step_ratio", "bias_correction_ratio", "speedup_wallclock", "accuracy_gap", "selection_share",
                 "efficiency", "scaling_r2", "speed_option_ratio", "compiled_epoch_over_eager",
                 "compile_break_even_epochs"]
CACHED_RUN = re.compile(r"from run cache ([0-9a-f]{16})")


def run_seeds() -> dict[str, int]:
    """The seed of every run named in a results CSV (its ``run`` and ``seed`` columns)."""
    seeds = {}
    for path in sorted(paths.results_dir().glob("*.csv")):
        frame = pd.read_csv(path)
        if {"run", "seed"} <= set(frame.columns):
            seeds.update(zip(frame.run.astype(str), frame.seed.astype(int)))
    return seeds


def bench_section() -> str:
    bench = paths.results_dir() / "bench.csv"
    if not bench.exists():
        return "(run `make bench`)"
    every = pd.read_csv(bench)
    frame = every[every.metric.isin(BENCH_SUMMARY)].copy()
    frame["order"] = frame.metric.map(BENCH_SUMMARY.index)
    frame = frame.sort_values("order", kind="stable")
    frame["value"] = frame.value.map(lambda v: f"{v:.3g}")
    seeds = run_seeds()
    runs = frame.setting.str.extract(CACHED_RUN, expand=False)
    frame["seed"] = [("" if pd.isna(r) else str(seeds.get(r, "?"))) for r in runs]
    frame["setting"] = frame.setting.str.split(";").str[0]
    return (f"{markdown_table(frame[['metric', 'value', 'unit', 'seed', 'setting']])}\n\n"
            "A row with a seed is one run of that seed, read from the run cache (the claims table above pairs "
            "every seed); a row without one is a timing measured by `make bench`. "
            "All rows, with full settings: `results/bench.csv`; figure: `figures/bench.png`." + export_section(every))


EXPORT_SETTING = re.compile(r"^(?P<bits>\d+)-bit, (?:batch (?P<batch>\d+), )?(?P<runtime>[^,;]+)")


def export_section(frame: pd.DataFrame) -> str:
    """Integer deployment per bit-width: latency of the fake-quantized PyTorch model and of the
    onnxruntime exports at batch 1 and 128, and the weights' size packed at the bit-width."""
    table = {}
    for r in frame[frame.metric.isin(["export_latency", "export_size"])].itertuples():
        found = EXPORT_SETTING.match(r.setting)
        if found is None:  # the PyTorch checkpoint's size belongs to no bit-width
            continue
        runtime = found["runtime"].strip().replace("onnxruntime float", "onnxruntime qdq")  # 32 bits is plain float
        cells = table.setdefault(int(found["bits"]), {})
        if r.metric == "export_latency":
            cells[f"{runtime}, batch {found['batch']} (ms)"] = f"{r.value:.3g}"
        elif "weights packed" in r.setting and runtime == "onnxruntime qdq":
            cells["weights packed (bytes)"] = f"{int(r.value):,}"
    if not table:
        return ""
    out = pd.DataFrame([{"bits": b, **cells} for b, cells in sorted(table.items())]).fillna("")
    return ("\n\nInteger deployment (`python -m emqlib export`; at 32 bits the float model) of the cached EMQ run, "
            "per bit-width, best of interleaved repetitions:\n\n" + markdown_table(out))


COMPILE_CHECK_SETTING = re.compile(r"^(?P<mode>[^;]+); (?P<notebook>[^,]+), profile (?P<profile>[^,]+), .*commit (?P<commit>\w+)$")


def compile_check_section() -> str:
    """Notebooks executed from an empty run cache eager and compiled (``python -m emqlib.harness.compile_check``):
    seconds of each, and compiled over eager."""
    path = paths.results_dir() / "compile_check.csv"
    if not path.exists():
        return "(run `python -m emqlib.harness.compile_check --only NN`)"
    frame = pd.read_csv(path)
    seconds = frame[frame.metric == "notebook_seconds"]
    found = seconds.setting.str.extract(COMPILE_CHECK_SETTING)
    modes = list(dict.fromkeys(found["mode"]))  # as executed: eager first
    table = found.assign(value=seconds.value).pivot(index="notebook", columns="mode", values="value")[modes]
    ratios = table[modes[1:]].div(table["eager"], axis=0)
    shown = pd.concat([table.map(lambda v: f"{v:.0f}").add_suffix(" (s)"),
                       ratios.map(lambda v: f"{v:.2f}x").add_suffix(" over eager")], axis=1).reset_index()
    commits = ", ".join(sorted(set(found.commit)))
    return (f"Each notebook executed alone by `make reproduce`'s workers from an empty run cache, three times in a row "
            f"(`python -m emqlib.harness.compile_check`, profile {found.profile.iloc[0]}, commit {commits}; "
            "`results/compile_check.csv`). The second execution compiles with an empty inductor cache (a fresh "
            "machine), the third with the one the second filled.\n\n" + markdown_table(shown))


GPU_SETTING = re.compile(r"^(?P<step>[^;]+?)(?: step)?(?:, compilation included)?; (?P<device>[^;]+); (?P<mode>eager|compiled), (?P<precision>fp32|bf16)")
GPU_SOURCE = re.compile(r"; (torch [^;]+)$")  # the torch version and commit a row names (rows of older runs: none)
GPU_METHOD = re.compile(r"^(?P<method>[^;]+?)(?: \(.*?\))?(?:; paper: [^;]+)?; (?:\d+ epochs[^;]*); (?P<device>[^;]+); (?P<mode>eager|compiled), (?P<precision>fp32|bf16)")


def gpu_bench_section() -> str:
    """`python -m emqlib.harness.bench_gpu` on a GPU: images/s per step and the projected GPU-hours of the
    paper recipe, one column per (mode, precision) that the run finished."""
    path = paths.results_dir() / "bench_gpu.csv"
    if not path.exists():
        return "(not measured: `python -m emqlib.harness.bench_gpu` on a machine with a CUDA GPU writes `results/bench_gpu.csv`)"
    frame = pd.read_csv(path)
    cells: dict[str, dict[str, str]] = {}
    sources: dict[str, str] = {}
    devices = set()
    for r in frame.itertuples():
        found = (GPU_METHOD if r.metric == "projected_gpu_hours" else GPU_SETTING).match(r.setting)
        if found is None:  # the paper's own number
            continue
        devices.add(found["device"])
        column = f"{found['mode']}, {found['precision']}"
        source = GPU_SOURCE.search(r.setting)
        sources.setdefault(column, source[1] if source else "not recorded")
        if r.metric == "images_per_second":
            cells.setdefault(f"{found['step']} step (images/s)", {})[column] = f"{r.value:,.0f}"
        elif r.metric == "projected_gpu_hours":
            cells.setdefault(f"{found['method']} (GPU-h, 200 epochs)", {})[column] = f"{r.value:.2f}"
        elif r.metric == "first_step_seconds":
            cells.setdefault(f"{found['step']}: first compiled step (s)", {})[column] = f"{r.value:.1f}"
    columns = [f"{m}, {p}" for m in ("eager", "compiled") for p in ("fp32", "bf16")]
    missing = [c for c in columns if not any(c in row for row in cells.values())]
    table = pd.DataFrame([{"": name, **row} for name, row in cells.items()], columns=["", *columns], dtype=object).fillna("")
    table = table[["", *(c for c in columns if c not in missing)]]
    paper = frame.loc[frame.metric == "paper_gpu_hours", "value"]
    return (f"Measured on {', '.join(sorted(devices))} (`python -m emqlib.harness.bench_gpu`: the paper profile's ResNet-20 x5, "
            "CIFAR-shaped random batches of 128, median of interleaved steps; `results/bench_gpu.csv`). The GPU-hours "
            "project training steps only (no data loading, evaluation or coreset selection), against the paper's "
            f"{paper.iloc[0] if len(paper) else '?'} GPU-h for EMQ with its bit-wise coreset."
            + (f" Not measured: {'; '.join(missing)} (the run ended before it)." if missing else "")
            + f" Measured with: {'; '.join(f'{c}: {sources[c]}' for c in columns if c in sources)}."
            + " A joint step's first compiled step reuses the graphs of the single-bit steps before it (the same "
            "forward at the same bit-widths); with bias correction the graphs are new."
            + f"\n\n{markdown_table(table)}")


TARGET_VERDICTS = {"reproduced": "met", "partial": "mean meets it, not every seed or not the whole interval",
                   "not reproduced": "missed"}


def targets_section(profile: str = "cpu") -> str:
    """The bit-wise coreset work's targets (:data:`emqlib.harness.claims.TARGETS`), graded by the claims' rule
    with each target as threshold, and the cold `make reproduce` against its time budget."""
    from .claims import TARGETS

    rows = []
    for target in TARGETS:
        try:
            values = target.metric().values.dropna()
        except (FileNotFoundError, KeyError):  # a study not run, or run without an arm the target compares
            rows.append({"target": target.claim, "threshold": target.paper_value, "measured (per seed)": "not run"})
            continue
        verdict = grading.grade(values, target.direction, target.threshold)
        seeds = ", ".join(f"{v:.2f}" for v in values)
        rows.append({"target": target.claim, "threshold": target.paper_value,
                     "measured (per seed)": f"{verdict.mean:.2f}{target.unit} ({seeds})",
                     "95% interval": _interval(verdict.ci_low, verdict.ci_high),
                     "verdict": TARGET_VERDICTS[verdict.status]})
    cold = paths.reproduce_record(profile, cold=True)
    budget = ""
    if cold.exists():
        minutes = load_json(cold)["wall_seconds"] / 60
        verdict = "within the target" if minutes <= 45 else "within the limit, over the target" if minutes <= 60 \
            else "over the limit"
        budget = (f"A cold `make reproduce` (empty run cache) took {minutes:.1f} minutes against a target of 45 and a "
                  f"limit of 60: {verdict}. ")
    return (budget + "Each target is graded by the claims' rule, with the target as threshold: **met** when every "
            "seed (at least 3) and the 95% interval lie on its side.\n\n" + markdown_table(pd.DataFrame(rows)))


def replace_block(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- begin:{name} -->\n).*?(<!-- end:{name} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"README.md has no <!-- begin:{name} --> ... <!-- end:{name} --> block")
    return pattern.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text)


def study_costs_section() -> str:
    path = paths.results_dir() / "study_costs.csv"
    if not path.exists():
        return "(run `make reproduce`)"
    costs = pd.read_csv(path)
    shown = costs.assign(train_minutes=costs.train_minutes.map(lambda m: f"{m:.1f}"))
    return (f"{markdown_table(shown)}\n\nIn all {costs.new_runs.sum()} runs, {costs.train_minutes.sum():.0f} minutes of "
            "training as the workers timed it (`results/study_costs.csv`, written by notebook 09).")


def update(profile: str = "cpu") -> None:
    """Rewrite the generated blocks of README.md from ``results/`` (only the cpu profile's results
    are what README shows; other profiles, and results written elsewhere with ``$EMQ_RESULTS_DIR``,
    leave README alone)."""
    if profile != "cpu" or paths.results_dir().resolve() != (paths.ROOT / "results").resolve():
        return
    text = README.read_text()
    text = replace_block(text, "claims", claims_section())
    text = replace_block(text, "timing", timing_section(profile))
    text = replace_block(text, "bench", bench_section())
    text = replace_block(text, "gpu_bench", gpu_bench_section())
    text = replace_block(text, "study_costs", study_costs_section())
    text = replace_block(text, "targets", targets_section(profile))
    text = replace_block(text, "compile_check", compile_check_section())
    atomic_write_text(README, text)
