"""Integer deployment: a trained multi-bit ResNet at one bit-width as an integer ONNX model for onnxruntime.

``python -m emqlib export RUN --bits B --out FILE`` (and :func:`export_run`) writes the model
that the run serves at B bits as an ONNX graph that stores and passes integers:

* activation codes: BN -> q = round(clip(x * (2^a - 1), 0, 2^a - 1)) as uint8 (DoReFa,
  Any-Precision's activation quantizer), or round(clip(x / step, 0, Q_P)) (LSQ): the
  fake-quantized model's own operations in its own order (not QuantizeLinear, whose x / scale
  with scale = 1 / (2^a - 1) rounds differently), so a code differs only where onnxruntime's
  float32 rounding of the input puts it on the other side of a rounding tie;
* weight codes: int8 c in [-2^(b-1), 2^(b-1) - 1] with, per output channel, a scale S_c
  (zero-point 0) and a float shift T_c, so that S_c c + T_c is the corrected fake-quantized weight.

Two forms of the quantized convolution (``kernel``):

* ``"qdq"`` (the default): DequantizeLinear of the activation and weight codes, the shift added
  to the dequantized weight, then onnxruntime's float Conv: conv(s_a q, S c + T). :func:`session`
  lets onnxruntime dequantize the constant weights once when it loads the model (faster than its
  default, which dequantizes them on every run);
* ``"integer"``: ConvInteger (uint8 x int8 -> int32, exact integer sums), then one float
  multiply-add per output channel: y = s_a (S_c conv(q, c) + T_c boxsum(q)). onnxruntime's
  ConvInteger kernel makes this form several times slower than the QDQ form on a cpu-profile ResNet-8
  (:func:`export_bench_rows` measures it: docs/engineering.md's benchmark block, ``export_latency`` in
  results/bench.csv), hence the default.

The grids that the integer types cannot hold directly, and how they are handled:

1. DoReFa's weight levels A (2k / L - 1), k = 0..L, L = 2^b - 1, are odd multiples of A / L
   (at 8 bits -255..255: no int8 holds them, and the symmetric zero-point L / 2 is not an
   integer). Writing k = c + 2^(b-1) gives A (2k / L - 1) = (2A / L) c + A / L: an int8 code with
   scale 2A / L and a constant shift of A / L.
2. EMQ's weight bias correction, w' = r (w_q + E[w] - E[w_q]) per output channel (EMQ, weight
   bias correction; ``correction_mode="exact"``: r (w_q - E[w_q]) + E[w]), is affine in w_q:
   the scale becomes r S and the shift r o + d, which is not an integer zero-point either.
Both shifts are one per-channel float T_c. The QDQ form adds it to the dequantized weight (one
Add on the weights per run). The integer form applies it exactly as a float term on the input
sums: conv(q, S c + T) = S conv(q, c) + T boxsum(q), where boxsum(q) is the sum of the codes
over the kernel window (zero padding included), computed by the same ConvInteger as one extra
output channel whose kernel is all ones (1 / C_out more multiply-adds, then a slice, a multiply
and an add per output). :func:`export_bench_rows` measures its latency against an export without
it (``shift=False``, not the model's numbers).

What is exact and what is not: the integer codes of weights and activations equal the
fake-quantized model's (atol 0 for the weights); the dequantized weights S_c c + T_c equal the
corrected fake-quantized weights up to float32 rounding, not bit for bit (torch rounds
a (2 round(u L) / L - 1) and then the correction in several float32 steps, the export rounds
S_c c + T_c once: tests/test_export.py bounds the difference, ``WEIGHT_BOUND`` of a layer's largest
weight); and the logits differ by float summation order, and where an activation lands on a rounding
tie, by one code there and what follows from it (``LOGIT_BOUND`` there; :func:`compare` measures a
run's largest difference and both test accuracies). Everything else stays float: the stem conv, the 1x1
shortcut convs with their BatchNorm, the BatchNorms (the one that runs at B bits: shared, or
the switchable one that ``MultiBitBatchNorm2d.key`` picks) and the classifier, as in the
fake-quantized model. At 32 bits the export is the full-precision path in float.

Inputs are the normalized images [N, C, H, W] that the model takes; outputs are logits [N, classes].
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import Tensor, nn

from ..bits import FULL_PRECISION, SUPPORTED_BITS, bit_width, check_bits, parse_bits, set_bits
from ..bn import MultiBitBatchNorm2d
from .config import config_hash
from ..correction import correction_terms
from ..data import ImageDataset, batches
from ..inference import predict
from ..models.resnet import PreActBlock, PreActResNet
from ..quant import QConv2d, QuantAct
from .runs import Run, load_run
from .storage import atomic_write_bytes, check_replaceable
from .timing import Variant, best, row, time_interleaved
from .build import load_run_data
from .datasets import DATASET_SHAPES

OPSET = 21
ACCURACY_TOLERANCE = 0.1  # points: the exported model's test accuracy must equal the fake-quantized one's
SERVED_SHARE = 0.5  # a bit-width is served well if it keeps at least this share of the best accuracy gain over chance


class ExportMismatchError(ValueError):
    """The exported model's test accuracy differs from the fake-quantized model's."""


# ---------------------------------------------------------------- integer grids

@dataclass(frozen=True)
class ActivationGrid:
    """Activation codes q = round(clip(x op factor, 0, levels)) (uint8), worth q * step each."""

    op: str  # "Mul" (DoReFa: x * (2^a - 1)) or "Div" (LSQ: x / step), as the fake-quantized model computes it
    factor: float
    levels: int
    step: float  # value of one code: 1 / (2^a - 1) or the LSQ step

    @classmethod
    def of(cls, act: QuantAct, bits: int) -> ActivationGrid:
        if act.lsq is None:
            levels = 2**bits - 1
            return cls("Mul", float(levels), levels, 1.0 / levels)
        step = float(act.lsq.steps[str(bits)].detach())
        return cls("Div", step, act.lsq.levels(bits)[1], step)

    def codes(self, x: Tensor) -> Tensor:
        """The codes as float (reference for tests): the same operations as the ONNX graph."""
        scaled = x * self.factor if self.op == "Mul" else x / self.factor
        return torch.round(torch.clamp(scaled, 0, self.levels))


@dataclass(frozen=True)
class IntegerWeight:
    """A quantized weight as int8 codes [out, ...] with a per-output-channel scale and shift [out]."""

    codes: Tensor  # int8
    scale: Tensor  # float64
    shift: Tensor  # float64

    def dequantize(self) -> Tensor:
        """S_c * c + T_c in float32 (what the ONNX graph computes with)."""
        view = (-1,) + (1,) * (self.codes.dim() - 1)
        scale, shift = self.scale.float().view(view), self.shift.float().view(view)
        return scale * self.codes.float() + shift


def _uncorrected_grid(layer: QConv2d) -> tuple[float, float, int]:
    """(scale s, offset o, lowest code) with w_q = s * c + o for codes c of the layer's quantizer."""
    bits = layer.bits
    if layer.lsq is not None:
        return float(layer.lsq.steps[str(bits)].detach()), 0.0, -layer.lsq.levels(bits)[0]
    levels = 2**bits - 1
    a = float(layer.weight.detach().abs().mean())  # DoReFa's A = mean|W| (float32, as the quantizer takes it)
    return 2 * a / levels, a / levels, -(2 ** (bits - 1))


