"""Metrics computed from per-example predictions (probabilities and labels)."""

from benchmark.metrics.calibration import expected_calibration_error, maximum_calibration_error
from benchmark.metrics.classification import accuracy, brier_score, negative_log_likelihood

# Direction of each leaderboard metric suffix, used to sort "best first".
HIGHER_IS_BETTER_SUFFIXES = ("acc_pct",)
LOWER_IS_BETTER_SUFFIXES = (
    "nll",
    "ece_pct",
    "mce_pct",
    "brier",
    "asr_pct",
    "error_pct",
    "mcnll_pct",
    "mcece_pct",
)

__all__ = [
    "HIGHER_IS_BETTER_SUFFIXES",
    "LOWER_IS_BETTER_SUFFIXES",
    "accuracy",
    "brier_score",
    "expected_calibration_error",
    "maximum_calibration_error",
    "negative_log_likelihood",
]
