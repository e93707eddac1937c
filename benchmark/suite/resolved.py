"""A suite evaluation resolved once against the registry: class, typed parameters, column
name and cache-key identity.

Why: a suite's ``evaluations[i].params`` is a raw mapping from YAML. Validating it, naming its
leaderboard columns and building the evaluation used to happen at each place that needed one
of them (job expansion, the worker, sharding, the leaderboard, trust checks, the RobustBench
export, the report). Everything downstream now asks ``spec.resolved`` instead, which does
the registry lookup and validation once per spec and process, and never touches the mapping.
``load_suite`` resolves every evaluation while loading, so an invalid one fails there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchmark.evaluations.base import EVALUATIONS, Evaluation
from benchmark.evaluations.capabilities import (
    PredictionOnly,
    Shardable,
    attack_kind,
    is_adversarial,
)
from benchmark.registry import StrictParams

if TYPE_CHECKING:
    from benchmark.suite.schema import EvaluationSpec


@dataclass(frozen=True)
class ResolvedEvaluation:
    """One evaluation of a suite, ready to run and to key."""

    spec: EvaluationSpec
    cls: type[Evaluation]
    params: StrictParams  # validated, every default filled in
    name: str  # the leaderboard column prefix

    @property
    def type(self) -> str:
        return self.spec.type

    @property
    def shard_size(self) -> int | None:
        return self.spec.shard_size

    @property
    def shardable(self) -> bool:
        return issubclass(self.cls, Shardable)

    @property
    def adversarial(self) -> bool:
        return is_adversarial(self.cls)

    @property
    def attack_kind(self) -> str | None:
        return attack_kind(self.cls, self.params)

    @property
    def prediction_only(self) -> bool:
        """Whether the suite's ``autocast`` applies (:class:`PredictionOnly`)."""
        return issubclass(self.cls, PredictionOnly)

    def build(self) -> Evaluation:
        """A fresh instance of the evaluation with these parameters."""
        return self.cls(self.params)

    def build_shardable(self) -> Shardable:
        """A fresh instance, for running or merging shards (the loader only accepts a
        ``shard_size`` on a :class:`Shardable` evaluation)."""
        evaluation = self.build()
        if not isinstance(evaluation, Shardable):
            raise TypeError(f"evaluation type '{self.type}' cannot be sharded")
        return evaluation

    def identity(self) -> dict[str, Any]:
        """What of this evaluation enters a job's cache key: its type, code version,
        key parameters and the code versions of the attacks it runs (when bumped past "1",
        and only then, so that existing keys stay)."""
        from benchmark.attacks import ATTACKS

        identity: dict[str, Any] = {
            "type": self.type,
            "version": self.cls.version,
            "params": self.cls.key_params(self.params),
        }
        versions = {key: ATTACKS.get(key).obj.version for key in self.cls.attacks_used(self.params)}
        bumped = {key: version for key, version in versions.items() if version != "1"}
        if bumped:
            identity["attack_versions"] = bumped
        return identity

    def data_identity(self) -> dict[str, Any] | None:
        """The content of data the evaluation reads besides the suite's (its files'
        fingerprints; :meth:`Evaluation.data_identity`): in job keys, not in their seeds."""
        return self.cls.data_identity(self.params)


def resolve_evaluation(spec: EvaluationSpec) -> ResolvedEvaluation:
    """Look up ``spec.type`` and validate its parameters (raises ``KeyError`` /
    ``pydantic.ValidationError``; :func:`benchmark.suite.loader.load_suite` turns both into
    one-line messages before anything else resolves a spec)."""
    entry = EVALUATIONS.get(spec.type)
    params = entry.params_model.model_validate(spec.params)
    cls = entry.obj
    return ResolvedEvaluation(spec, cls, params, spec.name or cls.default_name(params) or spec.type)
