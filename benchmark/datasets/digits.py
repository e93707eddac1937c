"""The embedded offline default: scikit-learn's handwritten digits (UCI optdigits test set).

1,797 real 8x8 grayscale images with 16 grey levels ship inside scikit-learn, so a suite on
this dataset runs on any machine with no download. Pixels are scaled from 0..16 to [0, 1].
The split (1257 train / 180 val / 360 test) is fixed by a constant seed so it never changes
with the suite seed.

Cache keys hold the SHA-256 of the file scikit-learn reads them from (``digits.csv.gz``),
found without importing scikit-learn; the hash of the loaded arrays if it is not there.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import torch

from benchmark.datasets.base import (
    ArrayDataset,
    DataInfo,
    DatasetOptions,
    Split,
    register_dataset,
    split_indices,
)
from benchmark.fingerprints import files_fingerprint

SPLIT_SEED = 20240611
N_VAL, N_TEST = 180, 360
# Per-channel statistics of the training split, rounded; used only inside models.
DIGITS_INFO = DataInfo(
    num_classes=10, in_channels=1, image_size=(8, 8), mean=(0.3053,), std=(0.3763,)
)


DATA_FILE = "digits.csv.gz"


def fingerprint_digits(options: DatasetOptions, split: Split) -> dict[str, Any]:
    """The embedded file's name, size and SHA-256, and the fixed split."""
    split_of = {"n_val": N_VAL, "n_test": N_TEST, "seed": SPLIT_SEED}
    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    folder = Path(spec.origin).parent / "datasets" / "data" if spec and spec.origin else None
    if folder is not None and (folder / DATA_FILE).is_file():
        return {"files": files_fingerprint(folder, [DATA_FILE]), "split": split_of}
    from sklearn.datasets import load_digits as sklearn_digits  # another layout: hash arrays

    bunch = sklearn_digits()
    digest = hashlib.sha256(bunch.images.astype("float64").tobytes())
    digest.update(bunch.target.astype("int64").tobytes())
    return {"arrays_sha256": digest.hexdigest(), "split": split_of}


@register_dataset(
    "digits",
    "scikit-learn handwritten digits, 8x8 grayscale, 10 classes (offline)",
    info=DIGITS_INFO,
    fingerprint=fingerprint_digits,
)
def load_digits(options: DatasetOptions, split: Split) -> ArrayDataset:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.int64)
    idx = split_indices(len(y), N_VAL, N_TEST, SPLIT_SEED)[split]
    return ArrayDataset("digits", split, x[idx].contiguous(), y[idx], DIGITS_INFO, idx)
