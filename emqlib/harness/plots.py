"""Figures: one function per figure, each drawn from result CSVs only (never from a trained model).

``plot_<name>(csv_path, ..., png_path=None)`` reads the CSV(s) a notebook saved in ``results/``, draws the
figure, writes ``figures/<name>.png`` (or ``png_path``) atomically and returns the matplotlib Figure, so any
figure can be redrawn without retraining::

    from emqlib.harness import plots, results
    plots.plot_shared_bn(results.result_path("shared_bn.csv"))

What the figures share (STYLE.md 14): a comparison is drawn as a difference to a reference arm, paired by
seed, with a dot per seed and the mean with its 95% t-interval (:func:`emqlib.harness.stats.t_interval`),
on an axis framed on the differences, with the zero line and, where a claim has one, its threshold; a cross
marks a seed whose pair read a run that fails a check (:mod:`emqlib.harness.validity`). Every method has
one colour in every figure (:func:`method_color`); the claims' statuses have colours of their own
(:data:`STATUS_COLORS`), and red means "not reproduced" (or, in the explorer, a wrong prediction) only.

The functions never call ``show()`` and close the figure after saving (no pyplot state is kept), so they
work under the non-interactive "Agg" backend; in a notebook the returned Figure is displayed once as the
cell's value.
"""
from __future__ import annotations

import contextlib
import io
import os
import textwrap
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from . import claims, grading, labels, paths
from ..bits import SUPPORTED_BITS  # the categorical bit-width axis, in order (32 = full precision)
from .stats import spearman, t_interval
from .storage import atomic_write_bytes
from .targets import NON_INFERIORITY, TARGETS

DPI = 120  # about 1400 px across for the wide figures: sharp at README width
STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 10,
         "xtick.labelsize": 10, "ytick.labelsize": 10, "figure.titlesize": 13, "axes.grid": True,
         "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}

# ---------------------------------------------------------------- colours: one per method, one per status

# One colour per method, in every figure. Keys are the labels result tables carry (emqlib.harness.labels) and the
# selection rules' names (the ACS tables' ``method``); families share a hue: uniform draws in greys and olives,
# full data in black and greys, EMQ's designs in blues, ACS in oranges. No method is red (red is a status).
METHOD_COLORS = {
    labels.EMQ_CORESET: "#1f77b4",  # EMQ's bit-wise coreset with EMQ's chosen sampler (labels carry the fraction)
    "acs": "#ff7f0e",
    labels.FULL_DATA: "#000000", labels.EMQ: "#000000",  # EMQ (or the ACS setting) on every sample, EMQ's joint loop
    labels.FULL_DATA_BITWISE: "#555555",
    labels.EQUAL_BUDGET: "#17becf", labels.EQUAL_BUDGET_BITWISE: "#0c7c86",
    labels.DEDICATED: "#8c564b", labels.JOINT: "#e377c2",
    "random-once": "#c0c0c0", "random": "#808080", "rs2": "#bcbd22", "split": "#dbdb8d",
    "tdds": "#b07aa1", "tdds-rescored": "#d9b5cf", "el2n": "#edc948", "forgetting": "#76b7b2",
    "kcenter": "#6b6ecf", "moderate": "#8ca252", "emq-ccs": "#393b79",
    # notebook 02's BatchNorm and correction variants (emqlib.harness.studies.shared_bn; EMQ's own and switchable BN
    # are aliases of EMQ and joint below)
    "switchable BN + recalibration": "#f7b6d2", "shared BN, no correction": "#8c6d31",
    "shared BN + correction + recalibration": "#637939",
    "shared BN + correction (the paper's literal form)": "#5254a3", "shared BN + correction (per layer)": "#a55194", "shared BN + correction, ReLU at 32 bits": "#e7ba52",
    "shared BN, no correction, ReLU at 32 bits": "#bd9e39",
    # notebook 08's score-extraction variants (emqlib.harness.studies.extraction)
    "bit-wise, static": "#6baed6", "batch extraction, dynamic": "#9c9ede", "batch extraction, static": "#7b4173",
    "bit-wise, dynamic, ascending bit order": "#b5cf6b", "bit-wise, dynamic, GraNd score": "#ce6dbd",
    "bit-wise, dynamic, from the FP reference": "#a6761d",
}
# other spellings of the same methods in the result tables (the 80% table's arms, variants named for what they
# change); tests/test_plots.py checks that every arm of the studies finds its colour here or in METHOD_COLORS
METHOD_ALIASES = {
    "random, drawn once": "random-once", "random, re-drawn every epoch": "random", "RS2 (without replacement)": "rs2",
    "TDDS, static (class-balanced)": "tdds", "TDDS, re-scored every R": "tdds-rescored",
    "EL2N, static (class-balanced)": "el2n", "own ACS": "acs",
    "shared BN + correction": labels.EMQ, "switchable BN (joint)": labels.JOINT,
    "bit-wise, dynamic (EMQ's sampler)": labels.EMQ_CORESET, "bit-wise, random subsets": "random",
}
EMQ_DESIGN_PREFIX, EMQ_DESIGN_COLOR = "EMQ: ", "#9ecae1"  # EMQ's candidate samplers other than the chosen one
TRANSFERRED_PREFIX, TRANSFERRED_COLOR = "ACS of ", "#ffbb78"  # another architecture's ACS coreset
# a label of none of the above gets one of these by a hash of its text: the same label, the same colour
FALLBACK_COLORS = ("#3182bd", "#fd8d3c", "#636363", "#41b6c4", "#c49c94", "#a3a385")
METHOD_NAMES = {"random-once": "random, drawn once", "random": "random, re-drawn every epoch", "rs2": "RS2",
                "split": "full-coverage split", "tdds": "TDDS", "tdds-rescored": "TDDS, re-scored", "el2n": "EL2N",
                "forgetting": "forgetting", "kcenter": "k-center greedy", "moderate": "Moderate",
                "emq-ccs": "CCS (coverage-centric)", "acs": "ACS"}

STATUS_COLORS = {"reproduced": "#1a7f37", "partial": "#bf8700", "not reproduced": "#cf222e", "invalid": "#8250df",
                 "not comparable": "#6e7781", "not run": "#afb8c1"}
GRADED = tuple(s for s in grading.STATUSES if s != "not run")  # statuses with a grade
HIGHLIGHT = METHOD_COLORS[labels.EMQ_CORESET]  # the method or bit-width a figure is about
BASELINE = "#7f7f7f"  # a reference drawn beside it (the 32-bit child in the explorer)
RIGHT, WRONG = STATUS_COLORS["reproduced"], STATUS_COLORS["not reproduced"]  # the explorer's predictions
THRESHOLD = "#000000"  # a claim's threshold: a dashed line or a tick

CLAIM = {c.claim_id: c for c in [*claims.CLAIMS, *claims.TARGETS]}  # thresholds drawn come from the claims
GRADIENT_ANGLE_BOUND = CLAIM["E10"].threshold  # degrees: the paper's bound on the angles (claim E10)

SYMLOG_BEYOND = 20.0  # points: a difference axis reaching further is drawn linear within ±2 and log beyond

PathLike = str | os.PathLike


def method_color(label: str, chosen: str | None = None) -> str:
    """The colour of method ``label`` in every figure: :data:`METHOD_COLORS` (through :data:`METHOD_ALIASES`);
    EMQ + bit-wise coreset at any fraction, and ``chosen`` (EMQ's chosen sampler), in EMQ's coreset colour; EMQ's
    other designs in light blue, another architecture's ACS coreset in light orange; any other label one of
    :data:`FALLBACK_COLORS`, picked by a hash of its text."""
    label = str(label)
    key = METHOD_ALIASES.get(label, label)
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    if labels.is_emq_coreset(label) or label == chosen:
        return METHOD_COLORS[labels.EMQ_CORESET]
    if label.startswith(EMQ_DESIGN_PREFIX):
        return EMQ_DESIGN_COLOR
    if label.startswith(TRANSFERRED_PREFIX):
        return TRANSFERRED_COLOR
    return FALLBACK_COLORS[zlib.crc32(label.encode()) % len(FALLBACK_COLORS)]


def method_name(label: str) -> str:
    """How a figure names method ``label`` (a selection rule's name spelled out; other labels as they are)."""
    return METHOD_NAMES.get(str(label), str(label))


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


def _valid(frame: pd.DataFrame) -> pd.Series:
    """Whether each row's run passes its checks: the ``valid`` column, else an empty ``invalid_reason``, else
    every row."""
    if "valid" in frame.columns:
        return frame.valid.astype(str).str.lower().eq("true")
    if "invalid_reason" in frame.columns:
        return frame.invalid_reason.isna() | frame.invalid_reason.astype(str).str.strip().eq("")
    return pd.Series(True, index=frame.index)


