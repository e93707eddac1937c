"""Typed result summaries: each evaluation family reads its stored results through one class,
and the accessors say what the stored extras mean (eps, sweeps, flags, corruption tables)."""

from __future__ import annotations

import math

import pytest

from benchmark.evaluations import EVALUATIONS
from benchmark.evaluations.capabilities import Adversarial
from benchmark.results import AdversarialSummary, CorruptionSummary, ResultSummary


def test_every_evaluation_family_reads_its_results_through_its_summary():
    for entry in EVALUATIONS:
        summary = entry.obj.Summary
        assert issubclass(summary, ResultSummary), entry.key
        if issubclass(entry.obj, Adversarial):
            assert issubclass(summary, AdversarialSummary), entry.key
    assert EVALUATIONS.get("corruptions").obj.Summary is CorruptionSummary


def test_adversarial_summary_of_one_eps_and_of_a_sweep():
    single = AdversarialSummary.from_stored(
        {
            "metrics": {"robust_acc_pct": 40.0, "robust_acc_pct_ci_low": 35.0},
            "extras": {"eps_value": 8 / 255, "flags": ["sanity"], "n_examples": 64},
        }
    )
    assert single.eps_value == pytest.approx(8 / 255)
    acc = single.robust_accuracy()
    assert acc is not None and acc["ci_low"] == 35.0 and math.isnan(acc["ci_high"])
    assert single.sweep() == [] and single.flags == ("sanity",) and single.n_examples == 64

    sweep = AdversarialSummary.from_stored(
        {
            "metrics": {"1/255_robust_acc_pct": 60.0, "2/255_robust_acc_pct": 30.0},
            "extras": {
                "eps": ["1/255", "2/255", "4/255"],
                "eps_value": [1 / 255, 2 / 255, 4 / 255],
            },
        }
    )
    assert sweep.eps_value is None and sweep.robust_accuracy() is None
    # the 4/255 point has no stored accuracy (e.g. a sweep stopped early): left out
    assert [(label, a["robust_acc_pct"]) for _, label, a in sweep.sweep()] == [
        ("1/255", 60.0),
        ("2/255", 30.0),
    ]


def test_flag_numbers_come_from_checks_or_the_flag_detail():
    summary = ResultSummary.from_stored(
        {
            "metrics": {},
            "extras": {
                "flags": ["sanity_unbounded", "state_changed"],
                "checks": {"sanity_unbounded": {"failed": True, "acc_pct": 12.0}},
                "state_changed": ["linear.weight"],
            },
        }
    )
    assert summary.flag_numbers("sanity_unbounded") == {"acc_pct": 12.0}
    assert summary.flag_numbers("state_changed") == {"detail": ["linear.weight"]}
    assert summary.flag_numbers("absent") == {}
