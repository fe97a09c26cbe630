"""Which samples each bit-width trains on, epoch by epoch: one class per selection rule (docs/method.md §6-§8).

Every rule is a :class:`Sampler` registered by name in :data:`SAMPLERS`, with its own settings (a frozen
dataclass, the class's ``Settings``; :func:`settings_for` makes them by name). A run's training loop
asks the sampler at the start of each epoch whether it draws (:meth:`Sampler.due`), then, for each
bit-width, for that bit-width's subset (:meth:`Sampler.select`: EMQ's bit-wise coreset gives every
bit-width its own); after each training forward pass it shows the sampler the outputs
(:meth:`Sampler.observe`) and weights each sample's loss by :meth:`Sampler.loss_weights`. What a
resumed run needs to draw as the uninterrupted one would is :meth:`Sampler.state_dict`.

A new rule is one class here, registered with :func:`register`, and its test.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..bits import FULL_PRECISION
from ..data import ImageDataset
from ..inference import predict
from ..seeding import generator
from .scores import BETA_SCHEDULES, acs_beta, acs_score, evs, grand_last_layer_score
from .select import ccs_select, check_fraction, random_subset, rs2_window, score_sample, select, split_part



@dataclass
class Reference:
    """What a full-precision reference run gives the rules that need one: its final model (teacher, early
    model) and its training dynamics."""

    model: nn.Module
    trajectory: Tensor  # [T, N, C] softmax outputs of each epoch's training pass, by sample index


@dataclass
class Context:
    """What a sampler sees of its run."""

    train: ImageDataset  # the training set (its labels, and its images for scoring forward passes)
    seed: int  # the run's seed: every draw of epoch e at bit-width b is fixed by (seed, e, b)
    epochs: int
    activation_bits: int | None = None  # scoring forward passes run the model as training does
    reference: Reference | None = None
    replayed: dict[tuple[int, int], Tensor] | None = None  # (epoch, bits) -> subset of the run a Replay rule repeats


@dataclass
class Selection:
    indices: Tensor  # sorted sample indices
    forwards: int  # per-sample forward passes spent on scoring


def positive_int(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class Settings:
    """What every rule is told: which rule it is, and the kept fraction S = 1 - pruning rate."""

    rule: str = "none"  # the selection rule, a key of SAMPLERS
    fraction: float = 1.0

    def __post_init__(self) -> None:
        cls = sampler_class(self.rule)
        if type(self) is not cls.Settings:
            raise TypeError(f"rule {self.rule!r} takes {cls.Settings.__name__}, not {type(self).__name__}; "
                            "make settings with settings_for(rule, ...)")
        object.__setattr__(self, "fraction", check_fraction(self.fraction))
        # plain bool, int and float values, so that equal settings have equal hashes (1 == 1.0 == np.int64(1))
        for name, kind in typing.get_type_hints(type(self)).items():
            value = getattr(self, name)
            if kind is bool and not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {value!r}")
            if kind is int:
                positive_int(name, value, minimum=0)
            if kind is float:
                if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                    raise ValueError(f"{name} must be a finite number, got {value!r}")
                object.__setattr__(self, name, float(value))
            if kind is int:
                object.__setattr__(self, name, int(value))
        if self.fraction == 1.0 and not cls.full_fraction_allowed:
            raise ValueError(f"rule {self.rule!r} at fraction 1.0 keeps every sample; give a fraction below 1")


class Sampler:
    """A selection rule. The defaults: draws once, at epoch 0; watches nothing; every loss weighs 1."""

    name: ClassVar[str]
    Settings: ClassVar[type[Settings]] = Settings
    needs_reference: ClassVar[bool] = False  # scores with the full-precision reference run
    full_fraction_allowed: ClassVar[bool] = False  # fraction 1.0 means something other than "keep everything"

    def __init__(self, settings: Settings, context: Context) -> None:
        if settings.rule != self.name:
            raise TypeError(f"sampler {self.name!r} got the settings of rule {settings.rule!r}")
        if self.needs_reference and context.reference is None:
            raise ValueError(f"sampler {self.name!r} needs the full-precision reference run")
        self.settings, self.context = settings, context
        self.targets = context.train.targets

    def due(self, epoch: int) -> bool:
        """Whether subsets are (re)drawn at the start of ``epoch``."""
        return epoch == 0

    def select(self, epoch: int, model: nn.Module, bits: int) -> Selection:
        """The samples ``model`` trains on at ``bits`` from ``epoch`` on."""
        raise NotImplementedError

    def watches_training(self) -> bool:
        """Whether the rule reads each training pass's outputs (:meth:`observe`), so needs them all in one process."""
        return False

    def observe(self, bits: int, indices: Tensor, logits: Tensor) -> None:
        """The logits of the training forward pass at ``bits`` on the samples ``indices``."""

    def loss_weights(self, bits: int, indices: Tensor) -> Tensor | None:
        """The weight of each sample's loss in this epoch's pass at ``bits``; None: every sample weighs 1."""
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def draw(self, *keys) -> torch.Generator:
        return generator(self.context.seed, "coreset", *keys)

    def uniform(self, epoch: int, bits: int) -> Selection:
        """A uniform class-balanced subset, drawn for (epoch, bits)."""
        return Selection(random_subset(self.targets, self.settings.fraction, self.draw(epoch, bits)), 0)


