"""The L1 threat model: AutoAttack's (APGD with its sparse L1 step, pyautoattack) is the
attack that steps in L1; attacks without an L1 step refuse it when the suite loads."""

from __future__ import annotations

import pytest
import torch

from benchmark.attacks.threat import perturbation_norm, valid_adversarial
from benchmark.evaluations import EVALUATIONS, EvalContext
from benchmark.suite import load_suite
from tests.conftest import tiny_suite

CPU = torch.device("cpu")


def test_l1_norm_and_ball_check():
    delta = torch.tensor([[0.5, -0.25, 0.0, 0.25]])
    assert perturbation_norm(delta, "L1").item() == pytest.approx(1.0)
    x = torch.full((1, 4), 0.5)
    assert valid_adversarial(x, x + delta, "L1", 1.0).item()
    assert not valid_adversarial(x, x + 1.1 * delta, "L1", 1.0).item()


def test_autoattack_l1_breaks_more_with_a_larger_budget_and_stays_in_the_ball(trained):
    model, data = trained
    entry = EVALUATIONS.get("autoattack")
    ctx = EvalContext(CPU, 128, 0, progress=False, randomized=False)
    accuracies = []
    for eps in (0.5, 4.0):
        params = {"norm": "L1", "eps": eps, "version": "custom", "attacks_to_run": ["apgd-ce"],
                  "n_examples": 16}  # fmt: skip
        result = entry.obj(entry.params_model.model_validate(params)).run(model, data, ctx)
        assert result.extras["n_invalid"] == 0
        broken = ~result.records["robust"] & result.records["clean_correct"]
        assert (result.records.loc[broken, "norm"] <= eps * (1 + 1e-5) + 1e-6).all()
        accuracies.append(result.metrics["robust_acc_pct"])
    assert accuracies[1] < accuracies[0]  # a 4.0 L1 budget breaks more than 0.5


def test_attacks_without_an_l1_step_refuse_it_at_load(tmp_path, write_suite):
    from benchmark.errors import BenchmarkError

    for evaluation in (
        {"type": "pgd", "params": {"norm": "L1", "eps": 1.0}},
        {"type": "attacks", "params": {"norm": "L1", "eps": 1.0, "attacks": [{"type": "fgsm"}]}},
    ):
        suite = tiny_suite(tmp_path, evaluations=[evaluation])
        with pytest.raises(BenchmarkError, match=r"does not support (norm )?L1"):
            load_suite(write_suite(suite))


def test_an_l1_suite_loads_with_a_headline_and_no_automatic_fallback_step(tmp_path, write_suite):
    evaluations = [
        {"type": "autoattack", "params": {"norm": "L1", "eps": 2.0, "n_examples": 20}},
        {"type": "pgd", "params": {"eps": 0.1, "steps": 2, "n_examples": 20}},
    ]
    suite = load_suite(write_suite(tiny_suite(tmp_path, evaluations=evaluations)))
    names = [spec.resolved.name for spec in suite.evaluations]
    assert "autoattack_l1_2" in names
    assert "fallbacks_linf_0.1" in names  # Linf gets its step
    assert not any(name.startswith("fallbacks_l1") for name in names)
