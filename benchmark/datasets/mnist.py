"""MNIST from the four official IDX gzip files, parsed strictly with NumPy, with verified download.

Files: ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz`` (60,000 training digits)
and ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz`` (the 10,000 official test
digits), kept gzip-compressed as published.

Where they are looked for (``dataset.root`` = ``<root>``): the candidate folders are, in this
order, ``<root>/``, ``<root>/mnist/`` and ``<root>/MNIST/raw/`` (torchvision's layout). The
files of one split are read from the *first candidate that holds both of that split's files*;
a split never mixes folders. Only the requested split's files are needed: ``test`` reads just
the two ``t10k`` files. With ``download: true``, a split's missing files are fetched into the
first candidate that already holds any of the four files, else into ``<root>/mnist/``. Each
file is tried on every mirror in :data:`MIRRORS` in turn, checked against its official MD5
and moved into place only once verified (temporary file + ``os.replace``).

Splits: ``test`` = the official test set in file order; ``train`` / ``val`` = a fixed 55,000 /
5,000 split of the training files, drawn with a constant seed (independent of the suite seed).
Pixels are ``uint8 / 255`` as float32 in [0, 1], shape ``(N, 1, 28, 28)``.

Cache keys hold the name, size and SHA-256 of the two files a split reads, not where they lie.
"""

from __future__ import annotations

import gzip
import http.client
import math
import os
import urllib.request
import zlib
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
from benchmark.datasets.cifar10 import md5sum
from benchmark.errors import BenchmarkError
from benchmark.fingerprints import files_fingerprint
from benchmark.utils import atomic_path, copy_capped

MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]
# Official MD5 of each gzip file (as in torchvision.datasets.MNIST.resources).
MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049  # IDX: unsigned bytes, 3 dims / 1 dim
SIDE = 28
MAX_ITEMS = 1_000_000  # refuse headers that would make us allocate absurd amounts
N_VAL = 5000
SPLIT_SEED = 0
# Per-channel statistics of the MNIST training images (the customary 0.1307 / 0.3081); used
# only inside models.
MNIST_INFO = DataInfo(
    num_classes=10, in_channels=1, image_size=(SIDE, SIDE), mean=(0.1307,), std=(0.3081,)
)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _read_idx(
    path: Path, magic: int, dims_expected: int, what: str
) -> tuple[tuple[int, ...], bytes]:
    """Header dimensions and exactly ``prod(dims)`` payload bytes of a gzip IDX file."""
    header_len = 4 + 4 * dims_expected
    try:
        with gzip.open(path, "rb") as handle:
            header = handle.read(header_len)
            found = int.from_bytes(header[:4], "big") if len(header) >= 4 else None
            if found != magic:
                got = "a file too short for a header" if found is None else f"magic {found}"
                raise BenchmarkError(
                    f"{path}: not an MNIST {what} file (expected IDX magic number {magic}, "
                    f"found {got})"
                )
            if len(header) < header_len:
                raise BenchmarkError(
                    f"{path}: truncated IDX header (expected {header_len} bytes, "
                    f"found {len(header)})"
                )
            dims = tuple(
                int.from_bytes(header[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims_expected)
            )
            if not 1 <= dims[0] <= MAX_ITEMS:
                raise BenchmarkError(
                    f"{path}: IDX header declares {dims[0]} {what}s (expected 1..{MAX_ITEMS})"
                )
            if dims[1:] and dims[1:] != (SIDE, SIDE):
                raise BenchmarkError(
                    f"{path}: expected {SIDE}x{SIDE} images, header declares "
                    f"{'x'.join(map(str, dims[1:]))}"
                )
            size = math.prod(dims)
            payload = handle.read(size)
            trailing = handle.read(1)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise BenchmarkError(
            f"{path}: not a valid gzip file ({_one_line(exc)}); expected the official "
            f"gzip-compressed IDX file"
        ) from None
    except OSError as exc:
        raise BenchmarkError(f"{path}: cannot read ({_one_line(exc)})") from None
    shape = " x ".join(map(str, dims))
    if len(payload) < size:
        raise BenchmarkError(
            f"{path}: truncated IDX file (header declares {shape} = {size} bytes of data, "
            f"found {len(payload)})"
        )
    if trailing:
        raise BenchmarkError(f"{path}: unexpected data after the {shape} IDX payload")
    return dims, payload


def _read_images(path: Path) -> np.ndarray:
    dims, payload = _read_idx(path, IMAGES_MAGIC, 3, "image")
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims)


