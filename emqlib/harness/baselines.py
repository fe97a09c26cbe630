"""The prior coreset methods the two papers compare their selection with, as samplers and the scores and
rules behind them: EL2N, forgetting, TDDS (static, from the reference run's dynamics, and re-scored like EMQ's
sampler), k-center greedy, Moderate and InfoBatch (docs/method.md §8). They are comparison arms of the
studies, registered by name beside EMQ's and ACS's rules (:mod:`emqlib.coreset.samplers`), so a run's
configuration names them the same way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..bits import FULL_PRECISION
from ..budgets import budget, check_fraction
from ..coreset.samplers import Context, Sampler, ScoredSettings, Selection, Settings, TopK, positive_int, register
from ..coreset.scores import check_logits, evs
from ..coreset.select import class_groups, select
from ..inference import predict
from ..seeding import generator

# ---------------------------------------------------------------- scores from training dynamics

TDDS_WINDOW = 10  # TDDS's window W of epochs (shortened to the trajectory's length when it has fewer)
TDDS_DECAY = 0.9  # TDDS's lambda: later windows weigh more


def check_trajectory(prob_trajectory: Tensor) -> None:
    if prob_trajectory.dim() != 3:
        raise ValueError(
            f"prob_trajectory must have shape [T, N, C], got {tuple(prob_trajectory.shape)}"
        )


def tdds_score(prob_trajectory: Tensor, window: int = 10, decay: float = 0.9) -> Tensor:
    """TDDS score (Zhang et al., CVPR 2024; the three steps of its code) from softmax outputs P_e,
    e = 0..T-1, shape [T, N, C].

    c_e = sum_m |P_{e+1,m} (log(P_{e+1,m} + 1e-8) - log(P_{e,m} + 1e-8))|;
    v_k = sqrt(sum_j (c_j - mean)^2) over c_k..c_{k+W-2}, k = 0..T-W;
    S = sum_k v_k * decay * (1 - decay)^(T-W-k)  (later windows weigh more).
    """
    check_trajectory(prob_trajectory)
    T = prob_trajectory.shape[0]
    if not 2 <= window <= T:
        raise ValueError(f"need T >= window >= 2, got T={T}, window={window}")
    if not 0.0 < decay < 1.0:
        raise ValueError(f"decay must be in (0, 1), got {decay}")
    row_sums = prob_trajectory.sum(dim=2)
    if (prob_trajectory < 0).any() or not torch.allclose(
        row_sums, torch.ones_like(row_sums), rtol=0.0, atol=1e-3
    ):
        raise ValueError(
            "prob_trajectory must hold probabilities (softmax outputs): non-negative, each [T, N, :] "
            "row summing to 1 within 1e-3"
        )
    log_p = torch.log(prob_trajectory + 1e-8)
    c = (prob_trajectory[1:] * (log_p[1:] - log_p[:-1])).abs().sum(dim=2)  # [T-1, N]
    windows = c.unfold(0, window - 1, 1)  # [T-W+1, N, W-1]
    v = ((windows - windows.mean(dim=2, keepdim=True)) ** 2).sum(dim=2).sqrt()  # [T-W+1, N]
    k = torch.arange(T - window + 1, dtype=v.dtype)
    weights = decay * (1.0 - decay) ** (T - window - k)
    return (weights[:, None] * v).sum(dim=0)


def forgetting_score(prob_trajectory: Tensor, targets: Tensor) -> Tensor:
    """Forgetting events (Toneva et al. 2019): count correct -> incorrect transitions between
    consecutive steps of the [T, N, C] trajectory; samples never correct get +inf.

    Only the argmax is used, so logits work as well as probabilities.
    """
    check_trajectory(prob_trajectory)
    check_logits(prob_trajectory[0], targets)
    correct = prob_trajectory.argmax(dim=2) == targets  # [T, N]
    events = (correct[:-1] & ~correct[1:]).sum(dim=0)
    dtype = prob_trajectory.dtype if prob_trajectory.dtype.is_floating_point else torch.float32
    score = events.to(dtype)
    score[~correct.any(dim=0)] = math.inf
    return score


# ---------------------------------------------------------------- selection rules on features and losses

def _kcenter(x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    start = int(torch.randint(x.shape[0], (1,), generator=generator))
    chosen = [start]
    min_dist = torch.linalg.vector_norm(x - x[start], dim=1)
    min_dist[start] = -math.inf  # never re-pick a chosen point, even among duplicates
    for _ in range(k - 1):
        nxt = int(torch.argmax(min_dist))  # first maximum -> lowest index on ties
        chosen.append(nxt)
        min_dist = torch.minimum(min_dist, torch.linalg.vector_norm(x - x[nxt], dim=1))
        min_dist[nxt] = -math.inf
    return torch.tensor(chosen, dtype=torch.long)


def kcenter_greedy(
    features: Tensor,
    fraction,
    labels: Tensor | None,
    generator: torch.Generator,
    class_balanced: bool = True,
) -> Tensor:
    """k-center greedy (Sener & Savarese 2018), Euclidean, per class when class_balanced.

    Each group starts from `torch.randint(n_group, (1,), generator=generator)` (groups in ascending
    class order) and repeatedly adds the point farthest from its nearest chosen point; O(N * k).
    """
    fraction = check_fraction(fraction)
    if features.dim() != 2:
        raise ValueError(f"features must have shape [N, D], got {tuple(features.shape)}")
    kept = []
    for idx in class_groups(features.shape[0], labels, class_balanced):
        kept.append(idx[_kcenter(features[idx], budget(len(idx), fraction), generator)])
    return torch.cat(kept).sort().values


def _median(x: Tensor) -> Tensor:
    """Median along dim 0, averaging the two middle values for even sizes (as numpy does)."""
    s = x.sort(dim=0).values
    n = x.shape[0]
    return (s[(n - 1) // 2] + s[n // 2]) / 2


def moderate_select(features: Tensor, labels: Tensor, fraction) -> Tensor:
    """Moderate coreset (Xia et al. 2023): per class, keep the samples whose distance to the
    per-dimension median feature is closest to the median of those distances (ties: lower index)."""
    fraction = check_fraction(fraction)
    if features.dim() != 2:
        raise ValueError(f"features must have shape [N, D], got {tuple(features.shape)}")
    kept = []
    for idx in class_groups(features.shape[0], labels, class_balanced=True):
        x = features[idx]
        dist = torch.linalg.vector_norm(x - _median(x), dim=1)
        order = torch.sort((dist - _median(dist)).abs(), stable=True).indices
        kept.append(idx[order[: budget(len(idx), fraction)]])
    return torch.cat(kept).sort().values


def infobatch_prune(losses: Tensor, prune_prob: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """InfoBatch soft pruning (Qin et al., ICLR 2024, Sec. 3.2-3.3), one epoch.

    Each sample whose last loss is below the mean loss is dropped with probability r = prune_prob;
    the kept ones among them get loss weight 1 / (1 - r) so that the expected gradient is unchanged;
    all other samples are kept with weight 1. Samples not yet seen (NaN loss) are kept and left out
    of the mean. Returns the kept indices and the weight of every sample [N] (0 where dropped).
    """
    if losses.dim() != 1:
        raise ValueError(f"losses must have shape [N], got {tuple(losses.shape)}")
    if not 0 < prune_prob < 1:
        raise ValueError(f"prune_prob must be in (0, 1), got {prune_prob!r}")
    seen = ~torch.isnan(losses)
    well_learned = seen & (losses < losses[seen].mean()) if seen.any() else seen
    dropped = well_learned & (torch.rand(len(losses), generator=generator) < prune_prob)
    weights = torch.ones(len(losses))
    weights[well_learned] = 1 / (1 - prune_prob)
    weights[dropped] = 0.0
    return torch.nonzero(~dropped).flatten(), weights


# ---------------------------------------------------------------- static baselines scored from the reference run

@dataclass(frozen=True)
class BalancedSettings(Settings):
    class_balanced: bool = True  # the budget per class; False: the highest scores over all classes (TDDS's code)


class FromReference(Sampler):
    """A baseline scored once from the full-precision reference run (its early model or its training
    dynamics): every bit-width gets the same subset, drawn at epoch 0 for the whole run (ACS's protocol)."""

    needs_reference = True

    def __init__(self, settings: Settings, context: Context) -> None:
        super().__init__(settings, context)
        self._kept: Tensor | None = None

    def select(self, epoch: int, model: nn.Module, bits: int) -> Selection:
        if self._kept is not None:
            return Selection(self._kept, 0)
        self._kept, forwards = self.choose()
        return Selection(self._kept, forwards)

    def choose(self) -> tuple[Tensor, int]:
        """The subset, and the forward passes spent on it."""
        raise NotImplementedError

    def reference_forward(self) -> tuple[Tensor, Tensor]:
        """Logits and penultimate features of the reference model on the training set."""
        return predict(self.context.reference.model, self.context.train, FULL_PRECISION, features=True)


@register
class EL2N(FromReference):
    """The highest EL2N of the early-trained reference model (Paul et al.)."""

    name = "el2n"
    Settings = BalancedSettings

    def choose(self) -> tuple[Tensor, int]:
        logits, _ = self.reference_forward()
        s = self.settings
        return select(evs(logits, self.targets), s.fraction, self.targets, s.class_balanced), len(self.targets)


@register
class Forgetting(FromReference):
    """The most forgotten samples of the reference run's training (Toneva et al.)."""

    name = "forgetting"

    def choose(self) -> tuple[Tensor, int]:
        scores = forgetting_score(self.context.reference.trajectory, self.targets)
        return select(scores, self.settings.fraction, self.targets), 0


@register
class TDDS(FromReference):
    """The highest TDDS of the reference run's training dynamics (Zhang et al.)."""

    name = "tdds"
    Settings = BalancedSettings

    def choose(self) -> tuple[Tensor, int]:
        trajectory = self.context.reference.trajectory
        scores = tdds_score(trajectory, window=min(TDDS_WINDOW, len(trajectory)), decay=TDDS_DECAY)
        return select(scores, self.settings.fraction, self.targets, self.settings.class_balanced), 0


@register
class KCenter(FromReference):
    """k-center greedy on the reference model's features (Sener & Savarese)."""

    name = "kcenter"

    def choose(self) -> tuple[Tensor, int]:
        _, features = self.reference_forward()
        draw = generator(self.context.seed, "kcenter")
        return kcenter_greedy(features, self.settings.fraction, self.targets, draw), len(self.targets)


@register
class Moderate(FromReference):
    """The samples at the median distance from their class centre in the reference features (Xia et al.)."""

    name = "moderate"

    def choose(self) -> tuple[Tensor, int]:
        _, features = self.reference_forward()
        return moderate_select(features, self.targets, self.settings.fraction), len(self.targets)


# ---------------------------------------------------------------- TDDS re-scored like EMQ's sampler, and soft pruning

@dataclass(frozen=True)
class DynamicsSettings(ScoredSettings):
    window: int = TDDS_WINDOW  # TDDS's W: the last W epochs' outputs

    def __post_init__(self) -> None:
        super().__post_init__()
        positive_int("window", self.window, minimum=3)
        if self.warmup_epochs < 2 or self.free_scores or self.score != "el2n":
            raise ValueError("tdds-rescored needs warmup_epochs >= 2 (three recorded epochs to score from) and "
                             "scores from the recorded outputs: leave free_scores and score as they are")


@register
class TDDSRescored(TopK):
    """TDDS from the dynamics of the model being trained, at each bit-width, re-scored every R epochs like
    EMQ's sampler: the softmax outputs over the training set are recorded at the start of every epoch (a
    forward pass, counted), and each scoring keeps the highest TDDS over the last ``window`` of them, per class."""

    name = "tdds-rescored"
    Settings = DynamicsSettings

    def __init__(self, settings: DynamicsSettings, context: Context) -> None:
        super().__init__(settings, context)
        self.outputs: dict[int, list[Tensor]] = {}  # per bit-width: the recorded softmax outputs [N, C], oldest first

    def due(self, epoch: int) -> bool:
        return True  # records the outputs every epoch

    def select(self, epoch: int, model: nn.Module, bits: int) -> Selection:
        recorded = self.outputs.setdefault(bits, [])
        logits = predict(model, self.context.train, bits, activation_bits=self.context.activation_bits)
        recorded.append(F.softmax(logits, dim=1).half())
        del recorded[:-self.settings.window]
        chosen = super().select(epoch, model, bits)
        return Selection(chosen.indices, chosen.forwards + len(self.targets))

    def rescore(self, model: nn.Module, bits: int) -> int:
        recorded = self.outputs[bits]
        self.scores[bits] = tdds_score(torch.stack(recorded).float(), window=len(recorded), decay=TDDS_DECAY)
        return 0  # the recording forward passes are counted in select

    def state_dict(self) -> dict:
        return {**super().state_dict(), "outputs": dict(self.outputs)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.outputs = dict(state["outputs"])


@dataclass(frozen=True)
class InfoBatchSettings(Settings):
    prune_prob: float = 0.5  # r: drop probability of a sample below the mean loss
    anneal: float = 0.875  # delta: prune only in epochs t < delta * epochs

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fraction != 1.0:
            raise ValueError("infobatch keeps a share set by prune_prob and the losses, not by fraction; "
                             "leave fraction at 1.0")
        if not 0 < self.prune_prob < 1 or not 0 <= self.anneal <= 1:
            raise ValueError(f"prune_prob must be in (0, 1) and anneal in [0, 1], got {self.prune_prob!r} and "
                             f"{self.anneal!r}")


@register
class InfoBatch(Sampler):
    """InfoBatch (Qin et al.): every epoch, samples whose last training loss is below the mean are dropped
    with probability r and the kept ones weigh 1 / (1 - r); every sample in the last epochs."""

    name = "infobatch"
    Settings = InfoBatchSettings
    full_fraction_allowed = True

    def __init__(self, settings: InfoBatchSettings, context: Context) -> None:
        super().__init__(settings, context)
        self.observed: dict[int, Tensor] = {}  # per bit-width: each sample's last training loss (NaN: unseen)
        self.weights: dict[int, Tensor] = {}  # per bit-width: this epoch's loss weight of every sample

    def due(self, epoch: int) -> bool:
        return True

    def select(self, epoch: int, model: nn.Module, bits: int) -> Selection:
        s, n = self.settings, len(self.targets)
        if epoch >= s.anneal * self.context.epochs:
            self.weights[bits] = torch.ones(n)
            return Selection(torch.arange(n), 0)
        losses = self.observed.setdefault(bits, torch.full((n,), math.nan))
        if epoch > 0 and torch.isnan(losses).all():
            raise RuntimeError(f"infobatch: no {bits}-bit training loss observed before epoch {epoch}; the training "
                               "loop must call observe after each forward pass (and a resumed run restore the "
                               "sampler's state_dict())")
        kept, self.weights[bits] = infobatch_prune(losses, s.prune_prob, self.draw(epoch, bits))
        return Selection(kept, 0)

    def watches_training(self) -> bool:
        return True

    def observe(self, bits: int, indices: Tensor, logits: Tensor) -> None:
        losses = self.observed.setdefault(bits, torch.full((len(self.targets),), math.nan))
        losses[indices] = F.cross_entropy(logits.detach().float().cpu(), self.targets[indices], reduction="none")

    def loss_weights(self, bits: int, indices: Tensor) -> Tensor:
        if bits not in self.weights:
            raise RuntimeError(f"no {bits}-bit loss weights: call select() for this epoch first")
        return self.weights[bits][indices]

    def state_dict(self) -> dict:
        return {"observed": dict(self.observed)}

    def load_state_dict(self, state: dict) -> None:
        self.observed = dict(state["observed"])
