"""Data sets: Fashion-MNIST from the Debian files, CIFAR in torchvision's on-disk format,
augmentation, class-balanced subsets, label noise, and the errors for missing or bad data."""
from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
import torchvision

from emqlib.data import ImageDataset, batches, random_crop_flip
from emqlib.harness import paths
from emqlib.harness.datasets import (DATASET_SHAPES, DATASETS, DatasetMissingError, add_label_noise, balanced_subset,
                                     load_dataset, read_idx, require_dataset, synthetic_dataset)


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """No test here may download: downloads are off, and torchvision's downloaders fail loudly."""
    monkeypatch.delenv("EMQ_DOWNLOAD", raising=False)

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"{type(self).__name__} tried to download during a test")

    for cls in (torchvision.datasets.CIFAR10, torchvision.datasets.CIFAR100, torchvision.datasets.FashionMNIST):
        monkeypatch.setattr(cls, "download", refuse)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """An empty EMQ_DATA_DIR."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("EMQ_DATA_DIR", str(root))
    return root


# ---------------------------------------------------------------- Fashion-MNIST (real Debian files)

@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    """(train, test) loaded once from /usr/share/datasets/fashion-mnist (EMQ_DATA_DIR points to an empty folder)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EMQ_DATA_DIR", str(tmp_path_factory.mktemp("empty-data")))
        mp.delenv("EMQ_DOWNLOAD", raising=False)
        return load_dataset("fashion-mnist", train=True), load_dataset("fashion-mnist", train=False)


@pytest.mark.parametrize("split, n", [(0, 60000), (1, 10000)])
def test_fashion_mnist_sizes_shapes_and_classes(fashion, split, n):
    ds = fashion[split]
    assert len(ds) == n
    assert ds.images.shape == (n, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.targets.shape == (n,) and ds.targets.dtype == torch.long
    assert ds.num_classes == 10 and ds.in_channels == 1 and ds.image_size == 28
    assert torch.bincount(ds.targets, minlength=10).tolist() == [n // 10] * 10
    assert int(ds.images.min()) == 0 and int(ds.images.max()) == 255
    assert torch.equal(ds.clean_targets, ds.targets) and not ds.flipped.any()


def test_fashion_mnist_labels_are_aligned_with_the_files(fashion):
    # the well-known first labels of Fashion-MNIST (ankle boot, T-shirt, T-shirt, dress, T-shirt / ...)
    train, test = fashion
    assert train.targets[:5].tolist() == [9, 0, 0, 3, 0]
    assert test.targets[:5].tolist() == [9, 2, 1, 1, 6]
    assert not torch.equal(train.images[:100], test.images[:100])


@pytest.mark.parametrize("position", [0, 1, 12345, 59999])
def test_fashion_mnist_items_are_input_target_index(fashion, position):
    train = fashion[0]
    x, y, index = train[position]
    assert index == position and isinstance(index, int)
    assert y == int(train.targets[position]) and isinstance(y, int)
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    expected = (train.images[position].float() / 255 - 0.2860) / 0.3530
    torch.testing.assert_close(x, expected)


def test_fashion_mnist_inputs_are_normalised(fashion):
    train = fashion[0]
    total, total_sq, count = 0.0, 0.0, 0
    for chunk in torch.arange(len(train)).split(15000):
        x = train.inputs(chunk).double()
        total += float(x.sum())
        total_sq += float((x * x).sum())
        count += x.numel()
    mean = total / count
    std = (total_sq / count - mean ** 2) ** 0.5
    assert abs(mean) < 0.05, mean
    assert abs(std - 1) < 0.05, std


def test_fashion_mnist_balanced_subset_of_real_labels(fashion):
    train = fashion[0]
    keep = balanced_subset(train.targets, n_per_class=100, seed=3)
    assert len(keep) == 1000
    assert torch.bincount(train.targets[keep], minlength=10).tolist() == [100] * 10
    subset = train.subset(keep)
    assert torch.equal(subset.images, train.images[keep])
    assert subset[5][2] == 5  # re-indexed from 0


# ---------------------------------------------------------------- idx files (Fashion-MNIST format)

def _idx_bytes(array: np.ndarray) -> bytes:
    return b"\x00\x00\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def _write_fashion(folder, images: np.ndarray, labels: np.ndarray, train: bool = False,
                   images_bytes: bytes | None = None) -> None:
    prefix = "train" if train else "t10k"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(_idx_bytes(images)) if images_bytes is None else images_bytes)
    (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels)))


