"""A live bit-width explorer: one trained multi-bit model, a slider over the bit-widths it serves
(1..8 and 32) and a switch for EMQ's weight bias correction.

At each (bit-width, correction) the explorer shows the test accuracy per class, a small grid of
test images with their predicted labels, and the histogram of one BatchNorm layer's input at that
bit-width against the 32-bit child's: the alignment the correction buys (EMQ, weight bias
correction; docs/method.md). Everything a setting shows is computed once (:func:`compute_view`)
and kept in memory and in the run folder, so moving the slider only draws.

Switching the correction changes ``QuantSpec.bias_correction`` of every quantized layer at
evaluation time (:func:`bias_correction`); the weights and the BatchNorm statistics stay those the
model was trained with. On a model trained with the correction, "off" therefore shows those same
weights evaluated without it, not a model trained without it (that one is in ``02_shared_bn``).

In a notebook::

    from emqlib.harness import explorer
    explorer.BitWidthExplorer(run).widget()
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import time
from collections.abc import Iterator, Sequence

import ipywidgets as widgets
import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor, nn

from .analysis import batch_norm_layers, quantized_layers
from ..bits import FULL_PRECISION, bit_width, parse_bits
from ..data import ImageDataset
from ..inference import predict
from .plots import BASELINE, HIGHLIGHT, RIGHT, STYLE, WRONG
from .runs import Run
from .storage import load_torch, save_torch, sha256
from .build import load_run_data

CLASS_NAMES = {
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}
HISTOGRAM_VALUES = 20_000  # BatchNorm-input values kept per setting: enough for a smooth 60-bin histogram
SCREEN_DPI = 80  # 1200 px across: fits a notebook at full size and keeps the redraw short
CACHE_VERSION = 2  # bump when what a view holds changes, so older cached views are recomputed


def class_names(dataset: ImageDataset) -> list[str]:
    """Readable class names of ``dataset`` ("class c" where the data set has none)."""
    names = CLASS_NAMES.get(dataset.name)
    return list(names) if names else [f"class {c}" for c in range(dataset.num_classes)]


@contextlib.contextmanager
def bias_correction(model: nn.Module, enabled: bool) -> Iterator[nn.Module]:
    """Inside the block every quantized layer of ``model`` runs with EMQ's weight bias correction
    switched on or off (its ``QuantSpec.bias_correction``); the previous specs are restored after.

    Only the evaluation changes: the latent weights and the BatchNorm statistics are untouched.
    """
    layers = [m for _, m in quantized_layers(model)]
    previous = [m.spec for m in layers]
    for m in layers:
        m.spec = dataclasses.replace(m.spec, bias_correction=bool(enabled))
    try:
        yield model
    finally:
        for m, spec in zip(layers, previous):
            m.spec = spec


def grid_indices(targets: Tensor, n: int) -> Tensor:
    """``n`` test indices taken round-robin over the classes (the first image of each class, then
    the second, ...), so the grid shows every class when ``n`` >= the number of classes."""
    per_class = [torch.nonzero(targets == c).flatten() for c in range(int(targets.max()) + 1)]
    order = [members[i] for i in range(max(map(len, per_class))) for members in per_class if i < len(members)]
    return torch.stack(order[:n])


@dataclasses.dataclass(frozen=True)
class View:
    """What the explorer shows at one (bit-width, correction)."""

    bits: int
    correction: bool
    accuracy: float  # test accuracy (%) over the whole test set
    class_accuracy: np.ndarray  # [C] test accuracy (%) per class
    grid_predictions: np.ndarray  # [G] predicted class of each grid image
    bn_input: np.ndarray  # values of the chosen BatchNorm layer's input on the probe images (a fixed sample)


@torch.no_grad()
def compute_view(model: nn.Module, test: ImageDataset, bits: int, correction: bool, grid: Tensor,
                 layer: nn.Module, probe: Tensor) -> View:
    """The view at ``bits`` with the correction ``correction`` of ``model`` (in eval mode): one pass
    over the test set for the accuracies and the grid's predictions, one over the ``probe`` batch
    for the input of ``layer`` (a module of ``model``)."""
    captured: list[Tensor] = []
    with bias_correction(model, correction):
        logits = predict(model, test, bits)
        handle = layer.register_forward_pre_hook(lambda module, args: captured.append(args[0].detach().flatten()))
        try:
            with bit_width(model, bits):
                model(probe)
        finally:
            handle.remove()
    predicted = logits.argmax(1)
    correct = (predicted == test.targets).double()
    counts = torch.bincount(test.targets, minlength=test.num_classes).double()
    per_class = torch.zeros(test.num_classes, dtype=torch.double).index_add_(0, test.targets, correct)
    (values,) = captured  # the probe batch's only pass through the layer
    sample = torch.randperm(len(values), generator=torch.Generator().manual_seed(0))[:HISTOGRAM_VALUES]
    return View(bits=bits, correction=bool(correction), accuracy=100.0 * float(correct.mean()),
                class_accuracy=(100.0 * per_class / counts.clamp_min(1)).numpy(),
                grid_predictions=predicted[grid].numpy(), bn_input=values[sample].float().numpy())


# ---------------------------------------------------------------- drawing

def _class_accuracy_panel(ax, view: View, reference: View, names: Sequence[str]) -> None:
    y = np.arange(len(names))
    ax.barh(y, view.class_accuracy, color=HIGHLIGHT, alpha=0.85)
    ax.scatter(reference.class_accuracy, y, marker="|", s=200, color="black", zorder=3)
    ax.set_yticks(y)
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel("test accuracy (%)")
    ax.grid(axis="y", visible=False)
    ax.set_title(f"bars: {_bits_label(view.bits)}, {view.accuracy:.1f}% overall\n"
                 f"ticks: 32 bits, {reference.accuracy:.1f}% overall", fontsize=11)


def _image_grid(ax, view: View, images: Tensor, targets: Tensor, names: Sequence[str]) -> None:
    """The images in two rows in one axes (one axes, not one per image: a redraw stays fast), each
    titled with its predicted label and framed green (right) or red (wrong)."""
    height, width = images.shape[2:]
    columns = int(np.ceil(len(images) / 2))
    step_x, step_y = 1.12 * width, 1.45 * height  # room between tiles for the labels
    for i, (image, target, predicted) in enumerate(zip(images, targets, view.grid_predictions)):
        x, y = (i % columns) * step_x, (i // columns) * step_y + 0.4 * height
        pixels = image.permute(1, 2, 0).numpy()
        ax.imshow(pixels[..., 0] if pixels.shape[2] == 1 else pixels, cmap="gray", vmin=0, vmax=255,
                  extent=(x, x + width, y + height, y), interpolation="nearest")
        right = int(predicted) == int(target)
        color = RIGHT if right else WRONG  # red means wrong, here and in every figure
        ax.add_patch(Rectangle((x, y), width, height, fill=False, edgecolor=color, lw=1 if right else 2.5))
        ax.text(x + width / 2, y - 0.06 * height, names[int(predicted)], ha="center", va="bottom", fontsize=9,
                color=color, fontweight="normal" if right else "bold")
    ax.set_xlim(-0.05 * width, (columns - 1) * step_x + 1.05 * width)
    ax.set_ylim(step_y + 1.45 * height, 0)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("predicted labels of test images")


def _histogram_panel(ax, view: View, reference: View, layer_name: str) -> None:
    both = np.concatenate([view.bn_input, reference.bn_input])
    edges = np.linspace(both.min(), both.max(), 61)
    for v, color, label in ((reference, BASELINE, "32 bits"), (view, HIGHLIGHT, _bits_label(view.bits))):
        ax.hist(v.bn_input, bins=edges, density=True, histtype="stepfilled",
                alpha=0.35 if v is reference else 0.25, color=color, edgecolor=color, lw=1.8,
                label=f"{label}: mean {v.bn_input.mean():+.3f}, std {v.bn_input.std():.3f}")
    ax.set_xlabel(f"input of BatchNorm '{layer_name}' (all channels)")
    ax.set_ylabel("density")
    ax.set_title("BatchNorm input vs the 32-bit child")
    ax.legend(loc="upper right", fontsize=9, framealpha=0.9)


def _bits_label(bits: int) -> str:
    return "32 bits (FP)" if bits == FULL_PRECISION else f"{bits} bit{'s' if bits != 1 else ''}"


def draw_view(view: View, reference: View, images: Tensor, targets: Tensor, names: Sequence[str],
              layer_name: str, trained_bits: Sequence[int], trained_with_correction: bool) -> Figure:
    """One figure: accuracy per class (bars at ``view``, ticks at the 32-bit ``reference``), the grid
    of ``images`` titled with their predicted labels (green right, red wrong), and the histogram
    of the BatchNorm input at ``view.bits`` against 32 bits."""
    with mpl.rc_context(STYLE):
        # fixed margins, not a layout engine: the engine would take half of every redraw
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), gridspec_kw=dict(
            width_ratios=[1.1, 1.45, 1.15], left=0.085, right=0.99, bottom=0.12, top=0.82, wspace=0.18))
        _class_accuracy_panel(axes[0], view, reference, names)
        _image_grid(axes[1], view, images, targets, names)
        _histogram_panel(axes[2], view, reference, layer_name)
        trained = "trained" if view.bits in trained_bits else "never trained, no fine-tuning"
        as_trained = "as trained" if view.correction == trained_with_correction else "not as trained"
        fig.suptitle(f"{_bits_label(view.bits)} ({trained}) · weight bias correction "
                     f"{'on' if view.correction else 'off'} ({as_trained}) · predicted labels: green right, red wrong")
    plt.close(fig)  # no pyplot state kept; the widget shows the PNG
    return fig


def figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=SCREEN_DPI)
    return buffer.getvalue()


# ---------------------------------------------------------------- the explorer

class BitWidthExplorer:
    """The views of one multi-bit run at every (bit-width, correction), and the widget that shows them.

    ``layer`` names the multi-bit BatchNorm whose input is histogrammed (default: the deepest, the
    one before the classifier, where misalignment has accumulated over every quantized layer).
    Views are computed on construction, or read from the run folder where an earlier explorer with
    the same settings saved them.
    """

    def __init__(self, run: Run, bits="1-8,32", layer: str | None = None, n_images: int = 10,
                 probe_images: int = 64) -> None:
        if run.config.method == "dedicated":
            raise ValueError(f"{run.path.name} is a Dedicated run (one model per bit-width); the explorer needs one "
                             "multi-bit model: give an emq or joint run")
        self.run = run
        self.bits = parse_bits(bits)
        if FULL_PRECISION not in self.bits:
            raise ValueError(f"bits must include 32 (the reference of the histogram), got {bits!r}")
        self.model = run.model()
        layers = dict(batch_norm_layers(self.model))
        self.layer_name = layer if layer is not None else list(layers)[-1]
        if self.layer_name not in layers:
            raise ValueError(f"no multi-bit BatchNorm named {self.layer_name!r}; choose one of {list(layers)}")
        _, self.test = load_run_data(run.config)
        self.names = class_names(self.test)
        self.grid = grid_indices(self.test.targets, n_images)
        self.trained_with_correction = bool(run.config.model.quant.bias_correction)
        self.redraw_seconds: list[float] = []
        key = json.dumps([CACHE_VERSION, self.bits, self.layer_name, self.grid.tolist(), probe_images])
        self.cache_path = run.path / f"explorer-{sha256(key.encode())[:12]}.pt"
        self.views = self._load_or_compute(layers[self.layer_name], probe_images)

    def _load_or_compute(self, layer: nn.Module, probe_images: int) -> dict[tuple[int, bool], View]:
        if self.cache_path.exists():
            return {(v["bits"], v["correction"]): View(**v) for v in load_torch(self.cache_path)}
        probe = self.test.inputs(torch.arange(min(probe_images, len(self.test))))
        views = {(b, c): compute_view(self.model, self.test, b, c, self.grid, layer, probe)
                 for c in (True, False) for b in self.bits}
        save_torch([dataclasses.asdict(v) for v in views.values()], self.cache_path)
        return views

    def figure(self, bits: int, correction: bool) -> Figure:
        """The explorer's figure at (``bits``, ``correction``)."""
        return draw_view(self.views[(bits, correction)], self.views[(FULL_PRECISION, correction)],
                         self.test.images[self.grid], self.test.targets[self.grid], self.names, self.layer_name,
                         self.run.config.model.bits, self.trained_with_correction)

    def png(self, bits: int, correction: bool) -> bytes:
        """The figure at (``bits``, ``correction``) as PNG; the time it took is appended to ``redraw_seconds``."""
        start = time.perf_counter()
        data = figure_png(self.figure(bits, correction))
        self.redraw_seconds.append(time.perf_counter() - start)
        return data

    def correction_note(self) -> str:
        """What the correction switch does on this model, in words for the reader."""
        if self.trained_with_correction:
            return ("This model was <b>trained with</b> weight bias correction. Switching it off evaluates the "
                    "<b>same weights</b> (and the BatchNorm statistics learned with the correction) without it: it "
                    "shows what the correction does at evaluation, not how a model trained without it would do "
                    "(that model is in 02_shared_bn).")
        return ("This model was <b>trained without</b> weight bias correction. Switching it on applies the correction "
                "to weights that never saw it, with BatchNorm statistics learned without it: it shows what the "
                "correction does at evaluation, not how a model trained with it would do.")

    def widget(self, bits: int | None = None) -> widgets.VBox:
        """A slider over the bit-widths, a correction switch and the figure, redrawn on every change.

        Starts at ``bits`` (default: the lowest trained bit-width) with the correction as trained.
        """
        start = bits if bits is not None else min(self.run.config.model.bits)
        slider = widgets.SelectionSlider(options=[(str(b), b) for b in self.bits], value=start,
                                         description="bit-width", continuous_update=False,
                                         layout=widgets.Layout(width="420px"))
        switch = widgets.Checkbox(value=self.trained_with_correction, description="weight bias correction",
                                  indent=False)
        status = widgets.HTML()
        image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))

        def redraw(_change=None) -> None:
            image.value = self.png(slider.value, switch.value)
            view = self.views[(slider.value, switch.value)]
            status.value = (f"<b>{_bits_label(view.bits)}</b>: test accuracy {view.accuracy:.2f}% · "
                            f"redrawn in {self.redraw_seconds[-1]:.2f} s")

        slider.observe(redraw, names="value")
        switch.observe(redraw, names="value")
        redraw()
        note = widgets.HTML(f"<small>{self.correction_note()}</small>", layout=widgets.Layout(max_width="1100px"))
        return widgets.VBox([widgets.HBox([slider, switch, status]), note, image])
