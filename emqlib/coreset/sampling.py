"""Bit-wise coreset sampling in training: which samples each bit-width trains on, and at what cost.

Every trained bit-width gets its own class-balanced subset (EMQ's bit-wise coreset):

* ``random`` draws a uniform subset every epoch, ``random-once`` draws it once, ``split`` takes
  the next part of a full-coverage split every epoch (every sample seen once per cycle);
* ``emq-topk``, ``emq-sample`` and ``emq-ccs`` train on random subsets (re-drawn every epoch) for
  ``warmup_epochs`` epochs, then score every sample at that bit-width (EL2N or GraNd: one forward
  pass over the training set; with ``free_scores``, the EL2N of each sample's own last training
  pass: no forward pass) at epoch W and every ``reselect_every`` epochs after (only at W with
  ``static``). ``emq-topk`` keeps the highest scores until the next scoring; ``emq-sample``
  (importance sampling) and ``emq-ccs`` (coverage-centric strata) draw a fresh subset every
  epoch from the latest scores;
* ``infobatch`` soft-prunes, every epoch, samples whose last training loss is below the mean and
  gives the kept ones among them a larger loss weight (InfoBatch);
* ``acs`` scores with the model being trained and the full-precision reference every R epochs.

The baselines that score with the full-precision reference run (EL2N, forgetting, TDDS, k-center,
Moderate) give the same subset to every bit-width; they depend only on the reference, so they are
drawn once.

Every subset a sampler draws is recorded as a packed bit mask (one bit per training sample, so a
200-epoch run stays small in every checkpoint; :meth:`CoresetSampler.recorded`; the run keeps
it as ``selections.pt``). A run whose configuration names another run in ``replay_from`` selects
nothing: it trains on that run's recorded subsets, epoch by epoch (coreset transfer across
architectures, ACS Tab. 10).

The trainer calls :meth:`CoresetSampler.select` at the start of each epoch where
:meth:`CoresetSampler.due` says so, :meth:`CoresetSampler.observe` after each training forward
pass, and weights each sample's loss by :meth:`CoresetSampler.loss_weights`; the sampler's state
(:meth:`CoresetSampler.state_dict`) goes into the run's checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from ..bits import FULL_PRECISION
from ..harness.config import EMQ_SAMPLERS, REFERENCE_CORESETS
from ..data import ImageDataset
from ..inference import predict
from ..seeding import generator
from .scores import acs_beta, acs_score, evs, forgetting_score, grand_last_layer_score, tdds_score
from .select import (ccs_select, infobatch_prune, kcenter_greedy, moderate_select, random_subset, score_sample, select,
                     split_part)

TDDS_WINDOW = 10  # TDDS's window (shortened to the trajectory's length when it has fewer epochs)
TDDS_DECAY = 0.9
UNIFORM = ("random", "random-once")
REDRAWN_EVERY_EPOCH = ("random", "emq-sample", "emq-ccs", "infobatch", "split")


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

    def __init__(self, config, train: ImageDataset, reference: Reference | None,
                 replayed: dict[tuple[int, int], Tensor] | None = None) -> None:
        if (config.replay_from is None) != (replayed is None):
            raise ValueError("a run with replay_from trains on the recorded subsets of that run: pass them as "
                             "replayed (runs.replayed_selections), and only for such a run")
        if config.coreset in REFERENCE_CORESETS and reference is None:
            raise ValueError(f"coreset {config.coreset!r} needs the full-precision reference run")
        if (config.free_scores or config.coreset == "infobatch") and dist.is_available() and dist.is_initialized():
            raise ValueError("free_scores and infobatch read every sample's training loss in one process; "
                             "run them without torchrun")
        self.config = config
        self.train = train
        self.reference = reference
        self._reference_outputs: tuple[Tensor, Tensor] | None = None
        self._fixed: Tensor | None = None
        # per bit-width: the score of each sample's last training pass (NaN: not seen yet) ...
        self.observed: dict[int, Tensor] = {}
        # ... and the scores of the last scoring epoch, which the draws use
        self.scores: dict[int, Tensor] = {}
        self._weights: dict[int, Tensor] = {}  # this epoch's loss weight of every sample (infobatch)
        self.replayed = replayed
        self.history: dict[tuple[int, int], Tensor] = {}  # (epoch, bits) -> the subset drawn then, packed

    # ---- schedule

    def due(self, epoch: int) -> bool:
        """Whether subsets are (re)drawn at the start of ``epoch``."""
        c = self.config
        if c.coreset == "none":
            return False
        if self.replayed is not None:
            return any(e == epoch for e, _ in self.replayed)
        if epoch == 0 or c.coreset in REDRAWN_EVERY_EPOCH:
            return True
        if c.coreset in EMQ_SAMPLERS:
            return epoch < c.warmup_epochs or self._scoring(epoch)
        if c.coreset == "acs":
            return not c.static and epoch % c.reselect_every == 0
        return False  # random-once and the reference baselines

    def _scoring(self, epoch: int) -> bool:
        """Whether an emq-* sampler (re)computes its scores at the start of ``epoch``."""
        c = self.config
        since = epoch - c.warmup_epochs
        return since == 0 or (since > 0 and not c.static and since % c.reselect_every == 0)

    # ---- selection

    def select(self, epoch: int, model: nn.Module, bits: int) -> Selection:
        """The subset that ``model`` trains on at ``bits`` from ``epoch`` on (recorded in :attr:`history`)."""
        chosen = self._replay(epoch, bits) if self.replayed is not None else self._choose(epoch, model, bits)
        self.history[(epoch, bits)] = pack_subset(chosen.indices, len(self.train))
        return chosen

    def recorded(self) -> dict:
        """What ``selections.pt`` holds: the training set's size and every subset drawn, packed by
        (epoch, bits); :func:`unpack_selections` gives the sorted indices back."""
        return {"n": len(self.train), "subsets": dict(self.history)}

    def _replay(self, epoch: int, bits: int) -> Selection:
        """The replayed run's subset of ``epoch`` at ``bits``; its selection cost was paid by that run."""
        if (epoch, bits) not in self.replayed:
            raise RuntimeError(f"run {self.config.replay_from} recorded no {bits}-bit subset at epoch {epoch}; "
                               "replay a run with the same bit-widths and at least as many epochs")
        return Selection(self.replayed[(epoch, bits)], 0)

    def _choose(self, epoch: int, model: nn.Module, bits: int) -> Selection:
        c, targets = self.config, self.train.targets
        draw = generator(c.seed, "coreset", epoch, bits)
        if c.coreset in UNIFORM or (c.coreset in EMQ_SAMPLERS and epoch < c.warmup_epochs):
            # warm-up: an untrained model's scores carry no information
            return Selection(random_subset(targets, c.fraction, draw), 0)
        if c.coreset == "split":
            return Selection(split_part(targets, c.fraction, epoch, generator(c.seed, "split", bits)), 0)
        if c.coreset == "infobatch":
            return Selection(self._infobatch(epoch, bits, draw), 0)
        if c.coreset == "acs":
            return self._acs(epoch, model, bits)
        if c.coreset in EMQ_SAMPLERS:
            forwards = self._rescore(model, bits) if self._scoring(epoch) else 0
            return Selection(self._draw(bits, draw), forwards)
        forwards = 0
        if self._fixed is None:
            self._fixed, forwards = self._reference_subset()
        return Selection(self._fixed, forwards)

    def _rescore(self, model: nn.Module, bits: int) -> int:
        """Take the scores that the draws use until the next scoring; returns the forward passes spent."""
        c, targets = self.config, self.train.targets
        if c.free_scores:
            self.scores[bits] = _fill_unseen(self._observed(bits), targets, bits)
            return 0
        logits, features = predict(model, self.train, bits, activation_bits=c.activation_bits, features=True)
        self.scores[bits] = (grand_last_layer_score(logits, targets, features) if c.emq_score == "grand"
                             else evs(logits, targets))
        return len(targets)

    def _draw(self, bits: int, draw: torch.Generator) -> Tensor:
        c, targets = self.config, self.train.targets
        if bits not in self.scores:
            raise RuntimeError(f"no {bits}-bit scores to draw from: a run resumed after its scoring epoch needs "
                               "the sampler's state_dict() restored from its checkpoint")
        scores = self.scores[bits]
        if c.coreset == "emq-topk":
            return select(scores, c.fraction, targets, largest=True)
        if c.coreset == "emq-sample":
            return score_sample(scores, c.fraction, targets, c.sample_tau, c.sample_uniform_share, draw)
        return ccs_select(scores, c.fraction, targets, c.ccs_hard_share, c.ccs_strata, draw)

    def _infobatch(self, epoch: int, bits: int, draw: torch.Generator) -> Tensor:
        """InfoBatch's epoch: soft pruning while epoch < delta * epochs, the full data after (annealing)."""
        c, n = self.config, len(self.train)
        if epoch >= c.infobatch_anneal * c.epochs:
            self._weights[bits] = torch.ones(n)
            return torch.arange(n)
        losses = self._observed(bits)
        if epoch > 0 and torch.isnan(losses).all():
            raise RuntimeError(f"infobatch: no {bits}-bit training loss observed before epoch {epoch}; the training "
                               "loop must call CoresetSampler.observe after each forward pass (and a resumed run "
                               "restore the sampler's state_dict())")
        kept, self._weights[bits] = infobatch_prune(losses, c.infobatch_prune_prob, draw)
        return kept

    def _acs(self, epoch: int, model: nn.Module, bits: int) -> Selection:
        c, targets = self.config, self.train.targets
        logits = predict(model, self.train, bits, activation_bits=c.activation_bits)
        forwards = len(targets) * (1 if self._reference_outputs is not None else 2)  # the teacher's pass is paid once
        teacher_logits, _ = self._reference_forward()
        scores = acs_score(logits, teacher_logits, targets, acs_beta(epoch, c.epochs, c.acs_schedule))
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

    # ---- hooks of the training loop

    def observe(self, bits: int, indices: Tensor, logits: Tensor) -> None:
        """Record the score of each sample of a training batch at ``bits`` from its own forward pass:
        EL2N for free scores, the cross-entropy loss for InfoBatch. Samples not in the batch keep
        their last score. Does nothing when the run uses neither."""
        if not (self.config.free_scores or self.config.coreset == "infobatch"):
            return
        logits, targets = logits.detach().float().cpu(), self.train.targets[indices]
        score = (F.cross_entropy(logits, targets, reduction="none") if self.config.coreset == "infobatch"
                 else evs(logits, targets))
        self._observed(bits)[indices] = score

    def loss_weights(self, bits: int, indices: Tensor) -> Tensor | None:
        """Weight of each sample's loss in this epoch's training pass at ``bits``: 1 / (1 - r) for the
        low-loss samples InfoBatch kept, 1 for the others; None (every sample weighs 1) for every
        other sampler."""
        if self.config.coreset != "infobatch":
            return None
        if bits not in self._weights:
            raise RuntimeError(f"no {bits}-bit loss weights: call select() for this epoch first")
        return self._weights[bits][indices]

    def _observed(self, bits: int) -> Tensor:
        if bits not in self.observed:
            self.observed[bits] = torch.full((len(self.train),), float("nan"))
        return self.observed[bits]

    def state_dict(self) -> dict:
        """What a resumed run needs to draw as the uninterrupted run would."""
        return {"observed": dict(self.observed), "scores": dict(self.scores), "history": dict(self.history)}

    def load_state_dict(self, state: dict) -> None:
        self.observed, self.scores = dict(state["observed"]), dict(state["scores"])
        self.history = dict(state.get("history", {}))  # checkpoints written before subsets were recorded have none


