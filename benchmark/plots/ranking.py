"""The robustness-ranking figures (AR-AdaLS Figure 1): calibration per robustness bin, and
the variance across independent runs per bin."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from benchmark.plots.figure import new_figure


def robustness_bins_figure(table: pd.DataFrame, title: str) -> Figure:
    """Accuracy and confidence vs bin (left); ECE vs bin (right). ``table`` is the
    evaluation's ``bins.csv`` (columns bin, acc_pct, mean_confidence_pct, ece_pct)."""
    figure = new_figure(9.0, 3.5)
    left, right = figure.subplots(1, 2)
    left.plot(table["bin"], table["acc_pct"], "o-", label="accuracy")
    left.plot(table["bin"], table["mean_confidence_pct"], "s--", label="confidence")
    left.set(xlabel="robustness bin (0 = least robust)", ylabel="%", title=title)
    left.legend()
    right.bar(table["bin"], table["ece_pct"], color="tab:red")
    right.set(xlabel="robustness bin", ylabel="ECE (%)")
    return figure


def replica_variance_figure(table: pd.DataFrame, title: str) -> Figure:
    """Variance of the true-class probability vs robustness bin, one line per member's
    ranking (``table``: the ``variance_<group>.csv`` rows of one group)."""
    figure = new_figure(5.0, 3.5)
    axis = figure.add_subplot()
    for member, part in table.groupby("model", sort=False):
        axis.plot(part["bin"], part["variance"], "o-", label=f"ranked by {member}")
    axis.set(xlabel="robustness bin (0 = least robust)", ylabel="variance", title=title)
    axis.legend(fontsize="small")
    return figure