def _pair(frame: pd.DataFrame, key: str, a: str, b: str, value: str = "avg_accuracy",
          on: Sequence[str] = ("seed",), keep: Sequence[str] = ()) -> pd.DataFrame:
    """The rows of ``frame`` whose ``key`` is ``a`` minus those whose ``key`` is ``b``, paired on the columns
    ``on``: columns ``on``, ``keep`` (more of ``a``'s columns), ``difference`` and ``valid`` (both runs pass their
    checks); pairs with a missing value are left out."""
    frame = frame.assign(_valid=_valid(frame))
    on, keep = list(on), [c for c in keep if c not in on]
    mine = frame.loc[frame[key] == a, [*on, *keep, value, "_valid"]]
    theirs = frame.loc[frame[key] == b, [*on, value, "_valid"]]
    both = mine.merge(theirs, on=on, suffixes=("", "_b"))
    out = both[[*on, *keep]].assign(difference=both[value] - both[f"{value}_b"],
                                    valid=both._valid & both._valid_b)
    return out[out.difference.notna()].reset_index(drop=True)


def _interval(ax: Axes, at: float, values, color: str, invalid=None, vertical: bool = False,
              spread: float = 0.3, marker: str = "D", zorder: int = 3) -> None:
    """At category position ``at``: a dot per seed (a cross where the seed's values read a run that fails a
    check), side by side across the category, and the mean (a diamond) with its 95% t-interval (a bar; none with
    one seed). ``vertical``: categories along x, values along y."""
    values = pd.Series(values, dtype=float).reset_index(drop=True)
    bad = (pd.Series(False, index=values.index) if invalid is None
           else pd.Series(np.asarray(invalid, dtype=bool), index=values.index))
    keep = values.notna()
    values, bad = values[keep].to_numpy(), bad[keep].to_numpy()
    if len(values) == 0:
        return

    def place(position, value):
        return (position, value) if vertical else (value, position)

    if len(values) == 1:  # the seed is the mean: one mark, a cross when its run fails a check
        if bad[0]:
            ax.scatter(*place([at], values), s=50, marker="x", color=color, linewidths=1.8, zorder=zorder + 2)
        else:
            ax.scatter(*place([at], values), s=50, marker=marker, color=color, edgecolors="white", linewidths=0.8,
                       zorder=zorder + 2)
        return
    along = at + np.linspace(-spread / 2, spread / 2, len(values))

    ax.scatter(*place(along[~bad], values[~bad]), s=18, color=color, alpha=0.65, linewidths=0, zorder=zorder)
    ax.scatter(*place(along[bad], values[bad]), s=30, marker="x", color=color, linewidths=1.5, zorder=zorder)
    mean, low, high = t_interval(values)
    if np.isfinite(low):
        ax.plot(*place([at, at], [low, high]), color=color, lw=2.6, solid_capstyle="butt", zorder=zorder + 1)
    ax.scatter(*place([at], [mean]), s=50, marker=marker, color=color, edgecolors="white", linewidths=0.8,
               zorder=zorder + 2)


def _mark_handles(invalid: bool = False, color: str = "0.15") -> list[Line2D]:
    """Legend entries for the marks of :func:`_interval` (their colour is the method's, named on the axis or in
    the legend's other entries)."""
    handles = [Line2D([], [], ls="", marker="o", ms=4.5, color=color, alpha=0.65, label="one seed"),
               Line2D([], [], lw=2.6, marker="D", ms=6, color=color, markeredgecolor="white",
                      label="mean and 95% t-interval")]
    if invalid:
        handles.append(Line2D([], [], ls="", marker="x", ms=6, mew=1.5, color=color,
                              label="a run of this seed fails a check"))
    return handles


def _method_handle(label: str, name: str | None = None, chosen: str | None = None) -> Line2D:
    color = method_color(label, chosen)
    return Line2D([], [], lw=2.6, marker="D", ms=6, color=color, markeredgecolor="white",
                  label=name if name is not None else method_name(label))


def _zero(ax: Axes, vertical: bool = False, label: str | None = None) -> None:
    """The reference line: 0 difference."""
    (ax.axhline if vertical else ax.axvline)(0, color="black", lw=1.1, zorder=1, label=label)


def _threshold(ax: Axes, value: float, text: str, vertical: bool = False) -> None:
    """A claim's threshold as a dashed line, named in the legend."""
    (ax.axhline if vertical else ax.axvline)(value, color=THRESHOLD, ls="--", lw=1.2, zorder=1, label=text)


def _frame_points(ax: Axes, vertical: bool = False) -> str:
    """Frame a difference axis in points on what is drawn: linear, or, where it reaches beyond
    :data:`SYMLOG_BEYOND`, linear within ±2 points and logarithmic beyond (a 50-point collapse and a 0.3-point
    effect both readable). Returns the note for the axis label."""
    low, high = ax.dataLim.intervaly if vertical else ax.dataLim.intervalx
    if max(abs(low), abs(high)) <= SYMLOG_BEYOND:
        return ""
    (ax.set_yscale if vertical else ax.set_xscale)("symlog", linthresh=2.0, linscale=1.0)
    (ax.yaxis if vertical else ax.xaxis).set_major_formatter(
        mpl.ticker.FuncFormatter(lambda v, _: f"{v:+g}" if v else "0"))
    return "; linear within ±2, log beyond"


def _rows(ax: Axes, names: Sequence[str]) -> None:
    """Category rows top to bottom, named."""
    ax.set_yticks(range(len(names)), names)
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.grid(axis="y", visible=False)


def _any_invalid(frame: pd.DataFrame) -> bool:
    return not _valid(frame).all()


def _seeds(frame: pd.DataFrame) -> str:
    n = frame.seed.nunique() if "seed" in frame.columns else 1
    return f"{n} seed{'s' if n != 1 else ''}"


def _bit_positions(bits: pd.Series) -> np.ndarray:
    """Positions of bit-widths on the categorical axis 1, 2, ..., 8, 32."""
    order = {b: i for i, b in enumerate(SUPPORTED_BITS)}
    return np.array([order[int(b)] for b in bits], dtype=float)


def _bit_axis(ax: Axes, bits: Sequence[int], label: bool = True) -> None:
    present = [b for b in SUPPORTED_BITS if b in set(int(b) for b in bits)]
    ax.set_xticks(_bit_positions(pd.Series(present)), ["32\n(FP)" if b == 32 else str(b) for b in present])
    ax.set_xlim(_bit_positions(pd.Series(present)).min() - 0.6, _bit_positions(pd.Series(present)).max() + 0.6)
    if label:
        ax.set_xlabel("bit-width b (weights and activations)")


def _shade_untrained(ax: Axes, frame: pd.DataFrame) -> None:
    """Grey columns behind the bit-widths that no model in ``frame`` was trained at."""
    trained = frame.groupby("bits")["trained"].apply(lambda t: t.astype(str).str.lower().eq("true").any())
    for b, was_trained in trained.items():
        if not was_trained:
            x = _bit_positions(pd.Series([b]))[0]
            ax.axvspan(x - 0.45, x + 0.45, color="0.92", zorder=0, lw=0)


# ---------------------------------------------------------------- 00: quickstart

