"""Quantizers (SPEC 2) and the quantized layers built on them.

* :func:`quantize_weight` is the Any-Precision / DoReFa weight quantizer (SPEC 2.1); its
  32-bit case is the full-precision *path*: the tanh-normalised weight scaled by mean |W|.
* :func:`quantize_activation` clamps to [0, 1] and rounds (SPEC 2.2); 32 bits is a ReLU.
* :class:`LSQQuantizer` is the learned-step quantizer used by the ACS experiments (SPEC 2.4).
* :class:`QConv2d` / :class:`QLinear` quantize their weight at the model's current bit-width
  and, with ``bias_correction=True``, apply EMQ's weight bias correction (SPEC 3).

Rounding uses a straight-through estimator: the forward pass rounds, the backward pass
treats rounding as the identity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .bits import FULL_PRECISION, ActivationBitWidth, BitWidthModule, check_bits
from .correction import CORRECTION_MODES, bias_correct

WEIGHT_QUANTIZERS = ("dorefa", "lsq")
FULL_PRECISION_WEIGHTS = ("tanh", "plain")
FULL_PRECISION_ACTIVATIONS = ("relu", "clamp")


def round_ste(x: Tensor) -> Tensor:
    """round(x) forward, identity backward (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


def quantize_unit(x: Tensor, bits: int) -> Tensor:
    """Q_b(x) = round(x * (2^b - 1)) / (2^b - 1) for x in [0, 1] (SPEC 2.1 step 3)."""
    levels = 2**bits - 1
    return round_ste(x * levels) / levels


def dorefa_weights(w: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """The full-precision path and the ``bits``-bit weight of the DoReFa quantizer, from one tanh.

    With T = tanh(W), M = max|T| and A = mean|W| (detached; SPEC 2.1): the full-precision path is
    A * T / M; the quantized weight is A * (2 Q_b(T / 2M + 1/2) - 1) (the path itself at b = 32).
    """
    bits = check_bits(bits)
    t = torch.tanh(w)
    m = t.abs().max()
    a = w.abs().mean().detach()
    full_precision = a * t / m
    if bits == FULL_PRECISION:
        return full_precision, full_precision
    return full_precision, a * (2 * quantize_unit(t / (2 * m) + 0.5, bits) - 1)


def quantize_weight(w: Tensor, bits: int) -> Tensor:
    """Any-Precision / DoReFa weight quantizer (SPEC 2.1), per tensor.

    b = 32 gives A * T / M (no rounding); b < 32 gives A * (2 Q_b(T / 2M + 1/2) - 1) with
    T = tanh(W), M = max|T|, A = mean|W| (detached). b = 1 is the same formula: levels {-A, +A}
    with the threshold at W = 0 (W = 0 itself rounds half-to-even, to -A).
    """
    return dorefa_weights(w, bits)[1]


def quantize_activation(x: Tensor, bits: int, full_precision: str = "relu") -> Tensor:
    """Any-Precision activation quantizer (SPEC 2.2): Q_b(clamp(x, 0, 1)).

    At 32 bits: ReLU (``full_precision="relu"``, Any-Precision) or clamp(x, 0, 1) without
    rounding (``"clamp"``, the limit of the quantizer as b grows).
    """
    bits = check_bits(bits)
    if bits == FULL_PRECISION:
        return F.relu(x) if full_precision == "relu" else torch.clamp(x, 0, 1)
    return quantize_unit(torch.clamp(x, 0, 1), bits)


def _scale_gradient(x: Tensor, scale: float) -> Tensor:
    """x forward, gradient multiplied by ``scale`` backward (LSQ step-size gradient scaling)."""
    return (x - x * scale).detach() + x * scale


class LSQQuantizer(nn.Module):
    """Learned step-size quantizer (LSQ, SPEC 2.4), one step per bit-width.

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

    weight_quantizer: str = "dorefa"  # "dorefa" (Any-Precision, SPEC 2.1) or "lsq" (ACS, SPEC 2.4)
    bias_correction: bool = False  # EMQ weight bias correction (SPEC 3) at every b < 32
    correction_mode: str = "paper"  # "paper": the EMQ equation literally; "exact": also matches the mean
    per_channel: bool = True  # correction moments per output channel (dim 0) or per layer
    detach_stats: bool = True  # correction moments treated as constants in the backward pass
    full_precision_weight: str = "tanh"  # 32-bit path: "tanh" (A*tanh(W)/max|tanh W|) or "plain" W
    full_precision_activation: str = "relu"  # 32-bit activation: "relu" (Any-Precision) or "clamp" to [0, 1]
    bits: tuple[int, ...] = (FULL_PRECISION,)  # bit-widths LSQ keeps a step for

    def __post_init__(self) -> None:
        if self.weight_quantizer not in WEIGHT_QUANTIZERS:
            raise ValueError(f"weight_quantizer must be one of {WEIGHT_QUANTIZERS}, got {self.weight_quantizer!r}")
        if self.correction_mode not in CORRECTION_MODES:
            raise ValueError(f"correction_mode must be one of {CORRECTION_MODES}, got {self.correction_mode!r}")
        if self.full_precision_weight not in FULL_PRECISION_WEIGHTS:
            raise ValueError(f"full_precision_weight must be one of {FULL_PRECISION_WEIGHTS}, "
                             f"got {self.full_precision_weight!r}")
        if self.full_precision_activation not in FULL_PRECISION_ACTIVATIONS:
            raise ValueError(f"full_precision_activation must be one of {FULL_PRECISION_ACTIVATIONS}, "
                             f"got {self.full_precision_activation!r}")
        if self.weight_quantizer == "lsq" and self.full_precision_weight != "plain":
            raise ValueError("LSQ quantizes the plain weight: use full_precision_weight='plain' with weight_quantizer='lsq'")
        for b in self.bits:
            check_bits(b)


class _QuantizedWeight(BitWidthModule):
    """Shared weight path of QConv2d and QLinear: quantize, then bias-correct (SPEC 2.1, 3.1)."""

    spec: QuantSpec
    weight: nn.Parameter

    def _init_quant(self, spec: QuantSpec) -> None:
        self.spec = spec
        self.lsq = LSQQuantizer(spec.bits, signed=True) if spec.weight_quantizer == "lsq" else None

    def _weights(self) -> tuple[Tensor, Tensor]:
        """(the 32-bit path's weight, the weight at the current bit-width), before correction."""
        if self.spec.full_precision_weight == "tanh":
            return dorefa_weights(self.weight, self.bits)
        if self.bits == FULL_PRECISION:
            return self.weight, self.weight
        quantized = self.lsq(self.weight, self.bits) if self.lsq is not None else quantize_weight(self.weight, self.bits)
        return self.weight, quantized

    def full_precision_weight(self) -> Tensor:
        """The 32-bit path's weight: the reference the correction aligns to (SPEC 3.1)."""
        return self._weights()[0]

    def quantized_weight(self) -> Tensor:
        """The weight this layer uses at its current bit-width."""
        reference, w_q = self._weights()
        if self.bits == FULL_PRECISION or not self.spec.bias_correction:
            return w_q
        return bias_correct(reference, w_q, per_channel=self.spec.per_channel, mode=self.spec.correction_mode,
                            detach_stats=self.spec.detach_stats)


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

    DoReFa: clamp to [0, 1] and round (SPEC 2.2), ReLU at 32 bits. LSQ: ReLU followed by an
    unsigned learned-step quantizer (a simplification of the ACS repository's signed,
    PReLU-based block; SPEC 2.4).
    """

    def __init__(self, spec: QuantSpec = QuantSpec()) -> None:
        super().__init__()
        self.full_precision = spec.full_precision_activation
        self.lsq = LSQQuantizer(spec.bits, signed=False) if spec.weight_quantizer == "lsq" else None

    def forward(self, x: Tensor) -> Tensor:
        if self.lsq is None:
            return quantize_activation(x, self.bits, self.full_precision)
        return self.lsq(F.relu(x), self.bits)
