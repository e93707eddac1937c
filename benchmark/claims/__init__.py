"""Papers' claims declared in a suite (``claims:``), each checked with the paired test that
fits its column, after the leaderboard: :mod:`benchmark.claims.check` (tests and verdicts),
:mod:`benchmark.claims.statistics` (columns rebuilt from per-example records),
:mod:`benchmark.claims.report` (tables)."""

from benchmark.claims.check import VERDICTS, ClaimResult, check_claims
from benchmark.claims.report import claims_frame, format_claims, write_claims
from benchmark.claims.statistics import column_statistic, find_column

__all__ = [
    "VERDICTS",
    "ClaimResult",
    "check_claims",
    "claims_frame",
    "column_statistic",
    "find_column",
    "format_claims",
    "write_claims",
]
