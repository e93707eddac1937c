"""Projected gradient descent (Madry et al. 2018) in Linf and L2, and FGSM as its one-step case.

Written here instead of wrapping torchattacks' PGD/PGDL2 because a trustworthy evaluation
needs what those lack: restarts that keep the per-example best result, the DLR loss,
targeted variants, EOT gradients for randomized models, and per-example early stopping
(an example is frozen at its first misclassified iterate, which both keeps a found
adversarial example from being lost by later steps and saves its gradient passes).
tests/test_attacks.py checks it against torchattacks and foolbox on the same model and data.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from benchmark.attacks.base import (
    Attack,
    AttackContext,
    example_generators,
    frozen_parameters,
    register_attack,
)
from benchmark.attacks.losses import LOSSES, logit_margin
from benchmark.attacks.threat import EpsField, Norm, parse_eps, perturbation_norm, project


def _view(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.ndim - 1)))


def random_start(
    x: torch.Tensor,
    norm: Norm,
    eps: float,
    generator: torch.Generator | list[torch.Generator],
) -> torch.Tensor:
    """Uniform in the Linf ball; for L2 a uniform direction with radius uniform in [0, eps].

    With one generator per example (:func:`example_generators`) each example's noise is the
    same whichever other examples share the batch; one generator draws for the whole batch."""
    if isinstance(generator, torch.Generator):
        delta = _ball_noise(x.shape, norm, eps, generator)
    else:
        if len(generator) != len(x):
            raise ValueError(f"{len(generator)} generators for {len(x)} examples")
        delta = torch.cat([_ball_noise((1, *x.shape[1:]), norm, eps, g) for g in generator])
    return (x + delta.to(x.device)).clamp(0, 1)


def _ball_noise(
    shape: tuple[int, ...] | torch.Size, norm: Norm, eps: float, generator: torch.Generator
) -> torch.Tensor:
    if norm == "Linf":
        return (torch.rand(shape, generator=generator) * 2 - 1) * eps
    direction = torch.randn(shape, generator=generator)
    direction = direction / _view(perturbation_norm(direction, "L2").clamp_min(1e-12), direction)
    return direction * _view(torch.rand(shape[0], generator=generator) * eps, direction)


def input_gradient(
    ctx: AttackContext,
    x: torch.Tensor,
    y: torch.Tensor,
    target: torch.Tensor | None,
    loss_name: str,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of the summed per-example loss w.r.t. ``x`` (averaged over EOT samples for
    randomized models) and the logits of the last forward pass."""
    loss_fn = LOSSES[loss_name]
    samples = ctx.eot_samples if ctx.randomized else 1
    x = x.detach().requires_grad_(True)
    grad = torch.zeros_like(x)
    logits = None
    for _ in range(samples):
        logits = ctx.model(x)
        loss = loss_fn(logits, y, target).sum()
        if not loss.requires_grad:  # the forward cut the graph (e.g. ``net(x.detach())``):
            continue  # no gradient at all, i.e. zero; the sanity checks name it
        (g,) = torch.autograd.grad(loss, x, allow_unused=True)
        if g is not None:
            grad += g
    assert logits is not None
    return grad / samples, logits.detach()


class PGDParams(Attack.Params):
    steps: int = Field(10, ge=1, le=100_000)
    step_size: EpsField | None = Field(None, description="default 2.5 * eps / steps")
    restarts: int = Field(1, ge=1, le=1000)
    random_start: bool = True
    loss: Literal["ce", "dlr"] = "ce"
    targeted: bool = Field(False, description="aim at the most likely wrong class")
    early_stop: bool = Field(True, description="freeze examples once misclassified")


