"""The attack contract and registry.

Attacks only *search* for adversarial examples; deciding what counts as a success (the
criterion), checking the eps-ball after the fact, combining several attacks into a per-example
worst case and counting robust accuracy is the evaluation's job
(:mod:`benchmark.evaluations.adversarial`) -- the attack/criterion split of foolbox. An attack
that oversteps its budget therefore cannot inflate a leaderboard number.

Two families share one registry (:data:`ATTACKS`, one place to look): *fixed-eps* attacks
(:class:`Attack`: search inside a given eps-ball, for robust accuracy) and *minimal-norm*
attacks (:class:`MinimalNormAttack`: the smallest perturbation that changes the prediction,
for robustness ranking). Each entry records its family, and :func:`attack_entry` refuses an
attack of the other family in one line, so neither evaluation can be handed the wrong kind.
Every attack has a ``version`` that enters the cache key of the jobs using it: bump it when
an edit changes the attack's numbers, and their cached results are recomputed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar, Literal, TypeVar

import torch
from torch import nn

from benchmark.attacks.threat import Norm
from benchmark.registry import Entry, Registry, StrictParams
from benchmark.utils import derive_seed

AttackFamily = Literal["fixed-eps", "minimal-norm"]


@dataclass
class LossTraces:
    """Where an attack that follows a loss writes down how each example of one call fared at
    every step: its logit margin ``z_y - max_{k != y} z_k`` at the iterate the step starts
    from (rows: the call's examples; NaN where an example took no step, e.g. after early
    stopping). With restarts, an example's row holds its last restart.

    Why the margin and not the attack's own loss: the margin is what decides success
    (negative = misclassified) whatever the loss, so the incomplete-optimization indicator
    (:mod:`benchmark.trust.optimization`) can ask whether more steps would reach zero.
    """

    values: torch.Tensor | None = None

    def start(self, n_examples: int, steps: int) -> None:
        self.values = torch.full((n_examples, steps), float("nan"))

    def record(self, step: int, rows: torch.Tensor, margins: torch.Tensor) -> None:
        assert self.values is not None, "start() first"
        self.values[rows.cpu(), step] = margins.detach().float().cpu()


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
    # Dataset indices of the examples of this call, and the attack's label in its evaluation:
    # with both set, an attack draws each example's noise from (seed, label, index) alone
    # (:func:`example_generators`), so an outcome never depends on the batch's other examples.
    example_ids: torch.Tensor | None = None
    label: str = ""
    # Other rows' models a transfer attack crafts on (name -> model), from the runner.
    surrogates: dict[str, nn.Module] = field(default_factory=dict)
    # Set by the evaluation to collect per-example margin traces; attacks that follow a
    # gradient step by step (:func:`benchmark.attacks.pgd.run_pgd`) fill it, others do not.
    loss_traces: LossTraces | None = None


def example_generators(ctx: AttackContext, *purpose: object) -> list[torch.Generator] | None:
    """One CPU generator per example of the call, seeded from (seed, label, purpose, dataset
    index), or None when the context has no ``example_ids`` (training recipes and direct
    calls, which keep drawing one batch-wide stream from ``ctx.generator``).

    Why per example: the evaluation attacks only the still-robust examples of a block, so a
    batch-wide stream would hand an example different noise in a worst-case sequence than
    when the same attack runs alone, and "worst case <= each attack alone" would fail on
    examples whose fate hinges on their random start."""
    if ctx.example_ids is None:
        return None
    return [
        torch.Generator().manual_seed(derive_seed(ctx.seed, ctx.label, *purpose, int(i)) % 2**63)
        for i in ctx.example_ids
    ]


class AttackBase(ABC):
    """What every registered attack has: a ``Params`` model (validated before anything runs)
    and a code ``version`` (part of the cache key of every job that uses the attack)."""

    family: ClassVar[AttackFamily]
    # Bump when an edit changes the attack's numbers. "1" is left out of job keys, so attacks
    # that were never bumped keep the keys they had before versions existed.
    version: ClassVar[str] = "1"
    norms: ClassVar[tuple[str, ...]] = ("Linf", "L2")
    # What the trust checks may compare (benchmark/trust): "iterative" gradient attacks
    # (PGD/APGD), "single-step" ones (FGSM), "black-box" score-based ones (Square),
    # "ensemble" (AutoAttack) or None (unknown, e.g. an arbitrary torchattacks class).
    kind: ClassVar[str | None] = None

    class Params(StrictParams):
        pass

    def planned_passes(self, n_examples: int) -> tuple[int, int]:
        """(forward images, input-gradient images) this attack spends at most on
        ``n_examples`` examples, for ``python -m benchmark plan``: every example surviving
        every step (early stopping only lowers it). Default: one of each per example."""
        return n_examples, n_examples

    def __init__(self, params: StrictParams | None = None) -> None:
        self.params = self.Params() if params is None else params
        # Flags the attack's own checks raised while it ran (e.g. AutoAttack's warnings);
        # the evaluation puts them on the row.
        self.raised_flags: set[str] = set()


class Attack(AttackBase):
    """A fixed-eps attack: subclasses set ``Params`` and implement :meth:`perturb`."""

    family: ClassVar[AttackFamily] = "fixed-eps"
    # True: the attack receives every still-robust example at once and batches internally
    # (AutoAttack, whose results depend on its own batching).
    batched_internally: ClassVar[bool] = False

    @abstractmethod
    def perturb(self, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext) -> torch.Tensor:
        """Return candidate adversarial examples for ``x`` (on ``ctx.device``), same shape."""


class MinimalNormAttack(AttackBase):
    """A minimal-norm attack: subclasses set ``Params`` and implement :meth:`distances`.

    No eps and no context: the search itself finds the budget, and the evaluation
    (``robustness_ranking``) re-verifies every adversarial it returns."""

    family: ClassVar[AttackFamily] = "minimal-norm"
    norms: ClassVar[tuple[str, ...]] = ("L2",)

    @abstractmethod
    def distances(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For each example, the smallest successful perturbation norm found (``inf`` where
        none) and the adversarial input at that norm (the clean input where none)."""


