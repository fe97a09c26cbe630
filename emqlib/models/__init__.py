"""Model zoo: every model is built from the same quantized layers and BatchNorm modes.

Each model has ``forward_features(x) -> [N, D]`` (penultimate features, used by coreset
scores) and a full-precision ``classifier`` Linear; ``forward(x) = classifier(forward_features(x))``.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..data import DATASET_SHAPES
from ..quant import QuantSpec
from .mobilenet import mobilenetv2
from .resnet import resnet8, resnet18, resnet20
from .vit import vit

MODELS = {"resnet8": resnet8, "resnet20": resnet20, "resnet18": resnet18, "mobilenetv2": mobilenetv2, "vit": vit}


def build_model(name: str, *, num_classes: int, in_channels: int, image_size: int, trained_bits: Sequence[int],
                bn_mode: str = "shared", spec: QuantSpec = QuantSpec(), width: float = 1.0) -> nn.Module:
    """Build model ``name`` for ``trained_bits`` with the given BatchNorm mode and quantizer spec."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    kwargs = dict(num_classes=num_classes, in_channels=in_channels, bn_mode=bn_mode,
                  trained_bits=tuple(trained_bits), spec=spec)
    if name == "vit":
        kwargs["image_size"] = image_size
    return MODELS[name](width=width, **kwargs)


def model_for(config, bits: Sequence[int] | None = None) -> nn.Module:
    """The model of run configuration ``config`` (a RunConfig) that trains ``bits`` (default: all
    of ``config.bits``), shaped for its data set, freshly initialised from torch's global seed."""
    num_classes, in_channels, image_size = DATASET_SHAPES[config.dataset]
    return build_model(config.model, num_classes=num_classes, in_channels=in_channels, image_size=image_size,
                       trained_bits=config.bits if bits is None else bits, bn_mode=config.bn_mode,
                       spec=config.quant_spec(), width=config.width)
