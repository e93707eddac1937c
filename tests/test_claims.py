"""Claims: columns rebuilt from records equal the leaderboard's, the paired tests match
independent references (scipy), verdicts follow the evidence, and bad claims are refused at
load in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from benchmark.claims import check_claims, find_column
from benchmark.errors import BenchmarkError
from benchmark.metrics.failure import aurc, batched_aurc, batched_excess_aurc, excess_aurc
from benchmark.runner import run_suite
from benchmark.suite import load_suite
from tests.test_training import FAST


def trained(name: str, epochs: int, **extra):
    return {
        "name": name,
        "model": "small_cnn",
        "params": {"width": 0.5},
        "training": {"recipe": "standard", "params": {**FAST, "epochs": epochs}},
        **extra,
    }


EVALUATIONS = [
    {"type": "clean"},
    {"type": "pgd", "params": {"norm": "Linf", "eps": 0.1, "steps": 5}},
    {
        "type": "corruptions",
        "params": {
            "corruptions": ["gaussian_noise", "contrast"],
            "severities": [1, 3],
            "n_examples": 120,
            "n_samples": 1,
        },
    },
    {
        "type": "robustness_ranking",
        "params": {"method": "ddn", "ddn_steps": 20, "n_examples": 120, "n_bins": 3},
    },
]


def claims_suite(tmp_path, claims, **extra):
    return {
        "name": "claims",
        "seed": 0,
        "device": "cpu",
        "dataset": {"name": "digits", "split": "test"},
        "models": [trained("weak", 1), trained("strong", 6)],
        "evaluations": EVALUATIONS,
        "sanity": False,
        "claims": claims,
        "claims_resamples": 300,
        "output_dir": str(tmp_path / "run"),
        "leaderboard_dir": str(tmp_path / "leaderboard"),
        **extra,
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A run of two trained CNNs (1 and 6 epochs) with one claim per supported column kind,
    plus the same claims reversed."""
    import yaml

    tmp_path = tmp_path_factory.mktemp("claims")
    columns = [
        "clean_acc_pct",
        "clean_nll",
        "clean_brier",
        "clean_ece_pct",
        "clean_auroc_pct",
        "clean_aurc_x1000",
        "clean_eaurc_x1000",
        "pgd_linf_0.1_robust_acc_pct",
        "corruptions_mean_acc_pct",
        "corruptions_mean_ece_pct",
        "corruptions_mean_nll",
        "corruptions_mean_error_pct",
        "robustness_ranking_acc_least_robust_bin_pct",
        "robustness_ranking_ece_most_robust_bin_pct",
    ]
    claims = [{"better": "strong", "than": "weak", "on": c} for c in columns]
    claims += [{"better": "weak", "than": "strong", "on": "clean_acc_pct", "name": "reversed"}]
    claims += [
        {"row": "strong", "on": "clean_acc_pct", "at_least": 50},
        {"row": "strong", "on": "clean_acc_pct", "at_most": 50},
        {"row": "strong", "on": "clean_nll", "at_most": 100},
    ]
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(claims_suite(tmp_path, claims)))
    suite = load_suite(path)
    summary = run_suite(suite, progress=False, log=lambda _m: None)
    return suite, summary, columns


def test_rebuilt_columns_equal_the_leaderboard(finished):
    _, summary, columns = finished
    board = summary.leaderboard.set_index("model")
    for result, column in zip(summary.claims, columns, strict=False):
        assert result.value == pytest.approx(board.loc["strong", column], rel=1e-5, abs=1e-6)
        assert result.versus == pytest.approx(board.loc["weak", column], rel=1e-5, abs=1e-6)
        assert result.ci_low <= result.effect <= result.ci_high, column


