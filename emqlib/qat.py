"""Quantization-aware training in the style of torchao: ``prepare`` a plain torch model, train it at
every bit-width, ``convert`` it to a plain model at one bit-width.

* :func:`prepare` swaps, in place, a plain model's ``nn.Conv2d`` / ``nn.Linear`` for
  :class:`~emqlib.quant.QConv2d` / :class:`~emqlib.quant.QLinear`, its ``nn.BatchNorm2d`` for
  :class:`~emqlib.bn.MultiBitBatchNorm2d` and its ``nn.ReLU`` for the activation quantizer
  :class:`~emqlib.quant.QuantAct` (docs/method.md §2-§4), keeping the layers the model names in
  ``full_precision_layers`` (stem, classifier, ...) as they are. The quantized layers take over
  the plain layers' parameters (the same tensors) and no random numbers are drawn, so a model
  built plain and then prepared has exactly the weights of one built from quantized layers.
* :func:`convert` bakes a prepared model at bit-width b into plain modules: each quantized weight
  (bias-corrected where the spec says so, EMQ weight bias correction) becomes the weight of a
  plain ``nn.Conv2d`` / ``nn.Linear``, the BatchNorm that runs at b a plain ``nn.BatchNorm2d``.
  Activation rounding depends on the input, so it cannot be baked into a weight: below 32 bits
  (or with the clamp variant) each activation quantizer stays as a small
  :class:`ActivationQuantizer` fixed at b; at 32 bits a ReLU one becomes ``nn.ReLU``. The
  converted model computes the same operations on the same tensors as the prepared model at b in
  eval mode, so its outputs are equal bit for bit.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from fnmatch import fnmatch

import torch
from torch import Tensor, nn

from .bits import FULL_PRECISION, BitWidthModule, check_bits, set_bits
from .bn import MultiBitBatchNorm2d
from .quant import LSQQuantizer, QConv2d, QLinear, QuantAct, QuantSpec, quantize_activation


def prepare(model: nn.Module, spec: QuantSpec = QuantSpec(), bits: Sequence[int] = (FULL_PRECISION,),
            bn_mode: str = "shared", full_precision_layers: Iterable[str] | None = None) -> nn.Module:
    """Quantize ``model`` in place (and return it) for training at the bit-widths ``bits``.

    ``bits`` are the trained bit-widths (a switchable BatchNorm gets one BatchNorm each);
    ``spec`` says how weights and activations are quantized; ``bn_mode`` is "shared" or
    "switchable" (docs/method.md §4). Layers whose dotted names match a pattern of
    ``full_precision_layers`` (fnmatch; default: the model's own ``full_precision_layers``
    attribute) are left as they are, with everything inside them. Only modules of exactly the
    plain types are swapped, so preparing a prepared model changes nothing.
    """
    keep = tuple(getattr(model, "full_precision_layers", ()) if full_precision_layers is None else full_precision_layers)
    bits = tuple(check_bits(b) for b in bits)
    device = next(model.parameters(), torch.empty(0)).device
    _swap_children(model, "", keep, lambda layer: _quantized(layer, spec, bits, bn_mode, device))
    return model


def convert(model: nn.Module, bits: int, activation_bits: int | None = None) -> nn.Module:
    """A copy of the prepared ``model`` at ``bits`` (activations at ``activation_bits``, default
    ``bits``) made of plain modules; its eval-mode outputs equal the prepared model's there, bit for bit.

    The weights are computed in eval mode (an LSQ step that was never trained is not initialised
    here); the copy keeps ``model``'s train/eval mode. ``model`` itself is not changed.
    """
    bits = check_bits(bits)
    activation_bits = bits if activation_bits is None else check_bits(activation_bits)
    converted = copy.deepcopy(model).eval()
    set_bits(converted, bits, activation_bits)
    with torch.no_grad():
        _swap_children(converted, "", (), lambda layer: _baked(layer, activation_bits))
    left = sorted({type(m).__name__ for m in converted.modules() if isinstance(m, BitWidthModule)})
    if left:
        raise TypeError(f"convert bakes QConv2d, QLinear, MultiBitBatchNorm2d and QuantAct layers; the model also "
                        f"has {left}, which depend on the bit-width: give them a plain form before converting")
    return converted.train(model.training)


class ActivationQuantizer(nn.Module):
    """One activation quantizer at a fixed bit-width (docs/method.md §2.2, §2.4): what :func:`convert`
    keeps of a :class:`~emqlib.quant.QuantAct`, since rounding an activation cannot be baked into a weight."""

    def __init__(self, bits: int, full_precision: str = "relu", lsq: LSQQuantizer | None = None) -> None:
        super().__init__()
        self.bits = check_bits(bits)
        self.full_precision = full_precision
        self.lsq = lsq

    def forward(self, x: Tensor) -> Tensor:
        return quantize_activation(x, self.bits, self.full_precision, self.lsq)

    def extra_repr(self) -> str:
        return f"bits={self.bits}, full_precision={self.full_precision!r}, lsq={self.lsq is not None}"


def _swap_children(module: nn.Module, prefix: str, keep: tuple[str, ...], replace) -> None:
    """Replace each child below ``module`` (depth first) by ``replace(child)`` where that is not None;
    children whose dotted names match a pattern of ``keep`` are left whole."""
    for name, child in list(module.named_children()):
        path = prefix + name
        if any(fnmatch(path, pattern) for pattern in keep):
            continue
        replacement = replace(child)
        if replacement is None:
            _swap_children(child, path + ".", keep, replace)
        else:
            setattr(module, name, replacement)  # same name, same place in the module's order


def _quantized(layer: nn.Module, spec: QuantSpec, bits: tuple[int, ...], bn_mode: str,
               device: torch.device) -> nn.Module | None:
    """The quantized form of a plain layer, holding its parameters; None for other modules."""
    kind = type(layer)
    if kind is nn.Conv2d or kind is nn.Linear:
        # built on the meta device (no memory, no random numbers), then given the plain layer's tensors
        if kind is nn.Conv2d:
            quantized = QConv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                                layer.dilation, layer.groups, bias=layer.bias is not None,
                                padding_mode=layer.padding_mode, device="meta", spec=spec)
        else:
            quantized = QLinear(layer.in_features, layer.out_features, bias=layer.bias is not None, device="meta", spec=spec)
        quantized.weight, quantized.bias = layer.weight, layer.bias
        return quantized.to(device)  # the LSQ steps, made on the CPU
    if kind is nn.BatchNorm2d:
        multi = MultiBitBatchNorm2d(layer.num_features, bn_mode, bits)
        for key in multi.norms:  # the plain BatchNorm itself (shared) or a copy per bit-width (switchable)
            multi.norms[key] = layer if bn_mode == "shared" else copy.deepcopy(layer)
        return multi
    if kind is nn.ReLU:
        return QuantAct(spec).to(device)
    return None


def _baked(layer: nn.Module, activation_bits: int) -> nn.Module | None:
    """The plain form of a quantized layer at the bit-width it runs at now; None for other modules."""
    if isinstance(layer, (QConv2d, QLinear)):
        if isinstance(layer, QConv2d):
            plain = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                              layer.dilation, layer.groups, bias=layer.bias is not None,
                              padding_mode=layer.padding_mode, device="meta")
        else:
            plain = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, device="meta")
        plain.weight, plain.bias = nn.Parameter(layer.quantized_weight()), layer.bias
        return plain
    if isinstance(layer, MultiBitBatchNorm2d):
        return layer.norms[layer.key(layer.bits)]
    if isinstance(layer, QuantAct):
        if activation_bits == FULL_PRECISION and (layer.lsq is not None or layer.full_precision == "relu"):
            return nn.ReLU()
        return ActivationQuantizer(activation_bits, layer.full_precision, layer.lsq)
    return None
