"""``ensemble_size``: accuracy, NLL and ECE against the number N of averaged passes of a
randomized model (MC dropout, noise layers), the spatial-smoothing paper's Figure 3.

Why: that paper's claim is that spatial smoothing makes a Bayesian network's ensemble
converge with far fewer passes (N = 2 with smoothing ~ N = 50 without); a single
``n_samples`` cannot show it, the curve over N can. The prediction at size n is the
mean softmax of the first n passes, all sizes from one run of ``max(sizes)`` passes
(:func:`benchmark.inference.predict_probs_by_size`), so the sweep costs its largest size.
A deterministic model makes one pass and reports it at every size (its curve is flat).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field, field_validator
from torch import nn

from benchmark.datasets.base import ArrayDataset
from benchmark.evaluations.base import EvalContext, EvaluationResult, register_evaluation
from benchmark.evaluations.capabilities import PredictionOnly, SuiteFigures
from benchmark.evaluations.predictions import prediction_records
from benchmark.inference import predict_probs_by_size
from benchmark.metrics import accuracy, expected_calibration_error, negative_log_likelihood
from benchmark.metrics.specs import MetricSpec
from benchmark.plots.ensemble_size import ensemble_size_figure
from benchmark.plots.figure import png_bytes
from benchmark.registry import StrictParams

CURVE_METRICS = ("acc_pct", "nll", "ece_pct")


class EnsembleSizeParams(StrictParams):
    sizes: list[int] = Field(
        default_factory=lambda: [1, 2, 5, 10, 20, 50],
        min_length=1,
        description="ensemble sizes N (numbers of averaged passes) to report",
    )
    n_bins: int = Field(15, ge=1, le=10_000, description="equal-width ECE bins")
    n_examples: int | None = Field(None, ge=1, description="fixed seeded subset")

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, sizes: list[int]) -> list[int]:
        if any(n < 1 or n > 1000 for n in sizes) or len(set(sizes)) != len(sizes):
            raise ValueError(f"sizes must be distinct pass counts in 1..1000, got {sizes}")
        return sorted(sizes)


def curve_point(probs: np.ndarray, labels: np.ndarray, n_bins: int) -> dict[str, float]:
    correct = probs.argmax(axis=1) == labels
    return {
        "acc_pct": 100.0 * accuracy(probs, labels),
        "nll": negative_log_likelihood(probs, labels),
        "ece_pct": 100.0 * expected_calibration_error(probs.max(axis=1), correct, n_bins),
    }


@register_evaluation(
    "ensemble_size", "accuracy / NLL / ECE vs the number of averaged passes (MC dropout)"
)
class EnsembleSizeEvaluation(PredictionOnly, SuiteFigures):
    version: ClassVar[str] = "1"
    Params = EnsembleSizeParams
    params: EnsembleSizeParams
    report_figures: ClassVar[dict[str, str]] = {"curve.png": "metrics vs ensemble size"}
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("n{size}_acc_pct", "%", "higher", "top-1 accuracy with N passes averaged"),
        MetricSpec("n{size}_nll", "nats", "lower", "NLL with N passes averaged"),
        MetricSpec("n{size}_ece_pct", "%", "lower", "ECE with N passes averaged"),
    )

    def run(self, model: nn.Module, data: ArrayDataset, ctx: EvalContext) -> EvaluationResult:
        p = self.params
        data = data.subset(p.n_examples, seed=0)
        sizes = tuple(sorted({ctx.passes(n) for n in p.sizes}))  # deterministic: one pass
        by_size = predict_probs_by_size(
            model,
            data.x,
            sizes=sizes,
            batch_size=ctx.batch_size,
            device=ctx.device,
            progress=ctx.progress,
            desc="ensemble size",
            autocast=ctx.autocast,
        )
        labels = data.y.numpy()
        rows = []
        for n in p.sizes:
            probs = by_size[ctx.passes(n)]
            rows.append({"size": n, **curve_point(probs, labels, p.n_bins)})
        curve = pd.DataFrame(rows)
        metrics = {
            f"n{row['size']}_{metric}": float(row[metric])
            for row in rows
            for metric in CURVE_METRICS
        }
        largest = by_size[max(sizes)]
        extras = {
            "n_examples": len(labels),
            "randomized": ctx.randomized,
            "curve": curve.to_dict(orient="records"),
        }
        artifacts = {
            "curve.csv": curve.to_csv(index=False).encode(),
            "curve.png": png_bytes(ensemble_size_figure(curve, "metrics vs ensemble size N")),
        }
        return EvaluationResult(metrics, prediction_records(data, largest), extras, artifacts)