def plot_bit_accuracy(csv_path: PathLike, png_path: PathLike | None = None) -> Figure:
    """Test accuracy (%) of one EMQ model at every bit-width; trained bit-widths filled, the others (never
    trained, no fine-tuning) hollow on grey columns. CSV: ``bits, accuracy, trained``."""
    frame = _read(csv_path, ["bits", "accuracy", "trained"])
    per_bit = frame.assign(trained=frame.trained.astype(str).str.lower().eq("true")).groupby("bits", sort=True).agg(
        accuracy=("accuracy", "mean"), trained=("trained", "any"))
    per_bit = per_bit.reindex([b for b in SUPPORTED_BITS if b in per_bit.index]).reset_index()
    x = _bit_positions(per_bit.bits)
    color = method_color(labels.EMQ)
    with _style():
        fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
        _shade_untrained(ax, frame)
        ax.plot(x, per_bit.accuracy, color=color, lw=1, alpha=0.4, zorder=1)
        trained = per_bit.trained.to_numpy()
        ax.scatter(x[trained], per_bit.accuracy[trained], s=60, color=color, zorder=3, label="trained bit-width")
        ax.scatter(x[~trained], per_bit.accuracy[~trained], s=60, facecolors="white", edgecolors=color,
                   linewidths=1.8, zorder=3, label="never trained (grey columns), no fine-tuning")
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
    """The first variant's BN-input gaps to the 32-bit child divided by each other variant's (docs/method.md
    §3.3), per bit-width: a dot per layer and their geometric mean, on a log axis (below 1: the first variant,
    with weight bias correction, is closer to the 32-bit statistics). Layers where a gap is exactly 0 (before any
    quantized layer) have no ratio and are counted in the title.
    CSV: ``bits, layer_index, mean_gap, var_log_ratio, variant, trained``."""
    frame = _read(csv_path, ["bits", "layer_index", "mean_gap", "var_log_ratio", "variant", "trained"])
    variants = list(dict.fromkeys(frame.variant))
    if len(variants) < 2:
        raise ValueError(f"{csv_path} has one variant ({variants[0]!r}); the figure compares the first with the others")
    subject, others = variants[0], variants[1:]
    frame = frame[frame.bits != 32]  # the 32-bit child is the reference: its gaps are 0
    metrics = [("mean_gap", "mean gap |μ_b − μ_32| / σ_32"),
               ("var_log_ratio", "variance gap |log(σ²_b / σ²_32)|")]
    mine = frame[frame.variant == subject].set_index(["bits", "layer_index"])
    with _style():
        fig, axes = plt.subplots(1, len(metrics), figsize=(13, 4.8), sharey=True, layout="constrained")
        skipped: set[int] = set()
        for ax, (metric, name) in zip(axes, metrics):
            _shade_untrained(ax, frame)
            width = 0.7 / len(others)
            for j, other in enumerate(others):
                theirs = frame[frame.variant == other].set_index(["bits", "layer_index"])[metric]
                both = pd.concat({"mine": mine[metric], "theirs": theirs}, axis=1).dropna()
                drawable = both[(both.mine > 0) & (both.theirs > 0)]
                skipped |= set(both.index.get_level_values("layer_index")) - set(
                    drawable.index.get_level_values("layer_index"))
                ratio = (drawable.mine / drawable.theirs).rename("ratio").reset_index()
                color = method_color(subject if len(others) == 1 else other)
                for b, part in ratio.groupby("bits"):
                    at = _bit_positions(pd.Series([b]))[0] + (j - (len(others) - 1) / 2) * width
                    spread = np.linspace(-0.3 * width, 0.3 * width, len(part)) if len(part) > 1 else np.zeros(1)
                    ax.scatter(at + spread, part.ratio, s=16, color=color, alpha=0.6, linewidths=0, zorder=3)
                    ax.scatter([at], [np.exp(np.log(part.ratio).mean())], s=55, marker="D", color=color,
                               edgecolors="white", linewidths=0.8, zorder=4)
            ax.axhline(1.0, color="black", lw=1.1, zorder=1)
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(mpl.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(mpl.ticker.NullFormatter())
            _bit_axis(ax, frame.bits)
            ax.set_title(name)
        axes[0].set_ylabel(f"gap {subject}\n÷ gap {others[0] if len(others) == 1 else 'each other variant'}"
                           "  (log scale)")
        handles = [Line2D([], [], ls="", marker="o", ms=4.5, color="0.15", alpha=0.6, label="one layer"),
                   Line2D([], [], ls="", marker="D", ms=6.5, color="0.15", markeredgecolor="white",
                          label="geometric mean over the layers"),
                   Line2D([], [], color="black", lw=1.1, label="1: the same gap with and without")]
        if len(others) > 1:
            handles += [_method_handle(o, f"÷ {o}") for o in others]
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
        note = (f"; no ratio where a gap is exactly 0, in layer {', '.join(map(str, sorted(skipped)))}"
                if skipped else "")
        fig.suptitle(f"BatchNorm inputs' distance to the 32-bit child's: {subject} relative to "
                     f"{' / '.join(others)}\n(below 1: closer with {subject}; grey columns: bit-widths never "
                     f"trained{note})")
    return _finish(fig, png_path, "activation_alignment")


# ---------------------------------------------------------------- 02: shared BN at every bit-width

def _variants_against(frame: pd.DataFrame, reference: str, title: str, png_path: PathLike | None,
                      name: str) -> Figure:
    """First panel: ``reference``'s accuracy at every bit-width; then one panel per other variant: its accuracy
    minus ``reference``'s at every bit-width, paired by seed. The difference panels share their y axis, linear
    within ±2 points and logarithmic beyond where it reaches past :data:`SYMLOG_BEYOND` (a 1-bit collapse and a
    0.3-point gap both readable)."""
    if reference not in set(frame.variant):
        raise ValueError(f"the CSV has no rows of the reference variant {reference!r}; "
                         f"its variants: {list(dict.fromkeys(frame.variant))}")
    variants = [v for v in dict.fromkeys(frame.variant) if v != reference]
    ncols = 3 if len(variants) + 1 > 4 else 2
    nrows = -(-(len(variants) + 1) // ncols)
    differences = {v: _pair(frame, "variant", v, reference, "accuracy", on=["seed", "bits"]) for v in variants}
    with _style():
        fig, axes = plt.subplots(nrows, ncols, figsize=(5.4 * ncols, 3.3 * nrows + 1), sharex=True, squeeze=False,
                                 layout="constrained")
        flat = axes.ravel()
        ref = frame[frame.variant == reference]
        _shade_untrained(flat[0], ref)
        for b, part in ref.groupby("bits"):
            _interval(flat[0], _bit_positions(pd.Series([b]))[0], part.accuracy, method_color(reference),
                      invalid=~_valid(part), vertical=True)
        flat[0].set_ylabel("test accuracy (%)")
        flat[0].set_title(f"{reference} ({_seeds(ref)})", fontsize=11)
        _bit_axis(flat[0], frame.bits, label=False)
        spans = [d.difference.abs().max() for d in differences.values() if not d.empty]
        limit = 1.15 * max([2.0, *spans])
        symlog = limit > SYMLOG_BEYOND
        for k, (ax, variant) in enumerate(zip(flat[1:], variants), start=1):
            d = differences[variant]
            _shade_untrained(ax, frame[frame.variant.isin([variant, reference])])
            for b, part in d.groupby("bits"):
                _interval(ax, _bit_positions(pd.Series([b]))[0], part.difference, method_color(variant),
                          invalid=~part.valid, vertical=True)
            _zero(ax, vertical=True)
            if symlog:
                ax.set_yscale("symlog", linthresh=2.0, linscale=1.0)
                ax.yaxis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v:+g}" if v else "0"))
            ax.set_ylim(-limit, limit)
            ax.set_title(f"{variant} ({_seeds(d)})", fontsize=11)
            if k % ncols == 0 or k == 1:
                ax.set_ylabel("− reference (points)")
            _bit_axis(ax, frame.bits, label=k >= len(flat) - ncols)
        for ax in flat[len(variants) + 1:]:
            ax.remove()
        flat[0].set_xlabel("")
        fig.legend(handles=_mark_handles(_any_invalid(frame)), loc="outside lower center", ncols=3)
        fig.suptitle(f"{title}\nfirst panel: the reference, {reference}; then each variant's accuracy minus the "
                     f"reference's, paired by seed (grey columns: bit-widths never trained"
                     f"{'; y linear within ±2 points, log beyond' if symlog else ''})")
    return _finish(fig, png_path, name)


SHARED_BN_REFERENCE = "shared BN + correction"  # EMQ's own variant (emqlib.harness.studies.shared_bn.VARIANTS)


def plot_shared_bn(csv_path: PathLike, png_path: PathLike | None = None, reference: str = SHARED_BN_REFERENCE
                   ) -> Figure:
    """Each BatchNorm / correction variant minus ``reference`` at every bit-width 1..8 and 32, paired by seed,
    in small multiples (:func:`_variants_against`). CSV: ``bits, accuracy, trained, variant, seed``."""
    frame = _read(csv_path, ["bits", "accuracy", "trained", "variant", "seed"])
    return _variants_against(frame, reference, "Shared BN and weight bias correction at every bit-width, trained "
                                                "or not", png_path, "shared_bn")


def plot_quant_core_check(csv_path: PathLike, png_path: PathLike | None = None,
                          reference: str = SHARED_BN_REFERENCE) -> Figure:
    """EMQ without weight bias correction and with a ReLU 32-bit activation, each minus ``reference`` at every
    bit-width (:func:`_variants_against`). CSV as :func:`plot_shared_bn`."""
    frame = _read(csv_path, ["bits", "accuracy", "trained", "variant", "seed"])
    return _variants_against(frame, reference, "EMQ with and without weight bias correction, clamped or ReLU "
                                                "32-bit activation", png_path, "quant_core_check")


# ---------------------------------------------------------------- 03: gradient angles

def plot_gradient_angles(csv_path: PathLike, png_path: PathLike | None = None) -> Figure:
    """(a) The first model's whole-model angle between the gradients of each pair of trained bit-widths at the
    end of every epoch: a thin line per seed, the mean over seeds thick, each seed's largest angle (claim E10's
    value) starred, with the 28° bound; (b) the per-layer angle after the last epoch (mean over the pairs)
    against depth for the model with the most layers: a dot per seed and layer, the mean per layer, a
    least-squares line, and each seed's Spearman correlation (claim E11).
    CSV: ``bits_a, bits_b, layer, layer_index, angle, epoch, model, seed`` (``layer == "all"``: all layers)."""
    frame = _read(csv_path, ["bits_a", "bits_b", "layer", "layer_index", "angle", "epoch", "model", "seed"])
    frame = frame.assign(pair=[f"{a} vs {b} bits" for a, b in zip(frame.bits_a, frame.bits_b)])
    models = list(dict.fromkeys(frame.model))
    first = models[0]
    deep = max(models, key=lambda m: frame.loc[(frame.model == m) & (frame.layer_index >= 0), "layer_index"].nunique())
    pairs = frame[["pair", "bits_a", "bits_b"]].drop_duplicates("pair")
    # a pair's colour says its lower bit-width (the least aligned are the darkest), its line style the higher one
    lower = sorted(set(pairs[["bits_a", "bits_b"]].min(axis=1)), reverse=True)
    higher = sorted(set(pairs[["bits_a", "bits_b"]].max(axis=1)), reverse=True)
    shade = {b: mpl.colormaps["cividis"](0.85 - 0.75 * i / max(1, len(lower) - 1)) for i, b in enumerate(lower)}
    dash = {b: ("-", "--", ":", "-.")[i % 4] for i, b in enumerate(higher)}
    pair_style = {p.pair: dict(color=shade[min(p.bits_a, p.bits_b)], ls=dash[max(p.bits_a, p.bits_b)])
                  for p in pairs.itertuples()}
    whole = frame[(frame.model == first) & (frame.layer == "all")]
    with _style():
        fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(15, 5.4), layout="constrained")
        for pair in pairs.pair:
            part = whole[whole.pair == pair]
            for _, line in part.groupby("seed"):
                line = line.sort_values("epoch")
                ax_a.plot(line.epoch + 1, line.angle, lw=0.8, alpha=0.35, **pair_style[pair])
            mean = part.groupby("epoch").angle.mean()
            ax_a.plot(mean.index + 1, mean, lw=2.2, marker="o", ms=4, label=pair, **pair_style[pair])
        largest = whole.loc[whole.groupby("seed").angle.idxmax()]
        ax_a.scatter(largest.epoch + 1, largest.angle, marker="*", s=160, color="black", zorder=5,
                     label="largest angle of each seed (E10's value)")
        _threshold(ax_a, GRADIENT_ANGLE_BOUND, f"E10: below {GRADIENT_ANGLE_BOUND:g}° (the paper's bound)",
                   vertical=True)
        ax_a.set_ylim(0, 1.12 * max(GRADIENT_ANGLE_BOUND, whole.angle.max()))
        ax_a.set_xlabel("epoch (weights at its end)")
        ax_a.set_ylabel("angle between gradients (degrees)")
        ax_a.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
        ax_a.set_title(f"(a) {first}, whole model, every epoch ({_seeds(whole)}; thin: one seed, thick: mean)")
        ax_a.legend(loc="upper left", bbox_to_anchor=(0, -0.13), ncols=3, fontsize=9, title="bit-width pair",
                    frameon=False)

        layers = frame[(frame.model == deep) & (frame.layer_index >= 0)]
        last = layers[layers.epoch == layers.epoch.max()]
        per_seed = last.groupby(["seed", "layer_index"]).angle.mean().reset_index()
        color = method_color(labels.EMQ)
        seeds = sorted(per_seed.seed.unique())
        for k, seed in enumerate(seeds):
            part = per_seed[per_seed.seed == seed]
            shift = (k - (len(seeds) - 1) / 2) * 0.12
            ax_b.scatter(part.layer_index + shift, part.angle, s=18, color=color, alpha=0.55, linewidths=0)
        mean = per_seed.groupby("layer_index").angle.mean()
        ax_b.plot(mean.index, mean, color=color, lw=1.8, marker="D", ms=5, label="mean over seeds")
        slope, intercept = np.polyfit(mean.index.to_numpy(dtype=float), mean.to_numpy(), 1)
        ax_b.plot(mean.index, intercept + slope * mean.index, color=BASELINE, ls="--", lw=1.5,
                  label=f"least-squares line ({slope:+.2f}° per layer)")
        rhos = [spearman(g.layer_index, g.angle) for _, g in per_seed.groupby("seed")]
        ax_b.scatter([], [], s=18, color=color, alpha=0.55, label="one seed")
        ax_b.set_xlabel("layer index (quantized layer, input → output)")
        ax_b.set_ylabel("angle between gradients (degrees)")
        ax_b.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
        ax_b.set_title(f"(b) {deep}, per layer after epoch {int(layers.epoch.max()) + 1} (mean over the pairs)\n"
                       f"Spearman(depth, angle) per seed: {', '.join(f'{r:+.2f}' for r in rhos)} "
                       f"(E11: negative = deeper layers more aligned)", fontsize=11)
        ax_b.legend(loc="upper left", bbox_to_anchor=(0, -0.13), ncols=3, fontsize=9, frameon=False)
        fig.suptitle("Angles between the gradients that different bit-widths send to the shared weights "
                     "(EMQ's sequential bit-wise loop)")
    return _finish(fig, png_path, "gradient_angles")


