"""Seeds derived from the run seed, so that every random draw of epoch e is fixed by (seed, e).

Re-seeding at the start of each epoch makes a run resumed from a checkpoint draw exactly
what the uninterrupted run drew.
"""
from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, *keys) -> int:
    """A 63-bit seed for the random stream named by ``keys`` within run seed ``seed``."""
    digest = hashlib.sha256(repr((seed, *keys)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, *keys) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, *keys))
