"""Expanding a suite into (model, evaluation) jobs and computing their cache keys.

A job's key hashes everything that determines its numbers: the model's identity (builder,
parameters, and checkpoint hash or training recipe), the evaluation's type, code version and
fully-defaulted parameters, the code versions of the attacks it runs (when bumped past "1"),
the evaluation data, the seed and the device type -- plus the *versions* of what was read
(:func:`job_versions`). Names shown in the leaderboard are not part of it, so renaming a row
reuses its results.

The versions are the code of the model's builder (:func:`models.registry.model_code_version`,
the SHA-256 of its source file: editing a plugin's network reruns its jobs), the checkpoint
key of a trained model (which holds its builder's and recipe's code and its training data)
and the content of every data set the job reads (the evaluated split, the ``val`` split a
post-hoc row is fitted on, files an evaluation reads itself): each file's name, size and
SHA-256 (:func:`benchmark.datasets.base.dataset_fingerprint`, memoised), never the folder,
so suites differing only in ``dataset.root`` share results exactly when the files are equal.

A job's random draws derive from ``seed_key``, its key without the versions (and without
rounding-only settings): an edit that changes no number (a comment) recomputes the same
numbers, and one that does shows its effect rather than new random draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.attacks.transfer import surrogate_rows
from benchmark.datasets.base import Split, dataset_fingerprint
from benchmark.errors import BenchmarkError
from benchmark.fingerprints import is_plugin_code, source_digest
from benchmark.suite.schema import EvaluationSpec, ModelSpec, PosthocSpec, Suite
from benchmark.utils import stable_hash
from models.posthoc import POSTHOC
from models.registry import key_params, model_code_version
from models.training import TrainingJob
from models.training.engine import WarmStart
from models.weights import cached_sha256


def split_fingerprint(suite: Suite, split: Split) -> dict[str, Any]:
    """The content fingerprint of ``split`` of the suite's dataset (not its ``root``)."""
    d = suite.dataset
    return dataset_fingerprint(d.name, split, root=d.root, download=d.download)


def weights_sha256(path: str | None, declared: str | None) -> str:
    """The SHA-256 that identifies a weights file in keys: the declared one (a URL's, read
    without downloading), else the local file's."""
    return declared or cached_sha256(Path(path or ""))


def warm_start(spec: ModelSpec, suite: Suite) -> WarmStart | None:
    """The starting weights of a fine-tuning row (``training.init``): a file, identified by
    its SHA-256, or another row's weights (its training job, or its checkpoint file)."""
    assert spec.training is not None
    init = spec.training.init_source
    if init is None:
        return None
    if init.row is None:
        sha = weights_sha256(init.path, init.sha256)
        return WarmStart(sha, init.path, init.url, tuple(suite.weights_dir))
    parent = next(m for m in suite.models if m.row_name == init.row)  # checked at load
    if parent.training is not None:
        return WarmStart(job=training_job(parent, suite))
    source = parent.checkpoint_source
    assert source is not None  # the loader allows only trained or checkpoint rows
    return WarmStart(
        weights_sha256(source.path, source.sha256),
        source.path,
        source.url,
        tuple(suite.weights_dir),
        parent.checkpoint_key,
        parent.strip_prefix,
    )


def training_job(spec: ModelSpec, suite: Suite) -> TrainingJob:
    assert spec.training is not None
    validation = spec.training.validation
    content = {"train": split_fingerprint(suite, "train")}
    if validation:
        content["val"] = split_fingerprint(suite, "val")
    return TrainingJob(
        model_key=spec.model,
        model_params=key_params(spec.model, spec.params),
        recipe=spec.training.recipe,
        recipe_params=spec.training.params,
        data={
            "dataset": suite.dataset.name,
            "train": "train",
            "val": "val" if validation else None,
            "content": content,
        },
        seed=suite.seed if spec.training.seed is None else spec.training.seed,
        normalization=spec.normalization_override,
        autocast=spec.training.autocast,
        init=warm_start(spec, suite),
        channels_last=spec.training.channels_last,
    )


