"""Threat models: the norm ball an attack may search, and checks that it stayed inside.

``eps`` is accepted as a float or as a fraction string such as ``"8/255"``; both spellings
are kept (the string names leaderboard columns, the float does the math).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Annotated, Literal

import torch
from pydantic import BeforeValidator

# L1: AutoAttack's APGD-L1 (the only attack here with a sparse L1 step); others refuse it.
Norm = Literal["Linf", "L2", "L1"]


def parse_eps(value: object) -> float:
    """``0.03``, ``"0.03"``, ``"8/255"`` -> float; rejects negatives and other text."""
    if isinstance(value, bool):
        raise ValueError("expected a number or a fraction string like '8/255'")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(Fraction(_no_whitespace(value)))
        except (ValueError, ZeroDivisionError, OverflowError):
            raise ValueError(
                f"expected a number or a fraction like '8/255', got {value!r}"
            ) from None
    else:
        raise ValueError(f"expected a number or a fraction like '8/255', got {value!r}")
    if number < 0:
        raise ValueError(f"must be non-negative, got {value!r}")
    if not math.isfinite(number):
        raise ValueError(f"must be finite, got {value!r}")
    return number


def eps_label(value: object) -> str:
    """Canonical text form used in column names: '8/255' stays '8/255', 0.5 -> '0.5'."""
    if isinstance(value, str):
        return _no_whitespace(value)
    return f"{float(value):g}"  # type: ignore[arg-type]


def _no_whitespace(text: str) -> str:
    """``" 8 / 255\n"`` -> ``"8/255"``: a label that names columns and folders carries no
    spaces, tabs or line breaks (a YAML ``"8/255\n\r"`` must not reach a CSV header)."""
    return "".join(text.split())


def _canonical_eps(value: object) -> str:
    parse_eps(value)
    return eps_label(value)


# A validated epsilon kept in its written form ("8/255"); ``parse_eps`` gives the float.
EpsField = Annotated[str, BeforeValidator(_canonical_eps)]


def perturbation_norm(delta: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Per-example norm of ``delta`` (N, ...) -> (N,)."""
    flat = delta.flatten(1)
    if norm == "Linf":
        return flat.abs().amax(1) if flat.shape[1] else torch.zeros(len(flat))
    if norm == "L1":
        return flat.abs().sum(1)
    return flat.norm(p=2, dim=1)


def project(delta: torch.Tensor, norm: Norm, eps: float) -> torch.Tensor:
    """Project each example's perturbation onto the eps-ball of ``norm``."""
    if norm == "Linf":
        return delta.clamp(-eps, eps)
    if norm == "L1":  # no attack of ours steps in L1 (their norms say so; checked at load)
        raise ValueError("projection onto the L1 ball is not implemented")
    norms = perturbation_norm(delta, norm).clamp_min(1e-12)
    factor = (eps / norms).clamp(max=1.0)
    return delta * factor.view(-1, *([1] * (delta.ndim - 1)))


def valid_adversarial(
    x: torch.Tensor, x_adv: torch.Tensor, norm: Norm, eps: float, rtol: float = 1e-5
) -> torch.Tensor:
    """Per-example: finite, inside [0, 1], and within the eps-ball (float32 rounding allowed)."""
    finite = torch.isfinite(x_adv).flatten(1).all(1)
    in_range = ((x_adv >= 0) & (x_adv <= 1)).flatten(1).all(1)
    size = perturbation_norm(torch.nan_to_num(x_adv - x), norm)
    return finite & in_range & (size <= eps * (1 + rtol) + 1e-6)
