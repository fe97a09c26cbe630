"""Notebook 03: the angles between the gradients of every pair of trained bit-widths (docs/method.md §6.5)."""
from __future__ import annotations

import pandas as pd
import torch

from .. import analysis
from ..build import load_run_data
from ..config import profile_config
from .common import run


def gradient_angle_study(profile: str = "cpu", seed: int = 0, n_batches: int = 8, batch_size: int = 128) -> pd.DataFrame:
    """Angles between the per-layer gradients of every pair of trained bit-widths, at the end of every epoch
    of the EMQ run (weights from its snapshots; docs/method.md §6.5: 8 x 128 training images)."""
    config = profile_config(profile, "emq", short=True, seed=seed)
    r = run(config)
    train, _ = load_run_data(config)
    n = min(len(train), n_batches * batch_size)
    probe = [(train.inputs(torch.arange(s, min(s + batch_size, n))), train.targets[s:s + batch_size])
             for s in range(0, n, batch_size)]
    frames = []
    every = config.record.snapshot_every
    for epoch in range(config.optim.epochs):
        if every and (epoch + 1) % every == 0:
            angles = analysis.gradient_angles(r.model(epoch=epoch), probe, list(config.model.bits))
            frames.append(angles.assign(epoch=epoch))
    return pd.concat(frames, ignore_index=True)
