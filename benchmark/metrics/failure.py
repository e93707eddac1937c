"""Failure prediction: how well the confidence separates correct from wrong predictions.

Definitions follow the FMFP paper (Zhu et al., "Rethinking confidence calibration for failure
prediction", ECCV 2022, supplementary "Evaluation metrics") and its code
(Impression2805/FMFP, utils/metrics.py). The score is the maximum softmax probability and a
correct prediction is the positive class.

- AUROC: area under the ROC curve of (correct vs wrong) by confidence; the probability that a
  correct example gets a higher confidence than a wrong one, ties counting 1/2 (trapezoidal
  ROC, identical to ``sklearn.metrics.roc_auc_score``).
- AUPR-Success / AUPR-Error: area under the precision-recall curve with correct (resp. wrong,
  score = -confidence) as positives, computed as *average precision*
  sum_n (R_n - R_{n-1}) P_n over distinct thresholds, identical to
  ``sklearn.metrics.average_precision_score``. The FMFP code uses this for AUPR-Error but a
  trapezoidal PR area for AUPR-Success; the trapezoid over-states PR areas (sklearn's
  documentation), so we use average precision for both and keep the two comparable.
- FPR95: false-positive rate (wrong examples accepted / all wrong) at the first ROC operating
  point whose true-positive rate is >= 95%, i.e. the lowest FPR of any threshold that keeps at
  least 95% of the correct predictions. (The FMFP code takes the ROC point whose TPR is
  *closest* to 0.95, which may lie below 95% and depends on sklearn dropping collinear points.)
- AURC (Geifman et al. 2019): sort by descending confidence; the selective risk at coverage
  k/N is the error rate of the k most confident examples; AURC = mean over k = 1..N. Ties in
  confidence: examples with equal confidence cannot be separated by any threshold, so within
  a tied run we use the *expected* risk over all orderings of that run (the error count grows
  linearly through the run). Without ties this equals the FMFP code exactly; with ties it does
  not depend on record order, as AUROC's tie rule does not.
- E-AURC = AURC - optimal AURC, optimal = r + (1 - r) ln(1 - r) with r the error rate: the
  AURC of a perfect ordering (all errors last), in the continuous approximation used by the
  paper; the exact finite-N optimum exceeds it by O(1/N).

Degenerate inputs: with no wrong (or no correct) predictions AUROC, FPR95 and the AUPR whose
positive class is absent are undefined and returned as NaN (sklearn returns NaN for AUROC but
0.0 for such an AUPR, which would rank a perfect model worst). AURC/E-AURC stay defined
(0 and 0 when all correct; 1 and 0 when all wrong). Empty input gives NaN everywhere.

The ranking metrics are implemented here rather than by calling sklearn because the bootstrap
needs them for B resamples at once: :func:`batched_auroc` works on a (B, N) matrix of resample
counts with a single sort. Tests check every value against sklearn.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, xlogy


def _ranked_counts(
    scores: np.ndarray, positive: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative (true positives, false positives) when accepting scores >= each distinct
    threshold, thresholds descending; shape (B, G) for G distinct scores (B = 1 if unweighted).
    """
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    w = np.ones((1, len(scores))) if weights is None else weights[:, order]
    pos = positive[order].astype(np.float64)
    tps = np.cumsum(np.add.reduceat(w * pos, starts, axis=1), axis=1)
    fps = np.cumsum(np.add.reduceat(w * (1.0 - pos), starts, axis=1), axis=1)
    return tps, fps


