"""Load and fully validate a suite file.

Validation happens in three passes, each reporting ``<file>: <field.path>: <what was expected>``:
1. YAML syntax (``yaml.safe_load`` only: a suite file can never construct Python objects);
2. structure (:mod:`benchmark.suite.schema`);
3. registry checks after importing ``plugins``: model keys and builder parameters, dataset
   names, evaluation types and parameters, training recipes and parameters, checkpoint files.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from benchmark.attacks.threat import parse_eps
from benchmark.errors import BenchmarkError
from benchmark.registry import Registry, format_validation_error
from benchmark.suite.overrides import apply_override
from benchmark.suite.safe_yaml import YamlProblem, load_bounded
from benchmark.suite.schema import EvaluationSpec, ModelSpec, Normalization, Suite
from benchmark.utils import stable_hash
from models.weights import cached_sha256

MAX_SUITE_BYTES = 1 << 20


class SuiteError(BenchmarkError):
    """Invalid suite; ``lines`` holds one self-contained message per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def load_registries() -> None:
    """Import the built-in models, datasets, evaluations and recipes (registers them)."""
    import models
    import models.training  # noqa: F401


def is_plugin_file(plugin: str) -> bool:
    """A plugin given as a ``.py`` file (path) rather than an importable module name."""
    return plugin.endswith(".py")