ATTACKS: Registry[type[AttackBase]] = Registry("attack")

A = TypeVar("A", bound=type[AttackBase])


def register_attack(key: str, description: str) -> Callable[[A], A]:
    """Register a fixed-eps (:class:`Attack`) or minimal-norm (:class:`MinimalNormAttack`)
    attack class under ``key``; its family is recorded with the entry."""

    def decorator(cls: A) -> A:
        if not issubclass(cls, Attack | MinimalNormAttack):
            raise TypeError(f"attack '{key}': subclass Attack or MinimalNormAttack")
        extras = {"norms": cls.norms, "kind": cls.kind, "family": cls.family}
        ATTACKS.add(Entry(key, cls, description, cls.Params, extras))
        return cls

    return decorator


def attack_keys(family: AttackFamily) -> list[str]:
    """The registered attacks of one family, sorted."""
    return [entry.key for entry in ATTACKS if entry.extras["family"] == family]


def attack_entry(key: str, family: AttackFamily, needed_by: str) -> Entry[type[AttackBase]]:
    """The registry entry of ``key``, which must be a ``family`` attack; otherwise a one-line
    ``ValueError`` naming the attack and what ``needed_by`` expects (pydantic validators turn
    it into a ``field: message`` line)."""
    known = ", ".join(attack_keys(family)) or "none"
    if key not in ATTACKS:
        raise ValueError(f"unknown {family} attack '{key}' (known: {known})")
    entry = ATTACKS.get(key)
    if entry.extras["family"] != family:
        raise ValueError(
            f"attack '{key}' is a {entry.extras['family']} attack; {needed_by} needs a "
            f"{family} attack ({known})"
        )
    return entry


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
