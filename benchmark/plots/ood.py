"""Histograms of the predictive entropy on in- and out-of-distribution data (AR-AdaLS Fig. 4)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from benchmark.plots.figure import new_figure


def entropy_histogram(
    in_entropy: np.ndarray, out_entropy: np.ndarray, num_classes: int, labels: tuple[str, str]
) -> Figure:
    """Both distributions on shared bins over [0, log K] nats, as densities."""
    figure = new_figure(5.0, 3.5)
    axis = figure.add_subplot()
    bins = np.linspace(0.0, float(np.log(num_classes)), 31).tolist()
    for values, label in zip((in_entropy, out_entropy), labels, strict=True):
        axis.hist(values, bins=bins, density=True, alpha=0.55, label=label)
    axis.set(xlabel="predictive entropy (nats)", ylabel="density")
    axis.legend(fontsize="small")
    return figure
