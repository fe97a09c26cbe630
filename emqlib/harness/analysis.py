"""Measurements on trained models: BatchNorm input statistics and gradient angles (docs/method.md §3.3, §6.5)."""
from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..bits import FULL_PRECISION, bit_width
from ..bn import MultiBitBatchNorm2d
from ..quant import QConv2d, QLinear


def batch_norm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """BatchNorm layers whose input statistics depend on the bit-width (the multi-bit ones)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, MultiBitBatchNorm2d)]


@torch.no_grad()
def bn_input_stats(model: nn.Module, inputs: Sequence[Tensor], bits: Iterable[int]) -> pd.DataFrame:
    """Per-channel mean and variance of the input of every multi-bit BatchNorm, at each bit-width.

    ``inputs`` are fixed batches (no augmentation); the model runs in eval mode. Returns one row
    per (bits, layer, channel) with columns ``bits, layer, layer_index, channel, mean, var``.
    """
    layers = batch_norm_layers(model)
    model.eval()
    rows = []
    for b in bits:
        sums = {name: [0.0, 0.0, 0] for name, _ in layers}

        def hook(name):
            def record(module, args):
                x = args[0].double()
                s = sums[name]
                s[0] = s[0] + x.sum(dim=(0, 2, 3))
                s[1] = s[1] + (x * x).sum(dim=(0, 2, 3))
                s[2] += x.shape[0] * x.shape[2] * x.shape[3]
            return record

        handles = [m.register_forward_pre_hook(hook(name)) for name, m in layers]
        try:
            with bit_width(model, b):
                for x in inputs:
                    model(x)
        finally:
            for h in handles:
                h.remove()
        for index, (name, _) in enumerate(layers):
            total, squares, n = sums[name]
            mean = total / n
            var = squares / n - mean * mean
            rows += [{"bits": b, "layer": name, "layer_index": index, "channel": c, "mean": float(mean[c]),
                      "var": float(var[c])} for c in range(len(mean))]
    return pd.DataFrame(rows)


def alignment_gaps(stats: pd.DataFrame, reference_bits: int = FULL_PRECISION) -> pd.DataFrame:
    """docs/method.md §3.3: per layer and bit-width, the gaps to the full-precision child's statistics.

    mean_gap = mean_c |mu_b,c - mu_32,c| / mean_c sigma_32,c and
    var_log_ratio = mean_c |log(sigma^2_b,c / sigma^2_32,c)|.
    """
    eps = 1e-12
    reference = stats[stats.bits == reference_bits][["layer", "channel", "mean", "var"]]
    m = stats[stats.bits != reference_bits].merge(reference, on=["layer", "channel"], suffixes=("", "_ref"))
    m["mean_diff"] = (m["mean"] - m["mean_ref"]).abs()
    m["sigma_ref"] = np.sqrt(m["var_ref"].clip(lower=eps))
    m["log_ratio"] = np.abs(np.log(m["var"].clip(lower=eps) / m["var_ref"].clip(lower=eps)))
    gaps = m.groupby(["bits", "layer", "layer_index"], sort=False).agg(
        mean_diff=("mean_diff", "mean"), sigma_ref=("sigma_ref", "mean"), var_log_ratio=("log_ratio", "mean"))
    gaps = gaps.reset_index()
    gaps["mean_gap"] = gaps.mean_diff / gaps.sigma_ref
    return gaps[["bits", "layer", "layer_index", "mean_gap", "var_log_ratio"]]


def quantized_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (QConv2d, QLinear))]


def layer_gradients(model: nn.Module, batches: Sequence[tuple[Tensor, Tensor]], bits: int) -> dict[str, Tensor]:
    """Cross-entropy gradient of every quantized layer's latent weight at ``bits``, summed over
    the probe ``batches`` (docs/method.md §6.5). BatchNorm runs in train mode on a copy of the model, so
    the caller's running statistics are untouched."""
    probe = copy.deepcopy(model).train()
    probe.zero_grad(set_to_none=True)
    with bit_width(probe, bits):
        for x, y in batches:
            F.cross_entropy(probe(x), y, reduction="sum").backward()
    return {name: m.weight.grad.detach().flatten().clone() for name, m in quantized_layers(probe)}


def _angle(a: Tensor, b: Tensor) -> float:
    cosine = torch.dot(a.double(), b.double()) / (a.double().norm() * b.double().norm()).clamp_min(1e-30)
    return math.degrees(math.acos(float(cosine.clamp(-1, 1))))


def gradient_angles(model: nn.Module, batches: Sequence[tuple[Tensor, Tensor]], bits: Sequence[int]) -> pd.DataFrame:
    """Angle (degrees) between the gradients of every pair of bit-widths, per quantized layer and
    over all layers together (``layer == "all"``, ``layer_index == -1``)."""
    gradients = {b: layer_gradients(model, batches, b) for b in bits}
    names = list(gradients[bits[0]])
    rows = []
    for a, b in itertools.combinations(bits, 2):
        for index, name in enumerate(names):
            rows.append({"bits_a": a, "bits_b": b, "layer": name, "layer_index": index,
                         "angle": _angle(gradients[a][name], gradients[b][name])})
        rows.append({"bits_a": a, "bits_b": b, "layer": "all", "layer_index": -1,
                     "angle": _angle(torch.cat([gradients[a][n] for n in names]),
                                     torch.cat([gradients[b][n] for n in names]))})
    return pd.DataFrame(rows)
