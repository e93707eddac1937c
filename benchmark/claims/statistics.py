"""Leaderboard columns as weighted per-example statistics, for paired tests on resampled
examples.

A claim compares leaderboard columns, but a column is one number; a paired test needs the
column as a function of *which examples* were drawn. Each supported column is rebuilt here
from its evaluation's per-example records as ``statistic(weights)``, weights (B, rows) the
number of times each record's example is drawn: weights all one give the leaderboard's
value, bootstrap counts give resamples. Resampling is by dataset example (``index``): an
example's records move together (all its corrupted versions, for instance), as the cluster
bootstrap requires.

Supported columns (anything else is refused when the suite loads, naming these):

- ``clean``: ``acc_pct``, ``error_pct``, ``nll``, ``brier``, ``ece_pct``, ``auroc_pct``,
  ``aurc_x1000``, ``eaurc_x1000``;
- adversarial evaluations: ``robust_acc_pct`` (records column ``robust``);
- ``corruptions``: ``mean_<any of the clean ones>`` and ``mean_error_pct``: the mean over
  corruption x severity cells of the cell's statistic, as the evaluation computes it;
- ``robustness_ranking``: ``acc_/ece_`` ``least_/most_robust_bin_pct``, within the row's own
  robustness bins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.evaluations.predictions import probabilities_from_records
from benchmark.metrics.calibration import batched_ece
from benchmark.metrics.failure import batched_aurc, batched_auroc, batched_excess_aurc
from benchmark.metrics.specs import Direction
from benchmark.suite.schema import EvaluationSpec

_TINY = 1e-12


def _mean(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ values) / weights.sum(axis=1)


@dataclass(frozen=True)
class Cells:
    """One side's records as arrays, ready for weighted statistics."""

    # every example the evaluation ran on (before a bin or cell selection): what a paired
    # resample draws from, so that each side's own robustness bin stays whole
    examples: np.ndarray
    index: np.ndarray  # dataset example of each record
    cell: np.ndarray  # cell id of each record (0 when the statistic has no cells)
    confidence: np.ndarray
    correct: np.ndarray
    robust: np.ndarray | None
    nll: np.ndarray | None
    brier: np.ndarray | None


CellStatistic = Callable[[Cells, np.ndarray, np.ndarray], np.ndarray]
"""(cells, mask of this cell's records, weights (B, records)) -> value per resample (B,)."""


def _cell_statistics(n_bins: int) -> dict[str, CellStatistic]:
    def need(values: np.ndarray | None, what: str) -> np.ndarray:
        if values is None:
            raise KeyError(what)
        return values

    return {
        "acc_pct": lambda c, m, w: 100.0 * _mean(c.correct[m].astype(float), w),
        "error_pct": lambda c, m, w: 100.0 - 100.0 * _mean(c.correct[m].astype(float), w),
        "robust_acc_pct": lambda c, m, w: 100.0 * _mean(need(c.robust, "robust")[m], w),
        "nll": lambda c, m, w: _mean(need(c.nll, "prob_<k>")[m], w),
        "brier": lambda c, m, w: _mean(need(c.brier, "prob_<k>")[m], w),
        "ece_pct": lambda c, m, w: 100.0 * batched_ece(c.confidence[m], c.correct[m], w, n_bins),
        "auroc_pct": lambda c, m, w: 100.0 * batched_auroc(c.confidence[m], c.correct[m], w),
        "aurc_x1000": lambda c, m, w: 1000.0 * batched_aurc(c.confidence[m], c.correct[m], w),
        "eaurc_x1000": lambda c, m, w: (
            1000.0 * batched_excess_aurc(c.confidence[m], c.correct[m], w)
        ),
    }


PREDICTION_METRICS = tuple(_cell_statistics(15))
CLEAN_METRICS = tuple(m for m in PREDICTION_METRICS if m != "robust_acc_pct")
BIN_METRICS = tuple(
    f"{kind}_{end}_robust_bin_pct" for kind in ("acc", "ece") for end in ("least", "most")
)


