"""Adversarial evaluations: per-example worst case over a sequence of attacks.

Protocol (AutoAttack's, made explicit):
1. clean predictions; only correctly classified examples are attacked;
2. attacks run in sequence; an example broken by one attack keeps that adversarial example,
   and only the still-robust ones can be broken by the next;
3. every candidate is checked after the fact -- finite, inside [0, 1], inside the eps-ball --
   and judged by a fresh forward pass; invalid candidates never count as successes;
4. robust accuracy is re-evaluated once more on the final per-example worst case, and
   carries a 95% Wilson interval from the number of evaluated examples.
Randomized models are attacked with EOT gradients and judged by their mean prediction over
``n_samples`` passes.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, cast

import numpy as np
import pandas as pd
import torch
from pydantic import Field, ValidationError, field_validator, model_validator
from scipy.stats import binomtest
from torch import nn
from tqdm import tqdm

from benchmark.attacks import (
    ATTACKS,
    Attack,
    AttackContext,
    attack_entry,
    parse_eps,
    perturbation_norm,
)
from benchmark.attacks.base import LossTraces
from benchmark.attacks.saved import ADVERSARIAL_FILE, adversarial_npz
from benchmark.attacks.threat import EpsField, Norm, valid_adversarial
from benchmark.datasets.base import ArrayDataset
from benchmark.errors import BenchmarkError
from benchmark.evaluations.base import EVALUATIONS, EvalContext, EvaluationResult
from benchmark.evaluations.capabilities import Adversarial, Shardable, SuiteFigures
from benchmark.evaluations.predictions import predict_probs, prediction_records
from benchmark.metrics.specs import MetricSpec
from benchmark.registry import Entry, StrictParams, format_validation_error
from benchmark.trust.optimization import (
    INCOMPLETE_OPTIMIZATION,
    count_unfinished,
    incomplete_optimization,
)
from benchmark.utils import derive_seed

log = logging.getLogger(__name__)


def wilson_interval(successes: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (scipy's implementation)."""
    if total == 0:
        return float("nan"), float("nan")
    ci = binomtest(successes, total).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


class ThreatParams(StrictParams):
    norm: Norm = "Linf"
    eps: EpsField = Field(description="budget, a float or a fraction such as '8/255'")
    n_samples: int = Field(
        20, ge=1, le=10_000, description="prediction passes for randomized models"
    )
    eot_samples: int = Field(
        20, ge=1, le=10_000, description="EOT gradient samples for randomized models"
    )
    batch_size: int | None = Field(None, ge=1, description="attack batch (default: suite's)")
    n_examples: int | None = Field(
        None, ge=1, description="attack a fixed seeded subset of the evaluation data (all models)"
    )
    save_adversarial: bool = Field(
        False,
        description="store the final per-example inputs (adversarial where broken, clean "
        "otherwise) in the result folder as adversarial.npz (checksummed), to re-check or "
        "transfer them: benchmark.attacks.saved.load_adversarial",
    )

    @model_validator(mode="after")
    def _nested_attacks_support_the_norm(self) -> ThreatParams:
        """Every nested attack spec (``attacks``, ``attack``, ``adaptive``'s fallbacks), and
        the attack of a single-attack evaluation, must support this threat model's norm:
        refused at load, not when its job runs."""
        own = getattr(type(self), "attack_key", None)
        if isinstance(own, str) and self.norm not in ATTACKS.get(own).extras["norms"]:
            norms = ", ".join(ATTACKS.get(own).extras["norms"])
            raise ValueError(
                f"norm: attack '{own}' does not support {self.norm} (it supports {norms})"
            )
        for name in type(self).model_fields:
            value = getattr(self, name)
            specs = value if isinstance(value, list) else [value]
            for spec in specs:
                if isinstance(spec, AttackSpec):
                    norms = ATTACKS.get(spec.type).extras["norms"]
                    if self.norm not in norms:
                        raise ValueError(
                            f"{name}: attack '{spec.type}' does not support norm {self.norm} "
                            f"(it supports {', '.join(norms)})"
                        )
        return self


