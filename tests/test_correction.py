"""EMQ weight bias correction (docs/method.md §3.1)."""
from __future__ import annotations

import pytest
import torch

from emqlib.bits import set_bits
from emqlib.correction import EPS, bias_correct
from emqlib.quant import QConv2d, QuantSpec, quantize_weight

BITS = [1, 2, 4, 8]


def conv_weight(seed: int = 0, shape=(16, 8, 3, 3), scale: float = 0.5) -> torch.Tensor:
    """Conv-like weights with a per-channel offset (so E[w] differs between channels and from 0).

    The DoReFa weights of one channel spread much less than ``w`` (they lie in +-mean|W|); at
    ``scale`` 0.5 their variance is ~1e-2, so eps = 1e-8 moves the matched variance by < 1e-5.
    """
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g) + torch.randn(shape[0], 1, 1, 1, generator=g) * 0.5) * scale


def channel_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = x.double().flatten(1)
    return flat.mean(1), flat.var(1, unbiased=False)


def ratio(w: torch.Tensor, w_q: torch.Tensor) -> torch.Tensor:
    """r = sqrt(V[w] / (V[w_q] + eps)) per output channel, in float64."""
    _, var_w = channel_moments(w)
    _, var_q = channel_moments(w_q)
    return torch.sqrt(var_w / (var_q + EPS))


@pytest.mark.parametrize("mode", ["paper", "exact"])
@pytest.mark.parametrize("bits", [None, *BITS])
def test_variance_matches_reference_per_channel(bits, mode: str) -> None:
    w = conv_weight()
    w_q = conv_weight(seed=1) if bits is None else quantize_weight(w, bits)
    out = bias_correct(w, w_q, mode=mode)
    assert out.shape == w_q.shape
    _, var_w = channel_moments(w)
    _, var_out = channel_moments(out)
    torch.testing.assert_close(var_out, var_w, rtol=1e-5, atol=0)


@pytest.mark.parametrize("mode", ["paper", "exact"])
def test_variance_of_small_weights_is_reduced_by_eps_only(mode: str) -> None:
    # small weights: V[w_q] ~ 4e-4, where eps matters: V[out] = V[w] V[w_q] / (V[w_q] + eps) exactly
    w = conv_weight(scale=0.1)
    w_q = quantize_weight(w, 4)
    out = bias_correct(w, w_q, mode=mode)
    _, var_w = channel_moments(w)
    _, var_q = channel_moments(w_q)
    torch.testing.assert_close(channel_moments(out)[1], var_w * var_q / (var_q + EPS), rtol=1e-5, atol=0)


@pytest.mark.parametrize("bits", BITS)
def test_paper_mode_mean_is_r_times_reference_mean(bits: int) -> None:
    w = conv_weight()
    w_q = quantize_weight(w, bits)
    out = bias_correct(w, w_q, mode="paper")
    mean_w, _ = channel_moments(w)
    mean_out, _ = channel_moments(out)
    torch.testing.assert_close(mean_out, ratio(w, w_q) * mean_w, rtol=0, atol=1e-6)
    assert not torch.allclose(mean_out, mean_w, atol=1e-4)  # the paper's equation does not keep E[w]


@pytest.mark.parametrize("bits", BITS)
def test_exact_mode_mean_is_reference_mean(bits: int) -> None:
    w = conv_weight()
    out = bias_correct(w, quantize_weight(w, bits), mode="exact")
    torch.testing.assert_close(channel_moments(out)[0], channel_moments(w)[0], rtol=0, atol=1e-6)