def test_verdicts_follow_the_evidence(finished):
    _, summary, _ = finished
    by_claim = {r.claim: r for r in summary.claims}
    accuracy = by_claim["strong>weak:clean_acc_pct"]
    assert accuracy.test.startswith("McNemar exact") and accuracy.verdict == "reproduced"
    assert by_claim["reversed"].verdict == "contradicted"
    assert by_claim["strong>weak:clean_nll"].test.startswith("paired bootstrap")
    assert by_claim["strong>weak:clean_nll"].verdict == "reproduced"
    assert by_claim["strong:clean_acc_pct:at_least:50"].verdict == "reproduced"
    assert by_claim["strong:clean_acc_pct:at_most:50"].verdict == "contradicted"
    assert by_claim["strong:clean_nll:at_most:100"].verdict == "reproduced"


def test_claims_are_written_and_shown(finished):
    suite, _, _ = finished
    folder = Path(suite.leaderboard_dir)
    table = pd.read_csv(folder / "claims.claims.csv")
    assert len(table) == len(suite.claims)
    assert set(table["verdict"]) <= {"reproduced", "contradicted", "inconclusive"}
    assert "# Claims: claims" in (folder / "claims.claims.md").read_text()
    assert "<h2>Claims</h2>" in (folder / "claims.html").read_text()


def synthetic_records(correct: np.ndarray, confidence: np.ndarray) -> pd.DataFrame:
    n = len(correct)
    probs = np.zeros((n, 2))
    labels = np.zeros(n, int)
    probs[:, 0] = np.where(correct, confidence, 1 - confidence)
    probs[:, 1] = 1 - probs[:, 0]
    return pd.DataFrame(
        {
            "index": np.arange(n),
            "label": labels,
            "pred": probs.argmax(1),
            "confidence": probs.max(1),
            "correct": probs.argmax(1) == labels,
            "prob_0": probs[:, 0],
            "prob_1": probs[:, 1],
        }
    )


def test_mcnemar_p_value_is_scipys_exact_binomial_test(tmp_path, write_suite):
    """A's and B's correctness differ on 30 examples: A alone right on 21, B alone on 9."""
    rng = np.random.default_rng(0)
    n = 400
    a = rng.random(n) < 0.8
    b = a.copy()
    flips = rng.choice(n, 30, replace=False)
    b[flips[:21]] = False
    a[flips[:21]] = True
    b[flips[21:]] = True
    a[flips[21:]] = False
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    expected = binomtest(only_a, only_a + only_b, 0.5).pvalue
    conf = np.full(n, 0.7)
    suite = load_suite(
        write_suite(synthetic_suite([{"better": "a", "than": "b", "on": "clean_acc_pct"}]))
    )
    records = {"a": synthetic_records(a, conf), "b": synthetic_records(b, conf)}
    (result,) = check_claims(suite, lambda _e, row: records[row])
    assert result.p_value == pytest.approx(expected)
    assert f"({only_a} vs {only_b} discordant)" in result.test


def synthetic_suite(claims):
    return {
        "name": "synthetic",
        "dataset": {"name": "digits"},
        "models": [
            {"name": "a", "model": "small_cnn", "random_init": True},
            {"name": "b", "model": "small_cnn", "random_init": True},
        ],
        "evaluations": [{"type": "clean"}],
        "claims": claims,
        "claims_resamples": 500,
    }


def test_identical_sides_are_inconclusive_and_a_clear_gap_is_not(write_suite):
    rng = np.random.default_rng(1)
    n = 600
    correct = rng.random(n) < 0.7
    honest = np.where(correct, 0.7, 0.7)  # calibrated on average: ECE near 0
    overconfident = np.full(n, 0.99)
    claim = [{"better": "a", "than": "b", "on": "clean_ece_pct"}]
    suite = load_suite(write_suite(synthetic_suite(claim)))
    same = {"a": synthetic_records(correct, honest), "b": synthetic_records(correct, honest)}
    (tie,) = check_claims(suite, lambda _e, row: same[row])
    assert tie.verdict == "inconclusive" and tie.effect == 0
    gap = {"a": synthetic_records(correct, honest), "b": synthetic_records(correct, overconfident)}
    (clear,) = check_claims(suite, lambda _e, row: gap[row])
    assert clear.verdict == "reproduced" and clear.effect < -20
    assert clear.p_value <= 2 / 501  # (0 + 1) * 2 / (B + 1): no resample reverses the sign


