"""The leaderboard: one row per model, one column per (evaluation, metric).

Column names are ``<evaluation name>_<metric>`` and carry their scale: ``_pct`` columns are
percentages, ``nll`` is in nats, ``brier`` is the multi-class Brier score in [0, 2].
Files are written atomically as CSV (for pandas) and Markdown (for people).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from benchmark.errors import BenchmarkError
from benchmark.metrics import HIGHER_IS_BETTER_SUFFIXES, LOWER_IS_BETTER_SUFFIXES
from benchmark.utils import write_text_atomic


def write_leaderboard(frame: pd.DataFrame, directory: str | Path, name: str) -> list[Path]:
    directory = Path(directory)
    csv_path, md_path = directory / f"{name}.csv", directory / f"{name}.md"
    write_text_atomic(csv_path, frame.to_csv(index=False))
    write_text_atomic(md_path, f"# Leaderboard: {name}\n\n{to_markdown(frame)}\n")
    return [csv_path, md_path]


def to_markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".4g")


DETAIL_SUFFIXES = ("_asr_pct", "_mean_norm")


def terminal_view(frame: pd.DataFrame) -> pd.DataFrame:
    """The columns a reader wants first: confidence intervals folded into their metric as
    ``value [low, high]``, detail columns (ASR, perturbation norms, arch) left to the files."""
    view = frame.drop(
        columns=[c for c in frame.columns if c == "arch" or c.endswith(DETAIL_SUFFIXES)]
    )
    for low in [c for c in view.columns if c.endswith("_ci_low")]:
        main = low.removesuffix("_ci_low")
        high = f"{main}_ci_high"
        if main in view.columns and high in view.columns:
            view[main] = [
                f"{m:.4g} [{lo:.3g}, {hi:.3g}]"
                for m, lo, hi in zip(view[main], view[low], view[high], strict=True)
            ]
            view = view.drop(columns=[low, high])
    return view


def format_table(frame: pd.DataFrame, full: bool = False, width: int | None = None) -> str:
    """Terminal rendering, 4 significant digits; transposed (one row per metric) when the
    table would be wider than the terminal."""
    view = frame if full else terminal_view(frame)
    text = view.to_string(index=False, float_format=lambda v: f"{v:.4g}")
    width = width or shutil.get_terminal_size((120, 24)).columns
    if max(len(line) for line in text.splitlines()) <= width or "model" not in view.columns:
        return text
    transposed = view.set_index("model").T
    transposed.index.name = "metric"
    return transposed.to_string(float_format=lambda v: f"{v:.4g}")


def read_leaderboard(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"{path}: leaderboard file not found")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BenchmarkError(f"{path}: not a leaderboard CSV ({exc})") from None
    if "flags" in frame.columns:  # CSV stores "no flags" as an empty field
        frame["flags"] = frame["flags"].astype(object).fillna("").astype(str)
    return frame


def higher_is_better(column: str) -> bool:
    """Best-first direction of a metric column, from its suffix (accuracies up, errors down)."""
    if column.endswith(HIGHER_IS_BETTER_SUFFIXES):
        return True
    return not column.endswith(LOWER_IS_BETTER_SUFFIXES)


def sort_leaderboard(
    frame: pd.DataFrame, column: str, ascending: bool | None = None
) -> pd.DataFrame:
    """Sort by ``column``, best first unless ``ascending`` is given explicitly."""
    if column not in frame.columns:
        raise BenchmarkError(
            f"--sort: no column '{column}' (columns: {', '.join(map(str, frame.columns))})"
        )
    if ascending is None:
        ascending = not higher_is_better(column)
    return frame.sort_values(column, ascending=ascending, kind="stable").reset_index(drop=True)
