"""The suite file format, as pydantic models (structure only).

Structure is checked here; what depends on registries (model keys, builder parameters,
evaluation types, recipes, plugins) is checked in :mod:`benchmark.suite.loader`, which knows
the registries after importing plugins. Unknown keys are errors everywhere: a misspelt
option silently ignored is how a benchmark reports the wrong number.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

if TYPE_CHECKING:
    from benchmark.suite.resolved import ResolvedEvaluation

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"
# Mixed precision (torch.autocast to bfloat16 / float16); None is float32. The dtypes are in
# benchmark.inference.AUTOCAST_DTYPES.
Autocast = Literal["bf16", "fp16"]
SHA256_PATTERN = r"^[0-9a-f]{64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Strict):
    name: str = Field(description="registered dataset key, e.g. 'digits' or 'cifar10'")
    root: str = Field("data", description="directory holding the data files")
    split: Literal["train", "val", "test"] = "test"
    n_examples: int | None = Field(None, ge=1, description="evaluate a fixed, seeded subset")
    subset_seed: int = Field(
        0, ge=0, lt=2**63, description="seed of the subset permutation (same for all models)"
    )
    download: bool = False
    holdout: int | None = Field(
        None,
        ge=1,
        description="hold out this many examples of the evaluation split (a seeded draw, "
        "removed from every row's evaluation) for post-hoc fitting: images a checkpoint "
        "trained elsewhere cannot have seen, unlike the 'val' split carved from 'train'",
    )
    holdout_seed: int = Field(0, ge=0, lt=2**63, description="seed of the held-out draw")


class InitSource(_Strict):
    """Where a warm start's weights come from: a file (as a model's ``checkpoint``) or
    another row of the same suite."""

    path: str | None = Field(None, description="local weights file (.pt, .pth, .th, .safetensors)")
    url: str | None = Field(
        None, pattern=r"^(https?|file)://", description="download from here (once, cached)"
    )
    sha256: str | None = Field(
        None, pattern=SHA256_PATTERN, description="expected SHA-256 (64 lowercase hex digits)"
    )
    row: str | None = Field(
        None, pattern=NAME_PATTERN, description="start from this row's weights (same suite)"
    )

    @model_validator(mode="after")
    def _one_location(self) -> InitSource:
        if sum(v is not None for v in (self.path, self.url, self.row)) != 1:
            raise ValueError("give exactly one of 'path', 'url' or 'row'")
        if self.url is not None and self.sha256 is None:
            raise ValueError("a 'url' needs its 'sha256' (downloads are always verified)")
        if self.row is not None and self.sha256 is not None:
            raise ValueError("'sha256' belongs to a 'path' or 'url', not a 'row'")
        return self


class TrainingSpec(_Strict):
    recipe: str = Field(description="registered training recipe, e.g. 'standard'")
    params: dict[str, Any] = Field(default_factory=dict)
    validation: bool = Field(True, description="track accuracy on the dataset's 'val' split")
    seed: int | None = Field(
        None,
        ge=0,
        lt=2**63,
        description="training seed (default: the suite's); distinct seeds give independent "
        "runs of one model, e.g. for robustness_ranking's replica_groups",
    )
    autocast: Autocast | None = Field(
        None,
        description="mixed-precision training: forward passes and losses under torch.autocast "
        "to bf16 or fp16 (fp16 with a gradient scaler); default float32. Part of the "
        "checkpoint key when set; same initialization and data order as float32",
    )
    channels_last: bool = Field(
        False,
        description="train with NHWC weights and inputs (faster convolutions on CPU, "
        "benchmarks/results/training_step.md); not bit-comparable with NCHW training "
        "(rounding, and noise or dropout drawn in the activations' layout), so part of the "
        "checkpoint key when set; saved in the usual NCHW layout",
    )
    init: str | InitSource | None = Field(
        None,
        description="warm start (fine-tuning): the weights training starts from instead of "
        "a random initialization: a checkpoint file path, {path|url, sha256}, or {row: name} "
        "(another row of the suite, trained or loaded first). The weights' SHA-256 (or the "
        "row's checkpoint key) is part of this row's checkpoint key",
    )

    @field_validator("init", mode="before")
    @classmethod
    def _init_mapping(cls, value: object) -> object:
        return value if isinstance(value, str) else _as_model(value, InitSource)

    @property
    def init_source(self) -> InitSource | None:
        """``init`` as an :class:`InitSource` (a plain string is a path)."""
        if isinstance(self.init, str):
            return InitSource(path=self.init)
        return self.init


FitOn = Literal["auto", "val", "holdout"]


class PosthocSpec(_Strict):
    """A post-hoc method fitted on held-out data; adds a leaderboard row."""

    method: str = Field(description="registered post-hoc method, e.g. 'temperature' or 'pep'")
    params: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.-]+$", description="row suffix (default: the method)"
    )
    fit_on: FitOn = Field(
        "auto",
        description="fitting data: 'holdout' (dataset.holdout, held out of the evaluation "
        "split), 'val' (carved from the training images), or 'auto': holdout when the suite "
        "has one, else val",
    )

    def fitting_split(self, dataset: DatasetSpec) -> Literal["val", "holdout"]:
        """Where this row is fitted: ``fit_on`` with 'auto' resolved against the dataset."""
        if self.fit_on == "auto":
            return "holdout" if dataset.holdout is not None else "val"
        return self.fit_on

    @property
    def suffix(self) -> str:
        return self.name or self.method


def _as_model(value: object, model: type[BaseModel]) -> object:
    """Validate a mapping into ``model`` with its errors as one message, so that a union
    field (``str | mapping``) reports what is wrong with the mapping, not both alternatives."""
    if value is None or isinstance(value, model):
        return value
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping for {model.__name__} (got {value!r})")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        from benchmark.registry import format_validation_error

        lines = [line.removeprefix("<top level>: ") for line in format_validation_error(exc)]
        raise ValueError("; ".join(lines)) from None


class CheckpointSource(_Strict):
    """Where a model's weights come from: a local file, or a URL downloaded once.

    A URL needs its SHA-256: the download is verified before use, and a file with that hash
    in a weights directory (suite ``weights_dir``, ``$BENCHMARK_WEIGHTS_DIR``) or in the
    weights cache is used without any network access. A local ``path`` with ``sha256`` is
    checked too (so ``validate`` catches a replaced file).
    """

    path: str | None = Field(None, description="local weights file (.pt, .pth, .th, .safetensors)")
    url: str | None = Field(
        None, pattern=r"^(https?|file)://", description="download from here (once, cached)"
    )
    sha256: str | None = Field(
        None, pattern=SHA256_PATTERN, description="expected SHA-256 (64 lowercase hex digits)"
    )

    @model_validator(mode="after")
    def _one_location(self) -> CheckpointSource:
        if (self.path is None) == (self.url is None):
            raise ValueError("give exactly one of 'path' or 'url'")
        if self.url is not None and self.sha256 is None:
            raise ValueError("a 'url' needs its 'sha256' (downloads are always verified)")
        return self


class Normalization(_Strict):
    """Per-channel ``(x - mean) / std`` applied inside the model, replacing the dataset's."""

    mean: list[float] = Field(min_length=1)
    std: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Normalization:
        if len(self.mean) != len(self.std):
            raise ValueError(
                f"mean has {len(self.mean)} values but std has {len(self.std)}; give one per "
                "channel"
            )
        if any(s <= 0 for s in self.std):
            raise ValueError("every std must be > 0")
        return self


