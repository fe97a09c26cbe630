"""Figures: one function per figure, each drawn from result CSVs only (never from a trained model).

``plot_<name>(csv_path, png_path=None)`` reads the CSV a notebook saved in ``results/``, draws
the figure, writes ``figures/<name>.png`` (or ``png_path``) atomically and returns the
matplotlib Figure, so any figure can be redrawn without retraining::

    from emqlib.harness import plots, results
    plots.plot_shared_bn(results.result_path("shared_bn.csv"))

The functions never call ``show()`` and close the figure after saving (no pyplot state is
kept), so they work under the non-interactive "Agg" backend; in a notebook the returned
Figure is displayed once as the cell's value.
"""
from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from . import labels, paths
from ..bits import SUPPORTED_BITS  # the categorical bit-width axis, in order (32 = full precision)
from .stats import mean_std
from .targets import TARGETS
from .storage import atomic_write_bytes

DPI = 120  # about 1400 px across for the wide figures: sharp at README width
GRADIENT_ANGLE_BOUND = 28.0  # degrees: the paper's bound on angles between bit-widths' gradients (EMQ, technical details; claim E10)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # distinguishes lines that coincide
HIGHLIGHT = "#d62728"  # the method or variant the notebook is about
BASELINE = "#7f7f7f"  # full-data and other reference lines
CORESET_NAMES = {"random": "Random (re-drawn every epoch)", "tdds": "TDDS", "el2n": "EL2N", "acs": "ACS",
                 labels.EMQ_CORESET: "EMQ bit-wise coreset",
                 "forgetting": "Forgetting", "kcenter": "kCenterGreedy", "moderate": "Moderate",
                 labels.EQUAL_BUDGET: "equal-budget full data (fewer epochs)",
                 labels.EQUAL_BUDGET_BITWISE: "equal-budget full data, bit-wise loop",
                 "emq-ccs": "CCS (coverage-centric)", "split": "full-coverage split"}
CORESET_COLORS = {"random": "#7f7f7f", "tdds": "#9467bd", "el2n": "#2ca02c", "acs": "#1f77b4", labels.EMQ_CORESET: HIGHLIGHT,
                  "forgetting": "#8c564b", "kcenter": "#e377c2", "moderate": "#bcbd22", labels.EQUAL_BUDGET: "#000000",
                  labels.EQUAL_BUDGET_BITWISE: "#17becf", "emq-ccs": "#ff7f0e", "split": "#8c8c00"}
STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 10,
         "xtick.labelsize": 10, "ytick.labelsize": 10, "figure.titlesize": 13, "axes.grid": True,
         "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}

PathLike = str | os.PathLike


# ---------------------------------------------------------------- shared helpers

@contextlib.contextmanager
def _style() -> Iterator[None]:
    with mpl.rc_context(STYLE):
        yield


def _read(csv_path: PathLike, columns: Sequence[str]) -> pd.DataFrame:
    """The CSV as a frame; a clear error when it is empty or lacks a column the figure needs."""
    frame = pd.read_csv(csv_path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{csv_path} lacks the column(s) {missing} needed for this figure; "
                         f"it has {list(frame.columns)}")
    if frame.empty:
        raise ValueError(f"{csv_path} has no rows to plot")
    return frame


def _finish(fig: Figure, png_path: PathLike | None, name: str) -> Figure:
    """Save ``fig`` as PNG atomically (default ``figures_dir()/<name>.png``), release it from pyplot."""
    path = Path(png_path) if png_path is not None else paths.figures_dir() / f"{name}.png"
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    plt.close(fig)  # no pyplot state left behind; a notebook still displays the returned Figure
    return fig


def _agg(frame: pd.DataFrame, by: Sequence[str] | str, value: str) -> pd.DataFrame:
    """:func:`emqlib.harness.stats.mean_std` with no error bar (std 0) where a group has one seed."""
    return mean_std(frame, by, value).fillna({"std": 0.0})


def _seeds_note(frame: pd.DataFrame, by: Sequence[str] | None = None) -> str:
    """"one seed", "mean ± std over n seeds", or, when points differ (``by``: the point's columns),
    "one seed per point; mean ± std where n seeds"."""
    if "seed" not in frame.columns:
        return "one seed"
    counts = frame.groupby(list(by), sort=False).seed.nunique() if by else pd.Series([frame.seed.nunique()])
    low, high = int(counts.min()), int(counts.max())
    if high == 1:
        return "one seed"
    if low == high:
        return f"mean ± std over {high} seeds"
    return f"{'one seed' if low == 1 else f'{low} seeds'} per point; mean ± std where {high} seeds"


def _bit_positions(bits: pd.Series) -> np.ndarray:
    """Positions of bit-widths on the categorical axis 1, 2, ..., 8, 32."""
    order = {b: i for i, b in enumerate(SUPPORTED_BITS)}
    return np.array([order[int(b)] for b in bits], dtype=float)


def _bit_axis(ax: Axes, bits: Sequence[int]) -> None:
    present = [b for b in SUPPORTED_BITS if b in set(int(b) for b in bits)]
    ax.set_xticks(_bit_positions(pd.Series(present)))
    ax.set_xticklabels(["32\n(FP)" if b == 32 else str(b) for b in present])
    ax.set_xlabel("bit-width b (weights and activations)")


