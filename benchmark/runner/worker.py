"""Running jobs wherever an executor places them: in the driver, a pool process or a Ray task.

A :class:`JobWorker` turns a job key into an :class:`EvaluationResult`. It needs only the
(picklable) suite and a device, so any process can host one; it rebuilds the job list itself,
materializes models lazily (trained models come from the checkpoint cache, which a file lock
guards so that two workers never train the same model at once) and keeps the last model so
consecutive jobs of one model build it once. Every job is seeded from its key and every
post-hoc fit from its row's identity, so placement and order never change a number.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from benchmark.attacks.transfer import surrogate_rows
from benchmark.datasets import ArrayDataset, load_dataset
from benchmark.datasets.base import Split
from benchmark.errors import BenchmarkError
from benchmark.evaluations import EvalContext, EvaluationResult
from benchmark.inference import autocast_dtype, check_finite, precision
from benchmark.runner.costs import PassCounter
from benchmark.runner.jobs import (
    Task,
    evaluation_autocast,
    expand_jobs,
    model_identity,
    posthoc_identity,
    training_job,
    weights_sha256,
)
from benchmark.suite.schema import ModelSpec, PosthocSpec, Suite
from benchmark.utils import derive_seed, seed_everything, stable_hash
from models import Ensemble, NormalizedModel, build_model, load_checkpoint
from models.posthoc import fit_posthoc
from models.training import train_or_load
from models.weights import resolve_checkpoint


class SuiteData:
    """Loads each split of the suite's dataset at most once per process."""

    def __init__(self, suite: Suite) -> None:
        self.suite = suite
        self._splits: dict[str, ArrayDataset] = {}
        self._split_off: tuple[ArrayDataset | None, ArrayDataset] | None = None

    def split(self, name: Split) -> ArrayDataset:
        if name not in self._splits:
            spec = self.suite.dataset
            self._splits[name] = load_dataset(
                spec.name,
                name,
                root=spec.root,
                download=spec.download,
            )
        return self._splits[name]

    def _held_out(self) -> tuple[ArrayDataset | None, ArrayDataset]:
        """(held-out part or None, the rest) of the evaluation split, split once."""
        if self._split_off is None:
            spec = self.suite.dataset
            split = self.split(spec.split)
            if spec.holdout is None:
                self._split_off = (None, split)
            elif spec.holdout >= len(split):
                raise BenchmarkError(
                    f"dataset.holdout: {spec.holdout} is not smaller than the '{spec.split}' "
                    f"split ({len(split)} examples)"
                )
            else:
                self._split_off = split.split_off(spec.holdout, spec.holdout_seed)
        return self._split_off

    def holdout_set(self) -> ArrayDataset:
        """The held-out part of the evaluation split (``dataset.holdout``), for fitting."""
        held, _ = self._held_out()
        if held is None:
            raise BenchmarkError("dataset.holdout: not set, so there is no held-out set")
        return held

    def evaluation_set(self) -> ArrayDataset:
        """The evaluation split without its held-out part, then the ``n_examples`` subset."""
        spec = self.suite.dataset
        _, rest = self._held_out()
        return rest.subset(spec.n_examples, spec.subset_seed)

    def fitting_set(self, posthoc: PosthocSpec) -> tuple[str, ArrayDataset]:
        """What a post-hoc row is fitted on, and its name for messages."""
        if posthoc.fitting_split(self.suite.dataset) == "holdout":
            held = self.holdout_set()
            return f"held-out part of '{self.suite.dataset.split}' ({len(held)} images)", held
        val = self.split("val")
        return f"'val' split ({len(val)} images)", val


def checkpoint_hashes(suite: Suite) -> dict[str, str]:
    """SHA-256 of every local checkpoint file the suite's rows load, as the job keys hold
    them (a declared hash, else the file's now): loading checks the file still has it."""
    hashes: dict[str, str] = {}
    for spec in suite.models:
        for member in suite.ensemble_members(spec) or [spec]:
            source = member.checkpoint_source
            if source is not None and source.path is not None and Path(source.path).is_file():
                hashes[source.path] = weights_sha256(source.path, source.sha256)
    return hashes


def materialize_model(
    spec: ModelSpec,
    suite: Suite,
    data: SuiteData,
    device: torch.device,
    progress: bool,
    expected: dict[str, str] | None = None,
) -> nn.Module:
    """Return the model for ``spec`` in eval mode on ``device`` (training it if needed; an
    ensemble row: every member, averaged by probability). ``expected``: checkpoint path ->
    the SHA-256 its job keys were computed with (:func:`checkpoint_hashes`): a file replaced
    since is refused in one line instead of being evaluated under the old file's key."""
    if spec.ensemble is not None:
        members = [
            materialize_model(m, suite, data, device, progress, expected)
            for m in suite.ensemble_members(spec)
        ]
        return Ensemble(members).to(device).eval()
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
        model = build_model(
            spec.model, spec.params, info, normalization=spec.normalization_override
        )
        if (source := spec.checkpoint_source) is not None:
            path = resolve_checkpoint(
                source.path, source.url, source.sha256, suite.weights_dir, progress
            )
            load_checkpoint(
                model,
                path,
                expected_sha256=(expected or {}).get(source.path or "", source.sha256),
                checkpoint_key=spec.checkpoint_key,
                strip_prefix=spec.strip_prefix,
            )
    model = model.to(device).eval()
    if suite.channels_last and isinstance(model, NormalizedModel):
        model.use_channels_last()
    if suite.compile:
        # In place (nn.Module.compile): state_dict keys, attributes such as ``randomized``
        # and the state-change check stay as they are. Compilation happens lazily, per graph.
        model.compile()
    return model


