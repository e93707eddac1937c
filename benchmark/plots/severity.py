"""Accuracy and ECE against corruption severity, one line per model.

Input is what the report receives: ``results`` maps a model row name to its cached
``corruptions`` result (:class:`~benchmark.results.CorruptionSummary`). Each point
is the mean over the evaluated corruptions at that severity; severity 0 is the clean data.
"""

from __future__ import annotations

import re
from pathlib import Path

from matplotlib.figure import Figure

from benchmark.plots.figure import new_figure, save_png
from benchmark.results import CorruptionSummary

PLOTTED = {"acc_pct": "accuracy (%)", "ece_pct": "ECE (%)"}


def severity_curve(summary: CorruptionSummary, metric: str) -> tuple[list[int], list[float]]:
    """(severities with 0 = clean, mean of ``metric`` over corruptions at each severity)."""
    per = summary.per_corruption
    severities = sorted({int(s) for by_severity in per.values() for s in by_severity})
    means = [
        sum(by[str(s)][metric] for by in per.values() if str(s) in by)
        / sum(1 for by in per.values() if str(s) in by)
        for s in severities
    ]
    return [0, *severities], [summary.clean[metric], *means]


def severity_figure(results: dict[str, CorruptionSummary], metric: str, title: str) -> Figure:
    """``metric`` (a key of :data:`PLOTTED`) against severity, one line per model row."""
    figure = new_figure(5.0, 3.5)
    ax = figure.add_subplot()
    for model, summary in results.items():
        x, y = severity_curve(summary, metric)
        ax.plot(x, y, marker="o", label=model)
    ax.set_xlabel("severity (0 = clean)")
    ax.set_ylabel(f"{PLOTTED[metric]}, mean over corruptions")
    ax.set_title(title)
    ax.set_xticks(range(0, 6))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def severity_figures(results: dict[str, CorruptionSummary], title: str) -> dict[str, Figure]:
    """Every :data:`PLOTTED` metric's figure, keyed by metric."""
    return {metric: severity_figure(results, metric, title) for metric in PLOTTED}


def plot_severity_curves(
    results: dict[str, CorruptionSummary], name: str, out_dir: str | Path
) -> list[Path]:
    """Write ``<out_dir>/<name>_acc_vs_severity.png`` and ``<name>_ece_vs_severity.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.+-]", "-", name)
    return [
        save_png(figure, out_dir / f"{stem}_{metric.removesuffix('_pct')}_vs_severity.png")
        for metric, figure in severity_figures(results, name).items()
    ]