# ---------------------------------------------------------------- 04: pruning

def plot_regime(csv_path: PathLike, png_path: PathLike | None = None) -> Figure:
    """Is the profile converged? Per trained bit-width: the test accuracy of the run with twice the epochs at
    each epoch it was evaluated, a line per seed, and the final accuracy of both schedules per seed (hollow: the
    profile's epochs; filled: doubled), with the mean gain of doubling and its 95% t-interval in the title.
    CSV: ``epoch, bits, test_accuracy, seed, epochs`` (optional ``valid``: dashed lines and crosses for runs that
    fail a check)."""
    frame = _read(csv_path, ["epoch", "bits", "test_accuracy", "seed", "epochs"])
    frame = frame.assign(_valid=_valid(frame))
    schedules = sorted(frame.epochs.unique())
    if len(schedules) < 2:
        raise ValueError(f"{csv_path} has one schedule ({schedules[0]} epochs); the figure compares two")
    short, long = schedules[0], schedules[-1]
    bits = sorted(frame.bits.unique(), reverse=True)
    seeds = sorted(frame.seed.unique())
    color = method_color(labels.EMQ)
    final = frame[frame.epoch == frame.epochs - 1]
    with _style():
        fig, axes = plt.subplots(1, len(bits), figsize=(4.1 * len(bits) + 1, 4.4), sharey=True, squeeze=False,
                                 layout="constrained")
        for ax, b in zip(axes[0], bits):
            part = frame[frame.bits == b]
            for seed in seeds:
                run = part[(part.seed == seed) & (part.epochs == long)].sort_values("epoch")
                ok = bool(run._valid.all())
                ax.plot(run.epoch + 1, run.test_accuracy, color=color, lw=1.2, alpha=0.55, ls="-" if ok else "--",
                        marker="o" if ok else "x", ms=3.5)
            ends = final[final.bits == b]
            for epochs, fill in ((short, "white"), (long, color)):
                end = ends[ends.epochs == epochs]
                ok = end._valid.to_numpy()
                ax.scatter(end.epochs[ok], end.test_accuracy[ok], s=45, facecolors=fill, edgecolors=color,
                           linewidths=1.6, zorder=4)
                ax.scatter(end.epochs[~ok], end.test_accuracy[~ok], s=45, marker="x", color=color, linewidths=1.6,
                           zorder=4)
            gain = ends.pivot_table(index="seed", columns="epochs", values="test_accuracy")
            mean, low, high = t_interval(gain[long] - gain[short]) if {short, long} <= set(gain) else (np.nan,) * 3
            interval = f" [{low:+.2f}, {high:+.2f}]" if np.isfinite(low) else ""
            ax.set_title(f"{b} bits: doubling gains {mean:+.2f}{interval}", fontsize=11)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
        axes[0, 0].set_ylabel("test accuracy (%)")
        handles = [Line2D([], [], color=color, lw=1.2, marker="o", ms=3.5, alpha=0.7,
                          label=f"{long} epochs, one seed"),
                   Line2D([], [], ls="", marker="o", ms=7, mfc="white", mec=color, mew=1.6,
                          label=f"final accuracy, {short} epochs (the profile)"),
                   Line2D([], [], ls="", marker="o", ms=7, color=color, label=f"final accuracy, {long} epochs")]
        if not frame._valid.all():
            handles.append(Line2D([], [], color=color, ls="--", marker="x", label="a run that fails a check"))
        fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
        fig.suptitle(f"Is the profile converged? Full-data EMQ at {short} and {long} epochs, per trained bit-width "
                     f"({_seeds(frame)}; gain: mean over seeds, 95% t-interval)")
    return _finish(fig, png_path, "regime")


