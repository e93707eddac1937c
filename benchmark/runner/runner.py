"""Run a suite: expand jobs, skip cached ones, hand the rest to an executor, cache each result
as it arrives, write the leaderboard.

Models are materialized lazily by the workers: a rerun whose jobs are all cached loads no data
and builds no model. Each job is seeded from (suite seed, job key), so its numbers do not
depend on which other jobs ran before it, where it ran, or which were reused from the cache.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from filelock import FileLock, Timeout

from benchmark.claims import ClaimResult, check_claims, write_claims
from benchmark.errors import BenchmarkError
from benchmark.evaluations.capabilities import CrossModel, SuiteFigures
from benchmark.leaderboard import (
    leaderboard_column_spec,
    leaderboard_owner_conflict,
    write_leaderboard,
)
from benchmark.metrics.specs import MetricSpec, undeclared
from benchmark.report.markdown import headline_table_columns, markdown_leaderboard
from benchmark.results import ResultSummary
from benchmark.runner.cache import ResultCache
from benchmark.runner.executors import make_executor
from benchmark.runner.headline import headline_columns, weaker_breaks_stronger
from benchmark.runner.jobs import Job, expand_jobs, training_job
from benchmark.runner.sharding import merge_shards, plan_tasks
from benchmark.runner.worker import SuiteData, materialize_model
from benchmark.suite.schema import ExecutorSpec, Suite
from benchmark.trust import Finding
from benchmark.trust.checks import EvaluationView, TrustInputs, add_flags, run_checks
from benchmark.utils import (
    format_duration,
    resolve_device,
    stable_hash,
    write_text_atomic,
    writing,
)
from models import MODELS
from models.training import checkpoint_path

Logger = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class RunSummary:
    leaderboard: pd.DataFrame
    executed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # trust flags with their numbers
    trust: TrustInputs | None = None  # what the trust checks saw (for the report)
    missing: list[str] = field(default_factory=list)  # jobs neither cached nor run (select)
    # leaderboard column -> its evaluation's declaration (unit, direction) of that metric
    columns: dict[str, MetricSpec] = field(default_factory=dict)
    claims: list[ClaimResult] = field(default_factory=list)  # the suite's claims, checked


def train_suite(
    suite: Suite,
    names: list[str] | None = None,
    *,
    progress: bool = True,
    log: Logger = _stderr,
) -> list[Path]:
    """Train (or find in the cache) the suite's models that have a ``training`` section, or
    only those named in ``names``; evaluate nothing. Returns the checkpoint paths."""
    trainable = [m for m in suite.models if m.training is not None]
    if names:
        known = {m.row_name: m for m in suite.models}
        for name in names:
            if name not in known:
                raise BenchmarkError(
                    f"--model: no model named '{name}' in suite '{suite.name}' "
                    f"(models: {', '.join(known)})"
                )
            if known[name].training is None:
                raise BenchmarkError(f"--model: model '{name}' has no 'training' section")
        trainable = [m for m in trainable if m.row_name in names]
    device = resolve_device(suite.device)
    torch.use_deterministic_algorithms(True, warn_only=True)
    data = SuiteData(suite)
    folder = Path(suite.cache_root) / "checkpoints"
    paths = []
    log(f"suite '{suite.name}': training {len(trainable)} model(s) on {device}, cache {folder}")
    for spec in trainable:
        members = spec.members() or [spec]  # an ensemble trains one checkpoint per member
        own = [checkpoint_path(training_job(member, suite), folder) for member in members]
        cached = all(path.is_file() for path in own)
        started = time.perf_counter()
        materialize_model(spec, suite, data, device, progress)
        how = "cached" if cached else f"trained in {time.perf_counter() - started:.1f}s"
        log(f"  model {spec.row_name}: {how}")
        paths += own
    return paths


def run_suite(
    suite: Suite,
    *,
    progress: bool = True,
    log: Logger = _stderr,
    executor: ExecutorSpec | None = None,
    select: Callable[[Job], bool] | None = None,
    write: bool = True,
) -> RunSummary:
    """Run the suite's uncached tasks (only those of jobs ``select`` accepts, if given) on
    ``executor`` (default: the suite's ``executor`` section), caching each result as it
    arrives; collect the leaderboard with its trust flags and, if ``write``, write leaderboard
    files (CSV, Markdown, HTML report), plots, ``checks.json`` and the manifest."""
    with run_dir_lock(suite) if write else contextlib.nullcontext():
        return _run_suite(suite, progress, log, executor, select, write)


@contextlib.contextmanager
def run_dir_lock(suite: Suite) -> Iterator[None]:
    """Hold ``<output_dir>/.run.lock`` for a writing run: a second run of the same output
    folder started meanwhile is refused in one line (checking the manifest and then writing
    it would otherwise interleave the two runs' manifests and plots)."""
    folder = Path(suite.run_dir)
    with writing(folder):
        folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / ".run.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise BenchmarkError(
            f"output_dir '{suite.run_dir}': another run is writing it (lock {lock.lock_file}); "
            "wait for it to finish (its results are cached and shared) or give this run its "
            "own output_dir"
        ) from None
    try:
        yield
    finally:
        lock.release()


def _run_suite(
    suite: Suite,
    progress: bool,
    log: Logger,
    executor: ExecutorSpec | None,
    select: Callable[[Job], bool] | None,
    write: bool,
) -> RunSummary:
    spec = executor or suite.executor
    device = resolve_device(suite.device)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if write:
        check_run_dir(suite)  # before any job runs: the outputs would overwrite another's
        conflict = leaderboard_owner_conflict(suite.leaderboard_dir, suite.name, suite._source)
        if conflict:
            log(conflict)
    cache = ResultCache(suite.cache_root)
    jobs = expand_jobs(suite, device.type)
    summary = RunSummary(leaderboard=pd.DataFrame())
    summary.reused = [job.label for job in jobs if cache.has(job.key)]
    if select is not None:
        summary.missing = [j.label for j in jobs if not cache.has(j.key) and not select(j)]
    selected = jobs if select is None else [j for j in jobs if select(j)]
    pending, shards = plan_tasks(suite, selected, cache)
    log(
        f"suite '{suite.name}': {len(jobs)} job(s), {len(pending)} task(s) to run on {device} "
        f"({spec.kind} executor), cache {cache.root}"
    )
    started = time.perf_counter()
    with make_executor(spec, suite, device, progress) as runner:
        for outcome in runner.run(pending):
            task = outcome.item.task
            if outcome.error is not None:
                raise BenchmarkError(outcome.error)
            assert outcome.result is not None
            cache.put(
                task.key, outcome.result, {"model": task.job.row_name, "evaluation": task.label}
            )
            summary.executed.append(task.label)
            done = len(summary.executed)
            spent = time.perf_counter() - started
            left = "" if done == len(pending) else f" (ETA {eta(spent, done, len(pending))})"
            log(f"  [{done}/{len(pending)}] {task.label}: {outcome.seconds:.1f}s{left}")
    for job in selected:
        if job.key in shards:  # every shard is cached now: merge into the job's result
            merged = merge_shards(job, shards[job.key], cache)
            cache.put(job.key, merged, {"model": job.row_name, "evaluation": job.label})
    log(f"  {len(summary.executed)} job(s) run, {len(summary.reused)} reused from cache")

    summary.leaderboard, summary.findings, summary.trust, summary.columns = collect(
        suite, jobs, cache
    )
    summary.claims = suite_claims(suite, jobs, cache)
    if not write:
        return summary
    check_run_dir(suite)  # again: a suite started at the same time may have finished first
    evaluation_names = [e.resolved.name for e in suite.evaluations]
    summary.written = write_leaderboard(
        summary.leaderboard,
        suite.leaderboard_dir,
        suite.name,
        summary.columns,
        markdown=markdown_leaderboard(
            summary.leaderboard, suite.name, summary.columns, evaluation_names
        ),
        headline=headline_table_columns(summary.leaderboard, summary.columns),
        suite_file=suite._source,
    )
    if suite.claims:
        summary.written += write_claims(
            summary.claims, suite.leaderboard_dir, suite.name, suite.alpha
        )
    summary.written += write_plots_once(suite, jobs, cache, Path(suite.run_dir) / "plots")
    checks_path = Path(suite.run_dir) / "checks.json"
    write_text_atomic(
        checks_path, json.dumps([f.as_dict() for f in summary.findings], indent=1, default=str)
    )
    summary.written.append(checks_path)
    _write_manifest(suite, jobs, cache)
    summary.written.append(write_report(suite, jobs, cache, summary))
    return summary


def suite_claims(suite: Suite, jobs: list[Job], cache: ResultCache) -> list[ClaimResult]:
    """The suite's claims checked on the cached per-example records (a job not cached: its
    claims read "not evaluated")."""
    if not suite.claims:
        return []
    keys = {(j.evaluation_name, j.row_name): j.key for j in jobs}

    def records_of(evaluation: str, row: str) -> pd.DataFrame | None:
        key = keys.get((evaluation, row))
        return cache.load_records(key) if key is not None and cache.has(key) else None

    return check_claims(suite, records_of)


def write_report(suite: Suite, jobs: list[Job], cache: ResultCache, summary: RunSummary) -> Path:
    """``<leaderboard_dir>/<suite>.html``: the self-contained HTML report."""
    from benchmark.report import build_report  # jinja2 + matplotlib only when reporting

    html = build_report(
        suite,
        jobs,
        cache,
        summary.leaderboard,
        summary.findings,
        summary.trust,
        columns=summary.columns,
        claims=summary.claims,
    )
    path = Path(suite.leaderboard_dir) / f"{suite.name}.html"
    write_text_atomic(path, html)
    return path


def collect(
    suite: Suite, jobs: list[Job], cache: ResultCache
) -> tuple[pd.DataFrame, list[Finding], TrustInputs, dict[str, MetricSpec]]:
    """Leaderboard rows from the cached results (jobs not cached are left out), cross-model
    columns from each evaluation's ``postprocess_leaderboard``, then the trust checks: their
    flags go to the ``flags`` column, the findings (with numbers) are returned.

    Also returns each numeric column's declaration, looked up on the evaluation that made it
    (the runner knows which one did; the column name alone is ambiguous): undeclared metrics
    of plugins get direction "none", so nothing downstream guesses a direction."""
    rows = []
    results: dict[str, dict[str, ResultSummary]] = {}  # evaluation name -> model row -> summary
    columns: dict[str, MetricSpec] = {}
    writers: dict[str, str] = {}  # column -> the evaluation that writes it
    for model_spec in suite.models:
        entry = MODELS.get(model_spec.model)
        for row_name in model_spec.row_names():
            row: dict[str, object] = {
                "model": row_name,
                "arch": model_spec.model,
                "randomized": bool(entry.extras.get("randomized", False)),
                "flags": "",
            }
            flags: set[str] = set()
            for job in (j for j in jobs if j.row_name == row_name):
                if not cache.has(job.key):
                    continue
                owner = job.evaluation.resolved.cls
                result = owner.Summary.from_stored(cache.load_summary(job.key))
                results.setdefault(job.evaluation_name, {})[row_name] = result
                flags.update(result.flags)
                row["flags"] = ",".join(sorted(flags))
                row.setdefault("n_examples", result.n_examples)
                for metric, value in result.metrics.items():
                    column = f"{job.evaluation_name}_{metric}"
                    if writers.setdefault(column, job.evaluation_name) != job.evaluation_name:
                        raise BenchmarkError(
                            f"evaluations '{writers[column]}' and '{job.evaluation_name}' both "
                            f"write the leaderboard column '{column}'; rename one"
                        )
                    row[column] = value
                    columns[column] = owner.metric_spec(metric) or undeclared(metric)
            rows.append(row)
    frame = pd.DataFrame(rows)
    views = []
    for spec in suite.evaluations:  # cross-model columns (e.g. mCE vs a reference model)
        resolved = spec.resolved
        name, params, owner = resolved.name, resolved.params, resolved.cls
        keys = {j.row_name: j.key for j in jobs if j.evaluation is spec}

        def records(row: str, keys: dict[str, str] = keys) -> pd.DataFrame:
            return cache.load_records(keys[row])

        if issubclass(owner, CrossModel):
            per_row = owner.cross_model_metrics(name, params, results.get(name, {}), records)
            frame = add_cross_model_columns(frame, name, per_row, rows=set(keys))
            for metric in dict.fromkeys(m for values in per_row.values() for m in values):
                columns[f"{name}_{metric}"] = owner.metric_spec(metric) or undeclared(metric)
        views.append(
            EvaluationView(
                name=name,
                type=spec.type,
                params=params,
                kind=resolved.attack_kind,
                adversarial=resolved.adversarial,
                results=results.get(name, {}),
            )
        )
    frame, per_example = add_headlines(frame, jobs, cache, results, columns, views)
    randomized = dict(zip(frame["model"], frame["randomized"], strict=True))
    inputs = TrustInputs(views, {str(k): bool(v) for k, v in randomized.items()})
    findings = run_checks(inputs) + per_example
    frame = add_flags(frame, findings)
    if suite.references:  # published numbers (RobustBench JSON) as reference rows
        from benchmark.robustbench import reference_rows

        frame = reference_rows(suite, frame, suite.references)
    for column in frame.columns:  # the leaderboard's own columns (n_examples, reported ...)
        if column not in columns and (found := leaderboard_column_spec(str(column))):
            columns[column] = found
    return frame, findings, inputs, columns


def add_headlines(
    frame: pd.DataFrame,
    jobs: list[Job],
    cache: ResultCache,
    results: dict[str, dict[str, ResultSummary]],
    columns: dict[str, MetricSpec],
    views: list[EvaluationView],
) -> tuple[pd.DataFrame, list[Finding]]:
    """``frame`` with one headline per threat model (:mod:`benchmark.runner.headline`): the
    per-example worst case over the suite's attack evaluations at that norm and eps; and
    the per-example findings (a weaker attack breaking what a stronger one did not)."""
    keys = {(j.evaluation_name, j.row_name): j.key for j in jobs}

    @functools.cache  # each parquet file is read once, for the headline and the check
    def records(evaluation: str, row: str) -> pd.DataFrame:
        return cache.load_records(keys[evaluation, row])

    findings = weaker_breaks_stronger(results, records, {v.name: v.kind for v in views})
    values, specs = headline_columns(results, records)
    if not values:
        return frame, findings
    headlines = pd.DataFrame.from_dict(values, orient="index")
    frame = frame.merge(headlines, left_on="model", right_index=True, how="left")
    columns.update({c: spec for c, spec in specs.items() if c in frame.columns})
    return frame, findings


def add_cross_model_columns(
    frame: pd.DataFrame, name: str, per_row: dict[str, dict[str, float]], rows: set[str]
) -> pd.DataFrame:
    """``frame`` with one ``<name>_<metric>`` column per metric of ``per_row`` (what
    :meth:`CrossModel.cross_model_metrics` returned), NaN for rows it has no value for.

    The runner, not the evaluation, writes the leaderboard: a row that is not one of this
    evaluation's model rows, or a metric that would overwrite a column already there, is a
    bug in the evaluation and fails loudly instead of silently landing in the wrong place."""
    stray = sorted(set(per_row) - rows)
    if stray:
        raise BenchmarkError(
            f"evaluation '{name}': cross_model_metrics returned values for "
            f"{', '.join(map(repr, stray))}, which are not its model rows"
        )
    frame = frame.copy()
    for metric in dict.fromkeys(m for values in per_row.values() for m in values):
        column = f"{name}_{metric}"
        if column in frame.columns:
            raise BenchmarkError(
                f"evaluation '{name}': cross_model_metrics metric '{metric}' would overwrite "
                f"the leaderboard column '{column}'"
            )
        values = {row: float(v[metric]) for row, v in per_row.items() if metric in v}
        frame[column] = frame["model"].map(values).astype("float64")
    return frame


def eta(spent: float, done: int, total: int) -> str:
    """Time left at the mean pace so far (jobs differ in cost, so a rough guide; the plan,
    ``python -m benchmark plan``, estimates each job from its passes)."""
    return "~" + format_duration(spent / done * (total - done))


def check_run_dir(suite: Suite) -> None:
    """Refuse (in one line) to write a run directory that holds another suite's run: its
    ``manifest.json``, ``checks.json`` and ``plots/`` would be overwritten by this suite's,
    and ``compare`` or the report would read the wrong run. A manifest that cannot be read
    claims nothing (it is rewritten)."""
    manifest = Path(suite.run_dir) / "manifest.json"
    try:
        owner = json.loads(manifest.read_text())["suite"]["name"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return
    if isinstance(owner, str) and owner != suite.name:
        raise BenchmarkError(
            f"output_dir '{suite.run_dir}': holds the run of suite '{owner}' ({manifest}); "
            f"suite '{suite.name}' would overwrite its manifest, checks and plots: give it its "
            f"own output_dir (with cache_dir: '{suite.cache_root}' to keep its cached results)"
        )


PLOTS_DONE = ".complete.json"  # in plots/: written once every figure of the phase is


def write_plots_once(suite: Suite, jobs: list[Job], cache: ResultCache, out: Path) -> list[Path]:
    """:func:`write_plots`, unless a finished plot phase (``out/.complete.json``) already drew
    these very results and all its files are still there; returns the files written.

    The record is written last, so a run killed while drawing figures redoes them on the
    next run, even though its jobs are all cached by then; it names the job keys, so new
    results (a model added, reused from a shared cache) are drawn too."""
    drawn = stable_hash(sorted([j.evaluation_name, j.row_name, j.key] for j in jobs))
    record = out / PLOTS_DONE
    try:
        done = json.loads(record.read_text())
        files = [out / name for name in done["files"]] if done["jobs"] == drawn else None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        files = None
    if files is not None and all(path.is_file() for path in files):
        return []
    with writing(out):  # a figure folder that cannot be created: one line, not a traceback
        written = write_plots(suite, jobs, cache, out)
    names = [os.path.relpath(path, out) for path in written]
    write_text_atomic(record, json.dumps({"jobs": drawn, "files": names}, indent=1))
    return written


def write_plots(suite: Suite, jobs: list[Job], cache: ResultCache, out: Path) -> list[Path]:
    """Each evaluation's cross-model figures (:meth:`SuiteFigures.suite_plots`: reliability
    diagrams, robustness-bin variance, ...) under ``<run_dir>/plots/<evaluation>``."""
    written: list[Path] = []
    for spec in suite.evaluations:
        own = [j for j in jobs if j.evaluation is spec]
        if not own:
            continue
        resolved = spec.resolved
        if not issubclass(resolved.cls, SuiteFigures):
            continue
        records = {j.row_name: cache.load_records(j.key) for j in own}
        folder = out / resolved.name.replace("/", "_")
        written += resolved.cls.suite_plots(resolved.name, resolved.params, records, folder)
    return written


def _write_manifest(suite: Suite, jobs: list[Job], cache: ResultCache) -> None:
    run_dir = Path(suite.run_dir)
    manifest = {
        "suite": suite.model_dump(),
        "jobs": [
            {
                "model": j.row_name,
                "evaluation": j.evaluation_name,
                "key": j.key,
                # relative to the manifest's folder: valid from any working directory
                "result_dir": os.path.relpath(cache.path(j.key).resolve(), run_dir.resolve()),
            }
            for j in jobs
        ],
    }
    write_text_atomic(run_dir / "manifest.json", json.dumps(manifest, indent=1))