def _shade_untrained(ax: Axes, frame: pd.DataFrame) -> None:
    """Grey columns behind the bit-widths that no model in ``frame`` was trained at."""
    trained = frame.groupby("bits")["trained"].apply(lambda t: t.astype(bool).any())
    for b, was_trained in trained.items():
        if not was_trained:
            x = _bit_positions(pd.Series([b]))[0]
            ax.axvspan(x - 0.45, x + 0.45, color="0.9", zorder=0, lw=0)


def _full_data_line(ax: Axes, full: pd.DataFrame, value: str = "avg_accuracy", label: str = labels.FULL_DATA) -> None:
    """A horizontal line at the full-data mean, with a ± std band when there are several seeds."""
    if full.empty:
        return
    mean, std = full[value].mean(), full[value].std()
    n = len(full)
    ax.axhline(mean, color=BASELINE, ls="--", lw=1.5, label=f"{label} ({mean:.1f}%)" if n == 1
               else f"{label} ({mean:.1f} ± {std:.1f}%)")
    if n > 1 and np.isfinite(std):
        ax.axhspan(mean - std, mean + std, color=BASELINE, alpha=0.12, lw=0)


def _annotate_bars(ax: Axes, y: np.ndarray, ends: np.ndarray, texts: Sequence[str], room: float = 1.5) -> None:
    """Text just right of each horizontal bar; widens the x range so the text fits."""
    span = float(np.nanmax(ends)) if len(ends) else 1.0
    span = span if span > 0 else 1.0
    for yi, end, text in zip(y, ends, texts):
        ax.text(end + 0.02 * span, yi, text, va="center", ha="left", fontsize=9.5)
    ax.set_xlim(0, span * room)


def _barh(ax: Axes, stats: pd.DataFrame, labels: Sequence[str], highlight: Sequence[bool] | None = None,
          fmt: str = "{:.1f}%", room: float = 1.3) -> None:
    """Horizontal bars (mean, ± std error bars) for ``stats`` from :func:`_agg`, first row on top."""
    y = np.arange(len(stats))[::-1]
    colors = [HIGHLIGHT if h else "#1f77b4" for h in (highlight if highlight is not None else [False] * len(stats))]
    xerr = stats["std"].where(stats["n"] > 1, 0.0) if (stats["n"] > 1).any() else None
    ax.barh(y, stats["mean"], xerr=xerr, color=colors, alpha=0.85, capsize=3, error_kw={"lw": 1})
    ax.set_yticks(y)
    ax.set_yticklabels(labels)
    ax.grid(axis="y", visible=False)
    _annotate_bars(ax, y, (stats["mean"] + stats["std"]).to_numpy(), [fmt.format(v) for v in stats["mean"]], room)


# ---------------------------------------------------------------- 00: quickstart

def plot_bit_accuracy(csv_path: PathLike, png_path: PathLike | None = None) -> Figure:
    """Test accuracy (%) of one multi-bit model at every bit-width; trained bit-widths filled,
    the others (never trained, no fine-tuning) hollow. CSV: ``bits, accuracy, trained``."""
    frame = _read(csv_path, ["bits", "accuracy", "trained"])
    per_bit = frame.groupby("bits", sort=True).agg(accuracy=("accuracy", "mean"), trained=("trained", "any"))
    per_bit = per_bit.reindex([b for b in SUPPORTED_BITS if b in per_bit.index]).reset_index()
    x = _bit_positions(per_bit.bits)
    with _style():
        fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
        _shade_untrained(ax, frame)
        ax.plot(x, per_bit.accuracy, color="0.6", lw=1.2, zorder=1)
        trained = per_bit.trained.astype(bool).to_numpy()
        ax.scatter(x[trained], per_bit.accuracy[trained], s=60, color="#1f77b4", zorder=3, label="trained bit-width")
        ax.scatter(x[~trained], per_bit.accuracy[~trained], s=60, facecolors="white", edgecolors="#1f77b4",
                   linewidths=1.8, zorder=3, label="not trained (grey columns): no fine-tuning")
        for xi, acc in zip(x, per_bit.accuracy):
            ax.annotate(f"{acc:.1f}", (xi, acc), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=9)
        _bit_axis(ax, per_bit.bits)
        ax.set_ylabel("test accuracy (%)")
        low, high = per_bit.accuracy.min(), per_bit.accuracy.max()
        pad = max(2.0, 0.15 * (high - low))
        ax.set_ylim(low - pad, high + 2 * pad)
        ax.set_title("One EMQ model evaluated at every bit-width")
        ax.legend(loc="lower right")
    return _finish(fig, png_path, "bit_accuracy")


# ---------------------------------------------------------------- 01: activation alignment

