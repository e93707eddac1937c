"""Robust accuracy against the attack budget eps, with 95% intervals."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from benchmark.plots.figure import new_figure

Series = list[tuple[float, str, dict[str, float]]]  # (eps, label, robust_acc_pct + CI)


def eps_curve_figure(series: dict[str, Series], title: str) -> Figure:
    """One line per series: robust accuracy (%) vs eps, error bars from ``ci_low``/``ci_high``."""
    figure = new_figure(5.0, 3.5)
    ax = figure.add_subplot()
    for label, points in series.items():
        points = sorted(points, key=lambda p: p[0])
        x = np.array([p[0] for p in points])
        y = np.array([p[2]["robust_acc_pct"] for p in points])
        low = np.array([p[2]["ci_low"] for p in points])
        high = np.array([p[2]["ci_high"] for p in points])
        errors = np.nan_to_num(np.vstack([y - low, high - y]), nan=0.0)
        ax.errorbar(x, y, yerr=errors, marker="o", capsize=3, label=label)
    ax.set_xlabel("eps")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return figure
