"""Cross-evaluation trust checks, registered declaratively.

Each check is a function of :class:`TrustInputs` (the suite's evaluations with their cached
result summaries) returning :class:`~benchmark.trust.flags.Finding` objects: the flag, the
model and the numbers behind it. :func:`run_checks` runs every registered check plus the
per-job flags the evaluations raised themselves (``sanity``, ``state_changed``) and adds the
flag names to the leaderboard's ``flags`` column.

"Beyond the CI" always means: one attack's point estimate lies outside the other's 95%
Wilson interval, so a flag is not raised by sampling noise of a few examples.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from benchmark.registry import StrictParams
from benchmark.results import ROBUST_ACC as ACC
from benchmark.results import AdversarialSummary, ResultSummary
from benchmark.trust.flags import Finding, register_flag


@dataclass(frozen=True)
class EvaluationView:
    """One evaluation of the suite as the checks see it."""

    name: str
    type: str
    params: StrictParams
    kind: str | None  # Attack.kind, None when not an attack
    adversarial: bool
    results: dict[str, ResultSummary]  # row name -> cached summary of the family's type

    @property
    def norm(self) -> str | None:
        return getattr(self.params, "norm", None)

    def eps_value(self, row: str) -> float | None:
        """The eps of a single-eps attack result; None otherwise (sweeps, non-attacks)."""
        result = self.results[row]
        return result.eps_value if isinstance(result, AdversarialSummary) else None

    def robust_accuracy(self, row: str) -> dict[str, float] | None:
        """Robust accuracy with its interval of an attack result; None otherwise."""
        result = self.results[row]
        return result.robust_accuracy() if isinstance(result, AdversarialSummary) else None


@dataclass(frozen=True)
class TrustInputs:
    views: list[EvaluationView]
    randomized: dict[str, bool]  # row name -> declared randomized


Check = Callable[[TrustInputs], list[Finding]]
CHECKS: dict[str, Check] = {}


def register_check(name: str, explanation: str) -> Callable[[Check], Check]:
    """Register a cross-evaluation check raising flag ``name`` (explained to readers)."""
    register_flag(name, explanation)

    def decorator(fn: Check) -> Check:
        CHECKS[name] = fn
        return fn

    return decorator


def _pairs(inputs: TrustInputs, kind_a: str, kind_b: str):
    """(view a, view b, row) for every model evaluated by an attack of ``kind_a`` and one of
    ``kind_b`` on the same threat model (norm and eps)."""
    for a in inputs.views:
        if a.kind != kind_a:
            continue
        for b in inputs.views:
            if b.kind != kind_b or b.norm != a.norm:
                continue
            for row in sorted(set(a.results) & set(b.results)):
                ea, eb = a.eps_value(row), b.eps_value(row)
                if ea is None or eb is None or not math.isclose(ea, eb, rel_tol=1e-9):
                    continue
                ma, mb = a.robust_accuracy(row), b.robust_accuracy(row)
                if ma is not None and mb is not None:
                    yield a, b, row, ma, mb


def _ci(acc: dict[str, float], bound: str) -> float:
    """One end of the accuracy's 95% interval, the point estimate when there is none."""
    value = acc[bound]
    return value if math.isfinite(value) else acc[ACC]


@register_check(
    "whitebox_weaker_than_blackbox",
    "A black-box attack that only queries the outputs (Square) finds more adversarial "
    "examples than a white-box gradient attack (PGD/APGD) with the same budget, by more than "
    "the black-box attack's 95% interval. With working gradients the white-box attack should "
    "be at least as strong: the gradients are masked or obfuscated.",
)
def whitebox_weaker_than_blackbox(inputs: TrustInputs) -> list[Finding]:
    findings = []
    for white, black, row, mw, mb in _pairs(inputs, "iterative", "black-box"):
        if _ci(mb, "ci_high") < mw[ACC]:
            numbers = {white.name: mw, black.name: mb, "gap_pct": mw[ACC] - mb[ACC]}
            source = f"{white.name} vs {black.name}"
            findings.append(Finding(row, "whitebox_weaker_than_blackbox", source, numbers))
    return findings


@register_check(
    "pgd_weaker_than_autoattack",
    "PGD leaves a robust accuracy above AutoAttack's on the same threat model, and the two "
    "95% intervals do not overlap. A large gap means PGD's loss or step size does not suit "
    "this model (often gradient masking of the cross-entropy loss); trust AutoAttack's number.",
)
def pgd_weaker_than_autoattack(inputs: TrustInputs) -> list[Finding]:
    findings = []
    for pgd, aa, row, mp, ma in _pairs(inputs, "iterative", "ensemble"):
        if _ci(mp, "ci_low") > _ci(ma, "ci_high"):
            numbers = {pgd.name: mp, aa.name: ma, "gap_pct": mp[ACC] - ma[ACC]}
            findings.append(
                Finding(row, "pgd_weaker_than_autoattack", f"{pgd.name} vs {aa.name}", numbers)
            )
    return findings


