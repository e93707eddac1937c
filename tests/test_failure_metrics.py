"""Failure-prediction metrics against sklearn, direct loops and hand-computed values.

Conventions checked here (see benchmark/metrics/failure.py): positive = correct prediction,
score = max-softmax confidence; AUPR = average precision (sklearn's definition, no
interpolation); FPR95 = FPR at the first ROC point with TPR >= 0.95; AURC = mean selective
risk over k = 1..N, tied confidences averaged over their orderings.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

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


def random_case(seed: int, n: int = 2000, ties: bool = False):
    """Confidences loosely related to correctness (AUROC well inside (0.5, 1))."""
    rng = np.random.default_rng(seed)
    correct = rng.random(n) < 0.7
    conf = 1 / (1 + np.exp(-rng.normal(np.where(correct, 1.5, 0.5), 1.0)))  # in (0, 1)
    return (np.round(conf, 2) if ties else conf), correct


def loop_aurc(conf, correct):
    """The FMFP reference loop: stable sort by descending confidence, risk after each example."""
    ranked = sorted(zip(conf, correct, strict=True), key=lambda pair: pair[0], reverse=True)
    errors, total = 0, 0.0
    for k, (_, is_correct) in enumerate(ranked, start=1):
        errors += not is_correct
        total += errors / k
    return total / len(ranked)


def sklearn_fpr95(conf, correct):
    fpr, tpr, _ = roc_curve(correct, conf, drop_intermediate=False)
    return fpr[np.argmax(tpr >= 0.95)]


CASES = [(seed, ties) for seed in (0, 1, 2) for ties in (False, True)]


@pytest.mark.parametrize(("seed", "ties"), CASES)
def test_auroc_and_aupr_match_sklearn(seed, ties):
    conf, correct = random_case(seed, ties=ties)
    assert auroc(conf, correct) == pytest.approx(roc_auc_score(correct, conf), abs=1e-12)
    assert aupr_success(conf, correct) == pytest.approx(
        average_precision_score(correct, conf), abs=1e-12
    )
    assert aupr_error(conf, correct) == pytest.approx(
        average_precision_score(~correct, -conf), abs=1e-12
    )


@pytest.mark.parametrize(("seed", "ties"), CASES)
def test_fpr95_matches_sklearn_roc_curve(seed, ties):
    conf, correct = random_case(seed, ties=ties)
    assert fpr_at_tpr(conf, correct) == pytest.approx(sklearn_fpr95(conf, correct), abs=1e-12)


def test_fpr95_hand_computed():
    # 20 correct with confidences 0.99..0.80, 10 wrong at 0.95 (tied with a correct one) and 0.5.
    correct_conf = np.round(0.99 - 0.01 * np.arange(20), 2)  # rounded: 0.95 ties exactly
    conf = np.r_[correct_conf, [0.95] * 4, [0.5] * 6]
    correct = np.r_[np.ones(20, bool), np.zeros(10, bool)]
    # TPR reaches 19/20 = 0.95 at threshold 0.81; by then the 4 wrong at 0.95 are accepted.
    assert fpr_at_tpr(conf, correct) == pytest.approx(0.4)
    # TPR 5/20 needs the 0.95 run (1 correct + 4 wrong); 4/20 is reached before it
    assert fpr_at_tpr(conf, correct, tpr=0.25) == pytest.approx(0.4)
    assert fpr_at_tpr(conf, correct, tpr=0.2) == 0.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aurc_matches_reference_loop_without_ties(seed):
    conf, correct = random_case(seed, n=500)
    assert len(np.unique(conf)) == len(conf)
    assert aurc(conf, correct) == pytest.approx(loop_aurc(conf, correct), abs=1e-12)


def test_aurc_with_ties_is_the_mean_over_all_tie_orderings():
    conf = np.array([0.9, 0.9, 0.9, 0.7, 0.7, 0.5, 0.5])
    correct = np.array([True, False, True, False, True, True, False])
    # brute force: every ordering consistent with descending confidence, run the loop on each
    values = [
        loop_aurc(conf[list(p)], correct[list(p)])
        for p in itertools.permutations(range(len(conf)))
        if all(conf[p[i]] >= conf[p[i + 1]] for i in range(len(p) - 1))
    ]
    assert len(values) == 6 * 2 * 2  # 3! * 2! * 2! orderings
    assert aurc(conf, correct) == pytest.approx(np.mean(values), abs=1e-12)
    # ... and therefore does not depend on record order
    shuffled = np.random.default_rng(0).permutation(len(conf))
    assert aurc(conf[shuffled], correct[shuffled]) == pytest.approx(aurc(conf, correct), abs=1e-12)


def test_risk_coverage_curve_ends_at_the_error_rate():
    conf, correct = random_case(4, ties=True)
    coverage, risk = risk_coverage_curve(conf, correct)
    assert coverage[-1] == 1.0 and coverage[0] == 1 / len(conf)
    assert risk[-1] == pytest.approx(1 - correct.mean(), abs=1e-12)
    assert aurc(conf, correct) == pytest.approx(risk.mean())


def test_optimal_aurc_hand_computed():
    assert optimal_aurc(0.0) == 0.0
    assert optimal_aurc(1.0) == 1.0
    assert optimal_aurc(0.5) == pytest.approx(0.5 + 0.5 * math.log(0.5))  # 0.1534264...
    assert optimal_aurc(0.1) == pytest.approx(0.1 + 0.9 * math.log(0.9))  # 0.0051748...


def test_eaurc_hand_computed_perfect_ordering():
    conf = np.array([0.9, 0.8, 0.7, 0.6])
    correct = np.array([True, True, False, False])
    # selective risks 0, 0, 1/3, 2/4 -> AURC 5/24; optimum for r = 1/2 is 0.5 + 0.5 ln 0.5
    assert aurc(conf, correct) == pytest.approx(5 / 24)
    assert excess_aurc(conf, correct) == pytest.approx(5 / 24 - (0.5 + 0.5 * math.log(0.5)))


def test_degenerate_all_correct():
    conf = np.array([0.9, 0.8, 0.8, 0.6])
    correct = np.ones(4, bool)
    with pytest.warns(Warning):  # sklearn agrees that AUROC is undefined
        assert math.isnan(roc_auc_score(correct, conf))
    assert math.isnan(auroc(conf, correct))
    assert math.isnan(fpr_at_tpr(conf, correct))
    assert aupr_success(conf, correct) == average_precision_score(correct, conf) == 1.0
    assert math.isnan(aupr_error(conf, correct))  # no errors to find (sklearn says 0.0)
    assert aurc(conf, correct) == 0.0 and excess_aurc(conf, correct) == 0.0


def test_degenerate_all_wrong():
    conf = np.array([0.9, 0.8, 0.8, 0.6])
    correct = np.zeros(4, bool)
    assert math.isnan(auroc(conf, correct))
    assert math.isnan(fpr_at_tpr(conf, correct))
    assert math.isnan(aupr_success(conf, correct))
    assert aupr_error(conf, correct) == average_precision_score(~correct, -conf) == 1.0
    assert aurc(conf, correct) == 1.0 and excess_aurc(conf, correct) == 0.0


def test_degenerate_all_tied_and_empty():
    conf = np.full(10, 0.5)
    correct = np.arange(10) < 7
    assert auroc(conf, correct) == pytest.approx(0.5)
    assert aupr_success(conf, correct) == pytest.approx(0.7)
    assert fpr_at_tpr(conf, correct) == 1.0
    assert aurc(conf, correct) == pytest.approx(0.3)  # every coverage has expected risk 0.3
    empty = (np.zeros(0), np.zeros(0, bool))
    for metric in (auroc, aupr_success, aupr_error, fpr_at_tpr, aurc, excess_aurc):
        assert math.isnan(metric(*empty))


def test_batched_auroc_with_counts_equals_sklearn_with_sample_weight():
    conf, correct = random_case(5, n=300, ties=True)
    counts = np.random.default_rng(1).integers(0, 3, size=(4, 300)).astype(float)
    for row, weights in zip(batched_auroc(conf, correct, counts), counts, strict=True):
        assert row == pytest.approx(roc_auc_score(correct, conf, sample_weight=weights), abs=1e-12)


def test_mismatched_inputs_are_rejected():
    with pytest.raises(ValueError, match="equal length"):
        auroc(np.zeros(3), np.zeros(4, bool))
