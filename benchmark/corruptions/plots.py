"""Accuracy and ECE against severity, one line per model (matplotlib, Agg backend).

Input is what the leaderboard hook receives: ``results`` maps a model row name to its cached
``corruptions`` result summary (``extras.per_corruption`` and ``extras.clean``). Each point
is the mean over the evaluated corruptions at that severity; severity 0 is the clean data.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

PLOTTED = {"acc_pct": "accuracy (%)", "ece_pct": "ECE (%)"}


def severity_curve(summary: dict[str, Any], metric: str) -> tuple[list[int], list[float]]:
    """(severities with 0 = clean, mean of ``metric`` over corruptions at each severity)."""
    extras = summary["extras"]
    per = extras["per_corruption"]
    severities = sorted({int(s) for by_severity in per.values() for s in by_severity})
    means = [
        sum(by[str(s)][metric] for by in per.values() if str(s) in by)
        / sum(1 for by in per.values() if str(s) in by)
        for s in severities
    ]
    return [0, *severities], [extras["clean"][metric], *means]


def plot_severity_curves(
    results: dict[str, dict[str, Any]], name: str, out_dir: str | Path
) -> list[Path]:
    """Write ``<out_dir>/<name>_acc_vs_severity.png`` and ``<name>_ece_vs_severity.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.+-]", "-", name)
    written = []
    for metric, label in PLOTTED.items():
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for model, summary in results.items():
            x, y = severity_curve(summary, metric)
            ax.plot(x, y, marker="o", label=model)
        ax.set_xlabel("severity (0 = clean)")
        ax.set_ylabel(f"{label}, mean over corruptions")
        ax.set_title(name)
        ax.set_xticks(range(0, 6))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{stem}_{metric.removesuffix('_pct')}_vs_severity.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written