def test_formula_elementwise() -> None:
    w = conv_weight()
    w_q = quantize_weight(w, 2)
    mean_w, _ = channel_moments(w)
    mean_q, _ = channel_moments(w_q)
    r = ratio(w, w_q).view(-1, 1, 1, 1)
    expected = r * (w_q.double() + (mean_w - mean_q).view(-1, 1, 1, 1))
    torch.testing.assert_close(bias_correct(w, w_q, mode="paper").double(), expected, rtol=1e-5, atol=1e-7)
    expected = r * (w_q.double() - mean_q.view(-1, 1, 1, 1)) + mean_w.view(-1, 1, 1, 1)
    torch.testing.assert_close(bias_correct(w, w_q, mode="exact").double(), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mode", ["paper", "exact"])
def test_per_layer_matches_whole_tensor_moments(mode: str) -> None:
    w = conv_weight()
    w_q = quantize_weight(w, 2)
    out = bias_correct(w, w_q, per_channel=False, mode=mode).double()
    w64, q64 = w.double(), w_q.double()
    r = torch.sqrt(w64.var(unbiased=False) / (q64.var(unbiased=False) + EPS))
    assert out.var(unbiased=False).item() == pytest.approx(w64.var(unbiased=False).item(), rel=1e-5)
    expected_mean = r * w64.mean() if mode == "paper" else w64.mean()
    assert out.mean().item() == pytest.approx(expected_mean.item(), abs=1e-6)
    # the per-channel variances are not matched by the per-layer form
    per_channel_var = out.flatten(1).var(1, unbiased=False)
    assert not torch.allclose(per_channel_var, w64.flatten(1).var(1, unbiased=False), rtol=1e-3)


@pytest.mark.parametrize("mode", ["paper", "exact"])
def test_constant_channel_uses_scale_one(mode: str) -> None:
    w = conv_weight(shape=(3, 4, 3, 3))
    w_q = quantize_weight(w, 2).clone()
    w_q[1] = 0.25  # V[w_q] = 0 in channel 1
    out = bias_correct(w, w_q, mode=mode)
    mean_w, _ = channel_moments(w)
    # scale 1: w_q + E[w] - E[w_q] (paper) = E[w] = r (w_q - E[w_q]) + E[w] (exact)
    torch.testing.assert_close(out[1].double(), torch.full((4, 3, 3), mean_w[1].item(), dtype=torch.float64),
                               rtol=0, atol=1e-7)
    assert torch.isfinite(out).all()
    # the other channels are corrected as usual
    _, var_w = channel_moments(w)
    torch.testing.assert_close(channel_moments(out)[1][[0, 2]], var_w[[0, 2]], rtol=1e-5, atol=0)


@pytest.mark.parametrize("mode", ["paper", "exact"])
def test_detached_statistics_gradient_is_the_scale(mode: str) -> None:
    w = conv_weight()
    w_q = quantize_weight(w, 2).detach().requires_grad_()
    bias_correct(w, w_q, mode=mode, detach_stats=True).sum().backward()
    expected = ratio(w, w_q.detach()).float().view(-1, 1, 1, 1).expand_as(w_q)
    torch.testing.assert_close(w_q.grad, expected, rtol=1e-5, atol=0)

    w_q.grad = None
    bias_correct(w, w_q, mode=mode, detach_stats=False).sum().backward()
    assert not torch.allclose(w_q.grad, expected, rtol=1e-3, atol=1e-4)


def test_detached_statistics_do_not_send_gradient_to_reference() -> None:
    w = conv_weight().requires_grad_()
    w_q = quantize_weight(w.detach(), 2).requires_grad_()
    bias_correct(w, w_q, detach_stats=True).sum().backward()
    assert w.grad is None and w_q.grad is not None
    bias_correct(w, w_q, detach_stats=False).sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def test_rejects_bad_arguments() -> None:
    w = conv_weight()
    with pytest.raises(ValueError, match="mode"):
        bias_correct(w, w, mode="banner")
    with pytest.raises(ValueError, match="shape"):
        bias_correct(w, w[:2])


@pytest.mark.parametrize("bits", [1, 2, 3, 8])
def test_qconv_corrected_weight_has_full_precision_moments(bits: int) -> None:
    torch.manual_seed(0)
    conv = QConv2d(8, 16, 3, bias=False, spec=QuantSpec(bias_correction=True, correction_mode="exact"))
    with torch.no_grad():
        conv.weight.mul_(10)  # keeps V[w_q] >> eps (see conv_weight)
    reference = quantize_weight(conv.weight, 32)  # the 32-bit path's weight
    set_bits(conv, bits)
    corrected = conv.quantized_weight()
    mean_ref, var_ref = channel_moments(reference)
    mean_c, var_c = channel_moments(corrected)
    torch.testing.assert_close(var_c, var_ref, rtol=1e-5, atol=0)
    torch.testing.assert_close(mean_c, mean_ref, rtol=0, atol=1e-6)
    set_bits(conv, 32)  # identity at 32 bits
    torch.testing.assert_close(conv.quantized_weight(), reference, rtol=0, atol=0)
