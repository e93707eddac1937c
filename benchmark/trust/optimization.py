"""Incomplete optimization (Pintor et al., NeurIPS 2022, indicator 3): the attack stopped
while its loss was still rising, so more steps (or a larger step size) would break more.

Per example, from the loss trace an attack records (:class:`benchmark.attacks.LossTraces`),
for the examples the attack left robust: the best loss so far, ``B_t = max_{s<=t} L_s``, and
its *late slope* -- the gain over the last ``late_fraction`` of the steps per step --
against its *mean slope* over the whole trace. A saturated (converged) trace has a late
slope far below its mean one; a trace still climbing in a straight line has a ratio near 1.
An example counts as still rising when its ratio is at least ``min_slope_ratio``.

The model-level flag needs most of the traced robust examples still rising (and a few of
them), because single examples of a converged attack end on a late bump now and then.
Measured (``python -m benchmarks.incomplete_optimization``, 200 real CIFAR-10 images): PGD
with its default step size leaves 0-5 % of the robust examples of the real adversarially
trained resnet4b still rising (Linf 8/255 with 10, 20 and 50 steps; Linf 2/255; L2 0.5), and
the standard ResNet-20 at most 3 examples; PGD with a step size 10-30 times too small leaves
69-100 % still rising, and the flag is raised.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from benchmark.trust.flags import register_flag

INCOMPLETE_OPTIMIZATION = register_flag(
    "incomplete_optimization",
    "The attack's loss was still rising at its last step on most of the examples it left "
    "robust (per-example loss traces: the best loss's slope over the last steps is close to "
    "its mean slope, where a converged attack flattens out). More steps or a larger step "
    "size would break more of them: robust accuracy is overestimated. Rerun the attack with "
    "more steps.",
)

LATE_FRACTION = 0.1  # the last 10 % of the steps (at least one)
MIN_SLOPE_RATIO = 0.8  # late slope / mean slope of a still-rising trace (straight line: 1)
MIN_RISING_PCT = 50.0  # of the traced robust examples
MIN_RISING = 5  # and at least this many
MIN_STEPS = 5  # shorter traces have no "end" to speak of (FGSM: one step)


def still_rising(traces: torch.Tensor) -> torch.Tensor:
    """Which rows (complete traces of ``steps`` losses) end with the best loss still rising.

    A trace with no gain at all (a zero gradient, a flat loss) is not rising: that is the
    gradient checks' business. Rows with NaN (examples that stopped early) are never rising.
    """
    steps = traces.shape[1]
    if steps < MIN_STEPS:
        return torch.zeros(len(traces), dtype=torch.bool)
    late = max(1, math.ceil(LATE_FRACTION * steps))
    best = traces.cummax(1).values
    total = best[:, -1] - traces[:, 0]
    late_gain = best[:, -1] - best[:, -1 - late]
    # gains below float noise of the loss's size count as no gain
    gained = total > 1e-6 * traces[:, 0].abs().clamp_min(1.0)
    ratio = (late_gain / late) / (total / (steps - 1)).clamp_min(1e-30)
    complete = ~torch.isnan(traces).any(1)
    return complete & gained & (ratio >= MIN_SLOPE_RATIO)


def count_rising(traces: torch.Tensor | None, robust: torch.Tensor) -> tuple[int, int]:
    """(traced, rising) among the ``robust`` rows of one attack call's traces; (0, 0) when the
    attack recorded none."""
    if traces is None or traces.shape[1] < MIN_STEPS or len(traces) != len(robust):
        return 0, 0  # no trace, too short, or not one row per example of the call
    robust = robust.cpu()
    complete = ~torch.isnan(traces).any(1) & robust
    return int(complete.sum()), int((still_rising(traces) & robust).sum())


def incomplete_optimization(counts: dict[str, dict[str, int]]) -> dict[str, Any] | None:
    """The check's numbers from per-attack ``{"traced": n, "rising": k}`` counts; None when
    no attack recorded a trace of an example it left robust."""
    numbers: dict[str, Any] = {}
    failed = False
    for label, count in counts.items():
        traced, rising = count["traced"], count["rising"]
        if not traced:
            continue
        pct = 100.0 * rising / traced
        attack_failed = rising >= MIN_RISING and pct >= MIN_RISING_PCT
        failed |= attack_failed
        numbers |= {f"{label}_traced": traced, f"{label}_rising": rising}
        numbers[f"{label}_rising_pct"] = pct
    if not numbers:
        return None
    return {
        **numbers,
        "min_slope_ratio": MIN_SLOPE_RATIO,
        "min_rising_pct": MIN_RISING_PCT,
        "failed": failed,
    }
