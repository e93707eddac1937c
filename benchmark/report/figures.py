"""The report's figures as PNG data URIs, so the HTML file is one self-contained page.

Figures are drawn from the cached results (records and summaries), never read back from the
run's ``plots/`` folder, so a report always shows the numbers of the leaderboard it sits in.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from benchmark.evaluations.predictions import probabilities_from_records
from benchmark.plots.eps_curve import Series, eps_curve_figure
from benchmark.plots.figure import png_bytes
from benchmark.plots.reliability import reliability_diagram
from benchmark.plots.severity import severity_figures
from benchmark.results import CorruptionSummary


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def figure_uri(figure: Figure) -> str:
    return data_uri(png_bytes(figure))


def reliability_uri(records: pd.DataFrame, n_bins: int, title: str) -> str:
    probs = probabilities_from_records(records)
    correct = probs.argmax(axis=1) == records["label"].to_numpy()
    return figure_uri(reliability_diagram(probs.max(axis=1), correct, n_bins, title=title))


def eps_curve_uri(series: dict[str, Series], title: str) -> str:
    """Robust accuracy vs eps with 95% intervals, one line per series."""
    return figure_uri(eps_curve_figure(series, title))


def severity_uris(results: dict[str, CorruptionSummary], name: str) -> list[str]:
    """Accuracy and ECE vs corruption severity."""
    return [figure_uri(figure) for figure in severity_figures(results, name).values()]


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
