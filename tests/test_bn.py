"""BatchNorm across bit-widths (docs/method.md §4): shared, switchable, nearest trained bit, recalibration."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from emqlib.bits import bit_width, current_bits, set_bits
from emqlib.bn import MultiBitBatchNorm2d, batch_norms, nearest_bits, recalibrate_bn
from emqlib.models import build_model
from emqlib.quant import QuantSpec

TRAINED = (2, 4, 8, 32)


def resnet8(bn_mode: str, trained=TRAINED, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("resnet8", num_classes=4, in_channels=1, image_size=16, trained_bits=trained,
                       bn_mode=bn_mode, spec=QuantSpec(bias_correction=bn_mode == "shared"), width=0.5)


def inputs(n: int = 8, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed))


def warm_up(model: nn.Module, bits=TRAINED) -> None:
    """Give every trained BatchNorm non-default running statistics."""
    model.train()
    with torch.no_grad():
        for i, b in enumerate(bits):
            set_bits(model, b)
            model(inputs(seed=10 + i) * (1 + i))
    set_bits(model, 32)
    model.eval()


def multi_bit_norms(model: nn.Module) -> list[MultiBitBatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, MultiBitBatchNorm2d)]


def test_shared_mode_has_one_batch_norm_per_layer() -> None:
    model = resnet8("shared")
    layers = multi_bit_norms(model)
    assert len(layers) == 7  # 3 blocks x 2 + head
    assert all(list(m.norms) == ["shared"] for m in layers)
    assert sum(len(m.norms) for m in layers) == 7


def test_switchable_mode_has_one_batch_norm_per_trained_bit() -> None:
    model = resnet8("switchable")
    layers = multi_bit_norms(model)
    assert all(sorted(int(k) for k in m.norms) == sorted(TRAINED) for m in layers)
    assert sum(len(m.norms) for m in layers) == 7 * len(TRAINED)
    # every copy is its own module with its own parameters
    first = layers[0]
    assert len({id(bn.weight) for bn in first.norms.values()}) == len(TRAINED)


@pytest.mark.parametrize("bits, expected", [(1, 2), (2, 2), (3, 4), (4, 4), (5, 4), (6, 8), (7, 8), (8, 8), (32, 32)])
def test_nearest_trained_bit(bits: int, expected: int) -> None:
    assert nearest_bits(bits, TRAINED) == expected
    assert nearest_bits(bits, reversed(TRAINED)) == expected  # independent of the order
    bn = MultiBitBatchNorm2d(4, "switchable", TRAINED)
    assert bn.key(bits) == str(expected)
    assert MultiBitBatchNorm2d(4, "shared", TRAINED).key(bits) == "shared"


def test_untrained_bit_runs_the_nearest_trained_batch_norm() -> None:
    bn = MultiBitBatchNorm2d(3, "switchable", TRAINED)
    with torch.no_grad():
        for i, b in enumerate(TRAINED):
            bn.norms[str(b)].running_mean.fill_(float(i + 1))
    bn.eval()
    x = torch.zeros(1, 3, 2, 2)
    for bits, expected in [(3, 4), (5, 4), (6, 8), (7, 8), (1, 2)]:
        bn.set_bits(bits)
        torch.testing.assert_close(bn(x), bn.norms[str(expected)](x), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"1\.\.8 or 32"):
        bn.set_bits(16)


@pytest.mark.parametrize("bn_mode", ["shared", "switchable"])
def test_switching_bits_changes_outputs_and_back_restores_them(bn_mode: str) -> None:
    model = resnet8(bn_mode)
    warm_up(model)
    x = inputs()
    with torch.no_grad():
        outputs = {}
        for b in (32, 2, 3, 8):
            set_bits(model, b)
            outputs[b] = model(x)
        for a in outputs:
            for b in outputs:
                if a < b:
                    assert not torch.allclose(outputs[a], outputs[b]), (a, b)
        for b in (8, 3, 2, 32):
            set_bits(model, b)
            torch.testing.assert_close(model(x), outputs[b], rtol=0, atol=0)


def test_bit_width_context_manager_restores_on_exception() -> None:
    model = resnet8("switchable")
    set_bits(model, 8, activation_bits=4)
    with pytest.raises(RuntimeError, match="boom"):
        with bit_width(model, 2, 32):
            assert current_bits(model) == (2, 32)
            raise RuntimeError("boom")
    assert current_bits(model) == (8, 4)
    with bit_width(model, 3):
        assert current_bits(model) == (3, 3)
    assert current_bits(model) == (8, 4)


# ---------------------------------------------------------------- recalibration

def batches_of(n_batches: int, size: int = 6, channels: int = 3, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(size, channels, 4, 4, generator=g) * (i + 1) + i for i in range(n_batches)]


def test_recalibration_running_stats_are_the_cumulative_average() -> None:
    model = nn.Sequential(MultiBitBatchNorm2d(3, "shared"))
    model.eval()
    bn = model[0].norms["shared"]
    with torch.no_grad():
        bn.running_mean.fill_(5.0)
        bn.running_var.fill_(7.0)
        bn.weight.fill_(2.0)
        bn.bias.fill_(-1.0)
    data = batches_of(4)
    recalibrate_bn(model, 4, data + batches_of(3, seed=9), n_batches=4)  # only the first 4 count
    seen = torch.stack(data)  # [batches, N, C, H, W]
    torch.testing.assert_close(bn.running_mean, seen.mean(dim=(0, 1, 3, 4)), rtol=1e-5, atol=1e-5)
    # cumulative average of the per-batch (unbiased) variances
    per_batch_var = seen.transpose(1, 2).flatten(2).var(dim=2, unbiased=True)  # [batches, C]
    torch.testing.assert_close(bn.running_var, per_batch_var.mean(0), rtol=1e-5, atol=1e-5)
    assert bn.momentum == 0.1  # restored
    assert bn.weight.eq(2.0).all() and bn.bias.eq(-1.0).all()
    assert not model.training and not bn.training  # mode restored
    assert int(bn.num_batches_tracked) == 4


def test_recalibration_accepts_tuples_and_needs_a_batch() -> None:
    model = nn.Sequential(MultiBitBatchNorm2d(3, "shared"))
    data = batches_of(2)
    recalibrate_bn(model, 2, [(x, torch.zeros(len(x))) for x in data])
    torch.testing.assert_close(model[0].norms["shared"].running_mean, torch.stack(data).mean(dim=(0, 1, 3, 4)),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="no batches"):
        recalibrate_bn(model, 2, [])


@pytest.mark.parametrize("bn_mode", ["shared", "switchable"])
def test_recalibration_leaves_parameters_unchanged(bn_mode: str) -> None:
    model = resnet8(bn_mode)
    warm_up(model)
    model.train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    stats_before = [bn.running_mean.clone() for bn in batch_norms(model)]
    recalibrate_bn(model, 4, [inputs(seed=s) for s in range(3)])
    after = dict(model.named_parameters())
    for name, value in before.items():
        assert torch.equal(after[name], value), name
    assert model.training  # mode restored
    assert current_bits(model) == (32, 32)  # bit-width restored
    active = [bn for bn in batch_norms(model) if any(bn is m.norms[m.key(4)] for m in multi_bit_norms(model))]
    assert active and all(not torch.equal(bn.running_mean, s) for bn, s in zip(batch_norms(model), stats_before)
                          if bn in active)


def test_recalibration_of_untrained_bit_adds_a_batch_norm_in_switchable_mode() -> None:
    model = resnet8("switchable")
    warm_up(model)
    trained_state = {k: v.clone() for k, v in model.state_dict().items() if ".norms." in k}
    recalibrate_bn(model, 3, [inputs(seed=s) for s in range(3)])
    for m in multi_bit_norms(model):
        assert sorted(int(k) for k in m.norms) == [2, 3, 4, 8, 32]
        assert m.key(3) == "3"
        # the copy started from the nearest trained one (4): same affine parameters
        torch.testing.assert_close(m.norms["3"].weight, m.norms["4"].weight, rtol=0, atol=0)
        assert not torch.equal(m.norms["3"].running_mean, m.norms["4"].running_mean)
    state = model.state_dict()
    for k, v in trained_state.items():
        assert torch.equal(state[k], v), k  # trained bit-widths' BatchNorms untouched


def test_recalibration_in_shared_mode_adds_nothing() -> None:
    model = resnet8("shared")
    warm_up(model)
    recalibrate_bn(model, 3, [inputs(seed=s) for s in range(2)])
    assert all(list(m.norms) == ["shared"] for m in multi_bit_norms(model))