def _correction(reference: Tensor, w_q: Tensor, layer: QConv2d) -> tuple[Tensor, Tensor]:
    """(r, d) per output channel with bias_correct(reference, w_q) = r * w_q + d (EMQ, weight bias correction)."""
    spec = layer.spec
    out = w_q.shape[0]
    if not spec.bias_correction:
        return torch.ones(out, dtype=torch.float64), torch.zeros(out, dtype=torch.float64)
    terms = correction_terms(reference, w_q, spec.per_channel)
    r = terms.scale
    d = r * (terms.mean_w - terms.mean_q) if spec.correction_mode == "paper" else terms.mean_w - r * terms.mean_q
    return r.double().flatten().expand(out), d.double().flatten().expand(out)


@torch.no_grad()
def integer_weight(layer: QConv2d) -> IntegerWeight:
    """The layer's weight at its current bit-width (< 32) as integer codes, per-channel scale and shift.

    The codes come from the layer's own fake-quantized weight w_q = s c + o, so they are its
    levels exactly; the correction's r and d make the per-channel scale r s and shift r o + d.
    """
    if layer.bits == FULL_PRECISION:
        raise ValueError("a 32-bit weight has no integer codes")
    reference, w_q = layer.full_precision_weight(), layer.uncorrected_weight()
    s, o, lowest = _uncorrected_grid(layer)
    exact = (w_q.double() - o) / s
    codes = torch.round(exact)
    # w_q is a float32 rounding of s c + o: its code is within a tiny fraction of an integer
    if (exact - codes).abs().max() > 1e-3 or codes.min() < lowest or codes.max() > -lowest - 1:
        raise ValueError(f"the weights of a {type(layer).__name__} are not on the {layer.bits}-bit grid")
    r, d = _correction(reference, w_q, layer)
    return IntegerWeight(codes.to(torch.int8), r * s, r * o + d)