def plot_activation_alignment(csv_path: PathLike, png_path: PathLike | None = None) -> Figure:
    """Per-layer gaps between the BN-input statistics at b bits and at 32 bits (docs/method.md §3.3), one line
    per bit-width; columns: one panel per variant (with / without weight bias correction).
    CSV: ``bits, layer_index, mean_gap, var_log_ratio, variant, trained``."""
    frame = _read(csv_path, ["bits", "layer_index", "mean_gap", "var_log_ratio", "variant", "trained"])
    variants = list(dict.fromkeys(frame.variant))
    bits = sorted(frame.bits.unique())
    trained_bits = set(frame.bits[frame.trained.astype(bool)])
    cmap = mpl.colormaps["viridis"]
    colors = {b: cmap(i / max(1, len(bits) - 1)) for i, b in enumerate(bits)}
    metrics = [("mean_gap", "mean gap  |μ_b − μ_32| / σ_32"), ("var_log_ratio", "variance gap  |log(σ²_b / σ²_32)|")]
    with _style():
        fig, axes = plt.subplots(len(metrics), len(variants), figsize=(5.2 * len(variants) + 1.5, 7.5),
                                 sharex=True, sharey="row", squeeze=False, layout="constrained")
        for col, variant in enumerate(variants):
            part = frame[frame.variant == variant]
            for row, (metric, label) in enumerate(metrics):
                ax = axes[row, col]
                for b in bits:
                    line = part[part.bits == b].sort_values("layer_index")
                    values = line[metric].where(line[metric] > 0)  # exact zeros (identical statistics) cannot be drawn on a log axis
                    ax.plot(line.layer_index, values, marker="o", ms=3.5, color=colors[b],
                            ls="-" if b in trained_bits else "--", lw=2 if b in trained_bits else 1.2,
                            label=f"{b} bit{'s' if b != 1 else ''}" + (" (trained)" if b in trained_bits else ""))
                ax.set_yscale("log")
                if row == 0:
                    ax.set_title(variant)
                if col == 0:
                    ax.set_ylabel(f"{label}\n(unitless, log scale)")
                if row == len(metrics) - 1:
                    ax.set_xlabel("layer index (multi-bit BatchNorm, input → output)")
                ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right center", title="bit-width")
        fig.suptitle("How far each bit-width's BatchNorm inputs are from the 32-bit child's, per layer "
                     "(lower = better aligned; 0 not drawn)")
    return _finish(fig, png_path, "activation_alignment")


# ---------------------------------------------------------------- 02: shared BN at every bit-width

def _accuracy_at_bits(frame: pd.DataFrame, title: str) -> Figure:
    stats = frame.groupby(["variant", "bits"], sort=False).agg(
        mean=("accuracy", "mean"), std=("accuracy", "std"), trained=("trained", "any")).reset_index()
    stats["std"] = stats["std"].fillna(0.0)
    variants = list(dict.fromkeys(frame.variant))
    palette = mpl.colormaps["tab10"]
    offsets = np.linspace(-0.25, 0.25, len(variants)) if len(variants) > 1 else [0.0]
    with _style():
        fig, ax = plt.subplots(figsize=(11, 6.2), layout="constrained")
        _shade_untrained(ax, frame)
        for i, variant in enumerate(variants):
            part = stats[stats.variant == variant]
            part = part.assign(x=_bit_positions(part.bits) + offsets[i]).sort_values("x")
            color = palette(i % 10)
            ax.errorbar(part.x, part["mean"], yerr=part["std"], color=color, lw=1.6, capsize=2.5,
                        ls="-" if i < 10 else "--", label=variant, zorder=2, elinewidth=1, ecolor=(*color[:3], 0.5))
            trained = part.trained.astype(bool)
            ax.scatter(part.x[trained], part["mean"][trained], color=color, s=28, zorder=3)
            ax.scatter(part.x[~trained], part["mean"][~trained], facecolors="white", edgecolors=color, s=28,
                       linewidths=1.4, zorder=3)
        _bit_axis(ax, frame.bits)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(f"{title}\n({_seeds_note(frame)}; grey columns, hollow markers: bit-widths never trained)")
        fig.legend(loc="outside lower center", ncols=3, title="variant")
    return fig


def plot_shared_bn(csv_path: PathLike, png_path: PathLike | None = None) -> Figure:
    """Accuracy at bit-widths 1..8 and 32 of each BatchNorm / correction variant, mean ± std over
    seeds, untrained bit-widths marked. CSV: ``bits, accuracy, trained, variant, seed``."""
    frame = _read(csv_path, ["bits", "accuracy", "trained", "variant", "seed"])
    fig = _accuracy_at_bits(frame, "Accuracy of one multi-bit model at every bit-width, per BN variant")
    return _finish(fig, png_path, "shared_bn")


def plot_quant_core_check(csv_path: PathLike, png_path: PathLike | None = None) -> Figure:
    """EMQ with and without weight bias correction (32-bit activation: clamp or ReLU), accuracy at
    every bit-width. CSV as :func:`plot_shared_bn`."""
    frame = _read(csv_path, ["bits", "accuracy", "trained", "variant", "seed"])
    fig = _accuracy_at_bits(frame, "EMQ with / without weight bias correction, at every bit-width")
    return _finish(fig, png_path, "quant_core_check")


# ---------------------------------------------------------------- 03: gradient angles

def plot_gradient_angles(csv_path: PathLike, png_path: PathLike | None = None) -> Figure:
    """(a) Angle between the whole-model gradients of each pair of trained bit-widths, per epoch,
    with the paper's 28° bound; (b) per-layer angles at the last epoch.
    CSV: ``bits_a, bits_b, layer, layer_index, angle, epoch`` (``layer == "all"``: all layers)."""
    frame = _read(csv_path, ["bits_a", "bits_b", "layer", "layer_index", "angle", "epoch"])
    frame = frame.assign(pair=[f"{a} vs {b} bits" for a, b in zip(frame.bits_a, frame.bits_b)])
    pairs = list(dict.fromkeys(frame.pair))
    palette = mpl.colormaps["tab10"]
    overall = frame[frame.layer == "all"]
    last = frame[(frame.epoch == frame.epoch.max()) & (frame.layer != "all")]
    with _style():
        fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
        for i, pair in enumerate(pairs):
            line = overall[overall.pair == pair].sort_values("epoch")
            style = dict(marker=MARKERS[i % len(MARKERS)], color=palette(i % 10), label=pair, alpha=0.85)
            ax_a.plot(line.epoch + 1, line.angle, **style)
            line = last[last.pair == pair].sort_values("layer_index")
            ax_b.plot(line.layer_index, line.angle, **style)
        for ax in (ax_a, ax_b):
            ax.axhline(GRADIENT_ANGLE_BOUND, color="black", ls="--", lw=1.2,
                       label=f"{GRADIENT_ANGLE_BOUND:.0f}° (paper's bound)")
            ax.set_ylabel("angle between gradients (degrees)")
            ax.set_ylim(bottom=0)
            ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
        ax_a.set_xlabel("epoch (weights at the end of the epoch)")
        ax_a.set_title("(a) whole model, per epoch")
        ax_b.set_xlabel("layer index (quantized layer, input → output)")
        ax_b.set_title(f"(b) per layer, after epoch {int(frame.epoch.max()) + 1}")
        handles, labels = ax_a.get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right center", title="bit-width pair")
        fig.suptitle("Angles between the gradients that different bit-widths send to the shared weights")
    return _finish(fig, png_path, "gradient_angles")


