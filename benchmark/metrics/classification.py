"""Proper scoring rules and accuracy on predicted probability vectors.

Inputs are NumPy arrays: ``probs`` (N, K) rows summing to one, ``labels`` (N,) ints. They are
computed from per-example records, so any evaluation (clean, adversarial, corrupted) gets the
same metrics.
"""

from __future__ import annotations

import numpy as np

# Smallest probability used inside log: float64 softmax only reaches 0 for logit gaps > ~745.
_TINY = np.finfo(np.float64).tiny


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy in [0, 1]."""
    return float(np.mean(np.argmax(probs, axis=1) == labels))


def negative_log_likelihood(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean of -log p(y|x) (natural log)."""
    p_true = probs[np.arange(len(labels)), labels]
    return float(np.mean(-np.log(np.maximum(p_true, _TINY))))


def brier_score(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean over examples of sum_k (p_k - 1[k = y])^2, in [0, 2].

    This is the usual multi-class Brier score (Brier 1950; torch-uncertainty). The PEP paper
    additionally divides by the number of classes K.
    """
    onehot = np.zeros_like(probs)
    onehot[np.arange(len(labels)), labels] = 1.0
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))