def run_job(
    task: Task,
    model: nn.Module,
    data: ArrayDataset,
    suite: Suite,
    device: torch.device,
    progress: bool,
    surrogates: dict[str, nn.Module] | None = None,
) -> EvaluationResult:
    """Run one task (a job or a shard of one) with the job's seed, the model in eval mode
    (``surrogates``: the rows its transfer attacks craft on)."""
    job = task.job
    resolved = job.evaluation.resolved
    # The job's seed, also for its shards; seed_key leaves out settings that change only
    # float rounding (channels_last, compile), so that they do not change the random draws.
    seed = derive_seed(suite.seed, job.seed_key)
    seed_everything(seed)
    # Reduced precision only for prediction-only evaluations, and only inside their
    # predict_probs calls: every evaluation runs with autocast off (none a caller enabled
    # leaks in), so attacks craft and score in float32 whatever the suite's autocast.
    autocast = autocast_dtype(evaluation_autocast(suite, job.evaluation), device, "autocast")
    ctx = EvalContext.for_model(model, device, suite.batch_size, seed, progress, autocast=autocast)
    ctx.surrogates = dict(surrogates or {})
    model.eval()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    with PassCounter(model) as counter, precision(device, None):
        if task.shard is None:
            result = resolved.build().run(model, data, ctx)
        else:
            result = resolved.build_shardable().run_shard(model, data, ctx, *task.shard)
    result.cost = counter.cost.as_dict()
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    if changed or model.training:
        # Weights or BatchNorm statistics moved during evaluation (e.g. a train-mode forward
        # inside an attack): flag the result and restore the model for the next jobs.
        result.extras["flags"] = [*result.extras.get("flags", []), "state_changed"]
        result.extras["state_changed"] = changed[:10]
        model.load_state_dict(before)
        model.eval()
    return result


def check_model_output(
    model: nn.Module, data: ArrayDataset, row: str, device: torch.device
) -> None:
    """A model must map a batch (N, C, H, W) to finite logits (N, num_classes); anything
    else (a plugin returning features, probabilities of the wrong width, a tuple) would
    otherwise fail deep inside an attack or, worse, be scored."""
    probe = data.x[:2].to(device)
    try:
        with torch.no_grad():
            out = model(probe)
    except (Exception, SystemExit) as exc:  # a plugin's forward is the user's code: one line
        message = " ".join(str(exc).split())
        raise BenchmarkError(
            f"model '{row}': forward failed on a batch of {len(probe)} input(s) of shape "
            f"{tuple(probe.shape)}: {type(exc).__name__}: {message}"
        ) from None
    expected = (len(probe), data.info.num_classes)
    if not isinstance(out, torch.Tensor):
        raise BenchmarkError(f"model '{row}': returned {type(out).__name__}, expected a tensor")
    if not out.is_floating_point():
        raise BenchmarkError(
            f"model '{row}': returned {out.dtype} outputs, expected floating-point logits "
            "(attacks need gradients through them)"
        )
    if tuple(out.shape) != expected:
        raise BenchmarkError(
            f"model '{row}': output shape {tuple(out.shape)} for {len(probe)} input(s), "
            f"expected {expected} (logits)"
        )
    check_finite(out, f"model '{row}' on clean inputs")


