"""Integer ONNX export (emqlib.harness.export): exact integer grids, agreement with the fake-quantized
model at every served bit-width on trained smoke models, the command's refusals, bench rows."""
from __future__ import annotations

import math

import numpy as np
import onnx
import pandas as pd
import pytest
import torch
from onnx import numpy_helper

from emqlib.harness.cli import main
from emqlib.bits import SUPPORTED_BITS, current_bits, set_bits
from emqlib.harness.config import profile_config
from emqlib.correction import bias_correct
from emqlib.harness.export import (ACCURACY_TOLERANCE, ActivationGrid, ExportMismatchError, compare, dequantized_weights,
                           export_bench_rows, export_run, integer_weight, onnx_logits, packed_bytes, session, to_onnx)
from emqlib.models import build_model
from emqlib.quant import QConv2d, QuantAct, QuantSpec
from emqlib.harness.runs import Run, get_run
from emqlib.harness.build import Runtime, load_run_data

# logits of the export and of the fake-quantized model (|logit| about 1.3): float32 summation order
# differs, and an activation at a rounding tie may get the neighbouring code, which moves the logits
# by up to about a code's step times the weights after it (measured: below 3e-4 on the smoke model)
LOGIT_BOUND = 1e-2
# dequantized weight vs the corrected fake-quantized one, as a share of the layer's largest |weight|:
# both are float32 roundings of the same real number (measured: below 2e-7)
WEIGHT_BOUND = 4 * torch.finfo(torch.float32).eps


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    """Smoke runs (seconds each): EMQ (DoReFa, shared BN, bias correction) and joint LSQ (switchable BN)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMQ_RUNS_DIR", str(tmp_path_factory.mktemp("runs")))
        runtime = Runtime(progress=False)
        lsq = {"quant": {"weight_quantizer": "lsq", "full_precision_weight": "plain"}}
        yield {"emq": get_run(profile_config("smoke", "emq"), runtime),
               "lsq": get_run(profile_config("smoke", "joint", model=lsq), runtime)}


def quantized_convs(model) -> dict[str, QConv2d]:
    return {name: m for name, m in model.named_modules() if isinstance(m, QConv2d)}


# ---------------------------------------------------------------- the integer grids, on tiny layers

def test_dorefa_codes_are_the_levels_of_the_closed_form():
    """2 bits, no correction: w_q = A (2k/3 - 1), k = round(3 (tanh w / 2M + 1/2)); codes c = k - 2, scale 2A/3, shift A/3."""
    conv = QConv2d(2, 2, 1, bias=False, spec=QuantSpec(bias_correction=False))
    w = torch.tensor([-1.0, -0.2, 0.3, 2.0]).view(2, 2, 1, 1)
    conv.weight.data.copy_(w)
    set_bits(conv, 2)
    t = np.tanh(w.numpy().astype(np.float64))
    k = np.round(3 * (t / (2 * np.abs(t).max()) + 0.5))
    a = np.abs(w.numpy()).mean()
    weight = integer_weight(conv)
    assert weight.codes.dtype == torch.int8
    assert weight.codes.flatten().tolist() == (k - 2).flatten().tolist() == [-2, -1, 0, 1]
    assert torch.allclose(weight.scale, torch.full((2,), 2 * a / 3, dtype=torch.float64), rtol=1e-7, atol=0)
    assert torch.allclose(weight.shift, torch.full((2,), a / 3, dtype=torch.float64), rtol=1e-7, atol=0)
    assert torch.allclose(weight.dequantize(), conv.quantized_weight(), rtol=0, atol=WEIGHT_BOUND * a)


LSQ_SPEC = QuantSpec(weight_quantizer="lsq", full_precision_weight="plain", bias_correction=True, bits=tuple(range(2, 9)))
DOREFA_SPECS = [QuantSpec(bias_correction=True), QuantSpec(bias_correction=True, per_channel=False),
                QuantSpec(bias_correction=True, correction_mode="exact")]


# LSQ from 2 bits: at 1 bit it has no positive level (Q_P = 0)
@pytest.mark.parametrize("spec, bits", [(spec, b) for spec in DOREFA_SPECS for b in range(1, 9)]
                         + [(LSQ_SPEC, b) for b in range(2, 9)])
def test_integer_weight_reproduces_the_corrected_weight(spec, bits):
    """int8 codes in [-2^(b-1), 2^(b-1)-1], at most 2^b of them, and S_c c + T_c = bias_correct(w, w_q)."""
    torch.manual_seed(bits)
    conv = QConv2d(8, 6, 3, bias=False, spec=spec)
    set_bits(conv, bits)
    if conv.lsq is not None:
        conv.lsq.steps[str(bits)].data.fill_(0.37 / 2**bits)
    weight = integer_weight(conv)
    codes = weight.codes.long()
    assert codes.min() >= -(2 ** (bits - 1)) and codes.max() <= 2 ** (bits - 1) - 1
    assert len(codes.unique()) <= 2**bits
    reference, w_q = conv.full_precision_weight(), conv.uncorrected_weight()
    corrected = bias_correct(reference, w_q, per_channel=spec.per_channel, mode=spec.correction_mode)
    assert torch.equal(corrected, conv.quantized_weight())
    assert (weight.dequantize() - corrected).abs().max() <= WEIGHT_BOUND * corrected.abs().max()


def test_activation_codes_are_the_quantizer_levels():
    """DoReFa: codes round(clip(x, 0, 1) * 15), worth code / 15 = quantize_activation(x, 4)."""
    act = QuantAct(QuantSpec())
    set_bits(act, 4)
    x = torch.linspace(-0.5, 1.5, 101)
    grid = ActivationGrid.of(act, 4)
    assert (grid.op, grid.levels) == ("Mul", 15)
    assert torch.equal(grid.codes(x) / grid.factor, act(x))
    assert grid.codes(x).tolist()[:26] == [0.0] * 26 and grid.codes(x).max() == 15


def test_only_resnets_and_matching_weight_and_activation_precision_are_exported():
    kwargs = dict(num_classes=4, in_channels=1, image_size=16, trained_bits=(2, 32))
    with pytest.raises(ValueError, match="ResNet models"):
        to_onnx(build_model("mobilenetv2", **kwargs), 2)
    with pytest.raises(ValueError, match="both quantized or both 32-bit"):
        to_onnx(build_model("resnet8", width=0.5, **kwargs), 4, activation_bits=32)


# ---------------------------------------------------------------- trained smoke models

@pytest.mark.parametrize("kernel", ["qdq", "integer"])
@pytest.mark.parametrize("bits", SUPPORTED_BITS)
def test_export_equals_the_fake_quantized_model_at_every_bit_width(runs, bits, kernel):
    run = runs["emq"]
    onnx_model = to_onnx(run.model(bits), bits, kernel=kernel)
    result = compare(run, bits, onnx_model)
    assert abs(result["export_accuracy"] - result["fake_quant_accuracy"]) <= ACCURACY_TOLERANCE
    assert result["max_logit_difference"] <= LOGIT_BOUND
    ops = [n.op_type for n in onnx_model.graph.node]
    # every quantized conv takes uint8 activation codes and int8 weight codes; 32 bits is all float
    n_convs = 0 if bits == 32 else len(quantized_convs(run.model(bits)))
    assert ops.count("ConvInteger") == (n_convs if kernel == "integer" else 0)
    assert ops.count("DequantizeLinear") == (2 * n_convs if kernel == "qdq" else 0)


@pytest.mark.parametrize("kernel", ["qdq", "integer"])
@pytest.mark.parametrize("bits", [1, 2, 5, 8])
def test_onnx_initializers_dequantize_to_the_corrected_fake_quant_weights(runs, bits, kernel):
    run = runs["emq"]
    model = run.model(bits)
    set_bits(model, bits)
    onnx_model = to_onnx(model, bits, kernel=kernel)
    assert current_bits(model) == (bits, bits)  # to_onnx leaves the model at its own bit-widths
    stored = {t.name: numpy_helper.to_array(t) for t in onnx_model.graph.initializer}
    dequantized = dequantized_weights(onnx_model)
    convs = quantized_convs(model)
    assert set(dequantized) == set(convs)
    for name, conv in convs.items():
        codes = stored[f"{name}.codes"]
        assert codes.dtype == np.int8
        out = conv.out_channels
        # the integer codes are exact; the integer kernel's last output channel is the all-ones kernel of the shift
        assert np.array_equal(codes[:out], integer_weight(conv).codes.numpy())
        assert len(codes) == out + (kernel == "integer") and (kernel == "qdq" or (codes[-1] == 1).all())
        fake_quant = conv.quantized_weight().detach().numpy()
        assert np.abs(dequantized[name] - fake_quant).max() <= WEIGHT_BOUND * np.abs(fake_quant).max()


@pytest.mark.parametrize("kernel", ["qdq", "integer"])
def test_the_shift_term_is_needed(runs, kernel):
    """Without T_c (DoReFa's half-level offset and the correction's mean shift) the logits are wrong."""
    run = runs["emq"]
    _, test = load_run_data(run.config)
    exact = onnx_logits(session(to_onnx(run.model(4), 4, kernel=kernel)), test)
    without = onnx_logits(session(to_onnx(run.model(4), 4, kernel=kernel, shift=False)), test)
    assert (exact - without).abs().max() > 10 * LOGIT_BOUND


@pytest.mark.parametrize("bits", [2, 4, 8, 32])
def test_lsq_and_switchable_batchnorm_export(runs, bits):
    """LSQ codes (weights signed, activations unsigned) and the switchable BatchNorm of ``bits``."""
    run = runs["lsq"]
    model = run.model(bits)
    onnx_model = to_onnx(model, bits)
    result = compare(run, bits, onnx_model)
    assert abs(result["export_accuracy"] - result["fake_quant_accuracy"]) <= ACCURACY_TOLERANCE
    assert result["max_logit_difference"] <= LOGIT_BOUND
    running_mean = model.bn.norms[str(bits)].running_mean.numpy()
    stored = {t.name: numpy_helper.to_array(t) for t in onnx_model.graph.initializer}
    assert np.array_equal(stored["bn.mean"], running_mean)


# ---------------------------------------------------------------- the command

def run_cli(*argv) -> int:
    return main(["export", *map(str, argv)])


@pytest.mark.parametrize("kernel", ["qdq", "integer"])
def test_export_command_writes_a_model_that_onnxruntime_runs(runs, tmp_path, capsys, kernel):
    out = tmp_path / "model-4bit.onnx"
    assert run_cli(runs["emq"].path, "--bits", "4", "--out", out, "--kernel", kernel) == 0
    assert "wrote" in capsys.readouterr().out
    onnx.checker.check_model(onnx.load(out))
    assert {p.key: p.value for p in onnx.load(out).metadata_props}["kernel"] == kernel
    _, test = load_run_data(runs["emq"].config)
    assert onnx_logits(session(out.read_bytes()), test).shape == (len(test), 4)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_existing_output_is_refused_without_force(runs, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"keep me")
    assert run_cli(runs["emq"].path, "--bits", "2", "--out", out) == 2
    assert "--force" in one_error_line(capsys)
    assert out.read_bytes() == b"keep me"
    assert run_cli(runs["emq"].path, "--bits", "2", "--out", out, "--force") == 0
    onnx.checker.check_model(onnx.load(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temporary file left


@pytest.mark.parametrize("argv, message", [
    (["{tmp}/no-such-run", "--bits", "4"], "not a finished run"),
    (["{emq}", "--bits", "9"], "1..8 or 32"),
    (["{emq}", "--bits", "2,4"], "one bit-width"),
    (["{lsq}", "--bits", "3"], "serves bits 32,8,4,2 only"),
])
def test_bad_input_is_one_error_line_and_writes_nothing(runs, tmp_path, capsys, argv, message):
    argv = [a.format(tmp=tmp_path, emq=runs["emq"].path, lsq=runs["lsq"].path) for a in argv]
    assert run_cli(*argv, "--out", tmp_path / "out.onnx") == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / "out.onnx").exists()


def test_a_poorly_served_bit_width_is_refused_with_its_accuracy(runs, tmp_path, capsys, monkeypatch):
    accuracies = {b: 90.0 for b in SUPPORTED_BITS} | {1: 30.0}  # chance is 25% on the 4-class smoke data
    monkeypatch.setattr(Run, "evaluate", lambda self, bits: pd.DataFrame({"bits": list(accuracies),
                                                                           "accuracy": list(accuracies.values())}))
    out = tmp_path / "out.onnx"
    assert run_cli(runs["emq"].path, "--bits", "1", "--out", out) == 2
    error = one_error_line(capsys)
    assert "30.0% test accuracy" in error and "best 90.0%" in error and "--allow-low-accuracy" in error
    assert not out.exists()
    assert run_cli(runs["emq"].path, "--bits", "1", "--out", out, "--allow-low-accuracy") == 0
    assert out.exists()


def test_an_export_that_disagrees_with_the_model_is_not_written(runs, tmp_path, monkeypatch):
    monkeypatch.setattr("emqlib.harness.export.compare", lambda run, bits, model: {
        "bits": bits, "fake_quant_accuracy": 60.0, "export_accuracy": 59.0, "max_logit_difference": 1.0})
    with pytest.raises(ExportMismatchError, match="differs from the fake-quantized"):
        export_run(runs["emq"], 4, tmp_path / "out.onnx")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- bench rows

def test_packed_size_counts_weight_codes_at_the_bit_width(runs):
    model = runs["emq"].model(2)
    onnx_model = to_onnx(model, 2)
    n_codes = sum(conv.weight.numel() for conv in quantized_convs(model).values())
    assert packed_bytes(onnx_model, 4) - packed_bytes(onnx_model, 2) in (math.floor(n_codes * 2 / 8),
                                                                         math.ceil(n_codes * 2 / 8))
    assert packed_bytes(onnx_model, 2) < len(onnx_model.SerializeToString())


def test_export_bench_rows(runs):
    rows = pd.DataFrame(export_bench_rows(runs["emq"], "2,32", reps=2, warmup=1))
    assert {"metric", "value", "unit", "what", "bits", "batch", "runtime", "run", "threads"} <= set(rows.columns)
    assert (rows.value > 0).all()
    latency = rows[rows.metric == "export_latency"]
    # per batch size: PyTorch and both kernels at 2 bits, PyTorch and the float export at 32 bits
    for batch in (1, 128):
        assert sorted(latency[latency.batch == batch].runtime) == [
            "PyTorch fake-quant", "PyTorch fake-quant", "onnxruntime float", "onnxruntime integer", "onnxruntime qdq"]
    packed = rows[rows.metric == "export_packed_size"]
    assert len(packed) == 3 and packed.value.iloc[0] < packed.value.iloc[-1]  # 2-bit codes pack smaller than floats
    assert (rows.metric == "export_shift_cost").sum() == 2  # batch 1 and 128 at 2 bits; none at 32
