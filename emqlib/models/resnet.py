"""Pre-activation ResNets as plain torch models (docs/method.md §2.3); :func:`emqlib.qat.prepare` quantizes them.

A block is BN -> ReLU -> conv -> BN -> ReLU -> conv with a residual add; the head is
BN -> global average pool -> Linear, with no activation before the Linear. The stem conv, the
1x1 shortcut convs (with their BatchNorm) and the classifier stay full precision
(``FULL_PRECISION_LAYERS``); prepare quantizes every other conv, ReLU and BatchNorm.
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

FULL_PRECISION_LAYERS = ("stem", "layers.*.shortcut", "classifier")  # names prepare leaves as they are


class PreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.act1 = nn.ReLU()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.act1(self.bn1(x)))
        out = self.conv2(self.act2(self.bn2(out)))
        return out + self.shortcut(x)


class PreActResNet(nn.Module):
    """A pre-activation ResNet with ``blocks`` basic blocks per stage and stage ``widths``."""

    full_precision_layers = FULL_PRECISION_LAYERS

    def __init__(self, blocks: Sequence[int], widths: Sequence[int], num_classes: int, in_channels: int,
                 stem_stride: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, widths[0], 3, stem_stride, 1, bias=False)
        layers, in_planes = [], widths[0]
        for stage, (n_blocks, planes) in enumerate(zip(blocks, widths)):
            for i in range(n_blocks):
                stride = 2 if stage > 0 and i == 0 else 1
                layers.append(PreActBlock(in_planes, planes, stride))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_planes)
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


def resnet20(width: float = 1.0, stem_stride: int = 1, **kwargs) -> PreActResNet:
    """ResNet-20 for 32x32 (three blocks per stage, widths 16/32/64 x width; the paper uses width 5). With
    ``stem_stride=2`` (ResNet-8's stem, for 28x28 inputs) the same 18 quantized layers see a quarter of the pixels:
    about a third of the training time on Fashion-MNIST (the cpu profile's depth study)."""
    return PreActResNet([3, 3, 3], _scaled([16, 32, 64], width), stem_stride=stem_stride, **kwargs)


def resnet18(width: float = 1.0, **kwargs) -> PreActResNet:
    """ResNet-18, CIFAR variant (3x3 stride-1 stem), pre-activation blocks like the others."""
    return PreActResNet([2, 2, 2, 2], _scaled([64, 128, 256, 512], width), stem_stride=1, **kwargs)
