"""Metric declarations: every metric of every built-in evaluation is declared (unit and which
way is better), ``--sort``, ``compare`` and the HTML report read the declarations instead of
guessing from column suffixes, the declarations travel with the CSV, and cached results carry
a schema version."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pandas as pd
import pytest
import torch

from benchmark.attacks import ATTACKS
from benchmark.cli import main
from benchmark.compare import Comparison, MetricComparison, _declared_direction, format_comparison
from benchmark.errors import BenchmarkError
from benchmark.evaluations import EVALUATIONS, EvaluationResult, register_evaluation
from benchmark.evaluations.base import Evaluation
from benchmark.leaderboard import (
    columns_path,
    flagged_rows,
    leaderboard_column_spec,
    read_columns,
    read_leaderboard,
    sort_leaderboard,
)
from benchmark.metrics.specs import MetricSpec, columns_from_json, columns_to_json, find_spec
from benchmark.report.build import leaderboard_table
from benchmark.runner import ResultCache, expand_jobs, run_suite
from benchmark.runner.cache import RESULT_FILE, RESULT_SCHEMA_VERSION
from benchmark.suite import load_suite
from tests.conftest import tiny_suite


@register_evaluation("test_metric_specs_plugin", "a plugin evaluation that declares nothing")
class _Undeclared(Evaluation):
    """What a third-party plugin may register: metrics without declarations."""

    def run(self, model, data, ctx) -> EvaluationResult:
        records = pd.DataFrame({"index": data.indices.numpy()})
        score = float(sum(p.detach().abs().sum() for p in model.parameters()))
        return EvaluationResult({"score": score}, records, {"n_examples": len(data)})


def quiet(_message: str) -> None:
    pass


def _builtin_types() -> set[str]:
    """Evaluation types the harness itself registers (not tests or plugins)."""
    keys = set()
    for entry in EVALUATIONS:
        attack = getattr(entry.obj, "attack_key", None)
        module = ATTACKS.get(attack).obj.__module__ if attack else entry.obj.__module__
        if module.startswith("benchmark."):
            keys.add(entry.key)
    return keys


ALL_TYPES_SUITE: list[dict[str, Any]] = [
    {"type": "clean", "params": {"bootstrap": 10, "extra_ece": True}},
    {"type": "fgsm", "name": "fgsm", "params": {"eps": 0.1}},
    {"type": "pgd", "name": "pgd", "params": {"eps": 0.1, "steps": 2, "n_examples": 16}},
    {"type": "square", "name": "square", "params": {"eps": 0.1, "n_queries": 5, "n_examples": 16}},
    {
        "type": "autoattack",
        "name": "aa",
        "params": {
            "eps": 0.1,
            "version": "custom",
            "attacks_to_run": ["apgd-ce"],
            "n_examples": 8,
        },
    },
    {"type": "torchattacks", "name": "ta", "params": {"eps": 0.1, "attack": "FGSM"}},
    {
        "type": "attacks",
        "name": "worst",
        "params": {
            "eps": 0.1,
            "attacks": [{"type": "fgsm"}, {"type": "pgd", "params": {"steps": 2}}],
            "n_examples": 16,
        },
    },
    {
        "type": "eps_sweep",
        "name": "sweep",
        "params": {"eps": [0.05, 0.1], "attack": {"type": "fgsm"}},
    },
    {
        "type": "robustness_ranking",
        "name": "rank",
        "params": {
            "method": "ddn",
            "ddn_steps": 5,
            "n_bins": 3,
            "n_examples": 16,
            "replica_groups": {"pair": ["cnn", "cnn2"]},
        },
    },
    {
        "type": "corruptions",
        "name": "cc",
        "params": {
            "corruptions": ["gaussian_noise", "contrast"],
            "severities": [1],
            "n_examples": 16,
            "reference_model": "cnn",
        },
    },
    {"type": "sanity", "params": {"n_examples": 8, "unbounded_steps": 5}},
    {"type": "ensemble_size", "params": {"sizes": [1, 2], "n_examples": 16}},
    {"type": "ood_detection", "params": {"dataset": "digits", "split": "val", "n_examples": 16}},
    {"type": "consistency", "params": {"frames": 3, "n_examples": 16}},
    {"type": "hopskipjump", "params": {"eps": 0.1, "steps": 2, "n_examples": 8}},
    {"type": "transfer", "params": {"eps": 0.1, "surrogate": "cnn", "steps": 2, "n_examples": 8}},
    {"type": "bpda", "params": {"eps": 0.1, "steps": 2, "n_examples": 8}},
    {
        "type": "adaptive",
        "params": {
            "eps": 0.1,
            "n_examples": 8,
            "fallbacks": "always",
            "whitebox": {"type": "pgd", "params": {"steps": 2}},
            "scale_invariant": {"type": "pgd", "params": {"steps": 2, "loss": "dlr"}},
            "decision_based": {"type": "hopskipjump", "params": {"steps": 2}},
            "indicators": {"unbounded_steps": 5},
        },
    },
]
# two cheap rows (the replica group and the mCE reference need two), 32 digits
MODELS = [
    {"name": "cnn", "model": "small_cnn", "params": {"width": 0.25}, "random_init": True},
    {"name": "cnn2", "model": "small_cnn", "params": {"width": 0.2}, "random_init": True},
]
DATASET = {"name": "digits", "split": "test", "n_examples": 32}


@pytest.fixture(scope="module")
def all_types_run(tmp_path_factory):
    """One tiny suite with every built-in evaluation type. Figures are stubbed out: they are
    not what is tested here and would double the time."""
    import yaml

    import benchmark.report.build
    import benchmark.runner.runner

    tmp = tmp_path_factory.mktemp("specs")
    evaluations = json.loads(json.dumps(ALL_TYPES_SUITE))
    evaluations[9]["params"]["cache_dir"] = str(tmp / "corruptions")
    content = tiny_suite(tmp, evaluations=evaluations, models=MODELS, dataset=DATASET)
    path = tmp / "suite.yaml"
    path.write_text(yaml.safe_dump(content))
    suite = load_suite(path)
    threads = torch.get_num_threads()
    # one thread: on a busy 2-core machine AutoAttack's 5 x 100 tiny steps take 10x longer
    # with two threads fighting over the cores (the numbers are not compared across runs)
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(benchmark.runner.runner, "write_plots", lambda *_a, **_k: [])
            patch.setattr(benchmark.report.build, "reliability_uri", lambda *_a, **_k: "data:,")
            patch.setattr(benchmark.report.build, "eps_curve_uri", lambda *_a, **_k: "data:,")
            patch.setattr(benchmark.report.build, "severity_uris", lambda *_a, **_k: [])
            return suite, run_suite(suite, progress=False, log=quiet)
    finally:
        torch.set_num_threads(threads)


def test_every_metric_of_every_builtin_evaluation_is_declared(all_types_run):
    suite, summary = all_types_run
    assert {e.type for e in suite.evaluations} >= _builtin_types(), "add the new type above"
    cache = ResultCache(suite.cache_root)
    for job in expand_jobs(suite, "cpu"):
        owner = EVALUATIONS.get(job.evaluation.type).obj
        metrics = cache.load_summary(job.key)["metrics"]
        assert metrics, job.label
        undeclared = [m for m in metrics if owner.metric_spec(m) is None]
        assert not undeclared, f"{job.evaluation.type} emits undeclared metrics {undeclared}"
    # ... and so is every numeric leaderboard column, cross-model ones (mCE, variances) too
    board = summary.leaderboard
    numeric = [c for c in board.columns if c not in ("model", "arch", "flags", "randomized")]
    assert {"cc_mce_pct", "rank_var_least_robust_bin", "n_examples"} <= set(numeric)
    missing = [c for c in numeric if c not in summary.columns]
    assert not missing
    assert not [c for c, s in summary.columns.items() if s.description.startswith("not declared")]
    # the declarations are stored beside the CSV and read back unchanged
    csv = summary.written[0]
    assert read_columns(csv) == summary.columns and columns_path(csv) in summary.written


@pytest.mark.parametrize(
    ("column", "direction"),
    [
        ("rank_ece_least_robust_bin_pct", "lower"),
        ("rank_acc_least_robust_bin_pct", "higher"),
        ("rank_not_found_pct", "lower"),
        ("rank_median_dist", "higher"),
        ("rank_var_least_robust_bin", "lower"),
        ("rank_var_most_robust_bin", "lower"),
        ("sanity_n_flags", "none"),
        ("sanity_unbounded_acc_pct", "lower"),
        ("fgsm_robust_acc_pct", "higher"),
        ("fgsm_robust_acc_pct_ci_low", "higher"),
        ("aa_asr_pct", "lower"),
        ("pgd_mean_norm", "none"),
        ("sweep_0.05_robust_acc_pct", "higher"),
        ("sweep_0.1_robust_acc_pct_ci_high", "higher"),
        ("clean_ece_pct", "lower"),
        ("clean_cwece_pct", "lower"),
        ("cc_mean_error_pct", "lower"),
        ("cc_mce_pct", "lower"),
        ("n_examples", "none"),
    ],
)
def test_columns_named_by_the_review_get_their_declared_direction(all_types_run, column, direction):
    _, summary = all_types_run
    board, columns = summary.leaderboard, summary.columns
    assert columns[column].direction == direction
    if direction == "none":
        with pytest.raises(BenchmarkError, match="add --ascending or --descending"):
            sort_leaderboard(board, column, columns=columns)
        return
    ordered = sort_leaderboard(board, column, columns=columns)
    flagged = flagged_rows(ordered).to_numpy()
    assert not (flagged[:-1] & ~flagged[1:]).any()  # flagged rows last, whatever their value
    for part in (ordered[~flagged], ordered[flagged]):
        values = part[column].dropna().tolist()
        assert values == sorted(values, reverse=direction == "higher")


def test_cli_sort_reads_the_sidecar_and_asks_for_an_order(all_types_run, capsys):
    _, summary = all_types_run
    csv = str(summary.written[0])
    assert main(["leaderboard", csv, "--sort", "rank_ece_least_robust_bin_pct", "--full"]) == 0
    capsys.readouterr()
    assert main(["leaderboard", csv, "--sort", "sanity_n_flags"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--ascending or --descending" in err[0]
    assert main(["leaderboard", csv, "--sort", "sanity_n_flags", "--descending"]) == 0


def test_html_report_headers_carry_the_declared_direction(all_types_run):
    _, summary = all_types_run
    table, _ = leaderboard_table(summary.leaderboard, summary.columns)
    direction = {c.name: c.direction for c in table}
    assert direction["fgsm_robust_acc_pct"] == "higher"
    assert direction["rank_ece_least_robust_bin_pct"] == "lower"
    assert direction["sanity_n_flags"] == "none" and direction["model"] == "none"
    html = summary.written[-1].read_text()
    assert 'data-direction="lower" data-column="rank_ece_least_robust_bin_pct"' in html
    assert 'data-direction="none" data-column="sanity_n_flags"' in html
    assert "data-higher-is-better" not in html  # no guessed attribute left


def test_undeclared_plugin_metrics_have_no_direction(tmp_path, write_suite, capsys, monkeypatch):
    import benchmark.runner.runner

    monkeypatch.setenv("COLUMNS", "3000")  # wide terminal: one row per model
    monkeypatch.setattr(benchmark.runner.runner, "write_plots", lambda *_a, **_k: [])
    content = tiny_suite(
        tmp_path,
        models=MODELS,
        dataset=DATASET,
        evaluations=[{"type": "clean"}, {"type": "test_metric_specs_plugin", "name": "plug"}],
    )
    summary = run_suite(load_suite(write_suite(content)), progress=False, log=quiet)
    assert summary.columns["plug_score"].direction == "none"
    assert summary.columns["clean_acc_pct"].direction == "higher"
    csv = summary.written[0]
    assert main(["leaderboard", str(csv), "--sort", "plug_score"]) == 2
    assert "declares no better direction" in capsys.readouterr().err
    assert main(["leaderboard", str(csv), "--sort", "plug_score", "--ascending"]) == 0
    capsys.readouterr()
    # a CSV without its declarations (older leaderboard): nothing is guessed
    columns_path(csv).unlink()
    assert read_columns(csv) == {}
    assert main(["leaderboard", str(csv), "--sort", "clean_acc_pct"]) == 2
    assert main(["leaderboard", str(csv), "--sort", "clean_acc_pct", "--descending"]) == 0
    out = capsys.readouterr().out.splitlines()
    best = read_leaderboard(csv).sort_values("clean_acc_pct", ascending=False).iloc[0]["model"]
    assert out[1].split()[0] == best


def test_compare_names_the_better_model_by_declaration():
    assert _declared_direction("acc_pct") == "higher"
    assert _declared_direction("robust_acc_pct@8/255") == "higher"
    assert _declared_direction("ece_pct") == "lower"
    assert _declared_direction("auroc_pct") == "higher"
    rows = [
        MetricComparison("clean", "ece_pct", 5.0, 2.0, "t", 0.01, True, 50, {}, "lower"),
        MetricComparison("clean", "acc_pct", 90.0, 80.0, "t", 0.01, True, 50, {}, "higher"),
        MetricComparison("plug", "score", 1.0, 2.0, "t", 0.01, True, 50, {}, "none"),
    ]
    text = format_comparison(Comparison("A", "B", 0.05, rows, []))
    assert "clean ece_pct: B is better" in text
    assert "clean acc_pct: A is better" in text
    assert "plug score: differs (no declared better side)" in text


def test_patterns_ci_inheritance_and_sidecar_versions():
    specs = (
        MetricSpec("acc_pct", "%", "higher", "accuracy"),
        MetricSpec("{eps}_asr_pct", "%", "lower", "ASR at one eps"),
    )
    assert find_spec(specs, "acc_pct_ci_low") is specs[0]
    assert find_spec(specs, "8/255_asr_pct") is specs[1]
    assert find_spec(specs, "8/255_asr_pct_ci_high") is specs[1]
    assert find_spec(specs, "asr_pct") is None and find_spec(specs, "acc") is None
    assert leaderboard_column_spec("robustbench_linf_acc_pct").direction == "higher"
    with pytest.raises(ValueError, match="direction"):
        MetricSpec("x", "", "up", "")  # type: ignore[arg-type]
    payload = columns_to_json({"clean_acc_pct": specs[0]})
    assert columns_from_json(json.loads(json.dumps(payload))) == {"clean_acc_pct": specs[0]}
    assert columns_from_json({**payload, "schema_version": 999}) == {}
    assert columns_from_json("garbage") == {}


class _Declared(Evaluation):
    metrics: ClassVar[tuple[MetricSpec, ...]] = (MetricSpec("a", "", "higher", ""),)

    def run(self, model, data, ctx) -> EvaluationResult:  # pragma: no cover - not run
        raise NotImplementedError


def test_subclasses_inherit_declarations():
    class Child(_Declared):
        pass

    assert Child.metric_spec("a_ci_low") is _Declared.metrics[0]
    assert Evaluation.metric_spec("a") is None


def test_results_of_another_schema_version_are_recomputed(tmp_path, write_suite):
    suite = load_suite(write_suite(tiny_suite(tmp_path, models=MODELS, dataset=DATASET)))
    first = run_suite(suite, progress=False, log=quiet, write=False)
    cache = ResultCache(suite.cache_root)
    jobs = expand_jobs(suite, "cpu")
    for job in jobs:
        assert cache.load_summary(job.key)["schema_version"] == RESULT_SCHEMA_VERSION
    # a future version, an unreadable file, and an older harness (no version and no
    # checksums: unverifiable, so recomputed too)
    stale = [dict(cache.load_summary(j.key)) for j in jobs[:3]]
    stale[0]["schema_version"] = RESULT_SCHEMA_VERSION + 1
    del stale[2]["schema_version"], stale[2]["checksums"]  # as written before either existed
    (cache.path(jobs[0].key) / RESULT_FILE).write_text(json.dumps(stale[0]))
    (cache.path(jobs[1].key) / RESULT_FILE).write_text("{not json")
    (cache.path(jobs[2].key) / RESULT_FILE).write_text(json.dumps(stale[2]))
    fresh = ResultCache(suite.cache_root)
    assert [fresh.has(j.key) for j in jobs] == [False, False, False, True]
    again = run_suite(suite, progress=False, log=quiet, write=False)
    assert sorted(again.executed) == sorted(j.label for j in jobs[:3])
    assert len(again.reused) == 1
    pd.testing.assert_frame_equal(again.leaderboard, first.leaderboard, check_exact=True)
    for job in jobs[:3]:
        assert ResultCache(suite.cache_root).load_summary(job.key)["schema_version"] == 1
    leftovers = [p.name for p in cache.results.iterdir() if p.name.startswith(".")]
    assert leftovers == []
