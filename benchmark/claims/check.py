"""Each claim of a suite, tested on the run's per-example records.

A comparison (``better`` than ``than`` on ``on``, or than the column ``than_on``) is tested on
the examples both sides evaluated, paired:

* a plain accuracy on both sides (clean ``correct``, adversarial ``robust``): the exact
  McNemar test on the examples where exactly one side is right;
* anything else (NLL, Brier, ECE, AUROC, AURC, per-bin and per-corruption means, and
  accuracies within robustness bins or corruption cells): the paired percentile bootstrap,
  the same resampled examples for both sides; two-sided p = 2 (min(#{d <= 0}, #{d >= 0}) + 1)
  / (B + 1), never exactly 0.

The effect is better-side minus worse-side, with its (1 - alpha) bootstrap interval in
both cases. The verdict at the suite's ``alpha``: ``reproduced`` when the difference is
significant in the claimed direction (the column's declared one), ``contradicted`` when it is
significant the other way, ``inconclusive`` otherwise. A bound (``row``'s ``on`` at least /
at most a value) is ``reproduced`` when the whole (1 - alpha) interval (exact Clopper-Pearson
for a plain accuracy, else bootstrap) satisfies it, ``contradicted`` when none of it does.
A claim whose rows were not evaluated reads ``not evaluated``, with the reason.

Resamples are seeded from the suite seed and the claim, so the table is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from benchmark.claims.statistics import Cells, ColumnStatistic, find_column
from benchmark.metrics.bootstrap import resample_counts
from benchmark.metrics.significance import bootstrap_p_value, mcnemar_exact
from benchmark.suite.schema import ClaimSpec, Suite
from benchmark.utils import derive_seed

# (evaluation name, row) -> that job's records, or None when the row was not evaluated
RecordsOf = Callable[[str, str], pd.DataFrame | None]

VERDICTS = ("reproduced", "contradicted", "inconclusive", "not evaluated")


@dataclass
class ClaimResult:
    claim: str
    source: str
    published: str
    statement: str
    n: int
    value: float  # the better side's value (a bound claim: the row's)
    versus: float  # the worse side's value (a bound claim: the bound)
    effect: float  # value - versus
    ci_low: float
    ci_high: float
    p_value: float
    test: str
    verdict: str
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def statement(claim: ClaimSpec) -> str:
    """The claim in words, e.g. ``ar_adals better than vanilla_ft on clean_ece_pct``."""
    if claim.row is not None:
        op, bound = (">=", claim.at_least) if claim.at_least is not None else ("<=", claim.at_most)
        return f"{claim.row}: {claim.on} {op} {bound:g}"
    if claim.than_on is not None and claim.worse_row == claim.better:
        return f"{claim.better}: {claim.on} better than {claim.than_on}"
    if claim.than_on is not None:
        return f"{claim.better} {claim.on} better than {claim.worse_row} {claim.than_on}"
    return f"{claim.better} better than {claim.worse_row} on {claim.on}"


def _resolve(suite: Suite, column: str) -> ColumnStatistic:
    found = find_column(suite.evaluations, column)
    assert not isinstance(found, str), found  # the loader refuses such claims
    return found


def _aligned(cells: Cells, examples: np.ndarray) -> np.ndarray:
    """Position in ``examples`` (sorted) of each record's example."""
    return np.searchsorted(examples, cells.index)


def _restricted(cells: Cells, examples: np.ndarray) -> Cells:
    keep = np.isin(cells.index, examples)
    return Cells(
        np.intersect1d(cells.examples, examples),
        cells.index[keep],
        cells.cell[keep],
        cells.confidence[keep],
        cells.correct[keep],
        None if cells.robust is None else cells.robust[keep],
        None if cells.nll is None else cells.nll[keep],
        None if cells.brier is None else cells.brier[keep],
    )


Side = tuple[ColumnStatistic, Cells, np.ndarray]  # statistic, records, example position


def _side(stat: ColumnStatistic, cells: Cells, examples: np.ndarray) -> Side:
    """``cells`` restricted to ``examples`` (sorted), with each record's example position."""
    cells = _restricted(cells, examples)
    return stat, cells, _aligned(cells, examples)


def _value(side: Side, n: int) -> float:
    stat, cells, positions = side
    return float(stat.evaluate(cells, np.ones((1, n))[:, positions])[0])


def _bootstrap(sides: list[Side], n: int, resamples: int, seed: int) -> list[np.ndarray]:
    """Each side's statistic on the same ``resamples`` resamples of the ``n`` examples."""
    rng = np.random.default_rng(seed)
    out: list[list[np.ndarray]] = [[] for _ in sides]
    for counts in resample_counts(n, resamples, rng):
        for k, (stat, cells, positions) in enumerate(sides):
            out[k].append(stat.evaluate(cells, counts[:, positions]))
    return [np.concatenate(chunks) for chunks in out]