class EnsembleSpec(_Strict):
    """A deep-ensemble row: members of the row's architecture whose probabilities are averaged
    (:class:`models.ensemble.Ensemble`). Members are either trained by the row's ``training``
    recipe with distinct ``seeds`` (Lakshminarayanan et al.: independent initialisations and
    data orders), or loaded from ``checkpoints``; the row's cache key covers every member."""

    seeds: list[int] | None = Field(
        None, min_length=2, description="one member per training seed (needs 'training')"
    )
    checkpoints: list[str | CheckpointSource] | None = Field(
        None, min_length=2, description="one member per weights file: a path or {path|url, sha256}"
    )
    rows: list[str] | None = Field(
        None,
        min_length=2,
        description="one member per other row of the suite (any architectures: e.g. ResNets "
        "of several depths); the row's own 'model' names its arch column only",
    )

    @field_validator("checkpoints", mode="before")
    @classmethod
    def _checkpoint_mappings(cls, value: object) -> object:
        if not isinstance(value, list):
            return value
        return [v if isinstance(v, str) else _as_model(v, CheckpointSource) for v in value]

    @model_validator(mode="after")
    def _one_kind(self) -> EnsembleSpec:
        if sum(v is not None for v in (self.seeds, self.checkpoints, self.rows)) != 1:
            raise ValueError(
                "give exactly one of 'seeds' (trained members), 'checkpoints' or 'rows'"
            )
        if self.rows is not None and len(set(self.rows)) != len(self.rows):
            raise ValueError(f"rows must be distinct (got {self.rows})")
        if self.seeds is not None:
            if len(set(self.seeds)) != len(self.seeds):
                raise ValueError(f"seeds must be distinct (got {self.seeds})")
            if any(seed < 0 or seed >= 2**63 for seed in self.seeds):
                raise ValueError("seeds must lie in [0, 2**63)")
        return self