SAMPLERS: dict[str, type[Sampler]] = {}


def register(cls: type[Sampler]) -> type[Sampler]:
    SAMPLERS[cls.name] = cls
    return cls


def sampler_class(rule: str) -> type[Sampler]:
    if rule not in SAMPLERS:
        raise ValueError(f"unknown selection rule {rule!r}; choose one of {sorted(SAMPLERS)}")
    return SAMPLERS[rule]


def settings_for(rule: str, **values) -> Settings:
    """The settings of selection rule ``rule`` (its defaults, changed by ``values``)."""
    cls = sampler_class(rule).Settings
    unknown = set(values) - {f.name for f in dataclasses.fields(cls)} | ({"rule"} & set(values))
    if unknown:
        raise ValueError(f"selection rule {rule!r} has no settings {sorted(unknown)}; its settings: "
                         f"{[f.name for f in dataclasses.fields(cls) if f.name != 'rule']}")
    return cls(rule=rule, **values)


def build_sampler(settings: Settings, context: Context) -> Sampler:
    """The sampler of ``settings``' rule."""
    return sampler_class(settings.rule)(settings, context)


# ---------------------------------------------------------------- every sample, and uniform draws

@register
class FullData(Sampler):
    """Every sample, every epoch: no coreset."""

    name = "none"
    full_fraction_allowed = True

    def due(self, epoch: int) -> bool:
        return False


@register
class Random(Sampler):
    """A uniform class-balanced subset per bit-width, re-drawn every epoch (at fraction 1: every sample, in
    the loop of the pruned runs)."""

    name = "random"
    full_fraction_allowed = True

    def due(self, epoch: int) -> bool:
        return True

    def select(self, epoch: int, model: nn.Module, bits: int) -> Selection:
        return self.uniform(epoch, bits)


@register
class RandomOnce(Random):
    """One uniform class-balanced subset per bit-width for the whole run (ACS's static random baseline)."""

    name = "random-once"
    full_fraction_allowed = False

    def due(self, epoch: int) -> bool:
        return epoch == 0


@dataclass(frozen=True)
class WindowSettings(Settings):
    reshuffle: bool = True  # a new order after every pass (RS2); False: one order for the run (ACS's split)


@register
class RS2(Sampler):
    """Repeated sampling without replacement (RS2, Okanovic et al., ICLR 2024), per class and bit-width:
    each epoch trains on the next window of the class's budget in a random order, so every sample is seen
    once per pass of ceil(1/S) epochs; a new order for every pass. With ``reshuffle=False``, one order for
    the whole run: the full-coverage split of ACS Tab. 8."""

    name = "rs2"
    Settings = WindowSettings

    def due(self, epoch: int) -> bool:
        return True

    def select(self, epoch: int, model: nn.Module, bits: int) -> Selection:
        s = self.settings
        if not s.reshuffle:
            return Selection(split_part(self.targets, s.fraction, epoch, generator(self.context.seed, "split", bits)),
                             0)
        return Selection(rs2_window(self.targets, s.fraction, epoch,
                                    lambda p: generator(self.context.seed, "rs2", bits, p)), 0)


# ---------------------------------------------------------------- scored by the model being trained (EMQ's bit-wise coreset)

@dataclass(frozen=True)
class ScoredSettings(Settings):
    reselect_every: int = 10  # R: epochs between scorings
    warmup_epochs: int = 10  # W: epochs on uniform subsets before the first scoring (an untrained model's scores are noise)
    static: bool = False  # score once, at epoch W
    free_scores: bool = False  # EL2N of each sample's own last training pass at that bit-width: no scoring forward
    score: str = "el2n"  # el2n, or grand (GraNd of the last layer)

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int("reselect_every", self.reselect_every)
        positive_int("warmup_epochs", self.warmup_epochs, minimum=0)
        if self.score not in ("el2n", "grand"):
            raise ValueError(f"score must be 'el2n' or 'grand', got {self.score!r}")
        if self.free_scores and (self.score != "el2n" or self.warmup_epochs < 1):
            raise ValueError("free_scores take EL2N from training passes: set score='el2n' and warmup_epochs >= 1")


