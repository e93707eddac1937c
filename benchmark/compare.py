"""``python -m benchmark compare``: is model A really better than model B on this run?

Both models were evaluated on the same examples, so their results are *paired*, and a paired
test is far more sensitive than comparing two confidence intervals:

* accuracies (clean ``correct``, adversarial ``robust``, each eps of a sweep): exact McNemar
  test -- of the n examples where exactly one model is right, model A is right on b, B on
  c; under "equally accurate" b ~ Binomial(n, 1/2), and the two-sided exact p-value is
  min(1, 2 P(X <= min(b, c))) (no continuity correction needed: it is exact);
* ECE and AUROC: paired percentile bootstrap -- the same resamples of examples for both models;
  the interval of the difference and the two-sided p-value 2 (min(#{d <= 0}, #{d >= 0}) + 1)
  / (B + 1) over B resamples (never exactly 0), seeded by the suite seed so the numbers are
  reproducible.

Per-example records are read from the run's cache through its ``manifest.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.errors import BenchmarkError
from benchmark.evaluations.adversarial import THREAT_METRICS
from benchmark.evaluations.predictions import probabilities_from_records
from benchmark.metrics.bootstrap import resample_counts
from benchmark.metrics.calibration import batched_ece
from benchmark.metrics.failure import batched_auroc
from benchmark.metrics.significance import bootstrap_p_value, mcnemar_exact
from benchmark.metrics.specs import SUMMARY_METRICS, Direction, find_spec
from benchmark.runner.cache import RECORDS_FILE, entry_problem

KEY_COLUMNS = ("distribution", "corruption", "severity", "index")  # identifies a record's example


def _declared_direction(metric: str) -> Direction:
    """Which way is better for a compared statistic (``acc_pct``, ``robust_acc_pct`` or
    ``robust_acc_pct@<eps>``, ``ece_pct``, ``auroc_pct``): the declaration of the evaluations
    that report it (clean and adversarial), never a guess from the name."""
    spec = find_spec((*SUMMARY_METRICS, *THREAT_METRICS), metric.split("@")[0])
    return spec.direction if spec is not None else "none"


@dataclass
class Run:
    """A finished run: its manifest's suite and jobs."""

    manifest: Path
    suite: dict[str, Any]
    jobs: list[dict[str, Any]]

    @property
    def seed(self) -> int:
        return int(self.suite.get("seed", 0))

    def models(self) -> list[str]:
        return list(dict.fromkeys(job["model"] for job in self.jobs))

    def records(self, model: str, evaluation: str) -> pd.DataFrame | None:
        """The job's records, verified as the leaderboard's are (:func:`entry_problem`): a
        damaged or edited entry is an error naming it, never compared. ``result_dir`` is
        relative to the manifest's folder (older manifests: to the working directory)."""
        for job in self.jobs:
            if job["model"] == model and job["evaluation"] == evaluation:
                folder = self.manifest.parent / job["result_dir"]
                if not folder.is_dir() and Path(job["result_dir"]).is_dir():
                    folder = Path(job["result_dir"])
                problem = entry_problem(folder)
                if problem == "absent":
                    return None
                if problem is not None:
                    raise BenchmarkError(
                        f"{folder}: {problem}; rerun the suite to recompute it before comparing"
                    )
                return pd.read_parquet(folder / RECORDS_FILE)
        return None


