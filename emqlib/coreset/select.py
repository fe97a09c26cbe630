"""Coreset selection rules. All return sorted sample indices (LongTensor).

Per-class budgets are round(fraction * n_c) (Python's round, so exact halves go to the even
integer), at least 1 for every present class. The rules: top-k by score (EMQ, ACS, EL2N,
forgetting, TDDS), uniform (Random), importance sampling (``score_sample``), coverage-centric
strata (``ccs_select``, CCS), the full-coverage split (``split_part``), repeated sampling without
replacement (``rs2_window``, RS2), k-center greedy, Moderate, and InfoBatch's soft pruning
(``infobatch_prune``, which has no fixed budget).
"""

import math

import torch
from torch import Tensor

# budgets and checks shared with class-balanced data subsets (emqlib.budgets); the private
# names are the ones this module's rules use
from ..budgets import budget as _budget
from ..budgets import check_fraction, class_budgets  # noqa: F401 (part of emqlib.coreset's API)
from ..budgets import check_labels as _check_labels


def class_groups(n: int, labels: Tensor | None, class_balanced: bool) -> list[Tensor]:
    """Index sets selected independently: one per class (ascending class id), or all samples."""
    if not class_balanced:
        return [torch.arange(n)]
    if labels is None:
        raise ValueError("class_balanced=True needs labels")
    _check_labels(labels, n)
    return [torch.nonzero(labels == c).flatten() for c in torch.unique(labels)]


def _check_scores(scores: Tensor, labels: Tensor | None) -> None:
    if scores.dim() != 1:
        raise ValueError(f"scores must have shape [N], got {tuple(scores.shape)}")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    if labels is not None:
        _check_labels(labels, scores.shape[0])


def select(
    scores: Tensor,
    fraction: float,
    labels: Tensor | None = None,
    class_balanced: bool = True,
    largest: bool = True,
) -> Tensor:
    """Keep the highest (largest=True) or lowest scores, per class or globally.

    Ties go to the lower sample index (stable sort).
    """
    fraction = check_fraction(fraction)
    _check_scores(scores, labels)
    kept = []
    for idx in class_groups(scores.shape[0], labels, class_balanced):
        order = torch.sort(scores[idx], descending=largest, stable=True).indices
        kept.append(idx[order[: _budget(len(idx), fraction)]])
    return torch.cat(kept).sort().values


def random_subset(
    labels: Tensor, fraction, generator: torch.Generator, class_balanced: bool = True
) -> Tensor:
    """Uniform sample without replacement (the Random baseline), same budgets as `select`."""
    fraction = check_fraction(fraction)
    _check_labels(labels)
    kept = []
    for idx in class_groups(labels.shape[0], labels, class_balanced):
        perm = torch.randperm(len(idx), generator=generator)
        kept.append(idx[perm[: _budget(len(idx), fraction)]])
    return torch.cat(kept).sort().values


def _check_epoch_rule(fraction, labels: Tensor, epoch: int) -> float:
    """The checks of a rule that gives each epoch its own part of every class; returns the fraction."""
    fraction = check_fraction(fraction)
    _check_labels(labels)
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    return fraction


def split_part(labels: Tensor, fraction, epoch: int, generator: torch.Generator) -> Tensor:
    """The full-coverage split (ACS Tab. 8): each class, in a fixed random order, is cut into parts
    of its budget round(fraction * n_c), used in turn one per epoch, wrapping around the order, so
    every sample is trained on once in every ceil(n_c / budget) consecutive epochs (ceil(1/S) when
    the budget divides n_c) and no sample twice within one epoch. ``generator`` fixes the order; it
    must be seeded the same way at every epoch (the part depends only on the seed and ``epoch``)."""
    fraction = _check_epoch_rule(fraction, labels, epoch)
    kept = []
    for idx in class_groups(labels.shape[0], labels, True):
        order, budget = torch.randperm(len(idx), generator=generator), _budget(len(idx), fraction)
        kept.append(idx[order[(epoch * budget + torch.arange(budget)) % len(idx)]])
    return torch.cat(kept).sort().values