def plot_pruning(csv_path: PathLike, chosen: str, png_path: PathLike | None = None) -> Figure:
    """Every arm of the pruning table minus EMQ's ``chosen`` sampler (average accuracy over the trained
    bit-widths, paired by seed): on the test set and, beside it, on the validation split the sampler was chosen
    on; a dot per seed (a cross where a run of the pair fails a check), the mean and its 95% t-interval, the zero
    line and the non-inferiority margin of claims E14 and targets T2, T3.
    CSV: ``method, pruning_rate, seed, avg_accuracy`` (optional ``val_avg_accuracy``, ``valid``)."""
    frame = _read(csv_path, ["method", "pruning_rate", "seed", "avg_accuracy"])
    if chosen not in set(frame.method):
        raise ValueError(f"{csv_path} has no rows of the chosen sampler {chosen!r}; its methods: "
                         f"{list(dict.fromkeys(frame.method))}")
    ref = frame[frame.method == chosen]
    rate = float(ref.pruning_rate.iloc[0])
    arms = [m for m in dict.fromkeys(frame.method) if m != chosen]
    rates = frame.groupby("method").pruning_rate.first()
    names = [m if np.isclose(rates[m], rate) else f"{m} ({rates[m]:.0%} pruned)" for m in arms]
    panels = [("avg_accuracy", "test set")]
    if "val_avg_accuracy" in frame.columns and frame.val_avg_accuracy.notna().any():
        panels.append(("val_avg_accuracy", "validation split"))
    with _style():
        fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels) + 3, 0.4 * len(arms) + 2.8),
                                 sharey=True, squeeze=False, layout="constrained")
        for ax, (value, split) in zip(axes[0], panels):
            for i, arm in enumerate(arms):
                d = _pair(frame, "method", arm, chosen, value)
                _interval(ax, i, d.difference, method_color(arm, chosen), invalid=~d.valid)
            _zero(ax, label="EMQ's sampler (0)")
            _threshold(ax, NON_INFERIORITY, f"+{NON_INFERIORITY:g}: EMQ is at least as good while an arm stays left "
                                            f"of it (E14, T2, T3)")
            ax.set_xlabel(f"arm − EMQ's sampler, {split} (points{_frame_points(ax)})")
            ax.set_title(f"{split}: EMQ's sampler {ref[value].mean():.2f}% ({_seeds(ref)})", fontsize=11)
        _rows(axes[0, 0], names)
        handles, _ = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles=[*_mark_handles(_any_invalid(frame)), *handles], loc="outside lower center", ncols=3)
        fig.suptitle(f"Every arm minus EMQ's sampler at {rate:.0%} pruning, paired by seed (right of 0: better than "
                     f"EMQ)\nEMQ's sampler, chosen on the validation split: {chosen}")
    return _finish(fig, png_path, "pruning")


# ---------------------------------------------------------------- 05: training cost

def plot_training_cost(csv_path: PathLike, png_path: PathLike | None = None) -> Figure:
    """Each method against Dedicated trained on the same seed: (a) average accuracy minus Dedicated's; (b) the
    speed-up over Dedicated on the trained bit-widths, in wall-clock and in sample passes; (c) the speed-up over
    Dedicated on every bit-width the multi-bit model serves, with the design's pass ratio and claim E3's and
    target T5's thresholds. A dot per seed (a cross where a run of the pair fails a check), the mean and its 95%
    t-interval (on the speed-ups themselves, as claim E3 grades them); Dedicated, drawn in its colour, is the
    zero line of (a) and the 1× line of (b) and (c).
    CSV: ``method, seed, avg_accuracy, speedup_wall, speedup_passes`` (optional ``speedup_wall_served``,
    ``speedup_passes_served``, ``design_pass_ratio``, ``served_bits``, ``valid`` or ``invalid_reason``)."""
    frame = _read(csv_path, ["method", "seed", "avg_accuracy", "speedup_wall", "speedup_passes"])
    if labels.DEDICATED not in set(frame.method):
        raise ValueError(f"{csv_path} has no {labels.DEDICATED} rows, the baseline of every comparison")
    methods = [m for m in dict.fromkeys(frame.method) if m != labels.DEDICATED]
    dedicated = frame[frame.method == labels.DEDICATED]
    valid = _valid(frame)
    dedicated_ok = valid[dedicated.index].groupby(dedicated.seed.to_numpy()).all()
    served = "speedup_wall_served" in frame.columns and frame.speedup_wall_served.notna().any()
    series = [("speedup_wall", -0.2, "D"), ("speedup_passes", 0.2, "s")]  # (column, row offset, mean marker)
    baseline = method_color(labels.DEDICATED)
    with _style():
        fig, axes = plt.subplots(1, 3 if served else 2, figsize=(19 if served else 13, 0.7 * len(methods) + 2.8),
                                 sharey=True, layout="constrained")
        ax_a, ax_b = axes[0], axes[1]
        for i, m in enumerate(methods):
            d = _pair(frame, "method", m, labels.DEDICATED)
            _interval(ax_a, i, d.difference, method_color(m), invalid=~d.valid)
            rows = frame[frame.method == m]
            bad = ~(valid[rows.index].to_numpy() & dedicated_ok.reindex(rows.seed).fillna(False).to_numpy())
            for ax, suffix in [(ax_b, ""), *([(axes[2], "_served")] if served else [])]:
                for column, offset, marker in series:
                    _interval(ax, i + offset, rows[column + suffix], method_color(m), invalid=bad, spread=0.14,
                              marker=marker)
            if served and rows.speedup_wall_served.notna().any():
                if "design_pass_ratio" in rows and rows.design_pass_ratio.notna().any():
                    axes[2].scatter([rows.design_pass_ratio.mean()], [i + series[1][1]], marker="|", s=300,
                                    color=THRESHOLD, linewidths=2.2, zorder=6)
                if "served_bits" in rows:
                    axes[2].annotate(f"serves {rows.served_bits.dropna().astype(str).iloc[0]} bits", (0, i - 0.36),
                                     xycoords=("axes fraction", "data"), xytext=(4, 0), textcoords="offset points",
                                     ha="left", va="center", fontsize=9, color="0.3")
        ax_a.axvline(0, color=baseline, lw=1.6, zorder=1)
        ax_a.set_xlabel(f"average accuracy − Dedicated's (points{_frame_points(ax_a)})")
        ax_a.set_title(f"(a) accuracy; Dedicated {dedicated.avg_accuracy.mean():.1f}% ({_seeds(dedicated)})",
                       fontsize=11)
        for ax in axes[1:]:
            ax.axvline(1.0, color=baseline, lw=1.6, zorder=1)
            ax.set_xlim(left=0)
            ax.xaxis.set_major_formatter(mpl.ticker.FuncFormatter(lambda v, _: f"{v:g}×"))
        ax_b.set_xlabel("speed-up over Dedicated on the trained bit-widths")
        ax_b.set_title("(b) speed-up, trained bit-widths", fontsize=11)
        if served:
            _threshold(axes[2], CLAIM["E3"].threshold, f"E3: above {CLAIM['E3'].threshold:g}× (90% of the "
                                                       f"paper's {CLAIM['E3'].paper_value})")
            axes[2].axvline(TARGETS["T5"].threshold, color=THRESHOLD, ls=":", lw=1.2,
                            label=f"T5 target: above {TARGETS['T5'].threshold:g}×")
            axes[2].set_xlabel("speed-up over Dedicated on every served bit-width")
            axes[2].set_title("(c) speed-up, every bit-width the model serves", fontsize=11)
        _rows(ax_a, methods)
        handles = [*_mark_handles(not valid.all()),
                   Line2D([], [], ls="", marker="D", ms=6, color="0.15", label="wall-clock (upper mark)"),
                   Line2D([], [], ls="", marker="s", ms=6, color="0.15", label="sample passes (lower mark)"),
                   Line2D([], [], color=baseline, lw=1.6, label="Dedicated: 0 points, 1×")]
        if served:
            handles.append(Line2D([], [], ls="", marker="|", ms=14, mew=2.2, color=THRESHOLD,
                                  label="the design's pass ratio"))
            handles += axes[2].get_legend_handles_labels()[0]
        fig.legend(handles=handles, loc="outside lower center", ncols=4)
        fig.suptitle("Training cost against one Dedicated model per bit-width, trained and timed on the same seed")
    return _finish(fig, png_path, "training_cost")


# ---------------------------------------------------------------- 06, 07: ACS

def _acs_minus(frame: pd.DataFrame, rivals: Sequence[str], value: str = "avg_accuracy") -> pd.DataFrame:
    """ACS minus each of ``rivals`` at each data fraction, paired by seed (full data, one run per seed, is paired
    with ACS at every fraction): columns ``fraction, seed, difference, valid, group`` (the rival)."""
    parts = [_pair(frame, "method", "acs", rival, value, on=["seed"] if rival == labels.FULL_DATA
                   else ["fraction", "seed"], keep=["fraction"]).assign(group=rival) for rival in rivals]
    return pd.concat(parts, ignore_index=True)


def _grouped(ax: Axes, long: pd.DataFrame, groups: Sequence[str], value: str = "difference",
             at: str = "fraction") -> None:
    """``value`` per category ``at`` (x, data fractions) and group (side by side within a category, coloured by
    method): a dot per seed, the mean and its 95% t-interval. ``long``: columns ``at``, ``group``, ``value``,
    ``valid``."""
    categories = sorted(long[at].unique())
    width = 0.8 / max(1, len(groups))
    for j, group in enumerate(groups):
        for i, category in enumerate(categories):
            part = long[(long.group == group) & (long[at] == category)]
            _interval(ax, i + (j - (len(groups) - 1) / 2) * width, part[value], method_color(group),
                      invalid=~part.valid.astype(bool), vertical=True, spread=0.6 * width)
    ax.set_xticks(range(len(categories)), [f"{c:.0%}" if at == "fraction" else str(c) for c in categories])
    if at == "fraction":
        ax.set_xlabel("data fraction S (% of training samples per epoch)")
    ax.grid(axis="x", visible=False)


