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

# Direction of each leaderboard metric suffix, used to sort "best first". A confidence-interval
# column ``<metric>_ci_low`` / ``<metric>_ci_high`` sorts like its metric.
_HIGHER = ("acc_pct", "auroc_pct", "aupr_success_pct", "aupr_error_pct")
_LOWER = (
    "nll",
    "brier",
    "ece_pct",
    "mce_pct",
    "fpr95_pct",
    "aurc_x1000",
    "asr_pct",
    "error_pct",
    "mcnll_pct",
    "mcece_pct",
)
_CI = ("", "_ci_low", "_ci_high")
HIGHER_IS_BETTER_SUFFIXES = tuple(s + ci for s in _HIGHER for ci in _CI)
LOWER_IS_BETTER_SUFFIXES = tuple(s + ci for s in _LOWER for ci in _CI)

__all__ = [
    "HIGHER_IS_BETTER_SUFFIXES",
    "LOWER_IS_BETTER_SUFFIXES",
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
    "fpr_at_tpr",
    "maximum_calibration_error",
    "negative_log_likelihood",
    "optimal_aurc",
    "reliability_bins",
    "risk_coverage_curve",
]
