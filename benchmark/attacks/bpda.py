"""BPDA: PGD through a model's declared approximation of its non-differentiable preprocessing
(Backward Pass Differentiable Approximation, Athalye et al. 2018).

A model whose forward quantizes, JPEG-compresses or thermometer-encodes its input has a zero
or undefined gradient there, so every gradient attack stalls and the model looks robust.
BPDA keeps the exact forward value and replaces only the backward pass of the staircase by a
differentiable approximation (most often the identity). The model declares it, since only
its author knows where the staircase is:

    class Quantized(nn.Module):
        def forward(self, x):
            return self.net(torch.round(x * 3) / 3)

        def bpda_forward(self, x):  # same values, the identity's gradient
            return self.net(straight_through(torch.round(x * 3) / 3, x))

``bpda_forward`` must return what ``forward`` returns; only its gradient differs. Registered
models declare it on their network (the registry's input normalization passes it through).
A model that declares nothing is attacked through its own forward: BPDA is then plain PGD,
the right attack for a model whose gradient is its own. Every candidate is judged by the
model's real forward, as always (:mod:`benchmark.evaluations.adversarial`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from benchmark.attacks.base import Attack, AttackContext, register_attack
from benchmark.attacks.pgd import run_pgd


def straight_through(value: torch.Tensor, approximation: torch.Tensor) -> torch.Tensor:
    """``value`` in the forward pass, ``approximation``'s gradient in the backward pass."""
    return approximation + (value - approximation).detach()


def bpda_forward_of(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The model's declared ``bpda_forward``, or None when it declares none."""
    declared = getattr(model, "bpda_forward", None)
    return declared if callable(declared) else None


class _ThroughApproximation(nn.Module):
    """The model seen through its ``bpda_forward``: what the attack differentiates."""

    def __init__(self, model: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.model = model
        self._forward = forward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(x)


@register_attack(
    "bpda",
    "PGD through the model's declared differentiable approximation (bpda_forward) of its "
    "non-differentiable preprocessing; plain PGD where it declares none",
)
class BPDA(Attack):
    kind = "bpda"  # a white-box attack on another function's gradient: not paired by kind
    version = "1"

    class Params(Attack.Params):
        steps: int = Field(50, ge=1, le=100_000)
        restarts: int = Field(1, ge=1, le=1000)
        loss: Literal["ce", "dlr"] = "ce"

    params: Params

    def planned_passes(self, n_examples: int) -> tuple[int, int]:
        p = self.params
        return n_examples * (p.restarts - 1), n_examples * p.steps * p.restarts

    def perturb(self, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext) -> torch.Tensor:
        p = self.params
        declared = bpda_forward_of(ctx.model)
        view = ctx.model if declared is None else _ThroughApproximation(ctx.model, declared)
        return run_pgd(
            x,
            y,
            dataclasses.replace(ctx, model=view),
            steps=p.steps,
            step_size=2.5 * ctx.eps / p.steps,
            restarts=p.restarts,
            start_random=True,
            loss=p.loss,
            targeted=False,
            early_stop=True,
        )
