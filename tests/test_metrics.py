"""Metrics against hand-computed values and an independent implementation (torchmetrics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmark.metrics import (
    accuracy,
    brier_score,
    expected_calibration_error,
    maximum_calibration_error,
    negative_log_likelihood,
)

PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
LABELS = np.array([0, 2])


def test_nll_hand_computed():
    expected = -(math.log(0.7) + math.log(0.1)) / 2
    assert negative_log_likelihood(PROBS, LABELS) == pytest.approx(expected, rel=1e-12)


def test_nll_zero_probability_is_finite_and_large():
    probs = np.array([[1.0, 0.0]])
    assert 700 < negative_log_likelihood(probs, np.array([1])) < 1e4


def test_brier_hand_computed():
    # example 1: (0.7-1)^2 + 0.2^2 + 0.1^2 = 0.14; example 2: 0.1^2 + 0.8^2 + (0.1-1)^2 = 1.46
    assert brier_score(PROBS, LABELS) == pytest.approx((0.14 + 1.46) / 2, rel=1e-12)


def test_accuracy_hand_computed():
    assert accuracy(PROBS, LABELS) == 0.5


def test_ece_hand_computed_one_example_per_bin():
    conf = np.array([0.9, 0.82, 0.62, 0.3])
    correct = np.array([1, 0, 1, 0], dtype=bool)
    # every confidence falls in its own 1/15-wide bin: ECE = mean |correct - conf|
    assert expected_calibration_error(conf, correct) == pytest.approx((0.1 + 0.82 + 0.38 + 0.3) / 4)
    assert maximum_calibration_error(conf, correct) == pytest.approx(0.82)


def test_ece_hand_computed_shared_bin():
    conf = np.array([0.9, 0.82, 0.62, 0.3, 0.91, 0.92])
    correct = np.array([1, 0, 1, 0, 1, 0], dtype=bool)
    # 0.9, 0.91 and 0.92 share bin (0.867, 0.933]: acc 2/3, conf 0.91 -> gap 0.24333
    # other bins: |0-0.82| + |1-0.62| + |0-0.3| = 1.5
    expected = (1.5 + 3 * abs(2 / 3 - (0.9 + 0.91 + 0.92) / 3)) / 6
    assert expected_calibration_error(conf, correct) == pytest.approx(expected)


def test_ece_perfectly_calibrated_and_confidently_wrong():
    conf = np.full(10, 0.999)
    assert expected_calibration_error(conf, np.ones(10, bool)) == pytest.approx(0.001)
    assert expected_calibration_error(conf, np.zeros(10, bool)) == pytest.approx(0.999)


def test_ece_confidence_on_bin_edge_goes_to_lower_bin():
    # (lo, hi] bins: confidence 1.0 is in the last bin, 1/15 exactly in the first
    assert expected_calibration_error(np.array([1.0]), np.array([True])) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([1 / 15]), np.array([False])) == pytest.approx(
        1 / 15
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_bins", [15, 10])
def test_ece_matches_torchmetrics_on_random_predictions(seed, n_bins):
    from torchmetrics.functional.classification import multiclass_calibration_error

    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(2000, 10))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, 10, size=2000)
    ours = expected_calibration_error(probs.max(1), probs.argmax(1) == labels, n_bins)
    reference = multiclass_calibration_error(
        torch.tensor(probs), torch.tensor(labels), num_classes=10, n_bins=n_bins, norm="l1"
    )
    assert ours == pytest.approx(float(reference), abs=1e-6)


def test_nll_and_brier_match_torch_on_random_predictions():
    rng = np.random.default_rng(7)
    logits = torch.tensor(rng.normal(scale=2.0, size=(500, 7)))
    labels = torch.tensor(rng.integers(0, 7, size=500))
    probs = torch.softmax(logits, 1).numpy()
    reference_nll = torch.nn.functional.cross_entropy(logits, labels).item()
    assert negative_log_likelihood(probs, labels.numpy()) == pytest.approx(reference_nll, rel=1e-9)
    onehot = torch.nn.functional.one_hot(labels, 7).double()
    reference_brier = ((torch.softmax(logits, 1) - onehot) ** 2).sum(1).mean().item()
    assert brier_score(probs, labels.numpy()) == pytest.approx(reference_brier, rel=1e-9)