def pack_subset(indices: Tensor, n: int) -> Tensor:
    """The set ``indices`` of ``range(n)`` as a bit mask packed 8 samples to a byte (uint8)."""
    mask = np.zeros(n, dtype=bool)
    mask[indices.numpy()] = True
    return torch.from_numpy(np.packbits(mask))


def unpack_selections(recorded: dict) -> dict[tuple[int, int], Tensor]:
    """The sorted indices of every subset in :meth:`CoresetSampler.recorded`'s record."""
    n = recorded["n"]
    return {key: torch.from_numpy(np.flatnonzero(np.unpackbits(packed.numpy(), count=n))).long()
            for key, packed in recorded["subsets"].items()}


def _fill_unseen(observed: Tensor, targets: Tensor, bits: int) -> Tensor:
    """Free scores with each not-yet-trained sample given its class's mean score (a neutral prior)."""
    seen = ~torch.isnan(observed)
    if not seen.any():
        raise RuntimeError(f"free scores: no {bits}-bit training pass was observed before the first scoring; "
                           "the training loop must call CoresetSampler.observe after each forward pass")
    scores = observed.clone()
    for c in torch.unique(targets):
        unseen, members = (targets == c) & ~seen, (targets == c) & seen
        scores[unseen] = observed[members].mean() if members.any() else observed[seen].mean()
    return scores
