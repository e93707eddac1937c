"""The Markdown leaderboard people read: a short headline table first, then one table per
evaluation with its own columns.

The CSV keeps every column in one table (it is the machine-readable file); a reader of the
Markdown (GitHub renders it; people paste it into papers) first needs what RobustBench shows:
the model, its clean accuracy, per threat model the worst-case robust accuracy over every
attack with its interval and the clean accuracy *of the same subset* (a robust accuracy on
50 easy images read against a clean accuracy on 10,000 misleads), corruption error,
calibration and failure prediction, and the trust flags. Intervals are folded in as
``value [low, high]`` and counts printed as integers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from benchmark.leaderboard import flagged_rows, fold_intervals, mark_flagged
from benchmark.metrics.specs import MetricSpec
from benchmark.runner.headline import HEADLINE_METRICS

# The leaderboard's own, per-evaluation headline metrics, in reading order
HEADLINE_SUFFIXES = ("clean_acc_pct",)
CALIBRATION_HEADLINES = ("clean_ece_pct", "clean_nll", "clean_auroc_pct")
COUNT_UNIT = "count"


def threat_headlines(frame: pd.DataFrame, columns: Mapping[str, MetricSpec]) -> list[str]:
    """The worst-case robust-accuracy columns, one per threat model, and beside each the
    clean accuracy of its own subset."""
    robust = HEADLINE_METRICS["robust_acc_pct"]
    out = []
    for column in frame.columns:
        if columns.get(column) == robust:
            prefix = str(column).removesuffix("_robust_acc_pct")
            out += [c for c in (column, f"{prefix}_subset_clean_acc_pct") if c in frame.columns]
    return out


def headline_table_columns(frame: pd.DataFrame, columns: Mapping[str, MetricSpec]) -> list[str]:
    """The headline table's columns, in order (those the frame has)."""
    corruption = [c for c in frame.columns if str(c).endswith("_mce_pct")][:1]
    wanted = [
        "model",
        *HEADLINE_SUFFIXES,
        *threat_headlines(frame, columns),
        *corruption,
        *CALIBRATION_HEADLINES,
        "flags",
    ]
    return [c for c in dict.fromkeys(wanted) if c in frame.columns]


def readable(frame: pd.DataFrame, columns: Mapping[str, MetricSpec]) -> pd.DataFrame:
    """``frame`` for reading, as the terminal shows it (intervals folded as
    ``value [low, high]``, flagged robust accuracies marked), with counts as integers."""
    view = mark_flagged(fold_intervals(frame))
    for column in view.columns:
        spec = columns.get(column)
        if (spec is not None and spec.unit == COUNT_UNIT) or column == "n_examples":
            view[column] = [_count(v) for v in view[column]]
    return view


def _count(value: object) -> object:
    if isinstance(value, float) and not pd.isna(value) and value == int(value):
        return str(int(value))
    return value


def evaluation_sections(
    frame: pd.DataFrame, evaluations: Sequence[str]
) -> list[tuple[str, list[str]]]:
    """(evaluation name, its columns) for every evaluation with columns in ``frame``; a
    column belongs to the evaluation whose name is its longest ``<name>_`` prefix."""
    owned: dict[str, list[str]] = {name: [] for name in evaluations}
    for column in frame.columns:
        owners = [name for name in evaluations if str(column).startswith(f"{name}_")]
        if owners:
            owned[max(owners, key=len)].append(str(column))
    return [(name, cols) for name, cols in owned.items() if cols]


def markdown_leaderboard(
    frame: pd.DataFrame,
    name: str,
    columns: Mapping[str, MetricSpec],
    evaluations: Sequence[str] = (),
) -> str:
    """The whole Markdown file: the headline table, then one table per evaluation."""
    if frame.empty or "model" not in frame.columns:
        return f"# Leaderboard: {name}\n\n(no results)\n"
    head = readable(frame, columns)
    headline = [c for c in headline_table_columns(frame, columns) if c in head.columns]
    parts = [
        f"# Leaderboard: {name}",
        "Headline: clean accuracy; per threat model the worst case over every attack on the "
        "same examples, with its 95% interval, and the clean accuracy of that subset; "
        "calibration and failure prediction on clean data; trust flags. Every column: "
        f"`{name}.csv` (declared units and directions: `{name}.columns.json`).",
        head[headline].to_markdown(index=False, floatfmt=".4g"),
    ]
    flagged = flagged_rows(frame)
    if flagged.any():
        parts.append(
            f"{int(flagged.sum())} row(s) carry trust flags: their robust accuracies are marked "
            "(flagged) and may not be what they seem (README, Trust checks)."
        )
    keep = ["model", "flags"] if "flags" in frame.columns else ["model"]
    for evaluation, cols in evaluation_sections(frame, evaluations):
        table = readable(frame[[*keep, *cols]], columns).drop(columns=["flags"], errors="ignore")
        table.columns = ["model", *(c.removeprefix(f"{evaluation}_") for c in table.columns[1:])]
        parts += [f"## {evaluation}", table.to_markdown(index=False, floatfmt=".4g")]
    return "\n\n".join(parts) + "\n"