class JobWorker:
    """Executes the tasks of one suite in this process, reusing the last model it built."""

    def __init__(self, suite: Suite, device: torch.device, progress: bool = False) -> None:
        self.suite, self.device, self.progress = suite, device, progress
        self.data = SuiteData(suite)
        # the checkpoint hashes first: the keys below are computed with these very hashes
        self._hashes = checkpoint_hashes(suite)
        self._jobs = {job.key: job for job in expand_jobs(suite, device.type)}
        self._base: tuple[str, nn.Module] | None = None  # (model identity, model)
        self._rows: dict[str, nn.Module] = {}  # post-hoc rows of that base model
        self._surrogates: dict[str, nn.Module] = {}  # rows that transfer attacks craft on

    def _model(self, task: Task) -> nn.Module:
        job, suite = task.job, self.suite
        identity = stable_hash(model_identity(job.model, suite))
        if self._base is None or self._base[0] != identity:
            self._rows.clear()
            self._base = None  # free the previous model before building the next
            model = materialize_model(
                job.model, suite, self.data, self.device, self.progress, self._hashes
            )
            check_model_output(model, self.data.evaluation_set(), job.row_name, self.device)
            self._base = (identity, model)
        base = self._base[1]
        if job.posthoc is None:
            return base
        if job.row_name not in self._rows:
            # Seeded by the row's identity, never by which of its jobs happens to run first.
            seed = derive_seed(
                suite.seed, identity, posthoc_identity(job.posthoc, suite), "posthoc"
            )
            method, params = job.posthoc.method, job.posthoc.params
            fitting_name, fitting = self.data.fitting_set(job.posthoc)
            fitted = fit_posthoc(
                method,
                base,
                fitting,
                params,
                seed,
                row=job.row_name,
                evaluation=self.data.evaluation_set(),
                fitting_name=fitting_name,
            )
            self._rows[job.row_name] = fitted.to(self.device).eval()
        return self._rows[job.row_name]

    def _surrogate(self, name: str) -> nn.Module:
        """The base row ``name``'s model, for transfer attacks (built once per worker)."""
        if name not in self._surrogates:
            spec = next(m for m in self.suite.models if m.row_name == name)
            self._surrogates[name] = materialize_model(
                spec, self.suite, self.data, self.device, self.progress, self._hashes
            )
        return self._surrogates[name]

    def run(self, task: Task) -> EvaluationResult:
        """Run ``task``. What a model's own code does wrong -- a forward that calls
        ``sys.exit``, raises only on larger batches, cuts the graph an attack needs or
        edits its weights in place under autograd -- ends the run with one line naming the
        row and evaluation, never a traceback or a silent exit 0. ``BENCHMARK_DEBUG=1``
        re-raises the original exception instead, for a traceback."""
        try:
            return self._run(task)
        except BenchmarkError:
            raise
        except (Exception, SystemExit) as exc:
            if os.environ.get("BENCHMARK_DEBUG") == "1":
                raise
            what = (
                f"called sys.exit({exc.code!r})"
                if isinstance(exc, SystemExit)
                else f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            )
            raise BenchmarkError(
                f"model '{task.job.row_name}', evaluation '{task.job.evaluation_name}': {what} "
                "(BENCHMARK_DEBUG=1 shows the traceback)"
            ) from None

    def _run(self, task: Task) -> EvaluationResult:
        if task.job.key not in self._jobs:
            raise BenchmarkError(f"job {task.job.key}: not a job of suite '{self.suite.name}'")
        model = self._model(task)
        evaluation = task.job.evaluation
        names = surrogate_rows(evaluation.type, evaluation.resolved.params.model_dump())
        surrogates = {name: self._surrogate(name) for name in names}
        return run_job(
            task,
            model,
            self.data.evaluation_set(),
            self.suite,
            self.device,
            self.progress,
            surrogates,
        )


@dataclass(frozen=True)
class WorkItem:
    """What an executor ships to a worker: everything needed to run one task anywhere."""

    suite: Suite
    task: Task
    device: str  # "cpu", "cuda", "cuda:1"
    threads: int | None  # torch intra-op threads (None: leave torch's default)
    sys_path: tuple[str, ...] = ()  # the driver's import path (plugins, the checkout)


@dataclass
class WorkOutcome:
    """A finished task: its result, or the one-line message of the user error it hit."""

    item: WorkItem
    result: EvaluationResult | None
    error: str | None
    seconds: float
    pid: int


PROCESS_DEVICE: str | None = None  # set by a pool initializer: this process's GPU
_WORKERS: dict[tuple[str, str], JobWorker] = {}  # per process: (suite hash, device) -> worker


def execute(item: WorkItem) -> WorkOutcome:
    """Run ``item`` in this process (the function pool processes and Ray tasks call).

    User errors come back as a message rather than an exception: exceptions cross process
    boundaries as tracebacks, and the driver must print exactly one line and exit 2.
    """
    started = time.perf_counter()
    for entry in reversed(item.sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    if item.threads is not None:
        torch.set_num_threads(item.threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    device = item.device
    if PROCESS_DEVICE is not None and device.split(":")[0] == PROCESS_DEVICE.split(":")[0]:
        device = PROCESS_DEVICE
    try:
        worker_key = (stable_hash(item.suite.model_dump()), device)
        if worker_key not in _WORKERS:
            from benchmark.suite.loader import import_plugins, load_registries

            load_registries()
            import_plugins(item.suite.plugins, f"suite '{item.suite.name}'")
            _WORKERS.clear()  # one suite per process at a time: bounded memory
            _WORKERS[worker_key] = JobWorker(item.suite, torch.device(device))
        result = _WORKERS[worker_key].run(item.task)
        error = None
    except BenchmarkError as exc:
        result, error = None, " ".join(str(exc).split("\n"))
    return WorkOutcome(item, result, error, time.perf_counter() - started, os.getpid())
