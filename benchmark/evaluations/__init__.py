"""Evaluation types: the registry plus built-ins (importing this module registers them)."""

from benchmark.evaluations import clean
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
    "clean",
    "register_evaluation",
]
