"""Notebook 01: how far each bit-width's BatchNorm inputs drift from the 32-bit child's, with and without
weight bias correction (docs/method.md §3.3)."""
from __future__ import annotations

import pandas as pd
import torch

from ...bits import FULL_PRECISION
from .. import analysis
from ..build import load_run_data
from ..config import RunConfig, profile_config
from .common import run_all

VARIANTS = {"shared BN + correction": {},
            "shared BN, no correction": {"model": {"quant": {"bias_correction": False}}}}


def probe_inputs(config: RunConfig, n_batches: int = 10, batch_size: int = 256) -> list[torch.Tensor]:
    """Fixed augmentation-free test batches (docs/method.md §3.3: 10 x 256 images)."""
    _, test = load_run_data(config)
    n = min(len(test), n_batches * batch_size)
    return [test.inputs(torch.arange(s, min(s + batch_size, n))) for s in range(0, n, batch_size)]


def activation_alignment(profile: str = "cpu", seed: int = 0, bits=(1, 2, 3, 4, 5, 6, 7, 8)) -> pd.DataFrame:
    """Per-layer gaps between each bit-width's BN-input statistics and the 32-bit child's, with and without
    weight bias correction (docs/method.md §3.3)."""
    frames = []
    runs = run_all([profile_config(profile, "emq", short=True, seed=seed, **changes) for changes in VARIANTS.values()])
    for label, r in zip(VARIANTS, runs):
        stats = analysis.bn_input_stats(r.model(), probe_inputs(r.config), [*bits, FULL_PRECISION])
        trained = r.config.model.bits
        frames.append(analysis.alignment_gaps(stats).assign(variant=label, trained=lambda f: f.bits.isin(trained)))
    return pd.concat(frames, ignore_index=True)
