"""``robustness_ranking``: per-example minimal L2 distance to the decision boundary, and the
AR-AdaLS analysis of calibration per robustness bin (Qin et al. 2021, Figure 1).

Examples are ranked by the L2 norm of the minimal adversarial perturbation found by
``method``, any registered minimal-norm attack (CW-L2 by default; DDN and FMN as the fast
options; :mod:`benchmark.attacks.minimal`), split into R equal-size bins from least to most
robust, and each bin reports count, mean/median distance, accuracy, mean confidence and
ECE. The paper's finding -- the least robust examples are the least accurate *and*
over-confident -- is what this table and its plot show. Robustness is relative to the
prediction, as in the paper (smallest delta with f(x + delta) != f(x)): every example is
attacked off its predicted class, so misclassified examples are ranked too
(``relative_to: label`` keeps the older convention: they get distance 0, unattacked). Every
adversarial example found is re-verified in a fresh forward pass; one that no longer moves
the model off the class, or whose norm differs from the reported one, gets distance +inf
(:mod:`benchmark.attacks.distances`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError, field_validator, model_validator
from torch import nn

from benchmark.attacks import ATTACKS, MinimalNormAttack, attack_entry
from benchmark.attacks.distances import RelativeTo, verified_minimal_distances
from benchmark.datasets.base import ArrayDataset
from benchmark.errors import BenchmarkError
from benchmark.evaluations.base import EvalContext, EvaluationResult, register_evaluation
from benchmark.evaluations.capabilities import CrossModel, SuiteFigures
from benchmark.evaluations.predictions import (
    predict_probs,
    prediction_records,
    probabilities_from_records,
)
from benchmark.metrics import expected_calibration_error
from benchmark.metrics.robustness import robustness_bins
from benchmark.metrics.specs import MetricSpec
from benchmark.plots.figure import png_bytes
from benchmark.plots.ranking import replica_variance_figure, robustness_bins_figure
from benchmark.registry import StrictParams, format_validation_error
from benchmark.results import ResultSummary
from benchmark.utils import atomic_path

# The spellings of cw's and ddn's parameters from before the attack registry, still accepted
# at the top level of the params: field -> (attack, its parameter). Either attack's are
# accepted whichever the method (as before; the other attack's are validated and ignored).
# Each attack's defaults live in its ``Params`` only; ``None`` here means "not given".
SHORTHANDS: dict[str, tuple[str, str]] = {
    "binary_search_steps": ("cw", "binary_search_steps"),
    "steps": ("cw", "steps"),
    "lr": ("cw", "lr"),
    "initial_const": ("cw", "initial_const"),
    "kappa": ("cw", "kappa"),
    "abort_early": ("cw", "abort_early"),
    "ddn_steps": ("ddn", "steps"),
    "ddn_init_norm": ("ddn", "init_norm"),
    "ddn_gamma": ("ddn", "gamma"),
}
SHORTHAND_METHODS = frozenset(owner for owner, _ in SHORTHANDS.values())


def _attack_params(key: str, given: dict[str, Any], spelled: dict[str, str]) -> StrictParams:
    """``given`` validated by attack ``key``'s Params; errors as one ``ValueError`` line whose
    field names are spelled as the suite wrote them (``spelled``)."""
    try:
        return ATTACKS.get(key).params_model.model_validate(given)
    except ValidationError as error:
        lines = []
        for line in format_validation_error(error):
            name, sep, message = line.partition(": ")
            root, rest = name, ""
            for i, char in enumerate(name):
                if char in ".[":
                    root, rest = name[:i], name[i:]
                    break
            lines.append(f"{spelled.get(root, f'attack_params.{root}')}{rest}{sep}{message}")
        raise ValueError(f"method {key}: " + "; ".join(lines)) from None


class RankingParams(StrictParams):
    method: str = Field(
        "cw", description="a registered minimal-norm attack: cw | ddn | fmn | a plugin's"
    )
    attack_params: dict[str, Any] = Field(
        default_factory=dict, description="the method's parameters, checked by its Params"
    )
    relative_to: RelativeTo = Field(
        "prediction",
        description="prediction: attack every example off its predicted class (the paper's "
        "f(x+delta) != f(x)); label: only correct ones off their label, the rest distance 0",
    )
    n_bins: int = Field(10, ge=1, le=10_000, description="R robustness bins of equal size")
    ece_bins: int = Field(15, ge=1)
    n_examples: int | None = Field(None, ge=1, description="fixed seeded subset")
    batch_size: int | None = Field(None, ge=1)
    # Shorthands (SHORTHANDS): cw's parameters ...
    binary_search_steps: int | None = Field(None, description="cw's binary_search_steps")
    steps: int | None = Field(None, description="cw's steps (iterations per search step)")
    lr: float | None = Field(None, description="cw's lr")
    initial_const: float | None = Field(None, description="cw's initial_const")
    kappa: float | None = Field(None, description="cw's kappa")
    abort_early: bool | None = Field(None, description="cw's abort_early")
    # ... and ddn's
    ddn_steps: int | None = Field(None, description="ddn's steps")
    ddn_init_norm: float | None = Field(None, description="ddn's init_norm")
    ddn_gamma: float | None = Field(None, description="ddn's gamma")
    # AR-AdaLS Figure 1, bottom row: stability across independent runs of one model
    replica_groups: dict[str, list[str]] = Field(
        default_factory=dict,
        description="group name -> rows of this suite that are independent runs (seeds or "
        "checkpoints) of one model; adds the per-bin variance of the true-class probability "
        "across them",
    )

    @field_validator("replica_groups")
    @classmethod
    def _at_least_two(cls, groups: dict[str, list[str]]) -> dict[str, list[str]]:
        for group, rows in groups.items():
            # the group name becomes the file name variance_<group>.{csv,png}: no path parts
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", group):
                raise ValueError(
                    f"group name {group!r} must be letters, digits and _ . + - (it names "
                    "the files variance_<group>.csv/.png), starting with a letter or digit"
                )
            if len(set(rows)) < 2:
                raise ValueError(f"group '{group}' needs at least two distinct model rows")
        return groups

    @field_validator("method")
    @classmethod
    def _minimal_norm_attack(cls, method: str) -> str:
        attack_entry(method, "minimal-norm", "robustness_ranking")  # not e.g. pgd
        return method

    @model_validator(mode="after")
    def _valid_attack_params(self) -> RankingParams:
        self.attack_parameters()  # raises ValueError: the suite fails to load, in one line
        return self

    def attack_parameters(self) -> StrictParams:
        """The method's validated Params: ``attack_params`` plus the shorthands addressed to
        it (a shorthand of the other built-in is checked by that attack's Params, ignored)."""
        given, spelled = dict(self.attack_params), {}
        for field, (owner, name) in SHORTHANDS.items():
            value = getattr(self, field)
            if value is None:
                continue
            if owner != self.method:
                if self.method not in SHORTHAND_METHODS:
                    raise ValueError(
                        f"{field} is a parameter of method {owner}; give {self.method}'s "
                        "parameters in attack_params"
                    )
                _attack_params(owner, {name: value}, {name: field})
            elif name in given:
                raise ValueError(f"give {field} or attack_params.{name}, not both")
            else:
                given[name], spelled[name] = value, field
        return _attack_params(self.method, given, spelled)

    def attack(self) -> MinimalNormAttack:
        """The configured minimal-norm attack."""
        return ATTACKS.get(self.method).obj(self.attack_parameters())  # type: ignore[return-value]


def bin_table(records: pd.DataFrame, n_bins: int, ece_bins: int) -> pd.DataFrame:
    rows = []
    for b in range(n_bins):
        part = records[records["bin"] == b]
        finite = part["distance"][np.isfinite(part["distance"])]
        rows.append(
            {
                "bin": b,
                "count": len(part),
                "mean_distance": float(finite.mean()) if len(finite) else math.nan,
                "median_distance": float(part["distance"].median()) if len(part) else math.nan,
                "acc_pct": 100.0 * float(part["correct"].mean()) if len(part) else math.nan,
                "mean_confidence_pct": 100.0 * float(part["confidence"].mean())
                if len(part)
                else math.nan,
                "ece_pct": 100.0
                * expected_calibration_error(
                    part["confidence"].to_numpy(), part["correct"].to_numpy(), ece_bins
                ),
            }
        )
    return pd.DataFrame(rows)


def true_class_probability(records: pd.DataFrame) -> np.ndarray:
    probs = probabilities_from_records(records)
    return probs[np.arange(len(probs)), records["label"].to_numpy()]


def replica_variance(
    group: str, member_records: dict[str, pd.DataFrame], n_bins: int
) -> pd.DataFrame:
    """Per robustness bin of each member, the mean over its examples of the variance of the
    true-class probability across the M members, sigma^2 = 1/(M-1) sum_m (p_m - mean p)^2
    (the AR-AdaLS paper's stability measure, Figure 1: the unbiased sample variance; 1/M would
    read 20 % low at its M = 5). Rows: one per (member, bin)."""
    indices = [r["index"].to_numpy() for r in member_records.values()]
    if any(not np.array_equal(indices[0], other) for other in indices[1:]):
        raise BenchmarkError(
            f"replica group '{group}': its rows were ranked on different examples; give them "
            "the same dataset and n_examples"
        )
    probs = np.stack([true_class_probability(r) for r in member_records.values()])
    variance = probs.var(axis=0, ddof=1)  # sample variance over members, per example
    rows = []
    for member, records in member_records.items():
        bins = records["bin"].to_numpy()
        for b in range(n_bins):
            chosen = variance[bins == b]
            rows.append(
                {
                    "group": group,
                    "model": member,
                    "members": len(member_records),
                    "bin": b,
                    "variance": float(chosen.mean()) if len(chosen) else math.nan,
                }
            )
    return pd.DataFrame(rows)


@register_evaluation(
    "robustness_ranking",
    "minimal L2 distance per example (cw, ddn, fmn, ...); calibration per robustness bin",
)
class RobustnessRanking(CrossModel, SuiteFigures):
    version: ClassVar[str] = "2"  # 2: the most robust bin's accuracy and ECE
    # Grouping rows is a leaderboard-level analysis: it does not change any job's numbers.
    key_excluded_params: ClassVar[frozenset[str]] = frozenset({"replica_groups"})
    Params = RankingParams
    params: RankingParams
    report_figures: ClassVar[dict[str, str]] = {"bins.png": "robustness bins"}
    # A larger minimal perturbation is a more robust model; an example with no verified
    # adversarial (distance +inf) is an attack failure, so ``not_found_pct`` is a diagnostic
    # that should be 0. The replica variances (``cross_model_metrics``) measure how much
    # independent runs disagree on the true-class probability: lower is more stable.
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("median_dist", "L2 distance", "higher", "median minimal L2 perturbation"),
        MetricSpec("mean_dist", "L2 distance", "higher", "mean of the finite distances found"),
        MetricSpec("not_found_pct", "%", "lower", "attacked examples without a verified one"),
        MetricSpec("acc_least_robust_bin_pct", "%", "higher", "accuracy, least robust bin"),
        MetricSpec("ece_least_robust_bin_pct", "%", "lower", "ECE, least robust bin"),
        MetricSpec("acc_most_robust_bin_pct", "%", "higher", "accuracy, most robust bin"),
        MetricSpec("ece_most_robust_bin_pct", "%", "lower", "ECE, most robust bin"),
        MetricSpec(
            "var_least_robust_bin",
            "p^2",
            "lower",
            "replica variance (1/(M-1), true-class probability), least robust bin",
        ),
        MetricSpec(
            "var_most_robust_bin",
            "p^2",
            "lower",
            "replica variance (1/(M-1), true-class probability), most robust bin",
        ),
    )

    @classmethod
    def attacks_used(cls, params: StrictParams) -> list[str]:
        return [params.method]  # type: ignore[attr-defined]

    @classmethod
    def key_params(cls, params: StrictParams) -> dict[str, Any]:
        """For cw and ddn the key of before the attack registry -- every shorthand at its
        value (the method's own as resolved, however spelled; the other's as given, else at
        its default) -- plus ``attack_params`` holding only the method's parameters that no
        shorthand spells and that differ from their defaults, and only when there are any:
        existing suites keep their cache keys. ``relative_to`` enters the key only at its new
        default (``prediction``): ``label`` reproduces the older numbers under their keys.
        Any other method: its full Params."""
        p: RankingParams = params  # type: ignore[assignment]
        excluded = {*cls.key_excluded_params, "attack_params", *SHORTHANDS}
        if p.relative_to == "label":  # the numbers of before the option: their old keys
            excluded.add("relative_to")
        key = p.model_dump(exclude=excluded)
        resolved = p.attack_parameters().model_dump()
        if p.method not in SHORTHAND_METHODS:
            return {**key, "attack_params": resolved}
        for field, (owner, name) in SHORTHANDS.items():
            if owner == p.method:
                key[field] = resolved[name]
            else:
                given = {} if getattr(p, field) is None else {name: getattr(p, field)}
                key[field] = getattr(_attack_params(owner, given, {}), name)
        spelled = {name for owner, name in SHORTHANDS.values() if owner == p.method}
        defaults = ATTACKS.get(p.method).params_model().model_dump()
        rest = {k: v for k, v in resolved.items() if k not in spelled and v != defaults[k]}
        return {**key, "attack_params": rest} if rest else key

    @classmethod
    def check_rows(cls, params: StrictParams, rows: list[str]) -> list[str]:
        groups = params.replica_groups  # type: ignore[attr-defined]
        return [
            f"params.replica_groups.{group}: no model row '{member}' in this suite "
            f"(rows: {', '.join(rows)})"
            for group, members in groups.items()
            for member in members
            if member not in rows
        ]

    @classmethod
    def _variance_tables(
        cls, name: str, params: RankingParams, records: Callable[[str], pd.DataFrame], rows
    ) -> list[pd.DataFrame]:
        tables = []
        for group, members in params.replica_groups.items():
            missing = [m for m in members if m not in rows]
            if missing:
                raise BenchmarkError(
                    f"evaluation '{name}': params.replica_groups.{group}: no model row "
                    f"{', '.join(map(repr, missing))} in this suite (rows: {', '.join(rows)})"
                )
            member_records = {m: records(m) for m in dict.fromkeys(members)}
            tables.append(replica_variance(group, member_records, params.n_bins))
        return tables

    @classmethod
    def cross_model_metrics(
        cls,
        name: str,
        params: StrictParams,
        results: dict[str, ResultSummary],
        records: Callable[[str], pd.DataFrame],
    ) -> dict[str, dict[str, float]]:
        """Variance across replicas in the least and the most robust bin, per member row
        (a row in several groups keeps the last group's numbers)."""
        p: RankingParams = params  # type: ignore[assignment]
        per_row: dict[str, dict[str, float]] = {}
        for table in cls._variance_tables(name, p, records, list(results)):
            for member, part in table.groupby("model", sort=False):
                per_row[str(member)] = {
                    "var_least_robust_bin": float(part["variance"].iloc[0]),
                    "var_most_robust_bin": float(part["variance"].iloc[-1]),
                }
        return per_row

    @classmethod
    def suite_plots(
        cls,
        name: str,
        params: StrictParams,
        records_by_row: dict[str, pd.DataFrame],
        out_dir: Path,
    ) -> list[Path]:
        """The default calibration plots, plus per replica group the variance-by-bin table
        (``variance_<group>.csv``) and plot (``variance_<group>.png``)."""
        written = super().suite_plots(name, params, records_by_row, out_dir)
        p: RankingParams = params  # type: ignore[assignment]

        def title(table: pd.DataFrame) -> str:
            return f"{table['group'].iloc[0]}: {table['members'].iloc[0]} runs"

        for table in cls._variance_tables(
            name, p, records_by_row.__getitem__, list(records_by_row)
        ):
            group = table["group"].iloc[0]
            out_dir.mkdir(parents=True, exist_ok=True)
            for suffix, payload in (
                ("csv", table.to_csv(index=False).encode()),
                ("png", png_bytes(replica_variance_figure(table, title(table)))),
            ):
                path = out_dir / f"variance_{group}.{suffix}"
                with atomic_path(path) as tmp:
                    tmp.write_bytes(payload)
                written.append(path)
        return written

    @classmethod
    def planned_passes(cls, params: StrictParams, n_examples: int) -> tuple[int, int]:
        forward, grad = params.attack().planned_passes(n_examples)  # type: ignore[attr-defined]
        return 2 * n_examples + forward, grad

    def run(self, model: nn.Module, data: ArrayDataset, ctx: EvalContext) -> EvaluationResult:
        p = self.params
        data = data.subset(p.n_examples, seed=0)
        bs = p.batch_size or ctx.batch_size
        probs = predict_probs(model, data.x, batch_size=bs, device=ctx.device)
        records = prediction_records(data, probs)
        distances, todo, verified = verified_minimal_distances(
            model, data.x, data.y, p.attack(), p.relative_to, ctx.device, bs, ctx.progress,
            desc=f"{p.method}-L2", predictions=probs.argmax(1),
        )  # fmt: skip
        records["distance"] = distances
        records["verified"] = True
        records.loc[todo[~verified], "verified"] = False
        records["bin"] = robustness_bins(distances, p.n_bins)
        table = bin_table(records, p.n_bins, p.ece_bins)
        found = distances[todo]
        finite = found[np.isfinite(found)]
        metrics = {
            "median_dist": float(np.median(distances)),
            "mean_dist": float(finite.mean()) if len(finite) else math.nan,
            "not_found_pct": 100.0 * float(np.isinf(found).mean()) if len(found) else 0.0,
            "acc_least_robust_bin_pct": float(table["acc_pct"].iloc[0]),
            "ece_least_robust_bin_pct": float(table["ece_pct"].iloc[0]),
            "acc_most_robust_bin_pct": float(table["acc_pct"].iloc[-1]),
            "ece_most_robust_bin_pct": float(table["ece_pct"].iloc[-1]),
        }
        extras = {
            "n_examples": len(data),
            "n_attacked": len(todo),
            "n_unverified": int((~verified).sum()),
            "relative_to": p.relative_to,
            "bins": table.to_dict(orient="records"),
        }
        title = f"{p.method.upper()}-L2 robustness bins"
        artifacts = {
            "bins.csv": table.to_csv(index=False).encode(),
            "bins.png": png_bytes(robustness_bins_figure(table, title)),
        }
        return EvaluationResult(metrics, records, extras, artifacts)
