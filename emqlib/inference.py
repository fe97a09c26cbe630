"""Forward passes over a data set without training: predictions, features and accuracy."""
from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .bits import bit_width
from .bn import recalibrate_bn
from .data import ImageDataset, batches


# Samples per forward pass when nothing is trained. In eval mode every sample's logits are computed
# alone, so the batch changes the time only: batches of 256 keep the cpu profile's activations in the
# CPU cache, which made them faster than batches of 1,000 when this was chosen (a timing no results file
# keeps), with bit-identical logits (tests/test_inference.py).
PREDICT_BATCH = 256


@torch.no_grad()
def predict(model: nn.Module, dataset: ImageDataset, bits: int, indices: Tensor | None = None,
            activation_bits: int | None = None, batch_size: int = PREDICT_BATCH,
            features: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Logits [N, C] of ``model`` at ``bits`` on ``indices`` (default: all), in eval mode, no augmentation.

    With ``features=True`` also returns the penultimate features [N, D].
    """
    indices = torch.arange(len(dataset)) if indices is None else indices
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits, feats = [], []
    with bit_width(model, bits, activation_bits):
        for x, _, _ in batches(dataset, indices, batch_size, shuffle=False):
            h = model.forward_features(x.to(device))
            logits.append(model.classifier(h).cpu())
            if features:
                feats.append(h.cpu())
    model.train(was_training)
    out = torch.cat(logits)
    return (out, torch.cat(feats)) if features else out


def accuracy(model: nn.Module, dataset: ImageDataset, bits: int, activation_bits: int | None = None) -> dict:
    """Test accuracy (%) and mean cross-entropy of ``model`` at ``bits``."""
    logits = predict(model, dataset, bits, activation_bits=activation_bits)
    return {"accuracy": 100.0 * (logits.argmax(1) == dataset.targets).float().mean().item(),
            "loss": F.cross_entropy(logits, dataset.targets).item()}


def accuracy_at_bits(model: nn.Module, test: ImageDataset, bits: Iterable[int], activation_bits: int | None = None,
                     recalibrate_on: ImageDataset | None = None, n_batches: int = 20,
                     batch_size: int = 128) -> list[dict]:
    """Accuracy at each bit-width; with ``recalibrate_on`` BatchNorm statistics are first
    re-estimated at that bit-width (docs/method.md §4.3) on a copy of the model, from ``n_batches``
    augmentation-free batches of ``recalibrate_on`` (a fixed, seeded draw)."""
    rows = []
    for b in bits:
        evaluated = model
        if recalibrate_on is not None:
            evaluated = copy.deepcopy(model)
            generator = torch.Generator().manual_seed(0)
            indices = torch.arange(len(recalibrate_on))
            recalibrate_bn(evaluated, b, batches(recalibrate_on, indices, batch_size, generator), n_batches,
                           activation_bits)
        rows.append({"bits": b, **accuracy(evaluated, test, b, activation_bits)})
    return rows
