"""Summary scores of corruption results relative to a reference model.

Hendrycks & Dietterich (2019) define the corruption error of model f on corruption c as
``CE_c = sum_s E_{s,c}^f / sum_s E_{s,c}^ref`` (spatial-smoothing paper, Eq. 34) and mCE as its
mean over corruptions; the spatial-smoothing paper applies the same normalization to NLL
(mCNLL, Eq. 35) and ECE (mCECE, Eq. 36). Relative mCE (Hendrycks & Dietterich, Sec. 3)
subtracts clean error first: ``sum_s (E_{s,c} - E_clean) / sum_s (E_ref_{s,c} - E_ref_clean)``.
Sums run over the severities evaluated (all five in the papers). Reported in percent.

Input format, per model: ``per_corruption[corruption][str(severity)] = {metric: value}`` as
written by the ``corruptions`` evaluation (``acc_pct``, ``nll``, ``ece_pct``, ...), and
``clean = {metric: value}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

PerCorruption = dict[str, dict[str, dict[str, float]]]


def _error(metrics: dict[str, float]) -> float:
    return 100.0 - metrics["acc_pct"]


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator != 0 else math.nan


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def relative_scores(
    model: PerCorruption,
    reference: PerCorruption,
    model_clean: dict[str, float] | None = None,
    reference_clean: dict[str, float] | None = None,
    corruptions: Iterable[str] | None = None,
) -> dict[str, float]:
    """``mce_pct``, ``mcnll_pct``, ``mcece_pct`` (and ``relative_mce_pct`` when clean metrics
    are given) of ``model`` against ``reference`` over their common corruptions/severities
    (only those in ``corruptions`` when given)."""
    getters: dict[str, Any] = {
        "mce_pct": _error,
        "mcnll_pct": lambda m: m["nll"],
        "mcece_pct": lambda m: m["ece_pct"],
    }
    per_type: dict[str, list[float]] = {key: [] for key in getters}
    relative: list[float] = []
    common = set(model) & set(reference)
    if corruptions is not None:
        common &= set(corruptions)
    for corruption in sorted(common):
        severities = sorted(set(model[corruption]) & set(reference[corruption]))
        if not severities:
            continue
        ours = [model[corruption][s] for s in severities]
        theirs = [reference[corruption][s] for s in severities]
        for key, get in getters.items():
            total = sum(get(m) for m in ours)
            per_type[key].append(100.0 * _ratio(total, sum(get(m) for m in theirs)))
        if model_clean is not None and reference_clean is not None:
            ours_gap = sum(_error(m) - _error(model_clean) for m in ours)
            theirs_gap = sum(_error(m) - _error(reference_clean) for m in theirs)
            relative.append(100.0 * _ratio(ours_gap, theirs_gap))
    scores = {key: _mean(values) for key, values in per_type.items()}
    if model_clean is not None and reference_clean is not None:
        scores["relative_mce_pct"] = _mean(relative)
    return scores
