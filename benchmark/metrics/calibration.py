"""Calibration error of the maximum-softmax confidence.

ECE (Naeini et al. 2015; Guo et al. 2017): split (0, 1] into ``n_bins`` equal-width bins
(lo, hi]; ECE = sum_b |B_b|/N * |acc(B_b) - conf(B_b)|. 15 bins is the papers' default.
"""

from __future__ import annotations

import numpy as np


def _bin_stats(
    confidences: np.ndarray, correct: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin: count, mean confidence, accuracy (empty bins give 0)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted(side="left") puts a confidence equal to an upper edge into that bin: (lo, hi].
    bins = np.clip(np.searchsorted(edges, confidences, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins).astype(np.float64)
    conf_sum = np.bincount(bins, weights=confidences, minlength=n_bins)
    acc_sum = np.bincount(bins, weights=correct.astype(np.float64), minlength=n_bins)
    safe = np.maximum(counts, 1.0)
    return counts, conf_sum / safe, acc_sum / safe


def expected_calibration_error(
    confidences: np.ndarray, correct: np.ndarray, n_bins: int = 15
) -> float:
    """ECE in [0, 1] with equal-width bins."""
    if len(confidences) == 0:
        return float("nan")
    counts, conf, acc = _bin_stats(np.asarray(confidences, np.float64), np.asarray(correct), n_bins)
    return float(np.sum(counts / counts.sum() * np.abs(acc - conf)))


def maximum_calibration_error(
    confidences: np.ndarray, correct: np.ndarray, n_bins: int = 15
) -> float:
    """MCE in [0, 1]: the largest |acc - conf| over non-empty bins."""
    if len(confidences) == 0:
        return float("nan")
    counts, conf, acc = _bin_stats(np.asarray(confidences, np.float64), np.asarray(correct), n_bins)
    return float(np.max(np.abs(acc - conf)[counts > 0]))