def run_pgd(
    x: torch.Tensor,
    y: torch.Tensor,
    ctx: AttackContext,
    *,
    steps: int,
    step_size: float,
    restarts: int,
    start_random: bool,
    loss: str,
    targeted: bool,
    early_stop: bool,
) -> torch.Tensor:
    """Batched PGD with per-example bookkeeping; returns the first misclassified iterate per
    example where one was found, else the last iterate of the last restart."""
    early_stop = early_stop and not ctx.randomized  # one noisy pass proves nothing
    with frozen_parameters(ctx.model):
        target = None
        if targeted:
            with torch.no_grad():
                logits = ctx.model(x)
                logits.scatter_(1, y[:, None], float("-inf"))
                target = logits.argmax(1)
        generators = example_generators(ctx, "random_start") if start_random else None
        traces = ctx.loss_traces
        if traces is not None:
            traces.start(len(x), steps)
        best = x.clone()
        found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        for restart in range(restarts):
            todo = (~found).nonzero().squeeze(1)
            if len(todo) == 0:
                break
            x0, y0 = x[todo], y[todo]
            t0 = None if target is None else target[todo]
            if not start_random:
                x_adv = x0.clone()
            elif generators is None:
                x_adv = random_start(x0, ctx.norm, ctx.eps, ctx.generator)
            else:  # restart r of an example continues that example's own stream
                x_adv = random_start(x0, ctx.norm, ctx.eps, [generators[int(i)] for i in todo])
            done = torch.zeros(len(todo), dtype=torch.bool, device=x.device)
            for step in range(steps):
                if early_stop:
                    active = (~done).nonzero().squeeze(1)
                    if len(active) == 0:
                        break
                    xa, ya, xa0 = x_adv[active], y0[active], x0[active]
                    ta = None if t0 is None else t0[active]
                else:  # every example takes every step: no gathers or scatters
                    xa, ya, xa0, ta = x_adv, y0, x0, t0
                grad, logits = input_gradient(ctx, xa, ya, ta, loss)
                if traces is not None:  # the margin at the iterate this step starts from
                    rows = todo[active] if early_stop else todo
                    traces.record(step, rows, logit_margin(logits, ya))
                if early_stop:
                    hit = logits.argmax(1) != ya
                    done[active[hit]] = True
                    keep = ~hit
                    active, xa, xa0, grad = active[keep], xa[keep], xa0[keep], grad[keep]
                if ctx.norm == "Linf":
                    xa = xa + step_size * grad.sign()
                else:
                    norms = perturbation_norm(grad, "L2").clamp_min(1e-12)
                    xa = xa + step_size * grad / _view(norms, grad)
                stepped = (xa0 + project(xa - xa0, ctx.norm, ctx.eps)).clamp(0, 1).detach()
                if early_stop:
                    x_adv[active] = stepped
                else:
                    x_adv = stepped
            best[todo] = x_adv
            if restart + 1 < restarts:
                # Which examples the next restart may skip: the last step is unchecked. (After
                # the last restart nobody reads ``found``, so that forward pass is saved.)
                with torch.no_grad():
                    done |= ctx.model(x_adv).argmax(1) != y0
                found[todo] = done
    return best


@register_attack("pgd", "projected gradient descent (Linf/L2; CE or DLR loss; restarts; EOT)")
class PGD(Attack):
    Params = PGDParams
    params: PGDParams
    kind = "iterative"
    version = "2"  # 2: each example's random start drawn from (seed, label, dataset index)

    def planned_passes(self, n_examples: int) -> tuple[int, int]:
        p = self.params
        return n_examples * (p.restarts - 1), n_examples * p.steps * p.restarts

    def perturb(self, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext) -> torch.Tensor:
        p = self.params
        step = parse_eps(p.step_size) if p.step_size is not None else 2.5 * ctx.eps / p.steps
        return run_pgd(
            x,
            y,
            ctx,
            steps=p.steps,
            step_size=step,
            restarts=p.restarts,
            start_random=p.random_start,
            loss=p.loss,
            targeted=p.targeted,
            early_stop=p.early_stop,
        )


@register_attack("fgsm", "fast gradient sign method (Linf) / fast gradient method (L2), one step")
class FGSM(Attack):
    kind = "single-step"
    version = "1"

    class Params(Attack.Params):
        loss: Literal["ce", "dlr"] = "ce"

    params: Params

    def planned_passes(self, n_examples: int) -> tuple[int, int]:
        return 0, n_examples

    def perturb(self, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext) -> torch.Tensor:
        return run_pgd(
            x,
            y,
            ctx,
            steps=1,
            step_size=ctx.eps,
            restarts=1,
            start_random=False,
            loss=self.params.loss,
            targeted=False,
            early_stop=False,
        )
