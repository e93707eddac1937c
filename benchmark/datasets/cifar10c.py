"""CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019) from the official release.

Layout (Zenodo record 2535967, ``CIFAR-10-C.tar``, extracted under ``root``)::

    <root>/CIFAR-10-C/<corruption>.npy   uint8 (50000, 32, 32, 3): the 10,000 test images
                                         at severity 1, then 2, ..., then 5
    <root>/CIFAR-10-C/labels.npy         (50000,) labels, the test labels repeated 5 times

Arrays are read with ``allow_pickle=False`` and memory-mapped, so only the requested
severity block is loaded. The per-severity count is the file length / 5, which lets tests use
tiny files in the same layout.

Cache keys hold the name, size and SHA-256 of the files read (:func:`fingerprint_cifar10c`,
hashed once and then remembered while the files' stat stays the same), not ``root``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmark.datasets.cifar10 import download_and_extract
from benchmark.errors import BenchmarkError
from benchmark.fingerprints import files_fingerprint

URL = "https://zenodo.org/records/2535967/files/CIFAR-10-C.tar?download=1"
# MD5 listed on the Zenodo record for CIFAR-10-C.tar (2,918,471,680 bytes).
ARCHIVE_MD5 = "56bf5dcef84df0e2308c6dcbcbbd8499"
ARCHIVE_BYTES = 2_918_471_680
FOLDER = "CIFAR-10-C"
N_SEVERITIES = 5
LABELS = "labels.npy"


def cifar10c_folder(root: str | Path, corruptions: list[str], download: bool = False) -> Path:
    """The folder holding the requested corruption files, downloading the archive if asked."""
    root = Path(root)
    folder = root / FOLDER
    needed = [f"{name}.npy" for name in corruptions] + [LABELS]
    if not all((folder / name).is_file() for name in needed) and download:
        download_and_extract(
            root, URL, ARCHIVE_MD5, folder=FOLDER, desc="CIFAR-10-C", size=ARCHIVE_BYTES
        )
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        shown = ",".join(missing[:4]) + (",..." if len(missing) > 4 else "")
        raise BenchmarkError(
            f"params.root: CIFAR-10-C not found: expected {folder}/{{{shown}}}; set "
            f"'download: true' to fetch {URL} (2.9 GB, MD5-checked) or extract CIFAR-10-C.tar "
            f"under '{root}'"
        )
    return folder


def fingerprint_cifar10c(
    root: str | Path, corruptions: list[str], download: bool = False
) -> dict[str, Any]:
    """Name, size and SHA-256 of the files the corruptions are read from (and the labels)."""
    folder = cifar10c_folder(root, corruptions, download)
    return files_fingerprint(folder, [f"{name}.npy" for name in corruptions] + [LABELS])


def _load(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise BenchmarkError(f"{path}: not a readable .npy file ({exc})") from None


def load_cifar10c(
    root: str | Path, corruption: str, severity: int, download: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 32, 32, 3) uint8 and labels (n,) int64 of one corruption and severity."""
    if not 1 <= severity <= N_SEVERITIES:
        raise BenchmarkError(f"params.severities: CIFAR-10-C has severities 1..5, got {severity}")
    folder = cifar10c_folder(root, [corruption], download)
    path, labels_path = folder / f"{corruption}.npy", folder / LABELS
    images, labels = _load(path), _load(labels_path)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise BenchmarkError(
            f"{path}: expected uint8 (N, 32, 32, 3), got {images.dtype} {images.shape}"
        )
    if len(images) % N_SEVERITIES or labels.shape != (len(images),):
        raise BenchmarkError(
            f"{path}: {len(images)} images and labels of shape {labels.shape}: expected "
            f"5 equal severity blocks and one label per image"
        )
    per = len(images) // N_SEVERITIES
    block = slice((severity - 1) * per, severity * per)
    y = np.asarray(labels[block]).astype(np.int64)
    if y.min(initial=0) < 0 or y.max(initial=0) > 9:
        raise BenchmarkError(f"{labels_path}: labels outside 0..9")
    return np.array(images[block]), y  # a copy: the file stays memory-mapped read-only
