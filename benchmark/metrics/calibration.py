"""Calibration error of predicted probabilities.

ECE (Naeini et al. 2015; Guo et al. 2017): split the max-softmax confidences into bins;
ECE = sum_b |B_b|/N * |acc(B_b) - conf(B_b)|, MCE = max_b |acc(B_b) - conf(B_b)|. Two ways to
bin (``binning``):

- ``equal_width`` (default, the papers' ECE): ``n_bins`` bins (lo, hi] of width 1/n_bins
  (15 bins in the FMFP and PEP papers). A confidence equal to an upper edge belongs to that
  bin, as in the FMFP reference code and torchmetrics.
- ``equal_mass`` (adaptive ECE, "AdaECE" of Mukhoti et al. 2020; Nguyen & O'Connor 2015):
  sort confidences ascending and cut the sorted list into ``n_bins`` runs of equal size:
  bin b holds sorted positions [floor(b N / n_bins), floor((b + 1) N / n_bins)). Equal-width
  ECE puts most examples of an accurate model into the top bin and so hides miscalibration
  inside it; equal-mass bins spend resolution where the predictions are. Ties across a cut
  are split by record order (stable sort); this moves the result by O(1/N) at most.

Classwise ECE (Kull et al. 2019) calibrates every class probability, not only the top one:
cw-ECE = (1/K) sum_k sum_b |B_{k,b}|/N |freq_k(B_{k,b}) - mean p_k(B_{k,b})|, equal-width
bins on each p_k. It catches miscalibration of the non-argmax probabilities that top-label ECE
cannot see.

All functions return fractions in [0, 1]; the leaderboard shows them in percent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Binning = Literal["equal_width", "equal_mass"]


def equal_width_bins(confidences: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of every confidence for equal-width bins (lo, hi] on [0, 1]."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted(side="left") puts a confidence equal to an upper edge into that bin: (lo, hi].
    return np.clip(np.searchsorted(edges, confidences, side="left") - 1, 0, n_bins - 1)


def equal_mass_bins(confidences: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of every confidence for equal-mass bins (sizes differ by at most one)."""
    n = len(confidences)
    order = np.argsort(confidences, kind="stable")
    starts = (np.arange(n_bins + 1) * n) // n_bins
    bins = np.empty(n, dtype=np.int64)
    bins[order] = np.searchsorted(starts, np.arange(n), side="right") - 1
    return bins


def assign_bins(confidences: np.ndarray, n_bins: int, binning: Binning) -> np.ndarray:
    if binning == "equal_width":
        return equal_width_bins(confidences, n_bins)
    if binning == "equal_mass":
        return equal_mass_bins(confidences, n_bins)
    raise ValueError(f"binning must be 'equal_width' or 'equal_mass', got {binning!r}")


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin statistics behind ECE/MCE and the reliability diagram (empty bins: NaN)."""

    counts: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray

    @property
    def gaps(self) -> np.ndarray:
        return np.abs(self.accuracy - self.confidence)


def reliability_bins(
    confidences: np.ndarray, correct: np.ndarray, n_bins: int = 15, binning: Binning = "equal_width"
) -> ReliabilityBins:
    confidences = np.asarray(confidences, np.float64)
    bins = assign_bins(confidences, n_bins, binning)
    counts = np.bincount(bins, minlength=n_bins).astype(np.float64)
    conf_sum = np.bincount(bins, weights=confidences, minlength=n_bins)
    acc_sum = np.bincount(bins, weights=np.asarray(correct, np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ReliabilityBins(counts, conf_sum / counts, acc_sum / counts)


def batched_ece(
    confidences: np.ndarray,
    correct: np.ndarray,
    weights: np.ndarray,
    n_bins: int = 15,
    binning: Binning = "equal_width",
) -> np.ndarray:
    """ECE for each row of example weights ``weights`` (B, N), e.g. bootstrap resample counts.

    With weights w, sum_b |B_b|/N |acc_b - conf_b| = sum_b |sum_{i in b} w_i (c_i - p_i)| / sum w,
    so one (B, N) @ (N, n_bins) product gives every resample's ECE without re-binning: the bins
    are fixed by the original confidences. That is exact for equal-width bins, where an
    example's bin does not depend on the other examples; with ``equal_mass`` it keeps the
    original cuts instead of re-cutting each resample (so only the point estimate, weights all
    one, is the adaptive ECE).
    """
    confidences = np.asarray(confidences, np.float64)
    bins = assign_bins(confidences, n_bins, binning)
    signed_gap = np.zeros((len(confidences), n_bins))
    signed_gap[np.arange(len(confidences)), bins] = np.asarray(correct, np.float64) - confidences
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(weights @ signed_gap).sum(axis=1) / weights.sum(axis=1)


def expected_calibration_error(
    confidences: np.ndarray,
    correct: np.ndarray,
    n_bins: int = 15,
    binning: Binning = "equal_width",
) -> float:
    """ECE in [0, 1]; ``binning="equal_mass"`` gives the adaptive ECE."""
    if len(confidences) == 0:
        return float("nan")
    ones = np.ones((1, len(confidences)))
    return float(batched_ece(confidences, correct, ones, n_bins, binning)[0])


def maximum_calibration_error(
    confidences: np.ndarray,
    correct: np.ndarray,
    n_bins: int = 15,
    binning: Binning = "equal_width",
) -> float:
    """MCE in [0, 1]: the largest |acc - conf| over non-empty bins."""
    if len(confidences) == 0:
        return float("nan")
    stats = reliability_bins(confidences, correct, n_bins, binning)
    return float(np.max(stats.gaps[stats.counts > 0]))


def classwise_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Classwise ECE in [0, 1] (Kull et al. 2019), equal-width bins on every p_k."""
    n, k = probs.shape
    if n == 0:
        return float("nan")
    bins = equal_width_bins(probs, n_bins)  # (N, K)
    onehot = labels[:, None] == np.arange(k)[None, :]
    # one bincount over (class, bin) cells: cell = class * n_bins + bin
    cells = (np.arange(k)[None, :] * n_bins + bins).ravel()
    signed_gap = np.bincount(cells, weights=(onehot - probs).ravel(), minlength=k * n_bins)
    return float(np.abs(signed_gap).sum() / (n * k))
