"""The evaluation contract and registry.

An evaluation is a class with a pydantic ``Params`` model and a ``run`` method that turns
(model, data) into an :class:`EvaluationResult`: summary metrics for the leaderboard plus one
record per example. Per-example records are what make per-point worst cases, paired tests
and metrics on any subset possible later, so every evaluation must produce them.

Bump ``version`` whenever a change alters the numbers an evaluation produces: it is part of
the cache key, so stale results are recomputed instead of reused.

Declare every metric an evaluation emits -- and every metric its ``cross_model_metrics``
returns -- in ``metrics`` (:class:`~benchmark.metrics.specs.MetricSpec`: unit and which way is
better): sorting and "which model is better" read these declarations, never column names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd
import torch
from torch import nn

from benchmark.datasets.base import ArrayDataset
from benchmark.metrics.specs import MetricSpec, find_spec
from benchmark.registry import Entry, Registry, StrictParams
from benchmark.results import ResultSummary


@dataclass
class EvalContext:
    device: torch.device
    batch_size: int
    seed: int
    progress: bool = True
    # The model's output is stochastic (MC dropout, noise layers, ensembles of such): predict
    # with several passes, attack with EOT, never early-stop on one noisy pass. Set by the
    # runner from the model's declaration, so evaluations never probe the model for it.
    randomized: bool = False
    # The dtype prediction passes autocast to (bfloat16/float16; None: float32), handed to
    # predict_probs. The runner sets it from the suite's ``autocast`` for PredictionOnly
    # evaluations only (benchmark.evaluations.capabilities); every other one gets None.
    autocast: torch.dtype | None = None
    # Other rows' models (name -> model) that transfer attacks craft on; the runner provides
    # exactly the ones the evaluation names (``benchmark.attacks.transfer.surrogate_rows``).
    surrogates: dict[str, nn.Module] = field(default_factory=dict)

    @classmethod
    def for_model(
        cls,
        model: nn.Module,
        device: torch.device,
        batch_size: int,
        seed: int,
        progress: bool,
        autocast: torch.dtype | None = None,
    ) -> EvalContext:
        """The context for evaluating ``model``: ``randomized`` as the model declares it (its
        ``randomized`` attribute, set by the builders of stochastic models)."""
        randomized = bool(getattr(model, "randomized", False))
        return cls(device, batch_size, seed, progress, randomized, autocast)

    def passes(self, n_samples: int) -> int:
        """Prediction passes to average: ``n_samples`` for a randomized model, one for a
        deterministic one (more passes would repeat the same output)."""
        return n_samples if self.randomized else 1


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


# Parameters added to shared parameter models after their keys existed, left out of a key at
# this value so that those keys stay valid: ``save_adversarial`` adds a file, changes no number.
ADDED_AT_DEFAULT: dict[str, Any] = {"save_adversarial": False}


class Evaluation(ABC):
    """The core every evaluation has: parameters, a code version, declared metrics and
    :meth:`run`. What only some evaluations do is opt-in, by also deriving from a capability
    of :mod:`benchmark.evaluations.capabilities` (``Shardable``, ``CrossModel``,
    ``SuiteFigures``, ``Adversarial``); the runner asks ``issubclass``, never a flag."""

    version: ClassVar[str] = "1"
    # Parameters that cannot change the numbers of a job (e.g. the reference model of a
    # leaderboard-level score, a cache location): left out of the job's cache key.
    key_excluded_params: ClassVar[frozenset[str]] = frozenset()
    # Every metric key ``run`` emits and every metric ``cross_model_metrics`` returns (without
    # the ``<evaluation name>_`` prefix). Undeclared metrics still work but get direction
    # "none": no best-first sort, no "better" in ``compare``.
    metrics: ClassVar[tuple[MetricSpec, ...]] = ()
    # Figures the evaluation stores as result artifacts, shown per model in the HTML report
    # (artifact file name -> caption) in place of the reliability diagram drawn from records.
    report_figures: ClassVar[dict[str, str]] = {}
    # How readers after the run (trust checks, cross-model metrics, report) see a stored
    # result of this evaluation: the summary class of its family (benchmark/results.py).
    Summary: ClassVar[type[ResultSummary]] = ResultSummary

    # The parameter model: a nested ``class Params(StrictParams)`` or ``Params = SomeParams``.
    # Subclasses that read ``self.params`` also declare ``params: Params`` for the checker.
    Params: ClassVar[type[StrictParams]] = NoParams

    def __init__(self, params: StrictParams) -> None:
        self.params = params

    @abstractmethod
    def run(self, model: nn.Module, data: ArrayDataset, ctx: EvalContext) -> EvaluationResult:
        """Evaluate ``model`` (already in eval mode, on ``ctx.device``) on ``data``."""

    @classmethod
    def planned_passes(cls, params: StrictParams, n_examples: int) -> tuple[int, int]:
        """(forward images, input-gradient images) this evaluation spends at most on
        ``n_examples`` examples (its own ``n_examples`` subset already applied), for
        ``python -m benchmark plan``. Default: one forward pass per example."""
        return n_examples, 0

    def examples(self, data: ArrayDataset) -> ArrayDataset:
        """The examples this evaluation evaluates (e.g. its seeded ``n_examples`` subset)."""
        return data

    @classmethod
    def metric_spec(cls, metric: str) -> MetricSpec | None:
        """The declaration of ``metric`` (CI columns inherit their metric's); None if
        undeclared."""
        return find_spec(cls.metrics, metric)

    @classmethod
    def default_name(cls, params: StrictParams) -> str | None:
        """Column prefix when the suite gives no ``name`` (None: the type key)."""
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
        but ``key_excluded_params``, and the parameters of :data:`ADDED_AT_DEFAULT` left at
        that value). Override to keep old keys when spellings change."""
        key = params.model_dump(exclude=set(cls.key_excluded_params))
        for name, default in ADDED_AT_DEFAULT.items():
            if name in key and key[name] == default:
                del key[name]
        return key

    @classmethod
    def data_identity(cls, params: StrictParams) -> dict[str, Any] | None:
        """The content of data this evaluation reads besides the suite's (an OOD set, the
        CIFAR-10-C files), for its job's cache key: fingerprints of what is read
        (:func:`benchmark.datasets.base.dataset_fingerprint`), never the folder it lies in.
        None (the default) for evaluations of the suite's data only; keys then stay."""
        return None


EVALUATIONS: Registry[type[Evaluation]] = Registry("evaluation type")


def register_evaluation(
    key: str, description: str
) -> Callable[[type[Evaluation]], type[Evaluation]]:
    def decorator(cls: type[Evaluation]) -> type[Evaluation]:
        EVALUATIONS.add(Entry(key, cls, description, cls.Params))
        return cls

    return decorator