class ModelSpec(_Strict):
    name: str | None = Field(None, pattern=NAME_PATTERN, description="leaderboard row name")
    model: str = Field(description="registered model key")
    params: dict[str, Any] = Field(default_factory=dict, description="builder parameters")
    checkpoint: str | CheckpointSource | None = Field(
        None, description="weights: a file path, or {path|url, sha256}"
    )
    checkpoint_key: str | None = Field(
        None,
        min_length=1,
        description="dotted path of the state dict inside the checkpoint (when guessing is "
        "ambiguous), e.g. 'state_dict' or 'model.ema'",
    )
    strip_prefix: str | None = Field(
        None, min_length=1, description="remove this prefix from every weight name"
    )
    normalization: Normalization | Literal["none"] | None = Field(
        None,
        description="the model's own input normalization {mean: [...], std: [...]} or 'none' "
        "(inputs in [0, 1] reach the network unchanged); default: the dataset's",
    )
    training: TrainingSpec | None = None
    random_init: bool = Field(False, description="untrained weights from the seed (tests only)")
    pretrained: bool = Field(
        False, description="weights come with the model itself (e.g. robustbench:<name>)"
    )
    posthoc: list[PosthocSpec] = Field(
        default_factory=list, description="extra rows: <name>+<method>, fitted on 'val'"
    )
    ensemble: EnsembleSpec | None = Field(
        None, description="a deep ensemble of this architecture: {seeds: [...]} or {checkpoints}"
    )

    @field_validator("checkpoint", mode="before")
    @classmethod
    def _checkpoint_mapping(cls, value: object) -> object:
        return value if isinstance(value, str) else _as_model(value, CheckpointSource)

    @field_validator("normalization", mode="before")
    @classmethod
    def _normalization_mapping(cls, value: object) -> object:
        if isinstance(value, str):
            if value != "none":
                raise ValueError(f"expected 'none' or {{mean: [...], std: [...]}} (got {value!r})")
            return value
        return _as_model(value, Normalization)

    @model_validator(mode="after")
    def _one_weight_source(self) -> ModelSpec:
        if self.ensemble is not None:
            if self.ensemble.seeds is not None and self.training is None:
                raise ValueError("ensemble.seeds trains one member per seed: add 'training'")
            if self.ensemble.seeds is not None and self.training.seed is not None:  # type: ignore[union-attr]
                raise ValueError("give the members' seeds in ensemble.seeds, not training.seed")
            if self.ensemble.seeds is None and (
                self.checkpoint is not None or self.training is not None
            ):
                kind = "checkpoints" if self.ensemble.checkpoints is not None else "rows"
                raise ValueError(
                    f"ensemble.{kind} is the weight source: drop 'checkpoint'/'training'"
                )
            if self.random_init or self.pretrained:
                raise ValueError(
                    "an ensemble's members are trained or loaded, not 'random_init'/'pretrained'"
                )
            if self.checkpoint_key or self.strip_prefix:
                raise ValueError("'checkpoint_key'/'strip_prefix' apply to one 'checkpoint'")
            return self
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
        if self.checkpoint is None and (self.checkpoint_key or self.strip_prefix):
            raise ValueError("'checkpoint_key' and 'strip_prefix' need a 'checkpoint'")
        return self

    @property
    def checkpoint_source(self) -> CheckpointSource | None:
        """``checkpoint`` as a :class:`CheckpointSource` (a plain string is a path)."""
        if isinstance(self.checkpoint, str):
            return CheckpointSource(path=self.checkpoint)
        return self.checkpoint

    @property
    def normalization_override(
        self,
    ) -> tuple[tuple[float, ...], tuple[float, ...]] | Literal["none"] | None:
        """What :func:`models.build_model` takes: (mean, std), "none", or None (dataset's)."""
        if self.normalization is None or self.normalization == "none":
            return self.normalization
        return tuple(self.normalization.mean), tuple(self.normalization.std)

    @property
    def row_name(self) -> str:
        return self.name or self.model

    def members(self) -> list[ModelSpec]:
        """An ensemble row's members as plain model specs (one weight source each, no
        post-hoc rows); [] for a single model."""
        if self.ensemble is None:
            return []
        plain: dict[str, Any] = {"ensemble": None, "posthoc": [], "name": None}
        if self.ensemble.seeds is not None:
            assert self.training is not None
            return [
                self.model_copy(
                    update={**plain, "training": self.training.model_copy(update={"seed": s})}
                )
                for s in self.ensemble.seeds
            ]
        return [
            self.model_copy(update={**plain, "checkpoint": c})
            for c in self.ensemble.checkpoints or []
        ]

    def row_names(self) -> list[str]:
        """The base row and one row per post-hoc method."""
        return [self.row_name] + [f"{self.row_name}+{p.suffix}" for p in self.posthoc]