# ---------------------------------------------------------------- ONNX graph

KERNELS = ("qdq", "integer")


class _Graph:
    """A tiny ONNX graph builder (nodes, initializers, unique names) with the export's choices:
    ``kernel`` of the quantized convs and whether they apply the exact ``shift`` term."""

    def __init__(self, kernel: str, shift: bool) -> None:
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        self.kernel, self.shift = kernel, shift
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def const(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def add(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        self._count += 1
        output = f"{name}/{op}_{self._count}"
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output


def _f32(t: Tensor) -> np.ndarray:
    return t.detach().cpu().float().numpy()


def _conv_attrs(conv: nn.Conv2d) -> dict:
    return dict(strides=list(conv.stride), pads=[*conv.padding, *conv.padding], dilations=list(conv.dilation),
                group=conv.groups, kernel_shape=list(conv.kernel_size))


def _batch_norm(g: _Graph, x: str, bn: nn.BatchNorm2d, name: str) -> str:
    params = [g.const(f"{name}.{p}", _f32(getattr(bn, attr)))
              for p, attr in (("scale", "weight"), ("bias", "bias"), ("mean", "running_mean"), ("var", "running_var"))]
    return g.add("BatchNormalization", [x, *params], name, epsilon=bn.eps)


def _running_norm(module: MultiBitBatchNorm2d) -> nn.BatchNorm2d:
    """The BatchNorm that runs at the module's current bit-width (shared, or the switchable one)."""
    return module.norms[module.key(module.bits)]


def _float_conv(g: _Graph, x: str, conv: nn.Conv2d, weight: Tensor, name: str) -> str:
    inputs = [x, g.const(f"{name}.weight", _f32(weight))]
    if conv.bias is not None:
        inputs.append(g.const(f"{name}.bias", _f32(conv.bias)))
    return g.add("Conv", inputs, name, **_conv_attrs(conv))


def _activation_codes(g: _Graph, x: str, grid: ActivationGrid, name: str) -> str:
    scaled = g.add(grid.op, [x, g.const(f"{name}.factor", np.float32(grid.factor))], name)
    clipped = g.add("Clip", [scaled, g.const(f"{name}.low", np.float32(0)),
                             g.const(f"{name}.high", np.float32(grid.levels))], name)
    return g.add("Cast", [g.add("Round", [clipped], name)], name, to=TensorProto.UINT8)


def _integer_conv(g: _Graph, codes: str, conv: QConv2d, grid: ActivationGrid, name: str) -> str:
    """y = s_a (S_c conv(q, c) + T_c boxsum(q)): one ConvInteger, the all-ones kernel as its last output channel.

    Initializers: ``<name>.codes`` (int8), ``<name>.scale`` S_c and ``<name>.shift`` T_c ([out, 1, 1]),
    ``<name>.step`` s_a; the products of constants are folded by onnxruntime when it loads the model.
    """
    weight = integer_weight(conv)
    out = weight.codes.shape[0]
    kernel = weight.codes.numpy()
    if g.shift:
        kernel = np.concatenate([kernel, np.ones((1, *kernel.shape[1:]), dtype=np.int8)])
    sums = g.add("Cast", [g.add("ConvInteger", [codes, g.const(f"{name}.codes", kernel)], name,
                                **_conv_attrs(conv))], name, to=TensorProto.FLOAT)
    step = g.const(f"{name}.step", np.float32(grid.step))
    scale = g.add("Mul", [g.const(f"{name}.scale", weight.scale.float().numpy().reshape(out, 1, 1)), step], name)
    if not g.shift:
        return g.add("Mul", [sums, scale], name)
    index = lambda n, v: g.const(f"{name}.{n}", np.array([v], dtype=np.int64))  # noqa: E731
    axis, start, stop, end = index("axis", 1), index("start", 0), index("stop", out), index("end", out + 1)
    products = g.add("Mul", [g.add("Slice", [sums, start, stop, axis], name), scale], name)
    shift_value = g.add("Mul", [g.const(f"{name}.shift", weight.shift.float().numpy().reshape(out, 1, 1)), step], name)
    window = g.add("Mul", [g.add("Slice", [sums, stop, end, axis], name), shift_value], name)
    return g.add("Add", [products, window], name)


def _qdq_conv(g: _Graph, codes: str, conv: QConv2d, grid: ActivationGrid, name: str) -> str:
    """conv(DequantizeLinear(q), DequantizeLinear(c) + T_c): the codes dequantized when the model
    runs, the shift added to the weight, the convolution in float (onnxruntime's float kernels).

    Initializers: ``<name>.codes`` (int8), ``<name>.scale`` S_c ([out], zero-point 0) and
    ``<name>.shift`` T_c ([out, 1, 1, 1]), ``<name>.step`` s_a (uint8 zero-point 0).
    """
    weight = integer_weight(conv)
    out = weight.codes.shape[0]
    x = g.add("DequantizeLinear", [codes, g.const(f"{name}.step", np.float32(grid.step)),
                                   g.const(f"{name}.act.zero_point", np.uint8(0))], name)
    w = g.add("DequantizeLinear", [g.const(f"{name}.codes", weight.codes.numpy()),
                                   g.const(f"{name}.scale", weight.scale.float().numpy()),
                                   g.const(f"{name}.zero_point", np.zeros(out, dtype=np.int8))], name, axis=0)
    if g.shift:
        w = g.add("Add", [w, g.const(f"{name}.shift", weight.shift.float().numpy().reshape(out, 1, 1, 1))], name)
    return g.add("Conv", [x, w], name, **_conv_attrs(conv))


def _quantized_conv(g: _Graph, x: str, bn: MultiBitBatchNorm2d, act: QuantAct, conv: QConv2d, name: str) -> str:
    """BN -> activation quantizer -> quantized conv of a pre-activation block, at the current bit-widths."""
    h = _batch_norm(g, x, _running_norm(bn), f"{name}.bn")
    if act.bits == FULL_PRECISION:
        if act.lsq is not None or act.full_precision == "relu":
            h = g.add("Relu", [h], name)
        else:
            h = g.add("Clip", [h, g.const(f"{name}.low", np.float32(0)), g.const(f"{name}.high", np.float32(1))], name)
        return _float_conv(g, h, conv, conv.full_precision_weight(), name)
    grid = ActivationGrid.of(act, act.bits)
    quantized = _integer_conv if g.kernel == "integer" else _qdq_conv
    return quantized(g, _activation_codes(g, h, grid, f"{name}.act"), conv, grid, name)


def _block(g: _Graph, x: str, block: PreActBlock, name: str) -> str:
    out = _quantized_conv(g, x, block.bn1, block.act1, block.conv1, f"{name}.conv1")
    out = _quantized_conv(g, out, block.bn2, block.act2, block.conv2, f"{name}.conv2")
    skip = x
    if not isinstance(block.shortcut, nn.Identity):
        conv, bn = block.shortcut
        skip = _batch_norm(g, _float_conv(g, x, conv, conv.weight, f"{name}.shortcut"), bn, f"{name}.shortcut.bn")
    return g.add("Add", [out, skip], name)


def _check_bits(model: nn.Module, bits: int, activation_bits: int) -> None:
    if not isinstance(model, PreActResNet):
        raise ValueError(f"export supports the ResNet models (resnet8, resnet20, resnet20-28px, resnet18), "
                         f"not {type(model).__name__}")
    if (bits == FULL_PRECISION) != (activation_bits == FULL_PRECISION):
        raise ValueError(f"export needs weights and activations both quantized or both 32-bit, got weights at "
                         f"{bits} and activations at {activation_bits} bits")


@torch.no_grad()
def to_onnx(model: nn.Module, bits: int, activation_bits: int | None = None, kernel: str = "qdq",
            shift: bool = True, metadata: dict | None = None) -> onnx.ModelProto:
    """The ONNX model of ``model`` (a PreActResNet) at ``bits`` (activations at ``activation_bits``).

    ``kernel``: "qdq" (DequantizeLinear of the codes, float Conv) or "integer" (ConvInteger on
    the codes, int32 sums). ``shift=False`` leaves out the per-channel shift T_c: the result is
    then not the model's numbers, only a measure of what the term costs.
    """
    bits = check_bits(bits)
    activation_bits = bits if activation_bits is None else check_bits(activation_bits)
    _check_bits(model, bits, activation_bits)
    g = _Graph(kernel, shift)
    with bit_width(model, bits, activation_bits):  # the model's own bit-widths are restored after
        h = _float_conv(g, "input", model.stem, model.stem.weight, "stem")
        for i, block in enumerate(model.layers):
            h = _block(g, h, block, f"layers.{i}")
        h = _batch_norm(g, h, _running_norm(model.bn), "bn")
    features = g.add("Flatten", [g.add("GlobalAveragePool", [h], "pool")], "pool")
    logits = g.add("Gemm", [features, g.const("classifier.weight", _f32(model.classifier.weight)),
                            g.const("classifier.bias", _f32(model.classifier.bias))], "classifier", transB=1)
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"], name="logits"))
    in_channels = model.stem.in_channels
    graph = helper.make_graph(
        g.nodes, f"emqlib-{bits}bit",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", in_channels, "height", "width"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", model.classifier.out_features])],
        g.initializers)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="emqlib")
    onnx_model.ir_version = 10  # onnxruntime 1.32 reads IR <= 11
    helper.set_model_props(onnx_model, {"bits": str(bits), "activation_bits": str(activation_bits),
                                        "kernel": kernel, "shift": str(shift), **(metadata or {})})
    onnx.checker.check_model(onnx_model)
    return onnx_model


