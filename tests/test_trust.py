"""Trust checks end to end on deliberately masked models, and each cross-evaluation check on
hand-made results (raised when it should be, silent when it should not)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from benchmark.evaluations import EVALUATIONS  # noqa: F401 (registers the types)
from benchmark.suite.schema import EvaluationSpec
from benchmark.trust import FLAG_EXPLANATIONS
from benchmark.trust.checks import CHECKS, EvaluationView, TrustInputs, add_flags, run_checks
from models import register_model
from models.small_cnn import small_cnn


def _round(_module: nn.Module, args: tuple[torch.Tensor]) -> tuple[torch.Tensor]:
    """Round to integers: a step function, so the input gradient is zero everywhere."""
    return (torch.round(args[0]),)


def _noise(_module: nn.Module, args: tuple[torch.Tensor]) -> tuple[torch.Tensor]:
    """Large Gaussian input noise (std 0.5 in normalized units), at test time too."""
    return (args[0] + 0.5 * torch.randn_like(args[0]),)


# The masked models are small_cnn(width=0.5) with a forward pre-hook, so they have the same
# state_dict keys and load the same trained checkpoint as the normal model.
@register_model("test_quantized_cnn", "small_cnn behind a rounding step (masked gradients)")
def quantized_cnn(num_classes: int, in_channels: int) -> nn.Module:
    net = small_cnn(num_classes, in_channels, width=0.5)
    net.register_forward_pre_hook(_round)
    return net


@register_model("test_noisy_cnn", "small_cnn with large test-time input noise, undeclared")
def noisy_cnn(num_classes: int, in_channels: int) -> nn.Module:
    net = small_cnn(num_classes, in_channels, width=0.5)
    net.register_forward_pre_hook(_noise)
    return net


@register_model("test_noisy_cnn_declared", "the same, declared randomized", randomized=True)
def noisy_cnn_declared(num_classes: int, in_channels: int) -> nn.Module:
    return noisy_cnn(num_classes, in_channels)


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory, trained):
    import yaml

    from benchmark.runner import run_suite
    from benchmark.suite import load_suite
    from models.checkpoints import save_checkpoint
    from tests.conftest import tiny_suite

    tmp = tmp_path_factory.mktemp("trust")
    checkpoint = tmp / "small_cnn.pt"
    save_checkpoint(trained[0], checkpoint)  # the session's trained small_cnn(width=0.5)

    def model(name: str, key: str, params: dict | None = None) -> dict:
        return {"name": name, "model": key, "params": params or {}, "checkpoint": str(checkpoint)}

    suite = tiny_suite(tmp, seed=0, batch_size=128)
    suite["dataset"]["n_examples"] = 60
    suite["models"] = [
        model("normal", "small_cnn", {"width": 0.5}),
        model("quantized", "test_quantized_cnn"),
        model("noisy", "test_noisy_cnn"),
        model("noisy_declared", "test_noisy_cnn_declared"),
    ]
    threat = {"norm": "Linf", "eps": 0.1, "n_samples": 4, "eot_samples": 1}
    suite["evaluations"] = [
        {"type": "clean", "params": {"bootstrap": 0}},
        {"type": "pgd", "params": {**threat, "steps": 10}},
        {"type": "square", "params": {**threat, "n_queries": 100}},
    ]  # no 'sanity' listed: the loader adds it because the suite has attacks
    path = tmp / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    loaded = load_suite(path)
    assert [e.type for e in loaded.evaluations][-1] == "sanity"
    summary = run_suite(loaded, progress=False, log=lambda _m: None)
    return loaded, summary, path


def _flags(summary, model: str) -> set[str]:
    board = summary.leaderboard.set_index("model")
    return {f for f in board.loc[model, "flags"].split(",") if f}


def test_normally_trained_model_raises_no_flag(masked_run):
    _, summary, _ = masked_run
    assert _flags(summary, "normal") == set(), [
        f.as_dict() for f in summary.findings if f.model == "normal"
    ]
    board = summary.leaderboard.set_index("model")
    assert board.loc["normal", "clean_acc_pct"] > 80  # it is a real model, not a broken one


def test_quantized_model_raises_gradient_masking_flags(masked_run):
    _, summary, _ = masked_run
    flags = _flags(summary, "quantized")
    assert {"degenerate_gradients", "whitebox_weaker_than_blackbox"} <= flags, flags
    (finding,) = [
        f
        for f in summary.findings
        if f.model == "quantized" and f.flag == "whitebox_weaker_than_blackbox"
    ]
    pgd, square = finding.numbers["pgd_linf_0.1"], finding.numbers["square_linf_0.1"]
    assert square["ci_high"] < pgd["robust_acc_pct"]
    grads = [f for f in summary.findings if f.flag == "degenerate_gradients"]
    assert grads[0].numbers["zero_pct"] > 90


def test_noisy_models_raise_randomness_flags(masked_run):
    _, summary, _ = masked_run
    assert "undeclared_randomness" in _flags(summary, "noisy")
    declared = _flags(summary, "noisy_declared")
    assert "randomized_without_eot" in declared and "undeclared_randomness" not in declared
    (finding,) = [
        f
        for f in summary.findings
        if f.model == "noisy_declared" and f.flag == "randomized_without_eot"
    ]
    assert finding.numbers["eot_samples"] == 1


def test_findings_are_saved_with_numbers_and_explanations(masked_run):
    suite, summary, _ = masked_run
    saved = json.loads(
        (tmp := __import__("pathlib").Path(suite.run_dir) / "checks.json").read_text()
    )
    assert tmp.is_file()
    assert {(f["model"], f["flag"]) for f in saved} == {(f.model, f.flag) for f in summary.findings}
    for finding in saved:
        assert finding["explanation"] == FLAG_EXPLANATIONS[finding["flag"]]
        assert finding["numbers"], finding


def test_check_command_prints_flags_with_explanations(masked_run, capsys):
    from benchmark.cli import main

    *_, path = masked_run
    assert main(["check", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "quantized: " in out and "degenerate_gradients (from sanity)" in out
    assert "gradient masking" in out and "zero_pct: " in out
    assert "normal:" not in out  # a model without flags is not listed
    assert main(["check", str(path), "--no-progress", "--strict"]) == 1


def test_check_runs_only_the_missing_sanity_jobs(tmp_path, write_suite, capsys):
    from benchmark.cli import main
    from tests.conftest import tiny_suite

    suite = tiny_suite(tmp_path, sanity=False)
    suite["evaluations"] = [{"type": "fgsm", "params": {"eps": 0.1}}]
    path = write_suite(suite)
    assert main(["check", str(path), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "not yet run" in captured.err and "cnn x fgsm_linf_0.1" in captured.err
    assert "cnn x sanity" in captured.err  # ran (the suite itself has no sanity evaluation)
    results = list((tmp_path / "run" / "cache" / "results").iterdir())
    assert len(results) == 2  # one sanity job per model, no attack job
    assert not (tmp_path / "leaderboard").exists()  # check writes no leaderboard


# --- each cross-evaluation check on hand-made results ----------------------------------


def _view(name: str, type_: str, params: dict, results: dict) -> EvaluationView:
    """The view the runner builds, from stored payloads read as the family's summaries."""
    resolved = EvaluationSpec(type=type_, params=params).resolved
    summaries = {row: resolved.cls.Summary.from_stored(r) for row, r in results.items()}
    return EvaluationView(
        name, type_, resolved.params, resolved.attack_kind, resolved.adversarial, summaries
    )