# ---------------------------------------------------------------- 04: training cost

def plot_training_cost(csv_path: PathLike, png_path: PathLike | None = None) -> Figure:
    """Wall-clock training time (mean ± std over seeds) and per-sample passes of each method,
    annotated with the speedup over Dedicated and the average accuracy over the trained bit-widths.
    CSV: ``method, seed, wall_seconds, sample_passes, pass_equivalents, speedup_wall, speedup_passes,
    avg_accuracy`` (optional ``reference_seconds``; ``speedup_wall_served`` and ``served_bits``: the speed-up
    over Dedicated trained on every bit-width the model serves)."""
    frame = _read(csv_path, ["method", "seed", "wall_seconds", "sample_passes", "pass_equivalents",
                             "speedup_wall", "speedup_passes", "avg_accuracy"])
    methods = list(dict.fromkeys(frame.method))
    mean = frame.groupby("method", sort=False).mean(numeric_only=True).reindex(methods)
    std = frame.groupby("method", sort=False).std(numeric_only=True).reindex(methods).fillna(0.0)
    y = np.arange(len(methods))[::-1]
    dedicated = [m == labels.DEDICATED for m in methods]
    colors = [BASELINE if d else (HIGHLIGHT if labels.is_emq_coreset(m) else "#1f77b4") for m, d in zip(methods, dedicated)]
    reference = mean["reference_seconds"] if "reference_seconds" in mean else pd.Series(0.0, index=methods)
    with _style():
        fig, (ax_t, ax_p) = plt.subplots(1, 2, figsize=(14, 0.75 * len(methods) + 2.6), sharey=True,
                                         layout="constrained")
        ax_t.barh(y, mean.wall_seconds, xerr=std.wall_seconds, color=colors, alpha=0.85, capsize=3,
                  label="training + selection")
        if (reference > 0).any():
            ax_t.barh(y, reference, left=mean.wall_seconds, color="white", edgecolor="0.4", hatch="//",
                      label="full-precision reference run (shared)")
        texts = []
        for m, d in zip(methods, dedicated):
            row = mean.loc[m]
            speed = "baseline" if d else f"{row.speedup_wall:.2f}× faster"
            if not d and "speedup_wall_served" in mean and not np.isnan(row.speedup_wall_served):
                n = len(str(frame[frame.method == m].served_bits.iloc[0]).split(","))
                speed += f" ({row.speedup_wall_served:.1f}× vs {n} models)"
            texts.append(f"{speed}\navg acc {row.avg_accuracy:.1f}%")
        _annotate_bars(ax_t, y, (mean.wall_seconds + std.wall_seconds + reference).to_numpy(), texts, room=1.9)
        ax_t.set_yticks(y)
        ax_t.set_yticklabels(methods)
        ax_t.set_xlabel("wall-clock training time (s)")
        ax_t.set_title(f"(a) wall-clock ({_seeds_note(frame)})")
        if (reference > 0).any():
            ax_t.legend(loc="lower right")

        extra = mean.pass_equivalents - mean.sample_passes
        ax_p.barh(y, mean.sample_passes, color=colors, alpha=0.85, label="forward + backward passes")
        ax_p.barh(y, extra, left=mean.sample_passes, color=colors, alpha=0.35,
                  label="forward-only passes (teacher, scoring) × 1/3")
        texts = ["baseline" if d else "same as Dedicated" if np.isclose(mean.loc[m].speedup_passes, 1.0, atol=5e-3)
                 else f"{mean.loc[m].speedup_passes:.2f}× fewer" for m, d in zip(methods, dedicated)]
        _annotate_bars(ax_p, y, mean.pass_equivalents.to_numpy(), texts, room=1.45)
        ax_p.set_xlabel("per-sample passes (forward + backward equivalents)")
        ax_p.set_title("(b) compute in sample passes")
        ax_p.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2, frameon=False)
        for ax in (ax_t, ax_p):
            ax.grid(axis="y", visible=False)
        fig.suptitle("Training cost of one multi-bit model vs one Dedicated model per bit-width")
    return _finish(fig, png_path, "training_cost")


# ---------------------------------------------------------------- 05: pruning rates