def model_identity(spec: ModelSpec, suite: Suite) -> dict[str, Any]:
    """The model's part of a job's seed key (and key); :func:`model_versions` adds its code."""
    if spec.ensemble is not None:  # every member's identity: retraining one reruns the row
        members = [model_identity(member, suite) for member in suite.ensemble_members(spec)]
        return {"ensemble": members, "combine": "mean_softmax"}
    identity: dict[str, Any] = {
        "model": spec.model,
        "params": key_params(spec.model, spec.params),
    }
    if spec.normalization is not None:  # only when set: other models keep their keys
        identity["normalization"] = spec.normalization_override
    if (source := spec.checkpoint_source) is not None:
        # a URL checkpoint is identified by its declared hash: no download to compute a key
        identity["checkpoint_sha256"] = weights_sha256(source.path, source.sha256)
        extraction = {"checkpoint_key": spec.checkpoint_key, "strip_prefix": spec.strip_prefix}
        identity.update({k: v for k, v in extraction.items() if v is not None})
    elif spec.training is not None:
        identity["training"] = training_job(spec, suite).seed_key()
    elif spec.pretrained:
        identity["pretrained"] = True
    else:
        identity["random_init_seed"] = suite.seed
    return identity


def model_versions(spec: ModelSpec, suite: Suite) -> dict[str, Any]:
    """The code of the model (its builder's source file) and, when trained, its checkpoint
    key (the builder's and recipe's code, the training data's content)."""
    if spec.ensemble is not None:
        return {
            "ensemble": [model_versions(member, suite) for member in suite.ensemble_members(spec)]
        }
    versions: dict[str, Any] = {"code": model_code_version(spec.model)}
    if spec.checkpoint_source is None and spec.training is not None:
        versions["checkpoint"] = training_job(spec, suite).key()
    return versions


def evaluation_identity(spec: EvaluationSpec) -> dict[str, Any]:
    """The evaluation's part of a job key (:meth:`ResolvedEvaluation.identity`)."""
    return spec.resolved.identity()


def evaluation_autocast(suite: Suite, evaluation: EvaluationSpec) -> str | None:
    """The precision the evaluation's prediction passes run in: the suite's ``autocast``
    for a :class:`~benchmark.evaluations.capabilities.PredictionOnly` evaluation, None
    (float32) for every other (attacks always craft and score in float32)."""
    return suite.autocast if evaluation.resolved.prediction_only else None


def data_identity(suite: Suite) -> dict[str, Any]:
    d = suite.dataset
    identity: dict[str, Any] = {
        "name": d.name,
        "split": d.split,
        "n_examples": d.n_examples,
        "subset_seed": d.subset_seed,
    }
    if d.holdout is not None:  # only when set: suites without one keep their keys
        identity["holdout"] = {"n": d.holdout, "seed": d.holdout_seed}
    return identity


def posthoc_identity(posthoc: PosthocSpec, suite: Suite) -> dict[str, Any]:
    """The post-hoc row's method, parameters and fitting data ('val', or the suite's
    held-out draw of the evaluation split: its size and seed)."""
    entry = POSTHOC.get(posthoc.method)
    d = suite.dataset
    fitted_on: Any = "val"
    if posthoc.fitting_split(d) == "holdout":
        fitted_on = {"holdout": d.holdout, "seed": d.holdout_seed, "split": d.split}
    return {
        "method": posthoc.method,
        "params": entry.params_model.model_validate(posthoc.params).model_dump(),
        "fitted_on": fitted_on,
    }


@dataclass(frozen=True)
class Job:
    model: ModelSpec
    posthoc: PosthocSpec | None  # None: the model itself; else the post-hoc row
    row_name: str  # leaderboard row
    evaluation: EvaluationSpec
    key: str
    evaluation_name: str  # leaderboard column prefix
    # What the job's random numbers are derived from: the key without settings that change
    # only float rounding (channels_last, compile, autocast), so such settings do not change
    # the draws.
    seed_key: str

    @property
    def label(self) -> str:
        return f"{self.row_name} x {self.evaluation_name}"


@dataclass(frozen=True)
class Task:
    """A unit of execution: a whole job, or the example range ``shard`` = (start, stop) of a
    sharded one. A shard has its own cache key; its job's seed is shared by all its shards."""

    job: Job
    shard: tuple[int, int] | None = None

    @property
    def key(self) -> str:
        if self.shard is None:
            return self.job.key
        return stable_hash({"job": self.job.key, "shard": list(self.shard)})

    @property
    def label(self) -> str:
        if self.shard is None:
            return self.job.label
        return f"{self.job.label} [{self.shard[0]}:{self.shard[1]}]"


