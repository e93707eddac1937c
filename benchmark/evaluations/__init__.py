"""Evaluation types: the registry plus built-ins (importing this module registers them)."""

from benchmark.evaluations import (
    adaptive,
    adversarial,
    clean,
    consistency,
    corruptions,
    ensemble_size,
    ood,
    ranking,
    sanity,
)
from benchmark.evaluations.base import (
    EVALUATIONS,
    EvalContext,
    Evaluation,
    EvaluationResult,
    register_evaluation,
)

__all__ = [
    "EVALUATIONS",
    "EvalContext",
    "Evaluation",
    "EvaluationResult",
    "adaptive",
    "adversarial",
    "clean",
    "consistency",
    "corruptions",
    "ensemble_size",
    "ood",
    "ranking",
    "register_evaluation",
    "sanity",
]