def eps_series(
    inputs: TrustInputs,
) -> list[tuple[str, str, list[tuple[float, str, dict[str, float]]]]]:
    """(source, row, [(eps, label, accuracy numbers)]) per robustness-vs-eps series: every
    ``eps_sweep`` result, and every group of single-eps evaluations of one attack type with
    the same settings (norm, steps, ...) at two or more eps."""
    series = []
    for view in inputs.views:
        for row, result in view.results.items():
            if isinstance(result, AdversarialSummary) and (points := result.sweep()):
                series.append((view.name, row, points))
    groups: dict[tuple[str, str], list[EvaluationView]] = {}
    for view in inputs.views:
        if view.adversarial and not isinstance(getattr(view.params, "eps", None), list):
            # same attack with the same settings, only eps (and the subset size) differing
            settings = view.params.model_dump(exclude={"eps", "n_examples", "batch_size"})
            key = (view.type, json.dumps(settings, sort_keys=True, default=str))
            groups.setdefault(key, []).append(view)
    for views in groups.values():
        if len(views) < 2:
            continue
        rows = set.intersection(*(set(v.results) for v in views))
        for row in sorted(rows):
            points = [
                (point_eps, v.name, acc)
                for v in views
                if (acc := v.robust_accuracy(row)) is not None
                and (point_eps := v.eps_value(row)) is not None
            ]
            series.append((" / ".join(v.name for v in views), row, points))
    return series


@register_check(
    "robustness_increases_with_eps",
    "On a sweep over eps, robust accuracy at a larger eps lies above the 95% interval of the "
    "accuracy at a smaller eps. Every adversarial example inside a small ball is inside the "
    "larger one, so accuracy can only fall as eps grows: the attack fails at large eps "
    "(e.g. step size or gradient masking), and the large-eps numbers are not trustworthy.",
)
def robustness_increases_with_eps(inputs: TrustInputs) -> list[Finding]:
    findings = []
    for source, row, points in eps_series(inputs):
        points = sorted(points, key=lambda p: p[0])
        for i, (eps_i, label_i, small) in enumerate(points):
            for eps_j, label_j, large in points[i + 1 :]:
                high = small["ci_high"] if math.isfinite(small["ci_high"]) else small[ACC]
                if eps_j > eps_i and large[ACC] > high:
                    numbers = {f"eps {label_i}": small, f"eps {label_j}": large}
                    findings.append(Finding(row, "robustness_increases_with_eps", source, numbers))
    return findings


@register_check(
    "randomized_without_eot",
    "The model is declared randomized (its output changes between passes) but an attack ran "
    "with eot_samples = 1: every attack step followed a single noisy gradient. Use "
    "expectation over transformation (eot_samples > 1) or the robust accuracy is inflated.",
)
def randomized_without_eot(inputs: TrustInputs) -> list[Finding]:
    findings = []
    for view in inputs.views:
        eot = getattr(view.params, "eot_samples", None)
        if not view.adversarial or eot is None or eot > 1 or view.kind == "black-box":
            continue  # a score-based attack uses no gradients: EOT does not apply
        for row, result in sorted(view.results.items()):
            if inputs.randomized.get(row) or result.randomized:
                numbers = {"eot_samples": eot, "n_samples": getattr(view.params, "n_samples", None)}
                findings.append(Finding(row, "randomized_without_eot", view.name, numbers))
    return findings


def job_findings(inputs: TrustInputs) -> list[Finding]:
    """Flags raised by the jobs themselves (``sanity`` checks, the runner's
    ``state_changed``), with their numbers from the result's extras."""
    findings = []
    for view in inputs.views:
        for row, result in sorted(view.results.items()):
            for flag in result.flags:
                findings.append(Finding(row, flag, view.name, result.flag_numbers(flag)))
    return findings


def run_checks(inputs: TrustInputs) -> list[Finding]:
    """Every job-level and registered cross-evaluation finding, sorted by model and flag."""
    findings = job_findings(inputs)
    for check in CHECKS.values():
        findings += check(inputs)
    return sorted(findings, key=lambda f: (f.model, f.flag, f.source))


def add_flags(frame: pd.DataFrame, findings: list[Finding]) -> pd.DataFrame:
    """The leaderboard with every finding's flag in its row's ``flags`` column
    (comma-separated, sorted, no duplicates)."""
    frame = frame.copy()
    if "flags" not in frame.columns:
        frame["flags"] = ""
    by_model: dict[str, set[str]] = {}
    for finding in findings:
        by_model.setdefault(finding.model, set()).add(finding.flag)
    merged = []
    for model, existing in zip(frame["model"], frame["flags"], strict=True):
        flags = {f for f in str(existing or "").split(",") if f} | by_model.get(model, set())
        merged.append(",".join(sorted(flags)))
    frame["flags"] = merged
    return frame


def format_findings(findings: list[Finding]) -> str:
    """Terminal text: per model, each flag with where it came from, why it matters and the
    numbers behind it."""
    if not findings:
        return "no flags raised"
    lines: list[str] = []
    for model in sorted({f.model for f in findings}):
        own = [f for f in findings if f.model == model]
        lines.append(f"{model}: {', '.join(sorted({f.flag for f in own}))}")
        for finding in own:
            lines.append(f"  {finding.flag} (from {finding.source})")
            lines.append(f"    {finding.explanation}")
            for key, value in finding.numbers.items():
                lines.append(f"    {key}: {_short(value)}")
    return "\n".join(lines)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_short(v)}" for k, v in value.items())
    return str(value)
