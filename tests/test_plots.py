"""Figures are drawn from CSVs alone: each plot function reads a small hand-made CSV and writes a PNG."""
from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere: no display needed

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from emqlib.harness import labels, plots# noqa: E402

BITS = (1, 2, 3, 4, 5, 6, 7, 8, 32)
TRAINED = (2, 4, 8, 32)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _csv(tmp_path, name: str, rows: list[dict]):
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _cost_columns(acc: float, seconds: float, passes: int = 100) -> dict:
    return {"acc_2": acc, "avg_accuracy": acc, "train_seconds": seconds, "selection_seconds": 0.1 * seconds,
            "wall_seconds": 1.1 * seconds, "sample_passes": passes, "teacher_forwards": 0, "selection_forwards": 30,
            "subset_flipped": 2, "reference_seconds": 1.0, "run": "abc"}


# ---------------------------------------------------------------- one hand-made CSV per figure

def bit_accuracy(tmp_path):
    rows = [{"bits": b, "accuracy": 60 + b % 7, "loss": 1.0, "trained": b in TRAINED, "recalibrated": False}
            for b in BITS]
    return [_csv(tmp_path, "quickstart_eval.csv", rows)]


def activation_alignment(tmp_path):
    rows = [{"bits": b, "layer": f"layers.{i}.bn", "layer_index": i, "mean_gap": 0.0 if i == 0 else 0.1 / b,
             "var_log_ratio": 0.05 * i / b, "variant": variant, "trained": b in TRAINED}
            for variant in ("shared BN + correction", "shared BN, no correction") for b in BITS[:-1] for i in range(4)]
    return [_csv(tmp_path, "activation_alignment.csv", rows)]


def _all_bits_rows(variants):
    return [{"bits": b, "accuracy": 50 + b % 9 + seed, "loss": 1.0, "trained": b in TRAINED, "recalibrated": False,
             "variant": v, "seed": seed, "run": "abc"} for v in variants for seed in (0, 1) for b in BITS]


def shared_bn(tmp_path):
    return [_csv(tmp_path, "shared_bn.csv", _all_bits_rows(["switchable BN (joint)", "shared BN + correction"]))]


def quant_core_check(tmp_path):
    return [_csv(tmp_path, "quant_core_check.csv", _all_bits_rows(["shared BN + correction", "shared BN, no correction"]))]


def gradient_angles(tmp_path):
    rows = []
    for epoch, (a, b) in itertools.product(range(3), itertools.combinations((32, 8, 4, 2), 2)):
        rows += [{"bits_a": a, "bits_b": b, "layer": f"conv{i}", "layer_index": i, "angle": 10 + 5 * i - epoch,
                  "epoch": epoch} for i in range(3)]
        rows.append({"bits_a": a, "bits_b": b, "layer": "all", "layer_index": -1, "angle": 12 - epoch, "epoch": epoch})
    return [_csv(tmp_path, "gradient_angles.csv", rows)]


def training_cost(tmp_path):
    rows = []
    for seed in (0, 1):
        for method, seconds, passes, speed in [("Dedicated", 40, 400, 1.0), ("Joint (Any-Precision)", 30, 400, 1.3),
                                               ("EMQ", 20, 400, 2.0), ("EMQ + bit-wise coreset (20%)", 8, 80, 5.0)]:
            rows.append({"method": method, "seed": seed, **_cost_columns(70 + seed, seconds + seed, passes),
                         "pass_equivalents": passes + 10, "speedup_wall": speed, "speedup_passes": 400 / (passes + 10),
                         "speedup_wall_served": 2.25 * speed, "served_bits": "2,3,4,5,6,7,8,32"})
    return [_csv(tmp_path, "training_cost.csv", rows)]


def pruning(tmp_path):
    rows = [{"method": m, "pruning_rate": r, "seed": s, **_cost_columns(80 - 20 * r - i, 5)}
            for r in (0.3, 0.5, 0.8) for s in ((0, 1) if r == 0.8 else (0,))
            for i, m in enumerate(("random", "tdds", labels.EMQ_CORESET))]
    rows += [{"method": labels.EQUAL_BUDGET, "pruning_rate": 0.8, "seed": s, **_cost_columns(60, 5)} for s in (0, 1)]
    rows += [{"method": "full data", "pruning_rate": 0.0, "seed": s, **_cost_columns(82 + s, 10)} for s in (0, 1)]
    return [_csv(tmp_path, "pruning.csv", rows)]


def _fraction_rows(methods, noise=0.0):
    rows = [{"method": m, "fraction": f, "seed": 0, "label_noise": noise, **_cost_columns(60 + 20 * f + i, 2)}
            for f in (0.1, 0.3, 0.5) for i, m in enumerate(methods)]
    full = {"method": "full data", "fraction": 1.0, "seed": 0, "label_noise": noise, **_cost_columns(75, 9)}
    return rows + [{**full, "subset_flipped": 20}]


def acs(tmp_path):
    schedule = [{"schedule": s, "fraction": 0.1, "seed": 0, **_cost_columns(60 + i, 1)}
                for i, s in enumerate(("cosine", "linear", "fixed"))]
    interval = [{"interval": i, "fraction": 0.1, "seed": 0, **_cost_columns(62 - k, 1)}
                for k, i in enumerate(("1", "2", "once"))]
    return [_csv(tmp_path, "acs_fractions.csv", _fraction_rows(("acs", "random"))),
            _csv(tmp_path, "acs_schedule.csv", schedule), _csv(tmp_path, "acs_interval.csv", interval)]


