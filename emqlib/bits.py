"""Bit-widths: validation and the switch that sets the precision of a whole model.

A bit-width ``b`` sets the weight and activation precision of every quantized layer
(docs/method.md §1). ``32`` is the full-precision path. Layers that take part in switching derive
from :class:`BitWidthModule`; :func:`set_bits` touches those layers and nothing else.
"""
from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterable, Iterator

from torch import nn

FULL_PRECISION = 32
SUPPORTED_BITS = (1, 2, 3, 4, 5, 6, 7, 8, FULL_PRECISION)


def check_bits(bits) -> int:
    """Return ``bits`` as an int, or raise a ValueError naming the allowed values."""
    ok = isinstance(bits, numbers.Integral) and not isinstance(bits, bool) and int(bits) in SUPPORTED_BITS
    if not ok:
        raise ValueError(f"bits must be an integer in 1..8 or 32, got {bits!r}")
    return int(bits)


def parse_bits(text: str | Iterable) -> list[int]:
    """Parse a bit-width list such as ``"2,4,8,32"`` or ``"1-8,32"`` (ranges inclusive).

    Returns the bit-widths in the order given, without duplicates.
    """
    if not isinstance(text, (str, Iterable)):
        raise ValueError(f"bits must be a list of bit-widths such as '2,4,8,32' or (2, 4, 8, 32), got {text!r}")
    if not isinstance(text, str):
        items = [check_bits(b) for b in text]
    else:
        items = []
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            low, sep, high = part.partition("-")
            try:
                # "-1" partitions into ("", "-", "1"): a negative number, not a range
                numbers_ = [int(part)] if not sep or not low else range(int(low), int(high) + 1)
            except ValueError:
                raise ValueError(f"bits must be integers in 1..8 or 32 such as '2,4,8,32' or '1-8,32', got {text!r}") from None
            items.extend(check_bits(b) for b in numbers_)
    if not items:
        raise ValueError(f"the bit-width list is empty; give e.g. '2,4,8,32', got {text!r}")
    return list(dict.fromkeys(items))


class BitWidthModule(nn.Module):
    """A module whose behaviour depends on the model's current bit-width."""

    def __init__(self) -> None:
        super().__init__()
        self.bits = FULL_PRECISION

    def set_bits(self, bits: int) -> None:
        self.bits = check_bits(bits)


class ActivationBitWidth(BitWidthModule):
    """Marker for modules that follow the activation bit-width (``activation_bits``)."""


def set_bits(model: nn.Module, bits: int, activation_bits: int | None = None) -> None:
    """Run ``model`` at ``bits`` (weights) and ``activation_bits`` (defaults to ``bits``)."""
    bits = check_bits(bits)
    activation_bits = bits if activation_bits is None else check_bits(activation_bits)
    for module in model.modules():
        if isinstance(module, ActivationBitWidth):
            module.set_bits(activation_bits)
        elif isinstance(module, BitWidthModule):
            module.set_bits(bits)


def current_bits(model: nn.Module) -> tuple[int, int]:
    """The (weight, activation) bit-widths ``model`` runs at now (32 where it has no quantized layer)."""
    weight = [m.bits for m in model.modules() if isinstance(m, BitWidthModule) and not isinstance(m, ActivationBitWidth)]
    activation = [m.bits for m in model.modules() if isinstance(m, ActivationBitWidth)]
    return (weight[0] if weight else FULL_PRECISION, activation[0] if activation else FULL_PRECISION)


@contextlib.contextmanager
def bit_width(model: nn.Module, bits: int, activation_bits: int | None = None) -> Iterator[nn.Module]:
    """Context manager: run ``model`` at ``bits`` inside the block, restore the previous bit-widths after."""
    previous = current_bits(model)
    set_bits(model, bits, activation_bits)
    try:
        yield model
    finally:
        set_bits(model, *previous)
