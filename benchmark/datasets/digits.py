"""The embedded offline default: scikit-learn's handwritten digits (UCI optdigits test set).

1,797 real 8x8 grayscale images with 16 grey levels ship inside scikit-learn, so a suite on
this dataset runs on any machine with no download. Pixels are scaled from 0..16 to [0, 1].
The split (1257 train / 180 val / 360 test) is fixed by a constant seed so it never changes
with the suite seed.
"""

from __future__ import annotations

import torch

from benchmark.datasets.base import (
    ArrayDataset,
    DataInfo,
    DatasetOptions,
    Split,
    register_dataset,
    split_indices,
)

SPLIT_SEED = 20240611
N_VAL, N_TEST = 180, 360
# Per-channel statistics of the training split, rounded; used only inside models.
DIGITS_INFO = DataInfo(
    num_classes=10, in_channels=1, image_size=(8, 8), mean=(0.3053,), std=(0.3763,)
)


@register_dataset(
    "digits",
    "scikit-learn handwritten digits, 8x8 grayscale, 10 classes (offline)",
    info=DIGITS_INFO,
)
def load_digits(options: DatasetOptions, split: Split) -> ArrayDataset:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.int64)
    idx = split_indices(len(y), N_VAL, N_TEST, SPLIT_SEED)[split]
    return ArrayDataset("digits", split, x[idx].contiguous(), y[idx], DIGITS_INFO, idx)
