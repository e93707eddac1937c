"""Assemble the report's context from cached results and render the Jinja2 template."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import pandas as pd

from benchmark.claims import ClaimResult
from benchmark.leaderboard import FLAG_MARK, flagged_rows, is_robustness_column
from benchmark.metrics.specs import MetricSpec
from benchmark.plots.robustness_scatter import robustness_scatter, threat_prefixes
from benchmark.report.figures import eps_curve_uri, figure_uri, reliability_uri, severity_uris
from benchmark.results import CorruptionSummary
from benchmark.runner.cache import ResultCache
from benchmark.runner.jobs import Job
from benchmark.suite.schema import Suite
from benchmark.trust.checks import TrustInputs, eps_series
from benchmark.trust.flags import FLAG_EXPLANATIONS, Finding

TEXT_COLUMNS = ("model", "arch", "flags", "source", "randomized")


@dataclass
class Column:
    name: str
    numeric: bool
    # declared direction ("higher", "lower", "none"): the first click on a header sorts best
    # first; "none" (counts, diagnostics, undeclared) sorts ascending and claims no best
    direction: str = "none"
    unit: str = ""
    description: str = ""

    @property
    def title(self) -> str:
        """Header tooltip: what the column is, its unit and which way is better."""
        better = {"higher": "higher is better", "lower": "lower is better"}.get(self.direction)
        parts = [self.description, f"unit: {self.unit}" if self.unit else "", better or ""]
        return "; ".join(p for p in parts if p)


@dataclass
class Cell:
    text: str
    value: str  # what sorting compares: a number as text, "" for missing
    link: str = ""  # anchor of the model's section (model column)


@dataclass
class Figure:
    title: str
    uri: str


@dataclass
class ModelSection:
    name: str
    anchor: str
    flags: list[str]
    findings: list[Finding]
    figures: list[Figure] = field(default_factory=list)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def leaderboard_table(
    frame: pd.DataFrame, columns: Mapping[str, MetricSpec] | None = None
) -> tuple[list[Column], list[list[Cell]]]:
    """Columns and cells of the HTML table: 95% intervals folded into their metric as
    ``value [low, high]`` (sorting still uses the value), empty cells for missing numbers.
    ``columns`` (column -> declaration, from the runner) gives each header its direction."""
    declared = columns or {}
    names = [c for c in frame.columns if not str(c).endswith(("_ci_low", "_ci_high"))]
    first = [c for c in ("model", "flags") if c in names]
    names = first + [c for c in names if c not in first]
    table: list[Column] = []
    for name in names:
        numeric = name not in TEXT_COLUMNS and pd.api.types.is_numeric_dtype(frame[name])
        spec = declared.get(name) if numeric else None
        if spec is None:
            table.append(Column(str(name), bool(numeric)))
        else:
            table.append(Column(str(name), True, spec.direction, spec.unit, spec.description))
    rows = []
    for (_, record), flagged in zip(frame.iterrows(), flagged_rows(frame), strict=True):
        cells = []
        for column in table:
            raw = record[column.name]
            if not column.numeric:
                text = "" if raw is None or (isinstance(raw, float) and math.isnan(raw)) else raw
                link = _anchor(str(text)) if column.name == "model" else ""
                cells.append(Cell(str(text), str(text), link))
                continue
            number = _number(raw)
            if number is None:
                cells.append(Cell("", ""))
                continue
            text = f"{number:.4g}"
            low = _number(record.get(f"{column.name}_ci_low"))
            high = _number(record.get(f"{column.name}_ci_high"))
            if low is not None and high is not None:
                text += f" [{low:.3g}, {high:.3g}]"
            if flagged and is_robustness_column(column.name):
                text += FLAG_MARK
            cells.append(Cell(text, repr(number)))
        rows.append(cells)
    return table, rows


def _anchor(name: str) -> str:
    return "model-" + "".join(ch if ch.isalnum() else "-" for ch in name)


def model_sections(
    suite: Suite,
    jobs: list[Job],
    cache: ResultCache,
    frame: pd.DataFrame,
    findings: list[Finding],
    inputs: TrustInputs | None,
) -> list[ModelSection]:
    """Per model: its flags with numbers, reliability diagrams of every evaluation whose
    records carry probabilities, its robust accuracy vs eps, its robustness-ranking bins."""
    series = eps_series(inputs) if inputs is not None else []
    sections = []
    for _, row in frame.iterrows():
        name = str(row["model"])
        flags = [f for f in str(row.get("flags") or "").split(",") if f]
        own = [f for f in findings if f.model == name]
        section = ModelSection(name, _anchor(name), flags, own)
        for job in (j for j in jobs if j.row_name == name):
            if not cache.has(job.key):
                continue
            folder = cache.path(job.key)
            declared = job.evaluation.resolved.cls.report_figures  # the evaluation's word
            if declared:
                for artifact, caption in declared.items():
                    if (folder / artifact).is_file():
                        uri = "data:image/png;base64," + _b64(folder / artifact)
                        section.figures.append(Figure(f"{job.evaluation_name}: {caption}", uri))
                continue
            records = cache.load_records(job.key)
            if "prob_0" in records.columns and "corruption" not in records.columns:
                n_bins = int(getattr(job.evaluation.resolved.params, "n_bins", 15))
                title = f"{name}: {job.evaluation_name}"
                uri = reliability_uri(records, n_bins, title)
                section.figures.append(Figure(f"{job.evaluation_name}: reliability diagram", uri))
        mine = {source: points for source, model, points in series if model == name}
        if mine:
            uri = eps_curve_uri(mine, f"{name}: robust accuracy vs eps")
            section.figures.append(Figure("robust accuracy vs eps", uri))
        sections.append(section)
    return sections


def _b64(path: Any) -> str:
    import base64

    return base64.b64encode(path.read_bytes()).decode("ascii")


def suite_figures(inputs: TrustInputs | None) -> list[Figure]:
    """Figures comparing all models: corruption severity curves, robustness vs eps."""
    if inputs is None:
        return []
    figures = []
    for view in inputs.views:
        results = {
            m: r
            for m, r in view.results.items()
            if isinstance(r, CorruptionSummary) and "per_corruption" in r.extras
        }
        if results:
            for uri in severity_uris(results, view.name):
                figures.append(Figure(f"{view.name}: corruption severity", uri))
    by_source: dict[str, dict[str, Any]] = {}
    for source, model, points in eps_series(inputs):
        by_source.setdefault(source, {})[model] = points
    for source, curves in by_source.items():
        figures.append(Figure(f"{source}: robust accuracy vs eps", eps_curve_uri(curves, source)))
    return figures


def scatter_figures(frame: pd.DataFrame) -> list[Figure]:
    """RobustBench's figure per headline threat model: clean vs robust accuracy per model."""
    figures = []
    for prefix in threat_prefixes(frame):
        drawn = robustness_scatter(frame, prefix)
        if drawn is not None:
            figures.append(Figure(f"{prefix}: clean vs robust accuracy", figure_uri(drawn)))
    return figures


