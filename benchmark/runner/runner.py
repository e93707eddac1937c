"""Run a suite: expand jobs, skip cached ones, build/train each model once, evaluate, write
the leaderboard.

Models are materialized lazily: a rerun whose jobs are all cached loads no data and builds no
model. Each job is seeded from (suite seed, job key), so its numbers do not depend on which
other jobs ran before it or were reused from the cache.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from benchmark.datasets import ArrayDataset, load_dataset
from benchmark.errors import BenchmarkError
from benchmark.evaluations import EVALUATIONS, EvalContext, EvaluationResult, evaluation_name
from benchmark.leaderboard import write_leaderboard
from benchmark.runner.cache import ResultCache
from benchmark.runner.jobs import Job, expand_jobs, model_identity, training_job
from benchmark.suite.schema import ModelSpec, Suite
from benchmark.trust import Finding
from benchmark.trust.checks import EvaluationView, TrustInputs, add_flags, run_checks
from benchmark.utils import derive_seed, resolve_device, seed_everything, write_text_atomic
from models import MODELS, NormalizedModel, build_model, load_checkpoint
from models.posthoc import fit_posthoc
from models.training import checkpoint_path, train_or_load

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


class _Data:
    """Loads each split of the suite's dataset at most once per run."""

    def __init__(self, suite: Suite) -> None:
        self.suite = suite
        self._splits: dict[str, ArrayDataset] = {}

    def split(self, name: str) -> ArrayDataset:
        if name not in self._splits:
            spec = self.suite.dataset
            self._splits[name] = load_dataset(
                spec.name,
                name,
                root=spec.root,
                download=spec.download,  # type: ignore[arg-type]
            )
        return self._splits[name]

    def evaluation_set(self) -> ArrayDataset:
        spec = self.suite.dataset
        return self.split(spec.split).subset(spec.n_examples, spec.subset_seed)


def materialize_model(
    spec: ModelSpec, suite: Suite, data: _Data, device: torch.device, progress: bool
) -> nn.Module:
    """Return the model for ``spec`` in eval mode on ``device`` (training it if needed)."""
    info = data.split(suite.dataset.split).info
    if spec.training is not None:
        val = data.split("val") if spec.training.validation else None
        model, _ = train_or_load(
            training_job(spec, suite),
            data.split("train"),
            val,
            Path(suite.cache_root) / "checkpoints",
            device,
            progress,
        )
    else:
        torch.manual_seed(derive_seed(suite.seed, model_identity(spec, suite), "init"))
        model = build_model(spec.model, spec.params, info)
        if spec.checkpoint is not None:
            load_checkpoint(model, spec.checkpoint)
    model = model.to(device).eval()
    if suite.channels_last and isinstance(model, NormalizedModel):
        model.use_channels_last()
    return model


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
    data = _Data(suite)
    folder = Path(suite.cache_root) / "checkpoints"
    paths = []
    log(f"suite '{suite.name}': training {len(trainable)} model(s) on {device}, cache {folder}")
    for spec in trainable:
        path = checkpoint_path(training_job(spec, suite), folder)
        cached = path.is_file()
        started = time.perf_counter()
        materialize_model(spec, suite, data, device, progress)
        how = "cached" if cached else f"trained in {time.perf_counter() - started:.1f}s"
        log(f"  model {spec.row_name}: {how}")
        paths.append(path)
    return paths


def run_job(
    job: Job,
    model: nn.Module,
    data: ArrayDataset,
    suite: Suite,
    device: torch.device,
    progress: bool,
) -> EvaluationResult:
    """Run one (model, evaluation) job with its own seed, the model in eval mode."""
    entry = EVALUATIONS.get(job.evaluation.type)
    evaluation = entry.obj(entry.params_model.model_validate(job.evaluation.params))
    seed = derive_seed(suite.seed, job.seed_key or job.key)
    seed_everything(seed)
    ctx = EvalContext(device=device, batch_size=suite.batch_size, seed=seed, progress=progress)
    model.eval()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    result = evaluation.run(model, data, ctx)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    if changed or model.training:
        # Weights or BatchNorm statistics moved during evaluation (e.g. a train-mode forward
        # inside an attack): flag the result and restore the model for the next jobs.
        result.extras["flags"] = [*result.extras.get("flags", []), "state_changed"]
        result.extras["state_changed"] = changed[:10]
        model.load_state_dict(before)
        model.eval()
    return result


