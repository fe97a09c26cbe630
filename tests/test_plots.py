"""Figures are drawn from CSVs alone: each plot function reads small hand-made CSVs and writes a PNG; the figures
show differences paired by seed (marks, never bars from 0), one colour per method in every figure, statuses in
colours of their own, and the claims' forest a row per claim with per-seed values."""
from __future__ import annotations

import colorsys
import itertools

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere: no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex, to_rgb  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from emqlib.harness import claims, labels, paths, plots  # noqa: E402
from emqlib.harness.studies import acs as acs_study, extraction, shared_bn as bn_study  # noqa: E402
from emqlib.harness.studies import pruning as pruning_study  # noqa: E402

BITS = (1, 2, 3, 4, 5, 6, 7, 8, 32)
TRAINED = (2, 4, 8, 32)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SEEDS = (0, 1, 2)
CHOSEN = "EMQ: sampled (tau 1, eps 0.1), free scores"


def _csv(tmp_path, name: str, rows: list[dict]):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _run(acc: float, seconds: float = 2.0, valid: bool = True) -> dict:
    """The summary columns of one run (emqlib.harness.studies.common.summarize), with its checks' verdict."""
    return {"avg_accuracy": acc, "val_avg_accuracy": acc + 1.0, "wall_seconds": seconds,
            "selection_seconds": 0.1 * seconds, "reference_seconds": 1.0, "subset_flipped": 3, "subset_size": 20,
            "run": f"run{acc:.3f}", "invalid_reason": "" if valid else "at chance level", "valid": valid}


# ---------------------------------------------------------------- one hand-made set of CSVs per figure

def bit_accuracy(tmp_path):
    rows = [{"bits": b, "accuracy": 60 + b % 7, "loss": 1.0, "trained": b in TRAINED, "recalibrated": False}
            for b in BITS]
    return [_csv(tmp_path, "quickstart_eval.csv", rows)]


def activation_alignment(tmp_path):
    rows = [{"bits": b, "layer": f"layers.{i}.bn", "layer_index": i, "mean_gap": 0.0 if i == 0 else k / b,
             "var_log_ratio": 0.05 * i * k / b, "variant": variant, "trained": b in TRAINED}
            for k, variant in ((0.3, "shared BN + correction"), (1.0, "shared BN, no correction"))
            for b in BITS[:-1] for i in range(4)]
    return [_csv(tmp_path, "activation_alignment.csv", rows)]


def _all_bits_rows(variants):
    return [{"bits": b, "accuracy": 50 + b % 9 + seed + 3 * k, "loss": 1.0, "trained": b in TRAINED,
             "recalibrated": False, "variant": v, "seed": seed, "run": "abc"}
            for k, v in enumerate(variants) for seed in SEEDS for b in BITS]


def shared_bn(tmp_path):
    return [_csv(tmp_path, "shared_bn.csv", _all_bits_rows(["switchable BN (joint)", "shared BN + correction",
                                                            "shared BN, no correction"]))]


def quant_core_check(tmp_path):
    return [_csv(tmp_path, "quant_core_check.csv", _all_bits_rows(["shared BN + correction",
                                                                   "shared BN, no correction"]))]


def gradient_angles(tmp_path):
    rows = []
    for model, layers in (("resnet8", 3), ("resnet20", 6)):
        for seed, epoch, (a, b) in itertools.product(SEEDS, range(3), itertools.combinations((32, 8, 4, 2), 2)):
            rows += [{"bits_a": a, "bits_b": b, "layer": f"conv{i}", "layer_index": i,
                      "angle": 30 - 3 * i - epoch + seed, "model": model, "seed": seed, "epoch": epoch,
                      "run": f"{model}{seed}"} for i in range(layers)]
            rows.append({"bits_a": a, "bits_b": b, "layer": "all", "layer_index": -1, "angle": 12 - epoch + seed,
                         "model": model, "seed": seed, "epoch": epoch, "run": f"{model}{seed}"})
    return [_csv(tmp_path, "gradient_angles.csv", rows)]


def regime(tmp_path):
    rows = [{"epoch": e, "bits": b, "test_accuracy": 60 + 5 * e + seed - b / 32, "train_loss": 1.0, "seed": seed,
             "epochs": epochs, "run": f"{epochs}{seed}", "valid": seed != 1, "invalid_reason": ""}
            for seed in SEEDS for epochs, evaluated in ((2, (0, 1)), (4, (1, 3))) for e in evaluated for b in TRAINED]
    return [_csv(tmp_path, "regime_check.csv", rows)]


