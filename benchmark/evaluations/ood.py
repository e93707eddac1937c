"""``ood_detection``: how well the model's confidence separates the suite's test data from an
out-of-distribution data set (AR-AdaLS Sec. 5, Table 3 and Figure 4).

Any registered data set serves as OOD (MNIST or digits against CIFAR-10 here, offline); its
images are matched to the suite's input shape first: grayscale <-> RGB (channel repeat, or
ITU-R 601 luma) and bilinear resizing with antialiasing. Its labels are never used. Two
detectors (:mod:`benchmark.metrics.ood`): the maximum softmax probability and the negative
predictive entropy; for each, AUROC, AUPR-In, AUPR-Out and FPR95 (OOD accepted at 95% of
the in-distribution kept). The entropy histograms of both sets (Figure 4) are stored as
``entropy.png``; records hold one row per example of either set (``distribution`` = in | ood)
with its prediction, confidence and entropy.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from benchmark.datasets.base import (
    DATASETS,
    ArrayDataset,
    DataInfo,
    dataset_fingerprint,
    load_dataset,
)
from benchmark.errors import BenchmarkError
from benchmark.evaluations.base import (
    EvalContext,
    EvaluationResult,
    register_evaluation,
)
from benchmark.evaluations.capabilities import PredictionOnly
from benchmark.inference import predict_probs
from benchmark.metrics.ood import detection_metrics, ood_scores, predictive_entropy
from benchmark.metrics.specs import MetricSpec
from benchmark.plots.figure import png_bytes
from benchmark.plots.ood import entropy_histogram
from benchmark.registry import StrictParams

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, RGB -> gray
DETECTORS = ("msp", "entropy")


class OODParams(StrictParams):
    dataset: str = Field(description="a registered data set used as out-of-distribution")
    split: Literal["train", "val", "test"] = "test"
    root: str = Field("data", description="the OOD data set's root folder")
    download: bool = Field(False, description="let the OOD data set download itself")
    n_examples: int | None = Field(None, ge=1, description="fixed seeded OOD subset")
    n_in_examples: int | None = Field(
        None, ge=1, description="fixed seeded subset of the suite's (in-distribution) data"
    )
    n_samples: int = Field(50, ge=1, le=1000, description="passes averaged for randomized models")

    @field_validator("dataset")
    @classmethod
    def _registered(cls, name: str) -> str:
        if name not in DATASETS:  # fails the suite load in one line, naming the field
            raise ValueError(f"unknown dataset '{name}' (registered: {', '.join(DATASETS.keys())})")
        return name


def match_inputs(x: torch.Tensor, info: DataInfo) -> torch.Tensor:
    """``x`` (N, C, H, W in [0, 1]) in the channels and size the model expects."""
    channels, size = x.shape[1], tuple(x.shape[2:])
    if channels != info.in_channels:
        if channels == 1:
            x = x.expand(-1, info.in_channels, -1, -1)
        elif channels == 3 and info.in_channels == 1:
            x = (x * torch.tensor(LUMA, dtype=x.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
        else:
            raise BenchmarkError(
                f"params.dataset: cannot map {channels}-channel OOD images to the suite's "
                f"{info.in_channels} channels"
            )
    if size != tuple(info.image_size):
        x = F.interpolate(
            x, size=tuple(info.image_size), mode="bilinear", align_corners=False, antialias=True
        )
    return x.clamp(0.0, 1.0).contiguous()


def _metric_specs() -> tuple[MetricSpec, ...]:
    specs = []
    for detector in DETECTORS:
        what = "max-probability" if detector == "msp" else "entropy"
        specs += [
            MetricSpec(f"{detector}_auroc_pct", "%", "higher", f"OOD AUROC, {what} score"),
            MetricSpec(
                f"{detector}_aupr_in_pct", "%", "higher", f"AUPR, in-distribution positive, {what}"
            ),
            MetricSpec(f"{detector}_aupr_out_pct", "%", "higher", f"AUPR, OOD positive, {what}"),
            MetricSpec(
                f"{detector}_fpr95_pct", "%", "lower", f"OOD accepted at 95% TPR of in, {what}"
            ),
        ]
    specs.append(MetricSpec("mean_entropy_in", "nats", "none", "mean entropy, in-distribution"))
    specs.append(MetricSpec("mean_entropy_ood", "nats", "none", "mean entropy, OOD"))
    return tuple(specs)


@register_evaluation(
    "ood_detection", "OOD detection (max-probability, entropy): AUROC, AUPR-In/Out, FPR95"
)
class OODDetection(PredictionOnly):
    version: ClassVar[str] = "1"
    # root / download: the OOD set is keyed by its content (data_identity), not its location
    key_excluded_params: ClassVar[frozenset[str]] = frozenset({"root", "download"})
    Params = OODParams
    params: OODParams
    report_figures: ClassVar[dict[str, str]] = {"entropy.png": "entropy in vs out of distribution"}
    metrics: ClassVar[tuple[MetricSpec, ...]] = _metric_specs()

    @classmethod
    def data_identity(cls, params: StrictParams) -> dict[str, Any] | None:
        """The OOD set's fingerprint (its files' content; a plugin set's code and root)."""
        assert isinstance(params, OODParams)
        return {
            "ood": dataset_fingerprint(
                params.dataset, params.split, root=params.root, download=params.download
            )
        }

    def ood_data(self, info: DataInfo) -> ArrayDataset:
        p = self.params
        data = load_dataset(p.dataset, p.split, root=p.root, download=p.download)
        data = data.subset(p.n_examples, seed=0)
        return ArrayDataset(
            data.name, data.split, match_inputs(data.x, info), data.y, info, data.indices
        )

    def run(self, model: nn.Module, data: ArrayDataset, ctx: EvalContext) -> EvaluationResult:
        p = self.params
        inside = data.subset(p.n_in_examples, seed=0)
        outside = self.ood_data(data.info)
        passes = ctx.passes(p.n_samples)
        probs = {
            kind: predict_probs(
                model,
                part.x,
                batch_size=ctx.batch_size,
                device=ctx.device,
                n_samples=passes,
                progress=ctx.progress,
                desc=f"ood ({kind})",
                autocast=ctx.autocast,
            )
            for kind, part in (("in", inside), ("ood", outside))
        }
        scores = {kind: ood_scores(values) for kind, values in probs.items()}
        metrics: dict[str, float] = {}
        for detector in DETECTORS:
            found = detection_metrics(scores["in"][detector], scores["ood"][detector])
            metrics.update({f"{detector}_{k}_pct": 100.0 * v for k, v in found.items()})
        entropy = {kind: predictive_entropy(values) for kind, values in probs.items()}
        metrics["mean_entropy_in"] = float(entropy["in"].mean())
        metrics["mean_entropy_ood"] = float(entropy["ood"].mean())
        records = pd.concat(
            [
                _records(kind, part, probs[kind], entropy[kind], labelled=kind == "in")
                for kind, part in (("in", inside), ("ood", outside))
            ],
            ignore_index=True,
        )
        figure = entropy_histogram(
            entropy["in"], entropy["ood"], probs["in"].shape[1], (data.name, outside.name)
        )
        extras = {
            "n_examples": len(inside),  # the leaderboard's count: in-distribution examples
            "n_in": len(inside),
            "n_ood": len(outside),
            "ood_dataset": f"{outside.name}/{outside.split}",
        }
        return EvaluationResult(metrics, records, extras, {"entropy.png": png_bytes(figure)})


def _records(
    kind: str, data: ArrayDataset, probs: np.ndarray, entropy: np.ndarray, labelled: bool
) -> pd.DataFrame:
    """Per-example rows without probability columns: OOD rows have no meaningful label, so
    calibration figures and paired accuracy comparisons must not read them (label -1)."""
    preds = probs.argmax(axis=1)
    labels = data.y.numpy() if labelled else np.full(len(data), -1)
    return pd.DataFrame(
        {
            "distribution": kind,
            "index": data.indices.numpy(),
            "label": labels,
            "pred": preds,
            "confidence": probs.max(axis=1),
            "entropy": entropy,
        }
    )
