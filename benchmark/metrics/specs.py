"""Declarations of leaderboard metrics: name (or name pattern), unit, direction, meaning.

Each evaluation type declares every metric it emits (``Evaluation.metrics``), so that the
leaderboard's ``--sort``, ``compare`` and the HTML report know which way is better from the
declaration instead of guessing it from a column's suffix -- a guess that silently sorted
counts, diagnostics and per-bin errors as "higher is better".

Directions:

* ``"higher"`` / ``"lower"``: higher / lower values are better (sorted first);
* ``"none"``: descriptive numbers with no better side (counts of examples, mean perturbation
  norms of an attack, metrics of plugins that declare nothing); sorting by one needs an
  explicit order.

A declared name may contain ``{placeholder}`` parts (e.g. ``{eps}_robust_acc_pct`` of an eps
sweep), each matching any non-empty text. A confidence-interval metric ``<metric>_ci_low`` /
``<metric>_ci_high`` inherits the declaration of ``<metric>`` unless it is declared itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Literal, get_args

Direction = Literal["higher", "lower", "none"]
DIRECTIONS: tuple[str, ...] = get_args(Direction)
CI_SUFFIXES = ("_ci_low", "_ci_high")
# Version of the ``<suite>.columns.json`` sidecar; another version is read as "no sidecar".
COLUMNS_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class MetricSpec:
    """One declared metric. ``name`` is the metric key an evaluation emits (without the
    ``<evaluation>_`` column prefix), possibly with ``{placeholder}`` parts."""

    name: str
    unit: str
    direction: Direction
    description: str
    # A detail column (e.g. an attack's success rate or mean norm) stays in the CSV/Markdown
    # files and the report but is left out of the terminal table (``terminal_view``).
    detail: bool = False

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(
                f"metric '{self.name}': direction must be one of {DIRECTIONS}, "
                f"got {self.direction!r}"
            )

    @property
    def is_pattern(self) -> bool:
        return "{" in self.name

    def matches(self, metric: str) -> bool:
        """True if ``metric`` is this name, or fits this pattern."""
        if not self.is_pattern:
            return metric == self.name
        return _pattern(self.name).fullmatch(metric) is not None

    def renamed(self, name: str, description: str | None = None) -> MetricSpec:
        """The same unit, direction and detail flag under another name (``mean_<metric>``)."""
        return MetricSpec(
            name, self.unit, self.direction, description or self.description, self.detail
        )

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricSpec:
        return cls(
            str(data["name"]),
            str(data.get("unit", "")),
            data.get("direction", "none"),
            str(data.get("description", "")),
            bool(data.get("detail", False)),
        )


def undeclared(name: str) -> MetricSpec:
    """What a metric nobody declared gets: no unit, no better direction (never guessed)."""
    return MetricSpec(name, "", "none", "not declared by its evaluation")


@lru_cache(maxsize=512)
def _pattern(name: str) -> re.Pattern[str]:
    parts = re.split(r"\{[^{}]*\}", name)
    return re.compile(".+".join(re.escape(part) for part in parts))


def find_spec(specs: Iterable[MetricSpec], metric: str) -> MetricSpec | None:
    """The declaration of ``metric`` among ``specs``: an exact name first, then the first
    matching pattern, then (for ``<m>_ci_low``/``<m>_ci_high``) the declaration of ``<m>``;
    None when undeclared."""
    specs = tuple(specs)
    for spec in specs:
        if not spec.is_pattern and spec.name == metric:
            return spec
    for spec in specs:
        if spec.is_pattern and spec.matches(metric):
            return spec
    for suffix in CI_SUFFIXES:
        if metric.endswith(suffix):
            return find_spec(specs, metric.removesuffix(suffix))
    return None


def direction_of(columns: Mapping[str, MetricSpec] | None, column: str) -> Direction:
    """The declared direction of a leaderboard column; "none" when nothing declares it."""
    spec = (columns or {}).get(column)
    return spec.direction if spec is not None else "none"


def columns_to_json(columns: Mapping[str, MetricSpec]) -> dict[str, Any]:
    """The ``<suite>.columns.json`` payload: every column's declaration."""
    return {
        "schema_version": COLUMNS_SCHEMA_VERSION,
        "columns": {column: spec.as_dict() for column, spec in columns.items()},
    }


def columns_from_json(payload: Any) -> dict[str, MetricSpec]:
    """Declarations read back from a sidecar; {} for another schema version or a malformed
    payload (every column then has direction "none", nothing is guessed)."""
    if not isinstance(payload, dict) or payload.get("schema_version") != COLUMNS_SCHEMA_VERSION:
        return {}
    columns = payload.get("columns")
    if not isinstance(columns, dict):
        return {}
    out: dict[str, MetricSpec] = {}
    for column, data in columns.items():
        try:
            out[str(column)] = MetricSpec.from_dict(data)
        except (KeyError, TypeError, ValueError):
            continue  # one bad entry: that column has no direction, the others keep theirs
    return out


# What ``benchmark.evaluations.predictions.summary_metrics`` emits (clean evaluation,
# corruptions per cell, metrics recomputed from any evaluation's records).
SUMMARY_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("acc_pct", "%", "higher", "top-1 accuracy"),
    MetricSpec("nll", "nats", "lower", "mean negative log-likelihood -log p(y|x)"),
    MetricSpec("brier", "[0, 2]", "lower", "multi-class Brier score, sum over classes"),
    MetricSpec("ece_pct", "%", "lower", "expected calibration error, equal-width bins"),
    MetricSpec("maxce_pct", "%", "lower", "maximum calibration error over non-empty bins"),
    MetricSpec("adaece_pct", "%", "lower", "adaptive (equal-mass bins) ECE"),
    MetricSpec("cwece_pct", "%", "lower", "classwise ECE"),
    MetricSpec("auroc_pct", "%", "higher", "AUROC of correct vs wrong by confidence"),
    MetricSpec("aupr_success_pct", "%", "higher", "AUPR with correct predictions positive"),
    MetricSpec("aupr_error_pct", "%", "higher", "AUPR with wrong predictions positive"),
    MetricSpec("fpr95_pct", "%", "lower", "wrong predictions accepted at 95% TPR of correct"),
    MetricSpec("aurc_x1000", "x1000", "lower", "area under the risk-coverage curve"),
    MetricSpec("eaurc_x1000", "x1000", "lower", "AURC minus the optimal AURC"),
)