class AttackSpec(StrictParams):
    """One attack inside an evaluation: a registered attack key plus its parameters."""

    type: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        attack_entry(value, "fixed-eps", "an eps-ball evaluation")  # not e.g. cw
        return value

    @model_validator(mode="after")
    def _params_valid(self) -> AttackSpec:
        """The attack's own params model checks ``params`` at load (``validate`` then catches a
        ``steps: -5`` or an unknown key, not the job that would run it); the dict is kept as
        given, so job keys do not change."""
        try:
            ATTACKS.get(self.type).params_model.model_validate(self.params)
        except ValidationError as error:
            lines = format_validation_error(error, prefix="params")
            raise ValueError(f"attack '{self.type}': " + "; ".join(lines)) from None
        return self

    def build(self, norm: str) -> Attack:
        entry = ATTACKS.get(self.type)
        if norm not in entry.extras["norms"]:
            raise ValueError(f"attack '{self.type}' does not support norm {norm}")
        attack = entry.obj(entry.params_model.model_validate(self.params))
        if not isinstance(attack, Attack):  # ``_known`` admits fixed-eps attacks only
            raise ValueError(f"attack '{self.type}' is not a fixed-eps attack")
        return attack


APGD_ONLY = {"apgd-ce", "apgd-dlr", "apgd-t"}


def _kind(attack_key: str, params: Any) -> str | None:
    """The ``Attack.kind`` of a registered attack; an AutoAttack run restricted to APGD
    counts as an iterative gradient attack."""
    kind = ATTACKS.get(attack_key).extras.get("kind")
    get = params.get if isinstance(params, dict) else lambda k, d=None: getattr(params, k, d)
    if (
        kind == "ensemble"
        and set(get("attacks_to_run") or ())
        and set(get("attacks_to_run") or ()) <= APGD_ONLY
    ):
        return "iterative"
    return kind


def _predict(
    model: nn.Module, x: torch.Tensor, ctx: EvalContext, passes: int, bs: int
) -> np.ndarray:
    return predict_probs(model, x, batch_size=bs, device=ctx.device, n_samples=passes)


