"""BatchNorm across bit-widths (docs/method.md §4): shared, switchable, and recalibration.

* ``shared`` (EMQ): one BatchNorm serves every bit-width.
* ``switchable`` (Any-Precision): one BatchNorm per trained bit-width. An untrained bit-width
  uses the nearest trained one (ties go to the higher bit-width).
* :func:`recalibrate_bn` re-estimates running statistics for one bit-width, weights untouched.
"""
from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from .bits import BitWidthModule, bit_width, check_bits

BN_MODES = ("shared", "switchable")


def nearest_bits(bits: int, candidates: Iterable[int]) -> int:
    """The candidate closest to ``bits`` (|difference|); ties go to the higher bit-width."""
    return min(candidates, key=lambda c: (abs(c - bits), -c))


class MultiBitBatchNorm2d(BitWidthModule):
    """BatchNorm2d that is shared by, or switched between, bit-widths."""

    def __init__(self, num_features: int, mode: str = "shared", trained_bits: Iterable[int] = (32,)) -> None:
        super().__init__()
        if mode not in BN_MODES:
            raise ValueError(f"bn mode must be one of {BN_MODES}, got {mode!r}")
        self.mode = mode
        self.num_features = num_features
        keys = ["shared"] if mode == "shared" else [str(check_bits(b)) for b in trained_bits]
        self.norms = nn.ModuleDict({k: nn.BatchNorm2d(num_features) for k in keys})

    def key(self, bits: int) -> str:
        """Which BatchNorm runs at ``bits``."""
        if self.mode == "shared":
            return "shared"
        if str(bits) in self.norms:
            return str(bits)
        return str(nearest_bits(bits, [int(k) for k in self.norms]))

    def add_bits(self, bits: int) -> None:
        """Give an untrained bit-width its own copy of the nearest trained BatchNorm (switchable mode)."""
        if self.mode == "switchable" and str(bits) not in self.norms:
            self.norms[str(bits)] = copy.deepcopy(self.norms[self.key(bits)])

    def forward(self, x: Tensor) -> Tensor:
        return self.norms[self.key(self.bits)](x)


def batch_norms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, bits: int, batches: Iterable, n_batches: int = 20,
                   activation_bits: int | None = None) -> nn.Module:
    """Re-estimate BatchNorm running statistics at ``bits`` (docs/method.md §4.3), in place.

    In switchable mode an untrained bit-width first gets its own copy of the nearest trained
    BatchNorm, so the trained ones are left as they were. Every BatchNorm that runs at ``bits``
    (the shortcut ones too) is reset and re-estimated with cumulative averaging over
    ``n_batches`` batches (tensors or tuples whose first item is the input) in train mode.
    Weights and affine parameters are not changed. Returns ``model``.
    """
    bits = check_bits(bits)
    inputs = [batch[0] if isinstance(batch, (tuple, list)) else batch for batch in itertools.islice(batches, n_batches)]
    if not inputs:
        raise ValueError("recalibrate_bn got no batches; pass an iterable of input batches")
    for module in model.modules():
        if isinstance(module, MultiBitBatchNorm2d):
            module.add_bits(bits)
    was_training = {m: m.training for m in model.modules()}
    model.eval()
    with bit_width(model, bits, activation_bits):
        active = _active_batch_norms(model, bits)
        saved_momentum = {}
        for bn in active:
            bn.reset_running_stats()
            saved_momentum[bn] = bn.momentum
            bn.momentum = None  # cumulative moving average over the calibration batches
            bn.train()
        try:
            device = next(model.parameters()).device
            for x in inputs:
                model(x.to(device))
        finally:
            for bn, momentum in saved_momentum.items():
                bn.momentum = momentum
    for module, training in was_training.items():
        module.train(training)
    return model


def _active_batch_norms(model: nn.Module, bits: int) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers a forward pass at ``bits`` uses."""
    inactive = set()
    for module in model.modules():
        if isinstance(module, MultiBitBatchNorm2d):
            active_key = module.key(bits)
            inactive.update(bn for k, bn in module.norms.items() if k != active_key)
    return [bn for bn in batch_norms(model) if bn not in inactive]
