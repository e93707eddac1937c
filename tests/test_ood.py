"""OOD detection: metrics against sklearn on the same scores, input matching, and the
evaluation on a trained digits model (noise images always; MNIST when ../shared is here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from benchmark.datasets.base import ArrayDataset, DataInfo, register_dataset
from benchmark.errors import BenchmarkError
from benchmark.evaluations import EVALUATIONS, EvalContext
from benchmark.evaluations.ood import match_inputs
from benchmark.metrics.ood import detection_metrics, ood_scores, predictive_entropy

CPU = torch.device("cpu")
SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
NOISE_INFO = DataInfo(10, 3, (16, 16), (0.5,) * 3, (0.5,) * 3)


@register_dataset("test_uniform_noise", "uniform RGB noise, 16x16 (an OOD set for tests)")
def uniform_noise(options, split):
    x = torch.rand(80, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    return ArrayDataset("test_uniform_noise", split, x, torch.zeros(80).long(), NOISE_INFO,
                        torch.arange(80))  # fmt: skip


def test_detection_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    inside, outside = rng.normal(1.0, 1.0, 300), rng.normal(0.0, 1.0, 200)
    outside[:20] = inside[:20]  # ties across the two sets
    found = detection_metrics(inside, outside)
    scores = np.concatenate([inside, outside])
    labels = np.r_[np.ones(300), np.zeros(200)]
    assert found["auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert found["aupr_in"] == pytest.approx(average_precision_score(labels, scores))
    assert found["aupr_out"] == pytest.approx(average_precision_score(1 - labels, -scores))
    threshold = np.sort(inside)[::-1][int(np.ceil(0.95 * 300)) - 1]  # keeps 95% of in
    assert found["fpr95"] == pytest.approx(np.mean(outside >= threshold))


def test_scores_are_higher_for_confident_predictions():
    probs = np.array([[0.98, 0.01, 0.01], [1 / 3, 1 / 3, 1 / 3], [1.0, 0.0, 0.0]])
    entropy = predictive_entropy(probs)
    assert entropy[1] == pytest.approx(np.log(3)) and entropy[2] == 0.0
    scores = ood_scores(probs)
    assert scores["msp"][0] > scores["msp"][1] and scores["entropy"][0] > scores["entropy"][1]


def test_inputs_are_matched_to_the_models_channels_and_size():
    gray = torch.rand(4, 1, 28, 28)
    rgb = match_inputs(gray, NOISE_INFO)
    assert rgb.shape == (4, 3, 16, 16) and torch.equal(rgb[:, 0], rgb[:, 2])
    digits_info = DataInfo(10, 1, (8, 8), (0.5,), (0.5,))
    color = torch.rand(2, 3, 8, 8)
    luma = match_inputs(color, digits_info)
    expected = 0.299 * color[:, 0] + 0.587 * color[:, 1] + 0.114 * color[:, 2]
    assert torch.allclose(luma[:, 0], expected)
    with pytest.raises(BenchmarkError, match="cannot map 2-channel"):
        match_inputs(torch.rand(1, 2, 8, 8), NOISE_INFO)


def run_ood(trained, dataset: str, **params):
    model, data = trained
    entry = EVALUATIONS.get("ood_detection")
    evaluation = entry.obj(entry.params_model.model_validate({"dataset": dataset, **params}))
    return evaluation.run(model, data, EvalContext.for_model(model, CPU, 128, 0, False))


def test_a_trained_model_tells_digits_from_noise(trained):
    result = run_ood(trained, "test_uniform_noise")
    m = result.metrics
    assert m["msp_auroc_pct"] > 80 and m["entropy_auroc_pct"] > 80
    assert m["mean_entropy_ood"] > m["mean_entropy_in"]
    records = result.records
    assert (records["distribution"] == "ood").sum() == 80 and "prob_0" not in records
    assert (records.loc[records["distribution"] == "ood", "label"] == -1).all()
    assert result.artifacts["entropy.png"].startswith(b"\x89PNG")
    assert result.extras == {
        "n_examples": 360,
        "n_in": 360,
        "n_ood": 80,
        "ood_dataset": "test_uniform_noise/test",
    }


def test_unknown_ood_dataset_fails_validation():
    with pytest.raises(ValueError, match="no_such_set"):
        EVALUATIONS.get("ood_detection").params_model.model_validate({"dataset": "no_such_set"})


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="../shared/data/mnist is absent")
def test_digits_against_real_mnist(trained):
    result = run_ood(
        trained, "mnist", root=str(SHARED_MNIST.parent), n_examples=500, n_in_examples=300
    )
    assert result.extras["n_ood"] == 500 and result.extras["n_in"] == 300
    for detector in ("msp", "entropy"):
        assert 0 <= result.metrics[f"{detector}_auroc_pct"] <= 100