def _attack_calls(
    clean_correct: torch.Tensor, robust: torch.Tensor, offset: int, bs: int
) -> list[tuple[int, torch.Tensor]]:
    """(block, positions) of one attack's calls: every clean-correct example of each block of
    ``bs`` consecutive positions that still holds a robust example.

    Why the whole block and not just its still-robust examples: an attack's output for an
    example then comes from exactly the call (same examples, same shapes, same RNG seed) it
    gets when it runs alone, so the worst case is at most each attack alone by construction.
    Attacking only the survivors changes the call's batch size, and CPU kernels chosen by
    shape round differently on different CPUs -- enough to flip a borderline example. The
    price is attacking the already-broken examples of a block that still has a survivor;
    blocks with none are skipped."""
    positions = clean_correct.nonzero().squeeze(1)
    blocks = (positions + offset) // bs
    live = set(((robust.nonzero().squeeze(1) + offset) // bs).tolist())
    return [(b, positions[blocks == b]) for b in blocks.unique().tolist() if b in live]


def optimization_checks(traced: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
    """``{"incomplete_optimization": numbers}`` from per-attack loss-trace counts (empty when
    no attack traced an example it left robust); shards merge by summing the counts."""
    numbers = incomplete_optimization(traced)
    return {} if numbers is None else {INCOMPLETE_OPTIMIZATION: numbers}


def _sum_traced(parts: list[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    total: dict[str, dict[str, int]] = {}
    for part in parts:
        for label, count in part.items():
            into = total.setdefault(label, {"traced": 0, "unfinished": 0})
            into["traced"] += count["traced"]
            into["unfinished"] += count["unfinished"]
    return total


def _judge(
    model: nn.Module,
    data: ArrayDataset,
    x_best: torch.Tensor,
    x_adv: torch.Tensor,
    chunk: torch.Tensor,
    ok: torch.Tensor,
    lo: int,
    ctx: EvalContext,
    passes: int,
    bs: int,
) -> torch.Tensor:
    """Which of one call's valid candidates (``ok``) fool the model, judged in the shape of
    the final pass: the block's rows (from position ``lo``) of the current worst case with
    the candidates in place, so a verdict here is the verdict the final pass gives."""
    rows = x_best[lo : lo + bs].clone()
    rows[chunk[ok] - lo] = x_adv[ok.to(ctx.device)].cpu()
    preds = torch.from_numpy(_predict(model, rows, ctx, passes, bs).argmax(1))
    return ok & (preds[chunk - lo] != data.y[chunk])


def worst_case(
    model: nn.Module,
    data: ArrayDataset,
    attacks: list[tuple[str, Attack]],
    norm: Norm,
    eps: float,
    params: ThreatParams,
    ctx: EvalContext,
    start: dict[str, Any] | None = None,
    offset: int = 0,
) -> dict[str, Any]:
    """Run ``attacks`` in sequence (see :func:`_attack_calls`); return per-example outcomes.

    ``start`` (from a smaller eps on a sweep) seeds the robust flags and adversarial examples:
    an example broken inside a smaller ball is broken inside this one too.

    Examples are attacked in fixed blocks of ``bs`` consecutive positions of the evaluation's
    example list (``offset`` = position of ``data[0]`` in it), each block's clean-correct
    examples in one call with the attack RNG re-seeded from (seed, attack, block), and every
    verdict -- during the attacks and in the final pass -- comes from a forward pass over the
    block's ``bs`` rows. An example's outcome therefore depends only on its own block, never on
    which other blocks ran first (a shard starting at a multiple of ``bs`` reproduces the
    unsharded run exactly) nor on which attacks ran before (worst case <= each attack alone).
    What this rests on: a model in eval mode computes each row of a batch from that row alone,
    with kernels chosen by the batch's shape (true of eval-mode networks without cross-example
    operations; randomized models draw their noise per pass, so they get no such guarantee).
    """
    randomized = ctx.randomized
    passes = ctx.passes(params.n_samples)
    bs = params.batch_size or ctx.batch_size
    y_all = data.y
    if start is None:
        clean_probs = _predict(model, data.x, ctx, passes, bs)
        clean_correct = torch.from_numpy(clean_probs.argmax(1)) == y_all
        robust, x_best = clean_correct.clone(), data.x.clone()
    else:
        clean_correct, robust, x_best = (
            start["clean_correct"],
            start["robust"].clone(),
            start["x_best"].clone(),
        )
    invalid = torch.zeros(len(data), dtype=torch.bool)
    after: dict[str, torch.Tensor] = {}
    # per attack: examples it left robust with a margin trace, and how many were unfinished
    traced: dict[str, dict[str, int]] = {}
    traces = LossTraces()
    generator = torch.Generator().manual_seed(ctx.seed % (2**63))
    actx = AttackContext(
        model=model,
        norm=norm,
        eps=eps,
        device=ctx.device,
        seed=ctx.seed,
        batch_size=bs,
        randomized=randomized,
        eot_samples=params.eot_samples,
        generator=generator,
        surrogates=ctx.surrogates,
        # noisy passes make any trace look unfinished: randomized models are not traced
        loss_traces=None if randomized else traces,
    )
    for label, attack in attacks:
        counts = traced.setdefault(label, {"traced": 0, "unfinished": 0})
        for block, chunk in tqdm(
            _attack_calls(clean_correct, robust, offset, bs),
            desc=label,
            unit="batch",
            disable=not ctx.progress,
            leave=False,
        ):
            generator.manual_seed(derive_seed(ctx.seed, label, block) % (2**63))
            actx.example_ids, actx.label = data.indices[chunk], label
            x, y = data.x[chunk].to(ctx.device), y_all[chunk].to(ctx.device)
            traces.values = None
            x_adv = attack.perturb(x, y, actx).detach()
            live = robust[chunk]  # broken examples were attacked only to keep the call's shape
            ok = valid_adversarial(x, x_adv, norm, eps).cpu() & live
            invalid[chunk[live & ~ok]] = True
            fooled = torch.zeros_like(ok)
            if ok.any():
                fooled = _judge(
                    model, data, x_best, x_adv, chunk, ok, block * bs - offset, ctx, passes, bs
                )
                robust[chunk[fooled]] = False
                x_best[chunk[fooled]] = x_adv[fooled.to(ctx.device)].cpu()
            n_traced, n_unfinished = count_unfinished(traces.values, live & ~fooled)
            counts["traced"] += n_traced
            counts["unfinished"] += n_unfinished
        after[label] = robust.clone()
    if invalid.any():
        log.warning(
            "%d candidate(s) outside the eps-ball or [0,1] were discarded", int(invalid.sum())
        )

    raised = {flag for _, attack in attacks for flag in attack.raised_flags}
    checks = optimization_checks(traced)
    raised |= {name for name, check in checks.items() if check["failed"]}
    # The number counted: a fresh forward pass on the final per-example worst case.
    final_probs = _predict(model, x_best, ctx, passes, bs)
    robust_final = clean_correct & (torch.from_numpy(final_probs.argmax(1)) == y_all)
    return {
        "clean_correct": clean_correct,
        "robust": robust_final,
        "after": after,
        "invalid": invalid,
        "x_best": x_best,
        "probs": final_probs,
        "norm": perturbation_norm(x_best - data.x, norm),
        "flags": sorted(raised),
        "checks": checks,
        "traced": traced,
    }


# What :func:`summarize` emits. The mean norm describes the attack's perturbations (close to
# eps for a budgeted attack, whatever the model), so it has no better direction.
THREAT_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "robust_acc_pct", "%", "higher", "accuracy under attack, per-example worst case"
    ),  # + _ci_low/_ci_high: 95% Wilson interval
    MetricSpec(
        "asr_pct", "%", "lower", "attack success rate: broken / initially correct", detail=True
    ),
    MetricSpec(
        "mean_norm",
        "Linf or L2 distance",
        "none",
        "mean norm of the successful perturbations",
        detail=True,
    ),
)


def summarize(outcome: dict[str, Any]) -> dict[str, float]:
    robust, clean = outcome["robust"], outcome["clean_correct"]
    n, k, n_clean = len(robust), int(robust.sum()), int(clean.sum())
    low, high = wilson_interval(k, n)
    broken = clean & ~robust
    return {
        "robust_acc_pct": 100.0 * k / max(n, 1),
        "robust_acc_pct_ci_low": 100.0 * low,
        "robust_acc_pct_ci_high": 100.0 * high,
        "asr_pct": 100.0 * int(broken.sum()) / n_clean if n_clean else float("nan"),
        "mean_norm": float(outcome["norm"][broken].mean()) if broken.any() else float("nan"),
    }


def summarize_records(records: pd.DataFrame, suffix: str = "") -> dict[str, float]:
    """:func:`summarize` computed from per-example records: the one path for unsharded runs
    and merged shards, so both give bit-identical metrics."""
    return summarize(
        {
            "robust": torch.tensor(records[f"robust{suffix}"].to_numpy(dtype=bool)),
            "clean_correct": torch.tensor(records["clean_correct"].to_numpy(dtype=bool)),
            "norm": torch.tensor(records[f"norm{suffix}"].to_numpy()),
        }
    )


def outcome_records(data: ArrayDataset, outcome: dict[str, Any], suffix: str = "") -> pd.DataFrame:
    frame = prediction_records(data, outcome["probs"])
    frame.insert(2, "clean_correct", outcome["clean_correct"].numpy())
    frame[f"robust{suffix}"] = outcome["robust"].numpy()
    for label, flags in outcome["after"].items():
        frame[f"robust_after_{label}{suffix}"] = flags.numpy()
    frame[f"invalid{suffix}"] = outcome["invalid"].numpy()
    frame[f"norm{suffix}"] = outcome["norm"].numpy()
    return frame


def _extras(data: ArrayDataset, outcome: dict[str, Any], randomized: bool) -> dict[str, Any]:
    extras = {
        "n_examples": len(data),
        "n_clean_correct": int(outcome["clean_correct"].sum()),
        "n_invalid": int(outcome["invalid"].sum()),
        "randomized": randomized,
        # per attack: robust examples with a margin trace / unfinished at the last step
        "loss_traces": outcome["traced"],
    }
    if outcome["checks"]:
        extras["checks"] = outcome["checks"]
    return extras


class AdversarialEvaluation(Shardable, Adversarial, SuiteFigures):
    """Base of the single-attack types and of ``attacks`` (several attacks, worst case)."""

    saves_adversarial: ClassVar[bool] = True  # honours save_adversarial (the loader checks)

    version: ClassVar[str] = "5"  # 5: incomplete-optimization check (loss traces)
    attack_key: ClassVar[str | None] = None
    metrics: ClassVar[tuple[MetricSpec, ...]] = THREAT_METRICS

    class Params(ThreatParams):
        pass

    params: ThreatParams

    def attacks(self) -> list[tuple[str, Attack]]:
        p = self.params
        key = self.attack_key
        if key is None:
            raise TypeError(f"{type(self).__name__} sets no attack_key")
        attack_params = {
            k: v for k, v in p.model_dump().items() if k not in ThreatParams.model_fields
        }
        spec = AttackSpec(type=key, params=attack_params)
        return [(key, spec.build(p.norm))]

    @classmethod
    def default_name(cls, params: StrictParams) -> str:
        return f"{cls.attack_key}_{params.norm.lower()}_{params.eps}"  # type: ignore[attr-defined]

    @classmethod
    def attack_kind(cls, params: StrictParams) -> str | None:
        if cls.attack_key is None:
            return None
        return _kind(cls.attack_key, params)

    @classmethod
    def attacks_used(cls, params: StrictParams) -> list[str]:
        return [] if cls.attack_key is None else [cls.attack_key]

    @classmethod
    def planned_passes(cls, params: StrictParams, n_examples: int) -> tuple[int, int]:
        """Clean and final passes, plus every attack's budget on every example."""
        forward, grad = 2 * n_examples, 0
        for _, attack in cls(params).attacks():
            f, g = attack.planned_passes(n_examples)
            forward, grad = forward + f, grad + g
        return forward, grad

    def examples(self, data: ArrayDataset) -> ArrayDataset:
        return data.subset(self.params.n_examples, seed=0)

    def run(self, model: nn.Module, data: ArrayDataset, ctx: EvalContext) -> EvaluationResult:
        return self._evaluate(model, self.examples(data), ctx, offset=0)

    def run_shard(
        self, model: nn.Module, data: ArrayDataset, ctx: EvalContext, start: int, stop: int
    ) -> EvaluationResult:
        bs = self.params.batch_size or ctx.batch_size
        if start % bs:
            raise BenchmarkError(
                f"shard_size: shards must start at multiples of the attack batch size {bs} "
                f"(got a shard at {start})"
            )
        if ctx.randomized:
            raise BenchmarkError(
                "shard_size: randomized models cannot be sharded (their noise is one RNG stream)"
            )
        return self._evaluate(model, self.examples(data).slice(start, stop), ctx, offset=start)

    def _evaluate(
        self, model: nn.Module, data: ArrayDataset, ctx: EvalContext, offset: int
    ) -> EvaluationResult:
        p = self.params
        outcome = worst_case(
            model, data, self.attacks(), p.norm, parse_eps(p.eps), p, ctx, offset=offset
        )
        records = outcome_records(data, outcome)
        extras = self._extras(_extras(data, outcome, ctx.randomized))
        if outcome["flags"]:
            extras["flags"] = outcome["flags"]
        artifacts = {}
        if p.save_adversarial:
            artifacts[ADVERSARIAL_FILE] = adversarial_npz(data, outcome)
        return EvaluationResult(summarize_records(records), records, extras, artifacts)

    def _extras(self, counts: dict[str, Any]) -> dict[str, Any]:
        p = self.params
        return {**counts, "norm": p.norm, "eps": p.eps, "eps_value": parse_eps(p.eps)}

    def merge(self, shards: list[EvaluationResult]) -> EvaluationResult:
        records = pd.concat([s.records for s in shards], ignore_index=True)
        counts = {
            "n_examples": sum(s.extras["n_examples"] for s in shards),
            "n_clean_correct": sum(s.extras["n_clean_correct"] for s in shards),
            "n_invalid": sum(s.extras["n_invalid"] for s in shards),
            "randomized": any(s.extras["randomized"] for s in shards),
            "loss_traces": _sum_traced([s.extras.get("loss_traces", {}) for s in shards]),
        }
        checks = optimization_checks(counts["loss_traces"])
        if checks:
            counts["checks"] = checks
        # the attacks' own flags from every shard; the trace check judged on the sum
        flags = {f for s in shards for f in s.extras.get("flags", [])} - {INCOMPLETE_OPTIMIZATION}
        flags |= {name for name, check in checks.items() if check["failed"]}
        extras = self._extras(counts) | ({"flags": sorted(flags)} if flags else {})
        return EvaluationResult(summarize_records(records), records, extras)


def _register_single_attack_evaluations() -> None:
    """One evaluation type per registered fixed-eps attack (``pgd``, ``fgsm``, ``square``,
    ...); minimal-norm attacks are the methods of ``robustness_ranking`` instead."""
    for entry in ATTACKS:
        if entry.key in EVALUATIONS or entry.extras["family"] != "fixed-eps":
            continue
        params = type(
            f"{entry.key}_evaluation_params",
            (ThreatParams, entry.params_model),
            # a class attribute, not a field: the norm is checked against its attack's norms
            {"attack_key": entry.key, "__annotations__": {"attack_key": ClassVar[str]}},
        )
        cls = cast(
            type[AdversarialEvaluation],
            type(
                f"{entry.key.title()}Evaluation",
                (AdversarialEvaluation,),
                {"attack_key": entry.key, "Params": params, "__doc__": entry.description},
            ),
        )
        EVALUATIONS.add(Entry(entry.key, cls, entry.description, params))


class AttacksEvaluation(AdversarialEvaluation):
    """Several attacks in sequence; robust accuracy is the per-example worst case."""

    class Params(ThreatParams):
        attacks: list[AttackSpec] = Field(min_length=1)

    params: Params

    def attacks(self) -> list[tuple[str, Attack]]:
        p = self.params
        labels: list[str] = []
        for spec in p.attacks:
            labels.append(spec.type if spec.type not in labels else f"{spec.type}{len(labels)}")
        return [(label, spec.build(p.norm)) for label, spec in zip(labels, p.attacks, strict=True)]

    @classmethod
    def default_name(cls, params: StrictParams) -> str:
        return f"worst_{params.norm.lower()}_{params.eps}"  # type: ignore[attr-defined]

    @classmethod
    def attack_kind(cls, params: StrictParams) -> str | None:
        kinds = {_kind(spec.type, spec.params) for spec in params.attacks}  # type: ignore[attr-defined]
        return kinds.pop() if len(kinds) == 1 else "ensemble"

    @classmethod
    def attacks_used(cls, params: StrictParams) -> list[str]:
        return list(dict.fromkeys(spec.type for spec in params.attacks))  # type: ignore[attr-defined]


class EpsSweepEvaluation(Adversarial, SuiteFigures):
    """One attack over a list of eps values: robust accuracy vs eps.

    With ``reuse_smaller_eps`` an example broken at a smaller eps is counted broken at larger
    ones without attacking it again (its adversarial example lies in every larger ball).
    """

    version: ClassVar[str] = "5"  # 5: incomplete-optimization check (loss traces)
    # ``<eps>_<metric>`` for every eps of the sweep, e.g. ``8/255_robust_acc_pct``.
    metrics: ClassVar[tuple[MetricSpec, ...]] = tuple(
        spec.renamed("{eps}_" + spec.name, f"{spec.description}, at one eps of the sweep")
        for spec in THREAT_METRICS
    )

    class Params(ThreatParams):
        eps: list[EpsField] = Field(min_length=1)  # type: ignore[assignment]
        attack: AttackSpec
        reuse_smaller_eps: bool = True

    params: Params

    @classmethod
    def default_name(cls, params: StrictParams) -> str:
        return f"{params.attack.type}_sweep_{params.norm.lower()}"  # type: ignore[attr-defined]

    @classmethod
    def attack_kind(cls, params: StrictParams) -> str | None:
        return _kind(params.attack.type, params.attack.params)  # type: ignore[attr-defined]

    @classmethod
    def attacks_used(cls, params: StrictParams) -> list[str]:
        return [params.attack.type]  # type: ignore[attr-defined]

    @classmethod
    def planned_passes(cls, params: StrictParams, n_examples: int) -> tuple[int, int]:
        p: EpsSweepEvaluation.Params = params  # type: ignore[assignment]
        forward, grad = p.attack.build(p.norm).planned_passes(n_examples)
        return len(p.eps) * (forward + n_examples) + n_examples, len(p.eps) * grad

    def run(self, model: nn.Module, data: ArrayDataset, ctx: EvalContext) -> EvaluationResult:
        p = self.params
        data = data.subset(p.n_examples, seed=0)
        attack = p.attack.build(p.norm)
        metrics: dict[str, float] = {}
        frames: list[pd.DataFrame] = []
        previous: dict[str, Any] | None = None
        outcome: dict[str, Any] | None = None
        traced: dict[str, dict[str, int]] = {}
        flags: set[str] = set()
        for eps in sorted(p.eps, key=parse_eps):
            start = previous if p.reuse_smaller_eps else None
            outcome = worst_case(
                model, data, [(p.attack.type, attack)], p.norm, parse_eps(eps), p, ctx, start
            )
            previous = outcome
            traced |= {f"{label}@{eps}": n for label, n in outcome["traced"].items()}
            flags |= set(outcome["flags"])
            metrics.update({f"{eps}_{k}": v for k, v in summarize(outcome).items()})
            frames.append(outcome_records(data, outcome, suffix=f"@{eps}"))
        assert outcome is not None
        base = frames[-1][["index", "label", "pred", "confidence", "correct", "clean_correct"]]
        extra = [f.drop(columns=[c for c in f.columns if "@" not in c]) for f in frames]
        probs = frames[-1][[c for c in frames[-1].columns if c.startswith("prob_")]]
        records = pd.concat([base, *extra, probs], axis=1)
        checks = optimization_checks(traced)  # per eps: the attack at each budget
        extras = {
            **_extras(data, outcome, ctx.randomized),
            "norm": p.norm,
            "eps": list(p.eps),
            "eps_value": [parse_eps(e) for e in p.eps],
            "loss_traces": traced,
        }
        extras.pop("checks", None)
        if checks:
            extras["checks"] = checks
        flags |= {name for name, check in checks.items() if check["failed"]}
        if flags:
            extras["flags"] = sorted(flags)
        return EvaluationResult(metrics, records, extras)


def register_builtin() -> None:
    _register_single_attack_evaluations()
    for key, cls, description in (
        ("attacks", AttacksEvaluation, "several attacks in sequence; per-example worst case"),
        ("eps_sweep", EpsSweepEvaluation, "one attack over a list of eps: robust accuracy vs eps"),
    ):
        if key not in EVALUATIONS:
            EVALUATIONS.add(Entry(key, cls, description, cls.Params))


register_builtin()
