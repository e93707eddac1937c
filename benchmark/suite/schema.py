"""The suite file format, as pydantic models (structure only).

Structure is checked here; what depends on registries (model keys, builder parameters,
evaluation types, recipes, plugins) is checked in :mod:`benchmark.suite.loader`, which knows
the registries after importing plugins. Unknown keys are errors everywhere: a misspelt
option silently ignored is how a benchmark reports the wrong number.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Strict):
    name: str = Field(description="registered dataset key, e.g. 'digits' or 'cifar10'")
    root: str = Field("data", description="directory holding the data files")
    split: Literal["train", "val", "test"] = "test"
    n_examples: int | None = Field(None, ge=1, description="evaluate a fixed, seeded subset")
    subset_seed: int = Field(0, description="seed of the subset permutation (same for all models)")
    download: bool = False


class TrainingSpec(_Strict):
    recipe: str = Field(description="registered training recipe, e.g. 'standard'")
    params: dict[str, Any] = Field(default_factory=dict)
    validation: bool = Field(True, description="track accuracy on the dataset's 'val' split")
    seed: int | None = Field(
        None,
        description="training seed (default: the suite's); distinct seeds give independent "
        "runs of one model, e.g. for robustness_ranking's replica_groups",
    )


class PosthocSpec(_Strict):
    """A post-hoc method fitted on the dataset's 'val' split; adds a leaderboard row."""

    method: str = Field(description="registered post-hoc method, e.g. 'temperature' or 'pep'")
    params: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]+$", description="row suffix (default: the method)"
    )

    @property
    def suffix(self) -> str:
        return self.name or self.method


class ModelSpec(_Strict):
    name: str | None = Field(None, pattern=NAME_PATTERN, description="leaderboard row name")
    model: str = Field(description="registered model key")
    params: dict[str, Any] = Field(default_factory=dict, description="builder parameters")
    checkpoint: str | None = Field(None, description="weights file (.pt or .safetensors)")
    training: TrainingSpec | None = None
    random_init: bool = Field(False, description="untrained weights from the seed (tests only)")
    pretrained: bool = Field(
        False, description="weights come with the model itself (e.g. robustbench:<name>)"
    )
    posthoc: list[PosthocSpec] = Field(
        default_factory=list, description="extra rows: <name>+<method>, fitted on 'val'"
    )

    @model_validator(mode="after")
    def _one_weight_source(self) -> ModelSpec:
        sources = [
            self.checkpoint is not None,
            self.training is not None,
            self.random_init,
            self.pretrained,
        ]
        if sum(sources) != 1:
            raise ValueError(
                "give exactly one weight source: 'checkpoint', 'training', 'pretrained: true' "
                "or 'random_init: true'"
            )
        return self

    @property
    def row_name(self) -> str:
        return self.name or self.model

    def row_names(self) -> list[str]:
        """The base row and one row per post-hoc method."""
        return [self.row_name] + [f"{self.row_name}+{p.suffix}" for p in self.posthoc]


class EvaluationSpec(_Strict):
    type: str = Field(description="registered evaluation type, e.g. 'clean'")
    name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_./+-]+$", description="column prefix (default from params)"
    )
    params: dict[str, Any] = Field(default_factory=dict)
    shard_size: int | None = Field(
        None, ge=1, description="split into example ranges of this size (parallel, resumable)"
    )


class ExecutorSpec(_Strict):
    """Where the suite's jobs run. Results land in the same cache whatever the executor, and
    every job is seeded from its key, so the numbers do not depend on this section."""

    kind: str = Field("local", description="registered executor: local | process | ray")
    workers: int | None = Field(
        None, ge=1, le=1024, description="parallel jobs (default: CPU cores; local: 1)"
    )
    ray_address: str | None = Field(
        None, description="existing Ray cluster (e.g. 'ray://head:10001'); default: start one"
    )


class Suite(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: int = Field(256, ge=1)
    channels_last: bool = Field(
        False,
        description="evaluate with NHWC weights and inputs: faster convolutions on CPU/GPU, "
        "numbers equal up to float rounding (part of the cache key)",
    )
    compile: bool = Field(
        False,
        description="torch.compile each evaluated model (in place): faster forward/backward "
        "passes after a one-off compile per graph (seconds to a minute each; attacks and "
        "clean passes compile separately), numbers equal up to float rounding (part of the "
        "cache key); pays off for long attacks, not for short suites",
    )
    dataset: DatasetSpec
    models: list[ModelSpec] = Field(min_length=1)
    evaluations: list[EvaluationSpec] = Field(min_length=1)
    output_dir: str | None = Field(None, description="run directory; default runs/<name>")
    cache_dir: str | None = Field(
        None, description="result/checkpoint cache; default <output_dir>/cache"
    )
    leaderboard_dir: str = "leaderboard"
    plugins: list[str] = Field(default_factory=list, description="modules that register extras")
    references: list[str] = Field(
        default_factory=list,
        description="RobustBench JSON entries (files or model_info folders) shown as "
        "'reported' reference rows",
    )
    sanity: bool = Field(
        True,
        description="add a 'sanity' evaluation (gradient-masking checks) when the suite has "
        "an adversarial evaluation and lists no 'sanity' itself",
    )
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)

    @model_validator(mode="after")
    def _unique_model_names(self) -> Suite:
        names = [name for m in self.models for name in m.row_names()]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"models: duplicate name(s) {duplicates}; set distinct 'name:'s")
        return self

    @property
    def run_dir(self) -> str:
        return self.output_dir or f"runs/{self.name}"

    @property
    def cache_root(self) -> str:
        return self.cache_dir or f"{self.run_dir}/cache"