def _acc(value: float, low: float, high: float, eps: float = 0.1) -> dict:
    metrics = {
        "robust_acc_pct": value,
        "robust_acc_pct_ci_low": low,
        "robust_acc_pct_ci_high": high,
    }
    return {"metrics": metrics, "extras": {"eps_value": eps, "flags": []}}


def _flagged(views, randomized=None) -> set[tuple[str, str]]:
    findings = run_checks(TrustInputs(views, randomized or {}))
    return {(f.model, f.flag) for f in findings}


def test_every_check_has_an_explanation():
    assert set(CHECKS) <= set(FLAG_EXPLANATIONS)
    assert {"outputs_probabilities", "degenerate_gradients", "state_changed"} <= set(
        FLAG_EXPLANATIONS
    )


def test_pgd_vs_autoattack_needs_a_gap_beyond_both_intervals():
    pgd = {"eps": 0.1, "steps": 10}
    views = [
        _view("pgd", "pgd", pgd, {"a": _acc(60, 55, 65), "b": _acc(60, 55, 65)}),
        _view(
            "aa",
            "autoattack",
            {"eps": 0.1},
            {"a": _acc(40, 35, 45), "b": _acc(52, 47, 57)},  # b: intervals overlap
        ),
    ]
    assert _flagged(views) == {("a", "pgd_weaker_than_autoattack")}
    # a different eps is a different threat model: nothing to compare
    views[1] = _view("aa", "autoattack", {"eps": 0.2}, {"a": _acc(40, 35, 45, eps=0.2)})
    assert _flagged(views) == set()