def run_suite(
    suite: Suite,
    *,
    progress: bool = True,
    log: Logger = _stderr,
    select: Callable[[Job], bool] | None = None,
    write: bool = True,
) -> RunSummary:
    """Run the suite's missing jobs (only those ``select`` accepts, if given), collect the
    leaderboard with its trust flags and, if ``write``, write leaderboard files (CSV, Markdown,
    HTML report), plots, ``checks.json`` and the manifest."""
    device = resolve_device(suite.device)
    torch.use_deterministic_algorithms(True, warn_only=True)
    cache = ResultCache(suite.cache_root)
    data = _Data(suite)
    jobs = expand_jobs(suite, device.type)
    summary = RunSummary(leaderboard=pd.DataFrame())
    total = len(jobs)
    log(f"suite '{suite.name}': {total} job(s) on {device}, cache {cache.root}")

    for model_spec in suite.models:
        base: nn.Module | None = None  # built or trained once, shared by its post-hoc rows
        for row_name in model_spec.row_names():
            row_jobs = [j for j in jobs if j.model is model_spec and j.row_name == row_name]
            pending = [j for j in row_jobs if not cache.has(j.key)]
            summary.reused += [j.label for j in row_jobs if j not in pending]
            if select is not None:
                summary.missing += [j.label for j in pending if not select(j)]
                pending = [j for j in pending if select(j)]
            if not pending:
                continue
            started = time.perf_counter()
            if base is None:
                base = materialize_model(model_spec, suite, data, device, progress)
            model = base
            posthoc = pending[0].posthoc
            if posthoc is not None:
                seed = derive_seed(suite.seed, pending[0].seed_key or pending[0].key, "posthoc")
                model = fit_posthoc(posthoc.method, base, data.split("val"), posthoc.params, seed)
                model = model.to(device).eval()
            log(f"  model {row_name}: ready in {time.perf_counter() - started:.1f}s")
            eval_data = data.evaluation_set()
            for job in pending:
                started = time.perf_counter()
                result = run_job(job, model, eval_data, suite, device, progress)
                cache.put(job.key, result, {"model": row_name, "evaluation": job.label})
                summary.executed.append(job.label)
                log(
                    f"  [{len(summary.executed)}] {job.label}: {time.perf_counter() - started:.1f}s"
                )
    log(f"  {len(summary.executed)} job(s) run, {len(summary.reused)} reused from cache")

    summary.leaderboard, summary.findings, summary.trust = collect(suite, jobs, cache)
    if not write:
        return summary
    summary.written = write_leaderboard(summary.leaderboard, suite.leaderboard_dir, suite.name)
    plots_dir = Path(suite.run_dir) / "plots"
    if summary.executed or not plots_dir.is_dir():
        summary.written += write_plots(suite, jobs, cache, plots_dir)
    checks_path = Path(suite.run_dir) / "checks.json"
    write_text_atomic(
        checks_path, json.dumps([f.as_dict() for f in summary.findings], indent=1, default=str)
    )
    summary.written.append(checks_path)
    _write_manifest(suite, jobs, cache)
    summary.written.append(write_report(suite, jobs, cache, summary))
    return summary


def write_report(suite: Suite, jobs: list[Job], cache: ResultCache, summary: RunSummary) -> Path:
    """``<leaderboard_dir>/<suite>.html``: the self-contained HTML report."""
    from benchmark.report import build_report  # jinja2 + matplotlib only when reporting

    html = build_report(suite, jobs, cache, summary.leaderboard, summary.findings, summary.trust)
    path = Path(suite.leaderboard_dir) / f"{suite.name}.html"
    write_text_atomic(path, html)
    return path


