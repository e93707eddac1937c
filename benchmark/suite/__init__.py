"""Suite files: schema (structure) and loader (YAML + registry validation)."""

from benchmark.suite.loader import SuiteError, load_registries, load_suite
from benchmark.suite.schema import DatasetSpec, EvaluationSpec, ModelSpec, Suite, TrainingSpec

__all__ = [
    "DatasetSpec",
    "EvaluationSpec",
    "ModelSpec",
    "Suite",
    "SuiteError",
    "TrainingSpec",
    "load_registries",
    "load_suite",
]