PRUNING_ARMS = [CHOSEN, "EMQ: top-k EL2N, rescored every R", "random, drawn once", "random, re-drawn every epoch",
                "TDDS, static (class-balanced)", labels.EQUAL_BUDGET_BITWISE]


def pruning(tmp_path):
    invalid = ("TDDS, static (class-balanced)", 2)  # one run that fails a check
    rows = [{"method": m, "pruning_rate": 0.8, "seed": s, **_run(60 - i + 0.5 * s * i, valid=(m, s) != invalid)}
            for s in SEEDS for i, m in enumerate(PRUNING_ARMS)]
    rows += [{"method": labels.FULL_DATA, "pruning_rate": 0.0, "seed": s, **_run(70 + s)} for s in SEEDS]
    return [_csv(tmp_path, "pruning.csv", rows), CHOSEN]


COST_METHODS = [(labels.DEDICATED, 70, 1.0, 1.0, None), (labels.JOINT, 71, 1.3, 1.0, None),
                (labels.EMQ, 72, 2.0, 1.0, "2,4,5,6,7,8,32"), (labels.FULL_DATA_BITWISE, 73, 0.9, 0.8, None),
                (labels.emq_coreset(0.2), 69, 5.0, 4.0, "2,3,4,5,6,7,8,32")]


def _cost_rows():
    rows = []
    for seed in SEEDS:
        for method, acc, wall, passes, served in COST_METHODS:
            n = len(served.split(",")) if served else 0
            rows.append({"method": method, "seed": seed, "fraction": 0.2 if labels.is_emq_coreset(method) else 1.0,
                         **_run(acc + seed * (method == labels.EMQ)), "speedup_wall": wall + 0.1 * seed,
                         "speedup_passes": passes, "served_bits": served,
                         "speedup_wall_served": wall * n / 4 if served else None,
                         "speedup_passes_served": passes * n / 4 if served else None,
                         "design_pass_ratio": n / (4 * 0.2) if labels.is_emq_coreset(method) else (n / 4 or None)})
    return rows


def training_cost(tmp_path):
    return [_csv(tmp_path, "training_cost.csv", _cost_rows())]


def _fraction_rows(methods, fractions=(0.1, 0.3, 0.5), noise=0.0, full=True):
    rows = [{"method": m, "fraction": f, "seed": s, "label_noise": noise, **_run(60 + 20 * f - i + 0.3 * s * i)}
            for s in SEEDS for f in fractions for i, m in enumerate(methods)]
    return rows + ([{"method": labels.FULL_DATA, "fraction": 1.0, "seed": s, "label_noise": noise, **_run(75 + s)}
                    for s in SEEDS] if full else [])


def acs(tmp_path):
    schedule = [{"schedule": sch, "fraction": 0.1, "seed": 0, **_run(60 + i)}
                for i, sch in enumerate(("cosine", "linear", "fixed"))]
    interval = [{"interval": i, "fraction": 0.1, "seed": 0, **_run(62 - k)} for k, i in enumerate(("1", "2", "once"))]
    return [_csv(tmp_path, "acs_fractions.csv", _fraction_rows(("acs", "random-once", "random"))),
            _csv(tmp_path, "acs_schedule.csv", schedule), _csv(tmp_path, "acs_interval.csv", interval)]


def acs_baselines(tmp_path):
    cost = [{"method": m, "fraction": f, "seed": s, "selection_seconds": 0.3 if m == "acs" else 0.01,
             "reference_seconds": 4.0, "teacher_share_measured": 0.2 + 0.01 * s if f < 0.5 else float("nan"),
             "teacher_share_passes": 0.25} for s in SEEDS for f in (0.1, 0.3, 0.5) for m in ("acs", "random", "el2n")]
    return [_csv(tmp_path, "acs_baselines.csv", _fraction_rows(("acs", "random-once", "random", "rs2", "el2n"))),
            _csv(tmp_path, "acs_cost.csv", cost)]


def acs_ablations(tmp_path):
    transfer = [{"model": m, "coreset": c, "seed": s, "avg_accuracy": 60 + i + s, "valid": True}
                for s in SEEDS for m, other in (("resnet8", "mobilenetv2"), ("mobilenetv2", "resnet8"))
                for i, c in enumerate(("own ACS", f"ACS of {other}", "random-once", "random"))]
    overlap = [{"epoch": e, "bits": 2, "overlap": 30.0 + e + s, "models": "resnet8 / mobilenetv2", "fraction": 0.1,
                "seed": s} for s in SEEDS for e in (0, 2)]
    vit = [{"method": m, "seed": s, "model": "vit", **_run(40 + i + s)} for s in SEEDS
           for i, m in enumerate(("acs", "random-once", "random"))]
    return [_csv(tmp_path, "acs_split.csv", _fraction_rows(("acs", "split", "rs2", "random-once"), full=False)),
            _csv(tmp_path, "acs_no_distillation.csv", _fraction_rows(("acs", "el2n", "random"), full=False)),
            _csv(tmp_path, "acs_transfer.csv", transfer), _csv(tmp_path, "acs_overlap.csv", overlap),
            _csv(tmp_path, "acs_vit.csv", vit)]


