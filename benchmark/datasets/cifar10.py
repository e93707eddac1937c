"""CIFAR-10 from the official ``cifar-10-batches-py`` layout, with verified download.

The official files are Python pickles. Unpickling can execute code, so they are read with an
unpickler that only reconstructs plain containers and NumPy arrays (the same idea as
``torch.load(weights_only=True)``): a tampered batch file fails to load instead of running.

Splits: ``train`` = the first 45,000 training images of a fixed permutation, ``val`` = the
other 5,000 (the 45k/5k split used by AR-AdaLS and PEP), ``test`` = the official test batch.

Cache keys hold the name, size and SHA-256 of the batch files a split reads (the five
``data_batch_*`` for ``train`` / ``val``, ``test_batch`` for ``test``), not ``root``.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.datasets.base import (
    ArrayDataset,
    DataInfo,
    DatasetOptions,
    Split,
    register_dataset,
    train_val_indices,
)
from benchmark.errors import BenchmarkError
from benchmark.fingerprints import files_fingerprint
from benchmark.utils import copy_capped

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILES = ["test_batch"]
N_VAL = 5000
SPLIT_SEED = 0
CIFAR10_INFO = DataInfo(
    num_classes=10,
    in_channels=3,
    image_size=(32, 32),
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
)

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    return read_cifar_pickle(path, b"labels", 10, "CIFAR-10")


def read_cifar_pickle(
    path: Path, label_key: bytes, n_classes: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """(images N x 3 x 32 x 32 uint8, labels) of one official CIFAR python pickle, read
    without running code; the labels under ``label_key`` must be integers in
    0..``n_classes - 1`` (CIFAR-10's ``labels``, CIFAR-100's ``fine_labels`` /
    ``coarse_labels``)."""
    top = n_classes - 1
    try:
        with open(path, "rb") as handle:
            batch = _ArrayOnlyUnpickler(io.BytesIO(handle.read()), encoding="bytes").load()
        raw = np.asarray(batch[b"data"])
        # the official files hold uint8; wider integers cast to uint8 would wrap (256 -> 0)
        if raw.dtype != np.uint8 and (
            raw.dtype.kind not in "iu" or raw.min(initial=0) < 0 or raw.max(initial=0) > 255
        ):
            raise BenchmarkError(
                f"{path}: pixels must be integers in 0..255 (uint8), got dtype {raw.dtype} "
                f"with range {raw.min(initial=0)}..{raw.max(initial=0)}"
            )
        data = raw.astype(np.uint8)
        raw_labels = np.asarray(batch[label_key])
        # a float label such as 3.7 cast to int64 would silently become class 3
        if raw_labels.dtype.kind not in "iu":
            raise BenchmarkError(
                f"{path}: labels must be integers 0..{top} (the {n_classes} {what} classes), "
                f"got dtype {raw_labels.dtype}"
            )
        labels = raw_labels.astype(np.int64)
    except (pickle.UnpicklingError, KeyError, TypeError, EOFError, ValueError) as exc:
        raise BenchmarkError(f"{path}: not a valid {what} batch file ({exc})") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise BenchmarkError(f"{path}: expected data of shape (N, 3072), got {data.shape}")
    if labels.min(initial=0) < 0 or labels.max(initial=0) > top:
        raise BenchmarkError(
            f"{path}: labels must lie in 0..{top} (the {n_classes} {what} classes), got "
            f"{labels.min()}..{labels.max()}"
        )
    return data.reshape(-1, 3, 32, 32), labels


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


ARCHIVE_BYTES = 170_498_071  # cifar-10-python.tar.gz


def download_and_extract(
    root: Path,
    url: str,
    md5: str,
    *,
    folder: str = FOLDER,
    desc: str = "CIFAR-10",
    size: int = ARCHIVE_BYTES,
) -> None:
    """Download the archive to a temp file, check its MD5, extract it safely under ``root``
    and move its top-level ``folder`` to ``root / folder``. More than ``size`` bytes (the
    archive's published size, plus 1 %) is refused while streaming."""
    from tqdm import tqdm

    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        archive = Path(tmp) / "archive"
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(archive, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=desc) as bar:
                    copy_capped(response, out, size + size // 100, lambda b: bar.update(len(b)))
        except OSError as exc:
            raise BenchmarkError(f"dataset.download: could not download {url}: {exc}") from None
        if (actual := md5sum(archive)) != md5:
            raise BenchmarkError(
                f"dataset.download: {url} has MD5 {actual}, expected {md5}; refusing to use it"
            )
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        extracted = Path(tmp) / folder
        if not extracted.is_dir():
            raise BenchmarkError(f"dataset.download: archive from {url} has no {folder}/ folder")
        shutil.move(str(extracted), root / folder)


def _folder(options: DatasetOptions) -> Path:
    return official_folder(
        options, FOLDER, TRAIN_FILES + TEST_FILES, URL, ARCHIVE_MD5, "CIFAR-10", ARCHIVE_BYTES
    )


def official_folder(
    options: DatasetOptions,
    folder_name: str,
    needed: list[str],
    url: str,
    md5: str,
    what: str,
    size: int,
) -> Path:
    """``<root>/<folder_name>`` holding the ``needed`` files of an official CIFAR archive,
    downloading and extracting the archive first when asked; else one line naming what is
    missing (CIFAR-10 and CIFAR-100 alike)."""
    root = Path(options.root)
    folder = root / folder_name
    if all((folder / name).is_file() for name in needed):
        return folder
    if options.download:
        download_and_extract(root, url, md5, folder=folder_name, desc=what, size=size)
        return folder
    missing = [name for name in needed if not (folder / name).is_file()]
    raise BenchmarkError(
        f"dataset.root: {what} not found: expected {folder}/{{{','.join(missing)}}}; "
        f"set 'download: true' to fetch {url} (MD5-checked) or copy the extracted "
        f"'{folder_name}' folder there"
    )


def split_arrays(
    images: np.ndarray, labels: np.ndarray, split: Split
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x in [0, 1], y, indices) of ``split`` from a CIFAR file set: the official test set
    as it is, ``train``/``val`` the fixed 45,000/5,000 split of the training images."""
    indices = (
        torch.arange(len(labels))
        if split == "test"
        else train_val_indices(len(labels), split, N_VAL, SPLIT_SEED)
    )
    x = torch.from_numpy(images[indices.numpy()]).float().div_(255.0)
    y = torch.from_numpy(np.ascontiguousarray(labels[indices.numpy()]))
    return x, y, indices


def fingerprint_cifar10(options: DatasetOptions, split: Split) -> dict[str, Any]:
    """The batch files ``split`` reads (name, size, SHA-256) and how it is drawn from them."""
    files = TEST_FILES if split == "test" else TRAIN_FILES
    fingerprint: dict[str, Any] = {"files": files_fingerprint(_folder(options), files)}
    if split != "test":
        fingerprint["split"] = {"n_val": N_VAL, "seed": SPLIT_SEED}
    return fingerprint


@register_dataset(
    "cifar10",
    "CIFAR-10 (32x32 RGB, 10 classes); official python batches",
    info=CIFAR10_INFO,
    fingerprint=fingerprint_cifar10,
)
def load_cifar10(options: DatasetOptions, split: Split) -> ArrayDataset:
    folder = _folder(options)
    files = TEST_FILES if split == "test" else TRAIN_FILES
    parts = [_read_batch(folder / name) for name in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    x, y, indices = split_arrays(images, labels, split)
    return ArrayDataset("cifar10", split, x, y, CIFAR10_INFO, indices)
