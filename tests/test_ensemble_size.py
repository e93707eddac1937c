"""MC-dropout ensemble size: the paper's N = 50 passes by default for randomized models
(clean, corruptions) and the sweep over N (spatial-smoothing Figure 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.evaluations import EVALUATIONS, EvalContext
from benchmark.inference import predict_probs, predict_probs_by_size
from models.layers import MCDropout

CPU = torch.device("cpu")


class CountingDropoutNet(nn.Module):
    """Dropout before the head (randomized), counting its forward passes."""

    randomized = True

    def __init__(self, in_features: int = 64, p: float = 0.5) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(in_features, 32), nn.ReLU())
        self.dropout = MCDropout(p)
        self.head = nn.Linear(32, 10)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.head(self.dropout(self.body(x)))


def test_sizes_are_prefix_means_of_one_run_of_the_largest_size():
    model, x = CountingDropoutNet(), torch.rand(20, 1, 8, 8)
    torch.manual_seed(3)
    by_size = predict_probs_by_size(model, x, sizes=(1, 4, 9), batch_size=64, device=CPU)
    assert model.calls == 9  # the sweep costs its largest size
    for n in (1, 4, 9):
        torch.manual_seed(3)  # one batch: the same draws as a separate n-pass prediction
        alone = predict_probs(model, x, batch_size=64, device=CPU, n_samples=n)
        np.testing.assert_allclose(by_size[n], alone, rtol=0, atol=1e-12)
    assert not np.allclose(by_size[1], by_size[9])  # dropout: passes differ


@pytest.mark.parametrize("evaluation", ["clean", "corruptions"])
def test_randomized_models_average_the_papers_fifty_passes_by_default(evaluation):
    params = EVALUATIONS.get(evaluation).params_model()
    assert params.n_samples == 50


def test_clean_evaluation_makes_fifty_passes_for_mc_dropout_and_one_otherwise():
    from benchmark.datasets import load_dataset

    entry = EVALUATIONS.get("clean")
    evaluation = entry.obj(entry.params_model.model_validate({"bootstrap": 0}))
    data = load_dataset("digits", "test").subset(40, seed=0)
    model = CountingDropoutNet()
    evaluation.run(model, data, EvalContext.for_model(model, CPU, 64, 0, False))
    assert model.calls == 50
    model.calls = 0
    evaluation.run(model, data, EvalContext(CPU, 64, 0, False, randomized=False))
    assert model.calls == 1


def test_ensemble_size_sweep_improves_nll_for_mc_dropout_and_is_flat_otherwise(trained):
    base, data = trained
    entry = EVALUATIONS.get("ensemble_size")
    sweep = entry.obj(entry.params_model.model_validate({"sizes": [20, 1, 5]}))
    assert sweep.params.sizes == [1, 5, 20]
    # the trained digits CNN with MC dropout (p = 0.3) spliced in before its head
    mc = nn.Sequential(base, MCDropout(0.3), nn.Identity())
    mc.randomized = True  # type: ignore[attr-defined]
    torch.manual_seed(0)
    result = sweep.run(mc, data, EvalContext.for_model(mc, CPU, 128, 0, False))
    m = result.metrics
    assert set(m) == {f"n{n}_{k}" for n in (1, 5, 20) for k in ("acc_pct", "nll", "ece_pct")}
    assert m["n20_nll"] < m["n1_nll"]  # averaging passes: the MC-dropout ensemble effect
    assert [row["size"] for row in result.extras["curve"]] == [1, 5, 20]
    assert result.artifacts["curve.png"].startswith(b"\x89PNG")
    assert len(result.records) == len(data)
    flat = sweep.run(base, data, EvalContext.for_model(base, CPU, 128, 0, False))
    assert flat.metrics["n1_nll"] == flat.metrics["n20_nll"]
    assert all(
        EVALUATIONS.get("ensemble_size").obj.metric_spec(metric).direction != "none" for metric in m
    )
