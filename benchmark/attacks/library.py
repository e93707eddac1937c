"""Attacks taken from the field's libraries: Square and AutoAttack from the reference
implementation (PyPI ``pyautoattack``), and any torchattacks attack by class name.

AutoAttack comes from the package rather than torchattacks because torchattacks' APGD runs
10 iterations instead of the standard 100.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from benchmark.attacks.base import Attack, AttackContext, frozen_parameters, register_attack

AA_ATTACKS = Literal["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"]


def _library_seed(ctx: AttackContext) -> int:
    return ctx.seed % (2**31)


def _num_classes(ctx: AttackContext, x: torch.Tensor) -> int:
    with torch.no_grad():
        return int(ctx.model(x[:1]).shape[1])


@register_attack("square", "Square attack (black-box, score-based; Andriushchenko et al. 2020)")
class Square(Attack):
    kind = "black-box"
    version = "1"

    class Params(Attack.Params):
        n_queries: int = Field(5000, ge=1)
        p_init: float = Field(0.8, gt=0, le=1)
        restarts: int = Field(1, ge=1)

    params: Params

    def perturb(self, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext) -> torch.Tensor:
        from pyautoattack.square import SquareAttack

        p = self.params
        attack = SquareAttack(
            ctx.model,
            norm=ctx.norm,
            n_queries=p.n_queries,
            eps=ctx.eps,
            p_init=p.p_init,
            n_restarts=p.restarts,
            seed=_library_seed(ctx),
            verbose=False,
            resc_schedule=False,
            device=ctx.device,
        )
        with frozen_parameters(ctx.model), torch.no_grad():
            return attack.perturb(x, y)


@register_attack("autoattack", "AutoAttack (Croce & Hein 2020) via the pyautoattack package")
class AutoAttack(Attack):
    batched_internally = True
    kind = "ensemble"
    version = "1"  # of this wrapper; Params.version is AutoAttack's own

    class Params(Attack.Params):
        version: Literal["standard", "plus", "rand", "custom"] = "standard"
        attacks_to_run: list[AA_ATTACKS] | None = Field(None, description="for version 'custom'")

        @model_validator(mode="after")
        def _custom_needs_attacks(self) -> AutoAttack.Params:
            if (self.version == "custom") != (self.attacks_to_run is not None):
                raise ValueError("give attacks_to_run exactly when version is 'custom'")
            return self

    params: Params

    def build(self, ctx: AttackContext, num_classes: int) -> Any:
        from pyautoattack import AutoAttack as PackageAutoAttack

        p = self.params
        attack = PackageAutoAttack(
            ctx.model,
            attacks=p.attacks_to_run,
            device=ctx.device,
            eps=ctx.eps,
            norm=ctx.norm,
            seed=_library_seed(ctx),
            version=p.version,
        )
        if num_classes < 10:  # targeted attacks cycle through the top n-1 wrong classes
            attack.apgd_targeted.n_target_classes = num_classes - 1
            attack.fab.n_target_classes = num_classes - 1
        return attack

    def perturb(self, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext) -> torch.Tensor:
        attack = self.build(ctx, _num_classes(ctx, x))
        with frozen_parameters(ctx.model):
            x_adv, _ = attack.run_standard_evaluation(x, y, batch_size=ctx.batch_size)
        return x_adv


@contextmanager
def _global_rngs_from(ctx: AttackContext) -> Iterator[None]:
    """Seed torch's and numpy's global RNGs (which torchattacks draws from: random starts,
    Pixle) from ``ctx.generator``, restoring their states afterwards: the candidates then
    depend on the context's seed alone, as the evaluation's per-block re-seeding (and
    sharding) needs, and the caller's global streams are left untouched."""
    seed = int(torch.randint(2**62, (1,), generator=ctx.generator))
    devices = [ctx.device] if ctx.device.type == "cuda" else []
    numpy_state = np.random.get_state()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        np.random.seed(seed % (2**32))
        try:
            yield
        finally:
            np.random.set_state(numpy_state)


def _torchattacks_class(name: str) -> type[Any]:
    import torchattacks
    from torchattacks.attack import Attack as TorchattacksBase

    cls = getattr(torchattacks, name, None) if name in torchattacks.__all__ else None
    if not (inspect.isclass(cls) and issubclass(cls, TorchattacksBase)):
        known = ", ".join(n for n in torchattacks.__all__ if n[0].isupper())
        raise ValueError(f"unknown torchattacks attack {name!r} (known: {known})")
    return cls


# Upper bounds on the torchattacks arguments that count iterations, as on the harness's own
# attacks (PGD's steps and restarts, the evaluations' eot_samples): a typo such as 10**9
# steps is refused in one line when the suite loads instead of running for months.
TORCHATTACKS_COUNT_LIMITS = {
    "steps": 100_000,
    "max_iterations": 100_000,
    "eot_iter": 10_000,
    "n_restarts": 1000,
    "restarts": 1000,
    "n_queries": 1_000_000,
}


def _check_counts(kwargs: dict[str, Any]) -> None:
    for name, limit in TORCHATTACKS_COUNT_LIMITS.items():
        if name not in kwargs:
            continue
        value = kwargs[name]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise ValueError(
                f"kwargs.{name}: should be an integer from 1 to {limit} (got {value!r})"
            )


@register_attack(
    "torchattacks", "any torchattacks attack class by name, with its keyword arguments"
)
class Torchattacks(Attack):
    version = "2"  # 2: randomness from ctx.generator, not the global RNG state

    class Params(Attack.Params):
        attack: str = Field(description="class name, e.g. 'MIFGSM'")
        kwargs: dict[str, Any] = Field(default_factory=dict)

        @model_validator(mode="after")
        def _known_attack_and_arguments(self) -> Torchattacks.Params:
            signature = inspect.signature(_torchattacks_class(self.attack).__init__)
            unknown = set(self.kwargs) - set(signature.parameters) - {"self"}
            if unknown or "model" in self.kwargs:
                allowed = [n for n in signature.parameters if n not in ("self", "model")]
                bad = sorted(unknown | ({"model"} & set(self.kwargs)))
                raise ValueError(f"{self.attack} does not take {bad}; it takes {allowed}")
            _check_counts(self.kwargs)
            return self

    params: Params

    def perturb(self, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext) -> torch.Tensor:
        p = self.params
        cls = _torchattacks_class(p.attack)
        kwargs = dict(p.kwargs)
        if "eps" in inspect.signature(cls.__init__).parameters:
            kwargs.setdefault("eps", ctx.eps)
        with frozen_parameters(ctx.model), _global_rngs_from(ctx):
            return cls(ctx.model, **kwargs)(x, y).detach()
