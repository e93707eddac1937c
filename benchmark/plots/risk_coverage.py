"""Risk-coverage curves of several models on one axis (FMFP paper, Fig. 2b / 11).

Lower is better at every coverage; AURC in the legend is the mean height of each curve.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from benchmark.metrics import risk_coverage_curve
from benchmark.plots.figure import new_figure


def risk_coverage_plot(curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Figure:
    """``curves``: model name -> (confidences, correct)."""
    figure = new_figure(5.5, 4.0)
    axes = figure.subplots()
    for name, (confidences, correct) in curves.items():
        coverage, risk = risk_coverage_curve(confidences, correct)
        if len(risk):
            axes.plot(coverage, 100 * risk, label=f"{name} (AURC {1000 * risk.mean():.1f})")
    axes.set(
        xlim=(0, 1),
        xlabel="coverage",
        ylabel="selective risk (%)",
        title="risk-coverage (AURC x1000)",
    )
    axes.grid(alpha=0.3)
    if curves:
        axes.legend(fontsize="small")
    return figure
