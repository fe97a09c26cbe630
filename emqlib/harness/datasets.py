"""Where the data sets come from, and the subsets, splits and label noise the studies make of them.

* ``fashion-mnist``: the idx files of the Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``), or ``$EMQ_DATA_DIR/fashion-mnist``, or torchvision's
  downloader when ``EMQ_DOWNLOAD=1``.
* ``cifar10`` / ``cifar100``: torchvision's on-disk format under ``$EMQ_DATA_DIR``, downloaded by
  torchvision when ``EMQ_DOWNLOAD=1``; augmentation is random crop 32 with padding 4 and a
  horizontal flip (docs/method.md §11).
* ``synthetic``: a tiny deterministic data set (class prototypes plus noise) for tests.

Nothing is downloaded unless the user allows it; a missing data set raises
:class:`DatasetMissingError` naming the command that installs it.
"""
from __future__ import annotations

import gzip
import pickle
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..budgets import class_budgets
from ..data import ImageDataset
from . import paths

DATASETS = ("fashion-mnist", "cifar10", "cifar100", "synthetic")
# (classes, channels, image size): what a model needs to know before the data is loaded
DATASET_SHAPES = {"fashion-mnist": (10, 1, 28), "cifar10": (10, 3, 32), "cifar100": (100, 3, 32), "synthetic": (4, 1, 16)}


class DatasetMissingError(FileNotFoundError):
    """A data set is not on this machine; the message says how to get it."""


# ---------------------------------------------------------------- loading

def load_dataset(name: str, train: bool) -> ImageDataset:
    """Load the train or test split of data set ``name``."""
    require_dataset(name, train)
    if name == "fashion-mnist":
        return _load_fashion_mnist(train)
    if name == "synthetic":
        return synthetic_dataset(train)
    return _load_cifar(name, train)


