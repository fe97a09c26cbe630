"""EMQ weight bias correction (docs/method.md §3.1).

Quantization shifts the mean and rescales the spread of each channel's weights, and by a
different amount at each bit-width. The correction re-aligns the first two moments of the
quantized weight ``w_q`` to those of the full-precision reference ``w`` so that one shared
BatchNorm sees (nearly) the same pre-activation statistics at every bit-width.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

CORRECTION_MODES = ("paper", "exact")
EPS = 1e-8  # guards V[w_q] = 0 (a 1-bit channel whose weights all quantize to one level)


class CorrectionTerms(NamedTuple):
    """The per-channel (or per-tensor) quantities of one correction: w_q' is affine in w_q with slope ``scale``."""

    scale: Tensor  # r = sqrt(V[w] / (V[w_q] + eps)), 1 where V[w_q] < eps
    mean_w: Tensor
    mean_q: Tensor


def _moments(x: Tensor, per_channel: bool) -> tuple[Tensor, Tensor]:
    """Mean and population variance (divide by n), per output channel (dim 0) or per tensor."""
    dims = tuple(range(1, x.dim())) if per_channel and x.dim() > 1 else tuple(range(x.dim()))
    var, mean = torch.var_mean(x, dim=dims, correction=0, keepdim=True)
    return mean, var


def correction_terms(w: Tensor, w_q: Tensor, per_channel: bool = True, eps: float = EPS,
                     detach_stats: bool = True) -> CorrectionTerms:
    """The moments of ``w`` and ``w_q`` and the scale r of :func:`bias_correct`."""
    mean_w, var_w = _moments(w, per_channel)
    mean_q, var_q = _moments(w_q, per_channel)
    if detach_stats:
        mean_w, var_w, mean_q, var_q = (t.detach() for t in (mean_w, var_w, mean_q, var_q))
    scale = torch.where(var_q < eps, torch.ones_like(var_q), torch.sqrt(var_w / (var_q + eps)))
    return CorrectionTerms(scale, mean_w, mean_q)


def apply_correction(w_q: Tensor, terms: CorrectionTerms, mode: str) -> Tensor:
    """w_q' from its :class:`CorrectionTerms` (the two modes of :func:`bias_correct`)."""
    if mode == "paper":
        return terms.scale * (w_q + (terms.mean_w - terms.mean_q))
    return terms.scale * (w_q - terms.mean_q) + terms.mean_w


def check_correction_mode(mode: str) -> None:
    if mode not in CORRECTION_MODES:
        raise ValueError(f"mode must be one of {CORRECTION_MODES}, got {mode!r}")


def bias_correct(w: Tensor, w_q: Tensor, per_channel: bool = True, mode: str = "exact",
                 eps: float = EPS, detach_stats: bool = True) -> Tensor:
    """Weight bias correction of EMQ (docs/method.md §3.1): the quantized weight given the mean and variance of
    the full-precision weight.

    ``mode="exact"`` (the default) matches both moments: w_q' = r * (w_q - E[w_q]) + E[w], with
    r = sqrt(V[w] / (V[w_q] + eps)), which is what the correction is for.
    ``mode="paper"`` is the paper's equation, taken literally:
        w_q' = sqrt(V[w] / (V[w_q] + eps)) * (w_q + (E[w] - E[w_q]))
    which gives each channel the variance of ``w`` (up to eps) but the mean r * E[w]: about 10% short at 2 bits
    (r ~ 0.9), enough to shift the inputs of a BatchNorm shared by every bit-width (notebook 02).

    Moments are per output channel (dim 0; the form of Banner et al.'s per-channel bias
    correction) or, with ``per_channel=False``, per tensor. Where V[w_q] < eps the scale is 1.
    With ``detach_stats`` the moments are constants in the backward pass, so the gradient
    reaches the latent weight only through ``w_q`` (and its straight-through rounding).
    Shapes: ``w`` and ``w_q`` both [out, ...]; the result has the shape of ``w_q``.
    """
    check_correction_mode(mode)
    if w.shape != w_q.shape:
        raise ValueError(f"w and w_q must have the same shape, got {tuple(w.shape)} and {tuple(w_q.shape)}")
    return apply_correction(w_q, correction_terms(w, w_q, per_channel, eps, detach_stats), mode)
