"""The claims table: ``<leaderboard_dir>/<suite>.claims.csv`` and ``.md``, and the terminal
lines printed after the leaderboard."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from benchmark.claims.check import ClaimResult
from benchmark.utils import write_text_atomic


def claims_frame(results: list[ClaimResult]) -> pd.DataFrame:
    return pd.DataFrame([r.as_dict() for r in results])


def _number(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.4g}"


def _p(value: float) -> str:
    return "" if not math.isfinite(value) else f"{value:.2g}"


def claims_markdown(results: list[ClaimResult], suite_name: str, alpha: float) -> str:
    """A Markdown table: claim, source, published, ours (value vs other side), effect with
    its interval, test, p, verdict."""
    rows = [
        {
            "claim": r.statement,
            "source": r.source,
            "published": r.published,
            "ours": f"{_number(r.value)} vs {_number(r.versus)}",
            "effect [CI]": f"{_number(r.effect)} [{_number(r.ci_low)}, {_number(r.ci_high)}]",
            "n": r.n,
            "test": r.test,
            "p": _p(r.p_value),
            "verdict": r.verdict + (f" ({r.note})" if r.verdict == "not evaluated" else ""),
        }
        for r in results
    ]
    table = pd.DataFrame(rows).to_markdown(index=False) if rows else "(no claims)"
    return (
        f"# Claims: {suite_name}\n\nPaired tests on the same examples at alpha = {alpha:g} "
        "(benchmark/claims/check.py). Effect = the claimed-better side minus the other; "
        "interval: paired bootstrap (Clopper-Pearson for a bound on an accuracy).\n\n"
        f"{table}\n"
    )


def write_claims(
    results: list[ClaimResult], folder: str | Path, suite_name: str, alpha: float
) -> list[Path]:
    """Write the CSV and Markdown tables atomically; return their paths."""
    folder = Path(folder)
    csv_path = folder / f"{suite_name}.claims.csv"
    md_path = folder / f"{suite_name}.claims.md"
    write_text_atomic(csv_path, claims_frame(results).to_csv(index=False))
    write_text_atomic(md_path, claims_markdown(results, suite_name, alpha))
    return [csv_path, md_path]


def format_claims(results: list[ClaimResult], alpha: float) -> str:
    """Terminal lines: one per claim with its verdict first."""
    if not results:
        return ""
    lines = [f"claims (paired tests, alpha {alpha:g}):"]
    for r in results:
        if r.verdict == "not evaluated":
            lines.append(f"  {r.verdict:>13}  {r.statement}: {r.note}")
            continue
        p = f", p = {_p(r.p_value)}" if math.isfinite(r.p_value) else ""
        lines.append(
            f"  {r.verdict:>13}  {r.statement}: {_number(r.value)} vs {_number(r.versus)}, "
            f"effect {_number(r.effect)} [{_number(r.ci_low)}, {_number(r.ci_high)}]"
            f"{p} ({r.test}, n = {r.n})"
        )
    return "\n".join(lines)
