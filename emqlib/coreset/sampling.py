"""Bit-wise coreset sampling in training (SPEC 6.2, 7.3, 8): which samples each bit-width trains on.

Every trained bit-width gets its own subset, drawn from scores computed at that bit-width and
re-drawn every ``reselect_every`` epochs (or once, with ``static``). The baselines that score
with a full-precision reference run (EL2N, forgetting, TDDS, k-center, Moderate) give the
same subset to every bit-width; they depend only on the reference, so they are drawn once.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..bits import FULL_PRECISION
from ..data import ImageDataset
from ..inference import predict
from ..seeding import generator
from .scores import acs_beta, acs_score, evs, forgetting_score, grand_last_layer_score, tdds_score
from .select import kcenter_greedy, moderate_select, random_subset, select

TDDS_WINDOW = 10  # SPEC 8 (shortened to the trajectory's length when it has fewer epochs)
TDDS_DECAY = 0.9
MODEL_SCORED = ("emq", "acs")  # scored with the model being trained, at each bit-width


@dataclass
class Reference:
    """What a full-precision reference run provides: its final model and its training dynamics."""

    model: nn.Module
    trajectory: Tensor  # [T, N, C] softmax outputs of each epoch's training pass, by sample index


@dataclass
class Selection:
    indices: Tensor  # sorted sample indices
    forwards: int  # per-sample forward passes spent on scoring


class CoresetSampler:
    """Draws the subset of each bit-width for a run configured by ``config`` (a RunConfig)."""

    def __init__(self, config, train: ImageDataset, reference: Reference | None) -> None:
        if config.coreset not in ("none", "random", *MODEL_SCORED) and reference is None:
            raise ValueError(f"coreset {config.coreset!r} needs the full-precision reference run")
        self.config = config
        self.train = train
        self.reference = reference
        self._reference_outputs: tuple[Tensor, Tensor] | None = None
        self._fixed: Tensor | None = None

    def due(self, epoch: int) -> bool:
        """Whether subsets are (re)drawn at the start of ``epoch``."""
        c = self.config
        if c.coreset == "none":
            return False
        if epoch == 0:
            return True
        return c.coreset in ("random", *MODEL_SCORED) and not c.static and epoch % c.reselect_every == 0

    def select(self, epoch: int, model: nn.Module, bits: int) -> Selection:
        """The subset that ``model`` trains on at ``bits`` from ``epoch`` on."""
        c, targets = self.config, self.train.targets
        if c.coreset == "random" or (c.coreset == "emq" and epoch == 0 and not c.init_from_reference):
            # EMQ from scratch: an untrained model's scores carry no information (SPEC 6.2)
            return Selection(random_subset(targets, c.fraction, generator(c.seed, "coreset", epoch, bits)), 0)
        if c.coreset in MODEL_SCORED:
            return self._model_scored(epoch, model, bits)
        forwards = 0
        if self._fixed is None:
            self._fixed, forwards = self._reference_subset()
        return Selection(self._fixed, forwards)

    def _model_scored(self, epoch: int, model: nn.Module, bits: int) -> Selection:
        c, targets = self.config, self.train.targets
        logits, features = predict(model, self.train, bits, activation_bits=c.activation_bits, features=True)
        forwards = len(targets)
        if c.coreset == "acs":
            teacher_logits, _ = self._reference_forward()
            forwards += len(targets) if epoch == 0 else 0
            scores = acs_score(logits, teacher_logits, targets, acs_beta(epoch, c.epochs, c.acs_schedule))
        elif c.emq_score == "grand":
            scores = grand_last_layer_score(logits, targets, features)
        else:
            scores = evs(logits, targets)
        return Selection(select(scores, c.fraction, targets, largest=True), forwards)

    def _reference_forward(self) -> tuple[Tensor, Tensor]:
        """Logits and penultimate features of the reference model on the training set (computed once)."""
        if self._reference_outputs is None:
            self._reference_outputs = predict(self.reference.model, self.train, FULL_PRECISION, features=True)
        return self._reference_outputs

    def _reference_subset(self) -> tuple[Tensor, int]:
        c, targets = self.config, self.train.targets
        trajectory = self.reference.trajectory
        if c.coreset == "forgetting":
            return select(forgetting_score(trajectory, targets), c.fraction, targets), 0
        if c.coreset == "tdds":
            scores = tdds_score(trajectory, window=min(TDDS_WINDOW, len(trajectory)), decay=TDDS_DECAY)
            return select(scores, c.fraction, targets, class_balanced=False), 0
        logits, features = self._reference_forward()
        if c.coreset == "el2n":
            indices = select(evs(logits, targets), c.fraction, targets)
        elif c.coreset == "kcenter":
            indices = kcenter_greedy(features, c.fraction, targets, generator(c.seed, "kcenter"))
        else:
            indices = moderate_select(features, targets, c.fraction)
        return indices, len(targets)