def plot_pruning(csv_path: PathLike, png_path: PathLike | None = None) -> Figure:
    """Average accuracy over the trained bit-widths vs pruning rate for each coreset method
    (error bars where several seeds), full data as a horizontal line.
    CSV: ``method, pruning_rate, seed, avg_accuracy`` (``method == "full data"`` at rate 0)."""
    frame = _read(csv_path, ["method", "pruning_rate", "seed", "avg_accuracy"])
    full = frame[frame.method == labels.FULL_DATA]
    pruned = frame[frame.method != labels.FULL_DATA]
    stats = _agg(pruned, ["method", "pruning_rate"], "avg_accuracy")
    with _style():
        fig, ax = plt.subplots(figsize=(9, 5.4), layout="constrained")
        _full_data_line(ax, full, label="EMQ, full data")
        methods = list(dict.fromkeys(stats.method))
        for i, method in enumerate(methods):
            part = stats[stats.method == method].sort_values("pruning_rate")
            emphasis = method == labels.EMQ_CORESET
            shift = 0.5 * (i - (len(methods) - 1) / 2)  # points apart so that error bars do not hide each other
            ax.errorbar(100 * part.pruning_rate + shift, part["mean"], yerr=part["std"].where(part.n > 1, np.nan),
                        marker="o", capsize=3, lw=2.6 if emphasis else 1.5, zorder=3 if emphasis else 2,
                        color=CORESET_COLORS.get(method), label=CORESET_NAMES.get(method, method))
        at = pruned[np.isclose(pruned.pruning_rate, 0.8)].groupby("method").avg_accuracy.mean()
        emq = labels.EMQ_CORESET
        gap = ("at 80% pruning:\n" + "\n".join(f"EMQ − {CORESET_NAMES.get(m, m).split(' (')[0]} = {at[emq] - at[m]:+.2f} points"
                                                for m in ("tdds", "random", labels.EQUAL_BUDGET,
                                                          labels.EQUAL_BUDGET_BITWISE) if m in at.index)
               if emq in at.index else None)
        ax.set_xlabel("pruning rate (% of training samples left out per bit-width)")
        ax.set_ylabel("average accuracy over trained bit-widths (%)")
        ax.set_title(f"Multi-bit training on coresets: accuracy vs pruning rate\n"
                     f"({_seeds_note(pruned, ['method', 'pruning_rate'])})")
        fig.legend(loc="outside right center", title=gap, alignment="left")
    return _finish(fig, png_path, "pruning")


# ---------------------------------------------------------------- 06: ACS

def _accuracy_vs_fraction(ax: Axes, frame: pd.DataFrame, value: str = "avg_accuracy") -> None:
    full = frame[frame.method == labels.FULL_DATA]
    stats = _agg(frame[frame.method != labels.FULL_DATA], ["method", "fraction"], value)
    _full_data_line(ax, full, value)
    for method in dict.fromkeys(stats.method):
        part = stats[stats.method == method].sort_values("fraction")
        ax.errorbar(100 * part.fraction, part["mean"], yerr=part["std"].where(part.n > 1, np.nan), marker="o",
                    capsize=3, lw=2.4 if method == "acs" else 1.5, color=CORESET_COLORS.get(method),
                    label=CORESET_NAMES.get(method, method))
    ax.set_xlabel("data fraction S (% of training samples per epoch)")


def plot_acs(fractions_csv: PathLike, schedule_csv: PathLike, interval_csv: PathLike,
             png_path: PathLike | None = None) -> Figure:
    """ACS on single-bit (W2/A32) QAT: (a) accuracy vs data fraction for ACS and random with the
    full-data line; (b) accuracy per beta(t) schedule; (c) accuracy per reselection interval R.
    CSVs: ``method, fraction, seed, avg_accuracy``; ``schedule, ...``; ``interval, ...``."""
    fractions = _read(fractions_csv, ["method", "fraction", "seed", "avg_accuracy"])
    schedule = _read(schedule_csv, ["schedule", "fraction", "seed", "avg_accuracy"])
    interval = _read(interval_csv, ["interval", "fraction", "seed", "avg_accuracy"]).astype({"interval": str})
    with _style():
        fig, (ax_f, ax_s, ax_r) = plt.subplots(1, 3, figsize=(17, 5.4), layout="constrained",
                                               gridspec_kw={"width_ratios": [1.25, 1, 1]})
        _accuracy_vs_fraction(ax_f, fractions)
        ax_f.set_ylabel("test accuracy, W2/A32 (%)")
        ax_f.set_title(f"(a) ACS vs random selection ({_seeds_note(fractions)})")
        ax_f.legend(loc="best")

        stats = _agg(schedule, "schedule", "avg_accuracy")
        _barh(ax_s, stats, list(stats.schedule), highlight=list(stats.schedule == "cosine"))
        ax_s.set_xlabel("test accuracy, W2/A32 (%)")
        ax_s.set_title(f"(b) β(t) schedule at S = {schedule.fraction.iloc[0]:.0%} (red: cosine)")

        stats = _agg(interval, "interval", "avg_accuracy")
        labels = ["once (static)" if i == "once" else f"R = {i} epoch{'s' if i != '1' else ''}" for i in stats.interval]
        _barh(ax_r, stats, labels)
        ax_r.set_xlabel("test accuracy, W2/A32 (%)")
        ax_r.set_title(f"(c) reselection interval R at S = {interval.fraction.iloc[0]:.0%}")
        fig.suptitle("Adaptive Coreset Selection for quantization-aware training (one bit-width)")
    return _finish(fig, png_path, "acs")


# ---------------------------------------------------------------- 07: label noise

