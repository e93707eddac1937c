"""``consistency``: does the prediction stay put along a perturbation sequence? Consistency
(Eq. 37) and cross-entropy consistency (Eq. 38) of the spatial-smoothing paper (its Table
E.3), on CIFAR-10-P-style sequences generated from the suite's data
(:mod:`benchmark.corruptions.sequences`; conventions in :mod:`benchmark.metrics.consistency`).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import torch
from pydantic import Field, model_validator
from torch import nn

from benchmark.corruptions.sequences import SequenceKind, perturbation_sequence
from benchmark.datasets.base import ArrayDataset
from benchmark.evaluations.base import (
    EvalContext,
    EvaluationResult,
    register_evaluation,
)
from benchmark.evaluations.capabilities import PredictionOnly
from benchmark.inference import predict_probs
from benchmark.metrics.consistency import (
    consistency,
    cross_entropy_consistency,
    kl_consistency,
)
from benchmark.metrics.specs import MetricSpec
from benchmark.registry import StrictParams
from benchmark.utils import derive_seed


class ConsistencyParams(StrictParams):
    perturbation: SequenceKind = Field("translate", description="translate | gaussian_noise")
    frames: int = Field(
        16, ge=2, le=256, description="M + 1 frames per sequence (translate: shifts 0..M px)"
    )
    noise_std: float = Field(0.04, gt=0, le=1, description="gaussian_noise: per-frame std")
    n_examples: int | None = Field(1000, ge=1, description="fixed seeded subset (null: all)")
    n_samples: int = Field(50, ge=1, le=1000, description="passes averaged for randomized models")
    seed: int = Field(0, description="seeds the sequences (same for every model)")

    @model_validator(mode="after")
    def _noise_only_for_noise(self) -> ConsistencyParams:
        if self.perturbation != "gaussian_noise" and "noise_std" in self.model_fields_set:
            raise ValueError("noise_std applies to perturbation: gaussian_noise only")
        return self


@register_evaluation(
    "consistency", "prediction consistency and CEC on perturbation sequences (CIFAR-10-P style)"
)
class ConsistencyEvaluation(PredictionOnly):
    version: ClassVar[str] = "1"
    Params = ConsistencyParams
    params: ConsistencyParams
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("consistency_pct", "%", "higher", "consecutive frames predicted alike (Eq. 37)"),
        MetricSpec("cec", "nats", "lower", "cross-entropy of consecutive predictions (Eq. 38)"),
        MetricSpec("cec_kl", "nats", "lower", "KL of consecutive predictions (CEC - entropy)"),
        MetricSpec("frame_acc_pct", "%", "higher", "accuracy over all frames"),
    )

    @classmethod
    def planned_passes(cls, params: StrictParams, n_examples: int) -> tuple[int, int]:
        return n_examples * params.frames, 0  # type: ignore[attr-defined]

    def run(self, model: nn.Module, data: ArrayDataset, ctx: EvalContext) -> EvaluationResult:
        p = self.params
        data = data.subset(p.n_examples, seed=0)
        generator = torch.Generator().manual_seed(derive_seed(p.seed, "sequences", p.perturbation))
        sequence = perturbation_sequence(data.x, p.perturbation, p.frames, generator, p.noise_std)
        flat = sequence.reshape(-1, *data.x.shape[1:])
        probs = predict_probs(
            model,
            flat,
            batch_size=ctx.batch_size,
            device=ctx.device,
            n_samples=ctx.passes(p.n_samples),
            progress=ctx.progress,
            desc=f"consistency ({p.perturbation})",
            autocast=ctx.autocast,
        ).reshape(p.frames, len(data), -1)
        labels = data.y.numpy()
        per_example = {
            "consistency": consistency(probs),
            "cec": cross_entropy_consistency(probs),
            "cec_kl": kl_consistency(probs),
            "frame_acc": (probs.argmax(axis=2) == labels[None, :]).mean(axis=0),
        }
        metrics = {
            "consistency_pct": 100.0 * float(per_example["consistency"].mean()),
            "cec": float(per_example["cec"].mean()),
            "cec_kl": float(per_example["cec_kl"].mean()),
            "frame_acc_pct": 100.0 * float(per_example["frame_acc"].mean()),
        }
        records = pd.DataFrame(
            {"index": data.indices.numpy(), "label": labels, **per_example}
        ).astype({"label": np.int64})
        extras = {"n_examples": len(data), "frames": p.frames, "perturbation": p.perturbation}
        return EvaluationResult(metrics, records, extras)
