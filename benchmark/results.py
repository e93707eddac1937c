"""Stored result summaries, typed per evaluation family.

A job stores ``metrics`` (name -> number) and ``extras`` (JSON) in its cache entry. Every
reader after the run -- the leaderboard, the trust checks, cross-model metrics, the report
and its figures -- reads them through these classes, so the meaning of an extras key (the
eps a robust accuracy was measured at, the per-corruption table, the job's flags) is written
down once here, not re-spelled as a string in five places. Each evaluation class names its
family's summary in ``Evaluation.Summary``; :meth:`ResultSummary.from_stored` builds it
from what the cache returns.

Why not store these dataclasses themselves: the stored JSON is the stable, versioned format
(``schema_version`` in the cache); a summary class is a view of it that can grow accessors
without changing a single cache key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

ROBUST_ACC = "robust_acc_pct"


@dataclass(frozen=True)
class ResultSummary:
    """What every evaluation's stored result has: its metrics and its extras."""

    metrics: Mapping[str, float]
    extras: Mapping[str, Any]

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> Self:
        """The summary of a stored ``result.json`` payload (``metrics`` and ``extras``)."""
        return cls(dict(stored.get("metrics", {})), dict(stored.get("extras", {})))

    @property
    def n_examples(self) -> int | None:
        value = self.extras.get("n_examples")
        return int(value) if isinstance(value, int | float) else None

    @property
    def flags(self) -> tuple[str, ...]:
        """Flags the job raised itself (``sanity`` checks, the runner's ``state_changed``)."""
        return tuple(self.extras.get("flags", []))

    @property
    def randomized(self) -> bool:
        """Whether the job saw the model's output change between passes."""
        return bool(self.extras.get("randomized", False))

    def flag_numbers(self, flag: str) -> dict[str, Any]:
        """The numbers behind one of :attr:`flags`: its entry in ``extras["checks"]`` (sanity
        checks), else ``{"detail": extras[flag]}`` (e.g. the changed parameter names)."""
        numbers = self.extras.get("checks", {}).get(flag)
        if numbers is None:
            numbers = {"detail": self.extras[flag]} if flag in self.extras else {}
        return {k: v for k, v in numbers.items() if k != "failed"}


@dataclass(frozen=True)
class AdversarialSummary(ResultSummary):
    """A robust accuracy (with its Wilson interval) at one eps, or at each eps of a sweep."""

    @property
    def eps_value(self) -> float | None:
        """The eps (in [0, 1] pixel units) of a single-eps result; None for a sweep."""
        value = self.extras.get("eps_value")
        return float(value) if isinstance(value, int | float) else None

    def robust_accuracy(self, prefix: str = "") -> dict[str, float] | None:
        """``robust_acc_pct`` with ``ci_low``/``ci_high`` (NaN when absent), of the metrics
        named ``<prefix>robust_acc_pct``; None when the result has no such metric."""
        if f"{prefix}{ROBUST_ACC}" not in self.metrics:
            return None
        return {
            ROBUST_ACC: self.metrics[f"{prefix}{ROBUST_ACC}"],
            "ci_low": self.metrics.get(f"{prefix}{ROBUST_ACC}_ci_low", math.nan),
            "ci_high": self.metrics.get(f"{prefix}{ROBUST_ACC}_ci_high", math.nan),
        }

    def sweep(self) -> list[tuple[float, str, dict[str, float]]]:
        """(eps value, eps label, robust accuracy) per eps of a sweep; [] for a single eps."""
        labels, values = self.extras.get("eps"), self.extras.get("eps_value")
        if not (isinstance(labels, list) and isinstance(values, list)):
            return []
        points = []
        for label, value in zip(labels, values, strict=True):
            if (acc := self.robust_accuracy(f"{label}_")) is not None:
                points.append((float(value), str(label), acc))
        return points


@dataclass(frozen=True)
class CorruptionSummary(ResultSummary):
    """Metrics per corruption and severity, and on the clean data, of one model."""

    @property
    def per_corruption(self) -> dict[str, dict[str, dict[str, float]]]:
        """corruption -> severity (as a string, JSON keys) -> metric -> value."""
        return self.extras["per_corruption"]

    @property
    def clean(self) -> dict[str, float]:
        """metric -> value on the uncorrupted images (what severity 0 means)."""
        return self.extras["clean"]
