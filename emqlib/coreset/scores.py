"""Per-sample importance scores for coreset selection (EMQ bit-wise coreset, ACS Defs. 1-2, baselines).

All functions are pure tensor functions: they compute in the input dtype, do no I/O and do not
rely on autograd (inputs may or may not require grad).
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

BETA_SCHEDULES = ("cosine", "linear", "sqrt", "quadratic", "fixed", "evs-only", "ds-only", "repo-cosine")


def check_logits(logits: Tensor, targets: Tensor | None = None) -> None:
    if logits.dim() != 2:
        raise ValueError(f"logits must have shape [N, C], got {tuple(logits.shape)}")
    if targets is not None:
        if targets.dim() != 1 or targets.shape[0] != logits.shape[0]:
            raise ValueError(
                f"targets must have shape [N] = [{logits.shape[0]}], got {tuple(targets.shape)}"
            )
        if targets.dtype.is_floating_point or targets.dtype == torch.bool:
            raise ValueError(f"targets must be integer class indices, got dtype {targets.dtype}")


def evs(logits: Tensor, targets: Tensor) -> Tensor:
    """ACS error vector score (Def. 1): ||softmax(logits) - onehot(targets)||_2 per sample.

    Computed on an early-trained model this is the EL2N score (Paul et al. 2021); it is also the
    per-sample norm of the CE gradient w.r.t. the last layer's bias (EMQ's default score here).
    """
    check_logits(logits, targets)
    probs = logits.softmax(dim=1)
    onehot = F.one_hot(targets, num_classes=logits.shape[1]).to(probs.dtype)
    return torch.linalg.vector_norm(probs - onehot, dim=1)


def ds(logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """ACS disagreement score (Def. 2): ||softmax(logits) - softmax(teacher_logits)||_2 per sample."""
    check_logits(logits)
    if teacher_logits.shape != logits.shape:
        raise ValueError(
            f"teacher_logits must have the same shape as logits {tuple(logits.shape)}, "
            f"got {tuple(teacher_logits.shape)}"
        )
    return torch.linalg.vector_norm(logits.softmax(dim=1) - teacher_logits.softmax(dim=1), dim=1)


def acs_beta(epoch: int, total_epochs: int, schedule: str = "cosine") -> float:
    """ACS weight beta(t) of the EVS term (ACS Tab. 4 ablation), in [0, 1], with u = t / E.

    u = epoch / total_epochs as in the ACS paper and its code, so a decaying schedule starts at exactly
    1 at epoch 0 and ends just above 0 at the last epoch, t = E - 1 (linear gives 1/E there).
    "repo-cosine" is QAT-ACS's 0.5 * (1 + cos(pi * u)); the paper's cosine is cos(pi * u / 2).
    """
    if schedule not in BETA_SCHEDULES:
        raise ValueError(f"unknown beta schedule {schedule!r}; allowed: {', '.join(BETA_SCHEDULES)}")
    if total_epochs < 1:
        raise ValueError(f"total_epochs must be >= 1, got {total_epochs}")
    if not 0 <= epoch <= total_epochs - 1:
        raise ValueError(
            f"epoch must be in [0, {total_epochs - 1}] for total_epochs={total_epochs}, got {epoch}"
        )
    u = epoch / total_epochs
    return {
        "cosine": lambda: math.cos(math.pi * u / 2),
        "linear": lambda: 1.0 - u,
        "sqrt": lambda: 1.0 - math.sqrt(u),
        "quadratic": lambda: 1.0 - u**2,
        "fixed": lambda: 0.5,
        "evs-only": lambda: 1.0,
        "ds-only": lambda: 0.0,
        "repo-cosine": lambda: 0.5 * (1.0 + math.cos(math.pi * u)),
    }[schedule]()


def acs_score(logits: Tensor, teacher_logits: Tensor, targets: Tensor, beta: float) -> Tensor:
    """ACS score d_ACS = beta * d_EVS + (1 - beta) * d_DS (ACS Sec. 3)."""
    if not 0.0 <= beta <= 1.0:  # also rejects NaN
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    return beta * evs(logits, targets) + (1.0 - beta) * ds(logits, teacher_logits)


def grand_last_layer_score(logits: Tensor, targets: Tensor, features: Tensor) -> Tensor:
    """GraNd restricted to the last Linear layer (as DeepCore computes it; an option for EMQ's score):
    evs * sqrt(1 + ||h||_2^2).

    For logits = W h + b, the CE gradient is (p - y) h^T for W and (p - y) for b, so the exact
    per-sample norm over (W, b) is ||p - y||_2 * sqrt(1 + ||h||_2^2); h = penultimate features.
    """
    if features.dim() != 2 or features.shape[0] != logits.shape[0]:
        raise ValueError(
            f"features must have shape [N, D] with N = {logits.shape[0]}, got {tuple(features.shape)}"
        )
    feat_sq = torch.linalg.vector_norm(features, dim=1) ** 2
    return evs(logits, targets) * torch.sqrt(1.0 + feat_sq)


