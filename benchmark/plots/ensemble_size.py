"""Accuracy, NLL and ECE against the ensemble size N (spatial-smoothing paper, Figure 3)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from benchmark.plots.figure import new_figure

PANELS = {"nll": "NLL (nats)", "acc_pct": "accuracy (%)", "ece_pct": "ECE (%)"}


def ensemble_size_figure(curve: pd.DataFrame, title: str) -> Figure:
    """One panel per metric, N on a log axis; ``curve`` has columns size + PANELS."""
    figure = new_figure(10.0, 3.2)
    for axis, (metric, label) in zip(figure.subplots(1, 3), PANELS.items(), strict=True):
        axis.plot(curve["size"], curve[metric], "o-")
        axis.set_xscale("log")
        axis.set(xlabel="ensemble size N", ylabel=label)
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    return figure