def label_noise(tmp_path):
    return [_csv(tmp_path, "label_noise.csv", _fraction_rows(("acs", "el2n", "random-once"), (0.3, 0.5), noise=0.1))]


def score_extraction(tmp_path):
    rows = [{"variant": v, "seed": s, "fraction": 0.2, **_run(65 - i + s, 10 + i),
             "reference_seconds": 5.0 if "reference" in v else 0.0}
            for s in SEEDS
            for i, v in enumerate([*list(extraction.VARIANTS)[:4], "bit-wise, dynamic, from the FP reference"])]
    return [_csv(tmp_path, "score_extraction.csv", rows)]


def claims_forest(tmp_path):
    """A results folder with the cost table only (the claims that read it are graded, the others not run), and
    the claims table notebook 09 builds from it (the test points EMQ_RESULTS_DIR at tmp_path / "results")."""
    results = tmp_path / "results"
    results.mkdir(exist_ok=True)
    rows = _cost_rows()
    rows[0] = {**rows[0], "valid": False, "invalid_reason": "at chance level"}  # a Dedicated run: E4, P1 invalid
    _csv(results, "training_cost.csv", rows)
    return [_csv(results, "claims.csv", claims.build_claims("smoke").to_dict("records"))]


def bench(tmp_path):
    return [paths.ROOT / "results" / "bench.csv"]


FIGURES = {"bit_accuracy": bit_accuracy, "activation_alignment": activation_alignment, "shared_bn": shared_bn,
           "quant_core_check": quant_core_check, "gradient_angles": gradient_angles, "regime": regime,
           "pruning": pruning, "training_cost": training_cost, "acs": acs, "acs_baselines": acs_baselines,
           "acs_ablations": acs_ablations, "label_noise": label_noise, "score_extraction": score_extraction,
           "claims_forest": claims_forest, "bench": bench}
# the figures that draw differences to a reference (marks on an axis framed on them, never bars)
DIFFERENCES = ["shared_bn", "quant_core_check", "pruning", "training_cost", "acs", "acs_baselines", "acs_ablations",
               "label_noise", "score_extraction", "claims_forest"]


@pytest.fixture
def draw(tmp_path, monkeypatch):
    """Draw figure ``name`` from its hand-made CSVs into tmp_path/out; returns (Figure, png path)."""
    monkeypatch.setenv("EMQ_RESULTS_DIR", str(tmp_path / "results"))

    def draw_(name: str):
        png = tmp_path / "out" / f"{name}.png"
        return getattr(plots, f"plot_{name}")(*FIGURES[name](tmp_path), png_path=png), png
    return draw_


# ---------------------------------------------------------------- reading a drawn figure

def _labelled(ax, which: str) -> bool:
    """The axis has a label, or shares it with a panel that has one (a grid labels its outer panels),
    or is categorical with named ticks (rows per method)."""
    def named(panel) -> bool:
        ticks = [t.get_text() for t in getattr(panel, f"get_{which}ticklabels")()]
        return bool(ticks) and all(t and not t.replace(".", "").replace("−", "").replace("+", "").isdigit()
                                   for t in ticks)

    shared = ax.get_shared_x_axes() if which == "x" else ax.get_shared_y_axes()
    return any(getattr(p, f"get_{which}label")() or named(p) for p in shared.get_siblings(ax))


def _marks(ax, y: float, size: float | None = None) -> list[tuple[float, str]]:
    """(x, colour) of the scatter marks at row ``y`` (within ±0.3) of a horizontal dot plot; ``size``: only marks
    of that size (the mean's diamond is 50, a seed's dot 18)."""
    found = []
    for collection in ax.collections:
        offsets, colors = collection.get_offsets(), collection.get_facecolors()
        sizes = collection.get_sizes()
        for k, (x, row) in enumerate(np.asarray(offsets)):
            if abs(row - y) <= 0.3 and len(colors) and (size is None or sizes[k % len(sizes)] == size):
                found.append((float(x), to_hex(colors[k % len(colors)], keep_alpha=False)))
    return found


def _row(ax, name: str) -> int:
    return [t.get_text() for t in ax.get_yticklabels()].index(name)


