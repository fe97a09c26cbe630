"""Quantizers (docs/method.md §2), bit-width validation and parsing, and the quantized layers.

These test the definitions in emqlib.quant; tests/test_fused.py checks the fused kernels against them."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from emqlib import fused
from emqlib.bits import check_bits, parse_bits, set_bits
from emqlib.correction import bias_correct
from emqlib.quant import LSQQuantizer, QConv2d, QuantSpec, quantize_activation, quantize_weight, round_ste

# W = [-1, -0.5, 0, 0.25, 1]: A = mean|W| = 2.75 / 5 = 0.55, M = tanh(1),
# U = tanh(W) / (2 tanh 1) + 1/2 = [0, 0.19661, 0.5, 0.66079, 1]
W_HAND = torch.tensor([-1.0, -0.5, 0.0, 0.25, 1.0])
# b = 1: round(U) = [0, 0, 0 (0.5 half-to-even), 1, 1]            -> A * [-1, -1, -1, 1, 1]
# b = 2: round(3U) = round([0, 0.590, 1.5, 1.982, 3]) = [0, 1, 2, 2, 3] -> A * [-1, -1/3, 1/3, 1/3, 1]
# b = 4: round(15U) = round([0, 2.949, 7.5, 9.912, 15]) = [0, 3, 8, 10, 15] -> A * [-1, -3/5, 1/15, 1/3, 1]
W_HAND_EXPECTED = {
    1: [-0.55, -0.55, -0.55, 0.55, 0.55],
    2: [-0.55, -0.55 / 3, 0.55 / 3, 0.55 / 3, 0.55],
    4: [-0.55, -0.33, 0.55 / 15, 0.55 / 3, 0.55],
}
INVALID_BITS = [0, *range(9, 32), 33, -1, 2.5, "two", True]


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_quantize_weight_hand_values(bits: int) -> None:
    expected = torch.tensor(W_HAND_EXPECTED[bits])
    torch.testing.assert_close(quantize_weight(W_HAND, bits), expected, rtol=0, atol=1e-6)


def test_quantize_weight_32_bits_is_the_tanh_path() -> None:
    # A * tanh(W) / tanh(1) with A = 0.55: no rounding, range [-A, A]
    t1 = math.tanh(1.0)
    expected = torch.tensor([-0.55, -0.55 * math.tanh(0.5) / t1, 0.0, 0.55 * math.tanh(0.25) / t1, 0.55])
    torch.testing.assert_close(quantize_weight(W_HAND, 32), expected, rtol=0, atol=1e-6)
    w = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    out = quantize_weight(w, 32)
    torch.testing.assert_close(out, w.abs().mean() * torch.tanh(w) / torch.tanh(w).abs().max())
    assert len(torch.unique(out)) == len(torch.unique(w))  # nothing is rounded away
    assert out.abs().max().item() == pytest.approx(w.abs().mean().item(), rel=1e-6)


@pytest.mark.parametrize("bits", range(1, 9))
def test_quantize_weight_levels(bits: int) -> None:
    w = torch.randn(64, 32, 3, 3, generator=torch.Generator().manual_seed(bits)) * 0.1
    out = quantize_weight(w, bits)
    a = w.abs().mean()
    distinct = torch.unique(out)
    assert 2 ** (bits - 1) < len(distinct) <= 2**bits
    # on the grid A * (2 j / (2^b - 1) - 1), j integer in [0, 2^b - 1]
    j = (out / a + 1) / 2 * (2**bits - 1)
    torch.testing.assert_close(j, j.round(), rtol=0, atol=1e-3)
    assert j.round().min() >= 0 and j.round().max() <= 2**bits - 1
    # sign is kept (the threshold sits at W = 0 for 1 bit)
    if bits == 1:
        assert torch.equal(out > 0, w > 0)


def test_round_ste_rounds_forward_and_is_the_identity_backward() -> None:
    x = torch.tensor([-1.5, -0.4, 0.5, 1.5, 2.5, 2.7], requires_grad=True)
    out = round_ste(x)
    assert out.tolist() == [-2.0, -0.0, 0.0, 2.0, 2.0, 3.0]  # half to even
    out.backward(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
    assert x.grad.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_quantize_weight_32_bit_gradient_closed_form() -> None:
    """d/dW_i of sum_j g_j A T_j / M = A g_i (1 - T_i^2) / M - d_i A (sum_j g_j T_j) / M^2, with A a constant
    and d_i = sign(T_i) (1 - T_i^2) / k on the k elements where |T| ties at its maximum M (W_HAND: -1 and 1)."""
    w = W_HAND.clone().requires_grad_()
    g = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    quantize_weight(w, 32).backward(g)
    t, a, m = torch.tanh(W_HAND), 0.55, math.tanh(1.0)
    d = torch.where(t.abs() == m, t.sign() * (1 - t**2) / 2, torch.zeros(5))
    expected = a * g * (1 - t**2) / m - d * a * (g * t).sum() / m**2
    torch.testing.assert_close(w.grad, expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize("bits", range(1, 9))
def test_quantize_weight_gradient_is_the_32_bit_paths(bits: int) -> None:
    """Rounding is the identity backward, so A (2 Q_b(T / 2M + 1/2) - 1) has the gradient of A T / M."""
    w = torch.randn(16, 8, 3, 3, generator=torch.Generator().manual_seed(bits)) * 0.2
    g = torch.randn(w.shape, generator=torch.Generator().manual_seed(100 + bits))
    grads = []
    for b in (bits, 32):
        v = w.clone().requires_grad_()
        quantize_weight(v, b).backward(g)
        grads.append(v.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6 * grads[1].abs().max().item())


@pytest.mark.parametrize("bits", [1, 2, 3, 8])
def test_quantize_activation_straight_through_gradient(bits: int) -> None:
    x = torch.rand(200, generator=torch.Generator().manual_seed(0)).requires_grad_()  # inside (0, 1)
    quantize_activation(x, bits).sum().backward()
    torch.testing.assert_close(x.grad, torch.ones_like(x))


def test_quantize_weight_gradient_flows_through_rounding() -> None:
    w = torch.randn(8, 4, generator=torch.Generator().manual_seed(0)).requires_grad_()
    quantize_weight(w, 2).pow(2).sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


ACT_IN = torch.tensor([-0.5, 0.0, 0.2, 0.5, 0.7, 1.0, 1.5])
# clamp -> [0, 0, 0.2, 0.5, 0.7, 1, 1]
ACT_EXPECTED = {
    1: [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0],  # round(0.5) = 0 (half to even)
    2: [0.0, 0.0, 1 / 3, 2 / 3, 2 / 3, 1.0, 1.0],  # round(3x) = [0, 0, 1, 2 (1.5), 2 (2.1), 3, 3]
    4: [0.0, 0.0, 0.2, 8 / 15, 10 / 15, 1.0, 1.0],  # round(15x) = [0, 0, 3, 8 (7.5), 10 (10.5), 15, 15]
    32: [0.0, 0.0, 0.2, 0.5, 0.7, 1.0, 1.5],  # ReLU
}


@pytest.mark.parametrize("bits", [1, 2, 4, 32])
def test_quantize_activation_hand_values(bits: int) -> None:
    torch.testing.assert_close(quantize_activation(ACT_IN, bits), torch.tensor(ACT_EXPECTED[bits]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("bits", [1, 2, 4])
def test_quantize_activation_gradient(bits: int) -> None:
    x = torch.tensor([-2.0, -0.3, 0.1, 0.45, 0.5, 0.9, 1.2, 3.0], requires_grad=True)
    quantize_activation(x, bits).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_quantize_activation_32_bit_gradient_is_relu() -> None:
    x = torch.tensor([-2.0, -0.3, 0.1, 1.2, 3.0], requires_grad=True)
    quantize_activation(x, 32).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]


def test_quantize_activation_32_bit_clamp_is_the_identity_inside() -> None:
    x = torch.tensor([-2.0, -0.3, 0.1, 0.5, 0.9, 1.2, 3.0], requires_grad=True)
    out = quantize_activation(x, 32, full_precision="clamp")
    assert out.tolist() == [0.0, 0.0, *x[2:5].tolist(), 1.0, 1.0]  # no rounding
    out.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]


# ---------------------------------------------------------------- LSQ

def test_lsq_step_initialised_on_first_training_forward() -> None:
    lsq = LSQQuantizer((2, 4, 32), signed=True)
    x = torch.randn(500, generator=torch.Generator().manual_seed(0))
    lsq.eval()
    lsq(x, 4)
    assert lsq.steps["4"].item() == 1.0  # eval forward does not initialise
    lsq.train()
    lsq(x, 4)
    q_p = 7  # 2^(4-1) - 1
    assert lsq.steps["4"].item() == pytest.approx(2 * x.abs().mean().item() / math.sqrt(q_p), rel=1e-6)
    assert lsq.steps["2"].item() == 1.0  # other bit-widths keep their own step
    lsq(3 * x, 4)  # later forwards do not re-initialise
    assert lsq.steps["4"].item() == pytest.approx(2 * x.abs().mean().item() / math.sqrt(q_p), rel=1e-6)
    torch.testing.assert_close(lsq(x, 32), x)  # 32 bits: identity
    with pytest.raises(ValueError):
        lsq(x, 8)  # no step for 8 bits


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("bits", [2, 3, 4])
def test_lsq_values_on_grid(bits: int, signed: bool) -> None:
    lsq = LSQQuantizer((bits,), signed=signed)
    x = torch.randn(2000, generator=torch.Generator().manual_seed(bits)) * 2
    out = lsq(x, bits)
    step = lsq.steps[str(bits)].detach()
    k = out.detach() / step
    torch.testing.assert_close(k, k.round(), rtol=0, atol=1e-4)
    q_n, q_p = (2 ** (bits - 1), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    assert k.round().min().item() >= -q_n and k.round().max().item() <= q_p
    k = lsq(20 * x, bits).detach() / step  # far outside the range: clipped to both ends
    torch.testing.assert_close(k, k.round(), rtol=0, atol=1e-4)
    assert k.round().min().item() == -q_n and k.round().max().item() == q_p


def test_lsq_step_gradient_hand_case() -> None:
    lsq = LSQQuantizer((2,), signed=True)  # Q_N = 2, Q_P = 1
    lsq.initialized[:] = True
    with torch.no_grad():
        lsq.steps["2"].fill_(0.5)
    x = torch.tensor([0.3, -0.7, 2.0, -3.0], requires_grad=True)
    out = lsq(x, 2)
    # x / s = [0.6, -1.4, 4, -6] -> clip [-2, 1] -> [0.6, -1.4, 1, -2] -> round [1, -1, 1, -2]
    torch.testing.assert_close(out, torch.tensor([0.5, -0.5, 0.5, -1.0]), rtol=0, atol=0)
    out.sum().backward()
    # d/ds: round(x/s) - x/s inside, -Q_N / +Q_P clipped: 0.4 + 0.4 + 1 - 2 = -0.2;
    # times the gradient scale 1 / sqrt(numel * Q_P) = 1 / sqrt(4) -> -0.1
    assert lsq.steps["2"].grad.item() == pytest.approx(-0.1, abs=1e-6)
    assert x.grad.tolist() == [1.0, 1.0, 0.0, 0.0]  # straight through inside, 0 where clipped


# ---------------------------------------------------------------- layers

def test_qconv_plain_full_precision_equals_conv2d() -> None:
    torch.manual_seed(0)
    qconv = QConv2d(3, 8, 3, 2, 1, bias=True, spec=QuantSpec(full_precision_weight="plain"))
    conv = nn.Conv2d(3, 8, 3, 2, 1, bias=True)
    conv.load_state_dict({k: v for k, v in qconv.state_dict().items() if k in ("weight", "bias")})
    x = torch.randn(2, 3, 9, 9)
    assert qconv.bits == 32
    torch.testing.assert_close(qconv(x), conv(x), rtol=0, atol=0)


def test_qconv_quantizes_at_its_bit_width() -> None:
    torch.manual_seed(0)
    qconv = QConv2d(3, 8, 3, bias=False)
    x = torch.randn(2, 3, 9, 9)
    set_bits(qconv, 2)
    expected = torch.nn.functional.conv2d(x, quantize_weight(qconv.weight, 2))
    torch.testing.assert_close(qconv(x), expected, rtol=0, atol=0)
    assert len(torch.unique(qconv.quantized_weight())) <= 4


SPECS = {
    "plain weight": QuantSpec(full_precision_weight="plain"),
    "tanh path": QuantSpec(),
    "paper, per channel": QuantSpec(bias_correction=True),
    "exact, per layer": QuantSpec(bias_correction=True, correction_mode="exact", per_channel=False),
    "attached moments": QuantSpec(bias_correction=True, detach_stats=False),
    "plain weight, corrected": QuantSpec(bias_correction=True, full_precision_weight="plain"),
}


@pytest.mark.parametrize("bits", [1, 2, 4, 32])
@pytest.mark.parametrize("name", SPECS)
def test_layer_weight_is_the_definitions(name: str, bits: int) -> None:
    """Computed from the definitions (fused kernels off), the layer's weight and its gradient are
    quantize_weight, bias-corrected against the 32-bit path's weight at b < 32 as the spec says."""
    spec = SPECS[name]
    torch.manual_seed(bits)
    conv = QConv2d(4, 8, 3, bias=False, spec=spec)
    set_bits(conv, bits)
    g = torch.randn(conv.weight.shape)
    with fused.disabled():
        conv.quantized_weight().backward(g)
    w = conv.weight.detach().clone().requires_grad_()
    full_precision = quantize_weight(w, 32) if spec.full_precision_weight == "tanh" else w
    expected = quantize_weight(w, bits) if bits < 32 else full_precision
    if spec.bias_correction and bits < 32:
        expected = bias_correct(full_precision, expected, spec.per_channel, spec.correction_mode,
                                detach_stats=spec.detach_stats)
    expected.backward(g)
    with fused.disabled():
        assert torch.equal(conv.quantized_weight(), expected)
    assert torch.equal(conv.weight.grad, w.grad)