def test_square_beating_pgd_is_flagged_but_not_square_beating_fgsm():
    square = _view("sq", "square", {"eps": 0.1}, {"a": _acc(20, 15, 26)})
    pgd = _view("pgd", "pgd", {"eps": 0.1}, {"a": _acc(30, 25, 35)})
    fgsm = _view("fgsm", "fgsm", {"eps": 0.1}, {"a": _acc(50, 45, 55)})
    assert _flagged([square, pgd, fgsm]) == {("a", "whitebox_weaker_than_blackbox")}
    close = _view("pgd", "pgd", {"eps": 0.1}, {"a": _acc(25, 20, 30)})  # inside Square's CI
    assert _flagged([square, close, fgsm]) == set()
    # AutoAttack restricted to APGD is an iterative white-box attack too
    apgd = _view(
        "apgd",
        "autoattack",
        {"eps": 0.1, "version": "custom", "attacks_to_run": ["apgd-ce"]},
        {"a": _acc(40, 35, 45)},
    )
    assert apgd.kind == "iterative"
    assert ("a", "whitebox_weaker_than_blackbox") in _flagged([square, apgd])


def test_accuracy_rising_with_eps_is_flagged_on_sweeps_and_across_evaluations():
    def sweep(values):
        metrics = {}
        for eps, (v, lo, hi) in zip(["1/255", "2/255", "4/255"], values, strict=True):
            metrics.update(
                {
                    f"{eps}_robust_acc_pct": v,
                    f"{eps}_robust_acc_pct_ci_low": lo,
                    f"{eps}_robust_acc_pct_ci_high": hi,
                }
            )
        extras = {"eps": ["1/255", "2/255", "4/255"], "eps_value": [1 / 255, 2 / 255, 4 / 255]}
        return {"metrics": metrics, "extras": {**extras, "flags": []}}

    params = {"eps": ["1/255", "2/255", "4/255"], "attack": {"type": "pgd"}}
    views = [
        _view(
            "sweep",
            "eps_sweep",
            params,
            {
                "up": sweep([(50, 45, 55), (40, 35, 45), (70, 65, 75)]),
                "down": sweep([(50, 45, 55), (40, 35, 45), (30, 25, 35)]),
                "noise": sweep([(50, 45, 55), (52, 47, 57), (30, 25, 35)]),
            },
        )
    ]
    assert _flagged(views) == {("up", "robustness_increases_with_eps")}
    separate = [
        _view("pgd_small", "pgd", {"eps": 0.05}, {"m": _acc(40, 35, 45, eps=0.05)}),
        _view("pgd_large", "pgd", {"eps": 0.2}, {"m": _acc(60, 55, 65, eps=0.2)}),
    ]
    assert _flagged(separate) == {("m", "robustness_increases_with_eps")}
    # a weaker attack (fewer steps) at the larger eps is a different series
    separate[1] = _view("pgd_large", "pgd", {"eps": 0.2, "steps": 5}, {"m": _acc(60, 55, 65, 0.2)})
    assert _flagged(separate) == set()


def test_randomized_model_without_eot_is_flagged_only_for_declared_randomized_rows():
    views = [
        _view(
            "pgd1",
            "pgd",
            {"eps": 0.1, "eot_samples": 1},
            {"r": _acc(50, 45, 55), "d": _acc(50, 45, 55)},
        ),
        _view("pgd20", "pgd", {"eps": 0.1, "eot_samples": 20}, {"r": _acc(50, 45, 55)}),
    ]
    assert _flagged(views, {"r": True, "d": False}) == {("r", "randomized_without_eot")}


def test_flags_are_merged_into_the_leaderboard_column():
    import pandas as pd

    from benchmark.trust import Finding

    frame = pd.DataFrame({"model": ["a", "b"], "flags": ["state_changed", ""]})
    findings = [Finding("a", "degenerate_gradients", "sanity"), Finding("a", "state_changed", "x")]
    merged = add_flags(frame, findings)
    assert merged["flags"].tolist() == ["degenerate_gradients,state_changed", ""]