def rs2_window(labels: Tensor, fraction, epoch: int, order_of_pass) -> Tensor:
    """Repeated sampling without replacement (RS2, Okanovic et al., ICLR 2024), per class: pass p over the
    class is a random order (``order_of_pass(p)``, a generator that must give the same order for the same p),
    cut into P = ceil(n_c / k_c) windows of the budget k_c; epoch e trains on window e mod P of pass
    e // P. A last window shorter than k_c is topped up with samples drawn from earlier windows of the
    same pass, so every epoch has k_c samples, none twice, and every sample is seen in every pass."""
    fraction = _check_epoch_rule(fraction, labels, epoch)
    kept = []
    for idx in class_groups(labels.shape[0], labels, True):
        budget = _budget(len(idx), fraction)
        windows = math.ceil(len(idx) / budget)
        draw = order_of_pass(epoch // windows)
        order = torch.randperm(len(idx), generator=draw)
        start = (epoch % windows) * budget
        window = order[start:start + budget]
        if len(window) < budget:  # the pass's last window: topped up from the samples seen earlier in the pass
            earlier = order[:start]
            window = torch.cat([window, earlier[torch.randperm(len(earlier), generator=draw)[:budget - len(window)]]])
        kept.append(idx[window])
    return torch.cat(kept).sort().values


def _log(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf


def score_sample(scores: Tensor, fraction, labels: Tensor, tau: float, uniform_share: float,
                 generator: torch.Generator) -> Tensor:
    """Importance sampling without replacement, per class: EMQ's subsets re-sampled every epoch.

    Within class c (n_c samples, budget k_c) sample i has probability
    p_i = (1 - uniform_share) * s_i^tau / sum_j s_j^tau + uniform_share / n_c, and k_c samples are drawn
    one after another without replacement (successive sampling), computed as the k_c largest
    log p_i + Gumbel noise (Gumbel-top-k, Kool et al. 2019) in log space, so that a large tau with
    uniform_share = 0 gives the top-k rule exactly and uniform_share = 1 a uniform draw. Scores >= 0.
    """
    fraction = check_fraction(fraction)
    _check_scores(scores, labels)
    if (scores < 0).any():
        raise ValueError("importance sampling needs scores >= 0")
    if not tau >= 0:
        raise ValueError(f"tau must be >= 0, got {tau!r}")
    if not 0 <= uniform_share <= 1:
        raise ValueError(f"uniform_share must be in [0, 1], got {uniform_share!r}")
    kept = []
    for idx in class_groups(scores.shape[0], labels, class_balanced=True):
        s = scores[idx].double()
        log_weight = torch.zeros_like(s) if tau == 0 else tau * torch.log(s)  # s = 0: weight 0, drawn last
        if torch.isinf(log_weight).all():  # every score 0: the score part is uniform
            log_weight = torch.zeros_like(s)
        log_score_part = log_weight - torch.logsumexp(log_weight, 0) + _log(1 - uniform_share)
        log_p = torch.logaddexp(log_score_part, torch.full_like(s, _log(uniform_share / len(idx))))
        uniform = torch.rand(len(idx), generator=generator, dtype=torch.float64).clamp_min(1e-300)
        keys = log_p - torch.log(-torch.log(uniform))
        order = torch.sort(keys, descending=True, stable=True).indices
        kept.append(idx[order[:_budget(len(idx), fraction)]])
    return torch.cat(kept).sort().values


def _strata_budgets(sizes: list[int], budget: int) -> list[int]:
    """CCS Alg. 1: from the smallest stratum up, each takes min(its size, floor(budget left / strata left))."""
    taken = [0] * len(sizes)
    for left, i in enumerate(sorted(range(len(sizes)), key=lambda j: sizes[j])):
        taken[i] = min(sizes[i], budget // (len(sizes) - left))
        budget -= taken[i]
    return taken


def ccs_select(scores: Tensor, fraction, labels: Tensor, hard_share: float, strata: int,
               generator: torch.Generator) -> Tensor:
    """Coverage-centric coreset selection (Zheng et al., ICLR 2023, Alg. 1), per class.

    Drop the floor(hard_share * n_c) highest scores (the hardest samples, likely mislabelled; at most
    n_c - k_c, so that the budget k_c can be met), split the rest into ``strata`` equal-width score
    ranges over [min, max], and spend k_c over the strata from the smallest up, each taking
    min(its size, floor(budget left / strata left)) samples drawn uniformly.
    """
    fraction = check_fraction(fraction)
    _check_scores(scores, labels)
    if not 0 <= hard_share < 1:
        raise ValueError(f"hard_share must be in [0, 1), got {hard_share!r}")
    if isinstance(strata, bool) or not isinstance(strata, int) or strata < 1:
        raise ValueError(f"strata must be an integer >= 1, got {strata!r}")
    kept = []
    for idx in class_groups(scores.shape[0], labels, class_balanced=True):
        budget = _budget(len(idx), fraction)
        hardest_first = torch.sort(scores[idx], descending=True, stable=True).indices
        rest = idx[hardest_first[min(int(hard_share * len(idx)), len(idx) - budget):]]
        s = scores[rest].double()
        width = (s.max() - s.min()) / strata
        stratum = (((s - s.min()) / width).floor().clamp(max=strata - 1).long() if width > 0
                   else torch.zeros(len(s), dtype=torch.long))
        members = [rest[stratum == k] for k in range(strata)]
        for group, take in zip(members, _strata_budgets([len(m) for m in members], budget)):
            kept.append(group[torch.randperm(len(group), generator=generator)[:take]])
    return torch.cat(kept).sort().values