def _rivals(frame: pd.DataFrame, subject: str = "acs") -> list[str]:
    return [m for m in dict.fromkeys(frame.method) if m != subject]


def _acs_against(ax: Axes, frame: pd.DataFrame, title: str, rivals: Sequence[str] | None = None) -> list[Line2D]:
    """ACS minus every other method of ``frame`` per fraction on ``ax``; returns the legend entries."""
    rivals = list(rivals) if rivals is not None else _rivals(frame)
    _grouped(ax, _acs_minus(frame, rivals), rivals)
    _zero(ax, vertical=True)
    acs = frame[frame.method == "acs"]
    ax.set_ylabel("ACS − rival, test accuracy (points)")
    ax.set_title(f"{title} ({_seeds(acs)})", fontsize=11)
    return [_method_handle(r, f"ACS − {method_name(r)}") for r in rivals]


def _against_reference(ax: Axes, frame: pd.DataFrame, key: str, reference: str, names: dict | None = None) -> None:
    """Rows: every other value of ``key`` minus ``reference`` (average accuracy, paired by seed)."""
    others = [v for v in dict.fromkeys(frame[key].astype(str)) if v != reference]
    frame = frame.assign(**{key: frame[key].astype(str)})
    for i, other in enumerate(others):
        d = _pair(frame, key, other, reference)
        _interval(ax, i, d.difference, method_color("acs"), invalid=~d.valid)
    _zero(ax)
    _rows(ax, [(names or {}).get(o, o) for o in others])


def plot_acs(fractions_csv: PathLike, schedule_csv: PathLike, interval_csv: PathLike,
             png_path: PathLike | None = None) -> Figure:
    """ACS on single-bit (W2/A32) QAT (docs/method.md §7): (a) ACS minus random (drawn once, re-drawn every epoch)
    and minus full data at each data fraction, paired by seed (claims A1, A3); (b) each β(t) schedule minus
    cosine (A5); (c) each reselection interval R minus a single selection (A4). A dot per seed, the mean and its
    95% t-interval. CSVs: ``method, fraction, seed, avg_accuracy``; ``schedule, ...``; ``interval, ...``."""
    fractions = _read(fractions_csv, ["method", "fraction", "seed", "avg_accuracy"])
    schedule = _read(schedule_csv, ["schedule", "fraction", "seed", "avg_accuracy"])
    interval = _read(interval_csv, ["interval", "fraction", "seed", "avg_accuracy"]).astype({"interval": str})
    cosine = "cosine" if "cosine" in set(schedule.schedule) else str(schedule.schedule.iloc[0])
    once = "once" if "once" in set(interval.interval) else interval.interval.iloc[-1]
    with _style():
        fig, (ax_f, ax_s, ax_r) = plt.subplots(1, 3, figsize=(18, 5.2), layout="constrained",
                                               gridspec_kw={"width_ratios": [1.5, 1, 1]})
        handles = _acs_against(ax_f, fractions, "(a) ACS against random and full data")
        ax_f.legend(handles=handles, loc="best", fontsize=9)
        _against_reference(ax_s, schedule, "schedule", cosine)
        ax_s.set_xlabel(f"schedule − {cosine}, test accuracy (points)")
        ref = schedule[schedule.schedule == cosine].avg_accuracy.mean()
        ax_s.set_title(f"(b) β(t) at S = {schedule.fraction.iloc[0]:.0%}: {cosine} {ref:.1f}% ({_seeds(schedule)})",
                       fontsize=11)
        names = {i: f"R = {i} epoch{'s' if i != '1' else ''}" for i in interval.interval.unique()}
        _against_reference(ax_r, interval, "interval", once, names)
        ax_r.set_xlabel("R − a single selection, test accuracy (points)")
        ref = interval[interval.interval == once].avg_accuracy.mean()
        ax_r.set_title(f"(c) reselection at S = {interval.fraction.iloc[0]:.0%}: once {ref:.1f}% "
                       f"({_seeds(interval)})", fontsize=11)
        fig.legend(handles=_mark_handles(any(_any_invalid(f) for f in (fractions, schedule, interval))),
                   loc="outside lower center", ncols=3)
        fig.suptitle("Adaptive Coreset Selection for quantization-aware training (one bit-width, W2/A32): "
                     "differences paired by seed")
    return _finish(fig, png_path, "acs")


def plot_acs_baselines(baselines_csv: PathLike, cost_csv: PathLike, png_path: PathLike | None = None) -> Figure:
    """(top) ACS minus each baseline at each data fraction, one panel per fraction, a row per baseline and full
    data, paired by seed (claim A2); (bottom left) each method's selection seconds per run against the fraction,
    with the reference run's seconds (A7: ACS's are the same at every fraction); (bottom right) the teacher's
    share of the training seconds, measured where a run without distillation exists, against what pass counting
    predicts and claim A8's bound.
    CSVs: ``method, fraction, seed, avg_accuracy``; ``method, fraction, seed, selection_seconds,
    reference_seconds, teacher_share_measured, teacher_share_passes``."""
    baselines = _read(baselines_csv, ["method", "fraction", "seed", "avg_accuracy"])
    cost = _read(cost_csv, ["method", "fraction", "seed", "selection_seconds", "reference_seconds",
                            "teacher_share_measured", "teacher_share_passes"])
    rivals = _rivals(baselines)
    differences = _acs_minus(baselines, rivals)
    fractions = sorted(baselines.fraction[baselines.method == "acs"].unique())
    names = [method_name(r) for r in rivals]
    with _style():
        fig = plt.figure(figsize=(19, 0.36 * len(rivals) + 7.8), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[0.36 * len(rivals) + 1.8, 4.6])
        axes = top.subplots(1, len(fractions), sharey=True, sharex=True, squeeze=False)[0]
        for ax, fraction in zip(axes, fractions):
            at = differences[np.isclose(differences.fraction, fraction)]
            for i, rival in enumerate(rivals):
                part = at[at.group == rival]
                _interval(ax, i, part.difference, method_color(rival), invalid=~part.valid)
            _zero(ax)
            ax.set_title(f"S = {fraction:.0%}", fontsize=11)
            ax.set_xlabel("ACS − row (points)")
        _rows(axes[0], names)
        top.suptitle(f"(a) ACS minus every baseline and full data at each data fraction, paired by seed "
                     f"({_seeds(baselines)}; right of 0: ACS ahead)", fontsize=12)
        ax_s, ax_t = bottom.subplots(1, 2)
        methods = list(dict.fromkeys(cost.method))
        for method in methods:
            part = cost[cost.method == method]
            mean = part.groupby("fraction").selection_seconds.mean()
            ax_s.plot(100 * mean.index, mean, color=method_color(method), lw=2.4 if method == "acs" else 1.2,
                      marker="D" if method == "acs" else "o", ms=5, label=method_name(method), zorder=3)
            ax_s.scatter(100 * part.fraction, part.selection_seconds, s=12, color=method_color(method), alpha=0.5,
                         linewidths=0)
        ax_s.axhline(cost.reference_seconds.mean(), color=method_color(labels.FULL_DATA), ls="-.", lw=1.2,
                     label="the reference run (paid once)")
        ax_s.set_yscale("log")
        ax_s.set_xlabel("data fraction S (%)")
        ax_s.set_ylabel("selection seconds per run (log scale)")
        ax_s.set_title("(b) selection seconds: a dot per seed, the line through the means (A7)", fontsize=11)
        ax_s.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8.5)
        measured = cost[cost.teacher_share_measured.notna()].assign(
            share=lambda f: 100 * f.teacher_share_measured, group=lambda f: f.method, valid=True)
        groups = list(dict.fromkeys(measured.method))
        if groups:
            _grouped(ax_t, measured, groups, value="share")
        ax_t.axhline(100 * cost.teacher_share_passes.mean(), color="black", ls=":", lw=1.4,
                     label=f"pass counting predicts {100 * cost.teacher_share_passes.mean():.0f}%")
        _threshold(ax_t, CLAIM["A8"].threshold, f"A8: below {CLAIM['A8'].threshold:g}%", vertical=True)
        ax_t.set_ylabel("teacher's share of training seconds (%)")
        ax_t.set_title("(c) the teacher's forward passes, measured (with − without distillation)", fontsize=11)
        ax_t.legend(handles=[*[_method_handle(g) for g in groups], *ax_t.get_legend_handles_labels()[0]],
                    loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8.5)
        bottom.legend(handles=_mark_handles(_any_invalid(baselines)), loc="outside lower center", ncols=3)
        fig.suptitle("ACS against every baseline, and what its time is spent on (one bit-width, W2/A32)")
    return _finish(fig, png_path, "acs_baselines")


