"""Model zoo: shapes, bit switching, BatchNorm modes, which layers are quantized, gradients."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from emqlib.bits import set_bits
from emqlib.bn import MultiBitBatchNorm2d, recalibrate_bn
from emqlib.models import MODELS, build_model
from emqlib.quant import QConv2d, QLinear

TRAINED_BITS = (2, 4, 32)
NUM_CLASSES = 10
# name -> (width, in_channels, image_size, quantized conv/linear layers, MultiBitBatchNorm2d layers)
CASES = {
    "resnet8": (1.0, 1, 28, 6, 7),  # 3 blocks x 2 convs; 2 BNs per block + head BN
    "resnet20": (1.0, 3, 32, 18, 19),
    "resnet20-28px": (1.0, 1, 28, 18, 19),
    "resnet18": (0.25, 3, 32, 16, 17),
    "mobilenetv2": (0.25, 3, 32, 50, 52),  # 17 blocks: 2 + 16 x 3 convs; + stem and last-conv BNs
    "vit": (0.5, 3, 32, 24, 0),  # 6 blocks x (qkv, proj, fc1, fc2)
}
BN_MODES = ("shared", "switchable")


def make(name: str, bn_mode: str = "shared", image_size: int | None = None, in_channels: int | None = None) -> nn.Module:
    width, channels, size, _, _ = CASES[name]
    torch.manual_seed(0)
    return build_model(name, num_classes=NUM_CLASSES, in_channels=in_channels or channels,
                       image_size=image_size or size, trained_bits=TRAINED_BITS, bn_mode=bn_mode, width=width)


def inputs(name: str, n: int = 2) -> torch.Tensor:
    _, channels, size, _, _ = CASES[name]
    return torch.randn(n, channels, size, size, generator=torch.Generator().manual_seed(1))


def quantized_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (QConv2d, QLinear))]


def test_every_model_is_covered() -> None:
    assert set(CASES) == set(MODELS)


def test_resnet20_28px_is_resnet20_on_a_quarter_of_the_pixels() -> None:
    """The same layers and parameters; the stem halves each side, so the last stage sees 4x4, not 7x7."""
    deep, small = (make(name, image_size=28, in_channels=1) for name in ("resnet20", "resnet20-28px"))
    assert [p.shape for p in deep.parameters()] == [p.shape for p in small.parameters()]
    x = torch.randn(2, 1, 28, 28)
    assert deep.layers(deep.stem(x)).shape[-2:] == (7, 7)
    assert small.layers(small.stem(x)).shape[-2:] == (4, 4)


@pytest.mark.parametrize("bn_mode", BN_MODES)
@pytest.mark.parametrize("name", CASES)
def test_shapes_and_bit_switching(name: str, bn_mode: str) -> None:
    model = make(name, bn_mode)
    # fresh running statistics (mean 0, var 1) let the signal of a deep net vanish in eval mode
    for bits in TRAINED_BITS:
        recalibrate_bn(model, bits, [inputs(name, n=8)], n_batches=1)
    model.eval()
    x = inputs(name)
    with torch.no_grad():
        assert model.forward_features(x).shape == (2, model.feature_dim)
        full = model(x)
        assert full.shape == (2, NUM_CLASSES)
        set_bits(model, 2)
        assert not torch.allclose(model(x), full)
        set_bits(model, 32)
        assert torch.equal(model(x), full)


@pytest.mark.parametrize("bn_mode", BN_MODES)
@pytest.mark.parametrize("name", CASES)
def test_batchnorm_copies(name: str, bn_mode: str) -> None:
    model = make(name, bn_mode)
    multi = [m for m in model.modules() if isinstance(m, MultiBitBatchNorm2d)]
    assert len(multi) == CASES[name][4]
    copies = 1 if bn_mode == "shared" else len(TRAINED_BITS)
    for m in multi:
        assert sum(isinstance(bn, nn.BatchNorm2d) for bn in m.modules()) == copies


@pytest.mark.parametrize("name", CASES)
def test_which_layers_are_quantized(name: str) -> None:
    model = make(name)
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert type(first_conv) is nn.Conv2d
    assert type(model.classifier) is nn.Linear
    assert len(quantized_layers(model)) == CASES[name][3]


def test_mobilenetv2_layout() -> None:
    model = make("mobilenetv2")
    assert type(model.last_conv) is nn.Conv2d and model.last_conv.out_channels == model.feature_dim == 1280
    shapes = []
    model.last_conv.register_forward_hook(lambda module, args, out: shapes.append(args[0].shape))
    model(inputs("mobilenetv2"))
    assert shapes[0][2:] == (4, 4)  # CIFAR strides: 32 / 8


def test_vit_on_28x28_grayscale() -> None:
    model = make("vit", image_size=28, in_channels=1)
    assert model.vit.patch_embed.grid_size == (7, 7)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, NUM_CLASSES)


@pytest.mark.parametrize("name", CASES)
def test_backward_at_2_bits(name: str) -> None:
    model = make(name).train()
    set_bits(model, 2)
    loss = F.cross_entropy(model(inputs(name, n=4)), torch.arange(4))
    loss.backward()
    for layer in quantized_layers(model):
        grad = layer.weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_unknown_model_lists_names() -> None:
    with pytest.raises(ValueError, match="resnet20"):
        build_model("nope", num_classes=10, in_channels=3, image_size=32, trained_bits=TRAINED_BITS)