def plot_label_noise(csv_path: PathLike, png_path: PathLike | None = None) -> Figure:
    """(a) Accuracy vs data fraction for ACS, EL2N and random under symmetric label noise, with the
    full-data line; (b) the share of wrong labels among the kept samples (last epoch's subset).
    CSV: ``method, fraction, seed, label_noise, avg_accuracy, subset_flipped`` and ``subset_size``
    (when absent, estimated as fraction x N with N = wrong labels in the full set / noise rate)."""
    frame = _read(csv_path, ["method", "fraction", "seed", "label_noise", "avg_accuracy", "subset_flipped"])
    noise = float(frame.label_noise.max())
    if "subset_size" in frame.columns:
        size, estimated = frame.subset_size.astype(float), False
    else:
        full = frame[frame.method == labels.FULL_DATA]
        n_train = full.subset_flipped.mean() / noise if noise > 0 and not full.empty else np.nan
        size, estimated = (frame.fraction * n_train).round(), True
    frame = frame.assign(wrong_share=100 * frame.subset_flipped / size)
    with _style():
        fig, (ax_a, ax_w) = plt.subplots(1, 2, figsize=(14, 5.4), layout="constrained")
        _accuracy_vs_fraction(ax_a, frame)
        ax_a.set_ylabel("test accuracy (%)")
        ax_a.set_title(f"(a) accuracy with {noise:.0%} wrong labels ({_seeds_note(frame)})")
        ax_a.legend(loc="best")

        stats = _agg(frame[frame.method != labels.FULL_DATA], ["method", "fraction"], "wrong_share")
        for method in dict.fromkeys(stats.method):
            part = stats[stats.method == method].sort_values("fraction")
            ax_w.errorbar(100 * part.fraction, part["mean"], yerr=part["std"].where(part.n > 1, np.nan), marker="o",
                          capsize=3, color=CORESET_COLORS.get(method), label=CORESET_NAMES.get(method, method))
        ax_w.axhline(100 * noise, color=BASELINE, ls="--", label=f"noise rate {noise:.0%} (full data, random on average)")
        ax_w.set_xlabel("data fraction S (% of training samples per epoch)")
        ax_w.set_ylabel("wrong labels among kept samples (%)" + (", estimated" if estimated else ""))
        ax_w.set_ylim(bottom=0)
        ax_w.set_title("(b) share of wrong labels in the selected subsets (last epoch)")
        ax_w.legend(loc="upper right")
        fig.suptitle("Coreset selection under symmetric label noise (W2/A32)")
    return _finish(fig, png_path, "label_noise")


# ---------------------------------------------------------------- 08: score extraction

def _variants_figure(frame: pd.DataFrame, highlight: Sequence[bool], note: str, title: str,
                     png_path: PathLike | None, name: str) -> Figure:
    """Accuracy (mean ± std over seeds) and wall-clock split into training and selection of each
    variant, one horizontal bar per variant, ``highlight``-ed ones in red."""
    variants = list(dict.fromkeys(frame.variant))
    accuracy = _agg(frame, "variant", "avg_accuracy")
    mean = frame.groupby("variant", sort=False).mean(numeric_only=True).reindex(variants)
    reference = mean["reference_seconds"] if "reference_seconds" in mean else pd.Series(0.0, index=variants)
    y = np.arange(len(variants))[::-1]
    with _style():
        fig, (ax_a, ax_t) = plt.subplots(1, 2, figsize=(14, 0.5 * len(variants) + 2.4), sharey=True,
                                         layout="constrained")
        _barh(ax_a, accuracy, variants, highlight=highlight)
        ax_a.set_xlabel("average accuracy over trained bit-widths (%)")
        ax_a.set_title(f"(a) accuracy ({_seeds_note(frame)}; {note})")
        ax_t.barh(y, mean.train_seconds, color="#1f77b4", alpha=0.85, label="training")
        ax_t.barh(y, mean.selection_seconds, left=mean.train_seconds, color="#ff7f0e", alpha=0.85,
                  label="scoring and selection")
        if (reference > 0).any():
            ax_t.barh(y, reference, left=mean.train_seconds + mean.selection_seconds, color="white",
                      edgecolor="0.4", hatch="//", label="full-precision reference run")
        total = mean.train_seconds + mean.selection_seconds + reference
        _annotate_bars(ax_t, y, total.to_numpy(), [f"{t:.0f} s" if t >= 10 else f"{t:.1f} s" for t in total], room=1.25)
        ax_t.set_xlabel("wall-clock time (s)")
        ax_t.set_title("(b) wall-clock time")
        ax_t.grid(axis="y", visible=False)
        ax_t.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=3, frameon=False)
        fig.suptitle(title)
    return _finish(fig, png_path, name)


def plot_score_extraction(csv_path: PathLike, png_path: PathLike | None = None) -> Figure:
    """Average accuracy over the trained bit-widths and wall-clock time of each score-extraction
    variant (horizontal bars, mean ± std over seeds). CSV: ``variant, seed, avg_accuracy,
    train_seconds, selection_seconds`` (optional ``reference_seconds``)."""
    frame = _read(csv_path, ["variant", "seed", "avg_accuracy", "train_seconds", "selection_seconds"])
    first = [i == 0 for i in range(frame.variant.nunique())]
    title = (f"EMQ score extraction variants (kept fraction S = {frame.fraction.iloc[0]:.0%})"
             if "fraction" in frame.columns else "EMQ score extraction variants")
    return _variants_figure(frame, first, "red: EMQ's default", title, png_path, "score_extraction")