def plot_acs_ablations(split_csv: PathLike, no_distillation_csv: PathLike, transfer_csv: PathLike,
                       overlap_csv: PathLike, vit_csv: PathLike, png_path: PathLike | None = None) -> Figure:
    """ACS's ablations, each a difference paired by seed: (a) ACS minus the full-coverage split, RS2 and random
    per fraction (A9); (b) all trained on labels only, ACS (EVS) minus EL2N and random (A10); (c) per model, the
    other model's ACS coreset and its own minus random drawn once, and the other's minus random re-drawn (A11);
    (d) the overlap of the two models' coresets at each selection epoch against two uniform draws' (A12); (e)
    ACS minus random on a small ViT (A13)."""
    split = _read(split_csv, ["method", "fraction", "seed", "avg_accuracy"])
    plain = _read(no_distillation_csv, ["method", "fraction", "seed", "avg_accuracy"])
    transfer = _read(transfer_csv, ["model", "coreset", "seed", "avg_accuracy"])
    overlap = _read(overlap_csv, ["epoch", "overlap", "seed"])
    vit = _read(vit_csv, ["method", "seed", "avg_accuracy"])
    with _style():
        fig = plt.figure(figsize=(19, 10.5), layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1])
        ax_a, ax_b = top.subplots(1, 2)
        for ax, frame, title in [(ax_a, split, "(a) ACS against a full-coverage split, A9"),
                                 (ax_b, plain, "(b) no distillation, labels only, A10")]:
            ax.legend(handles=_acs_against(ax, frame, title), loc="best", fontsize=9)
        ax_c, ax_d, ax_e = bottom.subplots(1, 3, gridspec_kw={"width_ratios": [1.5, 1, 1]})
        rows, transfer = [], transfer.assign(coreset=transfer.coreset.astype(str))
        for model in dict.fromkeys(transfer.model):
            mine = transfer[transfer.model == model]
            others = [c for c in dict.fromkeys(mine.coreset) if c.startswith(TRANSFERRED_PREFIX)]
            for minuend, reference in [*[(o, "random-once") for o in others], *[(o, "random") for o in others],
                                       ("own ACS", "random-once")]:
                if {minuend, reference} <= set(mine.coreset):
                    rows.append((f"{model}: {minuend} − {method_name(reference)}",
                                 _pair(mine, "coreset", minuend, reference), method_color(minuend)))
        for i, (_, d, color) in enumerate(rows):
            _interval(ax_c, i, d.difference, color, invalid=~d.valid)
        _zero(ax_c)
        _rows(ax_c, [name for name, _, _ in rows])
        ax_c.set_xlabel("difference in test accuracy (points)")
        ax_c.set_title(f"(c) coresets across architectures (A11; {_seeds(transfer)})", fontsize=11)
        fraction = float(overlap.fraction.iloc[0]) if "fraction" in overlap.columns else float("nan")
        for k, (epoch, part) in enumerate(overlap.groupby("epoch")):
            _interval(ax_d, k, part.overlap, method_color("acs"), vertical=True)
        ax_d.set_xticks(range(overlap.epoch.nunique()), [str(e) for e in sorted(overlap.epoch.unique())])
        _threshold(ax_d, CLAIM["A12"].threshold, f"A12: above {CLAIM['A12'].threshold:g}%"
                   + (f" (two uniform draws of {fraction:.0%})" if np.isfinite(fraction) else ""), vertical=True)
        ax_d.set_xlabel("selection epoch")
        ax_d.set_ylabel("overlap of the two models' coresets (%)")
        ax_d.set_ylim(0, max(2 * CLAIM["A12"].threshold, 1.15 * overlap.overlap.max()))
        ax_d.set_title(f"(d) coreset overlap ({overlap.models.iloc[0] if 'models' in overlap else 'two models'})",
                       fontsize=11)
        ax_d.legend(loc="upper right", fontsize=9)
        vit_rivals = _rivals(vit)
        for i, rival in enumerate(vit_rivals):
            d = _pair(vit, "method", "acs", rival)
            _interval(ax_e, i, d.difference, method_color(rival), invalid=~d.valid)
        _zero(ax_e)
        _rows(ax_e, [f"ACS − {method_name(r)}" for r in vit_rivals])
        ax_e.set_xlabel("difference in test accuracy (points)")
        ax_e.set_title(f"(e) a small ViT at 10% (A13; {_seeds(vit)})", fontsize=11)
        invalid = any(_any_invalid(f) for f in (split, plain, transfer, vit))
        fig.legend(handles=_mark_handles(invalid), loc="outside lower center", ncols=3)
        fig.suptitle("ACS ablations: coverage, distillation, architectures (one bit-width, W2/A32), "
                     "differences paired by seed")
    return _finish(fig, png_path, "acs_ablations")


def plot_label_noise(csv_path: PathLike, png_path: PathLike | None = None) -> Figure:
    """Under symmetric label noise: (a) ACS minus EL2N, random and full data at each data fraction, paired by
    seed, with claim A6's margin against full data; (b) the share of wrong labels among the kept samples (last
    epoch's subset) per method, against the noise rate (what random keeps on average).
    CSV: ``method, fraction, seed, label_noise, avg_accuracy, subset_flipped, subset_size``."""
    frame = _read(csv_path, ["method", "fraction", "seed", "label_noise", "avg_accuracy", "subset_flipped",
                             "subset_size"])
    noise = float(frame.label_noise.max())
    with _style():
        fig, (ax_a, ax_w) = plt.subplots(1, 2, figsize=(15, 5.4), layout="constrained")
        handles = _acs_against(ax_a, frame, f"(a) ACS against each rival with {noise:.0%} wrong labels")
        if labels.FULL_DATA in set(frame.method):
            _threshold(ax_a, CLAIM["A6"].threshold, f"A6: ACS − full data above {CLAIM['A6'].threshold:g}",
                       vertical=True)
            handles += ax_a.get_legend_handles_labels()[0][-1:]
        ax_a.legend(handles=handles, loc="best", fontsize=9)
        kept = frame[frame.method != labels.FULL_DATA]
        shares = kept.assign(share=100 * kept.subset_flipped / kept.subset_size, group=kept.method,
                             valid=_valid(kept))
        methods = list(dict.fromkeys(shares.method))
        _grouped(ax_w, shares, methods, value="share")
        ax_w.axhline(100 * noise, color="black", ls=":", lw=1.4, label=f"noise rate {noise:.0%} (random, on average)")
        ax_w.set_ylabel("wrong labels among the kept samples (%)")
        ax_w.set_title("(b) wrong labels in the selected subsets (last epoch)", fontsize=11)
        ax_w.legend(handles=[*[_method_handle(m) for m in methods], *ax_w.get_legend_handles_labels()[0]],
                    loc="best", fontsize=9)
        fig.legend(handles=_mark_handles(_any_invalid(frame)), loc="outside lower center", ncols=3)
        fig.suptitle(f"Coreset selection under {noise:.0%} symmetric label noise (W2/A32)")
    return _finish(fig, png_path, "label_noise")


# ---------------------------------------------------------------- 08: score extraction

def plot_score_extraction(csv_path: PathLike, png_path: PathLike | None = None) -> Figure:
    """Each variant of EMQ's score extraction against the first (EMQ's sampler as notebook 04 chose it): (a)
    average accuracy over the trained bit-widths minus the first's, paired by seed; (b) the wall-clock of each
    run, the part spent scoring and selecting, and, where a variant needs the full-precision reference run, the
    total with it. CSV: ``variant, seed, avg_accuracy, wall_seconds, selection_seconds`` (optional
    ``reference_seconds``)."""
    frame = _read(csv_path, ["variant", "seed", "avg_accuracy", "wall_seconds", "selection_seconds"])
    variants = list(dict.fromkeys(frame.variant))
    reference = variants[0]
    with _style():
        fig, (ax_a, ax_t) = plt.subplots(1, 2, figsize=(15, 0.5 * len(variants) + 2.8), sharey=True,
                                         layout="constrained")
        for i, variant in enumerate(variants[1:], start=1):
            d = _pair(frame, "variant", variant, reference)
            _interval(ax_a, i, d.difference, method_color(variant), invalid=~d.valid)
        ref = frame[frame.variant == reference]
        ax_a.annotate(f"the reference: {ref.avg_accuracy.mean():.2f}% ({_seeds(ref)})", (0, 0),
                      xycoords=("data", "data"), xytext=(6, 0), textcoords="offset points", va="center", fontsize=9)
        _zero(ax_a)
        ax_a.set_xlabel(f"variant − {reference}, average accuracy (points{_frame_points(ax_a)})")
        ax_a.set_title("(a) accuracy, paired by seed", fontsize=11)
        with_reference = "reference_seconds" in frame.columns and (frame.reference_seconds > 0).any()
        for i, variant in enumerate(variants):
            rows = frame[frame.variant == variant]
            color, bad = method_color(variant), ~_valid(rows)
            _interval(ax_t, i - 0.15, rows.wall_seconds, color, invalid=bad, spread=0.12)
            _interval(ax_t, i + 0.15, rows.selection_seconds.clip(lower=1e-4), color, invalid=bad, spread=0.12,
                      marker="s")
            if with_reference and (rows.reference_seconds > 0).any():
                _interval(ax_t, i, rows.wall_seconds + rows.reference_seconds, color, invalid=bad, spread=0.12,
                          marker="^")
        ax_t.set_xscale("log")
        ax_t.set_xlabel("seconds per run (log scale)")
        ax_t.set_title("(b) wall-clock", fontsize=11)
        _rows(ax_a, variants)
        handles = [*_mark_handles(_any_invalid(frame)),
                   Line2D([], [], ls="", marker="D", ms=6, color="0.15", label="the run's wall-clock"),
                   Line2D([], [], ls="", marker="s", ms=6, color="0.15", label="of it, scoring and selection")]
        if with_reference:
            handles.append(Line2D([], [], ls="", marker="^", ms=7, color="0.15",
                                  label="with the full-precision reference run"))
        fig.legend(handles=handles, loc="outside lower center", ncols=3)
        title = (f"EMQ's score extraction, each variant against {reference}" +
                 (f" (kept fraction S = {frame.fraction.iloc[0]:.0%})" if "fraction" in frame.columns else ""))
        fig.suptitle(title)
    return _finish(fig, png_path, "score_extraction")


