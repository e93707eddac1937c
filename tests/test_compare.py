"""``compare``: exact McNemar p-values match a direct binomial computation, the paired
bootstrap behaves, and the command reads a run through its manifest."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from benchmark.cli import main
from benchmark.compare import compare_records, mcnemar_exact, open_run


def direct_mcnemar(b: int, c: int) -> float:
    """Two-sided exact McNemar: 2 P(X <= min(b, c)), X ~ Binomial(b + c, 1/2), capped at 1."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


@pytest.mark.parametrize(("b", "c"), [(0, 0), (0, 1), (3, 3), (10, 2), (1, 12), (40, 25)])
def test_mcnemar_matches_the_binomial_formula_and_scipy(b, c):
    a_correct = np.array([True] * b + [False] * c + [True] * 7 + [False] * 5)
    b_correct = np.array([False] * b + [True] * c + [True] * 7 + [False] * 5)
    only_a, only_b, p = mcnemar_exact(a_correct, b_correct)
    assert (only_a, only_b) == (b, c)
    assert p == pytest.approx(direct_mcnemar(b, c), rel=1e-12)
    if b + c:
        assert p == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-9)


def _records(correct: np.ndarray, probs: np.ndarray, index: np.ndarray) -> pd.DataFrame:
    labels = np.where(correct, probs.argmax(1), (probs.argmax(1) + 1) % probs.shape[1])
    frame = pd.DataFrame({"index": index, "label": labels, "correct": correct})
    for k in range(probs.shape[1]):
        frame[f"prob_{k}"] = probs[:, k]
    return frame


def test_bootstrap_finds_a_calibration_difference_and_none_against_itself():
    rng = np.random.default_rng(0)
    n = 400
    correct = rng.random(n) < 0.7
    sharp = np.full((n, 2), 0.01)
    sharp[:, 0] = 0.99  # 99% confident, 70% right: ECE ~ 29%
    honest = np.full((n, 2), 0.3)
    honest[:, 0] = 0.7  # 70% confident, 70% right: ECE ~ 0
    a = _records(correct, honest, np.arange(n))
    b = _records(correct, sharp, np.arange(n))
    rows = {r.metric: r for r in compare_records("clean", a, b, 0.05, 300, seed=0)}
    assert rows["acc_pct"].p_value == 1.0 and not rows["acc_pct"].significant
    assert rows["ece_pct"].significant and rows["ece_pct"].difference < -20
    itself = {r.metric: r for r in compare_records("clean", a, a, 0.05, 300, seed=0)}
    assert itself["ece_pct"].p_value == 1.0 and itself["ece_pct"].difference == 0
    # records in a different order are paired by example index, not by row
    shuffled = b.sample(frac=1.0, random_state=1)
    again = {r.metric: r for r in compare_records("clean", a, shuffled, 0.05, 300, seed=0)}
    assert again["ece_pct"].b == pytest.approx(rows["ece_pct"].b)
    assert again["acc_pct"].p_value == rows["acc_pct"].p_value


@pytest.fixture(scope="module")
def quickstart_like_run(tmp_path_factory, trained):
    """Quickstart's small_cnn (trained, as a checkpoint) and its PEP post-hoc row, clean and
    FGSM on all 360 test digits."""
    import yaml

    from benchmark.runner import run_suite
    from benchmark.suite import load_suite
    from models.checkpoints import save_checkpoint
    from tests.conftest import tiny_suite

    tmp = tmp_path_factory.mktemp("compare")
    save_checkpoint(trained[0], tmp / "cnn.pt")
    suite = tiny_suite(tmp, seed=0, batch_size=256, sanity=False)
    suite["dataset"] = {"name": "digits", "split": "test"}
    suite["models"] = [
        {
            "name": "small_cnn",
            "model": "small_cnn",
            "params": {"width": 0.5},
            "checkpoint": str(tmp / "cnn.pt"),
            "posthoc": [{"method": "pep", "params": {"sigma": 0.08, "members": 4}}],
        }
    ]
    suite["evaluations"] = [
        {"type": "clean", "params": {"bootstrap": 0}},
        {"type": "fgsm", "params": {"eps": 0.1}},
    ]
    path = tmp / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    loaded = load_suite(path)
    run_suite(loaded, progress=False, log=lambda _m: None)
    return loaded


