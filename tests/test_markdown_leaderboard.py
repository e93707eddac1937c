"""The Markdown leaderboard: a headline table first (clean accuracy, per threat model the
worst case with its interval and the clean accuracy of the same subset, calibration, flags),
then one table per evaluation; intervals folded, counts as integers, flags marked."""

from __future__ import annotations

import pandas as pd

from benchmark.leaderboard import FLAG_MARK
from benchmark.metrics.specs import MetricSpec
from benchmark.report.markdown import headline_table_columns, markdown_leaderboard
from benchmark.runner.headline import HEADLINE_METRICS

FRAME = pd.DataFrame(
    {
        "model": ["good", "masked"],
        "flags": ["", "unavailable_gradients"],
        "n_examples": [1000.0, 1000.0],
        "clean_acc_pct": [91.7, 90.0],
        "clean_ece_pct": [3.0, 4.0],
        "clean_ece_pct_ci_low": [2.5, 3.5],
        "clean_ece_pct_ci_high": [3.5, 4.5],
        "clean_nll": [0.3, 0.4],
        "pgd_linf_8/255_robust_acc_pct": [10.0, 80.0],
        "pgd_linf_8/255_robust_acc_pct_ci_low": [8.0, 77.0],
        "pgd_linf_8/255_robust_acc_pct_ci_high": [12.0, 83.0],
        "linf_8/255_robust_acc_pct": [9.0, 80.0],
        "linf_8/255_robust_acc_pct_ci_low": [7.0, 77.0],
        "linf_8/255_robust_acc_pct_ci_high": [11.0, 83.0],
        "linf_8/255_subset_clean_acc_pct": [100.0, 90.0],
        "linf_8/255_n_examples": [50.0, 50.0],
    }
)
COLUMNS = {
    "linf_8/255_robust_acc_pct": HEADLINE_METRICS["robust_acc_pct"],
    "linf_8/255_subset_clean_acc_pct": HEADLINE_METRICS["subset_clean_acc_pct"],
    "linf_8/255_n_examples": HEADLINE_METRICS["n_examples"],
    "clean_nll": MetricSpec("nll", "nats", "lower", "NLL"),
}


def test_headline_first_then_one_table_per_evaluation():
    assert headline_table_columns(FRAME, COLUMNS) == [
        "model",
        "clean_acc_pct",
        "linf_8/255_robust_acc_pct",
        "linf_8/255_subset_clean_acc_pct",
        "clean_ece_pct",
        "clean_nll",
        "flags",
    ]
    text = markdown_leaderboard(FRAME, "demo", COLUMNS, ["clean", "pgd_linf_8/255"])
    headline, clean, pgd = text.split("## ")[0], text.split("## clean")[1], text.split("## pgd")[1]
    assert "9 [7, 11]" in headline and "100" in headline  # worst case beside its subset's clean
    assert f"80 [77, 83]{FLAG_MARK}" in headline  # the flag mark after the interval
    assert "3 [2.5, 3.5]" in clean and "| ece_pct" in clean and "ci_low" not in text
    assert "| robust_acc_pct" in pgd and f"80 [77, 83]{FLAG_MARK}" in pgd
    assert "1000.0" not in text  # counts are integers


def test_an_empty_frame_is_a_short_file():
    assert "(no results)" in markdown_leaderboard(pd.DataFrame(), "x", {})
