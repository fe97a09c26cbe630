"""The configuration of a run: its parts, the methods as data, the profiles, and the run's hash.

A :class:`RunConfig` holds everything that changes a run's result, in parts read by name
(``config.optim.lr``, ``config.model.bits``, ``config.selection.fraction``): the data
(:class:`DataConfig`), the model and how it quantizes (:class:`ModelConfig` with its
:class:`~emqlib.quant.QuantSpec`), which samples each epoch trains on (the selection rule's own settings,
:mod:`emqlib.coreset.samplers`), the training rule (:class:`TrainingConfig`), the optimizer
(:class:`OptimConfig`) and what the run keeps (:class:`RecordConfig`). Each part validates itself; the
run checks that the parts fit together (a loop that cannot do what the teacher or the sampler asks is
rejected with one line). The methods are data (:data:`METHODS`: what Dedicated, joint and EMQ set), and
:func:`config_hash` names the run's folder in the cache. Things that do not change results (threads,
progress bars) are not in it.

Changes are given as keyword arguments: a part as a dict of its fields (merged into it) or as a whole,
the seed and the method by value; ``--set part.field=value`` on the command line is the same.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
from dataclasses import dataclass, field

from ..bits import FULL_PRECISION, check_bits, parse_bits
from ..bn import BN_MODES
from ..coreset.samplers import SAMPLERS, Settings, sampler_class, settings_for
from ..distill import TEACHERS
from ..quant import QuantSpec
from . import baselines  # noqa: F401 (registers the prior methods' selection rules by name)
from .datasets import DATASETS, check_noise_rate

SCHEMA_VERSION = 5  # bump when a change to the code makes old cached runs invalid
LOOPS = ("joint", "sequential", "batch")
BIT_ORDERS = ("descending", "ascending")
OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("constant", "cosine", "multistep", "linear")
MODEL_NAMES = ("resnet8", "resnet20", "resnet20-28px", "resnet18", "mobilenetv2", "vit")


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


def _integer(name: str, value, minimum: int = 1) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _number(name: str, value) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _flag(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def _set(obj, name: str, value) -> None:
    object.__setattr__(obj, name, value)  # the parts are frozen dataclasses that normalise their own values


@dataclass(frozen=True)
class DataConfig:
    """The data a run trains and is evaluated on (its reference run uses the same)."""

    dataset: str = "fashion-mnist"  # one of DATASETS
    train_per_class: int | None = None  # class-balanced training subset; None = all
    test_per_class: int | None = None  # class-balanced test subset; None = all
    validation_per_class: int | None = None  # training samples per class held out (before the training subset is drawn): the validation split choices are made on
    label_noise: float = 0.0  # symmetric label noise rate on the training set
    augment: bool = False  # random crop + horizontal flip

    def __post_init__(self) -> None:
        _choice("dataset", self.dataset, DATASETS)
        # plain int and float values, so that equal configurations have equal hashes (1 == 1.0 == np.int64(1))
        for name in ("train_per_class", "test_per_class", "validation_per_class"):
            if getattr(self, name) is not None:
                _set(self, name, _integer(name, getattr(self, name)))
        _set(self, "label_noise", check_noise_rate(self.label_noise))
        _flag("augment", self.augment)


@dataclass(frozen=True)
class ModelConfig:
    """The network, the bit-widths it trains and how its layers quantize."""

    name: str = "resnet8"  # one of MODEL_NAMES
    width: float = 1.0  # channel width multiplier
    bits: tuple[int, ...] = (32, 8, 4, 2)  # trained bit-widths (kept in descending order)
    activation_bits: int | None = None  # None: activations at the weight bit-width
    bn_mode: str = "shared"  # one BatchNorm for every bit-width (EMQ), or one per trained bit-width (switchable)
    quant: QuantSpec = QuantSpec(bias_correction=True, full_precision_activation="clamp")

    def __post_init__(self) -> None:
        _choice("model", self.name, MODEL_NAMES)
        _set(self, "width", _number("width", self.width))
        if not self.width > 0:
            raise ValueError(f"width must be positive, got {self.width!r}")
        _set(self, "bits", tuple(sorted(parse_bits(self.bits), reverse=True)))
        if self.activation_bits is not None:
            _set(self, "activation_bits", check_bits(self.activation_bits))
        _choice("bn_mode", self.bn_mode, BN_MODES)
        quant = self.quant if isinstance(self.quant, QuantSpec) else QuantSpec(**self.quant)
        # LSQ keeps a step per trained bit-width (the model's bits); it quantizes the plain weight
        _set(self, "quant", dataclasses.replace(quant, bits=self.bits))


@dataclass(frozen=True)
class TrainingConfig:
    """How the bit-widths are trained: the loop, the teacher, and the full-precision reference run."""

    loop: str = "joint"  # joint (every bit-width on each batch), sequential (bit-width by bit-width), batch
    teacher: str = "recursive"  # none, recursive (next-higher bit-width), fp-child (the 32-bit path), reference
    label_weight: float = 0.0  # weight of the label cross-entropy beside the teacher's targets
    bit_order: str = "descending"  # order of the bit-widths in the sequential loop
    reference_epochs: int = 3  # epochs of the full-precision reference run (teacher, early model, trajectory)
    init_from_reference: bool = False  # start from the reference run's weights

    def __post_init__(self) -> None:
        _choice("loop", self.loop, LOOPS)
        _choice("teacher", self.teacher, TEACHERS)
        _choice("bit_order", self.bit_order, BIT_ORDERS)
        _set(self, "label_weight", _number("label_weight", self.label_weight))
        if self.label_weight < 0:
            raise ValueError(f"label_weight must be >= 0, got {self.label_weight!r}")
        _set(self, "reference_epochs", _integer("reference_epochs", self.reference_epochs))
        _flag("init_from_reference", self.init_from_reference)
        if self.teacher == "none" and self.label_weight <= 0:
            raise ValueError("with no teacher the label loss is the only loss; label_weight must be > 0")
        if self.teacher == "recursive" and self.loop == "sequential":
            raise ValueError("teacher 'recursive' needs every bit-width on each batch: loop 'joint' or 'batch'")
        if self.loop == "batch" and self.teacher not in ("recursive", "none"):
            raise ValueError("the batch loop distils recursively or not at all: teacher 'recursive' or 'none'")


@dataclass(frozen=True)
class OptimConfig:
    """The optimizer and its learning-rate schedule."""

    epochs: int = 5  # training epochs
    batch_size: int = 128  # samples per optimizer step
    optimizer: str = "adam"  # adam or sgd
    lr: float = 1e-3  # peak learning rate
    weight_decay: float = 0.0  # L2 penalty on the convolution weights
    momentum: float = 0.9  # SGD only (Nesterov)
    lr_schedule: str = "cosine"  # constant, cosine, multistep or linear
    milestones: tuple[int, ...] = ()  # multistep: epochs where the learning rate is multiplied by 0.1

    def __post_init__(self) -> None:
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        for name in ("epochs", "batch_size"):
            _set(self, name, _integer(name, getattr(self, name)))
        for name in ("lr", "weight_decay", "momentum"):
            _set(self, name, _number(name, getattr(self, name)))
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        milestones = tuple(_integer("milestones", m) for m in self.milestones)
        if list(milestones) != sorted(set(milestones)):
            raise ValueError(f"milestones must be increasing epochs, got {self.milestones!r}")
        _set(self, "milestones", milestones)


@dataclass(frozen=True)
class RecordConfig:
    """What a run measures and keeps besides its final weights."""

    eval_every: int = 1  # test accuracy every k-th epoch (and always after the last one)
    validate: bool = False  # also the accuracy on the validation split (data.validation_per_class) at those epochs
    snapshot_every: int = 0  # keep the model weights of every k-th epoch (0: none)
    record_trajectory: bool = False  # store per-sample training softmax outputs of each epoch

    def __post_init__(self) -> None:
        _set(self, "eval_every", _integer("eval_every", self.eval_every))
        _set(self, "snapshot_every", _integer("snapshot_every", self.snapshot_every, minimum=0))
        _flag("record_trajectory", self.record_trajectory)
        _flag("validate", self.validate)


PARTS = {"data": DataConfig, "model": ModelConfig, "selection": Settings, "training": TrainingConfig,
         "optim": OptimConfig, "record": RecordConfig}

# What each method sets; every other field keeps its default. EMQ: one BatchNorm shared by every bit-width
# with weight bias correction (a clamp at 32 bits as well: one shared BatchNorm cannot serve ReLU and
# clamped children at once), trained jointly with recursive distillation; joint (Any-Precision): switchable
# BatchNorm, no correction; Dedicated: one model per bit-width, each trained alone on the labels.
METHODS = {
    "emq": dict(model=dict(bn_mode="shared", quant=QuantSpec(bias_correction=True, full_precision_activation="clamp")),
                training=dict(loop="joint", teacher="recursive", label_weight=0.0)),
    "joint": dict(model=dict(bn_mode="switchable", quant=QuantSpec()),
                  training=dict(loop="joint", teacher="recursive", label_weight=0.0)),
    "dedicated": dict(model=dict(bn_mode="switchable", quant=QuantSpec()),
                      training=dict(loop="sequential", teacher="none", label_weight=1.0)),
}

# What EMQ's bit-wise coreset changes in its training (docs/method.md §6.2): each bit-width in turn on its own
# subset, distilling from the model's 32-bit child, with the labels beside it.
BITWISE_TRAINING = dict(loop="sequential", teacher="fp-child", label_weight=1.0)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run (see the module docstring). The defaults are EMQ at 2/4/8/32 bits
    on all of Fashion-MNIST with a ResNet-8 for 5 epochs; :func:`method_config` starts from a method,
    :func:`profile_config` from a profile's data size and schedule."""

    method: str = "emq"  # dedicated (one model per bit-width), joint (Any-Precision) or emq: the method it started from
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    selection: Settings = field(default_factory=lambda: settings_for("none"))  # the samples each epoch trains on
    training: TrainingConfig = TrainingConfig()
    optim: OptimConfig = OptimConfig()
    record: RecordConfig = RecordConfig()
    seed: int = 0  # seed of the model's initialisation and of every epoch's random draws

    def __post_init__(self) -> None:
        _choice("method", self.method, METHODS)
        _set(self, "seed", _integer("seed", self.seed, minimum=0))
        for name, cls in PARTS.items():
            if not isinstance(getattr(self, name), cls):
                raise TypeError(f"{name} must be a {cls.__name__}, got {getattr(self, name)!r}")
        self._check_parts_fit()

    def _check_parts_fit(self) -> None:
        loop, teacher, rule = self.training.loop, self.training.teacher, self.selection.rule
        if rule == "none" and self.selection.fraction != 1.0:
            raise ValueError("selection rule 'none' trains on every sample; a fraction below 1 needs a selection rule "
                             "(selection.rule, or --coreset RULE on the command line)")
        if self.method == "dedicated" and (loop != "sequential" or teacher == "recursive"):
            raise ValueError("Dedicated trains each bit-width alone: loop 'sequential', teacher 'none' or 'reference'")
        if teacher == "fp-child" and FULL_PRECISION not in self.model.bits:
            raise ValueError("teacher 'fp-child' needs 32 among the bits")
        if loop == "joint" and rule != "none":
            raise ValueError(f"selection rule {rule!r} gives each bit-width its own samples; the joint loop runs "
                             "every bit-width on the same batch: set training loop 'sequential' (or 'batch')")
        if (rule == "infobatch" or getattr(self.selection, "free_scores", False)) and loop != "sequential":
            raise ValueError(f"{rule} reads each sample's training loss in the bit-wise loop; set training loop "
                             "'sequential'")
        if self.record.validate and self.data.validation_per_class is None:
            raise ValueError("record.validate measures the validation split, and data.validation_per_class holds none "
                             "out: set data.validation_per_class, or record.validate=false")

    @property
    def needs_reference(self) -> bool:
        """Whether the run uses a full-precision reference run (teacher, early model, trajectory)."""
        return (sampler_class(self.selection.rule).needs_reference or self.training.init_from_reference
                or self.training.teacher == "reference")

    def replace(self, **changes) -> RunConfig:
        """A copy with ``changes``: ``method`` and ``seed`` by value; a part as a dict of its fields (merged
        into the part: ``optim={"epochs": 30}``; ``model={"quant": {...}}`` merges into the quantizer spec;
        ``selection={"rule": "random", "fraction": 0.2}`` starts from that rule's defaults when the rule
        changes) or as a whole part."""
        unknown = set(changes) - set(PARTS) - {"method", "seed"}
        if unknown:
            raise ValueError(f"unknown configuration fields {sorted(unknown)}; the parts are {list(PARTS)}, "
                             "besides method and seed")
        values = {name: getattr(self, name) for name in ("method", "seed", *PARTS)}
        for name, change in changes.items():
            values[name] = _merged(name, values[name], change) if isinstance(change, dict) else change
        return RunConfig(**values)

    def to_dict(self) -> dict:
        """Every field, nested by part (the form of a run's config.json)."""
        out = {"method": self.method, "seed": self.seed}
        for name in PARTS:
            part = dataclasses.asdict(getattr(self, name))
            if name == "model":
                part["quant"].pop("bits")  # mirrors the model's bits
            out[name] = _jsonable(part)
        return out

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        """The configuration of :meth:`to_dict`'s dictionary (a run's config.json)."""
        return RunConfig().replace(**{k: (_tuples(v) if isinstance(v, dict) else v) for k, v in values.items()})


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return list(value) if isinstance(value, tuple) else value


