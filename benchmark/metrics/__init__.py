"""Metrics computed from per-example predictions (probabilities and labels)."""

from benchmark.metrics.bootstrap import bootstrap_ci
from benchmark.metrics.calibration import (
    batched_ece,
    classwise_calibration_error,
    expected_calibration_error,
    maximum_calibration_error,
    reliability_bins,
)
from benchmark.metrics.classification import accuracy, brier_score, negative_log_likelihood
from benchmark.metrics.failure import (
    aupr_error,
    aupr_success,
    aurc,
    auroc,
    batched_auroc,
    excess_aurc,
    fpr_at_tpr,
    optimal_aurc,
    risk_coverage_curve,
)
from benchmark.metrics.specs import SUMMARY_METRICS, Direction, MetricSpec, find_spec

__all__ = [
    "SUMMARY_METRICS",
    "Direction",
    "MetricSpec",
    "accuracy",
    "aupr_error",
    "aupr_success",
    "aurc",
    "auroc",
    "batched_auroc",
    "batched_ece",
    "bootstrap_ci",
    "brier_score",
    "classwise_calibration_error",
    "excess_aurc",
    "expected_calibration_error",
    "find_spec",
    "fpr_at_tpr",
    "maximum_calibration_error",
    "negative_log_likelihood",
    "optimal_aurc",
    "reliability_bins",
    "risk_coverage_curve",
]
