"""Model zoo: plain torch models, quantized by :func:`emqlib.qat.prepare` with a BatchNorm mode and quantizer spec.

Each model has ``forward_features(x) -> [N, D]`` (penultimate features, used by coreset
scores), a full-precision ``classifier`` Linear (``forward(x) = classifier(forward_features(x))``)
and ``full_precision_layers``, the names of the layers prepare leaves as they are.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

from torch import nn

from ..qat import prepare
from ..quant import QuantSpec
from .mobilenet import mobilenetv2
from .resnet import resnet8, resnet18, resnet20
from .vit import vit

MODELS = {"resnet8": resnet8, "resnet20": resnet20, "resnet20-28px": functools.partial(resnet20, stem_stride=2),
          "resnet18": resnet18, "mobilenetv2": mobilenetv2, "vit": vit}


def plain_model(name: str, *, num_classes: int, in_channels: int, image_size: int, width: float = 1.0) -> nn.Module:
    """Model ``name`` as a plain (full-precision) torch model, freshly initialised from torch's global seed."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    kwargs = dict(num_classes=num_classes, in_channels=in_channels)
    if name == "vit":
        kwargs["image_size"] = image_size
    return MODELS[name](width=width, **kwargs)


def build_model(name: str, *, num_classes: int, in_channels: int, image_size: int, trained_bits: Sequence[int],
                bn_mode: str = "shared", spec: QuantSpec = QuantSpec(), width: float = 1.0) -> nn.Module:
    """Model ``name``, prepared for ``trained_bits`` with the given BatchNorm mode and quantizer spec."""
    model = plain_model(name, num_classes=num_classes, in_channels=in_channels, image_size=image_size, width=width)
    return prepare(model, spec, trained_bits, bn_mode)
