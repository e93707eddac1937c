"""Bootstrap intervals: seeded, containing the estimate, equal to a plain resampling loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from benchmark.metrics import (
    auroc,
    batched_auroc,
    batched_ece,
    bootstrap_ci,
    expected_calibration_error,
)


def overconfident_case(seed: int = 0, n: int = 2000):
    rng = np.random.default_rng(seed)
    conf = rng.uniform(0.5, 1.0, n)
    correct = rng.random(n) < conf - 0.1  # 10 points overconfident, informative confidence
    return conf, correct


def statistics(conf, correct):
    return {
        "ece": lambda w: batched_ece(conf, correct, w),
        "auroc": lambda w: batched_auroc(conf, correct, w),
    }


def test_interval_contains_the_point_estimate():
    conf, correct = overconfident_case()
    intervals = bootstrap_ci(statistics(conf, correct), len(conf), 500, np.random.default_rng(0))
    for name, point in (
        ("ece", expected_calibration_error(conf, correct)),
        ("auroc", auroc(conf, correct)),
    ):
        low, high = intervals[name]
        assert low < point < high
        assert high - low < 0.1  # N = 2000: a few points wide, not degenerate


def test_same_seed_same_interval_other_seed_other_interval():
    conf, correct = overconfident_case(1, n=500)

    def ci(seed):
        return bootstrap_ci(statistics(conf, correct), len(conf), 200, np.random.default_rng(seed))

    assert ci(3) == ci(3)
    assert ci(3) != ci(4)


def test_vectorized_bootstrap_equals_a_resampling_loop():
    conf, correct = overconfident_case(2, n=300)
    n_resamples = 50
    intervals = bootstrap_ci(
        statistics(conf, correct), len(conf), n_resamples, np.random.default_rng(5)
    )
    # the same draws (one block of integers), evaluated one resample at a time
    draws = np.random.default_rng(5).integers(0, len(conf), size=(n_resamples, len(conf)))
    ece = [expected_calibration_error(conf[i], correct[i]) for i in draws]
    auc = [roc_auc_score(correct[i], conf[i]) for i in draws]
    assert intervals["ece"] == pytest.approx(tuple(np.percentile(ece, [2.5, 97.5])), abs=1e-12)
    assert intervals["auroc"] == pytest.approx(tuple(np.percentile(auc, [2.5, 97.5])), abs=1e-12)


def test_undefined_statistic_gives_nan_interval_without_crashing():
    conf = np.linspace(0.5, 1.0, 40)
    correct = np.ones(40, bool)
    intervals = bootstrap_ci(statistics(conf, correct), 40, 100, np.random.default_rng(0))
    assert all(math.isnan(v) for v in intervals["auroc"])
    assert all(math.isfinite(v) for v in intervals["ece"])
    assert all(math.isnan(v) for v in bootstrap_ci(statistics(conf, correct), 40, 0, None)["ece"])