def _small_fashion(n: int = 12):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def test_idx_files_in_emq_data_dir_round_trip(data_dir):
    images, labels = _small_fashion()
    _write_fashion(data_dir / "fashion-mnist", images, labels, train=False)
    ds = load_dataset("fashion-mnist", train=False)  # $EMQ_DATA_DIR/fashion-mnist is looked in first
    assert ds.images.shape == (12, 1, 28, 28)
    assert np.array_equal(ds.images[:, 0].numpy(), images)
    assert ds.targets.tolist() == labels.tolist()


def test_read_idx_reads_uncompressed_files(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "plain-idx3-ubyte").write_bytes(_idx_bytes(array))
    assert np.array_equal(read_idx(tmp_path / "plain-idx3-ubyte"), array)


def test_truncated_idx_file_is_reported(data_dir):
    images, labels = _small_fashion()
    cut = _idx_bytes(images)[:-100]  # an interrupted copy: the header promises more pixels than there are
    _write_fashion(data_dir / "fashion-mnist", images, labels, images_bytes=gzip.compress(cut))
    with pytest.raises(DatasetMissingError) as info:
        load_dataset("fashion-mnist", train=False)
    message = str(info.value)
    assert "truncated" in message and "t10k-images-idx3-ubyte.gz" in message
    assert str(12 * 28 * 28) in message


