"""The fused kernels of emqlib.fused compute exactly what the definitions in emqlib.quant compute:
values and gradients bit for bit (``torch.equal``), on CPU in training mode, and a layer gives the
same output and gradients with the fused path on and off."""
from __future__ import annotations

import pytest
import torch

from emqlib import fused
from emqlib.bits import set_bits
from emqlib.correction import bias_correct
from emqlib.quant import QConv2d, QLinear, QuantAct, QuantSpec, quantize_activation, quantize_weight

ALL_BITS = [1, 2, 3, 4, 5, 6, 7, 8, 32]


def weight_cases() -> dict[str, torch.Tensor]:
    """Tensors whose max|tanh W| ties (W_HAND's -1 and 1; a conv weight with its maximum set at three
    places of both signs), a zero, a 1-D vector, and conv weights in both memory layouts."""
    g = torch.Generator().manual_seed(3)
    conv = torch.randn(32, 16, 3, 3, generator=g) * 0.2 + torch.randn(32, 1, 1, 1, generator=g) * 0.05
    tied = conv.clone()
    peak = tied.abs().max()
    tied[0, 0, 0, 0], tied[5, 3, 1, 2], tied[31, 15, 2, 2] = peak, -peak, peak
    return {"hand": torch.tensor([-1.0, -0.5, 0.0, 0.25, 1.0]), "vector": torch.randn(300, generator=g),
            "conv": conv, "conv channels_last": conv.contiguous(memory_format=torch.channels_last),
            "conv tied": tied}


def value_and_gradient(fn, x: torch.Tensor, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().clone(memory_format=torch.preserve_format).requires_grad_()
    out = fn(x)
    out.backward(grad_out)
    return out.detach(), x.grad


def assert_identical(fused_fn, definition, x: torch.Tensor, seed: int) -> None:
    grad_out = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed)).to(
        memory_format=torch.preserve_format)
    out, grad = value_and_gradient(fused_fn, x, grad_out)
    ref_out, ref_grad = value_and_gradient(definition, x, grad_out)
    assert torch.equal(out, ref_out)
    assert torch.equal(grad, ref_grad)


@pytest.mark.parametrize("case", list(weight_cases()))
@pytest.mark.parametrize("bits", ALL_BITS)
def test_fused_weight_quantizer_is_quantize_weight(bits: int, case: str) -> None:
    assert_identical(lambda w: fused.dorefa_weight(w, bits), lambda w: quantize_weight(w, bits),
                     weight_cases()[case], bits)


@pytest.mark.parametrize("case", list(weight_cases()))
@pytest.mark.parametrize("per_channel", [True, False], ids=["per channel", "per layer"])
@pytest.mark.parametrize("mode", ["paper", "exact"])
@pytest.mark.parametrize("bits", ALL_BITS[:-1])
def test_fused_corrected_weight_is_bias_correct_of_quantize_weight(bits: int, mode: str, per_channel: bool,
                                                                   case: str) -> None:
    def definition(w):
        return bias_correct(quantize_weight(w, 32), quantize_weight(w, bits), per_channel, mode, detach_stats=True)
    assert_identical(lambda w: fused.dorefa_weight(w, bits, mode, per_channel), definition, weight_cases()[case], bits)


@pytest.mark.parametrize("bits", ALL_BITS)
def test_fused_activation_quantizer_is_quantize_activation(bits: int) -> None:
    g = torch.Generator().manual_seed(bits)
    # random values inside and outside [0, 1], the bounds, and points that round half to even
    x = torch.cat([torch.randn(4000, generator=g) * 0.8,
                   torch.tensor([-0.5, 0.0, 0.2, 0.5, 0.7, 1.0, 1.5, 1 / 3, 0.5 / 3, 0.5 / 15, 7.5 / 15])])
    assert_identical(lambda v: fused.clamp_round(v, bits),
                     lambda v: quantize_activation(v, bits, full_precision="clamp"), x, bits)


SPECS = {
    "tanh path": QuantSpec(),
    "plain weight": QuantSpec(full_precision_weight="plain"),
    "paper, per channel": QuantSpec(bias_correction=True, full_precision_activation="clamp"),
    "exact, per layer": QuantSpec(bias_correction=True, correction_mode="exact", per_channel=False),
    "attached moments": QuantSpec(bias_correction=True, detach_stats=False),
    "plain weight, corrected": QuantSpec(bias_correction=True, full_precision_weight="plain"),
}


def layer_step(layer: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Output, and gradients w.r.t. the input and every parameter, of one training forward and backward."""
    layer.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    out = layer(x)
    out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(7)))
    return [out.detach(), x.grad, *(p.grad for p in layer.parameters())]


@pytest.mark.parametrize("bits", ALL_BITS)
@pytest.mark.parametrize("name", SPECS)
def test_layers_are_identical_with_the_fused_path_on_and_off(name: str, bits: int) -> None:
    spec = SPECS[name]
    torch.manual_seed(bits)
    layers = {"conv": torch.nn.Sequential(QConv2d(4, 8, 3, padding=1, spec=spec), QuantAct(spec)),
              "linear": torch.nn.Sequential(QLinear(12, 6, spec=spec), QuantAct(spec))}
    inputs = {"conv": torch.randn(2, 4, 6, 6) * 0.7, "linear": torch.randn(5, 12)}
    for key, layer in layers.items():
        layer.train()
        set_bits(layer, bits)
        assert fused.enabled
        on = layer_step(layer, inputs[key])
        with fused.disabled():
            off = layer_step(layer, inputs[key])
        assert all(torch.equal(a, b) for a, b in zip(on, off, strict=True)), key


def test_the_layers_take_the_fused_path_only_where_it_applies() -> None:
    def node(fn) -> str:
        return type(fn().grad_fn).__name__

    conv = QConv2d(4, 8, 3, spec=QuantSpec(bias_correction=True))
    act = QuantAct(QuantSpec(full_precision_activation="clamp"))
    x = torch.randn(3, 4, requires_grad=True)
    for bits in (2, 32):
        set_bits(conv, bits)
        act.set_bits(bits)
        assert "DoReFaWeight" in node(conv.quantized_weight) and "ClampRound" in node(lambda: act(x))
        with fused.disabled():
            assert "DoReFaWeight" not in node(conv.quantized_weight) and "ClampRound" not in node(lambda: act(x))
    attached = QConv2d(4, 8, 3, spec=QuantSpec(bias_correction=True, detach_stats=False))
    set_bits(attached, 2)
    assert "DoReFaWeight" not in node(attached.quantized_weight)  # the correction is composed around it
    relu = QuantAct(QuantSpec())
    assert "ClampRound" not in node(lambda: relu(x))  # 32 bits, ReLU


def test_disabled_restores_the_switch_on_exit_and_on_error() -> None:
    with fused.disabled():
        assert not fused.enabled
        with fused.disabled():
            assert not fused.enabled
        assert not fused.enabled
    assert fused.enabled
    with pytest.raises(RuntimeError), fused.disabled():
        raise RuntimeError
    assert fused.enabled
