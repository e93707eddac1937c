"""Percentile bootstrap confidence intervals, vectorized over resamples.

A resample of N examples drawn with replacement is represented by its count vector
(how often each example was drawn), so a statistic written for per-example weights, such as
:func:`~benchmark.metrics.calibration.batched_ece` or
:func:`~benchmark.metrics.failure.batched_auroc`, evaluates a whole block of resamples in one
NumPy call instead of a Python loop over resamples. All statistics of one call share the same
resamples (paired), and the same generator state gives the same intervals.

The percentile interval is the simplest bootstrap interval; for a biased statistic such as
ECE (biased upward at small N) it inherits the bias, so read it as sampling variability, not
as a bias-corrected interval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import numpy as np

BatchedStatistic = Callable[[np.ndarray], np.ndarray]
"""Maps example weights (B, N) to one value per row (B,)."""

# Upper bound on B * N per block: keeps the (B, N) float matrices near 16 MB each.
_BLOCK_ELEMENTS = 2_000_000


def resample_counts(n: int, n_resamples: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Yield blocks of bootstrap count vectors, float64 (b, n), n_resamples rows in total."""
    block = max(1, _BLOCK_ELEMENTS // max(n, 1))
    for start in range(0, n_resamples, block):
        b = min(block, n_resamples - start)
        draws = rng.integers(0, n, size=(b, n))
        flat = (draws + n * np.arange(b)[:, None]).ravel()
        yield np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)


def bootstrap_ci(
    statistics: Mapping[str, BatchedStatistic],
    n: int,
    n_resamples: int,
    rng: np.random.Generator,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile interval (low, high) of every statistic over ``n_resamples`` resamples.

    Resamples where a statistic is undefined (NaN, e.g. AUROC of a resample without errors)
    are left out of its percentiles; if all are, the interval is (NaN, NaN).
    """
    if n == 0 or n_resamples == 0:
        return {name: (float("nan"), float("nan")) for name in statistics}
    values: dict[str, list[np.ndarray]] = {name: [] for name in statistics}
    for counts in resample_counts(n, n_resamples, rng):
        for name, statistic in statistics.items():
            values[name].append(statistic(counts))
    tail = 100.0 * (1.0 - level) / 2.0
    intervals = {}
    for name, chunks in values.items():
        samples = np.concatenate(chunks)
        samples = samples[np.isfinite(samples)]
        if len(samples) == 0:
            intervals[name] = (float("nan"), float("nan"))
        else:
            low, high = np.percentile(samples, [tail, 100.0 - tail])
            intervals[name] = (float(low), float(high))
    return intervals
