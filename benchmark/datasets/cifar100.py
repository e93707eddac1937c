"""CIFAR-100 from the official ``cifar-100-python`` layout, with verified download.

The papers' out-of-distribution set for CIFAR-10 models and RobustBench's second data set.
Two registered data sets read the same files: ``cifar100`` (the 100 fine classes) and
``cifar100_coarse`` (the 20 superclasses). The pickles are read without running code, as for
CIFAR-10 (:func:`benchmark.datasets.cifar10.read_cifar_pickle`).

Splits: ``train`` = 45,000 of the 50,000 training images and ``val`` = the other 5,000 (a
fixed permutation, as for CIFAR-10), ``test`` = the official 10,000. Cache keys hold the
name, size and SHA-256 of the file a split reads (``train`` or ``test``), not ``root``.

Where it comes from: https://www.cs.toronto.edu/~kriz/cifar.html (``cifar-100-python.tar.gz``;
``download: true`` fetches and MD5-checks it); or copy the extracted ``cifar-100-python``
folder under ``dataset.root``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.datasets.base import (
    ArrayDataset,
    DataInfo,
    DatasetOptions,
    Split,
    register_dataset,
)
from benchmark.datasets.cifar10 import (
    N_VAL,
    SPLIT_SEED,
    official_folder,
    read_cifar_pickle,
    split_arrays,
)
from benchmark.fingerprints import files_fingerprint

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
ARCHIVE_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
ARCHIVE_MAX_BYTES = 180_000_000  # the archive is about 169 MB
FOLDER = "cifar-100-python"
FILES = {"train": "train", "val": "train", "test": "test"}
MEAN, STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
CIFAR100_INFO = DataInfo(num_classes=100, in_channels=3, image_size=(32, 32), mean=MEAN, std=STD)
CIFAR100_COARSE_INFO = DataInfo(
    num_classes=20, in_channels=3, image_size=(32, 32), mean=MEAN, std=STD
)


def _folder(options: DatasetOptions) -> Path:
    needed = sorted(set(FILES.values()))
    return official_folder(
        options, FOLDER, needed, URL, ARCHIVE_MD5, "CIFAR-100", ARCHIVE_MAX_BYTES
    )


def fingerprint_cifar100(options: DatasetOptions, split: Split) -> dict[str, Any]:
    """The file ``split`` reads (name, size, SHA-256) and how it is drawn from it."""
    fingerprint: dict[str, Any] = {"files": files_fingerprint(_folder(options), [FILES[split]])}
    if split != "test":
        fingerprint["split"] = {"n_val": N_VAL, "seed": SPLIT_SEED}
    return fingerprint


def _load(options: DatasetOptions, split: Split, coarse: bool) -> ArrayDataset:
    key, classes = (b"coarse_labels", 20) if coarse else (b"fine_labels", 100)
    images, labels = read_cifar_pickle(
        _folder(options) / FILES[split], key, classes, "CIFAR-100" + (" coarse" if coarse else "")
    )
    x, y, indices = split_arrays(images, labels, split)  # CIFAR-10's 45,000/5,000 split
    name = "cifar100_coarse" if coarse else "cifar100"
    info = CIFAR100_COARSE_INFO if coarse else CIFAR100_INFO
    return ArrayDataset(name, split, x, y, info, indices)


@register_dataset(
    "cifar100",
    "CIFAR-100 (32x32 RGB, 100 fine classes); official python files",
    info=CIFAR100_INFO,
    fingerprint=fingerprint_cifar100,
)
def load_cifar100(options: DatasetOptions, split: Split) -> ArrayDataset:
    return _load(options, split, coarse=False)


@register_dataset(
    "cifar100_coarse",
    "CIFAR-100 with its 20 superclasses as labels; official python files",
    info=CIFAR100_COARSE_INFO,
    fingerprint=fingerprint_cifar100,
)
def load_cifar100_coarse(options: DatasetOptions, split: Split) -> ArrayDataset:
    return _load(options, split, coarse=True)
