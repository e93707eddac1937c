"""``sanity``: per-model checks that catch evaluations which would report a meaningless
robust accuracy (AutoAttack's checks and Carlini et al. 2019's checklist, made explicit).

Each check that fails adds a named flag to the result (and to the leaderboard's ``flags``
column) with the numbers behind it in ``extras["checks"]``:

* ``outputs_probabilities`` -- outputs are in [0, 1] and sum to 1: the model returns
  probabilities, so gradient attacks on "logits" see a squashed signal;
* ``undeclared_randomness`` -- two passes on the same input differ although the model is not
  declared randomized: it would be attacked without EOT;
* ``degenerate_gradients`` -- more than ``max_bad_gradient_pct`` of the examples have a zero,
  non-finite or exploding input gradient (gradient masking / obfuscation);
* ``unbounded_attack_fails`` -- PGD with eps = 1 (the whole input range, Linf) and
  ``unbounded_steps`` steps leaves more than ``max_unbounded_acc_pct`` accuracy: an attack
  that cannot win without a budget is not measuring robustness.
"""

from __future__ import annotations

from typing import ClassVar

import pandas as pd
import torch
from pydantic import Field
from torch import nn

from benchmark.attacks import AttackContext
from benchmark.attacks.base import frozen_parameters
from benchmark.attacks.pgd import input_gradient, run_pgd
from benchmark.datasets.base import ArrayDataset
from benchmark.evaluations.base import (
    EvalContext,
    Evaluation,
    EvaluationResult,
    register_evaluation,
)
from benchmark.inference import check_finite
from benchmark.metrics.specs import MetricSpec
from benchmark.registry import StrictParams
from benchmark.trust.flags import register_flag

register_flag(
    "outputs_probabilities",
    "Model outputs lie in [0, 1] and sum to 1: it returns probabilities, not logits. "
    "Gradient attacks on saturated softmax outputs see vanishing gradients, so robust "
    "accuracy is overestimated.",
)
register_flag(
    "undeclared_randomness",
    "Two forward passes on the same input differ, but the model is not declared randomized, "
    "so it was attacked without EOT (expectation over transformation) and judged on single "
    "noisy passes: random noise masks the gradient and robust accuracy is overestimated.",
)
register_flag(
    "degenerate_gradients",
    "Too many examples have a zero, non-finite or exploding input gradient (e.g. a "
    "non-differentiable quantization step): gradient-based attacks cannot make progress, a "
    "classic sign of gradient masking.",
)
register_flag(
    "unbounded_attack_fails",
    "PGD with an unbounded budget (eps = the whole input range) should reach ~0% accuracy; "
    "if it does not, the attack is not working on this model and its robust accuracy "
    "measures the attack's failure, not robustness.",
)


class SanityParams(StrictParams):
    n_examples: int = Field(100, ge=1)
    unbounded_steps: int = Field(100, ge=1)
    max_unbounded_acc_pct: float = Field(1.0, ge=0, le=100)
    max_bad_gradient_pct: float = Field(10.0, ge=0, le=100)
    exploding_gradient: float = Field(1e6, gt=0)


@register_evaluation("sanity", "checks for gradient masking, probability outputs, randomness")
class SanityChecks(Evaluation):
    version: ClassVar[str] = "1"
    Params = SanityParams
    params: SanityParams
    # Diagnostics of the evaluation, not qualities of the model: the flags count has no better
    # side (the flags column names them); the unbounded-attack accuracy should be ~0, and
    # anything above means the attack, hence this row's robust accuracy, is not working.
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("n_flags", "count", "none", "number of failed sanity checks"),
        MetricSpec(
            "unbounded_acc_pct", "%", "lower", "accuracy under PGD with eps = 1 (should be ~0)"
        ),
    )

    @classmethod
    def attacks_used(cls, params: StrictParams) -> list[str]:
        return ["pgd"]  # the unbounded-attack check runs our PGD (``run_pgd``)

    def run(self, model: nn.Module, data: ArrayDataset, ctx: EvalContext) -> EvaluationResult:
        p = self.params
        data = data.subset(p.n_examples, seed=0)
        x, y = data.x.to(ctx.device), data.y.to(ctx.device)
        randomized = ctx.randomized
        checks: dict[str, dict[str, float | bool]] = {}

        with torch.no_grad():
            first, second = model(x), model(x)
        for logits in (first, second):
            check_finite(logits, "sanity")
        row_sums = first.sum(1)
        checks["outputs_probabilities"] = {
            "min_output": float(first.min()),
            "max_output": float(first.max()),
            "max_row_sum_deviation": float((row_sums - 1).abs().max()),
        }
        checks["outputs_probabilities"]["failed"] = bool(
            first.min() >= 0 and first.max() <= 1 and (row_sums - 1).abs().max() < 1e-4
        )
        difference = float((first - second).abs().max())
        checks["undeclared_randomness"] = {
            "max_difference_between_passes": difference,
            "declared_randomized": randomized,
            "failed": difference > 1e-6 and not randomized,
        }

        actx = AttackContext(
            model=model,
            norm="Linf",
            eps=1.0,
            device=ctx.device,
            seed=ctx.seed,
            batch_size=ctx.batch_size,
            randomized=randomized,
            eot_samples=1,
            generator=torch.Generator().manual_seed(ctx.seed % (2**63)),
        )
        with frozen_parameters(model):
            grad, _ = input_gradient(actx, x, y, None, "ce")
        norms = grad.flatten(1).norm(dim=1)
        bad = (norms == 0) | ~torch.isfinite(norms) | (norms > p.exploding_gradient)
        checks["degenerate_gradients"] = {
            "zero_pct": 100.0 * float((norms == 0).float().mean()),
            "nonfinite_pct": 100.0 * float((~torch.isfinite(norms)).float().mean()),
            "exploding_pct": 100.0 * float((norms > p.exploding_gradient).float().mean()),
            "failed": 100.0 * float(bad.float().mean()) > p.max_bad_gradient_pct,
        }

        x_adv = run_pgd(
            x,
            y,
            actx,
            steps=p.unbounded_steps,
            step_size=2.5 / p.unbounded_steps,
            restarts=1,
            start_random=True,
            loss="ce",
            targeted=False,
            early_stop=not randomized,
        )
        with torch.no_grad():
            logits = model(x_adv)
        check_finite(logits, "sanity: unbounded attack")  # NaN's argmax would count
        unbounded_acc = 100.0 * float((logits.argmax(1) == y).float().mean())
        checks["unbounded_attack_fails"] = {
            "accuracy_at_eps_1_pct": unbounded_acc,
            "failed": unbounded_acc > p.max_unbounded_acc_pct,
        }

        flags = [name for name, check in checks.items() if check["failed"]]
        records = pd.DataFrame({"index": data.indices.numpy(), "grad_norm": norms.cpu().numpy()})
        metrics = {"n_flags": float(len(flags)), "unbounded_acc_pct": unbounded_acc}
        extras = {"n_examples": len(data), "flags": flags, "checks": checks}
        return EvaluationResult(metrics, records, extras)
