"""Histograms of the confidence of correct and of wrong predictions (FMFP paper, Fig. 10).

Failure prediction works when the two distributions are separated; AUROC is the probability
that a random correct example is more confident than a random wrong one.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from benchmark.metrics import auroc
from benchmark.plots.figure import new_figure


def confidence_histogram(
    confidences: np.ndarray, correct: np.ndarray, n_bins: int = 20, title: str = ""
) -> Figure:
    confidences, correct = np.asarray(confidences, np.float64), np.asarray(correct, bool)
    figure = new_figure(5.0, 3.5)
    axes = figure.subplots()
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    for mask, label, color in ((correct, "correct", "tab:blue"), (~correct, "wrong", "tab:red")):
        # density per group, so that a few errors are visible beside many correct predictions
        axes.hist(
            confidences[mask],
            bins=edges.tolist(),
            density=bool(mask.any()),
            alpha=0.5,
            color=color,
            label=f"{label} ({int(mask.sum())})",
        )
    axes.set(
        xlim=(0, 1),
        xlabel="confidence (max softmax)",
        ylabel="density",
        title=f"{title}  AUROC {100 * auroc(confidences, correct):.2f}%",
    )
    axes.legend(fontsize="small")
    return figure
