"""Quantizers (docs/method.md §2) and the quantized layers built on them.

* :func:`quantize_weight` is the Any-Precision / DoReFa weight quantizer (docs/method.md §2.1); its
  32-bit case is the full-precision *path*: the tanh-normalised weight scaled by mean |W|.
* :func:`quantize_activation` clamps to [0, 1] and rounds (docs/method.md §2.2); 32 bits is a ReLU.
* :class:`LSQQuantizer` is the learned-step quantizer used by the ACS experiments (docs/method.md §2.4).
* :class:`QConv2d` / :class:`QLinear` quantize their weight at the model's current bit-width
  and, with ``bias_correction=True``, apply EMQ's weight bias correction (docs/method.md §3).

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
from .correction import CORRECTION_MODES, apply_correction, bias_correct, correction_terms

WEIGHT_QUANTIZERS = ("dorefa", "lsq")
FULL_PRECISION_WEIGHTS = ("tanh", "plain")
FULL_PRECISION_ACTIVATIONS = ("relu", "clamp")


def round_ste(x: Tensor) -> Tensor:
    """round(x) forward, identity backward (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


def _ste_levels_gradient(grad: Tensor, levels: int, in_place: bool = False) -> Tensor:
    """The gradient of ``round_ste(u * levels) / levels`` w.r.t. u, in autograd's order: (g / L) * L.

    Mathematically g; in floating point (g / 3) * 3 can differ from g in the last bit, and keeping
    the composed formula's order keeps trained numbers bit-identical to it.
    """
    return (grad.div_(levels) if in_place else grad.div(levels)).mul_(levels)


class _ClampRound(torch.autograd.Function):
    """clamp(x, 0, 1), rounded to ``levels`` + 1 levels when ``levels`` is given, in one autograd node.

    The backward pass is torch.clamp's gradient (the incoming gradient where 0 < x < 1, else 0:
    torch gives none at the bounds themselves) with rounding as the identity, computed by one
    fused kernel (hardtanh's backward, which differs from clamp's only for NaN inputs).
    """

    @staticmethod
    def forward(ctx, x: Tensor, levels: int | None) -> Tensor:
        out = torch.clamp(x, 0, 1)
        ctx.levels = levels
        ctx.save_for_backward(x)
        if levels is not None:
            # round(v) / L: equal to round_ste(v) / L, whose v + (round(v) - v) is exactly round(v)
            out.mul_(levels).round_().div_(levels)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        grad = torch.ops.aten.hardtanh_backward(grad, x, 0.0, 1.0)
        if ctx.levels is not None and ctx.levels != 1:  # (g / 1) * 1 is g
            grad = _ste_levels_gradient(grad, ctx.levels, in_place=True)
        return grad, None


def _sum_to_scalar(x: Tensor) -> Tensor:
    """Sum of all elements, reduced the way autograd reduces a broadcast 0-dim operand's gradient."""
    return x.sum(dim=tuple(range(x.dim())), keepdim=True).view(())


def _max_backward(grad: Tensor, x: Tensor, maximum: Tensor) -> Tensor:
    """The gradient of ``x.max()``: ``grad`` shared evenly by the elements equal to the maximum
    (autograd's rule; on CPU it fills zeros, elsewhere it multiplies by the mask)."""
    mask = x == maximum
    if x.is_cuda:
        return mask * (grad / mask.sum())
    return grad.new_zeros(x.shape).masked_fill_(mask, grad / mask.sum())


@dataclass(frozen=True)
class _Correction:
    per_channel: bool
    mode: str


class _DoReFaWeight(torch.autograd.Function):
    """The DoReFa weight quantizer (and optionally its detached-moment bias correction) in one node.

    Forward: T = tanh(W), M = max|T|, A = mean|W|; the 32-bit path A T / M, or at b < 32
    A (2 Q_b(T / 2M + 1/2) - 1), then w_q' = apply_correction(w_q) with moments of the 32-bit path.
    Backward: the gradient the composed formula gets from autograd, op for op (so results are
    bit-identical): rounding is the identity, A and the correction moments are constants, the
    gradient flows through tanh and through M.
    """

    @staticmethod
    def forward(ctx, w: Tensor, bits: int, correction: _Correction | None) -> Tensor:
        # in-place steps on fresh temporaries: the same arithmetic as the composed formula, fewer allocations
        t = torch.tanh(w)
        abs_t = t.abs()
        m = abs_t.max()
        a = w.abs().mean()
        ctx.bits = bits
        if bits == FULL_PRECISION:
            full_precision = (a * t).div_(m)
            ctx.save_for_backward(t, abs_t, m, a, full_precision, None)
            return full_precision
        levels = 2**bits - 1
        t_over_2m = t / (2 * m)
        # a * (2 Q_b(T / 2M + 1/2) - 1)
        w_q = (t_over_2m + 0.5).mul_(levels).round_().div_(levels).mul_(2).sub_(1).mul_(a)
        scale = None
        if correction is not None:
            terms = correction_terms((a * t).div_(m), w_q, correction.per_channel)
            w_q, scale = apply_correction(w_q, terms, correction.mode), terms.scale
        ctx.save_for_backward(t, abs_t, m, a, t_over_2m, scale)
        return w_q

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        t, abs_t, m, a, ratio, scale = ctx.saved_tensors
        if ctx.bits == FULL_PRECISION:  # ratio = A T / M
            grad_m = _sum_to_scalar(-grad * (ratio / m))  # the sum's order follows grad's memory layout
            grad_t = (grad / m).mul_(a)
        else:  # ratio = T / 2M
            grad = grad * a if scale is None else (grad * scale).mul_(a)
            grad = _ste_levels_gradient(grad.mul_(2), 2**ctx.bits - 1, in_place=True)
            two_m = 2 * m
            grad_t = grad / two_m
            grad_m = _sum_to_scalar(-grad * (ratio / two_m)) * 2  # through T / 2M, then 2M
        grad_t += _max_backward(grad_m, abs_t, m).mul_(t.sgn())
        return torch.ops.aten.tanh_backward(grad_t, t), None, None


def quantize_weight(w: Tensor, bits: int) -> Tensor:
    """Any-Precision / DoReFa weight quantizer (docs/method.md §2.1), per tensor.

    b = 32 gives A * T / M (no rounding); b < 32 gives A * (2 Q_b(T / 2M + 1/2) - 1) with
    T = tanh(W), M = max|T|, A = mean|W| (detached). b = 1 is the same formula: levels {-A, +A}
    with the threshold at W = 0 (W = 0 itself rounds half-to-even, to -A).
    """
    return _DoReFaWeight.apply(w, check_bits(bits), None)


def quantize_activation(x: Tensor, bits: int, full_precision: str = "relu", lsq: LSQQuantizer | None = None) -> Tensor:
    """Any-Precision activation quantizer (docs/method.md §2.2): Q_b(clamp(x, 0, 1)).

    At 32 bits: ReLU (``full_precision="relu"``, Any-Precision) or clamp(x, 0, 1) without
    rounding (``"clamp"``, the limit of the quantizer as b grows). With an unsigned ``lsq``
    quantizer: ReLU, then that quantizer (docs/method.md §2.4).
    """
    bits = check_bits(bits)
    if lsq is not None:
        return lsq(F.relu(x), bits)
    if bits == FULL_PRECISION:
        return F.relu(x) if full_precision == "relu" else _ClampRound.apply(x, None)
    return _ClampRound.apply(x, 2**bits - 1)


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
    correction_mode: str = "paper"  # "paper": the EMQ equation literally; "exact": also matches the mean
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

    def full_precision_weight(self) -> Tensor:
        """The 32-bit path's weight: the reference the correction aligns to (docs/method.md §3.1)."""
        return quantize_weight(self.weight, FULL_PRECISION) if self.spec.full_precision_weight == "tanh" else self.weight

    def uncorrected_weight(self) -> Tensor:
        """The weight at the current bit-width before any correction (the 32-bit path's at 32 bits)."""
        if self.bits == FULL_PRECISION:
            return self.full_precision_weight()
        return self.lsq(self.weight, self.bits) if self.lsq is not None else quantize_weight(self.weight, self.bits)

    def quantized_weight(self) -> Tensor:
        """The weight this layer uses at its current bit-width (bias-corrected when the spec says so)."""
        spec, bits = self.spec, self.bits
        correct = spec.bias_correction and bits != FULL_PRECISION
        if spec.full_precision_weight == "tanh" and (spec.detach_stats or not correct):
            # one autograd node for the quantizer and the correction with constant moments
            correction = _Correction(spec.per_channel, spec.correction_mode) if correct else None
            return _DoReFaWeight.apply(self.weight, bits, correction)
        w_q = self.uncorrected_weight()
        if not correct:
            return w_q
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
        return quantize_activation(x, self.bits, self.full_precision, self.lsq)
