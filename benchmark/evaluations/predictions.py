"""The per-example record table and summary metrics shared by all evaluations.

``predict_probs`` lives in :mod:`benchmark.inference` (models and recipes use it without
loading the evaluation stack) and is re-exported here for the evaluations."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.datasets.base import ArrayDataset
from benchmark.inference import predict_probs  # noqa: F401  (re-exported)
from benchmark.metrics import (
    accuracy,
    aupr_error,
    aupr_success,
    aurc,
    auroc,
    batched_auroc,
    batched_ece,
    bootstrap_ci,
    brier_score,
    classwise_calibration_error,
    excess_aurc,
    expected_calibration_error,
    fpr_at_tpr,
    maximum_calibration_error,
    negative_log_likelihood,
)


def prediction_records(data: ArrayDataset, probs: np.ndarray) -> pd.DataFrame:
    """One row per example: dataset index, label, prediction, confidence, correctness, and the
    full probability vector as columns ``prob_0 .. prob_{K-1}``."""
    labels = data.y.numpy()
    preds = probs.argmax(axis=1)
    frame = pd.DataFrame(
        {
            "index": data.indices.numpy(),
            "label": labels,
            "pred": preds,
            "confidence": probs.max(axis=1),
            "correct": preds == labels,
        }
    )
    prob_columns = pd.DataFrame(probs, columns=[f"prob_{k}" for k in range(probs.shape[1])])
    return pd.concat([frame, prob_columns], axis=1)


def probabilities_from_records(records: pd.DataFrame) -> np.ndarray:
    columns = sorted(
        (c for c in records.columns if c.startswith("prob_")), key=lambda c: int(c[5:])
    )
    if not columns:
        raise ValueError("records have no prob_<k> columns")
    return records[columns].to_numpy(dtype=np.float64)


def summary_metrics(
    probs: np.ndarray,
    labels: np.ndarray,
    n_bins: int = 15,
    *,
    extra_ece: bool = False,
    bootstrap: int = 0,
    rng: np.random.Generator | None = None,
) -> dict[str, float]:
    """The leaderboard's columns; names carry their scale (``_pct`` = percent, ``_x1000``).

    Calibration (accuracy, NLL, Brier, ECE, MCE) and failure prediction (AUROC, AUPR-Success,
    AUPR-Error, FPR95, AURC, E-AURC) side by side: the FMFP paper shows that methods which
    improve one often hurt the other. ``extra_ece`` adds the equal-mass (``adaece_pct``) and
    classwise (``cwece_pct``) ECE. ``bootstrap`` > 0 adds 95% percentile intervals
    ``<metric>_ci_low``/``_ci_high`` for ECE and AUROC from that many resamples drawn with
    ``rng`` (required then, so that intervals are reproducible).
    """
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    metrics = {
        "acc_pct": 100.0 * accuracy(probs, labels),
        "nll": negative_log_likelihood(probs, labels),
        "brier": brier_score(probs, labels),
        "ece_pct": 100.0 * expected_calibration_error(confidence, correct, n_bins),
        "maxce_pct": 100.0 * maximum_calibration_error(confidence, correct, n_bins),
    }
    if extra_ece:
        metrics["adaece_pct"] = 100.0 * expected_calibration_error(
            confidence, correct, n_bins, binning="equal_mass"
        )
        metrics["cwece_pct"] = 100.0 * classwise_calibration_error(probs, labels, n_bins)
    metrics |= {
        "auroc_pct": 100.0 * auroc(confidence, correct),
        "aupr_success_pct": 100.0 * aupr_success(confidence, correct),
        "aupr_error_pct": 100.0 * aupr_error(confidence, correct),
        "fpr95_pct": 100.0 * fpr_at_tpr(confidence, correct, 0.95),
        "aurc_x1000": 1000.0 * aurc(confidence, correct),
        "eaurc_x1000": 1000.0 * excess_aurc(confidence, correct),
    }
    if bootstrap > 0:
        if rng is None:
            raise ValueError("bootstrap > 0 needs an rng")
        intervals = bootstrap_ci(
            {
                "ece_pct": lambda w: 100.0 * batched_ece(confidence, correct, w, n_bins),
                "auroc_pct": lambda w: 100.0 * batched_auroc(confidence, correct, w),
            },
            len(labels),
            bootstrap,
            rng,
        )
        metrics = _insert_intervals(metrics, intervals)
    return metrics


def _insert_intervals(
    metrics: dict[str, float], intervals: dict[str, tuple[float, float]]
) -> dict[str, float]:
    """Place ``<name>_ci_low``/``_ci_high`` right after ``<name>`` (leaderboard column order)."""
    out: dict[str, float] = {}
    for name, value in metrics.items():
        out[name] = value
        if name in intervals:
            out[f"{name}_ci_low"], out[f"{name}_ci_high"] = intervals[name]
    return out


def metrics_from_records(
    records: pd.DataFrame,
    n_bins: int = 15,
    *,
    extra_ece: bool = True,
    bootstrap: int = 0,
    seed: int = 0,
) -> dict[str, float]:
    """Every metric of :func:`summary_metrics` (ECE variants included by default) from the
    per-example records of any evaluation: ECE under a corruption or AUROC on adversarial
    examples is the same call on that evaluation's records.

    The labels and the full probability vectors are read back (``label``, ``prob_<k>``);
    ``confidence``/``correct`` are recomputed from them, so a filtered or concatenated table
    works as long as it keeps those columns.
    """
    labels = records["label"].to_numpy()
    rng = np.random.default_rng(seed) if bootstrap > 0 else None
    return summary_metrics(
        probabilities_from_records(records),
        labels,
        n_bins,
        extra_ece=extra_ece,
        bootstrap=bootstrap,
        rng=rng,
    )