def dequantized_weights(onnx_model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """{conv name: S_c c + T_c} [out, in, k, k] from an exported model's initializers, in float32 as
    :meth:`IntegerWeight.dequantize` (T_c = 0 in an export without the shift term)."""
    init = {t.name: numpy_helper.to_array(t) for t in onnx_model.graph.initializer}
    weights = {}
    for name in (n[: -len(".codes")] for n in init if n.endswith(".codes")):
        channel = (init[f"{name}.scale"].size, 1, 1, 1)
        scale = init[f"{name}.scale"].reshape(channel)
        shift = init.get(f"{name}.shift", np.zeros_like(scale)).reshape(channel)
        codes = init[f"{name}.codes"][: len(scale)]  # without the all-ones channel of the integer kernel
        weights[name] = scale * codes.astype(np.float32) + shift
    return weights


# ---------------------------------------------------------------- running it

def session(onnx_model: onnx.ModelProto | bytes, threads: int | None = None) -> ort.InferenceSession:
    """An onnxruntime CPU session (``threads`` intra-op threads; default torch's thread count)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    # onnxruntime keeps DequantizeLinear unfolded to fuse QDQ groups into its int8 kernels, which needs
    # a QuantizeLinear after the conv (not so here): folding dequantizes the constant weights once at
    # load, so the float Conv can prepack them instead of dequantizing the weights on every run
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    data = onnx_model if isinstance(onnx_model, bytes) else onnx_model.SerializeToString()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def onnx_logits(sess: ort.InferenceSession, dataset: ImageDataset, batch_size: int = 1000) -> Tensor:
    """Logits [N, C] of an exported model on every image of ``dataset`` (no augmentation)."""
    out = [sess.run(["logits"], {"input": x.float().contiguous().numpy()})[0]
           for x, _, _ in batches(dataset, torch.arange(len(dataset)), batch_size, shuffle=False)]
    return torch.from_numpy(np.concatenate(out))


def _accuracy(logits: Tensor, targets: Tensor) -> float:
    return 100.0 * (logits.argmax(1) == targets).float().mean().item()


def compare(run: Run, bits: int, onnx_model: onnx.ModelProto, dataset: ImageDataset | None = None) -> dict:
    """Test accuracy of the fake-quantized model and of the export at ``bits``, and the largest logit difference."""
    dataset = dataset if dataset is not None else load_run_data(run.config)[1]
    fake = predict(run.model(bits), dataset, bits, activation_bits=run.config.model.activation_bits)
    exported = onnx_logits(session(onnx_model), dataset)
    return {"bits": bits, "fake_quant_accuracy": _accuracy(fake, dataset.targets),
            "export_accuracy": _accuracy(exported, dataset.targets),
            "max_logit_difference": float((fake - exported).abs().max())}


# ---------------------------------------------------------------- the command

def served_bits(run: Run) -> tuple[int, ...]:
    """The bit-widths a run has a model for: Dedicated and LSQ runs their trained ones only, others 1-8 and 32."""
    if run.config.method == "dedicated" or run.config.model.quant.weight_quantizer == "lsq":
        return run.config.model.bits
    return SUPPORTED_BITS


def check_served(run: Run, bits: int, allow_low_accuracy: bool = False) -> None:
    """Refuse a bit-width the run has no model for, or (unless ``allow_low_accuracy``) serves poorly:
    less than SERVED_SHARE of the best bit-width's test-accuracy gain over chance (accuracies from
    ``run.evaluate``, cached in the run folder)."""
    served = served_bits(run)
    if bits not in served:
        raise ValueError(f"this {run.config.method} run ({run.config.model.quant.weight_quantizer}) serves bits "
                         f"{','.join(map(str, served))} only, not {bits}; pick one of those")
    if allow_low_accuracy:
        return
    table = run.evaluate(served).set_index("bits").accuracy
    chance = 100.0 / DATASET_SHAPES[run.config.data.dataset][0]
    best = table.max()
    if table[bits] < chance + SERVED_SHARE * (best - chance):
        raise ValueError(f"the run serves {bits} bits poorly: {table[bits]:.1f}% test accuracy (best {best:.1f}% at "
                         f"{table.idxmax()} bits, chance {chance:.1f}%); pass --allow-low-accuracy to export it anyway")


def export_run(run: str | Path | Run, bits: int, out: str | Path, force: bool = False,
               allow_low_accuracy: bool = False, kernel: str = "qdq") -> dict:
    """Export ``run`` at ``bits`` to ``out`` (ONNX), after checking it against the fake-quantized model.

    Refuses (ValueError, nothing written) an ``out`` that exists and is not a regular file (a
    folder, a device, a FIFO: even with ``force``), an existing ``out`` without ``force``, a bit-width the
    run serves poorly without ``allow_low_accuracy``, and an export whose test accuracy differs
    from the fake-quantized model's by more than ACCURACY_TOLERANCE points. Returns :func:`compare`'s
    numbers with the file's size.
    """
    out = Path(out)
    bits = check_bits(bits)
    check_replaceable(out)
    if out.exists() and not force:
        raise ValueError(f"{out} exists; pass --force to overwrite it")
    run = run if isinstance(run, Run) else load_run(run)
    check_served(run, bits, allow_low_accuracy)
    onnx_model = to_onnx(run.model(bits), bits, run.config.model.activation_bits, kernel,
                         metadata={"run": config_hash(run.config), "method": run.config.method})
    result = compare(run, bits, onnx_model)
    gap = abs(result["export_accuracy"] - result["fake_quant_accuracy"])
    if gap > ACCURACY_TOLERANCE:
        raise ExportMismatchError(f"the export's test accuracy {result['export_accuracy']:.2f}% differs from the "
                                  f"fake-quantized {result['fake_quant_accuracy']:.2f}% by {gap:.2f} points; "
                                  "nothing was written (please report this)")
    data = onnx_model.SerializeToString()
    atomic_write_bytes(out, data)
    return {**result, "path": str(out), "bytes": len(data)}


# ---------------------------------------------------------------- bench rows

def packed_bytes(onnx_model: onnx.ModelProto, bits: int) -> int:
    """Model size with each weight code packed at ``bits`` bits (the integer kernel's all-ones
    channel not counted) and every other number (float parameters, scales, shifts) at its stored width."""
    init = {t.name: numpy_helper.to_array(t) for t in onnx_model.graph.initializer}
    total_bits = 0
    for name, array in init.items():
        if name.endswith(".codes"):
            out = init[name[: -len(".codes")] + ".scale"].size  # the weight's channels, not the all-ones one
            total_bits += array[:out].size * bits
        else:
            total_bits += array.size * array.itemsize * 8
    return (total_bits + 7) // 8


def export_bench_rows(run: Run, bits: str | list[int] = "1-8,32", reps: int = 10, warmup: int = 2,
                      threads: int | None = None) -> list[dict]:
    """Rows of results/bench.csv per bit-width: latency at batch 1 and 128 of the fake-quantized PyTorch model
    and of the onnxruntime exports (both kernels; best of ``reps``, taken in turns), what the exact shift term
    costs the integer kernel, and model size (weights packed at B bits, and as stored; PyTorch's float
    checkpoint for comparison)."""
    threads = threads or torch.get_num_threads()
    _, test = load_run_data(run.config)
    where = dict(method=run.config.method, run=config_hash(run.config), model=run.config.model.name,
                 width=run.config.model.width, threads=threads, device="cpu")
    buffer = io.BytesIO()
    torch.save(run.model(parse_bits(bits)[0]).state_dict(), buffer)
    rows = [row("export_size", len(buffer.getvalue()), "bytes", "PyTorch fake-quant checkpoint (float32 latent "
                "weights, every bit-width's BatchNorm)", runtime="PyTorch fake-quant", **where)]
    for b in parse_bits(bits):
        model = run.model(b)
        set_bits(model, b, run.config.model.activation_bits)
        exports = {"onnxruntime float": to_onnx(model, b, run.config.model.activation_bits)} if b == FULL_PRECISION else {
            f"onnxruntime {kernel}": to_onnx(model, b, run.config.model.activation_bits, kernel) for kernel in KERNELS}
        for name, onnx_model in exports.items():
            rows += [row("export_packed_size", packed_bytes(onnx_model, b), "bytes", "weights packed at the "
                         "bit-width", bits=b, runtime=name, **where),
                     row("export_size", len(onnx_model.SerializeToString()), "bytes", "ONNX file as stored", bits=b,
                         runtime=name, **where)]
        sessions = {name: session(onnx_model, threads) for name, onnx_model in exports.items()}
        if b != FULL_PRECISION:
            sessions["integer without shift"] = session(to_onnx(model, b, run.config.model.activation_bits, "integer",
                                                                shift=False), threads)
        for n in (1, 128):
            x = test.inputs(torch.arange(n) % len(test)).float().contiguous()
            feed = {"input": x.numpy()}
            variants = [Variant("PyTorch fake-quant", lambda x=x: model(x.to(memory_format=torch.channels_last)),
                                threads)]
            variants += [Variant(name, lambda s=s: s.run(["logits"], feed), threads) for name, s in sessions.items()]
            with torch.no_grad():
                t = best(time_interleaved(variants, reps, warmup))
            at = dict(bits=b, batch=n, repetitions=reps, **where)
            rows += [row("export_latency", t[name] * 1e3, "ms", "forward pass", runtime=name, **at)
                     for name in ["PyTorch fake-quant", *exports]]
            if b != FULL_PRECISION:
                rows.append(row("export_shift_cost", t["onnxruntime integer"] / t["integer without shift"], "x",
                                "onnxruntime integer kernel with the exact per-channel shift term over the same "
                                "without it", runtime="onnxruntime integer", **at))
    return rows


__all__ = ["KERNELS", "ActivationGrid", "IntegerWeight", "integer_weight", "to_onnx", "dequantized_weights", "session",
           "onnx_logits", "compare", "served_bits", "check_served", "export_run", "packed_bytes", "export_bench_rows",
           "ExportMismatchError"]
