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
from pydantic import Field, field_validator
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
from benchmark.attacks.saved import ADVERSARIAL_FILE, adversarial_npz
from benchmark.attacks.threat import EpsField, Norm, valid_adversarial
from benchmark.datasets.base import ArrayDataset
from benchmark.errors import BenchmarkError
from benchmark.evaluations.base import EVALUATIONS, EvalContext, EvaluationResult
from benchmark.evaluations.capabilities import Adversarial, Shardable, SuiteFigures
from benchmark.evaluations.predictions import predict_probs, prediction_records
from benchmark.metrics.specs import MetricSpec
from benchmark.registry import Entry, StrictParams
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


class AttackSpec(StrictParams):
    """One attack inside an evaluation: a registered attack key plus its parameters."""

    type: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        attack_entry(value, "fixed-eps", "an eps-ball evaluation")  # not e.g. cw
        return value

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
    )
    for label, attack in attacks:
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
            x_adv = attack.perturb(x, y, actx).detach()
            live = robust[chunk]  # broken examples were attacked only to keep the call's shape
            ok = valid_adversarial(x, x_adv, norm, eps).cpu() & live
            invalid[chunk[live & ~ok]] = True
            if not ok.any():
                continue
            # Judged in the shape of the final pass: the block's rows of the current worst
            # case with this attack's valid candidates in place, so a verdict here is the
            # verdict the final pass gives the same input.
            lo = block * bs - offset
            rows = x_best[lo : lo + bs].clone()
            rows[chunk[ok] - lo] = x_adv[ok.to(ctx.device)].cpu()
            preds = torch.from_numpy(_predict(model, rows, ctx, passes, bs).argmax(1))
            fooled = ok & (preds[chunk - lo] != y_all[chunk])
            robust[chunk[fooled]] = False
            x_best[chunk[fooled]] = x_adv[fooled.to(ctx.device)].cpu()
        after[label] = robust.clone()
    if invalid.any():
        log.warning(
            "%d candidate(s) outside the eps-ball or [0,1] were discarded", int(invalid.sum())
        )

    raised = sorted({flag for _, attack in attacks for flag in attack.raised_flags})
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
        "flags": raised,
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
    return {
        "n_examples": len(data),
        "n_clean_correct": int(outcome["clean_correct"].sum()),
        "n_invalid": int(outcome["invalid"].sum()),
        "randomized": randomized,
    }


class AdversarialEvaluation(Shardable, Adversarial, SuiteFigures):
    """Base of the single-attack types and of ``attacks`` (several attacks, worst case)."""

    saves_adversarial: ClassVar[bool] = True  # honours save_adversarial (the loader checks)

    version: ClassVar[str] = "4"  # 4: whole-block attack calls and verdicts
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
        }
        flags = sorted({f for s in shards for f in s.extras.get("flags", [])})
        extras = self._extras(counts) | ({"flags": flags} if flags else {})
        return EvaluationResult(summarize_records(records), records, extras)


def _register_single_attack_evaluations() -> None:
    """One evaluation type per registered fixed-eps attack (``pgd``, ``fgsm``, ``square``,
    ...); minimal-norm attacks are the methods of ``robustness_ranking`` instead."""
    for entry in ATTACKS:
        if entry.key in EVALUATIONS or entry.extras["family"] != "fixed-eps":
            continue
        params = type(f"{entry.key}_evaluation_params", (ThreatParams, entry.params_model), {})
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

    version: ClassVar[str] = "4"  # 4: whole-block attack calls and verdicts
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

    def run(self, model: nn.Module, data: ArrayDataset, ctx: EvalContext) -> EvaluationResult:
        p = self.params
        data = data.subset(p.n_examples, seed=0)
        attack = p.attack.build(p.norm)
        metrics: dict[str, float] = {}
        frames: list[pd.DataFrame] = []
        previous: dict[str, Any] | None = None
        outcome: dict[str, Any] | None = None
        for eps in sorted(p.eps, key=parse_eps):
            start = previous if p.reuse_smaller_eps else None
            outcome = worst_case(
                model, data, [(p.attack.type, attack)], p.norm, parse_eps(eps), p, ctx, start
            )
            previous = outcome
            metrics.update({f"{eps}_{k}": v for k, v in summarize(outcome).items()})
            frames.append(outcome_records(data, outcome, suffix=f"@{eps}"))
        assert outcome is not None
        base = frames[-1][["index", "label", "pred", "confidence", "correct", "clean_correct"]]
        extra = [f.drop(columns=[c for c in f.columns if "@" not in c]) for f in frames]
        probs = frames[-1][[c for c in frames[-1].columns if c.startswith("prob_")]]
        records = pd.concat([base, *extra, probs], axis=1)
        extras = {
            **_extras(data, outcome, ctx.randomized),
            "norm": p.norm,
            "eps": list(p.eps),
            "eps_value": [parse_eps(e) for e in p.eps],
        }
        if outcome["flags"]:  # the attack object is shared by every eps: all its flags
            extras["flags"] = outcome["flags"]
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
