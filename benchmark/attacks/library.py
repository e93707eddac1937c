"""Attacks taken from the field's libraries: Square and AutoAttack from the reference
implementation (PyPI ``pyautoattack``), and any torchattacks attack by class name.

AutoAttack comes from the package rather than torchattacks because torchattacks' APGD runs
10 iterations instead of the standard 100.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from benchmark.attacks.base import Attack, AttackContext, frozen_parameters, register_attack
from benchmark.trust.flags import register_flag

log = logging.getLogger(__name__)

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
        n_queries: int = Field(5000, ge=1, le=1_000_000)
        p_init: float = Field(0.8, gt=0, le=1)
        restarts: int = Field(1, ge=1)

    params: Params

    def planned_passes(self, n_examples: int) -> tuple[int, int]:
        return n_examples * self.params.n_queries * self.params.restarts, 0

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


# Upper bounds of AutoAttack's passes per example at its defaults (forward, gradient): 100
# iterations per APGD/FAB run, 9 target classes for the targeted ones, 5000 Square queries;
# "plus" restarts its untargeted attacks 5 times, "rand" runs APGD with 20 EOT samples.
AUTOATTACK_PASSES = {
    "apgd-ce": (0, 100),
    "apgd-dlr": (0, 100),
    "apgd-t": (0, 900),
    "fab": (0, 100),
    "fab-t": (0, 900),
    "square": (5000, 0),
    "apgd-ce-plus": (0, 500),
    "apgd-dlr-plus": (0, 500),
    "fab-plus": (0, 500),
    "square-plus": (25000, 0),
    "apgd-ce-rand": (0, 2000),
    "apgd-dlr-rand": (0, 2000),
}
AUTOATTACK_RUNS = {
    "standard": ["apgd-ce", "apgd-t", "fab-t", "square"],
    "plus": ["apgd-ce-plus", "apgd-dlr-plus", "fab-plus", "square-plus", "apgd-t", "fab-t"],
    "rand": ["apgd-ce-rand", "apgd-dlr-rand"],
}


@register_attack("autoattack", "AutoAttack (Croce & Hein 2020) via the pyautoattack package")
class AutoAttack(Attack):
    batched_internally = True
    kind = "ensemble"
    norms = ("Linf", "L2", "L1")  # L1: APGD with its sparse L1 step (pyautoattack)
    # of this wrapper (Params.version is AutoAttack's own); 2: its warnings become flags
    version = "2"

    class Params(Attack.Params):
        version: Literal["standard", "plus", "rand", "custom"] = "standard"
        attacks_to_run: list[AA_ATTACKS] | None = Field(None, description="for version 'custom'")

        @model_validator(mode="after")
        def _custom_needs_attacks(self) -> AutoAttack.Params:
            if (self.version == "custom") != (self.attacks_to_run is not None):
                raise ValueError("give attacks_to_run exactly when version is 'custom'")
            return self

    params: Params

    def planned_passes(self, n_examples: int) -> tuple[int, int]:
        p = self.params
        names = AUTOATTACK_RUNS[p.version] if p.attacks_to_run is None else p.attacks_to_run
        forward = sum(AUTOATTACK_PASSES[name][0] for name in names)
        grad = sum(AUTOATTACK_PASSES[name][1] for name in names)
        return n_examples * forward, n_examples * grad

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
        with frozen_parameters(ctx.model), _autoattack_warnings() as messages:
            x_adv, _ = attack.run_standard_evaluation(x, y, batch_size=ctx.batch_size)
        for message in messages:
            zero = re.search(r"there are (\d+) points with zero gradient", message)
            # one confident example's underflowing gradient is no masking: flag as the
            # sanity check does, when more than a tenth of the examples have none
            if zero is None or int(zero.group(1)) > 0.1 * len(x):
                self.raised_flags.add(_autoattack_flag(message))
        return x_adv


# pyautoattack's own checks (its checks.py), each a warning on the 'auto-attack' logger, and
# the flag it becomes on the row (registered with the flags in benchmark/trust/flags.py).
AUTOATTACK_WARNINGS = {
    "randomized defense": "autoattack_randomized",
    "probability distribution": "autoattack_probability_outputs",
    "zero gradient": "autoattack_zero_gradients",
    "Square Attack has decreased": "autoattack_square_stronger",
    "dynamic defense": "autoattack_dynamic_defense",
    "target classes": "autoattack_target_classes",
}


for _flag, _what in {
    "autoattack_randomized": "two passes of the model differ (AutoAttack's check_randomized); "
    "evaluate with version 'rand' or declare the model randomized",
    "autoattack_probability_outputs": "the outputs look like probabilities, not logits "
    "(check_range_output): gradients of a saturated softmax vanish",
    "autoattack_zero_gradients": "APGD met examples with an all-zero input gradient "
    "(check_zero_gradients): gradient attacks cannot move them",
    "autoattack_square_stronger": "the black-box Square attack lowered the robust accuracy after "
    "the gradient attacks (check_square_sr): the gradients are likely masked",
    "autoattack_dynamic_defense": "the forward itself calls autograd (check_dynamic): a dynamic "
    "defense that AutoAttack's fixed attacks may not evaluate adequately",
    "autoattack_target_classes": "more target classes than the model has (check_n_classes)",
    "autoattack_warning": "AutoAttack's own checks warned about this model (see checks.json)",
}.items():
    register_flag(_flag, f"AutoAttack warned: {_what}. Its robust accuracy may be overestimated.")


def _autoattack_flag(message: str) -> str:
    return next(
        (f for text, f in AUTOATTACK_WARNINGS.items() if text in message), "autoattack_warning"
    )


@contextmanager
def _autoattack_warnings() -> Iterator[list[str]]:
    """Collect the warnings of AutoAttack's checks instead of letting them reach stderr
    without the model's name: the evaluation turns them into flags on the model's row.

    pyautoattack counts autograd calls during a forward in a module-level dict that it never
    resets, so after one dynamic defense every later model would be called dynamic too; the
    counts are reset before each run."""
    from pyautoattack import checks

    for name in checks.funcs:
        checks.funcs[name] = 0
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                messages.append(record.getMessage())

    logger = logging.getLogger("auto-attack")
    handler, propagate = Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


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
    if "attacks" in inspect.signature(cls.__init__).parameters:
        raise ValueError(
            f"{name} combines other attacks; list them under an 'attacks' evaluation (its "
            "per-example worst case) instead"
        )
    return cls


def _check_types(cls: type[Any], kwargs: dict[str, Any]) -> None:
    """A keyword whose default is a number, a flag or a text must be given as one: caught
    when the suite loads, not by torchattacks in the middle of a run."""
    parameters = inspect.signature(cls.__init__).parameters
    for name, value in kwargs.items():
        default = parameters[name].default
        if isinstance(default, bool):
            ok, expected = isinstance(value, bool), "true or false"
        elif isinstance(default, int | float):
            # (int defaults such as CW's c = 1 take floats too; counts are _check_counts')
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            expected = "a number"
        elif isinstance(default, str):
            ok, expected = isinstance(value, str), "a string"
        else:  # no default, or None: torchattacks decides
            continue
        if not ok:
            raise ValueError(f"kwargs.{name}: should be {expected} (got {value!r})")


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
            _check_types(_torchattacks_class(self.attack), self.kwargs)
            return self

    params: Params

    def planned_passes(self, n_examples: int) -> tuple[int, int]:
        kwargs = self.params.kwargs  # the counts torchattacks' classes name (default 10 steps)
        steps = int(kwargs.get("steps", kwargs.get("max_iterations", 10)))
        restarts = int(kwargs.get("n_restarts", kwargs.get("restarts", 1)))
        if "n_queries" in kwargs:
            return n_examples * int(kwargs["n_queries"]) * restarts, 0
        return n_examples, n_examples * steps * restarts * int(kwargs.get("eot_iter", 1))

    def perturb(self, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext) -> torch.Tensor:
        p = self.params
        cls = _torchattacks_class(p.attack)
        kwargs = dict(p.kwargs)
        if "eps" in inspect.signature(cls.__init__).parameters:
            kwargs.setdefault("eps", ctx.eps)
        with frozen_parameters(ctx.model), _global_rngs_from(ctx):
            return cls(ctx.model, **kwargs)(x, y).detach()


@register_attack(
    "hopskipjump",
    "HopSkipJump (decision-based: predicted labels only; Chen et al. 2020) via foolbox",
)
class HopSkipJump(Attack):
    """A decision-based attack: it queries only the predicted label, so it is the fallback
    for models whose gradients are unavailable or fake (hard-label outputs, detached
    forwards, decoy paths), where every gradient attack reports a number of its own failure.

    From foolbox (the reference authors' algorithm); foolbox draws its random starting points
    from torch's global RNG, which is seeded from ``ctx.generator`` as for torchattacks. It
    searches for a minimal perturbation in the norm; the result is clipped to the eps-ball
    and judged by the evaluation like every other candidate. Its cost is queries, not
    gradients: about ``steps`` x (initial_gradient_eval_steps x sqrt(step)) forward passes
    per batch (measured: 17-70 s for 100 digits with 16-32 steps on 2 CPU cores)."""

    kind = "decision-based"
    version = "1"

    class Params(Attack.Params):
        steps: int = Field(32, ge=1, le=10_000)
        initial_gradient_eval_steps: int = Field(100, ge=1, le=100_000)
        max_gradient_eval_steps: int = Field(1000, ge=1, le=100_000)

    params: Params

    def planned_passes(self, n_examples: int) -> tuple[int, int]:
        p = self.params  # gradient estimates (capped), plus the searches of each step
        per_step = min(p.max_gradient_eval_steps, p.initial_gradient_eval_steps * p.steps**0.5)
        return int(n_examples * p.steps * (per_step + 50)), 0

    def perturb(self, x: torch.Tensor, y: torch.Tensor, ctx: AttackContext) -> torch.Tensor:
        import foolbox

        p = self.params
        attack = foolbox.attacks.HopSkipJumpAttack(
            steps=p.steps,
            initial_gradient_eval_steps=p.initial_gradient_eval_steps,
            max_gradient_eval_steps=p.max_gradient_eval_steps,
            constraint="linf" if ctx.norm == "Linf" else "l2",
        )
        result = x.clone()
        with frozen_parameters(ctx.model), _global_rngs_from(ctx), torch.no_grad():
            starts, found = _misclassified_starts(ctx, x, y)
            if not found.any():
                return result
            model = foolbox.PyTorchModel(ctx.model, bounds=(0, 1), device=ctx.device)
            criterion = foolbox.criteria.Misclassification(y[found])
            try:
                _, clipped, _ = attack(
                    model, x[found], criterion, epsilons=ctx.eps, starting_points=starts[found]
                )
            # foolbox checks its starting points with ValueError or assert; a noisy model can
            # disown one between our check and its own: no candidate for that batch then
            except (ValueError, AssertionError) as exc:
                reason = str(exc) or "a starting point is no longer misclassified"
                log.warning("hopskipjump: %s; that batch keeps its clean inputs", reason)
                return result
        result[found] = clipped.detach()
        return result


def _misclassified_starts(
    ctx: AttackContext, x: torch.Tensor, y: torch.Tensor, noise_draws: int = 20
) -> tuple[torch.Tensor, torch.Tensor]:
    """A starting point per example that the model misclassifies (foolbox's own search
    blends uniform noise and gives up on a whole batch when one example has none): another
    image of the batch the model labels otherwise, else uniform noise; ``found`` marks the
    examples that have one (the others keep their clean input)."""
    preds = ctx.model(x).argmax(1)
    starts, found = x.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for i in range(len(x)):
        others = (preds != y[i]).nonzero().squeeze(1)
        if len(others):
            starts[i], found[i] = x[others[0]], True
    for _ in range(noise_draws):
        if found.all():
            break
        todo = (~found).nonzero().squeeze(1)
        noise = torch.rand(x[todo].shape, generator=ctx.generator).to(x.device)
        hit = ctx.model(noise).argmax(1) != y[todo]
        starts[todo[hit]], found[todo[hit]] = noise[hit], True
    return starts, found
