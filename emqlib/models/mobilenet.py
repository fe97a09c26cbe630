"""MobileNetV2 for 32x32 inputs as a plain torch model (docs/method.md §2.4); :func:`emqlib.qat.prepare` quantizes it.

Only the convs inside inverted-residual blocks (1x1 expand, depthwise 3x3, 1x1 project) are
quantized; the stem conv, the last 1x1 conv (1280 channels) and the classifier stay full
precision (``FULL_PRECISION_LAYERS``). CIFAR strides: the stem and the second stage run at stride 1.

Every BatchNorm becomes a :class:`emqlib.bn.MultiBitBatchNorm2d`, those after the full-precision
convs too, because their inputs are quantized activations whose statistics move with the
bit-width. A ReLU (an activation quantizer once prepared) stands wherever MobileNetV2 has a ReLU6
that feeds a quantized conv (after the stem, the expand conv and the depthwise conv); the project
conv is linear (no activation), so the expand conv of every block but the first sees an
unquantized, signed input. A ReLU6, which prepare leaves alone, follows the last conv, which
feeds the full-precision classifier.
"""
from __future__ import annotations

from torch import Tensor, nn

# (expansion t, channels c, blocks n, stride s) per stage; torchvision's table with CIFAR strides
STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
FULL_PRECISION_LAYERS = ("stem", "last_conv", "classifier")  # names prepare leaves as they are


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` (at least ``divisor``), never below 90% of ``v``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class InvertedResidual(nn.Module):
    """[1x1 expand -> BN -> act] -> depthwise 3x3 -> BN -> act -> 1x1 project -> BN (+ input)."""

    def __init__(self, inp: int, out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = int(round(inp * expansion))
        self.use_residual = stride == 1 and inp == out
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(inp, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU()]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
                   nn.Conv2d(hidden, out, 1, bias=False), nn.BatchNorm2d(out)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """MobileNetV2 with a width multiplier; channel counts rounded to multiples of 8."""

    full_precision_layers = FULL_PRECISION_LAYERS

    def __init__(self, width: float, num_classes: int, in_channels: int) -> None:
        super().__init__()
        stem_channels = make_divisible(32 * width)
        last_channels = make_divisible(1280 * max(1.0, width))
        self.stem = nn.Conv2d(in_channels, stem_channels, 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(stem_channels)
        self.stem_act = nn.ReLU()
        blocks, inp = [], stem_channels
        for expansion, channels, n, stride in STAGES:
            out = make_divisible(channels * width)
            for i in range(n):
                blocks.append(InvertedResidual(inp, out, stride if i == 0 else 1, expansion))
                inp = out
        self.blocks = nn.Sequential(*blocks)
        self.last_conv = nn.Conv2d(inp, last_channels, 1, bias=False)
        self.last_bn = nn.BatchNorm2d(last_channels)
        self.last_act = nn.ReLU6()
        self.classifier = nn.Linear(last_channels, num_classes)
        self.feature_dim = last_channels

    def forward_features(self, x: Tensor) -> Tensor:
        """Pooled features [N, feature_dim] (input of the classifier)."""
        x = self.blocks(self.stem_act(self.stem_bn(self.stem(x))))
        return self.last_act(self.last_bn(self.last_conv(x))).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.forward_features(x))


def mobilenetv2(width: float = 0.5, **kwargs) -> MobileNetV2:
    """MobileNetV2 for CIFAR (the ACS setting uses width 0.5); the 1280-channel last conv is not narrowed."""
    return MobileNetV2(width, **kwargs)