def _tuples(value):
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return tuple(value) if isinstance(value, list) else value


def _merged(name: str, part, change: dict):
    """``part`` with the fields of ``change`` (a dict); nested dicts merge into nested parts."""
    if name == "selection":
        rule = change.get("rule", part.rule)
        base = {} if rule != part.rule else {f.name: getattr(part, f.name) for f in dataclasses.fields(part)}
        return settings_for(rule, **{k: v for k, v in {**base, **change}.items() if k != "rule"})
    known = {f.name for f in dataclasses.fields(part)}
    unknown = set(change) - known
    if unknown:
        raise ValueError(f"{name} has no fields {sorted(unknown)}; its fields: {sorted(known)}")
    fields_ = {}
    for key, value in change.items():
        current = getattr(part, key)
        fields_[key] = _merged(f"{name}.{key}", current, value) if isinstance(value, dict) and \
            dataclasses.is_dataclass(current) else value
    return dataclasses.replace(part, **fields_)


def method_config(method: str, **changes) -> RunConfig:
    """The run configuration of ``method`` (a key of :data:`METHODS`) with ``changes`` (as
    :meth:`RunConfig.replace` takes them)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    return RunConfig().replace(method=method, **METHODS[method]).replace(**changes)


def config_hash(config: RunConfig) -> str:
    """A short, stable hash of every field (and the schema version): the run's cache key."""
    payload = json.dumps({"schema": SCHEMA_VERSION, **config.to_dict()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def reference_config(config: RunConfig) -> RunConfig:
    """The full-precision run that serves ``config`` as teacher, early model and trajectory source: the same
    data, model and optimizer, trained as a dedicated 32-bit model for ``reference_epochs`` on a constant
    learning rate, recording its trajectory and every epoch's weights."""
    quant = QuantSpec(full_precision_weight=config.model.quant.full_precision_weight,
                      full_precision_activation=config.model.quant.full_precision_activation)
    return method_config("dedicated", data=config.data, seed=config.seed,
                         model=dict(name=config.model.name, width=config.model.width, bits=(FULL_PRECISION,),
                                    bn_mode=config.model.bn_mode, quant=quant),
                         optim=dataclasses.replace(config.optim, epochs=config.training.reference_epochs,
                                                   lr_schedule="constant", milestones=()),
                         record=RecordConfig(eval_every=config.training.reference_epochs, snapshot_every=1,
                                             record_trajectory=True))


# ---------------------------------------------------------------- profiles

# Every profile holds out a validation split of its training data (choices are made on it, never on the test set),
# drawn before the training subset, so that every run of a profile trains on the same images; every run of the
# full schedule is evaluated on both, so that a choice made on validation can be checked against the test set.
PROFILES = {
    # seconds per run: tests and CI
    "smoke": dict(data=dict(dataset="synthetic", validation_per_class=8), model=dict(width=0.5),
                  optim=dict(epochs=2, batch_size=32), training=dict(reference_epochs=3),
                  record=dict(snapshot_every=1, validate=True)),
    # Fashion-MNIST on 2 CPU cores, trained to near convergence (results/convergence.csv checks it per bit-width);
    # 600 images per class (a probe at 500 failed that check; 800 cost a third more per epoch)
    "cpu": dict(data=dict(train_per_class=600, validation_per_class=500), optim=dict(epochs=15, batch_size=128),
                training=dict(reference_epochs=5), record=dict(eval_every=15, validate=True)),
    # the CIFAR-10 recipe of Any-Precision (docs/method.md §11), for a GPU; 500 images per class (10% of the
    # training set) held out for validation
    "paper": dict(data=dict(dataset="cifar10", augment=True, validation_per_class=500),
                  model=dict(name="resnet20", width=5.0, bits=(1, 2, 4, 8, 32)),
                  optim=dict(epochs=200, batch_size=128, optimizer="adam", lr=1e-3, lr_schedule="multistep",
                             milestones=(100, 150, 180)),
                  training=dict(reference_epochs=5), record=dict(snapshot_every=20, validate=True)),
}
# the reselection interval R (and warm-up W) of every selection rule that has one, by profile
PROFILE_RESELECT = {"smoke": 1, "cpu": 2, "paper": 10}

# Claims about pruning or cost need training to convergence (a pruned sample costs accuracy far from it, whatever
# the selection); claims that hold at any point of training (shared BN, alignment, gradient angles, label noise,
# score extraction) use this shorter schedule where a profile has one, at a third of the cost. No choice is made on
# its runs (choices are made where the claims they serve are graded: on the full schedule), so they are evaluated on
# the test set only: a third less evaluation.
SHORT_SCHEDULES = {"cpu": dict(optim=dict(epochs=6), record=dict(eval_every=6, snapshot_every=1, validate=False))}

# what each profile is for, and how far its numbers can be compared with the papers'
PROFILE_PURPOSES = {
    "smoke": "Synthetic 16x16 images, seconds per run: for tests; its numbers show that the code runs, not "
             "what the method does.",
    "cpu": "Fashion-MNIST on 2 CPU cores. Its numbers are not comparable in absolute value with the papers' CIFAR "
           "numbers; what carries over is the comparison between methods.",
    "paper": "The CIFAR-10 recipe of Any-Precision (docs/method.md §11), for a GPU: the papers' setting.",
}


def coreset(profile: str, rule: str, fraction: float = 1.0, **settings) -> Settings:
    """The settings of selection rule ``rule`` at ``fraction`` for ``profile``: its reselection interval and
    warm-up (where the rule has them) are the profile's unless ``settings`` give them."""
    names = {f.name for f in dataclasses.fields(sampler_class(rule).Settings)}
    defaults = {name: PROFILE_RESELECT[profile] for name in ("reselect_every", "warmup_epochs") if name in names}
    return settings_for(rule, fraction=fraction, **{**defaults, **settings})


def profile_config(profile: str, method: str = "emq", short: bool = False, **changes) -> RunConfig:
    """The run configuration of ``method`` at ``profile`` with ``changes`` (as :meth:`RunConfig.replace` takes
    them); with ``short``, on the profile's short schedule (:data:`SHORT_SCHEDULES`; the full one where it has
    none). A ``selection`` given as a dict with a ``rule`` gets the profile's reselection interval."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {list(PROFILES)}")
    config = method_config(method).replace(**PROFILES[profile])
    if short:
        config = config.replace(**SHORT_SCHEDULES.get(profile, {}))
    selection = changes.pop("selection", None)
    if isinstance(selection, dict) and "rule" in selection:
        selection = coreset(profile, **selection)
    return config.replace(**changes, **({} if selection is None else {"selection": selection}))


def describe_profile(profile: str, purpose: bool = False, short: bool = False) -> str:
    """A one-line description of what a profile trains (with ``short``, on its short schedule); with
    ``purpose``, followed by what the profile is for and how its numbers compare with the papers'."""
    c = profile_config(profile, short=short)
    size = f"{c.data.train_per_class}/class" if c.data.train_per_class else "full train set"
    line = (f"{profile} profile: {c.data.dataset}, {c.model.name} x{c.model.width:g}, bits "
            f"{'/'.join(map(str, c.model.bits))}, {size}, {c.optim.epochs} epochs"
            + (" (short schedule)" if short and profile in SHORT_SCHEDULES else ""))
    return f"{line}\n{PROFILE_PURPOSES[profile]}" if purpose else line


def set_field(config: RunConfig, path: str, value) -> RunConfig:
    """``config`` with the field at the dotted ``path`` (``optim.lr``, ``model.quant.bias_correction``,
    ``selection.fraction``, ``seed``) set to ``value``; an unknown path raises a ValueError that lists the choices."""
    return set_fields(config, {path: value})


def set_fields(config: RunConfig, values: dict) -> RunConfig:
    """``config`` with the fields at the dotted paths of ``values`` set in one change, so that fields that are
    only valid together (``training.teacher='none'`` with ``training.label_weight=1``) can be given in any order."""
    changes: dict = {}
    for path, value in values.items():
        field_type(path)  # an unknown path lists the choices
        *parents, name = path.split(".")
        node = changes
        for key in parents:
            node = node.setdefault(key, {})
        node[name] = value
    return config.replace(**changes)


def field_type(path: str):
    """The annotated type of the configuration field at the dotted ``path`` (for parsing text)."""
    import typing

    keys = path.split(".")
    cls = RunConfig
    for key in keys:
        if cls is Settings:  # a rule's settings: every rule's fields
            hints = {}
            for sampler in SAMPLERS.values():
                hints.update(typing.get_type_hints(sampler.Settings))
        else:
            hints = typing.get_type_hints(cls)
        if key not in hints:
            raise ValueError(f"unknown configuration field {path!r}: {key!r} is not one of {sorted(hints)}")
        cls = hints[key]
    return cls
