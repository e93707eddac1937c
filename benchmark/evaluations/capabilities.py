"""Opt-in capabilities of an evaluation, beyond the core of :class:`Evaluation`.

An evaluation derives from the capabilities it has, e.g.
``class PGD(Shardable, Adversarial, SuiteFigures)``; the runner, the loader and the trust
checks ask ``issubclass(cls, Shardable)`` and so on. Why not flags and default methods on the
base class: a default ``cross_model_metrics`` that does nothing, a ``shardable = False``
beside a ``run_shard`` that raises, made every evaluation carry every hook (fourteen members)
and let a flag and its methods disagree. A capability is its methods, and nothing else.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from torch import nn

from benchmark.datasets.base import ArrayDataset
from benchmark.evaluations.base import EvalContext, Evaluation, EvaluationResult
from benchmark.registry import StrictParams
from benchmark.results import AdversarialSummary, ResultSummary


class Shardable(Evaluation):
    """Runs on example ranges (shards) whose results :meth:`merge` into exactly the
    unsharded result; the suite may then set ``shard_size`` on it (parallel, resumable)."""

    @abstractmethod
    def run_shard(
        self, model: nn.Module, data: ArrayDataset, ctx: EvalContext, start: int, stop: int
    ) -> EvaluationResult:
        """Evaluate examples ``start:stop`` of :meth:`examples`."""

    @abstractmethod
    def merge(self, shards: list[EvaluationResult]) -> EvaluationResult:
        """Combine shard results, in example order, into the unsharded result."""


class CrossModel(Evaluation):
    """Needs several models at once after their jobs ran (e.g. scores relative to a reference
    row, variance across replicas); its parameters may name model rows."""

    @classmethod
    def check_rows(cls, params: StrictParams, rows: list[str]) -> list[str]:
        """Problems with parameters that name model rows of the suite (``rows``), as
        ``params.<field>: ...`` lines; checked when the suite is loaded, before any work."""
        return []

    @classmethod
    @abstractmethod
    def cross_model_metrics(
        cls,
        name: str,
        params: StrictParams,
        results: dict[str, ResultSummary],
        records: Callable[[str], pd.DataFrame],
    ) -> dict[str, dict[str, float]]:
        """The cross-model metrics of each model row: ``{row: {metric: value}}``, metric keys
        as declared in ``metrics`` (without the ``<name>_`` prefix). Called once per
        evaluation after its jobs ran; ``results`` maps each row name to that model's cached
        result (its ``Summary``: metrics, extras and the family's accessors) and
        ``records(row)`` loads that row's per-example records.

        Why values and not a frame to edit: the runner owns the leaderboard. It checks each
        returned row is one of this evaluation's rows and each metric is declared, and puts
        the values in their columns; an evaluation cannot overwrite another's columns or
        match rows by name wrongly."""


class SuiteFigures(Evaluation):
    """Draws figures across the suite's models (under ``<run_dir>/plots/<evaluation>``).
    Default: reliability diagrams, confidence histograms and risk-coverage curves of the
    predicted probabilities (``prob_<k>`` record columns) of every model."""

    @classmethod
    def suite_plots(
        cls,
        name: str,
        params: StrictParams,
        records_by_row: dict[str, pd.DataFrame],
        out_dir: Path,
    ) -> list[Path]:
        """Write this evaluation's cross-model figures and tables; return their paths."""
        if not records_by_row or not all("prob_0" in r.columns for r in records_by_row.values()):
            return []
        from benchmark.plots import plot_suite  # matplotlib only when plotting

        n_bins = int(getattr(params, "n_bins", 15))
        return plot_suite(records_by_row, out_dir, n_bins=n_bins)


class Adversarial(Evaluation):
    """Measures robustness under attack at a threat model: a suite with one gets a
    ``sanity`` evaluation added (see ``Suite.sanity``), and the cross-evaluation trust checks
    compare its numbers with the other attacks on the same threat model."""

    Summary = AdversarialSummary

    @classmethod
    def attack_kind(cls, params: StrictParams) -> str | None:
        """What kind of attack measures robustness here (``Attack.kind``: "iterative",
        "single-step", "black-box", "ensemble"); None: a mix."""
        return None


class PredictionOnly(Evaluation):
    """Its numbers come from prediction passes alone (:func:`benchmark.inference.
    predict_probs`, given ``autocast=ctx.autocast``): no gradient, no attack. Only such an
    evaluation gets the suite's ``autocast`` (bf16/fp16) in its context, and only its jobs'
    keys hold it. Every other evaluation -- attacks, sanity checks, minimal-norm ranking, a
    plugin that does not opt in -- runs with ``ctx.autocast`` None under
    ``torch.autocast(enabled=False)``: adversarial examples are crafted and scored in
    float32 whatever the suite says, so their trustworthiness never depends on
    half-precision gradients."""


def is_adversarial(cls: type[Evaluation]) -> bool:
    return issubclass(cls, Adversarial)


def attack_kind(cls: type[Evaluation], params: StrictParams) -> str | None:
    """The evaluation's attack kind; None when it is not an attack (or a mix)."""
    return cls.attack_kind(params) if issubclass(cls, Adversarial) else None
