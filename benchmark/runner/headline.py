"""One headline robust accuracy per threat model: the per-example worst case over every attack
evaluation of the suite at that norm and eps.

Each attack evaluation reports its own robust accuracy, so a model that fools PGD but not
AutoAttack has two numbers, and a reader picks one. The headline ``<norm>_<eps>_robust_acc_pct``
counts an example robust only if *every* evaluation at that threat model left it robust, on
the examples all of them evaluated (seeded subsets of one permutation are nested, so this is
the smallest subset), with its Wilson interval, the clean accuracy of those same examples
and the evaluation that left the fewest robust (``_by``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from benchmark.evaluations.adversarial import wilson_interval
from benchmark.metrics.specs import MetricSpec
from benchmark.results import AdversarialSummary, ResultSummary
from benchmark.trust.flags import Finding, register_flag

register_flag(
    "weaker_attack_breaks_more",
    "A weaker attack (e.g. one-step FGSM) breaks examples that a stronger one at the same "
    "norm and eps (PGD, AutoAttack) left robust, on more than 2% of their common examples "
    "(and at least 3): the stronger attack is failing on this model (noise, masked or "
    "misleading gradients), so its number is not an upper bound on the truth.",
)
# Attack kinds in order of strength; Square ("black-box") has its own check against PGD.
STRENGTH = {"single-step": 0, "iterative": 1, "ensemble": 2}
MIN_EXAMPLES, MIN_FRACTION = 3, 0.02

HEADLINE_METRICS: dict[str, MetricSpec] = {
    "robust_acc_pct": MetricSpec(
        "robust_acc_pct",
        "%",
        "higher",
        "worst case over every attack evaluation of this threat model, per example, on the "
        "examples they all evaluated",
    ),
    "robust_acc_pct_ci_low": MetricSpec("robust_acc_pct_ci_low", "%", "higher", "95% Wilson"),
    "robust_acc_pct_ci_high": MetricSpec("robust_acc_pct_ci_high", "%", "higher", "95% Wilson"),
    "subset_clean_acc_pct": MetricSpec(
        "subset_clean_acc_pct",
        "%",
        "higher",
        "clean accuracy on the same examples (the headline's ceiling)",
        detail=True,
    ),
    "n_examples": MetricSpec(
        "n_examples", "count", "none", "examples every evaluation of it covered", detail=True
    ),
    "by": MetricSpec(
        "by",
        "evaluation name",
        "none",
        "the evaluation that left the fewest robust on those examples (text)",
        detail=True,
    ),
}


def threat_key(summary: AdversarialSummary) -> tuple[str, float] | None:
    """(norm, eps value) of a single-eps attack result; None for sweeps and non-attacks."""
    norm, eps = summary.extras.get("norm"), summary.eps_value
    if not isinstance(norm, str) or eps is None:
        return None
    return norm, round(eps, 12)


def threat_groups(
    results: dict[str, dict[str, ResultSummary]],
) -> dict[tuple[str, float], list[tuple[str, str]]]:
    """(norm, eps value) -> [(evaluation name, eps as written)] of the single-eps attack
    evaluations; the threat model is the evaluation's, so its first row's result tells it."""
    groups: dict[tuple[str, float], list[tuple[str, str]]] = {}
    for name, per_row in results.items():
        summary = next(iter(per_row.values()), None)
        if isinstance(summary, AdversarialSummary) and (key := threat_key(summary)):
            groups.setdefault(key, []).append((name, str(summary.extras.get("eps"))))
    return groups


def headline_columns(
    results: dict[str, dict[str, ResultSummary]],
    records: Callable[[str, str], pd.DataFrame],
) -> tuple[dict[str, dict[str, object]], dict[str, MetricSpec]]:
    """{row: {column: value}} and the columns' declarations. ``results``: evaluation name ->
    row -> summary; ``records(evaluation, row)``: that result's per-example records."""
    values: dict[str, dict[str, object]] = {}
    specs: dict[str, MetricSpec] = {}
    for (norm, _), members in sorted(threat_groups(results).items()):
        prefix = f"{norm.lower()}_{members[0][1]}"
        for name_spec in HEADLINE_METRICS.values():
            specs[f"{prefix}_{name_spec.name}"] = name_spec
        rows = set.intersection(*(set(results[name]) for name, _ in members))
        for row in sorted(rows):
            values.setdefault(row, {}).update(_worst_case(prefix, members, row, records))
    return values, specs


def _worst_case(
    prefix: str,
    members: list[tuple[str, str]],
    row: str,
    records: Callable[[str, str], pd.DataFrame],
) -> dict[str, object]:
    frames = {name: records(name, row).set_index("index") for name, _ in members}
    # a step that attacked nothing on this row (the automatic fallbacks on an unflagged row)
    # has no per-example verdict and takes no part
    frames = {name: frame for name, frame in frames.items() if "robust" in frame.columns}
    common = sorted(set.intersection(*(set(f.index) for f in frames.values())))
    robust = np.ones(len(common), dtype=bool)
    per_evaluation = {}
    for name, frame in frames.items():
        own = frame.loc[common, "robust"].to_numpy(dtype=bool)
        per_evaluation[name] = int(own.sum())
        robust &= own
    clean = next(iter(frames.values())).loc[common, "clean_correct"].to_numpy(dtype=bool)
    n, k = len(common), int(robust.sum())
    low, high = wilson_interval(k, n)
    return {
        f"{prefix}_robust_acc_pct": 100.0 * k / n if n else math.nan,
        f"{prefix}_robust_acc_pct_ci_low": 100.0 * low,
        f"{prefix}_robust_acc_pct_ci_high": 100.0 * high,
        f"{prefix}_subset_clean_acc_pct": 100.0 * float(clean.mean()) if n else math.nan,
        f"{prefix}_n_examples": float(n),
        f"{prefix}_by": min(per_evaluation, key=lambda e: per_evaluation[e]),
    }


def weaker_breaks_stronger(
    results: dict[str, dict[str, ResultSummary]],
    records: Callable[[str, str], pd.DataFrame],
    kinds: dict[str, str | None],
) -> list[Finding]:
    """Findings where an attack of a weaker kind broke, on the examples both evaluated,
    examples that an attack of a stronger kind at the same threat model left robust.
    ``records`` is called once per (evaluation, row) pair compared: memoize it (the runner
    does, and shares it with :func:`headline_columns`)."""
    findings = []
    for members in threat_groups(results).values():
        names = [name for name, _ in members if kinds.get(name) in STRENGTH]
        for weak in names:
            for strong in names:
                if STRENGTH[kinds[weak] or ""] >= STRENGTH[kinds[strong] or ""]:
                    continue
                for row in sorted(set(results[weak]) & set(results[strong])):
                    a = records(weak, row).set_index("index")
                    b = records(strong, row).set_index("index")
                    common = a.index.intersection(b.index)
                    broken = ~a.loc[common, "robust"].to_numpy(bool) & a.loc[
                        common, "clean_correct"
                    ].to_numpy(bool)
                    missed = int((broken & b.loc[common, "robust"].to_numpy(bool)).sum())
                    if missed >= MIN_EXAMPLES and missed > MIN_FRACTION * len(common):
                        numbers = {"examples": missed, "of": len(common)}
                        source = f"{weak} vs {strong}"
                        findings.append(Finding(row, "weaker_attack_breaks_more", source, numbers))
    return findings