# ---------------------------------------------------------------- tests

def test_every_plot_function_has_a_test():
    assert {name.removeprefix("plot_") for name in plots.__all__ if name.startswith("plot_")} == set(FIGURES)


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_plot_draws_from_the_csv_and_writes_a_png(draw, name):
    fig, png = draw(name)
    assert isinstance(fig, Figure)
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000
    assert not list(png.parent.glob(".*.tmp"))  # written atomically, no temporary file left
    assert plt.get_fignums() == []  # pyplot keeps no figure open
    for ax in fig.axes:
        assert _labelled(ax, "x") and _labelled(ax, "y"), f"an axis of {name} has no label"
    assert fig.get_suptitle() or any(ax.get_title() for ax in fig.axes)


def _zero_lines(ax) -> list[str]:
    """The axes ("x" or "y") along which ``ax`` draws a zero line (the reference of a difference)."""
    found = []
    for line in ax.lines:
        x, y = np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)
        if len(x) == 2 and (x == 0).all() and y[0] != y[1]:
            found.append("x")
        if len(y) == 2 and (y == 0).all() and x[0] != x[1]:
            found.append("y")
    return found


@pytest.mark.parametrize("name", DIFFERENCES)
def test_differences_are_marks_on_an_axis_framed_on_them_never_bars_from_zero(draw, name):
    """No bars; and where a zero line marks the reference, the axis shows both sides of it (it is framed on the
    differences, never starting at 0)."""
    fig, _ = draw(name)
    framed = 0
    for ax in fig.axes:
        assert not [c for c in ax.containers if isinstance(c, BarContainer)], f"{name} draws bars"
        for axis in _zero_lines(ax):
            low, high = ax.get_xlim() if axis == "x" else ax.get_ylim()
            assert min(low, high) < 0 < max(low, high), f"{name}: a difference axis that starts at 0"
            framed += 1
    assert framed or name == "claims_forest", f"{name} draws no zero line for its differences"


def test_a_difference_is_paired_by_seed_with_its_interval(draw):
    """plot_pruning's mean mark of an arm is the mean over seeds of (arm - chosen) of the same seed, and its
    interval is the 95% t-interval of those differences."""
    fig, _ = draw("pruning")
    ax = fig.axes[0]
    table = pd.DataFrame([{"method": m, "seed": s, "acc": 60 - i + 0.5 * s * i} for s in SEEDS
                          for i, m in enumerate(PRUNING_ARMS)]).pivot(index="seed", columns="method", values="acc")
    arm = "random, re-drawn every epoch"
    expected = (table[arm] - table[CHOSEN])
    (mean_x, _), = _marks(ax, _row(ax, arm), size=50)
    assert mean_x == pytest.approx(expected.mean())
    seeds_x = sorted(x for x, _ in _marks(ax, _row(ax, arm), size=18))
    assert seeds_x == pytest.approx(sorted(expected))
    lines = [line for line in ax.lines if len(line.get_ydata()) == 2 and line.get_ydata()[0] == _row(ax, arm)]
    (interval,) = lines
    assert list(interval.get_xdata()) == pytest.approx(list(plots.t_interval(expected)[1:]))


def test_a_method_has_the_same_colour_in_every_figure(draw):
    """Random re-drawn every epoch (the 80% table's arm and the ACS tables' rule) is drawn in its palette colour
    in both figures; EMQ's chosen sampler takes EMQ's coreset colour."""
    random = plots.method_color("random")
    fig, _ = draw("pruning")
    ax = fig.axes[0]
    assert {c for _, c in _marks(ax, _row(ax, "random, re-drawn every epoch"))} == {random}
    fig, _ = draw("acs_baselines")
    ax = fig.axes[0]
    assert {c for _, c in _marks(ax, _row(ax, "random, re-drawn every epoch"))} == {random}
    assert plots.method_color(CHOSEN, chosen=CHOSEN) == plots.method_color(labels.emq_coreset(0.2)) == plots.HIGHLIGHT
    assert plots.method_color("an unknown label") == plots.method_color("an unknown label")  # by its text


