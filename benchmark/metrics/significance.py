"""Paired significance tests shared by ``compare`` (two models, every metric) and the
suite's claims: the exact McNemar test for accuracies and the two-sided p-value of a paired
bootstrap distribution of differences."""

from __future__ import annotations

import numpy as np
from scipy.stats import binom


def mcnemar_exact(a_correct: np.ndarray, b_correct: np.ndarray) -> tuple[int, int, float]:
    """(b, c, two-sided exact p-value): b = A right and B wrong, c = A wrong and B right.
    Under "equally accurate" b ~ Binomial(b + c, 1/2); p = min(1, 2 P(X <= min(b, c)))."""
    a_correct, b_correct = np.asarray(a_correct, bool), np.asarray(b_correct, bool)
    b = int((a_correct & ~b_correct).sum())
    c = int((~a_correct & b_correct).sum())
    n = b + c
    p = 1.0 if n == 0 else min(1.0, 2.0 * float(binom.cdf(min(b, c), n, 0.5)))
    return b, c, p


def bootstrap_p_value(differences: np.ndarray) -> float:
    """Two-sided p-value of "no difference" from paired bootstrap differences A - B:
    2 (min(#{d <= 0}, #{d >= 0}) + 1) / (B + 1) over the finite ones, so that B resamples
    never report exactly 0; NaN when none is finite."""
    finite = np.asarray(differences, np.float64)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return float("nan")
    tail = min(int((finite <= 0).sum()), int((finite >= 0).sum()))
    return min(1.0, 2.0 * (tail + 1) / (len(finite) + 1))