def test_a_row_without_results_is_not_evaluated(write_suite):
    suite = load_suite(
        write_suite(synthetic_suite([{"better": "a", "than": "b", "on": "clean_nll"}]))
    )
    (result,) = check_claims(suite, lambda _e, row: None)
    assert result.verdict == "not evaluated" and "row 'a'" in result.note


def test_batched_aurc_is_the_aurc_of_the_resample():
    rng = np.random.default_rng(0)
    confidence = np.round(rng.random(200), 2)  # many ties
    correct = rng.random(200) < confidence
    assert batched_aurc(confidence, correct, np.ones((1, 200)))[0] == pytest.approx(
        aurc(confidence, correct), rel=1e-12
    )
    for counts in rng.integers(0, 3, size=(4, 200)):
        drawn = np.repeat(np.arange(200), counts)
        assert batched_aurc(confidence, correct, counts[None])[0] == pytest.approx(
            aurc(confidence[drawn], correct[drawn]), rel=1e-9
        )
        assert batched_excess_aurc(confidence, correct, counts[None])[0] == pytest.approx(
            excess_aurc(confidence[drawn], correct[drawn]), rel=1e-9, abs=1e-12
        )


@pytest.mark.parametrize(
    ("claim", "message"),
    [
        (
            {"better": "nope", "than": "b", "on": "clean_nll"},
            r"claims\[0\].better: no row named 'nope'",
        ),
        ({"better": "a", "than": "b", "on": "clean_nl"}, r"no paired test for metric 'nl'"),
        ({"better": "a", "than": "b", "on": "pgd_nll"}, r"'pgd_nll' is not a column of any"),
        (
            {"better": "a", "than": "b", "on": "clean_maxce_pct"},
            r"no paired test for metric 'maxce_pct'",
        ),
        ({"better": "a", "on": "clean_nll"}, "'than' or 'than_on' must differ"),
        ({"better": "a", "than": "b", "on": "clean_nll", "at_least": 1}, "a bound claim names"),
        ({"row": "a", "on": "clean_nll"}, "a comparison claim names"),
        (
            {"better": "a", "on": "clean_acc_pct", "than_on": "clean_nll"},
            "better in opposite directions",
        ),
    ],
)
def test_bad_claims_are_refused_at_load(write_suite, claim, message):
    with pytest.raises(BenchmarkError, match=message):
        load_suite(write_suite(synthetic_suite([claim])))


def test_a_claim_on_a_row_the_evaluation_skips_is_refused(write_suite):
    content = synthetic_suite([{"better": "a", "than": "b", "on": "clean_nll"}])
    content["evaluations"][0]["models"] = ["a"]
    with pytest.raises(BenchmarkError, match="evaluation 'clean' does not run on row 'b'"):
        load_suite(write_suite(content))


def test_find_column_takes_the_longest_evaluation_name(write_suite):
    content = synthetic_suite([])
    content["evaluations"] = [
        {"type": "clean"},
        {"type": "clean", "name": "clean_10", "params": {"n_bins": 10}},
    ]
    suite = load_suite(write_suite(content))
    found = find_column(suite.evaluations, "clean_10_ece_pct")
    assert not isinstance(found, str) and found.evaluation == "clean_10" and found.n_bins == 10


def test_a_bare_yaml_on_key_is_read_as_on(write_suite):
    """PyYAML (YAML 1.1) turns a bare ``on:`` key into the boolean true."""
    import yaml

    text = yaml.safe_dump(synthetic_suite([])) + (
        "claims:\n- better: a\n  than: b\n  on: clean_nll\n"
    )
    suite = load_suite(write_suite(text.replace("claims: []\n", "")))
    assert suite.claims[0].on == "clean_nll"
