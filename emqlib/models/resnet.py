"""Pre-activation ResNets built from the quantized layers (docs/method.md §2.3).

Stem conv, the 1x1 shortcut convs (with a plain BatchNorm) and the classifier stay full
precision. A block is BN -> act -> conv -> BN -> act -> conv with a residual add; the head
is BN -> global average pool -> Linear, with no activation before the Linear.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..bn import MultiBitBatchNorm2d
from ..quant import QConv2d, QuantAct, QuantSpec


class PreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, bn_mode: str,
                 trained_bits: Sequence[int], spec: QuantSpec) -> None:
        super().__init__()
        self.bn1 = MultiBitBatchNorm2d(in_planes, bn_mode, trained_bits)
        self.act1 = QuantAct(spec)
        self.conv1 = QConv2d(in_planes, planes, 3, stride, 1, bias=False, spec=spec)
        self.bn2 = MultiBitBatchNorm2d(planes, bn_mode, trained_bits)
        self.act2 = QuantAct(spec)
        self.conv2 = QConv2d(planes, planes, 3, 1, 1, bias=False, spec=spec)
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.act1(self.bn1(x)))
        out = self.conv2(self.act2(self.bn2(out)))
        return out + self.shortcut(x)


class PreActResNet(nn.Module):
    """A pre-activation ResNet with ``blocks`` basic blocks per stage and stage ``widths``."""

    def __init__(self, blocks: Sequence[int], widths: Sequence[int], num_classes: int, in_channels: int,
                 stem_stride: int, bn_mode: str, trained_bits: Sequence[int], spec: QuantSpec) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, widths[0], 3, stem_stride, 1, bias=False)
        layers, in_planes = [], widths[0]
        for stage, (n_blocks, planes) in enumerate(zip(blocks, widths)):
            for i in range(n_blocks):
                stride = 2 if stage > 0 and i == 0 else 1
                layers.append(PreActBlock(in_planes, planes, stride, bn_mode, trained_bits, spec))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.bn = MultiBitBatchNorm2d(in_planes, bn_mode, trained_bits)
        self.classifier = nn.Linear(in_planes, num_classes)
        self.feature_dim = in_planes

    def forward_features(self, x: Tensor) -> Tensor:
        """Penultimate features [N, feature_dim] (input of the classifier)."""
        return self.bn(self.layers(self.stem(x))).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.forward_features(x))


def _scaled(widths: Sequence[int], width: float) -> list[int]:
    return [max(1, int(round(w * width))) for w in widths]


def resnet8(width: float = 1.0, **kwargs) -> PreActResNet:
    """ResNet-8 (one block per stage, widths 16/32/64 x width) with a stride-2 stem for 28x28 inputs."""
    return PreActResNet([1, 1, 1], _scaled([16, 32, 64], width), stem_stride=2, **kwargs)


def resnet20(width: float = 1.0, **kwargs) -> PreActResNet:
    """ResNet-20 for 32x32 (three blocks per stage, widths 16/32/64 x width; the paper uses width 5)."""
    return PreActResNet([3, 3, 3], _scaled([16, 32, 64], width), stem_stride=1, **kwargs)


def resnet18(width: float = 1.0, **kwargs) -> PreActResNet:
    """ResNet-18, CIFAR variant (3x3 stride-1 stem), pre-activation blocks like the others."""
    return PreActResNet([2, 2, 2, 2], _scaled([64, 128, 256, 512], width), stem_stride=1, **kwargs)