def surrogate_versions(suite: Suite, evaluation: EvaluationSpec) -> dict[str, Any] | None:
    """What the evaluation's transfer attacks craft on: each surrogate row's identity and
    code (None when it names none). A name that is not a base row is a one-line error."""
    names = surrogate_rows(evaluation.type, evaluation.resolved.params.model_dump())
    if not names:
        return None
    rows = {m.row_name: m for m in suite.models}
    versions = {}
    for name in names:
        if name not in rows:
            raise BenchmarkError(
                f"evaluation '{evaluation.resolved.name}': surrogate '{name}' is not a model "
                f"row of the suite (rows: {', '.join(rows)})"
            )
        spec = rows[name]
        versions[name] = {
            "identity": model_identity(spec, suite),
            "code": model_versions(spec, suite),
        }
    return versions


def plugin_code(evaluation: EvaluationSpec) -> dict[str, str] | None:
    """The code of a plugin's evaluation class and plugin attacks it runs (their files and
    what they import from the plugin's folder, :func:`benchmark.fingerprints.plugin_digest`):
    editing them recomputes the jobs. The project's own evaluations and attacks are keyed by
    their ``version`` instead; None when only those run."""
    from benchmark.attacks import ATTACKS

    resolved = evaluation.resolved
    owners: dict[str, Any] = {f"evaluation:{resolved.type}": resolved.cls}
    for key in resolved.cls.attacks_used(resolved.params):
        owners[f"attack:{key}"] = ATTACKS.get(key).obj
    found = {name: source_digest(obj) for name, obj in owners.items() if is_plugin_code(obj)}
    return found or None


def job_versions(
    model: dict[str, Any],
    evaluated: dict[str, Any],
    evaluation: EvaluationSpec,
    fitted_on: dict[str, Any] | None,
    surrogates: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The part of a job's key left out of its seeds: the model's code (``model``, from
    :func:`model_versions`) and the content of the data read -- the evaluated split
    (``evaluated``), the post-hoc row's ``val`` split (``fitted_on``) and what the evaluation
    reads itself (:meth:`~benchmark.evaluations.base.Evaluation.data_identity`)."""
    versions = {"model": model, "data": evaluated}
    if (plugin := plugin_code(evaluation)) is not None:
        versions["plugin_code"] = plugin
    if fitted_on is not None:
        versions["posthoc_data"] = fitted_on
    if (own := evaluation.resolved.data_identity()) is not None:
        versions["evaluation_data"] = own
    if surrogates is not None:
        versions["surrogates"] = surrogates
    return versions


def expand_jobs(suite: Suite, device_type: str) -> list[Job]:
    data = data_identity(suite)
    evaluated = split_fingerprint(suite, suite.dataset.split)
    val: list[dict[str, Any]] = []  # the val split's fingerprint, once a post-hoc row needs it
    jobs = []
    surrogates = {e.resolved.name: surrogate_versions(suite, e) for e in suite.evaluations}
    for model in suite.models:
        base_identity = model_identity(model, suite)
        code = model_versions(model, suite)
        variants: list[PosthocSpec | None] = [None, *model.posthoc]
        for posthoc, row_name in zip(variants, model.row_names(), strict=True):
            identity = dict(base_identity)
            fitted_on = None
            if posthoc is not None:
                identity["posthoc"] = posthoc_identity(posthoc, suite)
                if posthoc.fitting_split(suite.dataset) == "holdout":
                    fitted_on = evaluated  # a part of the evaluated split
                else:
                    val = val or [split_fingerprint(suite, "val")]
                    fitted_on = val[0]
            for evaluation in suite.evaluations:
                if not evaluation.applies_to(row_name):
                    continue
                identity_of_numbers = {
                    "model": identity,
                    "evaluation": evaluation_identity(evaluation),
                    "data": data,
                    "seed": suite.seed,
                    "device": device_type,
                }
                seed_key = stable_hash(identity_of_numbers)
                # rounding-only settings enter the key only when set (autocast: only where
                # it applies), so that keys without them stay as they were
                rounding: dict[str, Any] = {
                    "channels_last": suite.channels_last,
                    "compile": suite.compile,
                }
                rounding = {k: True for k, v in rounding.items() if v}
                if (autocast := evaluation_autocast(suite, evaluation)) is not None:
                    rounding["autocast"] = autocast
                versions = job_versions(
                    code, evaluated, evaluation, fitted_on, surrogates[evaluation.resolved.name]
                )
                key = stable_hash({**identity_of_numbers, **rounding, "versions": versions})
                name = evaluation.resolved.name
                jobs.append(Job(model, posthoc, row_name, evaluation, key, name, seed_key))
    return jobs
