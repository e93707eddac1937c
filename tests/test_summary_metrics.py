"""Leaderboard columns of the clean evaluation and metrics recomputed from records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from benchmark.datasets.base import ArrayDataset, DataInfo
from benchmark.evaluations.base import EvalContext
from benchmark.evaluations.clean import CleanEvaluation
from benchmark.evaluations.predictions import (
    metrics_from_records,
    prediction_records,
    summary_metrics,
)

CORE = ["acc_pct", "nll", "brier", "ece_pct", "maxce_pct"]
FAILURE = [
    "auroc_pct",
    "aupr_success_pct",
    "aupr_error_pct",
    "fpr95_pct",
    "aurc_x1000",
    "eaurc_x1000",
]
CI = ["ece_pct_ci_low", "ece_pct_ci_high", "auroc_pct_ci_low", "auroc_pct_ci_high"]


def fake_data(n: int = 120, k: int = 5, seed: int = 0) -> ArrayDataset:
    g = torch.Generator().manual_seed(seed)
    info = DataInfo(k, 1, (4, 4), (0.5,), (0.25,))
    y = torch.randint(0, k, (n,), generator=g)
    return ArrayDataset(
        "fake", "test", torch.rand(n, 1, 4, 4, generator=g), y, info, torch.arange(n)
    )


def fake_probs(data: ArrayDataset, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(len(data), data.info.num_classes))
    logits[np.arange(len(data)), data.y.numpy()] += rng.random(len(data)) * 3  # some signal
    return np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


def test_summary_columns_order_and_scales():
    data = fake_data()
    probs, labels = fake_probs(data), data.y.numpy()
    plain = summary_metrics(probs, labels)
    assert list(plain) == CORE + FAILURE
    full = summary_metrics(
        probs, labels, extra_ece=True, bootstrap=50, rng=np.random.default_rng(0)
    )
    assert list(full) == [
        *CORE[:4],
        "ece_pct_ci_low",
        "ece_pct_ci_high",
        "maxce_pct",
        "adaece_pct",
        "cwece_pct",
        "auroc_pct",
        "auroc_pct_ci_low",
        "auroc_pct_ci_high",
        *FAILURE[1:],
    ]
    for name, value in plain.items():
        assert full[name] == value  # bootstrap and extras do not change the point estimates
    for name in ("acc_pct", "ece_pct", "auroc_pct", "aupr_error_pct", "fpr95_pct"):
        assert 0.0 <= plain[name] <= 100.0  # percent
    assert 0.0 <= plain["eaurc_x1000"] <= plain["aurc_x1000"] <= 1000.0  # x1000
    with pytest.raises(ValueError, match="rng"):
        summary_metrics(probs, labels, bootstrap=10)


def test_every_column_sorts_in_its_documented_direction():
    higher = {"acc_pct", "auroc_pct", "aupr_success_pct", "aupr_error_pct"}
    data = fake_data()
    columns = summary_metrics(
        fake_probs(data), data.y.numpy(), extra_ece=True, bootstrap=5, rng=np.random.default_rng(0)
    )
    for column in columns:  # as declared by the clean evaluation (CIs: their metric's)
        base = column.removesuffix("_ci_low").removesuffix("_ci_high")
        spec = CleanEvaluation.metric_spec(column)
        assert spec is not None and spec.direction == ("higher" if base in higher else "lower")


def test_metrics_from_records_equals_summary_of_the_same_predictions():
    data = fake_data()
    probs = fake_probs(data)
    records = prediction_records(data, probs)
    expected = summary_metrics(probs, data.y.numpy(), 10, extra_ece=True)
    assert metrics_from_records(records, 10) == pytest.approx(expected, rel=1e-12)
    # any subset of records, e.g. one class or a reordered table, is just another table
    subset = records[records["label"] != 0].sample(frac=1.0, random_state=0)
    keep = data.y.numpy() != 0
    assert metrics_from_records(subset) == pytest.approx(
        summary_metrics(probs[keep], data.y.numpy()[keep], extra_ece=True), rel=1e-9
    )
    seeded = metrics_from_records(records, bootstrap=20, seed=1)
    assert seeded == metrics_from_records(records, bootstrap=20, seed=1)
    with pytest.raises(ValueError, match="prob_"):
        metrics_from_records(pd.DataFrame({"label": [0, 1]}))


class FixedLogits(nn.Module):
    """Logits from a fixed linear map of the image: deterministic and independent of torch RNG."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.weight = torch.linspace(-1, 1, 16 * k).reshape(16, k) * 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.weight


def run_clean(data: ArrayDataset, seed: int, **params):
    evaluation = CleanEvaluation(CleanEvaluation.Params(**params))
    ctx = EvalContext(device=torch.device("cpu"), batch_size=32, seed=seed, progress=False)
    return evaluation.run(FixedLogits(data.info.num_classes), data, ctx)


def test_clean_evaluation_columns_bootstrap_param_and_determinism():
    assert CleanEvaluation.version != "1"  # new columns: the cache key must change
    data = fake_data()
    default = run_clean(data, seed=11)
    assert list(default.metrics) == [*CORE[:4], *CI[:2], CORE[4], FAILURE[0], *CI[2:], *FAILURE[1:]]
    assert run_clean(data, seed=11).metrics == default.metrics
    assert run_clean(data, seed=12).metrics["ece_pct_ci_low"] != default.metrics["ece_pct_ci_low"]
    off = run_clean(data, seed=11, bootstrap=0, extra_ece=True)
    assert not set(CI) & set(off.metrics)
    assert {"adaece_pct", "cwece_pct"} <= set(off.metrics)
    assert metrics_from_records(default.records) == pytest.approx(off.metrics, rel=1e-12)