def render_report(context: dict[str, Any]) -> str:
    """Render ``template.html.j2`` (autoescaped) with ``context``."""
    import jinja2

    source = resources.files("benchmark.report").joinpath("template.html.j2").read_text()
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=1, default=str)
    return env.from_string(source).render(**context)


def build_report(
    suite: Suite,
    jobs: list[Job],
    cache: ResultCache,
    frame: pd.DataFrame,
    findings: list[Finding],
    inputs: TrustInputs | None = None,
    columns: Mapping[str, MetricSpec] | None = None,
    claims: Sequence[ClaimResult] = (),
) -> str:
    """The HTML report; ``columns`` are the column declarations (``RunSummary.columns``),
    ``claims`` the suite's checked claims."""
    table, rows = leaderboard_table(frame, columns)
    used = sorted(
        {f.flag for f in findings}
        | {f for v in frame.get("flags", []) for f in str(v).split(",") if f}
    )
    return render_report(
        {
            "suite": suite,
            "columns": table,
            "rows": rows,
            "findings": findings,
            "flag_explanations": {flag: FLAG_EXPLANATIONS.get(flag, "") for flag in used},
            "all_flags": dict(sorted(FLAG_EXPLANATIONS.items())),
            "sections": model_sections(suite, jobs, cache, frame, findings, inputs),
            "suite_figures": scatter_figures(frame) + suite_figures(inputs),
            "claims": list(claims),
        }
    )
