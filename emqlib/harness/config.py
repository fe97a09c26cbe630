"""One configuration object from which every run is built, its hash, and the run profiles.

:class:`RunConfig` holds everything that changes a run's result, in parts (:class:`DataConfig`,
:class:`~emqlib.quant.QuantSpec`, :class:`CoresetConfig`, :class:`OptimConfig`) next to the model,
the training rule and the seed; every name is also read and set flat (``config.epochs``), through
the part that owns it (:data:`FIELD_PARTS`). It is validated on construction, options left as
``None`` are derived from the method, and :func:`config_hash` names the run's folder in the cache.
Things that do not change results (threads, progress bars) are not in it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
from dataclasses import dataclass

from ..bits import FULL_PRECISION, check_bits, parse_bits
from ..bn import BN_MODES
from ..correction import CORRECTION_MODES
from ..coreset import BETA_SCHEDULES, check_fraction
from ..data import DATASETS, check_noise_rate
from ..distill import DISTILLATION, default_distillation
from ..quant import FULL_PRECISION_ACTIVATIONS, FULL_PRECISION_WEIGHTS, WEIGHT_QUANTIZERS, QuantSpec

SCHEMA_VERSION = 2  # bump when a change to the code makes old cached runs invalid
METHODS = ("dedicated", "joint", "emq")
CORESETS = ("none", "random", "random-once", "acs", "emq-topk", "emq-sample", "emq-ccs", "infobatch", "el2n",
            "forgetting", "tdds", "kcenter", "moderate", "split")
# scored at each bit-width with the model being trained, after a warm-up on random subsets
EMQ_SAMPLERS = ("emq-topk", "emq-sample", "emq-ccs")
CORESET_TRAINING = ("sequential", "batch")
EMQ_SCORES = ("el2n", "grand")
BIT_ORDERS = ("descending", "ascending")
OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("constant", "cosine", "multistep", "linear")
MODEL_NAMES = ("resnet8", "resnet20", "resnet18", "mobilenetv2", "vit")
# coreset methods whose scores come from the full-precision reference run
REFERENCE_CORESETS = ("acs", "el2n", "forgetting", "tdds", "kcenter", "moderate")


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _is_run_hash(value) -> bool:
    return isinstance(value, str) and len(value) == 16 and set(value) <= set("0123456789abcdef")


def _number(name: str, value) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _set(obj, name: str, value) -> None:
    object.__setattr__(obj, name, value)  # the parts are frozen dataclasses that normalise their own values


def _check_flags(obj, *names: str) -> None:
    for name in names:
        if not isinstance(getattr(obj, name), bool):
            raise ValueError(f"{name} must be True or False, got {getattr(obj, name)!r}")


@dataclass(frozen=True)
class DataConfig:
    """The data a run trains and is evaluated on (its reference run uses the same)."""

    dataset: str = "fashion-mnist"  # one of DATASETS
    train_per_class: int | None = None  # class-balanced training subset; None = all
    test_per_class: int | None = None  # class-balanced test subset; None = all
    validation_per_class: int | None = None  # held-out training samples per class, evaluated on instead of the test set
    label_noise: float = 0.0  # symmetric label noise rate on the training set
    augment: bool = False  # random crop + horizontal flip

    def __post_init__(self) -> None:
        _choice("dataset", self.dataset, DATASETS)
        # plain int and float values, so that equal configurations have equal hashes (1 == 1.0 == np.int64(1))
        for name in ("train_per_class", "test_per_class", "validation_per_class"):
            if getattr(self, name) is not None:
                _set(self, name, _positive_int(name, getattr(self, name)))
        _set(self, "label_noise", check_noise_rate(self.label_noise))
        _check_flags(self, "augment")
        if self.validation_per_class is not None and self.test_per_class is not None:
            raise ValueError("validation_per_class replaces the test set by held-out training samples; "
                             "leave test_per_class at None")


@dataclass(frozen=True)
class CoresetConfig:
    """Which training samples each epoch uses: the coreset rule, its budget and its knobs."""

    coreset: str = "none"  # selection rule, one of CORESETS; none trains on every sample
    fraction: float = 1.0  # kept fraction S = 1 - pruning rate
    reselect_every: int = 10  # R: epochs between reselections
    static: bool = False  # select (emq-*: score) once instead of every R epochs
    warmup_epochs: int | None = None  # W: emq-* epochs on random subsets before scoring; None: R (0 from the reference)
    free_scores: bool = False  # emq-*: EL2N from each sample's own training pass, no scoring forwards
    sample_tau: float = 1.0  # emq-sample: probability proportional to score^tau
    sample_uniform_share: float = 0.1  # emq-sample: epsilon, share of the probability spread uniformly
    ccs_hard_share: float = 0.1  # emq-ccs: beta, share of the hardest samples dropped per class
    ccs_strata: int = 50  # emq-ccs: k equal-width score strata (CCS's default)
    infobatch_prune_prob: float = 0.5  # infobatch: r, drop probability of a sample below the mean loss
    infobatch_anneal: float = 0.875  # infobatch: delta, prune only in epochs t < delta * epochs
    coreset_training: str = "sequential"  # sequential bit-wise, or batch score extraction (docs/method.md §6.3, §6.4)
    emq_score: str = "el2n"  # EMQ's per-bit importance score (docs/method.md §6.1)
    acs_schedule: str = "cosine"  # beta(t) of ACS (docs/method.md §7.2)
    replay_from: str | None = None  # hash of a finished run whose recorded subsets are trained on instead of selecting

    def __post_init__(self) -> None:
        _choice("coreset", self.coreset, CORESETS)
        _choice("coreset_training", self.coreset_training, CORESET_TRAINING)
        _choice("emq_score", self.emq_score, EMQ_SCORES)
        _choice("acs_schedule", self.acs_schedule, BETA_SCHEDULES)
        if self.replay_from is not None and not _is_run_hash(self.replay_from):
            raise ValueError(f"replay_from must be a run's 16-character hash (its folder name), got {self.replay_from!r}")
        for name in ("reselect_every", "ccs_strata"):
            _set(self, name, _positive_int(name, getattr(self, name)))
        for name in ("sample_tau", "sample_uniform_share", "ccs_hard_share", "infobatch_prune_prob", "infobatch_anneal"):
            _set(self, name, _number(name, getattr(self, name)))
        _set(self, "fraction", check_fraction(self.fraction))
        _check_flags(self, "static", "free_scores")
        if self.coreset == "none" and self.fraction != 1.0:
            raise ValueError("fraction < 1 needs a coreset method; set coreset (e.g. 'random') or fraction=1.0")
        if self.coreset == "infobatch" and self.fraction != 1.0:
            raise ValueError("infobatch keeps a share set by infobatch_prune_prob and the losses, not by fraction; "
                             "leave fraction at 1.0")
        if self.replay_from is not None and self.coreset in ("none", "infobatch"):
            raise ValueError("replay_from replays the subsets of a coreset run; set coreset and fraction to that run's")
        # random at 1.0 is every sample in the coreset runs' bit-wise loop (the equal-budget baseline of that loop)
        if self.coreset not in ("none", "infobatch", "random") and self.fraction == 1.0:
            raise ValueError(f"coreset {self.coreset!r} with fraction 1.0 keeps every sample; give a fraction below 1")
        if self.warmup_epochs is None:
            _set(self, "warmup_epochs", self.reselect_every)
        _set(self, "warmup_epochs", _positive_int("warmup_epochs", self.warmup_epochs, minimum=0))
        self._check_sampler_knobs()

    def _check_sampler_knobs(self) -> None:
        if self.coreset == "random" and self.static:
            raise ValueError("coreset 'random' is re-drawn every epoch; for one draw use coreset='random-once'")
        if self.sample_tau < 0 or not 0 <= self.sample_uniform_share <= 1:
            raise ValueError(f"sample_tau must be >= 0 and sample_uniform_share in [0, 1], "
                             f"got {self.sample_tau!r} and {self.sample_uniform_share!r}")
        if not 0 <= self.ccs_hard_share < 1:
            raise ValueError(f"ccs_hard_share must be in [0, 1), got {self.ccs_hard_share!r}")
        if not 0 < self.infobatch_prune_prob < 1 or not 0 <= self.infobatch_anneal <= 1:
            raise ValueError(f"infobatch_prune_prob must be in (0, 1) and infobatch_anneal in [0, 1], "
                             f"got {self.infobatch_prune_prob!r} and {self.infobatch_anneal!r}")
        if self.free_scores:
            if self.coreset not in EMQ_SAMPLERS:
                raise ValueError(f"free_scores applies to {', '.join(EMQ_SAMPLERS)} (infobatch always uses the "
                                 f"training pass's loss), not to coreset {self.coreset!r}")
            if self.emq_score != "el2n":
                raise ValueError("free_scores take EL2N from the training pass's outputs; set emq_score='el2n'")
            if self.warmup_epochs < 1:
                raise ValueError("free_scores need training passes before the first scoring; set warmup_epochs >= 1")


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
            _set(self, name, _positive_int(name, getattr(self, name)))
        for name in ("lr", "weight_decay", "momentum"):
            _set(self, name, _number(name, getattr(self, name)))
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        milestones = tuple(_positive_int("milestones", m) for m in self.milestones)
        if list(milestones) != sorted(set(milestones)):
            raise ValueError(f"milestones must be increasing epochs, got {self.milestones!r}")
        _set(self, "milestones", milestones)


# the parts of a RunConfig, by the attribute that holds each
PARTS = {"data": DataConfig, "quant": QuantSpec, "selection": CoresetConfig, "optim": OptimConfig}
# options that, left as None, are derived from the method, the coreset rule or the reference run (each field's
# comment says how), and derived again by RunConfig.replace unless they were set
DERIVED_FIELDS = ("bn_mode", "bias_correction", "full_precision_activation", "distillation", "warmup_epochs")


@dataclass(frozen=True, init=False)
class RunConfig:
    """Everything that determines a run, in parts: ``data``, ``quant``, ``selection`` (the coreset) and
    ``optim``, next to the model, the training rule, the seed and what the run stores.

    It is built and read by flat names, each owned by one part (:data:`FIELD_PARTS`):
    ``RunConfig(epochs=3)`` sets ``optim.epochs`` and ``config.epochs`` reads it (as does
    ``config.optim.epochs``); whole parts work too (``RunConfig(data=DataConfig(...))``). Options left
    as None (:data:`DERIVED_FIELDS`) are derived, and everything is validated once, by the part that
    owns it. The defaults train EMQ at 2/4/8/32 bits on all of Fashion-MNIST with a ResNet-8 for 5
    epochs; the profiles (:data:`PROFILES`) set the data size and schedule of real runs.
    """

    data: DataConfig  # the training and test data

    # model and quantization
    model: str = "resnet8"  # one of MODEL_NAMES
    width: float = 1.0  # channel width multiplier
    method: str = "emq"  # dedicated (one model per bit), joint (Any-Precision), emq
    bits: tuple[int, ...] = (2, 4, 8, 32)  # trained bit-widths (kept in descending order; quant.bits mirrors them)
    activation_bits: int | None = None  # None: activations at the weight bit-width
    bn_mode: str | None = None  # None: shared for emq, switchable for joint and dedicated
    quant: QuantSpec  # how the layers quantize; None: bias correction on and the 32-bit activation clamped for emq

    # training
    selection: CoresetConfig  # the coreset: which training samples each epoch uses
    bit_order: str = "descending"  # order of bit-widths within a sequential epoch
    distillation: str | None = None  # None: recursive (joint loop), fp-child (sequential), reference (acs), none (dedicated)
    label_loss_weight: float = 1.0  # weight of the cross-entropy with labels next to distillation
    reference_epochs: int = 3  # epochs of the full-precision reference run (early model, teacher)
    init_from_reference: bool = False  # start from the reference run's weights
    optim: OptimConfig  # the optimizer and its schedule
    seed: int = 0  # seed of the model's initialisation and of every epoch's random draws

    # bookkeeping that changes what a run stores
    eval_every: int = 1  # test accuracy every k-th epoch (and always after the last one)
    snapshot_every: int = 0  # keep the model weights of every k-th epoch (0: none)
    record_trajectory: bool = False  # store per-sample training softmax outputs of each epoch

    def __init__(self, **fields) -> None:
        values = {**_FLAT_DEFAULTS, **_flat_values(fields)}
        for name in _OWN_FIELDS[None]:
            _set(self, name, values[name])
        _choice("model", self.model, MODEL_NAMES)
        _choice("method", self.method, METHODS)
        _choice("bit_order", self.bit_order, BIT_ORDERS)
        _set(self, "bits", tuple(sorted(parse_bits(self.bits), reverse=True)))
        if self.activation_bits is not None:
            _set(self, "activation_bits", check_bits(self.activation_bits))
        # plain int and float values, so that equal configurations have equal hashes (1 == 1.0 == np.int64(1))
        for name in ("reference_epochs", "eval_every"):
            _set(self, name, _positive_int(name, getattr(self, name)))
        _set(self, "snapshot_every", _positive_int("snapshot_every", self.snapshot_every, minimum=0))
        _set(self, "seed", _positive_int("seed", self.seed, minimum=0))
        for name in ("width", "label_loss_weight"):
            _set(self, name, _number(name, getattr(self, name)))
        if not self.width > 0:
            raise ValueError(f"width must be positive, got {self.width!r}")
        if self.label_loss_weight < 0:
            raise ValueError(f"label_loss_weight must be >= 0, got {self.label_loss_weight!r}")
        _check_flags(self, "init_from_reference", "record_trajectory")

        _set(self, "data", _part("data", values))
        if values["warmup_epochs"] is None and self.init_from_reference:
            values["warmup_epochs"] = 0  # started from the reference run: no warm-up on random subsets
        _set(self, "selection", _part("selection", values))
        _set(self, "optim", _part("optim", values))
        emq = self.method == "emq"
        derived = {"bias_correction": emq,
                   # one shared BatchNorm cannot serve ReLU (unbounded) and clamped children at once
                   "full_precision_activation": "clamp" if emq else "relu",
                   "bn_mode": "shared" if emq else "switchable",
                   "distillation": default_distillation(self.method, self.coreset, self.coreset_training)}
        values.update({name: value for name, value in derived.items() if values[name] is None})
        if values["weight_quantizer"] == "lsq":
            values["full_precision_weight"] = "plain"  # LSQ quantizes the plain weight
        _set(self, "quant", _part("quant", {**values, "bits": self.bits}))
        _set(self, "bn_mode", values["bn_mode"])
        _choice("bn_mode", self.bn_mode, BN_MODES)
        _set(self, "distillation", values["distillation"])
        _choice("distillation", self.distillation, DISTILLATION)
        self._check_training_loop()

    def __getattr__(self, name: str):
        # reached only where ordinary lookup fails: a flat name of a part's field reads that part
        # (config.epochs is config.optim.epochs)
        part = FIELD_PARTS.get(name)
        if part is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(object.__getattribute__(self, part), name)

    def __dir__(self):
        return sorted({*super().__dir__(), *FIELD_PARTS})

    def _check_training_loop(self) -> None:
        loop = self.training_loop
        if (self.free_scores or self.coreset == "infobatch") and loop != "sequential":
            raise ValueError("free_scores and infobatch read each sample's loss in the sequential bit-wise loop; "
                             "set coreset_training='sequential'")
        if self.distillation == "recursive" and loop != "joint" and loop != "batch":
            raise ValueError("distillation 'recursive' needs all bit-widths on every batch "
                             "(method joint/emq without coreset, or coreset_training='batch')")
        if self.distillation == "fp-child" and (self.method == "dedicated" or FULL_PRECISION not in self.bits):
            raise ValueError("distillation 'fp-child' needs a multi-bit method with 32 in bits")
        if self.distillation == "none" and self.label_loss_weight <= 0:
            raise ValueError("with distillation 'none' the label loss is the only loss; label_loss_weight must be > 0")
        if self.method == "dedicated" and self.coreset_training == "batch" and self.coreset != "none":
            raise ValueError("batch score extraction needs a multi-bit method (joint or emq), not dedicated")

    @property
    def training_loop(self) -> str:
        """``joint`` (every bit on every batch), ``sequential`` (bit by bit), or ``batch``."""
        if self.method == "dedicated":
            return "sequential"
        if self.coreset == "none":
            return "joint"
        return self.coreset_training

    @property
    def needs_reference(self) -> bool:
        """Whether the run uses a full-precision reference run (teacher, early model, trajectory)."""
        return self.coreset in REFERENCE_CORESETS or self.init_from_reference or self.distillation == "reference"

    def flat(self) -> dict:
        """Every field by its flat name (as ``RunConfig(**config.flat())`` takes them)."""
        return {name: getattr(self, name) for name in FIELD_PARTS}

    def replace(self, **changes) -> RunConfig:
        """A copy with ``changes`` (flat names or whole parts); options derived from others
        (:data:`DERIVED_FIELDS`) are derived again, unless they were set to other values."""
        changes = _flat_values(changes)
        values = self.flat()
        for name in set(DERIVED_FIELDS) - set(changes):
            if self._is_default_for(name):
                values[name] = None
        return RunConfig(**{**values, **changes})

    def _is_default_for(self, name: str) -> bool:
        probe = RunConfig(**{**self.flat(), name: None})
        return getattr(probe, name) == getattr(self, name)

    def to_dict(self) -> dict:
        """Every field by its flat name (the form of a run's config.json), except one added after runs
        were cached while it is at its default (:data:`ADDED_FIELDS`): so the hash, config.json and
        checkpoints of older runs stay valid."""
        return {name: (list(v) if isinstance(v, tuple) else v) for name, v in self.flat().items()
                if not (name in ADDED_FIELDS and v == ADDED_FIELDS[name])}

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        """The configuration of :meth:`to_dict`'s flat dictionary (a run's config.json)."""
        unknown = set(values) - set(FIELD_PARTS)
        if unknown:
            raise ValueError(f"unknown configuration fields {sorted(unknown)}; known: {sorted(FIELD_PARTS)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _field_names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


# the fields each part owns, and (key None) the run's own; the run's bits are the only bit-widths (quant.bits
# mirrors them), so they are not a field of the quantization part here
_OWN_FIELDS = {None: tuple(name for name in _field_names(RunConfig) if name not in PARTS),
               **{part: tuple(name for name in _field_names(cls) if (part, name) != ("quant", "bits"))
                  for part, cls in PARTS.items()}}
# the part that owns each flat field name (None: the run itself): config.epochs reads config.optim.epochs
FIELD_PARTS = {name: part for part, names in _OWN_FIELDS.items() for name in names}
# the value of each flat name that is not given; derived options start as None
_FLAT_DEFAULTS = {**{f.name: f.default for part, cls in ((None, RunConfig), *PARTS.items())
                     for f in dataclasses.fields(cls) if f.name in _OWN_FIELDS[part]},
                  **dict.fromkeys(DERIVED_FIELDS)}


def _part(part: str, values: dict):
    """Part ``part`` of the flat ``values`` (its class validates it)."""
    cls = PARTS[part]
    return cls(**{name: values[name] for name in _field_names(cls)})


def _flat_values(fields: dict) -> dict:
    """``fields`` by flat name: a part given whole (``data=DataConfig(...)``) stands for its fields,
    and a flat name given next to it wins."""
    unknown = set(fields) - set(FIELD_PARTS) - set(PARTS)
    if unknown:
        raise TypeError(f"RunConfig has no fields {sorted(unknown)}; its parts are {list(PARTS)}, "
                        f"its flat fields {sorted(FIELD_PARTS)}")
    values = {}
    for part, value in fields.items():
        if part in PARTS:
            if not isinstance(value, PARTS[part]):
                raise TypeError(f"{part} must be a {PARTS[part].__name__}, got {value!r}")
            values.update({name: getattr(value, name) for name in _OWN_FIELDS[part]})
    return {**values, **{name: value for name, value in fields.items() if name not in PARTS}}


def field_name(name: str) -> str:
    """The flat name of configuration field ``name``, given flat (``epochs``) or as PART.FIELD
    (``optim.epochs``); an unknown part or field raises a ValueError that lists the choices."""
    part, dot, field_ = name.rpartition(".")
    if not dot:
        if name not in FIELD_PARTS:
            raise ValueError(f"unknown configuration field {name!r}; known: {sorted(FIELD_PARTS)}")
        return name
    if part not in PARTS:
        raise ValueError(f"unknown configuration part {part!r} in {name!r}; parts: {sorted(PARTS)}")
    if (part, field_) == ("quant", "bits"):
        return "bits"  # quant.bits mirrors the run's bits
    if field_ not in _OWN_FIELDS[part]:
        raise ValueError(f"{part} has no field {field_!r}; its fields: {sorted(_OWN_FIELDS[part])}")
    return field_


# fields added after runs were cached: left out of the hash while at their default, so that every
# configuration that does not use them keeps its hash (and its cached run)
ADDED_FIELDS = {"replay_from": None}


def config_hash(config: RunConfig) -> str:
    """A short, stable hash of every field (and the schema version): the run's cache key."""
    payload = json.dumps({"schema": SCHEMA_VERSION, **config.to_dict()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def reference_config(config: RunConfig) -> RunConfig:
    """The full-precision run that serves ``config`` as teacher, early model and trajectory source:
    the same data, model and optimizer, trained as a dedicated 32-bit model for ``reference_epochs``
    on a constant learning rate, recording its trajectory and every epoch's weights."""
    return RunConfig(data=config.data, model=config.model, width=config.width, method="dedicated",
                     bits=(FULL_PRECISION,), full_precision_weight=config.full_precision_weight,
                     full_precision_activation=config.full_precision_activation, bn_mode=config.bn_mode,
                     optim=dataclasses.replace(config.optim, epochs=config.reference_epochs, lr_schedule="constant",
                                               milestones=()),
                     seed=config.seed, record_trajectory=True, snapshot_every=1, eval_every=config.reference_epochs)


# ---------------------------------------------------------------- profiles

PROFILES = {
    # seconds per run: tests and CI
    "smoke": dict(dataset="synthetic", model="resnet8", width=0.5, epochs=2, batch_size=32, reference_epochs=3,
                  reselect_every=1, snapshot_every=1),
    # Fashion-MNIST on 2 CPU cores, trained to near convergence (results/regime_check.csv); 600 images per class:
    # 800 cost a third more per epoch; 500 failed the convergence check (30 vs 15 epochs: -0.28 and +2.10 points)
    "cpu": dict(dataset="fashion-mnist", model="resnet8", width=1.0, train_per_class=600, epochs=15,
                batch_size=128, reference_epochs=5, reselect_every=2, eval_every=15),
    # the CIFAR-10 recipe of Any-Precision (docs/method.md §11), for a GPU
    "paper": dict(dataset="cifar10", model="resnet20", width=5.0, bits=(1, 2, 4, 8, 32), epochs=200, batch_size=128,
                  optimizer="adam", lr=1e-3, lr_schedule="multistep", milestones=(100, 150, 180), augment=True,
                  reference_epochs=5, reselect_every=10, snapshot_every=20),
}


# Claims about pruning or cost need training to convergence (a pruned sample costs accuracy far from it, whatever
# the selection); claims that hold at any point of training (shared BN, alignment, gradient angles, label noise,
# score extraction) use this shorter schedule where a profile has one, at a third of the cost.
SHORT_SCHEDULES = {"cpu": dict(epochs=6, eval_every=6, snapshot_every=1)}

# what each profile is for, and how far its numbers can be compared with the papers'
PROFILE_PURPOSES = {
    "smoke": "Synthetic 16x16 images, seconds per run: for tests; its numbers show that the code runs, not "
             "what the method does.",
    "cpu": "Fashion-MNIST on 2 CPU cores (the whole `make reproduce` in about an hour from an empty run cache). "
           "Its numbers are not "
           "comparable in absolute value with the papers' CIFAR numbers; what carries over is the comparison "
           "between methods.",
    "paper": "The CIFAR-10 recipe of Any-Precision (docs/method.md §11), for a GPU: the papers' setting.",
}


def profile_config(profile: str, short: bool = False, **overrides) -> RunConfig:
    """The run configuration of ``profile`` with ``overrides`` applied; with ``short``, on the
    profile's short schedule (:data:`SHORT_SCHEDULES`; the full one where it has none)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {list(PROFILES)}")
    schedule = SHORT_SCHEDULES.get(profile, {}) if short else {}
    return RunConfig(**{**PROFILES[profile], **schedule, **overrides})


def describe_profile(profile: str, purpose: bool = False, short: bool = False) -> str:
    """A one-line description of what a profile trains (with ``short``, on its short schedule); with
    ``purpose``, followed by what the profile is for and how its numbers compare with the papers'
    (the notebooks print this)."""
    c = profile_config(profile, short)
    size = f"{c.train_per_class}/class" if c.train_per_class else "full train set"
    line = (f"{profile} profile: {c.dataset}, {c.model} x{c.width:g}, bits {'/'.join(map(str, c.bits))}, "
            f"{size}, {c.epochs} epochs" + (" (short schedule)" if short and profile in SHORT_SCHEDULES else ""))
    return f"{line}\n{PROFILE_PURPOSES[profile]}" if purpose else line
