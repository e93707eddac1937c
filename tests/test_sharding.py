"""Sharding: an evaluation split into example ranges merges into exactly the unsharded result
(AutoAttack and PGD with random restarts), through the runner and its cache."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from benchmark.cli import main
from benchmark.errors import BenchmarkError
from benchmark.evaluations import EVALUATIONS, EvalContext
from benchmark.runner import ResultCache, expand_jobs, run_suite
from benchmark.suite import load_suite
from tests.conftest import tiny_suite


def evaluation(kind: str, **params):
    entry = EVALUATIONS.get(kind)
    return entry.obj(entry.params_model.model_validate(params))


def sharded_equals_unsharded(model, data, kind: str, shard: int, **params) -> pd.DataFrame:
    ctx = EvalContext(torch.device("cpu"), batch_size=16, seed=11, progress=False)
    whole_eval = evaluation(kind, **params)
    whole = whole_eval.run(model, data, ctx)
    n = len(whole_eval.examples(data))
    parts = [
        evaluation(kind, **params).run_shard(model, data, ctx, a, min(a + shard, n))
        for a in range(0, n, shard)
    ]
    merged = whole_eval.merge(parts)
    pd.testing.assert_frame_equal(merged.records, whole.records, check_exact=True)
    assert merged.metrics == whole.metrics or all(
        merged.metrics[k] == whole.metrics[k]
        or (pd.isna(merged.metrics[k]) and pd.isna(whole.metrics[k]))
        for k in whole.metrics
    )
    assert merged.extras == whole.extras
    return whole.records


@pytest.mark.parametrize(
    "attacks,n",
    [
        (["apgd-ce"], 32),
        pytest.param(["apgd-ce", "apgd-t"], 48, marks=pytest.mark.slow),  # ~6 min on 2 cores
    ],
)
def test_sharded_autoattack_equals_unsharded(trained, attacks, n):
    """AutoAttack (random init from the package's own RNG, re-seeded per call) on n examples
    in shards of 16: identical records and metrics."""
    model, data = trained
    records = sharded_equals_unsharded(
        model,
        data,
        "autoattack",
        16,
        norm="Linf",
        eps=0.1,
        version="custom",
        attacks_to_run=attacks,
        n_examples=n,
    )
    assert records["clean_correct"].sum() > records["robust"].sum() > 0  # not trivial


def test_sharded_pgd_with_random_restarts_equals_unsharded(trained):
    model, data = trained
    records = sharded_equals_unsharded(
        model, data, "pgd", 32, norm="L2", eps=0.5, steps=5, restarts=2, n_examples=100
    )
    assert records["clean_correct"].sum() > records["robust"].sum()


def test_shards_must_align_with_attack_batches(trained):
    model, data = trained
    ctx = EvalContext(torch.device("cpu"), batch_size=16, seed=1, progress=False)
    with pytest.raises(BenchmarkError, match="multiples of the attack batch size 16"):
        evaluation("fgsm", eps=0.1).run_shard(model, data, ctx, 10, 20)


def test_runner_runs_shards_as_tasks_caches_them_and_merges(tmp_path, write_suite):
    def suite_with(shard_size, folder):
        suite = tiny_suite(tmp_path / folder)
        suite["models"] = suite["models"][:1]
        pgd = {"type": "pgd", "params": {"eps": 0.1, "steps": 3, "restarts": 2}}
        suite["evaluations"] = [pgd | ({"shard_size": shard_size} if shard_size else {})]
        suite["sanity"] = False  # only the sharded evaluation's tasks
        suite["fallbacks"] = False
        return load_suite(write_suite(suite, f"{folder}.yaml"))

    whole = run_suite(suite_with(None, "whole"), progress=False, log=lambda _m: None)
    sharded_suite = suite_with(32, "sharded")
    sharded = run_suite(sharded_suite, progress=False, log=lambda _m: None)
    assert sharded.executed == [
        "cnn x pgd_linf_0.1 [0:32]",
        "cnn x pgd_linf_0.1 [32:60]",
    ]
    pd.testing.assert_frame_equal(sharded.leaderboard, whole.leaderboard, check_exact=True)
    job = expand_jobs(sharded_suite, "cpu")[0]
    assert job.key == expand_jobs(suite_with(None, "whole"), "cpu")[0].key  # same result key
    cache = ResultCache(sharded_suite.cache_root)
    assert len(cache.load_records(job.key)) == 60
    assert run_suite(sharded_suite, progress=False, log=lambda _m: None).executed == []

    # a merged result lost (e.g. killed between the last shard and the merge) is rebuilt
    # from the cached shards without running anything
    import shutil

    shutil.rmtree(cache.path(job.key))
    again = run_suite(sharded_suite, progress=False, log=lambda _m: None)
    assert again.executed == []
    pd.testing.assert_frame_equal(again.leaderboard, whole.leaderboard, check_exact=True)


def test_shard_size_on_an_unshardable_evaluation_is_rejected(tmp_path, write_suite, capsys):
    suite = tiny_suite(tmp_path)
    suite["evaluations"][0]["shard_size"] = 10
    assert main(["validate", str(write_suite(suite))]) == 2
    assert "evaluations[0].shard_size: evaluation type 'clean' cannot be sharded" in (
        capsys.readouterr().err
    )
