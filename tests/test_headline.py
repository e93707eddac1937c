"""The per-threat-model headline: per-example worst case over every attack evaluation at one
norm and eps, on the examples all of them evaluated."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmark.evaluations.adversarial import wilson_interval
from benchmark.results import AdversarialSummary, ResultSummary
from benchmark.runner.headline import headline_columns


def summary(norm: str, eps: object, eps_value: float | None) -> AdversarialSummary:
    return AdversarialSummary(metrics={}, extras={"norm": norm, "eps": eps, "eps_value": eps_value})


RECORDS = {
    # PGD on 6 examples, AutoAttack on a nested subset of 4; one example (3) only PGD breaks
    ("pgd", "m"): pd.DataFrame(
        {
            "index": [1, 2, 3, 4, 5, 6],
            "clean_correct": [1, 1, 1, 1, 0, 1],
            "robust": [1, 1, 0, 1, 0, 1],
        }
    ),
    ("aa", "m"): pd.DataFrame(
        {"index": [2, 3, 4, 6], "clean_correct": [1, 1, 1, 1], "robust": [1, 1, 0, 1]}
    ),
    ("l2", "m"): pd.DataFrame({"index": [1, 2], "clean_correct": [1, 1], "robust": [1, 0]}),
}


def test_headline_is_the_per_example_worst_case_on_the_common_examples():
    results: dict[str, dict[str, ResultSummary]] = {
        "pgd": {"m": summary("Linf", "8/255", 8 / 255)},
        "aa": {"m": summary("Linf", "8/255", 8 / 255)},
        "l2": {"m": summary("L2", 0.5, 0.5)},
        "sweep": {"m": summary("Linf", ["1/255", "8/255"], None)},  # sweeps are left out
        "clean": {"m": ResultSummary(metrics={}, extras={})},
    }
    values, specs = headline_columns(results, lambda e, r: RECORDS[e, r])
    row = values["m"]
    # common examples 2, 3, 4, 6: PGD breaks 3, AutoAttack breaks 4 -> 2 of 4 robust
    assert row["linf_8/255_n_examples"] == 4
    assert row["linf_8/255_robust_acc_pct"] == 50.0
    low, high = wilson_interval(2, 4)
    assert row["linf_8/255_robust_acc_pct_ci_low"] == pytest.approx(100 * low)
    assert row["linf_8/255_robust_acc_pct_ci_high"] == pytest.approx(100 * high)
    assert row["linf_8/255_subset_clean_acc_pct"] == 100.0
    assert row["linf_8/255_by"] in {"pgd", "aa"}  # each leaves 3 of the 4 robust
    assert row["l2_0.5_robust_acc_pct"] == 50.0 and row["l2_0.5_by"] == "l2"
    assert specs["linf_8/255_robust_acc_pct"].direction == "higher"
    assert not any(column.startswith("linf_1/255") for column in row)
    # never above any single evaluation on the same examples
    for name in ("pgd", "aa"):
        own = RECORDS[name, "m"].set_index("index").loc[[2, 3, 4, 6], "robust"].mean()
        assert row["linf_8/255_robust_acc_pct"] <= 100 * own


def test_a_weaker_attack_breaking_more_than_a_stronger_one_is_flagged():
    from benchmark.runner.headline import weaker_breaks_stronger

    n = 100
    index = list(range(n))
    weak_robust = [i >= 10 for i in index]  # FGSM breaks 0-9
    strong_robust = [i >= 6 for i in index]  # PGD breaks only 0-5: misses 6-9
    records = {
        ("fgsm", "m"): pd.DataFrame({"index": index, "clean_correct": 1, "robust": weak_robust}),
        ("pgd", "m"): pd.DataFrame({"index": index, "clean_correct": 1, "robust": strong_robust}),
    }
    results: dict[str, dict[str, ResultSummary]] = {
        "fgsm": {"m": summary("Linf", 0.1, 0.1)},
        "pgd": {"m": summary("Linf", 0.1, 0.1)},
    }
    kinds = {"fgsm": "single-step", "pgd": "iterative"}
    findings = weaker_breaks_stronger(results, lambda e, r: records[e, r], kinds)
    assert [(f.model, f.flag, f.source) for f in findings] == [
        ("m", "weaker_attack_breaks_more", "fgsm vs pgd")
    ]
    assert findings[0].numbers == {"examples": 4, "of": 100}
    # two missed examples in a hundred: an attack's bad luck, not a failing attack
    records["pgd", "m"]["robust"] = [i >= 8 for i in index]
    assert weaker_breaks_stronger(results, lambda e, r: records[e, r], kinds) == []