# ---------------------------------------------------------------- bit-widths

@pytest.mark.parametrize("bits", INVALID_BITS, ids=repr)
def test_invalid_bits_rejected_everywhere(bits) -> None:
    with pytest.raises(ValueError, match=r"1\.\.8 or 32"):
        check_bits(bits)
    model = nn.Sequential(QConv2d(1, 2, 3))
    with pytest.raises(ValueError, match=r"1\.\.8 or 32"):
        set_bits(model, bits)
    with pytest.raises(ValueError, match=r"1\.\.8 or 32"):
        set_bits(model, 2, activation_bits=bits)
    with pytest.raises(ValueError, match=r"1\.\.8 or 32"):
        quantize_weight(torch.randn(4), bits)
    assert model[0].bits == 32  # a refused switch leaves the model as it was


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 6, 7, 8, 32])
def test_valid_bits(bits: int) -> None:
    assert check_bits(bits) == bits
    assert type(check_bits(bits)) is int


def test_parse_bits() -> None:
    assert parse_bits("1-8,32") == [1, 2, 3, 4, 5, 6, 7, 8, 32]
    assert parse_bits("2,4,8,32") == [2, 4, 8, 32]
    assert parse_bits(" 4 , 2,4 ") == [4, 2]
    assert parse_bits([32, 2]) == [32, 2]
    for bad in ("", " , ", "16", "1-9", "two", "-1", "2,x"):
        with pytest.raises(ValueError):
            parse_bits(bad)
