"""Suite execution: job expansion and keys, the result cache, and the runner loop."""

from benchmark.runner.cache import ResultCache
from benchmark.runner.jobs import Job, expand_jobs
from benchmark.runner.runner import RunSummary, run_suite, train_suite

__all__ = ["Job", "ResultCache", "RunSummary", "expand_jobs", "run_suite", "train_suite"]
