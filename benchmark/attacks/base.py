"""The attack contract and registry.

Attacks only *search* for adversarial examples; deciding what counts as a success (the
criterion), checking the eps-ball after the fact, combining several attacks into a per-example
worst case and counting robust accuracy is the evaluation's job
(:mod:`benchmark.evaluations.adversarial`) -- the attack/criterion split of foolbox. An attack
that oversteps its budget therefore cannot inflate a leaderboard number.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from benchmark.attacks.threat import Norm
from benchmark.registry import Entry, Registry, StrictParams


@dataclass
class AttackContext:
    """What every attack call gets besides the examples."""

    model: nn.Module
    norm: Norm
    eps: float
    device: torch.device
    seed: int
    batch_size: int
    randomized: bool  # the model's output is stochastic: use EOT, no early stopping
    eot_samples: int  # gradient samples averaged per step for randomized models
    generator: torch.Generator  # CPU generator for the attack's own randomness


class Attack(ABC):
    """Subclasses set ``Params`` and implement :meth:`perturb`."""

    # True: the attack receives every still-robust example at once and batches internally
    # (AutoAttack, whose results depend on its own batching).
    batched_internally: ClassVar[bool] = False
    norms: ClassVar[tuple[str, ...]] = ("Linf", "L2")
    # What the trust checks may compare (benchmark/trust): "iterative" gradient attacks
    # (PGD/APGD), "single-step" ones (FGSM), "black-box" score-based ones (Square),
    # "ensemble" (AutoAttack) or None (unknown, e.g. an arbitrary torchattacks class).
    kind: ClassVar[str | None] = None

    class Params(StrictParams):
        pass

    def __init__(self, params: StrictParams) -> None:
        self.params = params

    @abstractmethod
    def perturb(self, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext) -> torch.Tensor:
        """Return candidate adversarial examples for ``x`` (on ``ctx.device``), same shape."""


ATTACKS: Registry[type[Attack]] = Registry("attack")


def register_attack(key: str, description: str) -> Callable[[type[Attack]], type[Attack]]:
    def decorator(cls: type[Attack]) -> type[Attack]:
        ATTACKS.add(
            Entry(key, cls, description, cls.Params, {"norms": cls.norms, "kind": cls.kind})
        )
        return cls

    return decorator


@contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """Disable parameter gradients while attacking: only the input gradient is needed, and
    autograd then skips the weight-gradient work (and BatchNorm stays untouched in eval)."""
    flags = [p.requires_grad for p in model.parameters()]
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
