"""Sharding one large evaluation into example ranges, and merging the shards back.

An evaluation with ``shard_size`` becomes one task per range of its examples (each its own
cache key, so a killed run keeps its finished shards and executors can spread them over
workers). Once every shard is cached, the evaluation's ``merge`` concatenates the records in
example order and recomputes the metrics from them; the merged result is cached under the
job's own key, exactly where an unsharded run puts it.
"""

from __future__ import annotations

from benchmark.evaluations import EvaluationResult
from benchmark.runner.cache import ResultCache
from benchmark.runner.jobs import Job, Task
from benchmark.runner.worker import SuiteData
from benchmark.suite.schema import Suite


def plan_tasks(
    suite: Suite, jobs: list[Job], cache: ResultCache
) -> tuple[list[Task], dict[str, list[Task]]]:
    """The tasks still to run, and the shards of every uncached sharded job (by job key)."""
    pending: list[Task] = []
    shards: dict[str, list[Task]] = {}
    data: SuiteData | None = None
    for job in jobs:
        if cache.has(job.key):
            continue
        size = job.evaluation.shard_size
        if size is None:
            pending.append(Task(job))
            continue
        data = data or SuiteData(suite)  # loaded only when a sharded job is pending
        n = len(job.evaluation.resolved.build().examples(data.evaluation_set()))
        shards[job.key] = [Task(job, (a, min(a + size, n))) for a in range(0, n, size)]
        pending += [task for task in shards[job.key] if not cache.has(task.key)]
    return pending, shards


def merge_shards(job: Job, shards: list[Task], cache: ResultCache) -> EvaluationResult:
    """Merge the cached results of ``shards`` (all present) into the job's result."""
    results = []
    cost: dict[str, float | int] = {}
    for task in shards:
        summary = cache.load_summary(task.key)
        records = cache.load_records(task.key)
        results.append(EvaluationResult(summary["metrics"], records, summary["extras"]))
        for name, value in summary.get("cost", {}).items():  # shards' costs add up
            cost[name] = cost.get(name, 0) + value
    merged = job.evaluation.resolved.build_shardable().merge(results)
    merged.cost = cost
    return merged
