"""Clean (unperturbed) evaluation: accuracy, NLL, Brier, ECE and per-example records."""

from __future__ import annotations

from pydantic import Field
from torch import nn

from benchmark.datasets.base import ArrayDataset
from benchmark.evaluations.base import (
    EvalContext,
    Evaluation,
    EvaluationResult,
    register_evaluation,
)
from benchmark.evaluations.predictions import predict_probs, prediction_records, summary_metrics
from benchmark.registry import StrictParams


@register_evaluation("clean", "accuracy, NLL, Brier and ECE on unperturbed inputs")
class CleanEvaluation(Evaluation):
    class Params(StrictParams):
        n_bins: int = Field(15, ge=1, description="equal-width ECE bins")
        n_samples: int = Field(
            1, ge=1, le=1000, description="passes averaged for randomized models"
        )

    def run(self, model: nn.Module, data: ArrayDataset, ctx: EvalContext) -> EvaluationResult:
        n_samples = self.params.n_samples if getattr(model, "randomized", False) else 1
        probs = predict_probs(
            model,
            data.x,
            batch_size=ctx.batch_size,
            device=ctx.device,
            n_samples=n_samples,
            progress=ctx.progress,
            desc="clean",
        )
        labels = data.y.numpy()
        metrics = summary_metrics(probs, labels, self.params.n_bins)
        return EvaluationResult(
            metrics, prediction_records(data, probs), {"n_examples": len(labels)}
        )