def plot_coreset_design(csv_path: PathLike, chosen: str, png_path: PathLike | None = None) -> Figure:
    """Validation accuracy and wall-clock of each sampling design of EMQ's bit-wise coreset and its
    baselines, the ``chosen`` one in red. CSV: ``variant, seed, pruning_rate, avg_accuracy,
    train_seconds, selection_seconds``."""
    frame = _read(csv_path, ["variant", "seed", "pruning_rate", "avg_accuracy", "train_seconds", "selection_seconds"])
    highlight = [v == chosen for v in dict.fromkeys(frame.variant)]
    return _variants_figure(frame, highlight, "red: the chosen default",
                            "EMQ's bit-wise coreset: sampling designs at 80% pruning, on held-out training samples",
                            png_path, "coreset_design")


# ---------------------------------------------------------------- 06: ACS against baselines, its cost, ablations

def plot_acs_baselines(baselines_csv: PathLike, cost_csv: PathLike, png_path: PathLike | None = None) -> Figure:
    """(a) Accuracy vs data fraction for ACS and every baseline, with the full-data line (claim A2);
    (b) seconds per run at each fraction split into selection, the student's training passes and the
    teacher's forward passes (measured where a run without distillation exists, else all in
    training), the reference run's seconds as a line (claims A7, A8).
    CSVs: ``method, fraction, seed, avg_accuracy``; ``method, fraction, selection_seconds,
    student_seconds, teacher_seconds, train_seconds, reference_seconds``."""
    baselines = _read(baselines_csv, ["method", "fraction", "seed", "avg_accuracy"])
    cost = _read(cost_csv, ["method", "fraction", "selection_seconds", "student_seconds", "teacher_seconds",
                            "train_seconds", "reference_seconds"])
    with _style():
        fig, (ax_a, ax_c) = plt.subplots(1, 2, figsize=(16, 5.6), layout="constrained")
        _accuracy_vs_fraction(ax_a, baselines)
        ax_a.set_ylabel("test accuracy, W2/A32 (%)")
        ax_a.set_title(f"(a) ACS vs every baseline ({_seeds_note(baselines)})")
        ax_a.legend(loc="best", ncol=2)

        mean = cost.groupby(["fraction", "method"], sort=True)[
            ["selection_seconds", "student_seconds", "teacher_seconds", "train_seconds", "reference_seconds"]].mean()
        mean["student_seconds"] = mean.student_seconds.fillna(mean.train_seconds)  # no run without teacher: all training
        mean["teacher_seconds"] = mean.teacher_seconds.fillna(0.0)
        x = np.arange(len(mean))
        bottom = np.zeros(len(mean))
        for column, name, color in [("selection_seconds", "selection", HIGHLIGHT),
                                    ("student_seconds", "training passes", "#1f77b4"),
                                    ("teacher_seconds", "teacher forwards (measured)", "#ff7f0e")]:
            ax_c.bar(x, mean[column], bottom=bottom, color=color, label=name, width=0.8)
            bottom += mean[column].to_numpy()
        ax_c.axhline(mean.reference_seconds.mean(), color=BASELINE, ls="--", label="reference run (paid once)")
        ax_c.set_xticks(x)
        ax_c.set_xticklabels([f"{CORESET_NAMES.get(m, m)} {f:.0%}" for f, m in mean.index], rotation=90, fontsize=8)
        ax_c.set_ylabel("seconds per run (mean over seeds)")
        ax_c.set_title("(b) where the time goes")
        ax_c.legend(loc="upper left")
        fig.suptitle("ACS against every baseline, and its cost (one bit-width, W2/A32)")
    return _finish(fig, png_path, "acs_baselines")


def plot_acs_ablations(split_csv: PathLike, no_distillation_csv: PathLike, transfer_csv: PathLike,
                       overlap_csv: PathLike, vit_csv: PathLike, png_path: PathLike | None = None) -> Figure:
    """(a) ACS vs the full-coverage split and random (A9); (b) all trained on labels only: ACS (EVS)
    vs EL2N and random (A10); (c) each model on its own ACS coreset, the other model's and random
    (A11), with the coresets' overlap in the title (A12); (d) ACS vs random on a small ViT (A13)."""
    split = _read(split_csv, ["method", "fraction", "seed", "avg_accuracy"])
    plain = _read(no_distillation_csv, ["method", "fraction", "seed", "avg_accuracy"])
    transfer = _read(transfer_csv, ["model", "coreset", "seed", "avg_accuracy"])
    overlap = _read(overlap_csv, ["overlap", "seed"])
    vit = _read(vit_csv, ["method", "seed", "avg_accuracy"])
    with _style():
        fig, axes = plt.subplots(1, 4, figsize=(22, 5.4), layout="constrained",
                                 gridspec_kw={"width_ratios": [1.2, 1.2, 1, 0.8]})
        for ax, frame, title in [(axes[0], split, "(a) ACS vs full-coverage split"),
                                 (axes[1], plain, "(b) no distillation (labels only)")]:
            _accuracy_vs_fraction(ax, frame)
            ax.set_ylabel("test accuracy, W2/A32 (%)")
            ax.set_title(f"{title} ({_seeds_note(frame)})")
            ax.legend(loc="best")
        stats = _agg(transfer, ["model", "coreset"], "avg_accuracy")
        _barh(axes[2], stats, [f"{m}: {c}" for m, c in zip(stats.model, stats.coreset)],
              highlight=list(stats.coreset.str.startswith("ACS of")))
        axes[2].set_xlabel("test accuracy, W2/A32 (%)")
        axes[2].set_title(f"(c) transfer (red: the other's coreset); overlap {overlap.overlap.mean():.0f}%")
        stats = _agg(vit, "method", "avg_accuracy")
        _barh(axes[3], stats, [CORESET_NAMES.get(m, m) for m in stats.method], highlight=list(stats.method == "acs"))
        axes[3].set_xlabel("test accuracy, W2/A32 (%)")
        axes[3].set_title("(d) small ViT at 10%")
        fig.suptitle("ACS ablations: coverage, distillation, architectures")
    return _finish(fig, png_path, "acs_ablations")