def _read_labels(path: Path, images_path: Path, n_images: int) -> np.ndarray:
    (n,), payload = _read_idx(path, LABELS_MAGIC, 1, "label")
    if n != n_images:
        raise BenchmarkError(f"{path}: {n} labels, but {images_path.name} holds {n_images} images")
    labels = np.frombuffer(payload, dtype=np.uint8)
    if labels.max() > 9:
        raise BenchmarkError(f"{path}: labels outside 0..9 (found {int(labels.max())})")
    return labels.astype(np.int64)


def candidates(root: Path) -> list[Path]:
    """The folders searched, in order: ``<root>``, ``<root>/mnist``, ``<root>/MNIST/raw``."""
    return [root, root / "mnist", root / "MNIST" / "raw"]


MAX_FILE_BYTES = 16 << 20


class _MirrorFailed(Exception):
    pass


def _fetch(url: str, target: Path, md5: str) -> None:
    from tqdm import tqdm

    with atomic_path(target) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar:
                    # the largest MNIST file (train images, gzip) is 9.9 MB
                    copy_capped(response, out, MAX_FILE_BYTES, lambda b: bar.update(len(b)))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise _MirrorFailed(_one_line(exc)) from None
        if (actual := md5sum(tmp)) != md5:
            raise _MirrorFailed(f"MD5 {actual}, expected {md5}; refusing to use it")


def download(folder: Path, names: list[str]) -> None:
    """Fetch ``names`` into ``folder``, each from the first mirror that serves a verified copy."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchmarkError(
            f"dataset.download: cannot create {folder}: {_one_line(exc)}"
        ) from None
    if not os.access(folder, os.W_OK):
        raise BenchmarkError(f"dataset.download: cannot write MNIST files into {folder}")
    for name in names:
        failures = []
        for mirror in MIRRORS:
            try:
                _fetch(mirror + name, folder / name, MD5[name])
                break
            except _MirrorFailed as exc:
                failures.append(f"{mirror + name}: {exc}")
        else:
            raise BenchmarkError(f"dataset.download: could not fetch {name}: {'; '.join(failures)}")


def _folder(options: DatasetOptions, split: Split) -> Path:
    needed = list(FILES["test" if split == "test" else "train"])
    folders = candidates(Path(options.root))
    for folder in folders:
        if all((folder / name).is_file() for name in needed):
            return folder
    target = next((f for f in folders if any((f / name).is_file() for name in MD5)), folders[1])
    missing = [name for name in needed if not (target / name).is_file()]
    if options.download:
        download(target, missing)
        return target
    searched = ", ".join(f"{f}/" for f in folders)
    raise BenchmarkError(
        f"dataset.root: MNIST '{split}' split not found: missing {target}/{{{','.join(missing)}}} "
        f"(searched {searched}; the first holding both files wins); set 'download: true' to "
        f"fetch them (MD5-checked) or copy the official gzip files there"
    )


def fingerprint_mnist(options: DatasetOptions, split: Split) -> dict[str, Any]:
    """The two files ``split`` reads (name, size, SHA-256) and how it is drawn from them."""
    files = FILES["test" if split == "test" else "train"]
    fingerprint: dict[str, Any] = {"files": files_fingerprint(_folder(options, split), files)}
    if split != "test":
        fingerprint["split"] = {"n_val": N_VAL, "seed": SPLIT_SEED}
    return fingerprint


@register_dataset(
    "mnist",
    "MNIST (28x28 grayscale, 10 classes); official IDX gzip files",
    info=MNIST_INFO,
    fingerprint=fingerprint_mnist,
)
def load_mnist(options: DatasetOptions, split: Split) -> ArrayDataset:
    folder = _folder(options, split)
    images_name, labels_name = FILES["test" if split == "test" else "train"]
    images = _read_images(folder / images_name)
    labels = _read_labels(folder / labels_name, folder / images_name, len(images))
    indices = (
        torch.arange(len(labels))
        if split == "test"
        else train_val_indices(len(labels), split, N_VAL, SPLIT_SEED)
    )
    picked = indices.numpy()
    x = torch.from_numpy(images[picked]).unsqueeze(1).float().div_(255.0)
    y = torch.from_numpy(labels[picked])
    return ArrayDataset("mnist", split, x, y, MNIST_INFO, indices)
