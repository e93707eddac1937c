"""``adaptive``: one threat model's robust accuracy that a masked model cannot fake.

A plain ``pgd`` row reports what PGD found; on a model with detached, decoy or hard-label
outputs that is the clean accuracy. This evaluation first runs the indicators of attack
failure (``sanity``'s checks, on its own examples), then the white-box attack, then the
fallback each indicator calls for, on the examples still robust:

=====================================================  ======================================
indicator                                              what runs next
=====================================================  ======================================
``undeclared_randomness`` / ``unstable_predictions``   the white-box attack with EOT, judged
                                                       by the mean of ``n_samples`` passes
``degenerate_gradients`` / ``unavailable_gradients``   PGD with the scale-invariant DLR loss
/ ``unbounded_attack_fails`` / ``outputs_probabilities``  (undoes logit scaling and saturated
                                                       softmax outputs), BPDA through the
                                                       model's declared approximation when it
                                                       declares one (``bpda_forward``), the
                                                       transfer attack from a surrogate row
                                                       when ``transfer`` names one, then the
                                                       decision-based attack (labels only:
                                                       HopSkipJump)
=====================================================  ======================================

Every candidate is checked and judged by fresh passes as in every adversarial evaluation
(:func:`benchmark.evaluations.adversarial.worst_case`); the robust accuracy is the per-example
worst case over everything run, each example records the attack that broke it, and the
indicators' flags stay on the row: the number is the best the harness can do, and the flag
says that a gradient attack alone could not be trusted on this model.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field
from torch import nn

from benchmark.attacks import Attack, parse_eps
from benchmark.attacks.bpda import bpda_forward_of
from benchmark.datasets.base import ArrayDataset
from benchmark.errors import BenchmarkError
from benchmark.evaluations.adversarial import (
    THREAT_METRICS,
    AdversarialEvaluation,
    AttackSpec,
    ThreatParams,
    _extras,
    outcome_records,
    summarize_records,
    worst_case,
)
from benchmark.evaluations.base import EVALUATIONS, EvalContext, EvaluationResult
from benchmark.evaluations.sanity import SanityChecks, SanityParams
from benchmark.metrics.specs import MetricSpec
from benchmark.registry import Entry, StrictParams
from benchmark.trust.flags import register_flag

register_flag(
    "silent_success",
    "Examples an attack judged adversarial during its run are classified correctly by fresh "
    "passes on the same inputs: the forward is noisy or behaves differently while attacked, "
    "so the attack's own verdicts cannot be trusted (only the fresh passes are counted).",
)

register_flag(
    "transfer_failure",
    "Adversarial examples crafted on a surrogate model (another row, with honest gradients) "
    "break examples that every white-box attack on this model left robust (at least 3, and "
    "more than 2% of the examples): the white-box attacks are failing on this model, whose "
    "gradients mislead them (Pintor et al.'s transfer-failure indicator).",
)
# A transfer break counts as the indicator from this many examples and this fraction on.
TRANSFER_MIN_EXAMPLES, TRANSFER_MIN_FRACTION = 3, 0.02

RANDOMNESS = {"undeclared_randomness", "unstable_predictions"}
NO_USABLE_GRADIENT = {
    "degenerate_gradients",
    "unavailable_gradients",
    "unbounded_attack_fails",
    "outputs_probabilities",
}


class AdaptiveParams(ThreatParams):
    n_examples: int | None = Field(
        100, ge=1, description="a fixed seeded subset (indicators and fallbacks cost queries)"
    )
    whitebox: AttackSpec | None = Field(
        default_factory=lambda: AttackSpec(type="pgd", params={"steps": 50}),
        description="the gradient attack run first; null: only the fallbacks, and only when an "
        "indicator fires (the suite's automatic step, beside its own attack evaluations)",
    )
    scale_invariant: AttackSpec = Field(
        default_factory=lambda: AttackSpec(type="pgd", params={"steps": 50, "loss": "dlr"}),
        description="the gradient fallback whose loss ignores the logits' scale",
    )
    bpda: AttackSpec = Field(
        default_factory=lambda: AttackSpec(type="bpda", params={"steps": 50}),
        description="run on models that declare a differentiable approximation of their "
        "non-differentiable preprocessing (bpda_forward); skipped for the others",
    )
    transfer: AttackSpec | None = Field(
        None,
        description="a transfer attack from a surrogate row, e.g. {type: transfer, params: "
        "{surrogate: resnet20}}: run before the decision-based one when it is set",
    )
    decision_based: AttackSpec = Field(
        default_factory=lambda: AttackSpec(type="hopskipjump"),
        description="the label-only fallback for models without a usable gradient",
    )
    fallbacks: Literal["on_indicator", "always"] = Field(
        "on_indicator", description="run the fallbacks when an indicator fires, or always"
    )
    indicators: SanityParams = Field(default_factory=SanityParams)


class AdaptiveEvaluation(AdversarialEvaluation):
    """Indicators, then the white-box attack, then the fallbacks they call for."""

    version: ClassVar[str] = "3"  # 3: incomplete-optimization check; 2: whole-block calls, BPDA
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        *THREAT_METRICS,
        MetricSpec(
            "subset_clean_acc_pct",
            "%",
            "higher",
            "clean accuracy on this evaluation's own examples (the robust accuracy's ceiling)",
            detail=True,
        ),
        MetricSpec("n_fallbacks", "count", "none", "fallback attacks run", detail=True),
    )

    Params = AdaptiveParams  # type: ignore[assignment]
    params: AdaptiveParams

    @classmethod
    def default_name(cls, params: StrictParams) -> str:
        return f"adaptive_{params.norm.lower()}_{params.eps}"  # type: ignore[attr-defined]

    @classmethod
    def attack_kind(cls, params: StrictParams) -> str | None:
        return "adaptive"  # a mix chosen per model: not paired by the kind-based checks

    @classmethod
    def attacks_used(cls, params: StrictParams) -> list[str]:
        p: AdaptiveParams = params  # type: ignore[assignment]
        specs = [p.whitebox, p.scale_invariant, p.bpda, p.transfer, p.decision_based]
        return list(dict.fromkeys(["pgd", *(spec.type for spec in specs if spec is not None)]))

    @classmethod
    def auto(cls, norm: str, eps: str, n_examples: int | None) -> dict[str, Any]:
        """Params of the suite's automatic fallback step for one threat model: no white-box
        attack of its own (the suite's evaluations are the white-box ones), the fallbacks on
        the threat model's smallest subset (the examples its headline covers) when an
        indicator fires, nothing otherwise."""
        return {"norm": norm, "eps": eps, "n_examples": n_examples, "whitebox": None}

    @classmethod
    def planned_passes(cls, params: StrictParams, n_examples: int) -> tuple[int, int]:
        """The indicators and the attacks that always run (white-box, transfer); the
        fallbacks run only where an indicator fires, so they count only with ``always``."""
        p: AdaptiveParams = params  # type: ignore[assignment]
        indicators = min(n_examples, p.indicators.n_examples)
        forward, grad = SanityChecks.planned_passes(p.indicators, indicators)
        forward += 2 * n_examples
        for label, attack in cls(p).attacks():
            if p.fallbacks == "always" or label in ("whitebox", "transfer"):
                f, g = attack.planned_passes(n_examples)
                forward, grad = forward + f, grad + g
        return forward, grad

    def attacks(self) -> list[tuple[str, Attack]]:
        """(label, attack) in the order they may run: white-box, then the fallbacks."""
        p = self.params
        specs = {
            "whitebox": p.whitebox,
            "scale_invariant": p.scale_invariant,
            "bpda": p.bpda,
            "transfer": p.transfer,
            "decision_based": p.decision_based,
        }
        return [(label, spec.build(p.norm)) for label, spec in specs.items() if spec is not None]

    def run_shard(
        self, model: nn.Module, data: ArrayDataset, ctx: EvalContext, start: int, stop: int
    ) -> EvaluationResult:
        raise BenchmarkError("shard_size: the adaptive evaluation is not shardable")

    def _evaluate(
        self, model: nn.Module, data: ArrayDataset, ctx: EvalContext, offset: int
    ) -> EvaluationResult:
        p = self.params
        indicators = p.indicators.model_copy(
            update={"n_examples": min(len(data), p.indicators.n_examples)}
        )
        checks = SanityChecks(indicators).run(model, data, ctx)
        flags: list[str] = list(checks.extras["flags"])
        attack_ctx = ctx
        fallbacks: list[str] = []
        if RANDOMNESS & set(flags) and not ctx.randomized:
            attack_ctx = dataclasses.replace(ctx, randomized=True)  # EOT, mean predictions
            fallbacks.append("eot")
        built = self.attacks()
        if bpda_forward_of(model) is None:  # BPDA would be plain PGD again
            built = [(label, attack) for label, attack in built if label != "bpda"]
        # the white-box attack, and the transfer-failure indicator, run on every model
        attacks = [(label, attack) for label, attack in built if label in ("whitebox", "transfer")]
        # Without a white-box attack of its own (the suite's automatic step) a randomness
        # indicator also calls for the fallbacks: EOT needs an attack to apply to.
        fires = NO_USABLE_GRADIENT & set(flags) or (p.whitebox is None and RANDOMNESS & set(flags))
        if p.fallbacks == "always" or fires:
            attacks = built
            fallbacks += [f"{p.scale_invariant.type}_{p.scale_invariant.params.get('loss', 'ce')}"]
            if any(label == "bpda" for label, _ in built):
                fallbacks.append("bpda")
            if p.transfer is not None:
                fallbacks.append(f"transfer_from_{p.transfer.params.get('surrogate')}")
            fallbacks.append(p.decision_based.type)
        outcome = worst_case(
            model, data, attacks, p.norm, parse_eps(p.eps), p, attack_ctx, offset=offset
        )
        records = outcome_records(data, outcome)
        achieved = np.full(len(data), "", dtype=object)
        previous = outcome["clean_correct"].numpy()
        for label, _ in attacks:
            after = outcome["after"][label].numpy()
            achieved[previous & ~after] = label
            previous = after
        # The number counted is the fresh passes' verdict (worst_case's final re-evaluation):
        # a break the attack saw but the fresh passes do not is a silent success (Pintor et
        # al.'s first indicator: a noisy or lying forward); a fresh-pass error no attack
        # claimed is the final pass's own (a randomized model misclassifying its input).
        final_broken = (outcome["clean_correct"] & ~outcome["robust"]).numpy()
        silent = (achieved != "") & ~final_broken
        achieved[silent] = ""
        achieved[final_broken & (achieved == "")] = "final_pass"
        if silent.any():
            flags.append("silent_success")
        transfer_breaks = int((achieved == "transfer").sum())
        if (
            transfer_breaks >= TRANSFER_MIN_EXAMPLES
            and transfer_breaks > TRANSFER_MIN_FRACTION * len(data)
        ):
            flags.append("transfer_failure")
        flags += outcome["flags"]  # the attacks' own checks (AutoAttack's warnings)
        records["broken_by"] = achieved
        metrics = summarize_records(records)
        if not attacks:
            # Nothing attacked: a robust accuracy here would be the clean one, so there is no
            # number and no per-example verdict (the headline's worst case and `compare` then
            # leave this result out for the row)
            metrics = {name: float("nan") for name in metrics}
            records = records[["index", "label", "clean_correct"]]
        metrics["subset_clean_acc_pct"] = 100.0 * float(outcome["clean_correct"].float().mean())
        metrics["n_fallbacks"] = float(len(fallbacks))
        labels = [label for label, _ in attacks] + ["final_pass"]
        counts = {label: int((achieved == label).sum()) for label in labels}
        extras: dict[str, Any] = {
            **self._extras(_extras(data, outcome, attack_ctx.randomized)),
            "fallbacks": fallbacks,
            "broken_by": counts,
            "n_silent_success": int(silent.sum()),
            "indicators": checks.extras["checks"],
            # the numbers behind each flag, where the leaderboard's findings look for them
            "checks": {
                **checks.extras["checks"],
                "silent_success": {"examples": int(silent.sum()), "of": len(data)},
                "transfer_failure": {"examples": transfer_breaks, "of": len(data)},
                **outcome["checks"],
            },
        }
        if flags:
            extras["flags"] = sorted(set(flags))
        return EvaluationResult(metrics, records, extras)


def register_builtin() -> None:
    if "adaptive" not in EVALUATIONS:
        description = "indicators of attack failure, then the matching fallbacks; worst case"
        EVALUATIONS.add(
            Entry("adaptive", AdaptiveEvaluation, description, AdaptiveEvaluation.Params)
        )


register_builtin()