class ScoredByTheModel(Sampler):
    """EMQ's bit-wise coreset (docs/method.md §6): each bit-width scores every sample with the model being
    trained, at that bit-width, at epoch W and every R epochs after; :meth:`draw_from` turns the scores into
    a subset. Before W: uniform subsets, re-drawn every epoch."""

    Settings = ScoredSettings
    redrawn_every_epoch: ClassVar[bool] = True  # draws a new subset from the latest scores every epoch

    def __init__(self, settings: ScoredSettings, context: Context) -> None:
        super().__init__(settings, context)
        self.observed: dict[int, Tensor] = {}  # per bit-width: each sample's score of its last training pass (NaN: unseen)
        self.scores: dict[int, Tensor] = {}  # per bit-width: the scores of the last scoring, which the draws use

    def scoring(self, epoch: int) -> bool:
        s = self.settings
        since = epoch - s.warmup_epochs
        return since == 0 or (since > 0 and not s.static and since % s.reselect_every == 0)

    def due(self, epoch: int) -> bool:
        return epoch < self.settings.warmup_epochs or self.redrawn_every_epoch or self.scoring(epoch)

    def select(self, epoch: int, model: nn.Module, bits: int) -> Selection:
        if epoch < self.settings.warmup_epochs:
            return self.uniform(epoch, bits)
        forwards = self.rescore(model, bits) if self.scoring(epoch) else 0
        if bits not in self.scores:
            raise RuntimeError(f"no {bits}-bit scores to draw from: a run resumed after its scoring epoch needs the "
                               "sampler's state_dict() restored from its checkpoint")
        return Selection(self.draw_from(self.scores[bits], self.draw(epoch, bits)), forwards)

    def rescore(self, model: nn.Module, bits: int) -> int:
        """Take new scores at ``bits``; returns the forward passes spent."""
        if self.settings.free_scores:
            self.scores[bits] = _fill_unseen(self._observed(bits), self.targets, bits)
            return 0
        logits, features = predict(model, self.context.train, bits, activation_bits=self.context.activation_bits,
                                   features=True)
        self.scores[bits] = (grand_last_layer_score(logits, self.targets, features) if self.settings.score == "grand"
                             else evs(logits, self.targets))
        return len(self.targets)

    def draw_from(self, scores: Tensor, draw: torch.Generator) -> Tensor:
        raise NotImplementedError

    def watches_training(self) -> bool:
        return self.settings.free_scores

    def observe(self, bits: int, indices: Tensor, logits: Tensor) -> None:
        if self.settings.free_scores:
            self._observed(bits)[indices] = evs(logits.detach().float().cpu(), self.targets[indices])

    def _observed(self, bits: int) -> Tensor:
        if bits not in self.observed:
            self.observed[bits] = torch.full((len(self.targets),), math.nan)
        return self.observed[bits]

    def state_dict(self) -> dict:
        return {"observed": dict(self.observed), "scores": dict(self.scores)}

    def load_state_dict(self, state: dict) -> None:
        self.observed, self.scores = dict(state["observed"]), dict(state["scores"])


@register
class TopK(ScoredByTheModel):
    """The highest scores of each class, kept until the next scoring (EL2N re-scored every R epochs)."""

    name = "emq-topk"
    redrawn_every_epoch = False

    def draw_from(self, scores: Tensor, draw: torch.Generator) -> Tensor:
        return select(scores, self.settings.fraction, self.targets, largest=True)


@dataclass(frozen=True)
class ImportanceSettings(ScoredSettings):
    tau: float = 1.0  # probability proportional to score^tau
    uniform_share: float = 0.1  # epsilon: the share of the probability spread uniformly

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.tau >= 0 or not 0 <= self.uniform_share <= 1:
            raise ValueError(f"tau must be >= 0 and uniform_share in [0, 1], got {self.tau!r} and {self.uniform_share!r}")


@register
class ImportanceSampling(ScoredByTheModel):
    """A fresh subset every epoch, drawn with probability proportional to score^tau mixed with uniform."""

    name = "emq-sample"
    Settings = ImportanceSettings

    def draw_from(self, scores: Tensor, draw: torch.Generator) -> Tensor:
        s = self.settings
        return score_sample(scores, s.fraction, self.targets, s.tau, s.uniform_share, draw)


