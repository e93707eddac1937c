"""Out-of-distribution detection from a per-example score (higher = more in-distribution).

Conventions (Hendrycks & Gimpel 2017, the AR-AdaLS paper's OOD table): in-distribution is the
positive class. AUROC does not depend on which side is positive; AUPR does, so both are
given: AUPR-In (in-distribution positive, score as is) and AUPR-Out (OOD positive, score
negated). FPR95 is the fraction of OOD examples accepted at the threshold that keeps 95% of
the in-distribution ones. Scores: maximum softmax probability, and negative predictive
entropy (low entropy = in-distribution).
"""

from __future__ import annotations

import numpy as np

from benchmark.metrics.failure import auroc, average_precision, fpr_at_tpr


def predictive_entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy in nats of each row of ``probs`` (0 log 0 = 0)."""
    p = np.clip(probs, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return terms.sum(axis=1)


def ood_scores(probs: np.ndarray) -> dict[str, np.ndarray]:
    """Each detector's score per example, higher = judged in-distribution."""
    return {"msp": probs.max(axis=1), "entropy": -predictive_entropy(probs)}


def detection_metrics(in_scores: np.ndarray, out_scores: np.ndarray) -> dict[str, float]:
    """AUROC, AUPR-In, AUPR-Out and FPR95 (fractions in [0, 1]) of one detector."""
    scores = np.concatenate([in_scores, out_scores]).astype(np.float64)
    inside = np.concatenate([np.ones(len(in_scores), bool), np.zeros(len(out_scores), bool)])
    return {
        "auroc": auroc(scores, inside),
        "aupr_in": average_precision(scores, inside),
        "aupr_out": average_precision(-scores, ~inside),
        "fpr95": fpr_at_tpr(scores, inside, 0.95),
    }
