"""Reliability diagram: accuracy against mean confidence per confidence bin.

The bars are the per-bin statistics behind ECE (same equal-width (lo, hi] bins), so the
picture and the ``ece_pct`` column cannot disagree; the red part of each bar is the gap
|acc - conf| that ECE averages, weighted by the bin counts shown underneath.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from benchmark.metrics import expected_calibration_error, reliability_bins
from benchmark.plots.figure import new_figure


def reliability_diagram(
    confidences: np.ndarray, correct: np.ndarray, n_bins: int = 15, title: str = ""
) -> Figure:
    stats = reliability_bins(confidences, correct, n_bins)
    ece = expected_calibration_error(confidences, correct, n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    centers, width = (edges[:-1] + edges[1:]) / 2, 1.0 / n_bins
    filled = stats.counts > 0

    figure = new_figure(4.5, 5.0)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    top.bar(
        centers[filled],
        stats.accuracy[filled],
        width,
        color="tab:blue",
        edgecolor="black",
        label="accuracy",
    )
    gap_low = np.minimum(stats.accuracy, stats.confidence)[filled]
    top.bar(
        centers[filled],
        stats.gaps[filled],
        width,
        bottom=gap_low,
        color="tab:red",
        alpha=0.35,
        edgecolor="tab:red",
        label="gap to confidence",
    )
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy", title=f"{title}  ECE {100 * ece:.2f}%")
    top.legend(loc="upper left", fontsize="small")
    bottom.bar(centers, stats.counts, width, color="gray", edgecolor="black")
    bottom.set(xlabel="confidence (max softmax)", ylabel="examples")
    return figure
