"""Command line: ``python -m emqlib train|eval|export|download``.

  python -m emqlib train --profile cpu --method emq --bits 2,4,8,32 [--set optim.lr=0.002] [--out DIR]
  python -m emqlib eval RUN --bits 1-8,32 [--recalibrate]
  python -m emqlib export RUN --bits 4 --out model-4bit.onnx [--force]   (integer ONNX for onnxruntime)
  torchrun --nproc_per_node 2 -m emqlib train --profile smoke ...   (DistributedDataParallel)

Bad input, a damaged file, a file-system or network failure end with a one-line
``error: ...`` that names the path and says what to do, and exit status 2 (130 for Ctrl-C).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import typing
from pathlib import Path

from . import errors
from ..bits import parse_bits
from .config import BITWISE_TRAINING, RunConfig, config_hash, coreset, field_type, profile_config, set_fields
from .storage import CorruptFileError

# settings with a flag of their own (flag -> dotted field); any other field goes through --set PART.FIELD=VALUE
_FLAGS = {"fraction": ("selection.fraction", float), "reselect_every": ("selection.reselect_every", int),
          "epochs": ("optim.epochs", int), "seed": ("seed", int), "label_noise": ("data.label_noise", float)}


def _field_value(path: str, text: str):
    """Parse ``text`` as the value of the configuration field at the dotted ``path``."""
    hint = field_type(path)
    if dataclasses.is_dataclass(hint):
        raise ValueError(f"{path} is a part of the configuration; set its fields: --set {path}.FIELD=VALUE")
    kinds = typing.get_args(hint) or (hint,)
    if text.lower() == "none" and type(None) in kinds:
        return None
    if typing.get_origin(hint) is tuple or tuple in kinds:
        return tuple(parse_bits(text)) if path.endswith("bits") else tuple(int(v) for v in text.split(",") if v)
    for kind in kinds:
        if kind is bool:
            if text.lower() in ("true", "1", "yes"):
                return True
            if text.lower() in ("false", "0", "no"):
                return False
            raise ValueError(f"{path} must be true or false, got {text!r}")
        if kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                raise ValueError(f"{path} must be a number ({kind.__name__}), got {text!r}") from None
    return text


def build_config(args: argparse.Namespace) -> RunConfig:
    """The run configuration of the command line: the method at the profile, then ``--coreset`` (the rule's
    settings at the profile, and EMQ's bit-wise loop for a joint method), the flags and ``--set``s, all applied
    together. A field given twice (``--epochs`` and ``--set optim.epochs=``, or ``--set`` twice) is an error,
    not silently resolved."""
    config = profile_config(args.profile, args.method)
    changes = {path: kind(getattr(args, name)) for name, (path, kind) in _FLAGS.items() if getattr(args, name) is not None}
    if args.bits is not None:
        changes["model.bits"] = tuple(parse_bits(args.bits))
    if args.static:
        changes["selection.static"] = True
    if args.coreset is not None:
        changes["selection.rule"] = args.coreset
    for item in args.set or []:
        path, sep, value = item.partition("=")
        path = path.strip()
        if not sep:
            raise ValueError(f"--set takes PART.FIELD=VALUE (e.g. optim.lr=0.002), got {item!r}")
        if path == "method":
            raise ValueError("give the method with --method (it brings the method's settings), not with --set")
        if path in changes:
            raise ValueError(f"{path} is given twice (as a flag and with --set, or with --set twice); give it once")
        changes[path] = _field_value(path, value.strip())
    if args.coreset is not None:  # the rule's settings together: a rule may refuse its default fraction of 1
        settings = {path.partition(".")[2]: changes.pop(path)
                    for path in list(changes) if path.startswith("selection.")}
        bitwise = {f"training.{k}": v for k, v in BITWISE_TRAINING.items()} if config.training.loop == "joint" else {}
        changes = {**bitwise, **changes, "selection": coreset(args.profile, **settings)}
    return set_fields(config, changes)


def _train(args: argparse.Namespace) -> None:
    from .build import Runtime
    from .runs import get_run

    config = build_config(args)
    runtime = Runtime(threads=args.threads, channels_last=not args.no_channels_last)
    if args.no_progress:  # otherwise Runtime's default: on unless EMQ_PROGRESS=0
        runtime.progress = False
    if args.compile is not None:  # otherwise Runtime's default: $EMQ_COMPILE, or on CUDA only
        runtime.compile = args.compile
    runtime.compiles()  # a bad $EMQ_COMPILE is an input error: found before anything is written
    if args.out is not None and not args.out.strip():
        raise ValueError("--out is empty; give the run folder, or leave --out out to use the run cache")
    out = Path(args.out) if args.out is not None else None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from .distributed import train_distributed

        train_distributed(config, runtime, out)
        return
    run = get_run(config, runtime, path=out)
    print(f"run {config_hash(config)} in {run.path}")
    print(run.final_metrics()[["bits", "test_accuracy", "sample_passes"]].to_string(index=False))


def _eval(args: argparse.Namespace) -> None:
    from .runs import load_run

    run = load_run(args.run)
    frame = run.evaluate(args.bits, recalibrate=args.recalibrate)
    print(frame.to_string(index=False))


def _export(args: argparse.Namespace) -> None:
    from .export import export_run

    if not args.out.strip():
        raise ValueError("--out is empty; give the .onnx file to write")
    bits = parse_bits(args.bits)
    if len(bits) != 1:
        raise ValueError(f"export takes one bit-width, got {args.bits!r}; run it once per bit-width")
    result = export_run(args.run, bits[0], args.out, force=args.force, allow_low_accuracy=args.allow_low_accuracy,
                        kernel=args.kernel)
    print(f"wrote {result['path']} ({result['bytes']} bytes): {bits[0]}-bit test accuracy "
          f"{result['export_accuracy']:.2f}% with onnxruntime, {result['fake_quant_accuracy']:.2f}% fake-quantized "
          f"(largest logit difference {result['max_logit_difference']:.2g})")


def _download(args: argparse.Namespace) -> None:
    from .datasets import load_dataset

    os.environ["EMQ_DOWNLOAD"] = "1"
    for train in (True, False):
        print(f"{args.dataset} {'train' if train else 'test'}: {len(load_dataset(args.dataset, train))} images")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m emqlib", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train (or reuse from the run cache) one configuration")
    train.add_argument("--profile", default="cpu", help="smoke, cpu or paper")
    train.add_argument("--method", default="emq", help="dedicated, joint or emq")
    train.add_argument("--bits", help="trained bit-widths, e.g. 2,4,8,32")
    train.add_argument("--coreset", metavar="RULE", help="each bit-width trains on its own subset chosen by RULE "
                       "(EMQ's bit-wise loop for joint methods: sequential, distilling from the 32-bit child)")
    for name, (path, kind) in _FLAGS.items():
        train.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, help=f"sets {path}")
    train.add_argument("--static", action="store_true", help="select coresets once instead of every R epochs")
    train.add_argument("--set", action="append", metavar="PART.FIELD=VALUE",
                       help="any other field of the run configuration, e.g. optim.lr=0.002, training.teacher=none, "
                            "selection.tau=0.5 (parts: data, model, selection, training, optim, record)")
    train.add_argument("--out", help="run folder (default: runs/<config-hash>)")
    train.add_argument("--threads", type=_positive_int, help="torch threads (default: torch's choice)")
    train.add_argument("--no-progress", action="store_true")
    train.add_argument("--no-channels-last", action="store_true", help="NCHW tensors instead of the faster NHWC")
    train.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                       help="torch.compile the model (faster steps, slow start; default: on CUDA only)")
    train.set_defaults(func=_train)
    evaluate = sub.add_parser("eval", help="test accuracy of a finished run at any bit-widths")
    evaluate.add_argument("run", help="run folder or hash")
    evaluate.add_argument("--bits", default="1-8,32")
    evaluate.add_argument("--recalibrate", action="store_true", help="re-estimate BatchNorm statistics per bit-width")
    evaluate.set_defaults(func=_eval)
    export = sub.add_parser("export", help="write a finished run at one bit-width as an integer ONNX model")
    export.add_argument("run", help="run folder or hash")
    export.add_argument("--bits", required=True, help="one bit-width: 1..8 or 32")
    export.add_argument("--out", required=True, help="the .onnx file to write")
    export.add_argument("--force", action="store_true", help="overwrite an existing --out")
    export.add_argument("--kernel", choices=["qdq", "integer"], default="qdq",
                        help="quantized convs as DequantizeLinear + float Conv (fast), or ConvInteger (int32 sums)")
    export.add_argument("--allow-low-accuracy", action="store_true",
                        help="export a bit-width that the run serves poorly (see the error's accuracies)")
    export.set_defaults(func=_export)
    download = sub.add_parser("download", help="download a data set (needs internet)")
    download.add_argument("dataset", choices=["fashion-mnist", "cifar10", "cifar100"])
    download.set_defaults(func=_download)
    return p


# what running a command again saves, by command (the others start over)
_AGAIN = {"train": "training resumes from its last checkpoint"}
FOLDERS = "--out, or EMQ_RUNS_DIR for the run cache"  # the options that choose where a command writes


def _again(command: str | None) -> str:
    """" (what running ``command`` again saves)", or nothing for a command that starts over."""
    return f" ({_AGAIN[command]})" if command in _AGAIN else ""


def error_line(error: BaseException, command: str | None = None) -> str:
    """The one line ``main`` prints for ``error`` raised by ``command`` (train, eval, export, download):
    :func:`emqlib.harness.errors.error_line` with this command line's folder options."""
    return errors.error_line(error, FOLDERS, _again(command))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from .runs import IncompatibleRunError
    from .trainer import RunStoppedError

    # a path is bytes on Linux: one that is not UTF-8 (held as surrogates) is printed as its bytes, not refused
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    try:
        args.func(args)
    except KeyboardInterrupt:
        print(f"error: interrupted; run the same command again{_again(args.command)}", file=sys.stderr)
        return 130
    except (ValueError, OSError, IncompatibleRunError, CorruptFileError, RunStoppedError) as error:
        print(error_line(error, args.command), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
