"""Images and labels held in memory, and the shuffled mini-batches training reads from them.

A data set keeps its images as uint8 tensors and serves normalised float inputs, optionally
augmented with a random crop and horizontal flip (docs/method.md §11); each sample comes with its
index, which the coreset samplers use. Where the data sets come from is
:mod:`emqlib.harness.datasets`.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor


# per-channel mean and std of the training images (inputs scaled to [0, 1])
_NORMALIZATION = {
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "synthetic": ((0.5,), (0.25,)),
}
_CROP_PADDING = {"fashion-mnist": 2, "cifar10": 4, "cifar100": 4, "synthetic": 2}


@dataclass
class ImageDataset(torch.utils.data.Dataset):
    """Images [N, C, H, W] uint8 and targets [N] in memory; items are ``(input, target, index)``.

    ``clean_targets`` are the labels before any label noise; ``flipped`` marks samples whose
    label was changed by :func:`add_label_noise`.
    """

    name: str
    images: Tensor
    targets: Tensor
    num_classes: int
    clean_targets: Tensor = field(default=None)
    flipped: Tensor = field(default=None)

    def __post_init__(self) -> None:
        if self.clean_targets is None:
            self.clean_targets = self.targets.clone()
        if self.flipped is None:
            self.flipped = torch.zeros(len(self.targets), dtype=torch.bool)
        mean, std = _NORMALIZATION[self.name]
        self._mean = torch.tensor(mean).view(1, -1, 1, 1)
        self._std = torch.tensor(std).view(1, -1, 1, 1)

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def in_channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> int:
        return self.images.shape[2]

    def __getitem__(self, index: int) -> tuple[Tensor, int, int]:
        return self.inputs(torch.tensor([index]))[0], int(self.targets[index]), int(index)

    def inputs(self, indices: Tensor, augment: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """Normalised float inputs for ``indices``, optionally augmented (random crop + flip)."""
        x = self.images[indices].float().div_(255)
        if augment:
            x = random_crop_flip(x, _CROP_PADDING[self.name], generator)
        return (x - self._mean) / self._std

    def subset(self, indices: Tensor) -> ImageDataset:
        """A new data set holding only ``indices`` (re-indexed from 0)."""
        return ImageDataset(self.name, self.images[indices], self.targets[indices], self.num_classes,
                            self.clean_targets[indices], self.flipped[indices])


def random_crop_flip(x: Tensor, padding: int, generator: torch.Generator | None) -> Tensor:
    """Random crop with zero padding and random horizontal flip, one draw per image."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    cols = torch.arange(w).expand(n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols) + dx[:, None]
    rows = torch.arange(h)[None, :] + dy[:, None]
    batch = torch.arange(n)[:, None, None, None]
    channel = torch.arange(c)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def batches(dataset: ImageDataset, indices: Tensor, batch_size: int, generator: torch.Generator | None = None,
            shuffle: bool = True, augment: bool = False) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Mini-batches ``(input, target, index)`` over ``indices``, shuffled with ``generator``."""
    if shuffle:
        indices = indices[torch.randperm(len(indices), generator=generator)]
    for start in range(0, len(indices), batch_size):
        chunk = indices[start:start + batch_size]
        yield dataset.inputs(chunk, augment, generator), dataset.targets[chunk], chunk
