"""Expanding a suite into (model, evaluation) jobs and computing their cache keys.

A job's key hashes everything that determines its numbers: the model's identity (builder,
parameters, and checkpoint hash or training recipe), the evaluation's type, code version and
fully-defaulted parameters, the code versions of the attacks it runs (when bumped past "1"),
the evaluation data, the seed and the device type. Names shown in the leaderboard are not
part of it, so renaming a row reuses its results.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.suite.schema import EvaluationSpec, ModelSpec, PosthocSpec, Suite
from benchmark.utils import stable_hash
from models.posthoc import POSTHOC
from models.registry import key_params
from models.training import TrainingJob
from models.weights import cached_sha256


def training_job(spec: ModelSpec, suite: Suite) -> TrainingJob:
    assert spec.training is not None
    return TrainingJob(
        model_key=spec.model,
        model_params=key_params(spec.model, spec.params),
        recipe=spec.training.recipe,
        recipe_params=spec.training.params,
        data={
            "dataset": suite.dataset.name,
            "train": "train",
            "val": "val" if spec.training.validation else None,
        },
        seed=suite.seed if spec.training.seed is None else spec.training.seed,
        normalization=spec.normalization_override,
    )


def model_identity(spec: ModelSpec, suite: Suite) -> dict[str, Any]:
    if spec.ensemble is not None:  # every member's identity: retraining one reruns the row
        members = [model_identity(member, suite) for member in spec.members()]
        return {"ensemble": members, "combine": "mean_softmax"}
    identity: dict[str, Any] = {
        "model": spec.model,
        "params": key_params(spec.model, spec.params),
    }
    if spec.normalization is not None:  # only when set: other models keep their keys
        identity["normalization"] = spec.normalization_override
    if (source := spec.checkpoint_source) is not None:
        # a URL checkpoint is identified by its declared hash: no download to compute a key
        identity["checkpoint_sha256"] = source.sha256 or cached_sha256(Path(source.path or ""))
        extraction = {"checkpoint_key": spec.checkpoint_key, "strip_prefix": spec.strip_prefix}
        identity.update({k: v for k, v in extraction.items() if v is not None})
    elif spec.training is not None:
        identity["training"] = training_job(spec, suite).key()
    elif spec.pretrained:
        identity["pretrained"] = True
    else:
        identity["random_init_seed"] = suite.seed
    return identity


def evaluation_identity(spec: EvaluationSpec) -> dict[str, Any]:
    """The evaluation's part of a job key (:meth:`ResolvedEvaluation.identity`)."""
    return spec.resolved.identity()


def data_identity(suite: Suite) -> dict[str, Any]:
    d = suite.dataset
    return {
        "name": d.name,
        "split": d.split,
        "n_examples": d.n_examples,
        "subset_seed": d.subset_seed,
    }


def posthoc_identity(posthoc: PosthocSpec) -> dict[str, Any]:
    entry = POSTHOC.get(posthoc.method)
    return {
        "method": posthoc.method,
        "params": entry.params_model.model_validate(posthoc.params).model_dump(),
        "fitted_on": "val",
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
    # only float rounding (channels_last, compile), so such settings do not change the draws.
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


def expand_jobs(suite: Suite, device_type: str) -> list[Job]:
    data = data_identity(suite)
    jobs = []
    for model in suite.models:
        base_identity = model_identity(model, suite)
        variants: list[PosthocSpec | None] = [None, *model.posthoc]
        for posthoc, row_name in zip(variants, model.row_names(), strict=True):
            identity = dict(base_identity)
            if posthoc is not None:
                identity["posthoc"] = posthoc_identity(posthoc)
            for evaluation in suite.evaluations:
                identity_of_numbers = {
                    "model": identity,
                    "evaluation": evaluation_identity(evaluation),
                    "data": data,
                    "seed": suite.seed,
                    "device": device_type,
                }
                seed_key = stable_hash(identity_of_numbers)
                # rounding-only settings enter the key only when set, so that suites without
                # them keep their keys
                rounding = {"channels_last": suite.channels_last, "compile": suite.compile}
                rounding = {k: True for k, v in rounding.items() if v}
                key = stable_hash({**identity_of_numbers, **rounding}) if rounding else seed_key
                name = evaluation.resolved.name
                jobs.append(Job(model, posthoc, row_name, evaluation, key, name, seed_key))
    return jobs
