"""Fused kernels for the DoReFa quantizers: a speed path, not a definition.

The quantizers are defined in :mod:`emqlib.quant` as composed torch formulas that autograd
differentiates (docs/method.md §2.1, §2.2, §3.1). Composed, one weight quantizer is a chain of
about a dozen autograd nodes, each keeping its own temporaries; here each quantizer (and the
correction with constant moments) is one ``torch.autograd.Function`` with a hand-written
backward pass, so a training step allocates less and walks a shorter graph. Each computes what
the composed definition computes, op for op in the same order, so values and gradients are
bit-identical to it (tests/test_fused.py checks this with ``torch.equal``).

The quantized layers of :mod:`emqlib.quant` use these kernels while :data:`enabled` is true (the
default); ``with emqlib.fused.disabled():`` makes them compute the composed definitions instead.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from .bits import FULL_PRECISION
from .correction import apply_correction, correction_terms

enabled = True  # read by the quantized layers at every forward pass


@contextmanager
def disabled() -> Iterator[None]:
    """Within this block the quantized layers compute the composed definitions of emqlib.quant."""
    global enabled
    previous, enabled = enabled, False
    try:
        yield
    finally:
        enabled = previous


def dorefa_weight(w: Tensor, bits: int, correction_mode: str | None = None, per_channel: bool = True) -> Tensor:
    """``quantize_weight(w, bits)`` of emqlib.quant (docs/method.md §2.1), and with ``correction_mode``
    ("paper" or "exact") ``bias_correct(quantize_weight(w, 32), quantize_weight(w, bits), per_channel,
    correction_mode, detach_stats=True)`` (docs/method.md §3.1; ``bits`` < 32), in one autograd node."""
    return _DoReFaWeight.apply(w, bits, correction_mode, per_channel)


def clamp_round(x: Tensor, bits: int) -> Tensor:
    """``quantize_activation(x, bits, full_precision="clamp")`` of emqlib.quant (docs/method.md §2.2),
    in one autograd node."""
    return _ClampRound.apply(x, None if bits == FULL_PRECISION else 2**bits - 1)


def _ste_levels_gradient(grad: Tensor, levels: int) -> Tensor:
    """The gradient of ``round_ste(u * levels) / levels`` w.r.t. u, in autograd's order: (g / L) * L,
    in place on ``grad``. Mathematically g; in floating point (g / 3) * 3 can differ from g in the
    last bit, and keeping the composed formula's order keeps trained numbers bit-identical to it."""
    return grad.div_(levels).mul_(levels)


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


class _ClampRound(torch.autograd.Function):
    """clamp(x, 0, 1), rounded to ``levels`` + 1 levels when ``levels`` is given.

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
            grad = _ste_levels_gradient(grad, ctx.levels)
        return grad, None


class _DoReFaWeight(torch.autograd.Function):
    """The DoReFa weight quantizer, and optionally its detached-moment bias correction.

    Forward: T = tanh(W), M = max|T|, A = mean|W|; the 32-bit path A T / M, or at b < 32
    A (2 Q_b(T / 2M + 1/2) - 1), then w_q' = apply_correction(w_q) with moments of the 32-bit path.
    Backward: the gradient the composed formula gets from autograd, op for op: rounding is the
    identity, A and the correction moments are constants, the gradient flows through tanh and M.
    """

    @staticmethod
    def forward(ctx, w: Tensor, bits: int, correction_mode: str | None, per_channel: bool) -> Tensor:
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
        if correction_mode is not None:
            terms = correction_terms((a * t).div_(m), w_q, per_channel)
            w_q, scale = apply_correction(w_q, terms, correction_mode), terms.scale
        ctx.save_for_backward(t, abs_t, m, a, t_over_2m, scale)
        return w_q

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        t, abs_t, m, a, ratio, scale = ctx.saved_tensors
        if ctx.bits == FULL_PRECISION:  # ratio = A T / M
            grad_m = _sum_to_scalar(-grad * (ratio / m))  # the sum's order follows grad's memory layout
            grad_t = (grad / m).mul_(a)
        else:  # ratio = T / 2M
            grad = grad * a if scale is None else (grad * scale).mul_(a)
            grad = _ste_levels_gradient(grad.mul_(2), 2**ctx.bits - 1)
            two_m = 2 * m
            grad_t = grad / two_m
            grad_m = _sum_to_scalar(-grad * (ratio / two_m)) * 2  # through T / 2M, then 2M
        grad_t += _max_backward(grad_m, abs_t, m).mul_(t.sgn())
        return torch.ops.aten.tanh_backward(grad_t, t), None, None, None