# ---------------------------------------------------------------- 09: the claims

UNIT_AXES = {" points": "per-seed value (points of accuracy)", "%": "per-seed value (%)",
             "x": "per-seed value (× speed-up)", " deg": "per-seed value (degrees)", "": "per-seed value (no unit)"}


def _claim_values(row: pd.Series) -> pd.Series:
    """The per-seed values claims.csv's ``row`` was graded on, recomputed by its claim's metric from the results
    folder; an error when the claim is unknown or the values are not those the row was graded on."""
    claim = CLAIM.get(row.claim_id)
    if claim is None or claim.metric is None:
        raise ValueError(f"claims.csv grades {row.claim_id!r}, which emqlib.harness.claims does not measure; "
                         f"rebuild claims.csv (notebooks/09_claims.ipynb)")
    values = claim.metric().values.dropna()
    mean, low, high = t_interval(values)
    same = len(values) == int(row.n_seeds) and (
        not np.isfinite(row.ci_low) or (np.isclose(low, row.ci_low, atol=1e-3) and np.isclose(high, row.ci_high,
                                                                                              atol=1e-3)))
    if not same:
        raise ValueError(f"claims.csv graded {row.claim_id} on other results than {paths.results_dir()} holds "
                         f"({int(row.n_seeds)} seeds, interval [{row.ci_low}, {row.ci_high}]; now {len(values)} "
                         f"seeds, [{low:.4f}, {high:.4f}]); rebuild claims.csv (notebooks/09_claims.ipynb)")
    return values


def plot_claims_forest(claims_csv: PathLike, png_path: PathLike | None = None) -> Figure:
    """Every claim of claims.csv with per-seed values, a row each: a dot per seed, the mean and its 95%
    t-interval, coloured by status (invalid rows hollow: not graded), the claim's threshold (a black tick) and
    the paper's effect where it states one (a hollow diamond); one panel per unit. Claims without values (not
    run, not comparable, or their study not run) are listed under the panels with their status. The per-seed
    values are recomputed by each claim's metric from the results folder (:func:`emqlib.harness.paths.results_dir`,
    where notebook 09 writes claims.csv), and must be those the row was graded on.
    CSV: claims.csv (``claim_id, claim, status, n_seeds, ci_low, ci_high``, optional ``fragile``)."""
    table = _read(claims_csv, ["claim_id", "claim", "status", "n_seeds", "ci_low", "ci_high"])
    drawn = table[table.status.isin([*GRADED, claims.INVALID]) & (table.n_seeds > 0)]
    apart = table.drop(drawn.index)
    values = {row.claim_id: _claim_values(row) for row in drawn.itertuples()}
    units = {cid: CLAIM[cid].unit for cid in values}
    groups = sorted(dict.fromkeys(units.values()), key=lambda u: -list(units.values()).count(u))
    heights = [sum(u == unit for u in units.values()) + 1.6 for unit in groups]
    with _style():
        fig, axes = plt.subplots(len(groups), 1, figsize=(13, 0.3 * sum(heights) + 2.4), squeeze=False,
                                 gridspec_kw={"height_ratios": heights}, layout="constrained")
        for ax, unit in zip(axes[:, 0], groups):
            rows = drawn[[units[c] == unit for c in drawn.claim_id]]
            names = []
            for i, row in enumerate(rows.itertuples()):
                claim, color = CLAIM[row.claim_id], STATUS_COLORS[row.status]
                graded = row.status in GRADED
                _interval(ax, i, values[row.claim_id], color)
                if not graded:  # drawn hollow over the filled marks: not graded
                    ax.scatter([values[row.claim_id].mean()], [i], s=50, marker="D", color="white", zorder=7)
                    ax.scatter([values[row.claim_id].mean()], [i], s=50, marker="D", facecolors="none",
                               edgecolors=color, linewidths=1.4, zorder=8)
                ax.scatter([claim.threshold], [i], marker="|", s=260, color=THRESHOLD, linewidths=2.2, zorder=2)
                if claim.paper_effect is not None and claim.direction != "matches":
                    sign = -1 if claim.direction == "below" else 1
                    ax.scatter([claim.threshold + sign * claim.paper_effect], [i], marker="D", s=42,
                               facecolors="none", edgecolors=THRESHOLD, linewidths=1.2, zorder=2)
                if claim.direction == "matches":
                    ax.scatter([-claim.threshold], [i], marker="|", s=260, color=THRESHOLD, linewidths=2.2, zorder=2)
                fragile = "*" if str(getattr(row, "fragile", "")).lower() == "true" else ""
                names.append(f"{row.claim_id}{fragile}  {textwrap.shorten(claim.claim, 62, placeholder='…')}")
            _rows(ax, names)
            for label, row in zip(ax.get_yticklabels(), rows.itertuples()):
                label.set_color(STATUS_COLORS[row.status] if row.status in GRADED else "0.45")
            ax.set_xlabel(UNIT_AXES.get(unit, f"per-seed value ({unit.strip()})"))
            if unit == " points":
                ax.set_xlabel(ax.get_xlabel()[:-1] + _frame_points(ax) + ")")
        status_handles = [Line2D([], [], lw=2.6, marker="D", ms=6, color=STATUS_COLORS[s], markeredgecolor="white",
                                 label=s) for s in GRADED if s in set(drawn.status)]
        if claims.INVALID in set(drawn.status):
            status_handles.append(Line2D([], [], lw=2.6, marker="D", ms=6, color=STATUS_COLORS[claims.INVALID],
                                         mfc="white", label="invalid (not graded: a run fails a check)"))
        marks = [Line2D([], [], ls="", marker="o", ms=4.5, color="0.15", alpha=0.65, label="one seed"),
                 Line2D([], [], ls="", marker="|", ms=14, mew=2.2, color=THRESHOLD, label="the claim's threshold"),
                 Line2D([], [], ls="", marker="D", ms=6, mfc="none", mec=THRESHOLD, label="the paper's effect")]
        listed = "; ".join(f"{status}: {', '.join(part.claim_id)}"
                           for status, part in apart.groupby("status", sort=False))
        fig.legend(handles=[*status_handles, *marks], loc="outside lower center", ncols=4, fontsize=9.5,
                   title=textwrap.fill(f"not drawn, no per-seed values: {listed}", 120) if listed else None,
                   title_fontsize=9.5)
        fig.suptitle("The papers' claims in our setting: each claim's per-seed values, mean and 95% t-interval\n"
                     "(a diamond = mean, coloured by status; * fragile: the status changes when one seed is left out)")
    return _finish(fig, png_path, "claims_forest")


__all__ = ["METHOD_COLORS", "STATUS_COLORS", "method_color", "method_name", "plot_bit_accuracy",
           "plot_activation_alignment", "plot_shared_bn", "plot_quant_core_check", "plot_gradient_angles",
           "plot_regime", "plot_pruning", "plot_training_cost", "plot_acs", "plot_acs_baselines",
           "plot_acs_ablations", "plot_label_noise", "plot_score_extraction", "plot_claims_forest", "plot_bench"]


# ---------------------------------------------------------------- make bench

BENCH_METHODS = {"dedicated": labels.DEDICATED, "joint": labels.JOINT, "emq": labels.EMQ,
                 "emq+coreset": labels.EMQ_CORESET}  # bench.csv's method names, for their colours


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
        a.axhline(target, color=THRESHOLD, ls="--", lw=1, label=f"target {target}x")
        a.set_xticks(pos, [f"{n}-bit" for n in on.index])
        a.set(xlabel="bit-width of the step", ylabel="step time / plain FP step (x)",
              title="(a) quantization overhead of a training step")
        a.legend(fontsize=8)
        bars = b.bar(methods.index, methods, color=[method_color(BENCH_METHODS.get(m, m)) for m in methods.index])
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