def test_every_arm_of_the_studies_has_a_colour_of_the_palette():
    arms = [*pruning_study.ARMS, *acs_study.BASELINES, "acs", "split", *bn_study.VARIANTS, *bn_study.ABLATIONS,
            *extraction.VARIANTS, labels.DEDICATED, labels.JOINT, labels.EMQ, labels.FULL_DATA,
            labels.FULL_DATA_BITWISE, labels.EQUAL_BUDGET, labels.EQUAL_BUDGET_BITWISE, labels.emq_coreset(0.2)]
    unknown = [a for a in arms if plots.METHOD_ALIASES.get(a, a) not in plots.METHOD_COLORS
               and not labels.is_emq_coreset(a) and not a.startswith(plots.EMQ_DESIGN_PREFIX)]
    assert not unknown, f"add these labels to plots.METHOD_COLORS or METHOD_ALIASES: {unknown}"
    assert plots.SHARED_BN_REFERENCE in bn_study.VARIANTS  # the default reference of notebook 02's figures


def _is_red(color: str) -> bool:
    hue, lightness, saturation = colorsys.rgb_to_hls(*to_rgb(color))
    return (hue < 0.04 or hue > 0.96) and saturation > 0.4 and 0.25 < lightness < 0.75


def test_red_means_not_reproduced_only():
    methods = [*plots.METHOD_COLORS.values(), *plots.FALLBACK_COLORS, plots.EMQ_DESIGN_COLOR, plots.TRANSFERRED_COLOR]
    assert _is_red(plots.STATUS_COLORS["not reproduced"]) and plots.WRONG == plots.STATUS_COLORS["not reproduced"]
    assert not [c for c in methods if _is_red(c)]
    assert not [s for s, c in plots.STATUS_COLORS.items() if s != "not reproduced" and _is_red(c)]
    assert len(set(plots.STATUS_COLORS.values())) == len(plots.STATUS_COLORS)
    assert not set(plots.STATUS_COLORS.values()) & set(methods)


def test_the_forest_has_a_row_per_claim_with_values_and_lists_the_others(draw, tmp_path):
    fig, _ = draw("claims_forest")
    table = pd.read_csv(tmp_path / "results" / "claims.csv")
    drawn = table[table.n_seeds > 0]
    assert set(drawn.status) >= {"invalid"} and set(drawn.status) & set(plots.GRADED)
    rows = [t.get_text().split()[0].rstrip("*") for ax in fig.axes for t in ax.get_yticklabels()]
    assert sorted(rows) == sorted(drawn.claim_id)
    title = fig.legends[0].get_title().get_text()
    assert all(cid in title for cid in table[table.n_seeds == 0].claim_id)
    for ax in fig.axes:  # each row's mean diamond in its status colour
        for i, text in enumerate(t.get_text() for t in ax.get_yticklabels()):
            row = table.set_index("claim_id").loc[text.split()[0].rstrip("*")]
            assert plots.STATUS_COLORS[row.status] in {c for _, c in _marks(ax, i, size=50)}


def test_the_forest_refuses_a_claims_table_graded_on_other_results(tmp_path, monkeypatch):
    monkeypatch.setenv("EMQ_RESULTS_DIR", str(tmp_path / "results"))
    (csv,) = claims_forest(tmp_path)
    cost = pd.read_csv(tmp_path / "results" / "training_cost.csv")
    cost.loc[cost.method == labels.JOINT, "avg_accuracy"] += 5.0 * cost.seed  # P1's values change
    cost.to_csv(tmp_path / "results" / "training_cost.csv", index=False)
    with pytest.raises(ValueError, match=r"claims.csv graded P1 on other results.*rebuild claims.csv"):
        plots.plot_claims_forest(csv, tmp_path / "forest.png")
    assert not (tmp_path / "forest.png").exists()


@pytest.mark.parametrize("name", ["bit_accuracy", "acs"])
def test_plot_writes_into_the_figures_folder_by_default(tmp_path, monkeypatch, name):
    monkeypatch.setenv("EMQ_FIGURES_DIR", str(tmp_path / "figures"))
    getattr(plots, f"plot_{name}")(*FIGURES[name](tmp_path))
    assert (tmp_path / "figures" / f"{name}.png").read_bytes()[:8] == PNG_MAGIC


def test_a_csv_without_the_needed_columns_is_refused(tmp_path):
    path = _csv(tmp_path, "bad.csv", [{"bits": 2, "acc": 50.0}])
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['accuracy', 'trained'\]"):
        plots.plot_bit_accuracy(path, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_a_reference_the_csv_lacks_is_refused(tmp_path):
    csv, _ = pruning(tmp_path)
    with pytest.raises(ValueError, match="no rows of the chosen sampler 'EMQ: no such design'"):
        plots.plot_pruning(csv, "EMQ: no such design", tmp_path / "p.png")
    (csv,) = quant_core_check(tmp_path)
    with pytest.raises(ValueError, match="no rows of the reference variant 'switchable BN"):
        plots.plot_quant_core_check(csv, tmp_path / "q.png", reference="switchable BN (joint)")
