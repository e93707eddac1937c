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
  ``unbounded_steps`` steps, started at the clean image, leaves more than
  ``max_unbounded_acc_pct`` accuracy: an attack that cannot win without a budget is not
  measuring robustness (Pintor et al.'s *unreachable misclassification*). It starts at the
  clean image because a random start at eps = 1 is uniform noise, which misclassifies most
  images by itself; the accuracy under that noise alone is reported next to it;
* ``unavailable_gradients`` -- the forward cuts the autograd graph (no gradient at all), or
  the gradient disagrees with the function: along the gradient's own direction the logit
  margin changes by far less (or more) than the gradient says, by central finite
  differences (a decoy: a differentiable path whose value is zero but whose gradient is not);
* ``unstable_predictions`` -- predictions flip under input noise far below any attack
  budget (+-``stability_noise``): a forward that is noisy or discontinuous at that scale
  cannot be attacked by gradients or judged by one pass.

The last three are three of the six indicators of attack failure of Pintor et al. (NeurIPS
2022); ``benchmark/trust/checks.py`` holds the cross-evaluation ones. Declared randomized
models skip the finite-difference and stability checks (their passes differ by design).
"""

from __future__ import annotations

from typing import ClassVar

import pandas as pd
import torch
from pydantic import Field
from torch import nn

from benchmark.attacks import AttackContext
from benchmark.attacks.base import frozen_parameters
from benchmark.attacks.losses import logit_margin
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
    "PGD with an unbounded budget (eps = the whole input range), started at the clean image, "
    "should reach ~0% accuracy; if it does not, the attack is not working on this model and "
    "its robust accuracy measures the attack's failure, not robustness.",
)
register_flag(
    "unavailable_gradients",
    "The input gradient is not the model's: the forward cuts the autograd graph, or a step "
    "along the gradient changes the logit margin by far less (or more) than the gradient "
    "predicts (central finite differences), as a zero-valued decoy path with a useless "
    "gradient does. Gradient attacks then follow a gradient of something else: robust "
    "accuracy is overestimated; use a transfer or decision-based attack.",
)
register_flag(
    "unstable_predictions",
    "Predictions flip under input noise far below any attack budget: the forward is noisy "
    "or discontinuous at that scale, so one pass proves nothing and gradients do not "
    "describe it. Robust accuracy from single passes is not trustworthy.",
)


class SanityParams(StrictParams):
    n_examples: int = Field(100, ge=1)
    unbounded_steps: int = Field(100, ge=1, le=100_000)
    max_unbounded_acc_pct: float = Field(1.0, ge=0, le=100)
    max_bad_gradient_pct: float = Field(10.0, ge=0, le=100)
    exploding_gradient: float = Field(1e6, gt=0)
    fd_step: float = Field(1e-3, gt=0, le=0.1, description="finite-difference step (L2)")
    max_gradient_mismatch_pct: float = Field(
        20.0, ge=0, le=100, description="examples whose gradient the finite difference denies"
    )
    stability_noise: float = Field(1e-3, gt=0, le=0.1, description="Linf size of the noise")
    stability_draws: int = Field(4, ge=1, le=1000)
    max_unstable_pct: float = Field(5.0, ge=0, le=100)


def gradient_agreement(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: float
) -> dict[str, torch.Tensor | bool]:
    """The logit margin's gradient g against central differences along u = g / |g|_2 (the
    margin: piecewise linear for ReLU networks, so the differences are exact away from kinks):
    autograd says the directional derivative is |g|, the function says
    (m(x + h u) - m(x - h u)) / 2h. ``cut``: the output has no graph to the input."""
    x = x.detach().requires_grad_(True)
    margin = logit_margin(model(x), y)
    if not margin.requires_grad:
        zeros = torch.zeros(len(x), device=x.device)
        return {"cut": True, "autograd": zeros, "finite_difference": zeros}
    (grad,) = torch.autograd.grad(margin.sum(), x, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(x)
    norms = grad.flatten(1).norm(dim=1)
    direction = grad / norms.clamp_min(1e-12).view(-1, *([1] * (x.ndim - 1)))
    with torch.no_grad():
        up = logit_margin(model(x + step * direction), y)
        down = logit_margin(model(x - step * direction), y)
    return {"cut": False, "autograd": norms.detach(), "finite_difference": (up - down) / (2 * step)}


@register_evaluation("sanity", "checks for gradient masking, probability outputs, randomness")
class SanityChecks(Evaluation):
    version: ClassVar[str] = "2"  # 2: FD gradient check, stability, unbounded PGD from clean
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
        MetricSpec(
            "noise_only_acc_pct",
            "%",
            "none",
            "accuracy on uniform noise filling the eps = 1 ball (a random start alone)",
            detail=True,
        ),
    )

    @classmethod
    def attacks_used(cls, params: StrictParams) -> list[str]:
        return ["pgd"]  # the unbounded-attack check runs our PGD (``run_pgd``)

    @classmethod
    def planned_passes(cls, params: StrictParams, n_examples: int) -> tuple[int, int]:
        p: SanityParams = params  # type: ignore[assignment]
        # two passes, two finite differences, the stability draws, the unbounded attack's
        # final and noise passes; the input gradient, the margin's, the unbounded steps
        forward = n_examples * (4 + p.stability_draws + 2)
        return forward, n_examples * (2 + p.unbounded_steps)

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
            agreement = gradient_agreement(model, x, y, p.fd_step)
        norms = grad.flatten(1).norm(dim=1)
        bad = (norms == 0) | ~torch.isfinite(norms) | (norms > p.exploding_gradient)
        checks["degenerate_gradients"] = {
            "zero_pct": 100.0 * float((norms == 0).float().mean()),
            "nonfinite_pct": 100.0 * float((~torch.isfinite(norms)).float().mean()),
            "exploding_pct": 100.0 * float((norms > p.exploding_gradient).float().mean()),
            "failed": 100.0 * float(bad.float().mean()) > p.max_bad_gradient_pct,
        }
        checks["unavailable_gradients"] = self._agreement_check(agreement, randomized)
        checks["unstable_predictions"] = self._stability_check(model, x, first, randomized, ctx)

        x_adv = run_pgd(
            x,
            y,
            actx,
            steps=p.unbounded_steps,
            step_size=2.5 / p.unbounded_steps,
            restarts=1,
            start_random=False,  # from the clean image: noise alone must not count
            loss="ce",
            targeted=False,
            early_stop=not randomized,
        )
        with torch.no_grad():
            logits = model(x_adv)
            noise = torch.rand(x.shape, generator=actx.generator).to(ctx.device)
            noise_logits = model(noise)
        check_finite(logits, "sanity: unbounded attack")  # NaN's argmax would count
        unbounded_acc = 100.0 * float((logits.argmax(1) == y).float().mean())
        noise_acc = 100.0 * float((noise_logits.argmax(1) == y).float().mean())
        checks["unbounded_attack_fails"] = {
            "accuracy_at_eps_1_pct": unbounded_acc,
            "noise_only_accuracy_pct": noise_acc,
            "failed": unbounded_acc > p.max_unbounded_acc_pct,
        }

        flags = [name for name, check in checks.items() if check["failed"]]
        records = pd.DataFrame({"index": data.indices.numpy(), "grad_norm": norms.cpu().numpy()})
        metrics = {
            "n_flags": float(len(flags)),
            "unbounded_acc_pct": unbounded_acc,
            "noise_only_acc_pct": noise_acc,
        }
        extras = {"n_examples": len(data), "flags": flags, "checks": checks}
        return EvaluationResult(metrics, records, extras)

    def _agreement_check(
        self, agreement: dict[str, torch.Tensor | bool], randomized: bool
    ) -> dict[str, float | bool]:
        if agreement["cut"]:
            return {"graph_cut": True, "mismatch_pct": 100.0, "failed": True}
        if randomized:  # two noisy passes differ by design: no finite difference to compare
            return {"graph_cut": False, "skipped": True, "failed": False}
        ad = agreement["autograd"]
        fd = agreement["finite_difference"]
        assert isinstance(ad, torch.Tensor) and isinstance(fd, torch.Tensor)
        scale = torch.maximum(ad.abs(), fd.abs())
        # both ~0 is a zero gradient of a flat function (degenerate_gradients' business)
        mismatch = (scale > 1e-6) & ((ad - fd).abs() > 0.5 * scale)
        pct = 100.0 * float(mismatch.float().mean())
        return {
            "graph_cut": False,
            "mismatch_pct": pct,
            "median_autograd": float(ad.median()),
            "median_finite_difference": float(fd.median()),
            "failed": pct > self.params.max_gradient_mismatch_pct,
        }

    def _stability_check(
        self,
        model: nn.Module,
        x: torch.Tensor,
        clean_logits: torch.Tensor,
        randomized: bool,
        ctx: EvalContext,
    ) -> dict[str, float | bool]:
        if randomized:
            return {"skipped": True, "failed": False}
        p = self.params
        generator = torch.Generator().manual_seed(ctx.seed % (2**63))
        reference = clean_logits.argmax(1)
        flipped = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        with torch.no_grad():
            for _ in range(p.stability_draws):
                noise = (torch.rand(x.shape, generator=generator) * 2 - 1) * p.stability_noise
                flipped |= model((x + noise.to(x.device)).clamp(0, 1)).argmax(1) != reference
        pct = 100.0 * float(flipped.float().mean())
        return {"flipped_pct": pct, "failed": pct > p.max_unstable_pct}