__all__ = ["plot_bit_accuracy", "plot_activation_alignment", "plot_shared_bn", "plot_quant_core_check",
           "plot_gradient_angles", "plot_training_cost", "plot_pruning", "plot_acs", "plot_label_noise",
           "plot_score_extraction", "plot_coreset_design", "plot_acs_baselines", "plot_acs_ablations"]


# ---------------------------------------------------------------- make bench

def plot_bench(csv_path: PathLike, png_path: PathLike | None = None) -> Figure:
    """Four panels of ``make bench``'s table (emqlib.harness.bench): a training step's time at each bit-width
    over the plain full-precision step, each method's wall-clock, and the epoch time against the data set size
    and against the number of bit-widths, with the linear fits. CSV: ``results/bench.csv``'s columns."""
    frame = _read(csv_path, ["metric", "value", "unit", "method", "bits", "bias_correction", "samples",
                             "memory_format", "model", "width", "input", "batch", "threads"])
    frame["bits"] = frame.bits.astype(str)
    ratios = frame[frame.metric == "quant_step_ratio"]
    off = ratios.bias_correction.astype(str) == "False"  # the 32-bit path has no correction to turn off
    on, off = ratios[~off].set_index("bits").value, ratios[off].set_index("bits").value
    fits = frame[frame.metric.str.startswith("scaling_")]
    by_n, by_k = fits[fits.samples.isna()], fits[fits.samples.notna()]
    epochs = frame[(frame.metric == "epoch_time") & frame.memory_format.isna()]
    lowest = by_n.bits.iloc[0]
    curves = [(epochs[epochs.bits == lowest].samples, epochs[epochs.bits == lowest].value, by_n, 1e-3,
               "data set size N (samples)", f"(c) epoch time vs N ({lowest}-bit step)"),
              (epochs[(epochs.samples == by_k.samples.iloc[0]) & (epochs.bits != lowest)].bits.str.count(",") + 1,
               epochs[(epochs.samples == by_k.samples.iloc[0]) & (epochs.bits != lowest)].value, by_k, 1.0,
               "number of bit-widths k (joint step)", f"(d) epoch time vs bit-widths (N={by_k.samples.iloc[0]:.0f})")]
    methods = frame[frame.metric == "method_wallclock"].set_index("method").value
    speedups = frame[frame.metric == "speedup_wallclock"].set_index("method").value.reindex(methods.index).fillna(1.0)
    accuracy = frame[frame.metric == "method_avg_accuracy"].set_index("method").value
    step = frame[frame.metric == "step_time"].iloc[0]
    with _style():
        fig, ((a, b), (c, d)) = plt.subplots(2, 2, figsize=(12, 9), layout="constrained")
        fig.suptitle(f"emqlib bench: {step.model} width {step.width:g}, {step.input} input, batch {step.batch:.0f}, "
                     f"{step.threads:.0f} threads")
        pos, target = np.arange(len(on)), TARGETS["step"].threshold
        a.bar(pos - 0.2, on, 0.4, label="bias correction on")
        a.bar(pos + 0.2, off.reindex(on.index), 0.4, label="bias correction off")
        a.axhline(1.0, color="gray", lw=1)
        a.axhline(target, color="red", ls="--", lw=1, label=f"target {target}x")
        a.set_xticks(pos, [f"{n}-bit" for n in on.index])
        a.set(xlabel="bit-width of the step", ylabel="step time / plain FP step (x)",
              title="(a) quantization overhead of a training step")
        a.legend(fontsize=8)
        bars = b.bar(methods.index, methods, color=["gray", "tab:blue", "tab:orange", "tab:green"][:len(methods)])
        for bar, m in zip(bars, methods.index):
            b.annotate(f"{speedups[m]:.2f}x\nacc {accuracy[m]:.1f}%", (bar.get_x() + bar.get_width() / 2,
                       bar.get_height()), ha="center", va="bottom", fontsize=9)
        b.set_ylim(0, methods.max() * 1.3)
        b.set(xlabel="method (run cache)", ylabel="train + selection wall-clock (s)",
              title="(b) method cost: speed-up over Dedicated, avg accuracy")
        for ax, (x, y, fit, per, xlabel, title) in zip((c, d), curves):
            slope, intercept, r2 = (fit.set_index("metric").value[f"scaling_{k}"] for k in ("slope", "intercept", "r2"))
            line = np.linspace(0, x.max(), 50)
            ax.plot(x, y, "o", label="measured (best of repetitions)")
            ax.plot(line, slope * per * line + intercept, "--", label=f"linear fit, R$^2$={r2:.4f}")
            ax.set(xlabel=xlabel, ylabel="time per epoch (s)", title=title, xlim=(0, None), ylim=(0, None))
            ax.legend(fontsize=8)
        d.set_xticks(curves[1][0])
    return _finish(fig, png_path, "bench")

