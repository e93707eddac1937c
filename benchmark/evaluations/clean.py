"""Clean (unperturbed) evaluation: calibration and failure-prediction metrics, with bootstrap
intervals for ECE and AUROC, and per-example records."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field
from torch import nn

from benchmark.datasets.base import ArrayDataset
from benchmark.evaluations.base import EvalContext, EvaluationResult, register_evaluation
from benchmark.evaluations.capabilities import PredictionOnly, SuiteFigures
from benchmark.evaluations.predictions import predict_probs, prediction_records, summary_metrics
from benchmark.metrics.specs import SUMMARY_METRICS, MetricSpec
from benchmark.registry import StrictParams


@register_evaluation(
    "clean", "accuracy, NLL, Brier, ECE, MCE, AUROC, AUPR, FPR95, AURC on unperturbed inputs"
)
class CleanEvaluation(PredictionOnly, SuiteFigures):
    # 2: MCE and the failure-prediction metrics, bootstrap intervals for ECE and AUROC.
    # 3: maximum calibration error renamed maxce_pct (mce_pct is the corruptions' mCE);
    #    n_samples 50 for randomized models.
    version = "3"
    metrics: ClassVar[tuple[MetricSpec, ...]] = SUMMARY_METRICS  # + their _ci_low/_ci_high

    class Params(StrictParams):
        n_bins: int = Field(
            15, ge=1, le=10_000, description="ECE bins (equal-width; equal-mass for adaece)"
        )
        n_samples: int = Field(
            50,
            ge=1,
            le=1000,
            description="passes averaged for randomized models (MC dropout: the paper's N = 50)",
        )
        bootstrap: int = Field(
            200, ge=0, le=100_000, description="resamples for ECE/AUROC 95% intervals (0: off)"
        )
        extra_ece: bool = Field(False, description="also equal-mass and classwise ECE columns")

    params: Params

    def run(self, model: nn.Module, data: ArrayDataset, ctx: EvalContext) -> EvaluationResult:
        n_samples = ctx.passes(self.params.n_samples)
        probs = predict_probs(
            model,
            data.x,
            batch_size=ctx.batch_size,
            device=ctx.device,
            n_samples=n_samples,
            progress=ctx.progress,
            desc="clean",
            autocast=ctx.autocast,
        )
        labels = data.y.numpy()
        metrics = summary_metrics(
            probs,
            labels,
            self.params.n_bins,
            extra_ece=self.params.extra_ece,
            bootstrap=self.params.bootstrap,
            rng=np.random.default_rng(ctx.seed),
        )
        return EvaluationResult(
            metrics, prediction_records(data, probs), {"n_examples": len(labels)}
        )