def open_run(source: str | Path) -> Run:
    """The run behind ``source``: a run directory, its ``manifest.json``, a suite YAML, or a
    leaderboard CSV (whose run is ``runs/<csv stem>`` unless the suite says otherwise)."""
    source = Path(source)
    if source.suffix in (".yaml", ".yml"):
        from benchmark.suite import load_suite

        manifest = Path(load_suite(source).run_dir) / "manifest.json"
    elif source.suffix == ".csv":
        manifest = Path("runs") / source.stem / "manifest.json"
    elif source.is_dir():
        manifest = source / "manifest.json"
    else:
        manifest = source
    if not manifest.is_file():
        raise BenchmarkError(
            f"{source}: no run manifest found at {manifest}; run the suite first or pass the "
            "run directory (output_dir)"
        )
    try:
        data = json.loads(manifest.read_text())
        return Run(manifest, data["suite"], data["jobs"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BenchmarkError(f"{manifest}: not a run manifest ({exc})") from None


@dataclass
class MetricComparison:
    evaluation: str
    metric: str
    a: float
    b: float
    test: str
    p_value: float
    significant: bool
    n: int
    detail: dict[str, Any] = field(default_factory=dict)
    direction: Direction = "none"  # declared: which of a, b is better when they differ

    @property
    def difference(self) -> float:
        return self.a - self.b

    def better(self, model_a: str, model_b: str) -> str | None:
        """The better model by the declared direction; None when it declares none."""
        if self.direction == "none" or self.difference == 0:
            return None
        return model_a if (self.difference > 0) == (self.direction == "higher") else model_b


@dataclass
class Comparison:
    model_a: str
    model_b: str
    alpha: float
    rows: list[MetricComparison]
    skipped: list[str]

    def as_dict(self) -> dict[str, Any]:
        rows = [{**asdict(r), "difference": r.difference} for r in self.rows]
        return {
            "model_a": self.model_a,
            "model_b": self.model_b,
            "alpha": self.alpha,
            "rows": rows,
            "skipped": self.skipped,
        }


def _paired(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both models' records on their common examples, in the same order."""
    keys = [c for c in KEY_COLUMNS if c in a.columns and c in b.columns]
    if not keys:
        raise BenchmarkError("records without an 'index' column cannot be paired")
    left = a[keys].assign(_row_a=np.arange(len(a)))
    right = b[keys].assign(_row_b=np.arange(len(b)))
    joined = left.merge(right, on=keys)
    return a.iloc[joined["_row_a"].to_numpy()], b.iloc[joined["_row_b"].to_numpy()]


def _accuracy_columns(records: pd.DataFrame) -> list[tuple[str, str]]:
    """(records column, metric name) of every per-example accuracy in ``records``."""
    robust = [c for c in records.columns if c == "robust" or c.startswith("robust@")]
    if robust:
        return [(c, "robust_acc_pct" + c.removeprefix("robust")) for c in robust]
    return [("correct", "acc_pct")] if "correct" in records.columns else []


def _bootstrap_difference(
    statistic: Any, n: int, n_resamples: int, seed: int
) -> tuple[float, float, float]:
    """(low, high, p) of the paired difference A - B over bootstrap resamples."""
    rng = np.random.default_rng(seed)
    diffs = np.concatenate([statistic(counts) for counts in resample_counts(n, n_resamples, rng)])
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) == 0:
        return float("nan"), float("nan"), float("nan")
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(low), float(high), bootstrap_p_value(diffs)


def compare_records(
    evaluation: str,
    a: pd.DataFrame,
    b: pd.DataFrame,
    alpha: float,
    n_resamples: int,
    seed: int,
    n_bins: int = 15,
) -> list[MetricComparison]:
    """Every paired comparison of one evaluation's records for two models."""
    a, b = _paired(a, b)
    n = len(a)
    rows = []
    for column, metric in _accuracy_columns(a):
        if column not in b.columns:
            continue
        ca, cb = a[column].to_numpy(bool), b[column].to_numpy(bool)
        only_a, only_b, p = mcnemar_exact(ca, cb)
        rows.append(
            MetricComparison(
                evaluation,
                metric,
                100.0 * ca.mean(),
                100.0 * cb.mean(),
                "McNemar exact",
                p,
                p < alpha,
                n,
                {"only_a_right": only_a, "only_b_right": only_b},
                _declared_direction(metric),
            )
        )
    if "prob_0" in a.columns and "prob_0" in b.columns and n_resamples > 0 and n > 0:
        inputs = []
        for records in (a, b):
            probs = probabilities_from_records(records)
            inputs.append((probs.max(axis=1), probs.argmax(axis=1) == records["label"].to_numpy()))
        (conf_a, ok_a), (conf_b, ok_b) = inputs
        statistics = {
            "ece_pct": lambda w, c, k: 100.0 * batched_ece(c, k, w, n_bins),
            "auroc_pct": lambda w, c, k: 100.0 * batched_auroc(c, k, w),
        }
        for metric, fn in statistics.items():
            ones = np.ones((1, n))
            value_a, value_b = float(fn(ones, conf_a, ok_a)[0]), float(fn(ones, conf_b, ok_b)[0])

            def difference(w, fn=fn):
                return fn(w, conf_a, ok_a) - fn(w, conf_b, ok_b)

            low, high, p = _bootstrap_difference(difference, n, n_resamples, seed)
            rows.append(
                MetricComparison(
                    evaluation,
                    metric,
                    value_a,
                    value_b,
                    f"paired bootstrap ({n_resamples})",
                    p,
                    bool(np.isfinite(p) and p < alpha),
                    n,
                    {"difference_ci_low": low, "difference_ci_high": high},
                    _declared_direction(metric),
                )
            )
    return rows


def compare_models(
    run: Run, model_a: str, model_b: str, alpha: float = 0.05, n_resamples: int = 1000
) -> Comparison:
    """Paired tests of ``model_a`` against ``model_b`` on every evaluation of ``run`` that
    kept per-example correctness or probabilities."""
    models = run.models()
    for model in (model_a, model_b):
        if model not in models:
            raise BenchmarkError(
                f"no model '{model}' in {run.manifest} (models: {', '.join(models)})"
            )
    if model_a == model_b:
        raise BenchmarkError("compare: give two different models")
    rows: list[MetricComparison] = []
    skipped: list[str] = []
    evaluations = list(dict.fromkeys(job["evaluation"] for job in run.jobs))
    for evaluation in evaluations:
        a, b = run.records(model_a, evaluation), run.records(model_b, evaluation)
        if a is None or b is None:
            skipped.append(f"{evaluation} (no records)")
            continue
        found = compare_records(evaluation, a, b, alpha, n_resamples, run.seed)
        if not found:
            skipped.append(f"{evaluation} (no per-example accuracy or probabilities)")
        rows += found
    return Comparison(model_a, model_b, alpha, rows, skipped)


def format_comparison(comparison: Comparison) -> str:
    a, b = comparison.model_a, comparison.model_b
    table = pd.DataFrame(
        [
            {
                "evaluation": r.evaluation,
                "metric": r.metric,
                a: r.a,
                b: r.b,
                "A - B": r.difference,
                "test": r.test,
                "p": r.p_value,
                "significant": "yes" if r.significant else "no",
                "n": r.n,
            }
            for r in comparison.rows
        ]
    )
    lines = [f"A = {a}, B = {b}; significance level {comparison.alpha}"]
    if table.empty:
        lines.append("nothing to compare")
    else:
        lines.append(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        significant = [r for r in comparison.rows if r.significant]
        for r in significant:
            better = r.better(a, b)
            verdict = f"{better} is better" if better else "differs (no declared better side)"
            lines.append(f"{r.evaluation} {r.metric}: {verdict} (p = {r.p_value:.3g})")
        if not significant:
            lines.append(f"no difference is significant at {comparison.alpha}")
    if comparison.skipped:
        lines.append(f"not compared: {', '.join(comparison.skipped)}")
    return "\n".join(lines)