class EvaluationSpec(_Strict):
    type: str = Field(description="registered evaluation type, e.g. 'clean'")
    name: str | None = Field(
        None,
        # '/' is allowed (default names such as pgd_linf_8/255 have it; it becomes '_' in
        # file names) but no '..' component, so a name never climbs out of a folder
        pattern=r"^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*(/[A-Za-z0-9_+-][A-Za-z0-9_.+-]*)*$",
        description="column prefix (default from params)",
    )
    params: dict[str, Any] = Field(default_factory=dict)
    shard_size: int | None = Field(
        None, ge=1, description="split into example ranges of this size (parallel, resumable)"
    )
    models: list[str] | None = Field(
        None,
        min_length=1,
        description="evaluate only these rows (row names, post-hoc rows included); default: "
        "every row. The others show no value in this evaluation's columns",
    )
    _resolved: ResolvedEvaluation | None = PrivateAttr(None)

    def applies_to(self, row_name: str) -> bool:
        """Whether this evaluation runs on the row ``row_name``."""
        return self.models is None or row_name in self.models

    @property
    def resolved(self) -> ResolvedEvaluation:
        """This evaluation resolved against the registry (class, typed parameters, column
        name, key identity): computed once per spec and process, the only way downstream
        code reads an evaluation's parameters (:mod:`benchmark.suite.resolved`)."""
        if self._resolved is None:
            from benchmark.suite.resolved import resolve_evaluation

            self._resolved = resolve_evaluation(self)
        return self._resolved

    def __getstate__(self) -> dict[Any, Any]:
        # Jobs travel to worker processes by pickle; the resolution holds classes that may
        # come from plugins the unpickling side has not imported yet, so it is redone there.
        state = super().__getstate__()
        return {**state, "__pydantic_private__": {"_resolved": None}}

    def __eq__(self, other: object) -> bool:
        # the fields only: a resolved spec equals its unresolved copy
        if not isinstance(other, EvaluationSpec):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    __hash__ = BaseModel.__hash__


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


class ClaimSpec(_Strict):
    """A claim of a paper, checked on this run's per-example results with a paired test.

    Two forms. A comparison: ``better`` is better than ``than`` (another row) on the column
    ``on``, or than its own column ``than_on`` (e.g. one robustness bin against another);
    "better" follows the column's declared direction. A bound: ``row``'s ``on`` is
    ``at_least`` / ``at_most`` a value. ``on`` / ``than_on`` name leaderboard columns
    (``<evaluation name>_<metric>``)."""

    name: str | None = Field(
        None, pattern=NAME_PATTERN, description="the claim's id (default: from its fields)"
    )
    source: str = Field("", description="where the claim comes from, e.g. 'PEP, Table 2'")
    published: str = Field("", description="the paper's number(s), as text, for the report")
    on: str = Field(min_length=1, description="the leaderboard column compared")
    better: str | None = Field(None, description="the row claimed better")
    than: str | None = Field(None, description="the row claimed worse (default: 'better')")
    than_on: str | None = Field(None, description="the worse side's column (default: 'on')")
    row: str | None = Field(None, description="the row of a bound claim")
    at_least: float | None = None
    at_most: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: object) -> object:
        """YAML 1.1 (PyYAML) reads a bare ``on:`` key as the boolean true: take it back."""
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if k is True else k): v for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _one_form(self) -> ClaimSpec:
        bound = self.at_least is not None or self.at_most is not None
        if bound:
            if self.row is None or self.better or self.than or self.than_on:
                raise ValueError(
                    "a bound claim names 'row', 'on' and 'at_least'/'at_most' (not 'better'/"
                    "'than'/'than_on')"
                )
            if self.at_least is not None and self.at_most is not None:
                raise ValueError("give one of 'at_least' or 'at_most'")
            return self
        if self.row is not None or self.better is None:
            raise ValueError(
                "a comparison claim names 'better', 'on' and 'than' (another row) and/or "
                "'than_on' (another column); a bound claim: 'row', 'on', 'at_least'/'at_most'"
            )
        if (self.than or self.better) == self.better and (self.than_on or self.on) == self.on:
            raise ValueError("'than' or 'than_on' must differ from 'better' / 'on'")
        return self

    @property
    def worse_row(self) -> str:
        return self.than or self.better or ""

    @property
    def worse_column(self) -> str:
        return self.than_on or self.on

    @property
    def claim_id(self) -> str:
        if self.name:
            return self.name
        if self.row is not None:
            op, value = (
                ("at_least", self.at_least)
                if self.at_least is not None
                else (
                    "at_most",
                    self.at_most,
                )
            )
            return f"{self.row}:{self.on}:{op}:{value:g}"
        worse = self.worse_row if self.than_on is None else f"{self.worse_row}:{self.than_on}"
        return f"{self.better}>{worse}:{self.on}"


