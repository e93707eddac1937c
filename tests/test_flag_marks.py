"""A flagged robust accuracy carries its warning wherever a person reads it, and never sorts
above an unflagged one."""

from __future__ import annotations

import pandas as pd

from benchmark.leaderboard import FLAG_MARK, sort_leaderboard, terminal_view, to_markdown
from benchmark.metrics.specs import MetricSpec
from benchmark.report.build import leaderboard_table

FRAME = pd.DataFrame(
    {
        "model": ["robust", "fake", "standard"],
        "flags": ["", "unavailable_gradients", ""],
        "clean_acc_pct": [77.2, 91.7, 91.7],
        "pgd_linf_8/255_robust_acc_pct": [45.0, 88.0, 0.0],
        "pgd_linf_8/255_robust_acc_pct_ci_low": [40.0, 84.0, 0.0],
        "pgd_linf_8/255_robust_acc_pct_ci_high": [50.0, 91.0, 3.0],
    }
)
COLUMNS = {"pgd_linf_8/255_robust_acc_pct": MetricSpec("x", "%", "higher", "robust accuracy")}


def test_a_flagged_row_never_sorts_above_an_unflagged_one():
    ordered = sort_leaderboard(FRAME, "pgd_linf_8/255_robust_acc_pct", columns=COLUMNS)
    assert ordered["model"].tolist() == ["robust", "standard", "fake"]
    ascending = sort_leaderboard(FRAME, "pgd_linf_8/255_robust_acc_pct", ascending=True)
    assert ascending["model"].tolist() == ["standard", "robust", "fake"]


def test_markdown_terminal_and_html_mark_the_flagged_robust_accuracy_only():
    markdown = to_markdown(FRAME)
    fake_line = next(line for line in markdown.splitlines() if "| fake" in line)
    assert f"88{FLAG_MARK}" in fake_line and "91.7" in fake_line
    assert markdown.count(FLAG_MARK) == 1
    view = terminal_view(FRAME).set_index("model")
    assert view.loc["fake", "pgd_linf_8/255_robust_acc_pct"] == f"88 [84, 91]{FLAG_MARK}"
    assert FLAG_MARK not in view.loc["robust", "pgd_linf_8/255_robust_acc_pct"]
    table, rows = leaderboard_table(FRAME)
    at = [c.name for c in table].index("pgd_linf_8/255_robust_acc_pct")
    assert [row[at].text.endswith(FLAG_MARK) for row in rows] == [False, True, False]
    assert rows[1][at].value == repr(88.0)  # sorting still uses the number
    assert FRAME["pgd_linf_8/255_robust_acc_pct"].dtype.kind == "f"  # the CSV stays numeric
