"""Coreset selection rules (SPEC 6.2, 7.3 and 8). All return sorted sample indices (LongTensor).

Per-class budgets are round(fraction * n_c) (Python's round, so exact halves go to the even
integer), at least 1 for every present class.
"""

import math

import torch
from torch import Tensor

# budgets and checks shared with class-balanced data subsets (emqlib.budgets); the private
# names are the ones this module's rules use
from ..budgets import budget as _budget
from ..budgets import check_fraction, class_budgets  # noqa: F401 (part of emqlib.coreset's API)
from ..budgets import check_labels as _check_labels


def _groups(n: int, labels: Tensor | None, class_balanced: bool) -> list[Tensor]:
    """Index sets selected independently: one per class (ascending class id), or all samples."""
    if not class_balanced:
        return [torch.arange(n)]
    if labels is None:
        raise ValueError("class_balanced=True needs labels")
    _check_labels(labels, n)
    return [torch.nonzero(labels == c).flatten() for c in torch.unique(labels)]


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
    if scores.dim() != 1:
        raise ValueError(f"scores must have shape [N], got {tuple(scores.shape)}")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    if labels is not None:
        _check_labels(labels, scores.shape[0])
    kept = []
    for idx in _groups(scores.shape[0], labels, class_balanced):
        order = torch.sort(scores[idx], descending=largest, stable=True).indices
        kept.append(idx[order[: _budget(len(idx), fraction)]])
    return torch.cat(kept).sort().values


def random_subset(
    labels: Tensor, fraction, generator: torch.Generator, class_balanced: bool = True
) -> Tensor:
    """Uniform sample without replacement (SPEC 8 "Random"), same budgets as `select`."""
    fraction = check_fraction(fraction)
    _check_labels(labels)
    kept = []
    for idx in _groups(labels.shape[0], labels, class_balanced):
        perm = torch.randperm(len(idx), generator=generator)
        kept.append(idx[perm[: _budget(len(idx), fraction)]])
    return torch.cat(kept).sort().values


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
    for idx in _groups(features.shape[0], labels, class_balanced):
        kept.append(idx[_kcenter(features[idx], _budget(len(idx), fraction), generator)])
    return torch.cat(kept).sort().values


def _median(x: Tensor) -> Tensor:
    """Median along dim 0, averaging the two middle values for even sizes (as numpy does)."""
    s = x.sort(dim=0).values
    n = x.shape[0]
    return (s[(n - 1) // 2] + s[n // 2]) / 2


def moderate_select(features: Tensor, labels: Tensor, fraction) -> Tensor:
    """Moderate coreset (Xia et al. 2023, SPEC 8): per class, keep the samples whose distance to the
    per-dimension median feature is closest to the median of those distances (ties: lower index)."""
    fraction = check_fraction(fraction)
    if features.dim() != 2:
        raise ValueError(f"features must have shape [N, D], got {tuple(features.shape)}")
    kept = []
    for idx in _groups(features.shape[0], labels, class_balanced=True):
        x = features[idx]
        dist = torch.linalg.vector_norm(x - _median(x), dim=1)
        order = torch.sort((dist - _median(dist)).abs(), stable=True).indices
        kept.append(idx[order[: _budget(len(idx), fraction)]])
    return torch.cat(kept).sort().values
