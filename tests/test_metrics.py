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
from benchmark.metrics.calibration import batched_ece, classwise_calibration_error

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


# --- ECE variants: equal-mass (adaptive) and classwise, against brute-force loops ------------


def random_predictions(seed: int, n: int, k: int = 10, scale: float = 3.0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=scale, size=(n, k))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.where(rng.random(n) < 0.6, probs.argmax(1), rng.integers(0, k, size=n))
    return probs, labels


def brute_force_adaptive_ece(conf, correct, n_bins):
    """Sort ascending (stable), bin b = sorted positions [b N // B, (b + 1) N // B)."""
    order = sorted(range(len(conf)), key=lambda i: conf[i])
    total = 0.0
    for b in range(n_bins):
        members = order[b * len(conf) // n_bins : (b + 1) * len(conf) // n_bins]
        if members:
            mean_conf = sum(conf[i] for i in members) / len(members)
            mean_acc = sum(float(correct[i]) for i in members) / len(members)
            total += len(members) / len(conf) * abs(mean_acc - mean_conf)
    return total


def brute_force_classwise_ece(probs, labels, n_bins):
    n, k = probs.shape
    total = 0.0
    for c in range(k):
        for b in range(n_bins):
            lo, hi = b / n_bins, (b + 1) / n_bins
            # (lo, hi] bins; probability 0 goes to the first bin
            members = [
                i for i in range(n) if (lo < probs[i, c] <= hi) or (b == 0 and probs[i, c] == 0)
            ]
            if members:
                freq = sum(labels[i] == c for i in members) / len(members)
                mean_p = sum(probs[i, c] for i in members) / len(members)
                total += len(members) / n * abs(freq - mean_p)
    return total / k


@pytest.mark.parametrize(("seed", "n", "n_bins"), [(0, 1003, 15), (1, 500, 10), (2, 7, 15)])
def test_adaptive_ece_matches_brute_force(seed, n, n_bins):
    probs, labels = random_predictions(seed, n)
    conf, correct = probs.max(1), probs.argmax(1) == labels
    ours = expected_calibration_error(conf, correct, n_bins, binning="equal_mass")
    assert ours == pytest.approx(brute_force_adaptive_ece(conf, correct, n_bins), abs=1e-12)


def test_adaptive_ece_with_tied_confidences_matches_brute_force():
    probs, labels = random_predictions(3, 400)
    conf = np.round(probs.max(1), 1)  # heavy ties, also across bin cuts
    correct = probs.argmax(1) == labels
    ours = expected_calibration_error(conf, correct, 15, binning="equal_mass")
    assert ours == pytest.approx(brute_force_adaptive_ece(conf, correct, 15), abs=1e-12)


def test_equal_mass_bins_have_sizes_differing_by_at_most_one():
    from benchmark.metrics.calibration import equal_mass_bins

    counts = np.bincount(equal_mass_bins(np.random.default_rng(0).random(1003), 15))
    assert counts.sum() == 1003 and counts.max() - counts.min() <= 1


@pytest.mark.parametrize("seed", [0, 1])
def test_classwise_ece_matches_brute_force(seed):
    probs, labels = random_predictions(seed, 200, k=4)
    probs[0] = [1.0, 0.0, 0.0, 0.0]  # exact 0 and 1 probabilities hit the edge bins
    ours = classwise_calibration_error(probs, labels, 15)
    assert ours == pytest.approx(brute_force_classwise_ece(probs, labels, 15), abs=1e-12)


def test_batched_ece_with_counts_equals_ece_of_repeated_examples():
    probs, labels = random_predictions(4, 300)
    conf, correct = probs.max(1), probs.argmax(1) == labels
    counts = np.random.default_rng(0).integers(0, 4, size=(3, 300)).astype(float)
    batched = batched_ece(conf, correct, counts)
    for row, weights in zip(batched, counts, strict=True):
        repeat = weights.astype(int)
        expected = expected_calibration_error(np.repeat(conf, repeat), np.repeat(correct, repeat))
        assert row == pytest.approx(expected, abs=1e-12)


def test_ece_variants_on_degenerate_inputs():
    conf = np.full(20, 0.9)
    for binning in ("equal_width", "equal_mass"):
        assert expected_calibration_error(conf, np.ones(20, bool), binning=binning) == (
            pytest.approx(0.1)
        )
        assert expected_calibration_error(conf, np.zeros(20, bool), binning=binning) == (
            pytest.approx(0.9)
        )
        assert math.isnan(expected_calibration_error(np.zeros(0), np.zeros(0, bool)))
    onehot = np.eye(3)[[0, 1, 2, 0]]
    assert classwise_calibration_error(onehot, np.array([0, 1, 2, 0])) == 0.0