def test_truncated_gzip_stream_is_reported(data_dir):
    images, labels = _small_fashion()
    compressed = gzip.compress(_idx_bytes(images))
    _write_fashion(data_dir / "fashion-mnist", images, labels, images_bytes=compressed[:len(compressed) // 2])
    with pytest.raises(DatasetMissingError, match="t10k-images-idx3-ubyte.gz"):
        load_dataset("fashion-mnist", train=False)


@pytest.mark.parametrize("content", [b"", b"\x00\x00", b"\x00\x00\x08\x03\x00\x00\x00", b"not an idx file at all"])
def test_damaged_idx_header_is_reported(tmp_path, content):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(DatasetMissingError, match="bad-idx3-ubyte"):
        read_idx(path)


def test_missing_fashion_mnist_says_how_to_install_it(data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "DEBIAN_FASHION_MNIST", tmp_path / "no-such-dir")
    with pytest.raises(DatasetMissingError) as info:
        load_dataset("fashion-mnist", train=True)
    message = str(info.value)
    assert "apt-get install -y dataset-fashion-mnist" in message
    assert str(data_dir / "fashion-mnist") in message and "EMQ_DOWNLOAD=1" in message
    assert isinstance(info.value, FileNotFoundError)  # the CLI turns it into `error: ...`


def test_half_installed_fashion_mnist_is_missing(data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "DEBIAN_FASHION_MNIST", tmp_path / "no-such-dir")
    images, labels = _small_fashion()
    _write_fashion(data_dir / "fashion-mnist", images, labels, train=False)
    (data_dir / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetMissingError, match="dataset-fashion-mnist"):
        load_dataset("fashion-mnist", train=False)


# ---------------------------------------------------------------- CIFAR (torchvision's on-disk format)

def _pickle(path, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _cifar_images(rng, n: int) -> np.ndarray:
    """Images in height x width x channel order, as one would view them."""
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def _cifar_rows(images_hwc: np.ndarray) -> np.ndarray:
    """CIFAR's rows: 1024 red, then 1024 green, then 1024 blue values, each plane row-major."""
    return images_hwc.transpose(0, 3, 1, 2).reshape(len(images_hwc), 3072)


def write_cifar10(root, sizes=(3, 2, 4, 1, 2), n_test=5, seed=0):
    """A tiny CIFAR-10; returns {"train": (images_hwc, labels), "test": (...)}."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    splits = {"train": ([], []), "test": ([], [])}
    names = [(f"data_batch_{i + 1}", n, "train") for i, n in enumerate(sizes)] + [("test_batch", n_test, "test")]
    for name, n, split in names:
        images, labels = _cifar_images(rng, n), rng.integers(0, 10, n).tolist()
        _pickle(folder / name, {"batch_label": name, "labels": labels, "data": _cifar_rows(images),
                                "filenames": [f"{name}_{i}.png" for i in range(n)]})
        splits[split][0].append(images)
        splits[split][1].extend(labels)
    _pickle(folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072,
                                      "num_cases_per_batch": max(sizes)})
    return {split: (np.concatenate(images), labels) for split, (images, labels) in splits.items()}


def write_cifar100(root, n_train=7, n_test=4, seed=1):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    splits = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = _cifar_images(rng, n)
        fine = rng.integers(0, 100, n).tolist()
        fine[0] = 99  # the largest class id
        coarse = [f // 5 for f in fine]
        _pickle(folder / split, {"filenames": [f"{split}_{i}.png" for i in range(n)], "batch_label": split,
                                 "fine_labels": fine, "coarse_labels": coarse, "data": _cifar_rows(images)})
        splits[split] = (images, fine)
    _pickle(folder / "meta", {"fine_label_names": [f"f{i}" for i in range(100)],
                              "coarse_label_names": [f"c{i}" for i in range(20)]})
    return splits


@pytest.mark.parametrize("train", [True, False])
def test_cifar10_loads_torchvision_format(data_dir, train):
    written = write_cifar10(data_dir)["train" if train else "test"]
    ds = load_dataset("cifar10", train=train)
    images, labels = written
    n = len(labels)
    assert len(ds) == n == (12 if train else 5)
    assert ds.images.shape == (n, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.num_classes == 10 and ds.in_channels == 3 and ds.image_size == 32
    assert ds.targets.tolist() == labels  # batches concatenated in order 1..5
    assert np.array_equal(ds.images.permute(0, 2, 3, 1).numpy(), images)
    x, y, index = ds[n - 1]
    assert x.shape == (3, 32, 32) and y == labels[-1] and index == n - 1


def test_cifar_pixels_are_channel_major(data_dir):
    write_cifar10(data_dir)
    folder = data_dir / "cifar-10-batches-py"
    with open(folder / "data_batch_1", "rb") as f:
        entry = pickle.load(f)
    entry["data"][0] = 0
    entry["data"][0, 0] = 11  # red, row 0, column 0
    entry["data"][0, 1024 + 5 * 32 + 7] = 22  # green, row 5, column 7
    entry["data"][0, 2048 + 31 * 32 + 30] = 33  # blue, row 31, column 30
    _pickle(folder / "data_batch_1", entry)
    image = load_dataset("cifar10", train=True).images[0]
    assert int(image[0, 0, 0]) == 11 and int(image[1, 5, 7]) == 22 and int(image[2, 31, 30]) == 33
    assert int(image.sum()) == 11 + 22 + 33


@pytest.mark.parametrize("train", [True, False])
def test_cifar100_loads_fine_labels(data_dir, train):
    images, fine = write_cifar100(data_dir)["train" if train else "test"]
    ds = load_dataset("cifar100", train=train)
    assert ds.images.shape == (len(fine), 3, 32, 32)
    assert ds.num_classes == 100
    assert ds.targets.tolist() == fine and int(ds.targets.max()) == 99
    assert np.array_equal(ds.images.permute(0, 2, 3, 1).numpy(), images)


def test_a_cifar100_run_trains_and_evaluates_on_generated_files(data_dir, tmp_path, monkeypatch):
    """The path of claims E5-E8 (EMQ on CIFAR-100): 100 classes, 3 x 32 x 32 inputs, through the run cache."""
    from emqlib.harness.build import Runtime
    from emqlib.harness.config import BITWISE_TRAINING, profile_config
    from emqlib.harness.runs import get_run

    write_cifar100(data_dir, n_train=24, n_test=6)
    monkeypatch.setenv("EMQ_RUNS_DIR", str(tmp_path / "runs"))
    # a few images per class: no validation split to hold out, none measured
    config = profile_config("smoke", method="emq", data={"dataset": "cifar100", "validation_per_class": None},
                            record={"validate": False},
                            model={"bits": (2, 32)},
                            optim={"epochs": 1}, training=BITWISE_TRAINING,
                            selection={"rule": "emq-topk", "fraction": 0.5, "warmup_epochs": 0})
    run = get_run(config, Runtime(progress=False))
    final = run.final_metrics()
    assert sorted(final.bits) == [2, 32] and final.test_accuracy.between(0, 100).all()
    counts = torch.bincount(load_dataset("cifar100", train=True).targets)
    budget = sum(max(1, round(0.5 * int(c))) for c in counts if c > 0)  # round(S * n_c), at least 1 per class
    assert final.subset_size.tolist() == [budget, budget]
    assert run.model(2)(torch.zeros(1, 3, 32, 32)).shape == (1, 100)


def test_cifar_inputs_are_normalised_per_channel(data_dir):
    write_cifar10(data_dir)
    ds = load_dataset("cifar10", train=False)
    ds.images[0] = 255
    x = ds.inputs(torch.tensor([0]))[0]
    mean, std = torch.tensor([0.4914, 0.4822, 0.4465]), torch.tensor([0.2470, 0.2435, 0.2616])
    torch.testing.assert_close(x[:, 3, 4], (1 - mean) / std)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_missing_cifar_names_the_download_command(data_dir, name):
    with pytest.raises(DatasetMissingError) as info:
        load_dataset(name, train=True)
    assert f"EMQ_DOWNLOAD=1 python -m emqlib download {name}" in str(info.value)
    assert str(data_dir) in str(info.value)


def test_cifar10_with_a_missing_batch_is_missing(data_dir):
    write_cifar10(data_dir)
    (data_dir / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetMissingError, match="python -m emqlib download cifar10"):
        load_dataset("cifar10", train=True)
    assert len(load_dataset("cifar10", train=False)) == 5  # the test split is complete


@pytest.mark.parametrize("name, write, file, complete", [("cifar10", write_cifar10, "cifar-10-batches-py/test_batch", 12),
                                                         ("cifar100", write_cifar100, "cifar-100-python/test", 7)])
def test_truncated_cifar_batch_is_reported(data_dir, name, write, file, complete):
    write(data_dir)
    path = data_dir / file
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DatasetMissingError, match=path.name):
        load_dataset(name, train=False)
    assert len(load_dataset(name, train=True)) == complete  # the training split is intact


def test_unknown_dataset_lists_the_names():
    with pytest.raises(ValueError) as info:
        load_dataset("mnist", train=True)
    assert "mnist" in str(info.value)
    for name in DATASETS:
        assert name in str(info.value)


def test_require_dataset_looks_for_the_splits_asked_for(data_dir):
    write_cifar10(data_dir)
    (data_dir / "cifar-10-batches-py" / "test_batch").unlink()
    require_dataset("cifar10", train=True)
    for train in (False, None):  # None: both splits
        with pytest.raises(DatasetMissingError, match="python -m emqlib download cifar10"):
            require_dataset("cifar10", train)


def test_dataset_shapes_are_those_of_the_loaded_data(data_dir, fashion):
    """A model is shaped from DATASET_SHAPES before its data is loaded."""
    write_cifar10(data_dir)
    write_cifar100(data_dir)
    loaded = {"fashion-mnist": fashion[0], "synthetic": synthetic_dataset(True),
              "cifar10": load_dataset("cifar10", train=True), "cifar100": load_dataset("cifar100", train=True)}
    assert set(DATASET_SHAPES) == set(DATASETS) == set(loaded)
    for name, ds in loaded.items():
        assert DATASET_SHAPES[name] == (ds.num_classes, ds.in_channels, ds.image_size), name


# ---------------------------------------------------------------- synthetic

def test_synthetic_is_deterministic_and_balanced():
    a, b = synthetic_dataset(True), synthetic_dataset(True)
    assert a.images.numpy().tobytes() == b.images.numpy().tobytes()
    assert torch.equal(a.targets, b.targets)
    assert a.images.shape == (192, 1, 16, 16) and a.images.dtype == torch.uint8
    assert torch.bincount(a.targets).tolist() == [48] * 4
    test = load_dataset("synthetic", train=False)
    assert torch.bincount(test.targets).tolist() == [24] * 4
    assert not torch.equal(a.images[:96], test.images)  # the splits differ


def test_synthetic_classes_are_separable():
    # each image is closer to its own class mean than to any other: the data set is learnable
    ds = synthetic_dataset(True)
    x = ds.images.float().flatten(1)
    means = torch.stack([x[ds.targets == c].mean(0) for c in range(ds.num_classes)])
    assert torch.equal(torch.cdist(x, means).argmin(1), ds.targets)


def test_batches_cover_each_index_once():
    ds = synthetic_dataset(True)
    indices = torch.arange(10, 110)
    seen = []
    for x, y, index in batches(ds, indices, 32, torch.Generator().manual_seed(0)):
        assert x.shape[1:] == (1, 16, 16) and len(x) == len(y) == len(index) <= 32
        assert torch.equal(y, ds.targets[index])
        seen.append(index)
    assert sorted(torch.cat(seen).tolist()) == indices.tolist()

    def order(seed):
        return torch.cat([i for _, _, i in batches(ds, indices, 32, torch.Generator().manual_seed(seed))])

    assert torch.equal(order(1), order(1)) and not torch.equal(order(1), order(2))


# ---------------------------------------------------------------- augmentation

def test_random_crop_flip_keeps_shape_and_is_deterministic():
    x = torch.rand(16, 3, 32, 32)
    a = random_crop_flip(x, 4, torch.Generator().manual_seed(5))
    b = random_crop_flip(x, 4, torch.Generator().manual_seed(5))
    c = random_crop_flip(x, 4, torch.Generator().manual_seed(6))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_random_crop_flip_without_padding_only_flips():
    x = torch.rand(64, 2, 8, 8)
    out = random_crop_flip(x, 0, torch.Generator().manual_seed(0))
    same = (out == x).flatten(1).all(1)
    flipped = (out == torch.flip(x, dims=[-1])).flatten(1).all(1)
    assert (same | flipped).all()
    assert same.any() and flipped.any()  # both happen in 64 draws


def test_random_crop_flip_is_a_crop_of_the_padded_image():
    x = torch.rand(12, 1, 6, 6)
    padding = 2
    out = random_crop_flip(x, padding, torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    for image, result in zip(padded, out):
        crops = [image[:, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(result, crop) or torch.equal(result, crop.flip(-1)) for crop in crops)


def test_augmented_inputs_keep_shape_and_normalisation():
    ds = synthetic_dataset(True)
    idx = torch.arange(20)
    plain = ds.inputs(idx)
    augmented = ds.inputs(idx, augment=True, generator=torch.Generator().manual_seed(0))
    assert augmented.shape == plain.shape == (20, 1, 16, 16)
    assert torch.equal(augmented, ds.inputs(idx, augment=True, generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(augmented, plain)


# ---------------------------------------------------------------- subsets

@pytest.fixture
def unbalanced_targets():
    # classes 0, 1, 2 with 30, 50, 20 samples, interleaved
    targets = torch.tensor([0] * 30 + [1] * 50 + [2] * 20)
    return targets[torch.randperm(100, generator=torch.Generator().manual_seed(0))]


def test_balanced_subset_n_per_class(unbalanced_targets):
    keep = balanced_subset(unbalanced_targets, n_per_class=10, seed=0)
    assert torch.bincount(unbalanced_targets[keep]).tolist() == [10, 10, 10]
    assert torch.equal(keep, torch.sort(keep).values) and len(keep.unique()) == 30
    assert torch.equal(keep, balanced_subset(unbalanced_targets, n_per_class=10, seed=0))
    assert not torch.equal(keep, balanced_subset(unbalanced_targets, n_per_class=10, seed=1))


def test_balanced_subset_fraction(unbalanced_targets):
    keep = balanced_subset(unbalanced_targets, fraction=0.2, seed=0)
    assert torch.bincount(unbalanced_targets[keep]).tolist() == [6, 10, 4]
    assert torch.equal(keep, torch.sort(keep).values) and len(keep.unique()) == 20
    assert torch.equal(keep, balanced_subset(unbalanced_targets, fraction=0.2, seed=0))
    assert not torch.equal(keep, balanced_subset(unbalanced_targets, fraction=0.2, seed=1))
    assert torch.equal(balanced_subset(unbalanced_targets, fraction=1.0), torch.arange(100))


@pytest.mark.parametrize("fraction", [0, 0.0, -0.1, 1.5, True])
def test_balanced_subset_rejects_bad_fraction(unbalanced_targets, fraction):
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]") as info:
        balanced_subset(unbalanced_targets, fraction=fraction)
    assert repr(fraction) in str(info.value)


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one"),
    ({"n_per_class": 5, "fraction": 0.5}, "exactly one"),
    ({"n_per_class": 0}, "n_per_class"),
    ({"n_per_class": 2.5}, "n_per_class"),
    ({"n_per_class": 21}, "class 2 has 20 samples"),
])
def test_balanced_subset_rejects_bad_arguments(unbalanced_targets, kwargs, message):
    with pytest.raises(ValueError, match=message):
        balanced_subset(unbalanced_targets, **kwargs)


def test_subset_keeps_images_targets_and_noise_record():
    ds = add_label_noise(synthetic_dataset(True), 0.25, seed=0)
    indices = torch.tensor([3, 50, 51, 120, 191])
    sub = ds.subset(indices)
    assert isinstance(sub, ImageDataset) and len(sub) == 5 and sub.name == ds.name
    assert torch.equal(sub.images, ds.images[indices])
    assert torch.equal(sub.targets, ds.targets[indices])
    assert torch.equal(sub.clean_targets, ds.clean_targets[indices])
    assert torch.equal(sub.flipped, ds.flipped[indices])
    x, y, index = sub[3]
    assert index == 3 and y == int(ds.targets[120]) and torch.equal(x, ds[120][0])


# ---------------------------------------------------------------- label noise

def test_label_noise_changes_exactly_round_rate_n(fashion):
    test = fashion[1]
    noisy = add_label_noise(test, 0.1, seed=0)
    assert int(noisy.flipped.sum()) == 1000 == round(0.1 * len(test))
    assert torch.equal(noisy.flipped, noisy.targets != noisy.clean_targets)
    assert torch.equal(noisy.clean_targets, test.targets)
    assert int((noisy.targets != test.targets).sum()) == 1000
    assert noisy.targets.min() >= 0 and noisy.targets.max() < 10
    assert noisy.images is test.images or torch.equal(noisy.images, test.images)
    assert not test.flipped.any() and torch.equal(test.targets, test.clean_targets)  # input untouched


def test_label_noise_is_deterministic_per_seed():
    ds = synthetic_dataset(True)
    a, b, c = (add_label_noise(ds, 0.3, seed=s) for s in (7, 7, 8))
    assert int(a.flipped.sum()) == round(0.3 * 192)
    assert torch.equal(a.targets, b.targets) and torch.equal(a.flipped, b.flipped)
    assert not torch.equal(a.flipped, c.flipped)


def test_label_noise_starts_from_clean_labels():
    ds = synthetic_dataset(True)
    twice = add_label_noise(add_label_noise(ds, 0.3, seed=1), 0.3, seed=2)
    assert int(twice.flipped.sum()) == round(0.3 * 192)
    assert torch.equal(twice.clean_targets, ds.targets)


def test_zero_label_noise_changes_nothing():
    ds = synthetic_dataset(True)
    noisy = add_label_noise(ds, 0.0, seed=3)
    assert torch.equal(noisy.targets, ds.targets) and not noisy.flipped.any()


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5, True, "0.1"])
def test_bad_label_noise_rate_is_rejected(rate):
    with pytest.raises(ValueError, match=r"label noise rate must be in \[0, 1\)"):
        add_label_noise(synthetic_dataset(True), rate)
