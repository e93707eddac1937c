"""The evaluation contract and registry.

An evaluation is a class with a pydantic ``Params`` model and a ``run`` method that turns
(model, data) into an :class:`EvaluationResult`: summary metrics for the leaderboard plus one
record per example. Per-example records are what make per-point worst cases, paired tests
and metrics on any subset possible later, so every evaluation must produce them.

Bump ``version`` whenever a change alters the numbers an evaluation produces: it is part of
the cache key, so stale results are recomputed instead of reused.

Declare every metric an evaluation emits -- and every column its ``postprocess_leaderboard``
adds -- in ``metrics`` (:class:`~benchmark.metrics.specs.MetricSpec`: unit and which way is
better): sorting and "which model is better" read these declarations, never column names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import torch
from torch import nn

from benchmark.datasets.base import ArrayDataset
from benchmark.metrics.specs import MetricSpec, find_spec
from benchmark.registry import Entry, Registry, StrictParams


@dataclass
class EvalContext:
    device: torch.device
    batch_size: int
    seed: int
    progress: bool = True


@dataclass
class EvaluationResult:
    metrics: dict[str, float]
    records: pd.DataFrame
    extras: dict[str, Any] = field(default_factory=dict)
    # Extra files (name -> bytes, e.g. a PNG plot or a CSV table) stored with the result.
    artifacts: dict[str, bytes] = field(default_factory=dict)
    # Wall time and images through the model (benchmark.runner.costs), stored beside the
    # metrics; never compared or checksummed as a number of the result.
    cost: dict[str, float | int] = field(default_factory=dict)


class NoParams(StrictParams):
    """The parameters of an evaluation that takes none."""


class Evaluation(ABC):
    """Base class; subclasses set ``Params`` and implement :meth:`run`."""

    version: ClassVar[str] = "1"
    # Parameters that cannot change the numbers of a job (e.g. the reference model of a
    # leaderboard-level score, a cache location): left out of the job's cache key.
    key_excluded_params: ClassVar[frozenset[str]] = frozenset()
    # Measures robustness under attack: a suite with one gets a ``sanity`` evaluation added
    # (see ``Suite.sanity``), because an attack number is only as good as its sanity checks.
    adversarial: ClassVar[bool] = False
    # Every metric key ``run`` emits and every column ``postprocess_leaderboard`` adds (without
    # the ``<evaluation name>_`` prefix). Undeclared metrics still work but get direction
    # "none": no best-first sort, no "better" in ``compare``.
    metrics: ClassVar[tuple[MetricSpec, ...]] = ()

    # The parameter model: a nested ``class Params(StrictParams)`` or ``Params = SomeParams``.
    # Subclasses that read ``self.params`` also declare ``params: Params`` for the checker.
    Params: ClassVar[type[StrictParams]] = NoParams

    @classmethod
    def metric_spec(cls, metric: str) -> MetricSpec | None:
        """The declaration of ``metric`` (CI columns inherit their metric's); None if
        undeclared."""
        return find_spec(cls.metrics, metric)

    def __init__(self, params: StrictParams) -> None:
        self.params = params

    @classmethod
    def default_name(cls, params: StrictParams) -> str | None:
        """Column prefix when the suite gives no ``name`` (None: the type key)."""
        return None

    @classmethod
    def attack_kind(cls, params: StrictParams) -> str | None:
        """What kind of attack measures robustness here (``Attack.kind``: "iterative",
        "single-step", "black-box", "ensemble"), for the cross-evaluation trust checks that
        compare attacks on one threat model; None: not an attack, or a mix."""
        return None

    @classmethod
    def attacks_used(cls, params: StrictParams) -> list[str]:
        """Keys of the registered attacks (``benchmark.attacks.ATTACKS``) whose code makes
        this evaluation's numbers: their ``version`` enters the job's cache key, so bumping
        an attack's version recomputes exactly the jobs that ran it."""
        return []

    @classmethod
    def key_params(cls, params: StrictParams) -> dict[str, Any]:
        """The validated parameters as they enter the job's cache key (default: all of them
        but ``key_excluded_params``). Override to keep old keys when spellings change."""
        return params.model_dump(exclude=set(cls.key_excluded_params))

    # True: the evaluation can run on example ranges (shards) whose results ``merge`` into
    # exactly the unsharded result; the suite may then set ``shard_size`` on it.
    shardable: ClassVar[bool] = False

    @abstractmethod
    def run(self, model: nn.Module, data: ArrayDataset, ctx: EvalContext) -> EvaluationResult:
        """Evaluate ``model`` (already in eval mode, on ``ctx.device``) on ``data``."""

    def examples(self, data: ArrayDataset) -> ArrayDataset:
        """The examples this evaluation evaluates (e.g. its seeded ``n_examples`` subset)."""
        return data

    def run_shard(
        self, model: nn.Module, data: ArrayDataset, ctx: EvalContext, start: int, stop: int
    ) -> EvaluationResult:
        """Evaluate examples ``start:stop`` of :meth:`examples` (shardable evaluations only)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be sharded")

    def merge(self, shards: list[EvaluationResult]) -> EvaluationResult:
        """Combine shard results, in example order, into the unsharded result."""
        raise NotImplementedError(f"{type(self).__name__} cannot be sharded")

    @classmethod
    def check_rows(cls, params: StrictParams, rows: list[str]) -> list[str]:
        """Problems with parameters that name model rows of the suite (``rows``), as
        ``params.<field>: ...`` lines; checked when the suite is loaded, before any work."""
        return []

    @classmethod
    def postprocess_leaderboard(
        cls,
        frame: pd.DataFrame,
        name: str,
        params: StrictParams,
        results: dict[str, dict[str, Any]],
        records: Callable[[str], pd.DataFrame],
    ) -> pd.DataFrame:
        """Add columns that need several models at once (e.g. scores relative to a reference
        model). Called once per evaluation of the suite after the leaderboard rows are built;
        ``name`` is the column prefix, ``results`` maps each row name to that model's cached
        result summary (``metrics`` and ``extras``) and ``records(row)`` loads that row's
        per-example records. Default: the frame unchanged."""
        return frame

    @classmethod
    def suite_plots(
        cls,
        name: str,
        params: StrictParams,
        records_by_row: dict[str, pd.DataFrame],
        out_dir: Path,
    ) -> list[Path]:
        """Figures and tables across the suite's models for this evaluation, written under
        ``out_dir``; returns the paths. Default: reliability diagrams, confidence histograms
        and risk-coverage curves when the records carry probabilities (``prob_<k>``)."""
        if not records_by_row or not all("prob_0" in r.columns for r in records_by_row.values()):
            return []
        from benchmark.plots import plot_suite  # matplotlib only when plotting

        n_bins = int(getattr(params, "n_bins", 15))
        return plot_suite(records_by_row, out_dir, n_bins=n_bins)


EVALUATIONS: Registry[type[Evaluation]] = Registry("evaluation type")


def evaluation_name(type_key: str, name: str | None, params: dict[str, Any]) -> str:
    """The leaderboard column prefix of an evaluation: its ``name``, else a default derived
    from its parameters (e.g. ``pgd_linf_8/255``), else its type key."""
    if name:
        return name
    entry = EVALUATIONS.get(type_key)
    return entry.obj.default_name(entry.params_model.model_validate(params)) or type_key


def register_evaluation(
    key: str, description: str
) -> Callable[[type[Evaluation]], type[Evaluation]]:
    def decorator(cls: type[Evaluation]) -> type[Evaluation]:
        EVALUATIONS.add(Entry(key, cls, description, cls.Params, {"version": cls.version}))
        return cls

    return decorator
