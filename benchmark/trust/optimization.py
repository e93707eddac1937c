"""Incomplete optimization (Pintor et al., NeurIPS 2022, indicator 3): the attack stopped
while it was still making progress, so more steps (or a larger step size) would break more.

Per example the attack left robust, from the logit-margin trace it recorded
(:class:`benchmark.attacks.LossTraces`; the margin ``z_y - max_{k != y} z_k`` is negative
exactly when the example is misclassified): the best margin so far, ``M_t = min_{s<=t} m_s``;
its *late slope*, the decrease per step over the last ``LATE_FRACTION`` of the steps; and its
*mean slope* over the whole trace. An example is *unfinished* when both hold:

* the late slope is at least ``MIN_SLOPE_RATIO`` of the mean one (still descending in a
  straight line, where a converged attack flattens out), and
* continuing at the late slope for ``HORIZON`` times the attack's steps would bring the
  margin below zero (more steps would plausibly break it, not merely push an already
  hopeless loss further).

The second condition is what a loss-based test lacks: on a temperature-scaled model the
cross-entropy of robust examples keeps creeping up for hundreds of steps without any of them
breaking (measured on the quickstart's ``small_cnn_w0.125+temperature``: 3.33 % robust at 20,
100 and 500 PGD steps alike, with half of its robust examples' losses still rising).

The model-level flag needs most of the traced robust examples unfinished (and a few of them).
Measured (``python -m benchmarks.incomplete_optimization``, 200 real CIFAR-10 images; table in
``benchmarks/results/incomplete_optimization.md``): PGD at its default step size leaves none
of the robust examples of the adversarially trained resnet4b or of ResNet-20 unfinished;
with steps 10 times too small 96 %, flagged.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from benchmark.trust.flags import register_flag

INCOMPLETE_OPTIMIZATION = register_flag(
    "incomplete_optimization",
    "On most of the examples the attack left robust it was still making progress at its "
    "last step (per-example logit-margin traces: the best margin was still falling at close "
    "to its mean rate, and at that rate would cross zero within ten times the steps). More "
    "steps or a larger step size would likely break more of them: robust accuracy is "
    "overestimated. Rerun the attack with more steps.",
)

LATE_FRACTION = 0.1  # the last 10 % of the steps (at least one)
MIN_SLOPE_RATIO = 0.8  # late slope / mean slope of a still-descending trace (straight line: 1)
MIN_UNFINISHED_PCT = 50.0  # of the traced robust examples
MIN_UNFINISHED = 5  # and at least this many
MIN_STEPS = 5  # shorter traces have no "end" to speak of (FGSM: one step)
HORIZON = 10  # "more steps": this many times the attack's steps again, at the late slope


def unfinished(traces: torch.Tensor) -> torch.Tensor:
    """Which rows (complete margin traces of ``steps`` values) are unfinished: the best
    margin still descending at the end at close to its mean rate, and on course to cross
    zero within ``HORIZON`` times as many steps again. A trace with no progress at all (a
    zero gradient, a flat margin) is not unfinished: that is the gradient checks' business.
    Rows with NaN (examples that stopped early) never are."""
    steps = traces.shape[1]
    if steps < MIN_STEPS:
        return torch.zeros(len(traces), dtype=torch.bool)
    late = max(1, math.ceil(LATE_FRACTION * steps))
    best = traces.cummin(1).values
    total = traces[:, 0] - best[:, -1]  # progress made (margin decrease)
    late_gain = best[:, -1 - late] - best[:, -1]
    # progress below float noise of the margin's size counts as none
    progressed = total > 1e-6 * traces[:, 0].abs().clamp_min(1.0)
    late_rate = late_gain / late
    ratio = late_rate / (total / (steps - 1)).clamp_min(1e-30)
    crosses = best[:, -1] - late_rate * HORIZON * steps < 0
    complete = ~torch.isnan(traces).any(1)
    return complete & progressed & (ratio >= MIN_SLOPE_RATIO) & crosses


def count_unfinished(traces: torch.Tensor | None, robust: torch.Tensor) -> tuple[int, int]:
    """(traced, unfinished) among the ``robust`` rows of one attack call's traces; (0, 0) when the
    attack recorded none."""
    if traces is None or traces.shape[1] < MIN_STEPS or len(traces) != len(robust):
        return 0, 0  # no trace, too short, or not one row per example of the call
    robust = robust.cpu()
    complete = ~torch.isnan(traces).any(1) & robust
    return int(complete.sum()), int((unfinished(traces) & robust).sum())


def incomplete_optimization(counts: dict[str, dict[str, int]]) -> dict[str, Any] | None:
    """The check's numbers from per-attack ``{"traced": n, "unfinished": k}`` counts; None when
    no attack recorded a trace of an example it left robust."""
    numbers: dict[str, Any] = {}
    failed = False
    for label, count in counts.items():
        traced, unfinished = count["traced"], count["unfinished"]
        if not traced:
            continue
        pct = 100.0 * unfinished / traced
        attack_failed = unfinished >= MIN_UNFINISHED and pct >= MIN_UNFINISHED_PCT
        failed |= attack_failed
        numbers |= {f"{label}_traced": traced, f"{label}_unfinished": unfinished}
        numbers[f"{label}_unfinished_pct"] = pct
    if not numbers:
        return None
    return {
        **numbers,
        "min_slope_ratio": MIN_SLOPE_RATIO,
        "min_unfinished_pct": MIN_UNFINISHED_PCT,
        "failed": failed,
    }
