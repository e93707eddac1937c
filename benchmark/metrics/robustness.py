"""Robustness strata: equal-size bins of examples ranked by a per-example robustness score
(AR-AdaLS: R bins from least to most robust), shared by the ranking evaluation and the
AR-AdaLS recipe."""

from __future__ import annotations

import numpy as np


def robustness_bins(distances: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index per example: rank by distance (stable), then ``n_bins`` contiguous groups
    whose sizes differ by at most one (bin 0 = least robust)."""
    order = np.argsort(distances, kind="stable")
    bins = np.empty(len(distances), dtype=np.int64)
    for b, members in enumerate(np.array_split(order, n_bins)):
        bins[members] = b
    return bins