@dataclass(frozen=True)
class ColumnStatistic:
    """How to rebuild one leaderboard column from its evaluation's records."""

    evaluation: str  # the evaluation's name (column prefix)
    metric: str
    direction: Direction
    cell_metric: str  # the per-cell statistic (a key of _cell_statistics)
    n_bins: int  # ECE bins of the evaluation
    cells: str  # "none", "corruption" (mean over corruption x severity) or "bin"
    bin_end: str | None = None  # "least" / "most" for the robustness-bin metrics

    @property
    def column(self) -> str:
        return f"{self.evaluation}_{self.metric}"

    @property
    def plain_accuracy(self) -> str | None:
        """The records' boolean column when the statistic is a plain accuracy over all
        records (then the exact McNemar test applies to a comparison), else None."""
        if self.cells != "none":
            return None
        return {"acc_pct": "correct", "robust_acc_pct": "robust"}.get(self.cell_metric)

    def prepare(self, records: pd.DataFrame) -> Cells:
        """The records this statistic reads (the evaluated cells only), as arrays."""
        examples = np.unique(records["index"].to_numpy())
        if self.cells == "corruption":
            records = records[records["corruption"] != "clean"]
            keys = records["corruption"].astype(str) + "/" + records["severity"].astype(str)
            cell = pd.factorize(keys)[0]
        elif self.cells == "bin":
            last = int(records["bin"].max()) if len(records) else 0
            records = records[records["bin"] == (0 if self.bin_end == "least" else last)]
            cell = np.zeros(len(records), int)
        else:
            cell = np.zeros(len(records), int)
        has_probs = any(c.startswith("prob_") for c in records.columns)
        nll = brier = None
        if has_probs:
            probs = probabilities_from_records(records)
            labels = records["label"].to_numpy()
            p_true = probs[np.arange(len(probs)), labels]
            nll = -np.log(np.maximum(p_true, _TINY))
            onehot = np.zeros_like(probs)
            onehot[np.arange(len(probs)), labels] = 1.0
            brier = ((probs - onehot) ** 2).sum(axis=1)
        robust = records["robust"].to_numpy(float) if "robust" in records.columns else None
        return Cells(
            examples=examples,
            index=records["index"].to_numpy(),
            cell=np.asarray(cell),
            confidence=records["confidence"].to_numpy(np.float64)
            if "confidence" in records.columns
            else np.zeros(len(records)),
            correct=records["correct"].to_numpy(bool)
            if "correct" in records.columns
            else np.zeros(len(records), bool),
            robust=robust,
            nll=nll,
            brier=brier,
        )

    def evaluate(self, cells: Cells, weights: np.ndarray) -> np.ndarray:
        """The statistic for each row of record weights (B, records): the mean over cells of
        each cell's value (one cell unless the column is a mean over corruptions)."""
        statistic = _cell_statistics(self.n_bins)[self.cell_metric]
        values = [
            statistic(cells, mask, weights[:, mask])
            for mask in (cells.cell == c for c in np.unique(cells.cell))
        ]
        if not values:
            return np.full(len(weights), np.nan)
        return np.mean(values, axis=0)


def column_statistic(evaluation: EvaluationSpec, metric: str) -> ColumnStatistic | str:
    """The statistic of column ``<evaluation name>_<metric>``, or why it has none."""
    resolved = evaluation.resolved
    spec = resolved.cls.metric_spec(metric)
    direction: Direction = spec.direction if spec is not None else "none"
    params = resolved.params
    n_bins = int(getattr(params, "n_bins", 15))

    def made(cell_metric: str, cells: str, bins: int = n_bins, end: str | None = None):
        return ColumnStatistic(resolved.name, metric, direction, cell_metric, bins, cells, end)

    if resolved.type == "clean" and metric in CLEAN_METRICS:
        return made(metric, "none")
    if resolved.adversarial and metric == "robust_acc_pct":
        return made(metric, "none")
    corrupted = metric.removeprefix("mean_")
    if resolved.type == "corruptions" and metric.startswith("mean_") and corrupted in CLEAN_METRICS:
        return made(corrupted, "corruption")
    if resolved.type == "robustness_ranking" and metric in BIN_METRICS:
        kind, end = metric.split("_")[:2]
        return made(f"{kind}_pct", "bin", int(getattr(params, "ece_bins", 15)), end)
    supported = {
        "clean": CLEAN_METRICS,
        "adversarial evaluations": ("robust_acc_pct",),
        "corruptions": tuple(f"mean_{m}" for m in CLEAN_METRICS),
        "robustness_ranking": BIN_METRICS,
    }
    listed = "; ".join(f"{k}: {', '.join(v)}" for k, v in supported.items())
    return (
        f"no paired test for metric '{metric}' of evaluation '{resolved.name}' "
        f"(type {resolved.type}); supported: {listed}"
    )


def find_column(evaluations: list[EvaluationSpec], column: str) -> ColumnStatistic | str:
    """The statistic of leaderboard column ``column``: the evaluation whose name is the
    longest prefix ``<name>_`` of it, and the rest as the metric; or why there is none."""
    owners = [e for e in evaluations if column.startswith(f"{e.resolved.name}_")]
    if not owners:
        names = ", ".join(e.resolved.name for e in evaluations)
        return (
            f"'{column}' is not a column of any evaluation of this suite (columns are "
            f"<evaluation name>_<metric>; evaluations: {names})"
        )
    owner = max(owners, key=lambda e: len(e.resolved.name))
    return column_statistic(owner, column.removeprefix(f"{owner.resolved.name}_"))
