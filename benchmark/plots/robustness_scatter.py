"""Clean against robust accuracy, one point per model (RobustBench's leaderboard figure).

The clean accuracy on the x axis is the one of the *same examples* the robust accuracy was
measured on (the headline's ``subset_clean_acc_pct``), so a point's distance below the
diagonal is what the attacks took, not a difference between subsets. Flagged rows are drawn
hollow: their robust accuracy is not to be trusted.
"""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure

from benchmark.plots.figure import new_figure

SUBSET_CLEAN = "_subset_clean_acc_pct"


def threat_prefixes(frame: pd.DataFrame) -> list[str]:
    """The headline threat models of a leaderboard frame, e.g. ``linf_8/255``."""
    return [
        column.removesuffix(SUBSET_CLEAN)
        for column in frame.columns
        if str(column).endswith(SUBSET_CLEAN)
        and f"{column.removesuffix(SUBSET_CLEAN)}_robust_acc_pct" in frame.columns
    ]


def robustness_scatter(frame: pd.DataFrame, prefix: str) -> Figure | None:
    """Robust (with its 95% interval) vs clean accuracy of every row at threat model
    ``prefix``; None when no row has both numbers."""
    figure = new_figure(5.0, 4.0)
    ax = figure.add_subplot()
    drawn = 0
    for _, row in frame.iterrows():
        clean = row.get(f"{prefix}{SUBSET_CLEAN}")
        robust = row.get(f"{prefix}_robust_acc_pct")
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in (clean, robust)):
            continue
        low = row.get(f"{prefix}_robust_acc_pct_ci_low", robust)
        high = row.get(f"{prefix}_robust_acc_pct_ci_high", robust)
        flagged = bool(str(row.get("flags") or "").strip())
        ax.errorbar(
            [clean],
            [robust],
            yerr=[[max(robust - low, 0.0)], [max(high - robust, 0.0)]],
            marker="o",
            markerfacecolor="none" if flagged else None,
            capsize=3,
            linestyle="none",
        )
        label = str(row["model"]) + (" (flagged)" if flagged else "")
        ax.annotate(label, (clean, robust), fontsize=7, xytext=(4, 4), textcoords="offset points")
        drawn += 1
    if not drawn:
        return None
    ax.plot([0, 100], [0, 100], color="grey", linewidth=0.8, linestyle="--")
    ax.set_xlim(-2, 102)
    ax.set_ylim(-2, 102)
    ax.set_xlabel("clean accuracy on the same examples (%)")
    ax.set_ylabel("robust accuracy, worst case over attacks (%)")
    ax.set_title(f"{prefix}: clean vs robust accuracy", fontsize=9)
    ax.grid(alpha=0.3)
    return figure
