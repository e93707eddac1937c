"""The command line: models listing, leaderboard reprint and sort, run end to end."""

from __future__ import annotations

import pandas as pd

from benchmark.cli import main
from benchmark.evaluations.clean import CleanEvaluation
from benchmark.leaderboard import format_table, sort_leaderboard
from tests.conftest import tiny_suite


def test_models_lists_registered_builders_with_params(capsys):
    assert main(["models", "--all"]) == 0
    out = capsys.readouterr().out
    for key in ("small_cnn", "resnet20", "resnet18", "digits", "cifar10", "clean", "standard"):
        assert f"  {key} " in out
    assert "width: float = 1.0" in out


def test_run_then_leaderboard_sorted(tmp_path, write_suite, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "3000")  # wide terminal: one row per model
    path = write_suite(tiny_suite(tmp_path))
    assert main(["run", str(path), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "clean_acc_pct" in printed and "rn20" in printed

    csv = tmp_path / "leaderboard" / "tiny.csv"
    assert main(["leaderboard", str(csv), "--sort", "clean_nll"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    board = pd.read_csv(csv)
    best = board.sort_values("clean_nll").iloc[0]["model"]
    assert lines[1].split()[0] == best

    assert main(["leaderboard", str(path)]) == 0  # via the suite file
    assert "rn20" in capsys.readouterr().out
    assert main(["leaderboard", str(csv), "--sort", "nope"]) == 2
    assert "--sort: no column 'nope'" in capsys.readouterr().err


def test_wide_tables_are_transposed_and_cis_folded():
    frame = pd.DataFrame(
        {
            "model": ["a", "b"],
            "arch": ["x", "y"],
            "pgd_robust_acc_pct": [10.0, 20.0],
            "pgd_robust_acc_pct_ci_low": [5.0, 15.0],
            "pgd_robust_acc_pct_ci_high": [15.0, 25.0],
            "pgd_asr_pct": [90.0, 80.0],
        }
    )
    from benchmark.evaluations.adversarial import THREAT_METRICS
    from benchmark.metrics import MetricSpec, find_spec

    columns = {c: find_spec(THREAT_METRICS, c.removeprefix("pgd_")) for c in frame.columns[2:]}
    wide = format_table(frame, width=400, columns=columns)
    assert "10 [5, 15]" in wide and "asr" not in wide and "arch" not in wide
    # which columns are details is the declaration's word, not the column name's suffix
    columns["pgd_asr_pct"] = MetricSpec("asr_pct", "%", "lower", "a plugin's headline metric")
    assert "pgd_asr_pct" in format_table(frame, width=400, columns=columns)
    narrow = format_table(frame, width=20).splitlines()
    assert narrow[0].split() == ["model", "a", "b"]
    assert format_table(frame, full=True, width=400).count("ci_low") == 1


def test_sort_direction_follows_metric_meaning():
    frame = pd.DataFrame(
        {"model": ["a", "b"], "clean_acc_pct": [10.0, 90.0], "clean_ece_pct": [1.0, 5.0]}
    )
    columns = {c: CleanEvaluation.metric_spec(c.removeprefix("clean_")) for c in frame.columns[1:]}
    assert sort_leaderboard(frame, "clean_acc_pct", columns=columns)["model"].tolist() == ["b", "a"]
    assert sort_leaderboard(frame, "clean_ece_pct", columns=columns)["model"].tolist() == ["a", "b"]
    assert sort_leaderboard(frame, "clean_acc_pct", ascending=True)["model"].tolist() == ["a", "b"]


def test_names_from_files_cannot_drive_the_terminal(tmp_path, capsys):
    """A model name in a leaderboard CSV with ANSI / OSC escape sequences is printed with
    the control characters escaped, not sent to the terminal."""
    import pandas as pd

    from benchmark.cli import main

    path = tmp_path / "board.csv"
    hostile = "evil\x1b]0;owned\x07\x1b[2J\rname"
    pd.DataFrame({"model": [hostile], "clean_acc_pct": [50.0]}).to_csv(path, index=False)
    assert main(["leaderboard", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert "evil\\x1b]0;owned" in out