@dataclass(frozen=True)
class StrataSettings(ScoredSettings):
    hard_share: float = 0.1  # beta: share of the hardest samples dropped per class
    strata: int = 50  # k equal-width score strata (CCS's default)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.hard_share < 1:
            raise ValueError(f"hard_share must be in [0, 1), got {self.hard_share!r}")
        positive_int("strata", self.strata)


@register
class CoverageStrata(ScoredByTheModel):
    """A fresh subset every epoch spread evenly over score strata, the hardest dropped (CCS, Zheng et al.)."""

    name = "emq-ccs"
    Settings = StrataSettings

    def draw_from(self, scores: Tensor, draw: torch.Generator) -> Tensor:
        s = self.settings
        return ccs_select(scores, s.fraction, self.targets, s.hard_share, s.strata, draw)


# ---------------------------------------------------------------- ACS: the model being trained and the reference

@dataclass(frozen=True)
class ACSSettings(Settings):
    reselect_every: int = 10  # R
    static: bool = False  # select once, at epoch 0
    schedule: str = "cosine"  # beta(t) (docs/method.md §7.2)

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int("reselect_every", self.reselect_every)
        if self.schedule not in BETA_SCHEDULES:
            raise ValueError(f"schedule must be one of {list(BETA_SCHEDULES)}, got {self.schedule!r}")


@register
class ACS(Sampler):
    """Adaptive coreset selection (ACS, docs/method.md §7): every R epochs, the highest
    beta(t) EVS + (1 - beta(t)) DS of each class, scored with the model being trained and the reference."""

    name = "acs"
    Settings = ACSSettings
    needs_reference = True

    def __init__(self, settings: ACSSettings, context: Context) -> None:
        super().__init__(settings, context)
        self._teacher_logits: Tensor | None = None

    def due(self, epoch: int) -> bool:
        return epoch == 0 or (not self.settings.static and epoch % self.settings.reselect_every == 0)

    def select(self, epoch: int, model: nn.Module, bits: int) -> Selection:
        s, targets = self.settings, self.targets
        logits = predict(model, self.context.train, bits, activation_bits=self.context.activation_bits)
        forwards = len(targets) * (1 if self._teacher_logits is not None else 2)  # the teacher's pass is paid once
        if self._teacher_logits is None:
            self._teacher_logits = predict(self.context.reference.model, self.context.train, FULL_PRECISION)
        scores = acs_score(logits, self._teacher_logits, targets, acs_beta(epoch, self.context.epochs, s.schedule))
        return Selection(select(scores, s.fraction, targets, largest=True), forwards)


# ---------------------------------------------------------------- soft pruning, and replaying another run's subsets

@dataclass(frozen=True)
class ReplaySettings(Settings):
    source_run: str = ""  # the 16-character hash of the finished run whose subsets are trained on

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.source_run) != 16 or set(self.source_run) - set("0123456789abcdef"):
            raise ValueError(f"source_run must be a run's 16-character hash (its folder name), got {self.source_run!r}")


@register
class Replay(Sampler):
    """The subsets another run recorded, epoch by epoch (coresets transferred across architectures, ACS
    Tab. 10); their selection cost was paid by that run."""

    name = "replay"
    Settings = ReplaySettings
    full_fraction_allowed = True  # the fraction is the replayed run's

    def __init__(self, settings: ReplaySettings, context: Context) -> None:
        super().__init__(settings, context)
        if context.replayed is None:
            raise ValueError(f"replay trains on the recorded subsets of run {settings.source_run}: pass them")

    def due(self, epoch: int) -> bool:
        return any(e == epoch for e, _ in self.context.replayed)

    def select(self, epoch: int, model: nn.Module, bits: int) -> Selection:
        if (epoch, bits) not in self.context.replayed:
            raise RuntimeError(f"run {self.settings.source_run} recorded no {bits}-bit subset at epoch {epoch}; "
                               "replay a run with the same bit-widths and at least as many epochs")
        return Selection(self.context.replayed[(epoch, bits)], 0)


def _fill_unseen(observed: Tensor, targets: Tensor, bits: int) -> Tensor:
    """Free scores with each not-yet-trained sample given its class's mean score (a neutral prior)."""
    seen = ~torch.isnan(observed)
    if not seen.any():
        raise RuntimeError(f"free scores: no {bits}-bit training pass was observed before the first scoring; "
                           "the training loop must call observe after each forward pass")
    scores = observed.clone()
    for c in torch.unique(targets):
        unseen, members = (targets == c) & ~seen, (targets == c) & seen
        scores[unseen] = observed[members].mean() if members.any() else observed[seen].mean()
    return scores
