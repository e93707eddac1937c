"""The report's figures as PNG data URIs, so the HTML file is one self-contained page.

Figures are drawn from the cached results (records and summaries), never read back from the
run's ``plots/`` folder, so a report always shows the numbers of the leaderboard it sits in.
"""

from __future__ import annotations

import base64
import io
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from benchmark.evaluations.predictions import probabilities_from_records
from benchmark.plots.figure import new_figure
from benchmark.plots.reliability import reliability_diagram


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return data_uri(buffer.getvalue())


def reliability_uri(records: pd.DataFrame, n_bins: int, title: str) -> str:
    probs = probabilities_from_records(records)
    correct = probs.argmax(axis=1) == records["label"].to_numpy()
    return figure_uri(reliability_diagram(probs.max(axis=1), correct, n_bins, title=title))


Series = list[tuple[float, str, dict[str, float]]]  # (eps, label, robust_acc_pct + CI)


def eps_curve_uri(series: dict[str, Series], title: str) -> str:
    """Robust accuracy vs eps with 95% intervals, one line per series."""
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
    return figure_uri(figure)


def severity_uris(results: dict[str, dict[str, Any]], name: str) -> list[str]:
    """Accuracy and ECE vs corruption severity (the corruptions package's plot)."""
    from benchmark.corruptions.plots import plot_severity_curves

    with tempfile.TemporaryDirectory() as tmp:
        paths = plot_severity_curves(results, name, Path(tmp))
        return [data_uri(path.read_bytes()) for path in paths]


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
