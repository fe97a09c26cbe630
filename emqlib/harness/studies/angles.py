"""Notebook 03: the angles between the gradients of every pair of trained bit-widths, epoch by epoch, in EMQ's
sequential bit-wise training scheme (the scheme the paper measures them in; docs/method.md §6.5)."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from .. import analysis
from ..build import load_run_data
from ..stats import permutation_p, spearman
from .common import run_all, with_checks
from .pruning import RANDOM, arm_config

# the runs measured: ResNet-8 (the profile's model; E10 reads its angles at every epoch) and a ResNet-20, whose 18
# quantized layers can show a trend with depth that 6 cannot (E11 reads its last epoch only); ResNet-8's stride-2
# stem for Fashion-MNIST's 28x28 images, a third of the stride-1 ResNet-20's training time
MODELS = ("resnet8", "resnet20-28px")


def angle_runs(profile: str, seeds: Sequence[int], models: Sequence[str] = MODELS, fraction: float = 0.2):
    """The bit-wise runs measured: EMQ's sequential loop on per-bit subsets re-drawn every epoch (the uniform arm
    of notebook 04's table, shared with it for ResNet-8), a weight snapshot per epoch."""
    return {(model, seed): arm_config(profile, RANDOM, fraction, seed).replace(model={"name": model})
            for model in models for seed in seeds}


def gradient_angle_study(profile: str = "cpu", seeds: Sequence[int] = (0, 1, 2), models: Sequence[str] = MODELS,
                         n_batches: int = 8, batch_size: int = 128) -> pd.DataFrame:
    """Angles between the per-layer gradients of every pair of trained bit-widths (docs/method.md §6.5: 8 x 128
    training images, CE gradients of the latent weights), per model and seed: at the end of every epoch for the
    first model (the trajectory), after the last epoch for the others (the depth trend)."""
    plan = angle_runs(profile, seeds, models)
    frames = []
    for (model, seed), r in zip(plan, run_all(list(plan.values()))):
        config = r.config
        train, _ = load_run_data(config)
        n = min(len(train), n_batches * batch_size)
        probe = [(train.inputs(torch.arange(s, min(s + batch_size, n))), train.targets[s:s + batch_size])
                 for s in range(0, n, batch_size)]
        epochs = range(config.optim.epochs) if model == models[0] else [config.optim.epochs - 1]
        for epoch in epochs:
            angles = analysis.gradient_angles(r.model(epoch=epoch), probe, list(config.model.bits))
            frames.append(angles.assign(model=model, seed=seed, epoch=epoch, run=r.path.name))
    return with_checks(pd.concat(frames, ignore_index=True),
                       [(dict(model=model, seed=seed), config) for (model, seed), config in plan.items()], ["model"])


def depth_trends(angles: pd.DataFrame, permutations: int = 10_000) -> pd.DataFrame:
    """Per model and seed: the Spearman correlation of layer depth with the angle at the last epoch (mean over
    the bit pairs; negative: deeper layers more aligned), and its one-sided permutation p-value (the share of
    random orders of the layers that correlate as negatively), over how many layers."""
    rows = []
    for (model, seed), group in angles.groupby(["model", "seed"]):
        last = group[(group.epoch == group.epoch.max()) & (group.layer_index >= 0)]
        per_layer = last.groupby("layer_index").angle.mean()
        rho = spearman(per_layer.index, per_layer.to_numpy())
        rows.append({"model": model, "seed": seed, "layers": len(per_layer), "spearman": rho,
                     "p_value": permutation_p(per_layer.index, per_layer.to_numpy(), permutations)})
    return pd.DataFrame(rows)