def _prepare(confidences: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    confidences = np.asarray(confidences, np.float64)
    correct = np.asarray(correct, bool)
    if confidences.ndim != 1 or confidences.shape != correct.shape:
        raise ValueError("confidences and correct must be 1-D arrays of equal length")
    return confidences, correct


def batched_auroc(confidences: np.ndarray, correct: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC for each row of example weights (B, N); NaN where a class has zero weight."""
    confidences, correct = _prepare(confidences, correct)
    if len(confidences) == 0:
        return np.full(len(weights), np.nan)
    tps, fps = _ranked_counts(confidences, correct, weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.pad(tps / tps[:, -1:], ((0, 0), (1, 0)))
        fpr = np.pad(fps / fps[:, -1:], ((0, 0), (1, 0)))
    return np.trapezoid(tpr, fpr, axis=1)


def auroc(confidences: np.ndarray, correct: np.ndarray) -> float:
    """AUROC in [0, 1] of correct (positive) vs wrong by confidence; NaN if one class is absent."""
    return float(batched_auroc(confidences, correct, np.ones((1, len(confidences))))[0])


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Average precision sum_n (R_n - R_{n-1}) P_n over distinct thresholds; NaN without
    positives (recall is undefined)."""
    scores, positive = _prepare(scores, positive)
    if not positive.any():
        return float("nan")
    tps, fps = _ranked_counts(scores, positive)
    tps, fps = tps[0], fps[0]
    recall_steps = np.diff(tps, prepend=0.0) / tps[-1]
    return float(np.sum(recall_steps * tps / (tps + fps)))


def aupr_success(confidences: np.ndarray, correct: np.ndarray) -> float:
    """AUPR with correct predictions as positives, score = confidence."""
    confidences, correct = _prepare(confidences, correct)
    return average_precision(confidences, correct)


def aupr_error(confidences: np.ndarray, correct: np.ndarray) -> float:
    """AUPR with wrong predictions as positives, score = -confidence."""
    confidences, correct = _prepare(confidences, correct)
    return average_precision(-confidences, ~correct)


def fpr_at_tpr(confidences: np.ndarray, correct: np.ndarray, tpr: float = 0.95) -> float:
    """Lowest FPR among thresholds with TPR >= ``tpr`` (FPR95 for the default)."""
    confidences, correct = _prepare(confidences, correct)
    if correct.all() or not correct.any():
        return float("nan")
    tps, fps = _ranked_counts(confidences, correct)
    tps, fps = tps[0], fps[0]
    first = int(np.argmax(tps / tps[-1] >= tpr))
    return float(fps[first] / fps[-1])


def risk_coverage_curve(
    confidences: np.ndarray, correct: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(coverage k/N, selective risk of the k most confident) for k = 1..N; tied runs use the
    expected error count over their orderings (see the module docstring)."""
    confidences, correct = _prepare(confidences, correct)
    n = len(confidences)
    order = np.argsort(-confidences, kind="stable")
    sorted_conf = confidences[order]
    errors = (~correct[order]).astype(np.float64)
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_conf)) + 1] if n else np.zeros(0, int)
    sizes = np.diff(np.r_[starts, n])
    run_errors = np.add.reduceat(errors, starts) if n else np.zeros(0)
    errors_before = np.cumsum(run_errors) - run_errors
    run = np.repeat(np.arange(len(starts)), sizes)  # tied run of each sorted position
    k = np.arange(1, n + 1)
    expected_errors = errors_before[run] + (k - starts[run]) * run_errors[run] / sizes[run]
    return k / n, expected_errors / k


def optimal_aurc(error_rate: float) -> float:
    """AURC of a perfect ordering, r + (1 - r) ln(1 - r) (xlogy: 0 ln 0 = 0 at r = 1)."""
    return float(error_rate + xlogy(1.0 - error_rate, 1.0 - error_rate))


def aurc(confidences: np.ndarray, correct: np.ndarray) -> float:
    """Area under the risk-coverage curve in [0, 1]: mean selective risk over k = 1..N."""
    _, risk = risk_coverage_curve(confidences, correct)
    return float(risk.mean()) if len(risk) else float("nan")


def batched_aurc(confidences: np.ndarray, correct: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AURC in [0, 1] for each row of integer example weights (B, N), e.g. bootstrap
    resample counts: exactly the AURC of the data set holding example i w_i times.

    The order by confidence is the same for every row. A tied run with total weight w,
    weighted errors e (error fraction p = e / w) and W examples, E errors before it adds
    sum_{j=1..w} (E + j p) / (W + j) = e + (E - p W) (H(W + w) - H(W)) to the sum of
    selective risks, H the harmonic numbers (H(n) = digamma(n + 1) + Euler's gamma), so no
    resample is expanded into copies. Weights all one give :func:`aurc`."""
    confidences, correct = _prepare(confidences, correct)
    weights = np.atleast_2d(np.asarray(weights, np.float64))
    n = len(confidences)
    if n == 0:
        return np.full(len(weights), np.nan)
    order = np.argsort(-confidences, kind="stable")
    sorted_conf = confidences[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_conf)) + 1]
    w = weights[:, order]
    errors = (~correct[order]).astype(np.float64)
    run_w = np.add.reduceat(w, starts, axis=1)  # (B, runs)
    run_e = np.add.reduceat(w * errors, starts, axis=1)
    before_w = np.cumsum(run_w, axis=1) - run_w
    before_e = np.cumsum(run_e, axis=1) - run_e
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(run_w > 0, run_e / np.where(run_w > 0, run_w, 1.0), 0.0)
        harmonic = digamma(before_w + run_w + 1.0) - digamma(before_w + 1.0)
        total = (run_e + (before_e - p * before_w) * harmonic).sum(axis=1)
        return total / weights.sum(axis=1)


def batched_excess_aurc(
    confidences: np.ndarray, correct: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """E-AURC for each row of integer example weights (B, N), as :func:`batched_aurc`."""
    weights = np.atleast_2d(np.asarray(weights, np.float64))
    errors = (~np.asarray(correct, bool)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (weights @ errors) / weights.sum(axis=1)
    return batched_aurc(confidences, correct, weights) - (r + xlogy(1.0 - r, 1.0 - r))


def excess_aurc(confidences: np.ndarray, correct: np.ndarray) -> float:
    """E-AURC = AURC - optimal AURC for this error rate."""
    if len(confidences) == 0:
        return float("nan")
    error_rate = 1.0 - float(np.mean(np.asarray(correct, bool)))
    return aurc(confidences, correct) - optimal_aurc(error_rate)
