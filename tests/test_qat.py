"""prepare / convert (emqlib.qat): the layer swap on a hand-built net, and a converted model that
gives exactly (atol 0) the prepared model's outputs at its bit-width."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from emqlib.bits import BitWidthModule, set_bits
from emqlib.bn import MultiBitBatchNorm2d
from emqlib.harness.datasets import DATASET_SHAPES
from emqlib.models import build_model
from emqlib.qat import ActivationQuantizer, convert, prepare
from emqlib.quant import QConv2d, QLinear, QuantAct, QuantSpec


class Tiny(nn.Module):
    """stem conv -> BN -> ReLU -> conv -> ReLU6 -> pool -> classifier; stem and classifier stay full precision."""

    full_precision_layers = ("stem", "classifier")

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()
        self.conv = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.last_act = nn.ReLU6()
        self.classifier = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.last_act(self.conv(self.act(self.bn(self.stem(x))))).mean(dim=(2, 3)))


def test_prepare_swaps_the_plain_layers_and_keeps_their_parameters() -> None:
    torch.manual_seed(0)
    model = Tiny()
    stem, classifier, bn, weight, bias = model.stem, model.classifier, model.bn, model.conv.weight, model.conv.bias
    state = torch.random.get_rng_state()
    spec = QuantSpec(bias_correction=True)
    assert prepare(model, spec, bits=(2, 32)) is model  # in place
    assert torch.equal(torch.random.get_rng_state(), state)  # no random numbers drawn
    assert [type(m) for m in model.children()] == [nn.Conv2d, MultiBitBatchNorm2d, QuantAct, QConv2d, nn.ReLU6, nn.Linear]
    assert model.stem is stem and model.classifier is classifier  # full_precision_layers untouched
    assert model.conv.weight is weight and model.conv.bias is bias  # the same tensors, not copies
    assert (model.conv.stride, model.conv.padding, model.conv.spec) == ((2, 2), (1, 1), spec)
    assert list(model.bn.norms) == ["shared"] and model.bn.norms["shared"] is bn
    assert [n for n, _ in model.named_parameters()] == ["stem.weight", "bn.norms.shared.weight", "bn.norms.shared.bias",
                                                       "conv.weight", "conv.bias", "classifier.weight", "classifier.bias"]
    again = [type(m) for m in prepare(model, spec, bits=(2, 32)).modules()]
    assert again == [type(m) for m in model.modules()]  # preparing twice changes nothing


def test_prepare_switchable_bn_copies_the_plain_bn_per_bit_width() -> None:
    model = Tiny()
    with torch.no_grad():
        model.bn.weight.fill_(3.0)
    model.bn.eps = 1e-3
    prepare(model, QuantSpec(), bits=(2, 4, 32), bn_mode="switchable")
    assert list(model.bn.norms) == ["2", "4", "32"]
    norms = list(model.bn.norms.values())
    assert all(n.eps == 1e-3 and torch.equal(n.weight, torch.full((4,), 3.0)) for n in norms)
    assert norms[0].weight is not norms[1].weight  # one BatchNorm per bit-width


def test_prepare_with_explicit_full_precision_layers() -> None:
    model = prepare(Tiny(), QuantSpec(), full_precision_layers=("classifier",))
    assert type(model.stem) is QConv2d and type(model.classifier) is nn.Linear


def trained_a_little(model: nn.Module, shape: tuple[int, int, int], bits: tuple[int, ...]) -> nn.Module:
    """Train-mode forwards at every bit-width: BatchNorm statistics move and LSQ steps initialise."""
    channels, size = shape
    x = torch.randn(16, channels, size, size, generator=torch.Generator().manual_seed(2))
    model.train()
    with torch.no_grad():
        for b in bits:
            set_bits(model, b)
            model(x)
    return model.eval()


SPECS = {
    "dorefa-corrected": QuantSpec(bias_correction=True),
    "dorefa-exact-per-layer-clamp": QuantSpec(bias_correction=True, correction_mode="exact", per_channel=False,
                                              full_precision_activation="clamp"),
    "lsq": QuantSpec(weight_quantizer="lsq", full_precision_weight="plain", bits=(2, 4, 32)),
}


@pytest.mark.parametrize("bn_mode", ["shared", "switchable"])
@pytest.mark.parametrize("spec", SPECS, ids=list(SPECS))
@pytest.mark.parametrize("name,width", [("resnet8", 0.5), ("mobilenetv2", 0.25)])
def test_converted_model_equals_the_prepared_model_bit_for_bit(name: str, width: float, spec: str, bn_mode: str) -> None:
    num_classes, channels, size = DATASET_SHAPES["synthetic"]
    trained = (2, 4, 32)
    torch.manual_seed(0)
    model = build_model(name, num_classes=num_classes, in_channels=channels, image_size=size, trained_bits=trained,
                        bn_mode=bn_mode, spec=SPECS[spec], width=width)
    trained_a_little(model, (channels, size), trained)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(8, channels, size, size, generator=torch.Generator().manual_seed(3))
    for b in (1, 2, 4, 32) if spec != "lsq" else trained:
        plain = convert(model, b)
        assert not any(isinstance(m, (BitWidthModule, MultiBitBatchNorm2d)) for m in plain.modules())
        assert all(type(m) in (nn.Conv2d, nn.Linear) for m in plain.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
        set_bits(model, b)
        with torch.no_grad():
            assert torch.equal(plain(x), model(x)), f"{b}-bit"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # convert left the model as it was


def test_converted_model_keeps_activation_quantizers_below_32_bits() -> None:
    num_classes, channels, size = DATASET_SHAPES["synthetic"]
    model = build_model("resnet8", num_classes=num_classes, in_channels=channels, image_size=size,
                        trained_bits=(4, 32), width=0.5)
    acts = lambda m: [type(a) for n, a in m.named_modules() if n.endswith(("act1", "act2"))]
    assert set(acts(convert(model, 4))) == {ActivationQuantizer}
    assert set(acts(convert(model, 32))) == {nn.ReLU}
    mixed = convert(model, 4, activation_bits=32)  # 4-bit weights, full-precision activations
    assert set(acts(mixed)) == {nn.ReLU}
    set_bits(model, 4, 32)
    x = torch.randn(2, channels, size, size)
    with torch.no_grad():
        assert torch.equal(mixed.eval()(x), model.eval()(x))


def test_convert_rejects_an_unknown_bit_width() -> None:
    model = prepare(Tiny(), QuantSpec(), bits=(2, 32))
    with pytest.raises(ValueError, match=r"bits must be an integer in 1\.\.8 or 32, got 9"):
        convert(model, 9)
    lsq = prepare(Tiny(), QuantSpec(weight_quantizer="lsq", full_precision_weight="plain", bits=(2, 32)), bits=(2, 32))
    with pytest.raises(ValueError, match=r"has steps for bits \[2\], not 4"):
        convert(lsq, 4)


def test_convert_refuses_a_bit_width_dependent_layer_it_does_not_know() -> None:
    class Custom(BitWidthModule):
        def forward(self, x):
            return x

    model = prepare(Tiny(), QuantSpec())
    model.extra = Custom()
    with pytest.raises(TypeError, match="also has \\['Custom'\\]"):
        convert(model, 2)


def test_vit_with_lsq_builds_and_converts_exactly() -> None:
    """The ViT's block Linears get LSQ steps like any other quantized layer (before prepare, its own
    layer swap could not build a ViT with LSQ), and its converted model equals it at each bit-width."""
    num_classes, channels, size = DATASET_SHAPES["synthetic"]
    spec = SPECS["lsq"]
    model = build_model("vit", num_classes=num_classes, in_channels=channels, image_size=size, trained_bits=spec.bits,
                        spec=spec, width=0.25)
    assert len([m for m in model.modules() if isinstance(m, QLinear)]) == 24  # 6 blocks x (qkv, proj, fc1, fc2)
    assert type(model.classifier) is nn.Linear and type(model.vit.patch_embed.proj) is nn.Conv2d
    trained_a_little(model, (channels, size), spec.bits)
    x = torch.randn(4, channels, size, size, generator=torch.Generator().manual_seed(3))
    for b in spec.bits:
        plain = convert(model, b)
        set_bits(model, b)
        with torch.no_grad():
            assert torch.equal(plain(x), model(x)), f"{b}-bit"