_FASHION_FILES = {True: ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                  False: ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def fashion_mnist_dirs() -> list[Path]:
    """Where Fashion-MNIST is looked for, in order."""
    return [paths.data_dir() / "fashion-mnist", paths.DEBIAN_FASHION_MNIST,
            paths.data_dir() / "FashionMNIST" / "raw"]


def _fashion_mnist_folder(train: bool) -> Path | None:
    """The first folder that holds the Fashion-MNIST split, or None."""
    images_name, labels_name = _FASHION_FILES[train]
    return next((folder for folder in fashion_mnist_dirs()
                 if (folder / images_name).exists() and (folder / labels_name).exists()), None)


def _cifar_folder(name: str, train: bool):
    """(torchvision class, folder, file list) of a CIFAR split."""
    import torchvision

    cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    return cls, paths.data_dir() / cls.base_folder, cls.train_list if train else cls.test_list


def _missing_message(name: str, splits: tuple[bool, ...]) -> str | None:
    """Why data set ``name`` cannot be loaded here and how to get it, or None when it can."""
    if name == "synthetic" or paths.downloads_allowed():
        return None
    if name == "fashion-mnist":
        if all(_fashion_mnist_folder(train) is not None for train in splits):
            return None
        searched = ", ".join(str(d) for d in fashion_mnist_dirs())
        return (f"Fashion-MNIST not found (looked in {searched}). Install it with "
                "`sudo apt-get install -y dataset-fashion-mnist` (Debian/Ubuntu), or put the idx .gz files in "
                "$EMQ_DATA_DIR/fashion-mnist, or set EMQ_DOWNLOAD=1 to let torchvision download it.")
    for train in splits:
        _, folder, files = _cifar_folder(name, train)
        if not all((folder / f).exists() for f, _ in files):
            return (f"{name} not found in {folder}. On a machine with internet run "
                    f"`EMQ_DOWNLOAD=1 python -m emqlib download {name}` (or set EMQ_DATA_DIR to where it is).")
    return None


def require_dataset(name: str, train: bool | None = None) -> None:
    """Raise DatasetMissingError, naming the install command, when the split (both when ``train``
    is None) of ``name`` is not on this machine and downloads are not allowed. Only looks for files."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {DATASETS}")
    message = _missing_message(name, (True, False) if train is None else (train,))
    if message:
        raise DatasetMissingError(message)


class DownloadError(ConnectionError):
    """A data set could not be downloaded (offline, or the server failed)."""


def _download(dataset_class, name: str, train: bool) -> None:
    """torchvision's downloader into ``$EMQ_DATA_DIR``; its failures (it raises RuntimeError or
    URLError) become one DownloadError that says what to do."""
    from urllib.error import URLError

    try:
        dataset_class(paths.data_dir(), train=train, download=True)
    except (RuntimeError, URLError, ConnectionError, TimeoutError) as error:
        reason = str(getattr(error, "reason", error)).strip().splitlines()[0]
        raise DownloadError(f"downloading {name} into {paths.data_dir()} failed ({reason}); check the internet "
                            f"connection and run `EMQ_DOWNLOAD=1 python -m emqlib download {name}` again, or copy the "
                            "data set there from a machine that has it") from None


def _load_fashion_mnist(train: bool) -> ImageDataset:
    images_name, labels_name = _FASHION_FILES[train]
    require_dataset("fashion-mnist", train)
    folder = _fashion_mnist_folder(train)
    if folder is None:
        import torchvision

        _download(torchvision.datasets.FashionMNIST, "fashion-mnist", train)
        folder = paths.data_dir() / "FashionMNIST" / "raw"
    images = read_idx(folder / images_name)
    labels = read_idx(folder / labels_name)
    return ImageDataset("fashion-mnist", torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).long(), 10)


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (gzip-compressed or not), the format of MNIST and Fashion-MNIST."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, OSError, zlib.error) as error:  # a cut or damaged .gz file
        raise DatasetMissingError(f"{path} is truncated or damaged ({error}); reinstall the data set") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise DatasetMissingError(f"{path} is not an unsigned-byte idx file; reinstall the data set")
    n_dims = data[3]
    if len(data) < 4 + 4 * n_dims:
        raise DatasetMissingError(f"{path} is truncated (its header is incomplete); reinstall it")
    shape = struct.unpack(f">{n_dims}I", data[4:4 + 4 * n_dims])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * n_dims)
    if body.size != int(np.prod(shape)):
        raise DatasetMissingError(f"{path} is truncated ({body.size} of {int(np.prod(shape))} bytes); reinstall it")
    return body.reshape(shape).copy()


def _load_cifar(name: str, train: bool) -> ImageDataset:
    require_dataset(name, train)
    cls, folder, files = _cifar_folder(name, train)
    if not all((folder / f).exists() for f, _ in files):
        _download(cls, name, train)  # downloads and checks the archive's md5
    images, labels = [], []
    for filename, _ in files:
        try:
            with open(folder / filename, "rb") as f:
                entry = pickle.load(f, encoding="latin1")
        except (EOFError, pickle.UnpicklingError) as error:
            raise DatasetMissingError(f"{folder / filename} is truncated or damaged ({error}); delete {folder} and "
                                      f"run `EMQ_DOWNLOAD=1 python -m emqlib download {name}` again") from None
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
    return ImageDataset(name, torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.long),
                        10 if name == "cifar10" else 100)


def synthetic_dataset(train: bool, num_classes: int = 4, per_class: int = 48, size: int = 16) -> ImageDataset:
    """Class prototypes (smooth random patterns) plus pixel noise; the same bytes every call."""
    generator = torch.Generator().manual_seed(1234)
    prototypes = F.interpolate(torch.rand(num_classes, 1, 4, 4, generator=generator), size=size, mode="bilinear",
                               align_corners=False)
    split = torch.Generator().manual_seed(1 if train else 2)
    n = per_class if train else per_class // 2
    targets = torch.arange(num_classes).repeat_interleave(n)
    noise = torch.rand(len(targets), 1, size, size, generator=split)
    images = (0.6 * prototypes[targets] + 0.4 * noise).mul(255).round().to(torch.uint8)
    return ImageDataset("synthetic", images, targets, num_classes)


# ---------------------------------------------------------------- subsets and label noise

def balanced_subset(targets: Tensor, n_per_class: int | None = None, fraction: float | None = None,
                    seed: int = 0) -> Tensor:
    """Sorted indices of a class-balanced random subset: ``n_per_class`` samples of each class,
    or ``round(fraction * n_c)`` of class c. The same arguments always give the same subset."""
    if (n_per_class is None) == (fraction is None):
        raise ValueError("give exactly one of n_per_class and fraction")
    if fraction is None and (not isinstance(n_per_class, int) or n_per_class < 1):
        raise ValueError(f"n_per_class must be a positive integer, got {n_per_class!r}")
    budgets = class_budgets(targets, fraction) if fraction is not None else None
    generator = torch.Generator().manual_seed(seed)
    keep = []
    for c in torch.unique(targets).tolist():
        members = torch.nonzero(targets == c).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        budget = n_per_class if budgets is None else budgets[c]
        if budget > len(members):
            raise ValueError(f"class {c} has {len(members)} samples, fewer than n_per_class={budget}; ask for at most "
                             f"{len(members)} per class (the run options train_per_class and test_per_class)")
        keep.append(members[:budget])
    return torch.sort(torch.cat(keep)).values


VALIDATION_SEED = 20231  # the held-out validation samples are the same for every run seed


def holdout_validation(train: ImageDataset, n_per_class: int) -> tuple[ImageDataset, ImageDataset]:
    """Split a training set into (rest, validation): ``n_per_class`` samples of each class, drawn
    with a fixed seed, are held out to choose settings on, so that the test set is never used for it."""
    held_out = balanced_subset(train.targets, n_per_class=n_per_class, seed=VALIDATION_SEED)
    rest = torch.ones(len(train), dtype=torch.bool)
    rest[held_out] = False
    return train.subset(torch.nonzero(rest).flatten()), train.subset(held_out)


def check_noise_rate(rate) -> float:
    """A label noise rate must lie in [0, 1)."""
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 <= rate < 1:
        raise ValueError(f"label noise rate must be in [0, 1), got {rate!r}; e.g. 0.1 for 10% wrong labels")
    return float(rate)


def add_label_noise(dataset: ImageDataset, rate: float, seed: int = 0) -> ImageDataset:
    """Symmetric label noise: ``round(rate * N)`` samples get a label drawn uniformly from the
    *other* classes, so exactly that many labels are wrong (recorded in ``flipped``)."""
    check_noise_rate(rate)
    n = len(dataset)
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(n, generator=generator)[:round(rate * n)]
    shift = torch.randint(1, dataset.num_classes, (len(chosen),), generator=generator)
    targets = dataset.clean_targets.clone()
    targets[chosen] = (targets[chosen] + shift) % dataset.num_classes
    return ImageDataset(dataset.name, dataset.images, targets, dataset.num_classes, dataset.clean_targets,
                        targets != dataset.clean_targets)
