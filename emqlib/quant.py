"""Quantizers (docs/method.md §2) and the quantized layers built on them.

* :func:`quantize_weight` is the Any-Precision / DoReFa weight quantizer (docs/method.md §2.1); its
  32-bit case is the full-precision *path*: the tanh-normalised weight scaled by mean |W|.
* :func:`quantize_activation` clamps to [0, 1] and rounds (docs/method.md §2.2); 32 bits is a ReLU.
* :class:`LSQQuantizer` is the learned-step quantizer used by the ACS experiments (docs/method.md §2.4).
* :class:`QConv2d` / :class:`QLinear` quantize their weight at the model's current bit-width
  and, with ``bias_correction=True``, apply EMQ's weight bias correction (docs/method.md §3.1);
  :class:`QuantAct` quantizes activations at the model's activation bit-width.

Rounding uses a straight-through estimator: the forward pass rounds, the backward pass treats
rounding as the identity. The functions here are the definitions, written as composed torch
formulas that autograd differentiates. The layers compute the DoReFa cases through
:mod:`emqlib.fused`, which gives bit-identical values and gradients faster; ``with
emqlib.fused.disabled():`` makes them use the definitions below.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import fused
from .bits import FULL_PRECISION, ActivationBitWidth, BitWidthModule, check_bits
from .correction import CORRECTION_MODES, bias_correct

WEIGHT_QUANTIZERS = ("dorefa", "lsq")
FULL_PRECISION_WEIGHTS = ("tanh", "plain")
FULL_PRECISION_ACTIVATIONS = ("relu", "clamp")


def round_ste(x: Tensor) -> Tensor:
    """round(x) forward, identity backward (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


def quantize_unit(u: Tensor, bits: int) -> Tensor:
    """Q_b(u) = round(u (2^b - 1)) / (2^b - 1) for u in [0, 1], with the straight-through estimator
    (docs/method.md §2.1)."""
    levels = 2**bits - 1
    return round_ste(u * levels) / levels


def quantize_weight(w: Tensor, bits: int) -> Tensor:
    """Any-Precision / DoReFa weight quantizer (docs/method.md §2.1), per tensor.

    T = tanh(W), M = max|T| (the gradient flows through it), A = mean|W| (a constant). b = 32 gives
    the full-precision path A T / M (no rounding); b < 32 gives A (2 Q_b(T / 2M + 1/2) - 1). b = 1 is
    the same formula: levels {-A, +A} with the threshold at W = 0 (W = 0 rounds half-to-even, to -A).
    """
    bits = check_bits(bits)
    t = torch.tanh(w)
    m = t.abs().max()
    a = w.abs().mean().detach()
    if bits == FULL_PRECISION:
        return a * t / m
    u = t / (2 * m) + 0.5  # in [0, 1]
    return a * (2 * quantize_unit(u, bits) - 1)


def quantize_activation(x: Tensor, bits: int, full_precision: str = "relu", lsq: LSQQuantizer | None = None) -> Tensor:
    """Any-Precision activation quantizer (docs/method.md §2.2): Q_b(clamp(x, 0, 1)).

    At 32 bits: ReLU (``full_precision="relu"``, Any-Precision) or clamp(x, 0, 1) without
    rounding (``"clamp"``, the limit of the quantizer as b grows). With an unsigned ``lsq``
    quantizer: ReLU, then that quantizer (docs/method.md §2.4).
    """
    bits = check_bits(bits)
    if lsq is not None:
        return lsq(F.relu(x), bits)
    if bits == FULL_PRECISION and full_precision == "relu":
        return F.relu(x)
    clamped = torch.clamp(x, 0, 1)
    return clamped if bits == FULL_PRECISION else quantize_unit(clamped, bits)


def _scale_gradient(x: Tensor, scale: float) -> Tensor:
    """x forward, gradient multiplied by ``scale`` backward (LSQ step-size gradient scaling)."""
    return (x - x * scale).detach() + x * scale


class LSQQuantizer(nn.Module):
    """Learned step-size quantizer (LSQ, docs/method.md §2.4), one step per bit-width.

    Signed: levels -2^(b-1) .. 2^(b-1)-1 (weights); unsigned: 0 .. 2^b-1 (post-ReLU
    activations). Each step is initialised to 2 mean|x| / sqrt(Q_P) on the first training
    forward at its bit-width; its gradient is scaled by 1 / sqrt(numel * Q_P).
    """

    def __init__(self, bits: tuple[int, ...], signed: bool = True) -> None:
        super().__init__()
        self.signed = signed
        quantized = [check_bits(b) for b in bits if b != FULL_PRECISION]
        self.steps = nn.ParameterDict({str(b): nn.Parameter(torch.ones(())) for b in quantized})
        self.register_buffer("initialized", torch.zeros(len(quantized), dtype=torch.bool))
        self._slot = {b: i for i, b in enumerate(quantized)}

    def levels(self, bits: int) -> tuple[int, int]:
        """(Q_N, Q_P): the number of negative and positive levels."""
        return (2 ** (bits - 1), 2 ** (bits - 1) - 1) if self.signed else (0, 2**bits - 1)

    def forward(self, x: Tensor, bits: int) -> Tensor:
        if bits == FULL_PRECISION:
            return x
        if bits not in self._slot:
            raise ValueError(f"this LSQ quantizer has steps for bits {sorted(self._slot)}, not {bits}; "
                             "list every bit-width to run in the model's `bits`")
        q_n, q_p = self.levels(bits)
        step = self.steps[str(bits)]
        slot = self._slot[bits]
        if self.training and not self.initialized[slot]:
            with torch.no_grad():
                step.copy_(2 * x.abs().mean() / math.sqrt(q_p))
                self.initialized[slot] = True
        step = _scale_gradient(step, 1.0 / math.sqrt(x.numel() * q_p))
        return round_ste(torch.clamp(x / step, -q_n, q_p)) * step


@dataclass(frozen=True)
class QuantSpec:
    """How the quantized layers of one model quantize (one spelling per option)."""

    weight_quantizer: str = "dorefa"  # "dorefa" (Any-Precision, docs/method.md §2.1) or "lsq" (ACS, docs/method.md §2.4)
    bias_correction: bool = False  # EMQ weight bias correction (docs/method.md §3) at every b < 32
    # "exact": mean and variance matched; "paper": the EMQ equation literally, whose mean is r E[w] (docs/method.md §3.1)
    correction_mode: str = "exact"
    per_channel: bool = True  # correction moments per output channel (dim 0) or per layer
    detach_stats: bool = True  # correction moments treated as constants in the backward pass
    full_precision_weight: str = "tanh"  # 32-bit path: "tanh" (A*tanh(W)/max|tanh W|) or "plain" W
    full_precision_activation: str = "relu"  # 32-bit activation: "relu" (Any-Precision) or "clamp" to [0, 1]
    bits: tuple[int, ...] = (FULL_PRECISION,)  # bit-widths LSQ keeps a step for

    def __post_init__(self) -> None:
        for name, allowed in (("weight_quantizer", WEIGHT_QUANTIZERS), ("correction_mode", CORRECTION_MODES),
                              ("full_precision_weight", FULL_PRECISION_WEIGHTS),
                              ("full_precision_activation", FULL_PRECISION_ACTIVATIONS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        for name in ("per_channel", "detach_stats"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.weight_quantizer == "lsq" and self.full_precision_weight != "plain":
            raise ValueError("LSQ quantizes the plain weight: use full_precision_weight='plain' with weight_quantizer='lsq'")
        for b in self.bits:
            check_bits(b)


class _QuantizedWeight(BitWidthModule):
    """Shared weight path of QConv2d and QLinear: quantize, then bias-correct (docs/method.md §2.1, §3.1)."""

    spec: QuantSpec
    weight: nn.Parameter

    def _init_quant(self, spec: QuantSpec) -> None:
        self.spec = spec
        self.lsq = LSQQuantizer(spec.bits, signed=True) if spec.weight_quantizer == "lsq" else None

    def _dorefa_weight(self, bits: int) -> Tensor:
        """quantize_weight(self.weight, bits), through the fused kernel while emqlib.fused is enabled."""
        return fused.dorefa_weight(self.weight, bits) if fused.enabled else quantize_weight(self.weight, bits)

    def full_precision_weight(self) -> Tensor:
        """The 32-bit path's weight: the reference the correction aligns to (docs/method.md §3.1)."""
        return self._dorefa_weight(FULL_PRECISION) if self.spec.full_precision_weight == "tanh" else self.weight

    def uncorrected_weight(self) -> Tensor:
        """The weight at the current bit-width before any correction (the 32-bit path's at 32 bits)."""
        if self.bits == FULL_PRECISION:
            return self.full_precision_weight()
        return self.lsq(self.weight, self.bits) if self.lsq is not None else self._dorefa_weight(self.bits)

    def quantized_weight(self) -> Tensor:
        """The weight this layer uses at its current bit-width, bias-corrected at b < 32 when the spec says so."""
        spec, bits = self.spec, self.bits
        if not spec.bias_correction or bits == FULL_PRECISION:
            return self.uncorrected_weight()
        if fused.enabled and spec.full_precision_weight == "tanh" and spec.detach_stats:
            return fused.dorefa_weight(self.weight, bits, spec.correction_mode, spec.per_channel)
        w_q = self.uncorrected_weight()
        return bias_correct(self.full_precision_weight(), w_q, per_channel=spec.per_channel,
                            mode=spec.correction_mode, detach_stats=spec.detach_stats)


class QConv2d(nn.Conv2d, _QuantizedWeight):
    """Conv2d whose weight is quantized at the model's current bit-width."""

    def __init__(self, *args, spec: QuantSpec = QuantSpec(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_quant(spec)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.quantized_weight(), self.bias)


class QLinear(nn.Linear, _QuantizedWeight):
    """Linear whose weight is quantized at the model's current bit-width."""

    def __init__(self, *args, spec: QuantSpec = QuantSpec(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_quant(spec)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.quantized_weight(), self.bias)


class QuantAct(ActivationBitWidth):
    """Activation quantizer at the model's activation bit-width.

    DoReFa: clamp to [0, 1] and round (docs/method.md §2.2), ReLU at 32 bits. LSQ: ReLU followed by an
    unsigned learned-step quantizer (a simplification of the ACS repository's signed,
    PReLU-based block; docs/method.md §2.4).
    """

    def __init__(self, spec: QuantSpec = QuantSpec()) -> None:
        super().__init__()
        self.full_precision = spec.full_precision_activation
        self.lsq = LSQQuantizer(spec.bits, signed=False) if spec.weight_quantizer == "lsq" else None

    def forward(self, x: Tensor) -> Tensor:
        if fused.enabled and self.lsq is None and (self.bits != FULL_PRECISION or self.full_precision == "clamp"):
            return fused.clamp_round(x, self.bits)
        return quantize_activation(x, self.bits, self.full_precision, self.lsq)