def _import_file(path: Path) -> None:
    """Import the plugin file ``path`` once per process, under a name derived from its
    absolute path (two files both called ``plugin.py`` do not clash)."""
    resolved = path.resolve()
    name = f"benchmark_plugin_{resolved.stem}_{stable_hash(str(resolved), 8)}"
    if name in sys.modules:
        return
    if not resolved.is_file():
        raise FileNotFoundError(f"no such file: {resolved}")
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise ImportError(f"not a Python file: {resolved}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


def import_plugins(plugins: list[str], source: str) -> None:
    """Import every plugin (module names, or ``.py`` files: absolute, or relative to the
    current directory; :func:`load_suite` makes a suite's relative to the suite file)."""
    for index, plugin in enumerate(plugins):
        try:
            if is_plugin_file(plugin):
                _import_file(Path(plugin))
            else:
                importlib.import_module(plugin)
        except (Exception, SystemExit) as exc:  # any failure inside a plugin is the user's
            reason = f"{type(exc).__name__}: {exc}"
            raise SuiteError(
                [f"{source}: plugins[{index}]: cannot import '{plugin}': {reason}"]
            ) from None


def plugins_relative_to(raw: dict[str, Any], suite_file: Path) -> None:
    """Make the suite's ``.py`` plugin paths absolute, relative to the suite file, so that
    the suite imports the same files from any working directory and in any worker."""
    plugins = raw.get("plugins")
    if not isinstance(plugins, list):
        return
    raw["plugins"] = [
        str((suite_file.parent / p).resolve())
        if isinstance(p, str) and is_plugin_file(p) and not Path(p).is_absolute()
        else p
        for p in plugins
    ]


def read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise SuiteError([f"{path}: suite file not found"])
    if path.stat().st_size > MAX_SUITE_BYTES:
        raise SuiteError([f"{path}: suite file larger than {MAX_SUITE_BYTES} bytes; refusing"])
    try:
        return load_bounded(path.read_text())
    except YamlProblem as exc:
        raise SuiteError([f"{path}: {exc}"]) from None
    except UnicodeDecodeError:
        raise SuiteError([f"{path}: not a UTF-8 text file"]) from None


def non_finite_numbers(value: Any, where: str = "") -> list[str]:
    """Paths of NaN/inf floats (YAML's .nan, .inf): no suite field means them, and a NaN
    eps or learning rate would silently poison every number downstream."""
    if isinstance(value, float) and not math.isfinite(value):
        return [f"{where or '(top level)'}: non-finite number {value} not allowed"]
    if isinstance(value, dict):
        return [
            line
            for key, item in value.items()
            for line in non_finite_numbers(item, f"{where}.{key}" if where else str(key))
        ]
    if isinstance(value, list):
        return [
            line
            for i, item in enumerate(value)
            for line in non_finite_numbers(item, f"{where}[{i}]")
        ]
    return []


def _check_params(
    registry: Registry[Any], key: str, params: dict[str, Any], field: str, source: str
) -> list[str]:
    try:
        registry.validate_params(key, params)
    except ValidationError as exc:
        return [f"{source}: {line}" for line in format_validation_error(exc, prefix=field)]
    return []


def _check_checkpoint(spec: ModelSpec, field: str, source: str) -> list[str]:
    """A local checkpoint exists (and has the declared hash); URLs are fetched at run time.
    An ensemble's member checkpoints are checked the same way."""
    if spec.ensemble is not None and spec.ensemble.checkpoints is not None:
        errors = []
        for j, member in enumerate(spec.members()):
            where = f"{field}.ensemble.checkpoints[{j}]"
            errors += [
                line.replace(f"{where}.checkpoint:", f"{where}:")
                for line in _check_checkpoint(member, where, source)
            ]
        return errors
    checkpoint = spec.checkpoint_source
    if checkpoint is None or checkpoint.path is None:
        return []
    path = Path(checkpoint.path)
    if not path.is_file():
        return [f"{source}: {field}.checkpoint: file not found: {checkpoint.path}"]
    if checkpoint.sha256 is not None and (actual := cached_sha256(path)) != checkpoint.sha256:
        return [
            f"{source}: {field}.checkpoint: {checkpoint.path} has SHA-256 {actual[:16]}..., "
            f"expected {checkpoint.sha256[:16]}..."
        ]
    return []


def _check_ensemble_rows(suite: Suite, spec: ModelSpec, field: str, source: str) -> list[str]:
    """An ensemble of rows names other single-model rows of the suite."""
    if spec.ensemble is None or spec.ensemble.rows is None:
        return []
    rows = {m.row_name: m for m in suite.models}
    errors = []
    for name in spec.ensemble.rows:
        member = rows.get(name)
        if member is None:
            errors.append(f"{source}: {field}: no row named '{name}' (rows: {', '.join(rows)})")
        elif member is spec or member.ensemble is not None:
            errors.append(
                f"{source}: {field}: '{name}' is an ensemble row; members are single models"
            )
    return errors


def _check_noise_sigma(spec: ModelSpec, field: str, source: str) -> list[str]:
    """A model whose builder takes ``sigma`` (kap_*/nt_*: it adds that input noise itself)
    trained by ``gaussian_noise`` with another sigma: refused at load, as the recipe would
    refuse it when training starts (:func:`models.training.noise.recipe_input_sigma`)."""
    from models import MODELS
    from models.training import RECIPES

    assert spec.training is not None
    if spec.training.recipe != "gaussian_noise" or spec.model not in MODELS:
        return []
    try:
        model_params = MODELS.validate_params(spec.model, spec.params)
        recipe_params = RECIPES.validate_params("gaussian_noise", spec.training.params)
    except ValidationError:
        return []  # reported by _check_params
    model_sigma = getattr(model_params, "sigma", None)
    recipe_sigma = getattr(recipe_params, "sigma", None)
    if model_sigma is None or recipe_sigma is None or not model_sigma:
        return []
    if math.isclose(model_sigma, recipe_sigma, rel_tol=1e-9, abs_tol=1e-12):
        return []
    return [
        f"{source}: {field}.training.params.sigma: {recipe_sigma} differs from the noise the "
        f"model adds itself ({field}.params.sigma {model_sigma}); give both the same sigma"
    ]


def _check_init(suite: Suite, spec: ModelSpec, field: str, source: str) -> list[str]:
    """A warm start names an existing file (with the declared hash) or another row whose
    weights are a single trained or loaded model, without a cycle of warm starts."""
    assert spec.training is not None
    init = spec.training.init_source
    if init is None:
        return []
    if init.row is None:
        as_checkpoint = ModelSpec(model=spec.model, checkpoint=init.model_dump(exclude={"row"}))
        return [
            line.replace("models[?].checkpoint:", f"{field}:")
            for line in _check_checkpoint(as_checkpoint, "models[?]", source)
        ]
    rows = {m.row_name: m for m in suite.models}
    seen = [spec.row_name]
    name: str | None = init.row
    while name is not None:
        parent = rows.get(name)
        if parent is None:
            return [f"{source}: {field}.row: no row named '{name}' (rows: {', '.join(rows)})"]
        if name in seen:
            cycle = " -> ".join([*seen, name])
            return [f"{source}: {field}.row: warm starts form a cycle ({cycle})"]
        if parent.ensemble is not None or (parent.training is None and parent.checkpoint is None):
            return [
                f"{source}: {field}.row: '{name}' has no single set of weights to start from "
                "(expected a row with 'training' or 'checkpoint')"
            ]
        seen.append(name)
        source_init = parent.training.init_source if parent.training is not None else None
        name = source_init.row if source_init is not None else None
    return []


def _check_shared_names(suite: Suite, source: str) -> list[str]:
    """No two evaluations write one leaderboard column (an fgsm named ``a`` and a clean named
    ``a_robust`` both make ``a_robust_acc_pct``) or one plot folder (``p/q`` and ``p_q``),
    and no user evaluation takes the name of the sanity evaluation added automatically."""
    errors = []
    specs = [(e, e.resolved) for e in suite.evaluations]
    for i, (_, a) in enumerate(specs):
        for j, (_, b) in enumerate(specs):
            if i == j or not b.name.startswith(f"{a.name}_"):
                continue
            rest = b.name.removeprefix(f"{a.name}_")
            for metric_b in (m for m in b.cls.metrics if not m.is_pattern):
                candidate = f"{rest}_{metric_b.name}"
                if any(m.matches(candidate) for m in a.cls.metrics):
                    errors.append(
                        f"{source}: evaluations[{j}].name: '{b.name}' and evaluations[{i}] "
                        f"'{a.name}' would both write the column '{a.name}_{candidate}'; "
                        "rename one"
                    )
                    break
    folders: dict[str, str] = {}
    for i, (_, resolved) in enumerate(specs):
        folder = resolved.name.replace("/", "_")
        if folder in folders and folders[folder] != resolved.name:
            errors.append(
                f"{source}: evaluations[{i}].name: '{resolved.name}' and '{folders[folder]}' "
                f"share the plot folder '{folder}'; rename one"
            )
        folders.setdefault(folder, resolved.name)
    adds_sanity = suite.sanity and not any(e.type == "sanity" for e, _ in specs)
    if adds_sanity and any(r.adversarial for _, r in specs):
        for i, (spec, resolved) in enumerate(specs):
            if resolved.name == "sanity":
                errors.append(
                    f"{source}: evaluations[{i}].name: 'sanity' is the name of the sanity "
                    f"evaluation added automatically (this one is a '{spec.type}'); rename it "
                    "or set 'sanity: false'"
                )
    return errors


def _check_claims(suite: Suite, source: str) -> list[str]:
    """Every claim names rows of the suite and columns with a paired test, evaluated on
    those rows, with a declared direction (comparisons), the same on both sides."""
    from benchmark.claims import find_column

    rows = [name for m in suite.models for name in m.row_names()]
    errors: list[str] = []
    for i, claim in enumerate(suite.claims):
        field = f"claims[{i}]"
        named = {"better": claim.better, "than": claim.than, "row": claim.row}
        for key, row in named.items():
            if row is not None and row not in rows:
                errors.append(
                    f"{source}: {field}.{key}: no row named '{row}' (rows: {', '.join(rows)})"
                )
        sides = [("on", claim.on, claim.row or claim.better)]
        if claim.row is None:
            sides.append(
                ("than_on" if claim.than_on else "on", claim.worse_column, claim.worse_row)
            )
        directions = []
        for key, column, row in sides:
            found = find_column(suite.evaluations, column)
            if isinstance(found, str):
                errors.append(f"{source}: {field}.{key}: {found}")
                continue
            evaluation = next(e for e in suite.evaluations if e.resolved.name == found.evaluation)
            if row in rows and row is not None and not evaluation.applies_to(row):
                errors.append(
                    f"{source}: {field}.{key}: evaluation '{found.evaluation}' does not run on "
                    f"row '{row}' (its 'models' list leaves it out)"
                )
            directions.append(found.direction)
        if claim.row is None and directions:
            if "none" in directions:
                errors.append(
                    f"{source}: {field}.on: the column declares no better direction, so "
                    "'better' has no meaning; use a bound claim (row, at_least/at_most)"
                )
            elif len(set(directions)) > 1:
                errors.append(
                    f"{source}: {field}.than_on: '{claim.on}' and '{claim.worse_column}' are "
                    "better in opposite directions; compare columns of one kind"
                )
    return errors


def _check_normalization(spec: ModelSpec, dataset: str, field: str, source: str) -> list[str]:
    """One mean/std per channel of the dataset, when the dataset declares its channels."""
    from benchmark.datasets import DATASETS

    if not isinstance(spec.normalization, Normalization) or dataset not in DATASETS:
        return []
    info = DATASETS.get(dataset).extras.get("info")
    if info is None or len(spec.normalization.mean) == info.in_channels:
        return []
    return [
        f"{source}: {field}.normalization: {len(spec.normalization.mean)} values per "
        f"statistic, expected one per channel of '{dataset}' ({info.in_channels})"
    ]


def _check_registries(suite: Suite, source: str) -> list[str]:
    from benchmark.datasets import DATASETS
    from benchmark.evaluations import EVALUATIONS
    from benchmark.evaluations.capabilities import CrossModel
    from models import MODELS
    from models.posthoc import POSTHOC
    from models.training import RECIPES

    def unknown(registry: Registry[Any], key: str, field: str) -> str:
        known = ", ".join(registry.keys())
        return f"{source}: {field}: unknown {registry.kind} '{key}' (known: {known})"

    errors: list[str] = []
    if suite.dataset.name not in DATASETS:
        errors.append(unknown(DATASETS, suite.dataset.name, "dataset.name"))
    for i, spec in enumerate(suite.models):
        field = f"models[{i}]"
        if spec.model not in MODELS:
            errors.append(unknown(MODELS, spec.model, f"{field}.model"))
        else:
            errors += _check_params(MODELS, spec.model, spec.params, f"{field}.params", source)
        errors += _check_checkpoint(spec, field, source)
        errors += _check_ensemble_rows(suite, spec, f"{field}.ensemble.rows", source)
        errors += _check_normalization(spec, suite.dataset.name, field, source)
        for j, posthoc in enumerate(spec.posthoc):
            where = f"{field}.posthoc[{j}]"
            if posthoc.method not in POSTHOC:
                errors.append(unknown(POSTHOC, posthoc.method, f"{where}.method"))
            else:
                errors += _check_params(
                    POSTHOC, posthoc.method, posthoc.params, f"{where}.params", source
                )
        if spec.training is not None:
            errors += _check_init(suite, spec, f"{field}.training.init", source)
            recipe = spec.training.recipe
            if recipe not in RECIPES:
                errors.append(unknown(RECIPES, recipe, f"{field}.training.recipe"))
            else:
                errors += _check_params(
                    RECIPES, recipe, spec.training.params, f"{field}.training.params", source
                )
                errors += _check_noise_sigma(spec, field, source)
    for i, evaluation in enumerate(suite.evaluations):
        field = f"evaluations[{i}]"
        if evaluation.type not in EVALUATIONS:
            errors.append(unknown(EVALUATIONS, evaluation.type, f"{field}.type"))
            continue
        try:  # validates the parameters, once: the resolution is kept on the spec
            resolved = evaluation.resolved
        except ValidationError as exc:
            prefix = f"{field}.params"
            errors += [f"{source}: {line}" for line in format_validation_error(exc, prefix=prefix)]
            continue
        if evaluation.models is not None:
            rows = [name for m in suite.models for name in m.row_names()]
            unknown_rows = [name for name in evaluation.models if name not in rows]
            if unknown_rows:
                errors.append(
                    f"{source}: {field}.models: no row named {', '.join(map(repr, unknown_rows))}"
                    f" (rows: {', '.join(rows)})"
                )
        if getattr(resolved.params, "save_adversarial", False):
            if not getattr(resolved.cls, "saves_adversarial", False):
                errors.append(
                    f"{source}: {field}.params.save_adversarial: evaluation type "
                    f"'{evaluation.type}' does not save adversarial examples (the single-attack "
                    "types and 'attacks' do)"
                )
            elif evaluation.shard_size is not None:
                errors.append(
                    f"{source}: {field}.params.save_adversarial: not with shard_size (the "
                    "examples are saved by unsharded runs)"
                )
        batch = getattr(resolved.params, "batch_size", None) or suite.batch_size
        if evaluation.shard_size is not None and evaluation.shard_size % batch:
            errors.append(
                f"{source}: {field}.shard_size: {evaluation.shard_size} is not a multiple of "
                f"the batch size ({batch}): shards would cut attack batches differently from "
                "an unsharded run"
            )
        if evaluation.shard_size is not None and not resolved.shardable:
            errors.append(
                f"{source}: {field}.shard_size: evaluation type '{evaluation.type}' cannot "
                "be sharded (shardable: the single-attack types and 'attacks')"
            )
    from benchmark.runner.executors import EXECUTORS

    if suite.executor.kind not in EXECUTORS:
        errors.append(unknown(EXECUTORS, suite.executor.kind, "executor.kind"))
    for i, reference in enumerate(suite.references):
        if not Path(reference).exists():
            errors.append(f"{source}: references[{i}]: file or folder not found: {reference}")
    if not errors:  # every evaluation is valid: resolve each once, for good
        rows = [row for spec in suite.models for row in spec.row_names()]
        for i, evaluation in enumerate(suite.evaluations):
            resolved = evaluation.resolved
            if issubclass(resolved.cls, CrossModel):
                errors += [
                    f"{source}: evaluations[{i}].{line}"
                    for line in resolved.cls.check_rows(
                        resolved.params, [r for r in rows if evaluation.applies_to(r)]
                    )
                ]
        errors += _check_claims(suite, source)
        errors += _check_shared_names(suite, source)
        names = [e.resolved.name for e in suite.evaluations]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            errors.append(
                f"{source}: evaluations: duplicate name(s) {duplicates}; set distinct 'name:'s"
            )
    return errors


def load_suite(path: str | Path, overrides: Sequence[str] = ()) -> Suite:
    """Read, validate and return the suite at ``path``, every evaluation resolved
    (``spec.resolved``: class, typed parameters, column name, key identity); raise
    :class:`SuiteError` if invalid.

    ``overrides`` are ``dotted.field=value`` strings (the CLI's ``--set``) applied to the
    document before validation, so an overridden suite is checked exactly like a file.
    """
    path = Path(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        got = "an empty file" if raw is None else f"a {type(raw).__name__}"
        raise SuiteError(
            [f"{path}: expected a mapping of suite fields at the top level, got {got}"]
        )
    for override in overrides:
        apply_override(raw, override)
    if bad := non_finite_numbers(raw):
        raise SuiteError([f"{path}: {line}" for line in bad])
    plugins_relative_to(raw, path)
    load_registries()
    plugins = raw.get("plugins") or []
    if isinstance(plugins, list) and all(isinstance(p, str) for p in plugins):
        import_plugins(plugins, str(path))
    try:
        suite = Suite.model_validate(raw)
    except ValidationError as exc:
        raise SuiteError([f"{path}: {line}" for line in format_validation_error(exc)]) from None
    errors = _check_registries(suite, str(path))
    if errors:
        raise SuiteError(errors)
    suite = with_fallbacks(suite, str(path)) if suite.fallbacks is not False else suite
    suite = with_sanity(suite) if suite.sanity else suite
    suite._source = str(path.resolve())
    return suite


# What the automatic step sets itself, per threat model: a suite's ``fallbacks`` mapping
# giving one of these would be silently overridden, so it is refused.
AUTO_FALLBACK_FIELDS = ("norm", "eps", "n_examples", "whitebox")


def _check_fallback_params(own: dict[str, Any], source: str) -> None:
    """Refuse a ``fallbacks`` mapping at load, whether or not the suite has a threat model
    to add the step for: fields the step sets itself, and anything ``adaptive`` refuses."""
    from benchmark.evaluations.adaptive import AdaptiveEvaluation

    reserved = [key for key in AUTO_FALLBACK_FIELDS if key in own]
    if reserved:
        raise SuiteError(
            [
                f"{source}: fallbacks.{key}: set by the automatic step per threat model "
                "(its norm, eps, smallest subset, no white-box attack of its own); add an "
                "'adaptive' evaluation to choose it"
                for key in reserved
            ]
        )
    probe = EvaluationSpec(
        type="adaptive", params={**own, **AdaptiveEvaluation.auto("Linf", "8/255", None)}
    )
    try:
        probe.resolved  # noqa: B018
    except ValidationError as exc:
        lines = format_validation_error(exc)
        raise SuiteError([f"{source}: fallbacks.{line}" for line in lines]) from None


def with_fallbacks(suite: Suite, source: str) -> Suite:
    """``suite`` plus one automatic ``adaptive`` step per threat model (norm, eps) of its
    single-eps attack evaluations that has no ``adaptive`` evaluation of its own, named
    ``fallbacks_<norm>_<eps>``: where an indicator of attack failure fires on a row, it runs
    the fallbacks the indicator calls for (EOT, DLR loss, BPDA, transfer, decision-based) on
    the examples the threat model's headline covers, so the headline's per-example worst case
    is the number a masked model cannot fake; on the other rows it attacks nothing."""
    from benchmark.evaluations.adaptive import AdaptiveEvaluation
    from benchmark.evaluations.adversarial import ThreatParams

    own = suite.fallbacks if isinstance(suite.fallbacks, dict) else {}
    _check_fallback_params(own, source)
    groups: dict[tuple[str, float], list[tuple[EvaluationSpec, ThreatParams]]] = {}
    for spec in suite.evaluations:
        threat = spec.resolved.params
        if not (spec.resolved.adversarial and isinstance(threat, ThreatParams)):
            continue
        if not isinstance(threat.eps, str):  # an eps sweep's params have a list
            continue
        key = (threat.norm, round(parse_eps(threat.eps), 12))
        groups.setdefault(key, []).append((spec, threat))
    taken = {spec.resolved.name for spec in suite.evaluations}
    added: list[EvaluationSpec] = []
    for members in groups.values():
        if any(spec.type == "adaptive" for spec, _ in members):
            continue
        first = members[0][1]
        sizes = [t.n_examples for _, t in members if t.n_examples is not None]
        name = f"fallbacks_{first.norm.lower()}_{first.eps}"
        if name in taken:
            raise SuiteError(
                [
                    f"{source}: an evaluation is named '{name}', the name of the automatic "
                    "fallback step of its threat model; rename it or set 'fallbacks: false'"
                ]
            )
        rows = [spec.models for spec, _ in members]
        models = (
            None if any(r is None for r in rows) else sorted({m for r in rows for m in r or []})
        )
        auto = AdaptiveEvaluation.auto(first.norm, first.eps, min(sizes, default=None))
        added.append(
            EvaluationSpec(type="adaptive", name=name, params={**own, **auto}, models=models)
        )
    # The mapping passed _check_fallback_params at Linf: a step that fails here fails on its
    # norm, which the fallback attacks do not support (L1, only AutoAttack's APGD-L1 has a
    # step for it): that threat model gets no automatic step (the README says so).
    kept = []
    for spec in added:
        try:
            spec.resolved  # noqa: B018
        except ValidationError:
            continue
        kept.append(spec)
    if not kept:
        return suite
    return suite.model_copy(update={"evaluations": [*suite.evaluations, *kept]})


def with_sanity(suite: Suite, always: bool = False) -> Suite:
    """``suite`` plus a default ``sanity`` evaluation if it has none and has an adversarial
    evaluation (or ``always``): every robust accuracy comes with its gradient-masking checks."""
    if any(spec.type == "sanity" for spec in suite.evaluations):
        return suite
    if not always and not any(spec.resolved.adversarial for spec in suite.evaluations):
        return suite
    evaluations = [*suite.evaluations, EvaluationSpec(type="sanity")]
    return suite.model_copy(update={"evaluations": evaluations})
