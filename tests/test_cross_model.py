"""Cross-model metrics: an evaluation returns values per model row and the runner places them
(declared columns, NaN where a row has none); a value for a row that is not the evaluation's,
or a metric that would overwrite an existing column, fails in one line."""

from __future__ import annotations

from typing import ClassVar

import pandas as pd
import pytest

from benchmark.errors import BenchmarkError
from benchmark.evaluations import EvaluationResult, register_evaluation
from benchmark.evaluations.capabilities import CrossModel
from benchmark.metrics.specs import MetricSpec
from benchmark.runner import run_suite
from benchmark.suite import load_suite
from tests.conftest import tiny_suite


def _weight_sum(model) -> float:
    return float(sum(p.detach().abs().sum() for p in model.parameters()))


class _WeightsEvaluation(CrossModel):
    metrics: ClassVar[tuple[MetricSpec, ...]] = (
        MetricSpec("weights", "sum |w|", "none", "sum of absolute weights"),
        MetricSpec("share_pct", "%", "none", "this row's share of all rows' weight sums"),
    )

    def run(self, model, data, ctx) -> EvaluationResult:
        records = pd.DataFrame({"index": data.indices.numpy()})
        return EvaluationResult({"weights": _weight_sum(model)}, records, {"n_examples": 1})


@register_evaluation("test_cross_model_share", "each row's share of the weight sums")
class _Share(_WeightsEvaluation):
    @classmethod
    def cross_model_metrics(cls, name, params, results, records):
        total = sum(r.metrics["weights"] for r in results.values())
        first = next(iter(results))  # only the first row gets a value: the others read NaN
        return {first: {"share_pct": 100 * results[first].metrics["weights"] / total}}


@register_evaluation("test_cross_model_stray", "returns a value for a row that is not its own")
class _Stray(_WeightsEvaluation):
    @classmethod
    def cross_model_metrics(cls, name, params, results, records):
        return {"no_such_row": {"share_pct": 1.0}}


@register_evaluation("test_cross_model_clobber", "returns a metric its run already emitted")
class _Clobber(_WeightsEvaluation):
    @classmethod
    def cross_model_metrics(cls, name, params, results, records):
        return {row: {"weights": 0.0} for row in results}


def _run(tmp_path, write_suite, kind: str):
    suite = tiny_suite(tmp_path, evaluations=[{"type": kind, "name": "w"}])
    return run_suite(load_suite(write_suite(suite)), progress=False, log=lambda _m: None)


def test_values_land_in_their_rows_and_declared_columns(tmp_path, write_suite):
    run = _run(tmp_path, write_suite, "test_cross_model_share")
    board = run.leaderboard.set_index("model")
    total = board["w_weights"].sum()
    assert board.loc["cnn", "w_share_pct"] == pytest.approx(
        100 * board.loc["cnn", "w_weights"] / total
    )
    assert pd.isna(board.loc["rn20", "w_share_pct"])
    assert run.columns["w_share_pct"].unit == "%"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("test_cross_model_stray", "'no_such_row', which are not its model rows"),
        ("test_cross_model_clobber", "would overwrite the leaderboard column 'w_weights'"),
    ],
)
def test_misplaced_values_fail_in_one_line(tmp_path, write_suite, kind, expected):
    with pytest.raises(BenchmarkError) as info:
        _run(tmp_path, write_suite, kind)
    assert expected in str(info.value) and "\n" not in str(info.value)