def _interval(samples: np.ndarray, alpha: float) -> tuple[float, float]:
    samples = samples[np.isfinite(samples)]
    if not len(samples):
        return float("nan"), float("nan")
    low, high = np.percentile(samples, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def _not_evaluated(claim: ClaimSpec, why: str) -> ClaimResult:
    nan = float("nan")
    return ClaimResult(
        claim.claim_id, claim.source, claim.published, statement(claim), 0,
        nan, nan, nan, nan, nan, nan, "", "not evaluated", why,
    )  # fmt: skip


def check_claim(suite: Suite, claim: ClaimSpec, records_of: RecordsOf) -> ClaimResult:
    """The verdict on one claim (see the module docstring)."""
    seed = derive_seed(suite.seed, "claim", claim.claim_id)
    alpha, resamples = suite.alpha, suite.claims_resamples
    if claim.row is not None:
        return _check_bound(claim, _resolve(suite, claim.on), records_of, alpha, resamples, seed)
    assert claim.better is not None
    better_stat, worse_stat = _resolve(suite, claim.on), _resolve(suite, claim.worse_column)
    sides = []
    for row, stat in ((claim.better, better_stat), (claim.worse_row, worse_stat)):
        records = records_of(stat.evaluation, row)
        if records is None:
            return _not_evaluated(claim, f"no results of '{stat.evaluation}' for row '{row}'")
        try:
            sides.append(stat.prepare(records))
        except KeyError as exc:
            return _not_evaluated(claim, f"records of {stat.column} have no {exc}")
    examples = np.intersect1d(sides[0].examples, sides[1].examples)
    if not len(examples):
        return _not_evaluated(claim, "the two sides share no evaluated example")
    paired = [_side(s, c, examples) for s, c in zip((better_stat, worse_stat), sides, strict=True)]
    n = len(examples)
    try:
        values = [_value(side, n) for side in paired]
        draws = _bootstrap(paired, n, resamples, seed)
    except KeyError as exc:
        return _not_evaluated(claim, f"records have no {exc}")
    differences = draws[0] - draws[1]
    low, high = _interval(differences, alpha)
    effect = values[0] - values[1]
    plain = better_stat.plain_accuracy, worse_stat.plain_accuracy
    cells = [side[1] for side in paired]
    if plain[0] is not None and plain[1] is not None and _one_record_per_example(cells):
        a = _by_example(cells[0], examples, plain[0])
        b = _by_example(cells[1], examples, plain[1])
        only_a, only_b, p = mcnemar_exact(a, b)
        test = f"McNemar exact ({only_a} vs {only_b} discordant)"
    else:
        p = bootstrap_p_value(differences)
        test = f"paired bootstrap ({resamples})"
    direction = better_stat.direction
    claimed = 1.0 if direction == "higher" else -1.0
    significant = bool(np.isfinite(p) and p < alpha)
    if significant and claimed * effect > 0:
        verdict = "reproduced"
    elif significant and claimed * effect < 0:
        verdict = "contradicted"
    else:
        verdict = "inconclusive"
    note = f"{direction} is better"
    return ClaimResult(
        claim.claim_id, claim.source, claim.published, statement(claim), len(examples),
        values[0], values[1], effect, low, high, p, test, verdict, note,
    )  # fmt: skip


def _one_record_per_example(cells: list[Cells]) -> bool:
    return all(len(np.unique(c.index)) == len(c.index) for c in cells)


def _by_example(cells: Cells, examples: np.ndarray, column: str) -> np.ndarray:
    values = cells.correct if column == "correct" else cells.robust
    assert values is not None
    out = np.zeros(len(examples), bool)
    out[_aligned(cells, examples)] = values.astype(bool)
    return out


def _check_bound(
    claim: ClaimSpec,
    stat: ColumnStatistic,
    records_of: RecordsOf,
    alpha: float,
    resamples: int,
    seed: int,
) -> ClaimResult:
    assert claim.row is not None
    records = records_of(stat.evaluation, claim.row)
    if records is None:
        return _not_evaluated(claim, f"no results of '{stat.evaluation}' for row '{claim.row}'")
    try:
        cells = stat.prepare(records)
    except KeyError as exc:
        return _not_evaluated(claim, f"records of {stat.column} have no {exc}")
    examples = cells.examples
    side = _side(stat, cells, examples)
    value = _value(side, len(examples))
    if stat.plain_accuracy is not None and _one_record_per_example([cells]):
        hits = _by_example(cells, examples, stat.plain_accuracy)
        interval = binomtest(int(hits.sum()), len(hits)).proportion_ci(1 - alpha, "exact")
        low, high = 100.0 * interval.low, 100.0 * interval.high
        test = "Clopper-Pearson exact"
    else:
        (draws,) = _bootstrap([side], len(examples), resamples, seed)
        low, high = _interval(draws, alpha)
        test = f"bootstrap ({resamples})"
    bound = claim.at_least if claim.at_least is not None else claim.at_most
    assert bound is not None
    if claim.at_least is not None:
        verdict = "reproduced" if low >= bound else "contradicted" if high < bound else ""
    else:
        verdict = "reproduced" if high <= bound else "contradicted" if low > bound else ""
    return ClaimResult(
        claim.claim_id, claim.source, claim.published, statement(claim), len(examples),
        value, bound, value - bound, low, high, float("nan"), test, verdict or "inconclusive",
    )  # fmt: skip


def check_claims(suite: Suite, records_of: RecordsOf) -> list[ClaimResult]:
    """Every claim of ``suite``, in order."""
    return [check_claim(suite, claim, records_of) for claim in suite.claims]
