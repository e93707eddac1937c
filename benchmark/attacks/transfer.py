"""Transfer attack: PGD on a surrogate model (another row of the suite), judged on the target.

The fallback for models whose own gradients are missing or fake (detached forwards, decoy
paths, hard-label outputs, non-differentiable preprocessing): adversarial examples crafted
on a model with honest gradients transfer to a model that computes much the same function,
whatever that model's gradient says (Papernot et al. 2017; Athalye et al. 2018). The
surrogate is named by its row; the runner materializes it and hands it over in
``AttackContext.surrogates``, and its identity enters the key of every job that uses it.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
from pydantic import Field

from benchmark.attacks.base import Attack, AttackContext, register_attack
from benchmark.attacks.pgd import run_pgd
from benchmark.errors import BenchmarkError


@register_attack("transfer", "PGD on a surrogate row of the suite, judged on the target model")
class Transfer(Attack):
    kind = "transfer"
    version = "1"

    class Params(Attack.Params):
        surrogate: str = Field(min_length=1, description="name of a model row of the suite")
        steps: int = Field(50, ge=1, le=100_000)
        loss: Literal["ce", "dlr"] = "ce"

    params: Params

    def planned_passes(self, n_examples: int) -> tuple[int, int]:
        return 0, n_examples * self.params.steps  # on the surrogate (planned at this cost)

    def perturb(self, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext) -> torch.Tensor:
        p = self.params
        surrogate = ctx.surrogates.get(p.surrogate)
        if surrogate is None:
            raise BenchmarkError(f"transfer: surrogate '{p.surrogate}' was not provided")
        # the target's context (threat model, seeds, example ids) around the surrogate
        randomized = bool(getattr(surrogate, "randomized", False))
        # (the surrogate's loss trace says nothing about the target: none is recorded)
        surrogate_ctx = dataclasses.replace(
            ctx, model=surrogate, randomized=randomized, loss_traces=None
        )
        # every step on every example: a candidate that fools the surrogate early is not yet
        # a strong one for the target (the target judges them all afterwards)
        return run_pgd(
            x,
            y,
            surrogate_ctx,
            steps=p.steps,
            step_size=2.5 * ctx.eps / p.steps,
            restarts=1,
            start_random=True,
            loss=p.loss,
            targeted=False,
            early_stop=False,
        )


def surrogate_rows(evaluation_type: str, params: object) -> list[str]:
    """The surrogate rows an evaluation's (dumped) params name: the ``transfer`` evaluation's
    own ``surrogate``, and every nested attack spec ``{type: transfer, params: {surrogate}}``."""
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if value.get("type") == "transfer" and isinstance(value.get("params"), dict):
                name = value["params"].get("surrogate")
                if isinstance(name, str):
                    found.append(name)
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    if evaluation_type == "transfer" and isinstance(params, dict):
        name = params.get("surrogate")
        if isinstance(name, str):
            found.append(name)
    walk(params)
    return list(dict.fromkeys(found))