class Suite(_Strict):
    # The file the suite was loaded from (absolute; None when built in code): the leaderboard
    # files record it, so a second suite file with the same name cannot overwrite them.
    _source: str | None = PrivateAttr(None)

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    seed: int = Field(0, ge=0, lt=2**63, description="the run's seed (every job derives its own)")
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
    autocast: Autocast | None = Field(
        None,
        description="run the prediction passes of prediction-only evaluations (clean, "
        "corruptions, ood_detection, consistency, ensemble_size) under torch.autocast to "
        "bf16 or fp16; attacks, sanity checks and minimal-norm ranking always craft and "
        "score in float32. Default float32; part of those jobs' cache keys when set",
    )
    dataset: DatasetSpec
    models: list[ModelSpec] = Field(min_length=1)
    evaluations: list[EvaluationSpec] = Field(min_length=1)
    output_dir: str | None = Field(None, description="run directory; default runs/<name>")
    cache_dir: str | None = Field(
        None, description="result/checkpoint cache; default <output_dir>/cache"
    )
    leaderboard_dir: str = "leaderboard"
    weights_dir: list[str] = Field(
        default_factory=list,
        description="folders searched (by SHA-256) for checkpoint files before downloading; "
        "also $BENCHMARK_WEIGHTS_DIR",
    )
    plugins: list[str] = Field(
        default_factory=list,
        description="modules (importable names, or .py files relative to the suite file) "
        "that register extras",
    )
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
    fallbacks: bool | dict[str, Any] = Field(
        True,
        description="add, per threat model of the attack evaluations, an automatic 'adaptive' "
        "step (fallbacks_<norm>_<eps>) that runs the fallback attacks on rows whose "
        "indicators of attack failure fire; the headline takes the per-example worst case. "
        "A mapping sets the step's adaptive parameters, e.g. {decision_based: {type: "
        "hopskipjump, params: {steps: 8}}}",
    )
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    claims: list[ClaimSpec] = Field(
        default_factory=list,
        description="papers' claims, each checked with a paired test after the leaderboard",
    )
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level of the claims' tests")
    claims_resamples: int = Field(
        2000, ge=100, description="paired bootstrap resamples per claim (seeded by 'seed')"
    )

    @field_validator("weights_dir", mode="before")
    @classmethod
    def _one_folder_is_a_list(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _unique_model_names(self) -> Suite:
        names = [name for m in self.models for name in m.row_names()]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"models: duplicate name(s) {duplicates}; set distinct 'name:'s")
        return self

    @model_validator(mode="after")
    def _holdout_fits_need_a_holdout(self) -> Suite:
        for model in self.models:
            for posthoc in model.posthoc:
                if posthoc.fit_on == "holdout" and self.dataset.holdout is None:
                    raise ValueError(
                        f"models: '{model.row_name}+{posthoc.suffix}' has fit_on: holdout but "
                        "dataset.holdout is not set (e.g. dataset: {holdout: 5000})"
                    )
        return self

    def ensemble_members(self, spec: ModelSpec) -> list[ModelSpec]:
        """An ensemble row's members as plain model specs (``ensemble.rows``: those rows of
        this suite, without their post-hoc rows); [] for a single model."""
        if spec.ensemble is None or spec.ensemble.rows is None:
            return spec.members()
        by_name = {m.row_name: m for m in self.models}
        return [by_name[name].model_copy(update={"posthoc": []}) for name in spec.ensemble.rows]

    @property
    def run_dir(self) -> str:
        return self.output_dir or f"runs/{self.name}"

    @property
    def cache_root(self) -> str:
        return self.cache_dir or f"{self.run_dir}/cache"