def acs_baselines(tmp_path):
    cost = [{"method": m, "fraction": f, "seed": 0, "selection_seconds": 0.3, "student_seconds": 2 * f,
             "teacher_seconds": 0.5 * f if m == "random" else float("nan"), "train_seconds": 2.5 * f,
             "reference_seconds": 4.0} for f in (0.1, 0.3, 0.5) for m in ("acs", "random")]
    return [_csv(tmp_path, "acs_baselines.csv", _fraction_rows(("acs", "random", "el2n", "emq-ccs"))),
            _csv(tmp_path, "acs_cost.csv", cost)]


def acs_ablations(tmp_path):
    transfer = [{"model": m, "coreset": c, "seed": 0, "avg_accuracy": 60 + i}
                for m in ("resnet8", "mobilenetv2") for i, c in enumerate(("own ACS", "ACS of x", "random"))]
    overlap = [{"epoch": e, "bits": 2, "overlap": 30.0 + e, "seed": 0} for e in (0, 2)]
    vit = [{"method": m, "seed": 0, "avg_accuracy": 40 + i} for i, m in enumerate(("acs", "random"))]
    return [_csv(tmp_path, "acs_split.csv", _fraction_rows(("acs", "split", "random"))[:-1]),
            _csv(tmp_path, "acs_no_distillation.csv", _fraction_rows(("acs", "el2n", "random"))[:-1]),
            _csv(tmp_path, "acs_transfer.csv", transfer), _csv(tmp_path, "acs_overlap.csv", overlap),
            _csv(tmp_path, "acs_vit.csv", vit)]


def label_noise(tmp_path):
    return [_csv(tmp_path, "label_noise.csv", _fraction_rows(("acs", "el2n", "random"), noise=0.1))]


def coreset_design(tmp_path):
    variants = ("random, re-drawn every epoch", "sampled (tau 1, eps 0.1), scored once", "equal-budget full data")
    rows = [{"variant": v, "seed": s, "pruning_rate": 0.8, **_cost_columns(80 - i + s, 10 + i)}
            for s in (0, 1) for i, v in enumerate(variants)]
    return [_csv(tmp_path, "coreset_design.csv", rows), variants[1]]


def score_extraction(tmp_path):
    rows = [{"variant": v, "seed": 0, "fraction": 0.2, **_cost_columns(65 - i, 10 + i)}
            for i, v in enumerate(("bit-wise, dynamic (EMQ)", "bit-wise, static", "batch extraction, dynamic"))]
    return [_csv(tmp_path, "score_extraction.csv", rows)]


FIGURES = {"bit_accuracy": bit_accuracy, "activation_alignment": activation_alignment, "shared_bn": shared_bn,
           "quant_core_check": quant_core_check, "gradient_angles": gradient_angles, "training_cost": training_cost,
           "pruning": pruning, "acs": acs, "label_noise": label_noise, "score_extraction": score_extraction,
           "coreset_design": coreset_design, "acs_baselines": acs_baselines, "acs_ablations": acs_ablations}


# ---------------------------------------------------------------- tests

def _labelled(ax, which: str) -> bool:
    """The axis has a label, or shares it with a panel that has one (a grid labels its outer panels),
    or is categorical with named ticks (bars per method)."""
    def named(panel) -> bool:
        ticks = [t.get_text() for t in getattr(panel, f"get_{which}ticklabels")()]
        return bool(ticks) and all(t and not t.replace(".", "").replace("−", "").isdigit() for t in ticks)

    shared = ax.get_shared_x_axes() if which == "x" else ax.get_shared_y_axes()
    return any(getattr(p, f"get_{which}label")() or named(p) for p in shared.get_siblings(ax))


def test_every_plot_function_has_a_test():
    assert {name.removeprefix("plot_") for name in plots.__all__} == set(FIGURES)


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_plot_draws_from_the_csv_and_writes_a_png(tmp_path, name):
    csvs = FIGURES[name](tmp_path)
    png = tmp_path / "out" / f"{name}.png"
    fig = getattr(plots, f"plot_{name}")(*csvs, png_path=png)
    assert isinstance(fig, Figure)
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5000
    assert not list(png.parent.glob(".*.tmp"))  # written atomically, no temporary file left
    assert plt.get_fignums() == []  # pyplot keeps no figure open
    for ax in fig.axes:
        assert _labelled(ax, "x") and _labelled(ax, "y"), f"an axis of {name} has no label"
    assert fig.get_suptitle() or any(ax.get_title() for ax in fig.axes)


@pytest.mark.parametrize("name", ["bit_accuracy", "acs"])
def test_plot_writes_into_the_figures_folder_by_default(tmp_path, monkeypatch, name):
    monkeypatch.setenv("EMQ_FIGURES_DIR", str(tmp_path / "figures"))
    getattr(plots, f"plot_{name}")(*FIGURES[name](tmp_path))
    assert (tmp_path / "figures" / f"{name}.png").read_bytes()[:8] == PNG_MAGIC


def test_label_noise_uses_the_subset_size_when_the_csv_has_it(tmp_path):
    path, = label_noise(tmp_path)
    frame = pd.read_csv(path)
    frame.assign(subset_size=(frame.fraction * 200).round().astype(int)).to_csv(path, index=False)
    fig = plots.plot_label_noise(path, tmp_path / "noise.png")
    assert "estimated" not in fig.axes[1].get_ylabel()


def test_a_csv_without_the_needed_columns_is_refused(tmp_path):
    path = _csv(tmp_path, "bad.csv", [{"bits": 2, "acc": 50.0}])
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['accuracy', 'trained'\]"):
        plots.plot_bit_accuracy(path, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
