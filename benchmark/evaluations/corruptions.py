"""Corruption robustness: accuracy, NLL, ECE (every metric of ``summary_metrics``) per
corruption x severity, on generated corruptions of the suite's data or on the official
CIFAR-10-C files; mCE / mCNLL / mCECE against a reference model on the leaderboard.

Every model sees the same corrupted images: generation is seeded by the evaluation's own
``seed`` (not the per-job seed) and the subset of ``n_examples`` images is a fixed seeded
choice, the same for every corruption and severity (paired comparisons).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal

import pandas as pd
import torch
from pydantic import Field, field_validator
from torch import nn
from tqdm import tqdm

from benchmark.corruptions import SEVERITIES, STANDARD, resolve_corruptions
from benchmark.corruptions.cache import cached_corrupt, images_fingerprint
from benchmark.corruptions.scores import relative_scores
from benchmark.datasets.base import ArrayDataset
from benchmark.datasets.cifar10c import cifar10c_folder, fingerprint_cifar10c, load_cifar10c
from benchmark.errors import BenchmarkError
from benchmark.evaluations.base import EvalContext, EvaluationResult, register_evaluation
from benchmark.evaluations.capabilities import CrossModel, PredictionOnly, SuiteFigures
from benchmark.evaluations.predictions import predict_probs, prediction_records, summary_metrics
from benchmark.metrics.specs import SUMMARY_METRICS, MetricSpec
from benchmark.registry import StrictParams
from benchmark.results import CorruptionSummary, ResultSummary
from benchmark.utils import derive_seed

SCORE_COLUMNS = ("mce_pct", "mcnll_pct", "mcece_pct", "relative_mce_pct")


class CorruptionParams(StrictParams):
    corruptions: str | list[str] = Field(
        "standard", description="'standard' (15), 'extra' (4), 'all' (19) or a list of names"
    )
    severities: list[int] = Field(default_factory=lambda: list(SEVERITIES), min_length=1)
    source: Literal["generate", "cifar10c"] = Field(
        "generate", description="generate from the suite's data, or the official CIFAR-10-C"
    )
    root: str = Field("data", description="cifar10c: directory holding CIFAR-10-C/")
    download: bool = Field(False, description="cifar10c: fetch CIFAR-10-C.tar (MD5-checked)")
    n_examples: int | None = Field(
        None, ge=1, description="fixed seeded subset per severity (same images for all models)"
    )
    seed: int = Field(0, description="seeds generation and the subset (not the job seed)")
    length_scale: float | None = Field(
        None, gt=0, description="generate: multiplier of CIFAR pixel lengths (default size/32)"
    )
    cache_dir: str | None = Field(
        "data/corruptions", description="generate: cache of generated sets (null: none)"
    )
    n_bins: int = Field(15, ge=1, le=10_000, description="equal-width ECE bins")
    n_samples: int = Field(
        50, ge=1, le=1000, description="passes for randomized models (the paper's N = 50)"
    )
    mce_over: Literal["standard", "evaluated"] = Field(
        "standard",
        description="mCE/mCNLL/mCECE over the 15 standard corruptions evaluated (as "
        "RobustBench and Hendrycks & Dietterich; all evaluated ones if none is standard), "
        "or over every evaluated corruption",
    )
    reference_model: str | None = Field(
        None, description="model row for mCE / mCNLL / mCECE / relative mCE columns"
    )

    @field_validator("corruptions")
    @classmethod
    def _known(cls, value: str | list[str]) -> str | list[str]:
        resolve_corruptions(value)
        return value

    @field_validator("severities")
    @classmethod
    def _severities(cls, value: list[int]) -> list[int]:
        if any(s not in SEVERITIES for s in value) or len(set(value)) != len(value):
            raise ValueError(f"severities must be distinct values in 1..5, got {value}")
        return value


def scored_corruptions(mce_over: str, per_corruption: dict[str, Any]) -> list[str]:
    """The corruptions mCE averages over: the standard ones among those evaluated (all of
    them when none is standard, e.g. a suite of the four extras), or every evaluated one."""
    evaluated = sorted(per_corruption)
    standard = [c for c in evaluated if c in STANDARD]
    return standard if mce_over == "standard" and standard else evaluated


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


@register_evaluation("corruptions", "accuracy/NLL/ECE under common corruptions (CIFAR-10-C)")
class CorruptionsEvaluation(PredictionOnly, CrossModel, SuiteFigures):
    # 2: mean_maxce_pct (was mean_mce_pct, clashing with mCE); n_samples 50; mCE over the
    #    standard corruptions.
    # 3: generated frost blends the frost photographs (corruption version 2).
    version: ClassVar[str] = "3"
    # root / download: the files read are keyed by content (data_identity), not location
    key_excluded_params: ClassVar[frozenset[str]] = frozenset(
        {"reference_model", "cache_dir", "root", "download"}
    )
    Params = CorruptionParams
    params: CorruptionParams
    Summary = CorruptionSummary
    # ``mean_<metric>`` over corruption x severity cells, then the reference-model scores of
    # ``cross_model_metrics`` (the reference row reads 100; lower is more robust).
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        *(
            spec.renamed(f"mean_{spec.name}", f"{spec.description}, mean over corruptions")
            for spec in SUMMARY_METRICS
        ),
        MetricSpec("mean_error_pct", "%", "lower", "top-1 error, mean over corruptions"),
        MetricSpec("mce_pct", "% of reference", "lower", "mean corruption error (mCE)"),
        MetricSpec("mcnll_pct", "% of reference", "lower", "mean corruption NLL (mCNLL)"),
        MetricSpec("mcece_pct", "% of reference", "lower", "mean corruption ECE (mCECE)"),
        MetricSpec("relative_mce_pct", "% of reference", "lower", "relative mCE (minus clean)"),
    )

    @classmethod
    def data_identity(cls, params: StrictParams) -> dict[str, Any] | None:
        """The CIFAR-10-C files read (name, size, SHA-256), for ``source: cifar10c``."""
        assert isinstance(params, CorruptionParams)
        if params.source != "cifar10c":
            return None
        names = resolve_corruptions(params.corruptions)
        return {"cifar10c": fingerprint_cifar10c(params.root, names, params.download)}

    def _sets(self, data: ArrayDataset) -> Iterator[tuple[str, int, ArrayDataset]]:
        """(corruption, severity, corrupted images) in evaluation order."""
        p = self.params
        names = resolve_corruptions(p.corruptions)
        if p.source == "cifar10c":
            info = data.info
            if info.in_channels != 3 or info.image_size != (32, 32) or info.num_classes != 10:
                raise BenchmarkError(
                    f"params.source: 'cifar10c' needs a CIFAR-10 suite (32x32 RGB, 10 classes); "
                    f"the suite's dataset is '{data.name}'"
                )
            cifar10c_folder(p.root, names, p.download)  # one clear error for all missing files
            for name in names:
                for severity in p.severities:
                    images, labels = load_cifar10c(p.root, name, severity)
                    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
                    full = ArrayDataset(
                        "cifar10c", "test", x, torch.from_numpy(labels), info,
                        torch.arange(len(labels)),
                    )  # fmt: skip
                    yield name, severity, full.subset(p.n_examples, p.seed)
            return
        subset = data.subset(p.n_examples, p.seed)
        fingerprint = images_fingerprint(subset.x)
        for name in names:
            for severity in p.severities:
                corrupted = cached_corrupt(
                    subset.x,
                    name,
                    severity,
                    seed=derive_seed(p.seed, name, severity),
                    length_scale=p.length_scale,
                    cache_dir=p.cache_dir,
                    fingerprint=fingerprint,
                )
                x = corrupted.float().div_(255.0)
                yield (
                    name,
                    severity,
                    ArrayDataset(
                        subset.name, subset.split, x, subset.y, subset.info, subset.indices
                    ),
                )

    @classmethod
    def planned_passes(cls, params: StrictParams, n_examples: int) -> tuple[int, int]:
        p: CorruptionParams = params  # type: ignore[assignment]
        sets = len(resolve_corruptions(p.corruptions)) * len(p.severities)
        return n_examples * (1 + sets), 0  # the clean set and every corrupted one

    def run(self, model: nn.Module, data: ArrayDataset, ctx: EvalContext) -> EvaluationResult:
        p = self.params
        n_samples = ctx.passes(p.n_samples)

        def evaluate(dataset: ArrayDataset, corruption: str, severity: int):
            probs = predict_probs(
                model, dataset.x, batch_size=ctx.batch_size, device=ctx.device,
                n_samples=n_samples, autocast=ctx.autocast,
            )  # fmt: skip
            records = prediction_records(dataset, probs)
            records.insert(0, "corruption", corruption)
            records.insert(1, "severity", severity)
            return summary_metrics(probs, dataset.y.numpy(), p.n_bins), records

        clean, clean_records = evaluate(data.subset(p.n_examples, p.seed), "clean", 0)
        frames = [clean_records]
        per_corruption: dict[str, dict[str, dict[str, float]]] = {}
        n_sets = len(resolve_corruptions(p.corruptions)) * len(p.severities)
        sets = tqdm(
            self._sets(data), total=n_sets, desc="corruptions", disable=not ctx.progress,
            leave=False,
        )  # fmt: skip
        n_examples = 0
        for name, severity, dataset in sets:
            metrics, records = evaluate(dataset, name, severity)
            per_corruption.setdefault(name, {})[str(severity)] = metrics
            frames.append(records)
            n_examples = len(dataset)
        cells = [m for by_severity in per_corruption.values() for m in by_severity.values()]
        summary = {f"mean_{key}": _mean([m[key] for m in cells]) for key in clean}
        summary["mean_error_pct"] = 100.0 - summary["mean_acc_pct"]
        records = pd.concat(frames, ignore_index=True)
        records["corruption"] = records["corruption"].astype("category")
        extras: dict[str, Any] = {
            "n_examples": n_examples,
            "source": p.source,
            "corruptions": list(per_corruption),
            "severities": list(p.severities),
            "clean": clean,
            "per_corruption": per_corruption,
        }
        return EvaluationResult(summary, records, extras)

    @classmethod
    def check_rows(cls, params: StrictParams, rows: list[str]) -> list[str]:
        reference = params.reference_model  # type: ignore[attr-defined]
        if reference is None or reference in rows:
            return []
        return [f"params.reference_model: no model row '{reference}' in this suite"]

    @classmethod
    def cross_model_metrics(
        cls,
        name: str,
        params: StrictParams,
        results: dict[str, ResultSummary],
        records: Callable[[str], pd.DataFrame],
    ) -> dict[str, dict[str, float]]:
        """mCE, mCNLL, mCECE and relative mCE (percent) against ``reference_model``."""
        reference = params.reference_model  # type: ignore[attr-defined]
        if reference is None or not results:
            return {}
        if reference not in results:
            raise BenchmarkError(
                f"evaluation '{name}': params.reference_model: no model row '{reference}' in "
                f"this suite (rows: {', '.join(results)})"
            )
        ref = results[reference]
        over = params.mce_over  # type: ignore[attr-defined]
        per_row: dict[str, dict[str, float]] = {}
        for model, result in results.items():
            assert isinstance(result, CorruptionSummary) and isinstance(ref, CorruptionSummary)
            scores = relative_scores(
                result.per_corruption,
                ref.per_corruption,
                result.clean,
                ref.clean,
                corruptions=scored_corruptions(over, result.per_corruption),
            )
            per_row[model] = {key: scores[key] for key in SCORE_COLUMNS}
        return per_row