def test_compare_command_reports_the_exact_mcnemar_p_value(quickstart_like_run, capsys):
    suite = quickstart_like_run
    code = main(["compare", suite.run_dir, "small_cnn", "small_cnn+pep", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    run = open_run(suite.run_dir)
    checked = 0
    for row in report["rows"]:
        if row["test"] != "McNemar exact":
            continue
        column = "correct" if row["metric"] == "acc_pct" else "robust"
        a = run.records("small_cnn", row["evaluation"])[column].to_numpy(bool)
        b = run.records("small_cnn+pep", row["evaluation"])[column].to_numpy(bool)
        only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
        assert (row["detail"]["only_a_right"], row["detail"]["only_b_right"]) == (only_a, only_b)
        assert row["p_value"] == pytest.approx(direct_mcnemar(only_a, only_b), rel=1e-12)
        assert row["significant"] == (row["p_value"] < 0.05)
        assert row["a"] == pytest.approx(100 * a.mean())
        checked += 1
    assert checked == 2  # clean accuracy and FGSM robust accuracy
    assert {r["metric"] for r in report["rows"]} >= {"acc_pct", "ece_pct", "auroc_pct"}

    assert main(["compare", suite.run_dir, "small_cnn", "small_cnn+pep"]) == 0
    text = capsys.readouterr().out
    assert "McNemar exact" in text and "A = small_cnn, B = small_cnn+pep" in text


def test_compare_reports_bad_input_in_one_line(quickstart_like_run, tmp_path, capsys):
    suite = quickstart_like_run
    assert main(["compare", suite.run_dir, "small_cnn", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no model 'nope'" in err[0]
    assert main(["compare", str(tmp_path / "missing"), "a", "b"]) == 2
    assert "no run manifest" in capsys.readouterr().err


@pytest.mark.parametrize("count", ["-5", "0"])
def test_compare_refuses_a_bootstrap_count_below_one(tmp_path, capsys, count):
    """Zero or negative resamples used to drop the ECE/AUROC rows without a word; refused
    before any run is read."""
    assert main(["compare", str(tmp_path / "missing"), "a", "b", "--bootstrap", count]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: --bootstrap: must be at least 1 (got {count})"]


@pytest.mark.slow
def test_compare_on_the_quickstart_models(tmp_path, capsys):
    """The real quickstart suite (about 1.5 min on 2 idle cores): small_cnn vs resnet20_w0.5."""
    from tests.conftest import run_shipped_quickstart

    run_shipped_quickstart(tmp_path)
    assert main(["compare", str(tmp_path / "run"), "small_cnn", "resnet20_w0.5", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    run = open_run(tmp_path / "run")
    mcnemar = [r for r in report["rows"] if r["test"] == "McNemar exact"]
    assert {r["evaluation"] for r in mcnemar} == {
        "clean",
        "fgsm_linf_0.1",
        "pgd_linf_0.1",
        "autoattack_linf_0.1",
    }
    for row in mcnemar:
        column = "correct" if row["metric"] == "acc_pct" else "robust"
        a = run.records("small_cnn", row["evaluation"])[column].to_numpy(bool)
        b = run.records("resnet20_w0.5", row["evaluation"])[column].to_numpy(bool)
        b_count, c_count = int((a & ~b).sum()), int((~a & b).sum())
        assert row["p_value"] == pytest.approx(direct_mcnemar(b_count, c_count), rel=1e-12)
        if b_count + c_count:
            assert row["p_value"] == pytest.approx(
                binomtest(b_count, b_count + c_count, 0.5).pvalue, rel=1e-9
            )


def test_compare_reads_a_moved_run_from_any_directory_and_refuses_a_damaged_one(
    quickstart_like_run, tmp_path, capsys, monkeypatch
):
    """The manifest's result folders are relative to it: a run copied elsewhere compares
    from any working directory. Its records are verified as the leaderboard's: an edited or
    truncated records file is one line naming it, never a traceback or a comparison."""
    import shutil
    from pathlib import Path

    moved = tmp_path / "moved"
    shutil.copytree(Path(quickstart_like_run.run_dir).resolve(), moved)
    monkeypatch.chdir(tmp_path / "..")
    assert main(["compare", str(moved), "small_cnn", "small_cnn+pep", "--json"]) == 0
    capsys.readouterr()
    records = next(moved.rglob("records.parquet"))
    records.write_bytes(records.read_bytes()[:100])
    assert main(["compare", str(moved), "small_cnn", "small_cnn+pep"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not match its checksum" in err[0] and "Traceback" not in err[0]
