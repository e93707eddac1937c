"""Prediction consistency along perturbation sequences (spatial-smoothing paper, Eq. 37-38).

``probs`` has shape (frames, N, K): the predictive distribution f(x_i) of each frame i of
each example's sequence S = {x_1, ..., x_{M+1}}.

- Consistency (Eq. 37): (1/M) sum_i 1[g(x_i) = g(x_{i+1})], g = argmax f; per example.
- CEC (Eq. 38), as written: -(1/M) sum_i f(x_i) . log f(x_{i+1}), the cross-entropy of
  consecutive predictions in nats. It includes the entropy of f(x_i), so a constant but
  uncertain prediction scores > 0 (the paper's observation that calibrated models have high
  CEC is partly this term). ``cec_kl`` subtracts it: the mean KL(f(x_i) || f(x_{i+1})), zero
  exactly when the prediction does not move.
"""

from __future__ import annotations

import numpy as np

TINY = 1e-300  # log(0) guard: a probability that underflowed to 0 counts as 1e-300


def consistency(probs: np.ndarray) -> np.ndarray:
    """Eq. 37 per example, in [0, 1]."""
    predictions = probs.argmax(axis=2)  # (frames, N)
    return (predictions[1:] == predictions[:-1]).mean(axis=0)


def cross_entropy_consistency(probs: np.ndarray) -> np.ndarray:
    """Eq. 38 per example (nats)."""
    current, following = probs[:-1], probs[1:]
    return -(current * np.log(np.maximum(following, TINY))).sum(axis=2).mean(axis=0)


def kl_consistency(probs: np.ndarray) -> np.ndarray:
    """Mean KL divergence between consecutive predictions, per example (nats)."""
    current = probs[:-1]
    entropy = -(current * np.log(np.maximum(current, TINY))).sum(axis=2).mean(axis=0)
    return cross_entropy_consistency(probs) - entropy