def collect_leaderboard(suite: Suite, jobs: list[Job], cache: ResultCache) -> pd.DataFrame:
    """The leaderboard of the cached results, trust flags included."""
    return collect(suite, jobs, cache)[0]


def collect(
    suite: Suite, jobs: list[Job], cache: ResultCache
) -> tuple[pd.DataFrame, list[Finding], TrustInputs]:
    """Leaderboard rows from the cached results (jobs not cached are left out), cross-model
    columns from each evaluation's ``postprocess_leaderboard``, then the trust checks: their
    flags go to the ``flags`` column, the findings (with numbers) are returned."""
    rows = []
    results: dict[str, dict[str, dict]] = {}  # evaluation name -> model row -> summary
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
                result = cache.load_summary(job.key)
                results.setdefault(job.evaluation_name, {})[row_name] = result
                flags.update(result["extras"].get("flags", []))
                row["flags"] = ",".join(sorted(flags))
                row.setdefault("n_examples", result["extras"].get("n_examples"))
                for metric, value in result["metrics"].items():
                    row[f"{job.evaluation_name}_{metric}"] = value
            rows.append(row)
    frame = pd.DataFrame(rows)
    views = []
    for spec in suite.evaluations:  # cross-model columns (e.g. mCE vs a reference model)
        evaluation = EVALUATIONS.get(spec.type)
        name = evaluation_name(spec.type, spec.name, spec.params)
        params = evaluation.params_model.model_validate(spec.params)
        keys = {j.row_name: j.key for j in jobs if j.evaluation is spec}
        frame = evaluation.obj.postprocess_leaderboard(
            frame,
            name,
            params,
            results.get(name, {}),
            lambda row, keys=keys: cache.load_records(keys[row]),
        )
        views.append(
            EvaluationView(
                name=name,
                type=spec.type,
                params=params,
                kind=evaluation.obj.attack_kind(params),
                adversarial=evaluation.obj.adversarial,
                results=results.get(name, {}),
            )
        )
    randomized = dict(zip(frame["model"], frame["randomized"], strict=True))
    inputs = TrustInputs(views, {str(k): bool(v) for k, v in randomized.items()})
    findings = run_checks(inputs)
    frame = add_flags(frame, findings)
    if suite.references:  # published numbers (RobustBench JSON) as reference rows
        from benchmark.robustbench import reference_rows

        frame = reference_rows(suite, frame, suite.references)
    return frame, findings, inputs


def write_plots(suite: Suite, jobs: list[Job], cache: ResultCache, out: Path) -> list[Path]:
    """Each evaluation's cross-model figures (:meth:`Evaluation.suite_plots`: reliability
    diagrams, robustness-bin variance, ...) under ``<run_dir>/plots/<evaluation>``."""
    written: list[Path] = []
    for spec in suite.evaluations:
        own = [j for j in jobs if j.evaluation is spec]
        if not own:
            continue
        evaluation = EVALUATIONS.get(spec.type)
        params = evaluation.params_model.model_validate(spec.params)
        records = {j.row_name: cache.load_records(j.key) for j in own}
        folder = out / own[0].evaluation_name.replace("/", "_")
        written += evaluation.obj.suite_plots(own[0].evaluation_name, params, records, folder)
    return written


def _write_manifest(suite: Suite, jobs: list[Job], cache: ResultCache) -> None:
    manifest = {
        "suite": suite.model_dump(),
        "jobs": [
            {
                "model": j.row_name,
                "evaluation": j.evaluation_name,
                "key": j.key,
                "result_dir": str(cache.path(j.key)),
            }
            for j in jobs
        ],
    }
    write_text_atomic(Path(suite.run_dir) / "manifest.json", json.dumps(manifest, indent=1))
