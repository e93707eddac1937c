"""The leaderboard: one row per model, one column per (evaluation, metric).

Column names are ``<evaluation name>_<metric>`` and carry their scale: ``_pct`` columns are
percentages, ``nll`` is in nats, ``brier`` is the multi-class Brier score in [0, 2].
Files are written atomically as CSV (for pandas) and Markdown (for people), with
``<name>.columns.json`` beside them: each column's declared unit and direction (which way is
better), so a CSV read back without its suite still sorts by the declarations, not by a guess
from the column's name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from benchmark.errors import BenchmarkError
from benchmark.metrics.specs import (
    MetricSpec,
    columns_from_json,
    columns_to_json,
    direction_of,
    find_spec,
)
from benchmark.utils import write_text_atomic

COLUMNS_SUFFIX = ".columns.json"

# Columns of the leaderboard itself rather than of one evaluation: the example count and the
# imported RobustBench numbers of reference rows (``benchmark.robustbench.reference_rows``).
LEADERBOARD_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("n_examples", "count", "none", "examples of the row's first evaluation"),
    MetricSpec("reported_acc_pct", "%", "higher", "robust accuracy reported by the paper"),
    MetricSpec(
        "robustbench_{threat}_acc_pct", "%", "higher", "RobustBench robust accuracy (reported)"
    ),
)


def leaderboard_column_spec(column: str) -> MetricSpec | None:
    """The declaration of a column that no evaluation owns (see ``LEADERBOARD_METRICS``)."""
    return find_spec(LEADERBOARD_METRICS, column)


def columns_path(csv_path: str | Path) -> Path:
    """Where the column declarations of a leaderboard CSV live: ``<stem>.columns.json``."""
    csv_path = Path(csv_path)
    return csv_path.with_name(csv_path.stem + COLUMNS_SUFFIX)


def leaderboard_owner_conflict(
    directory: str | Path, name: str, suite_file: str | None
) -> str | None:
    """A one-line warning when ``<directory>/<name>.*`` was written by another suite file
    with the same ``name`` (the run about to write replaces that suite's leaderboard), else
    None. The owner is recorded relative to the folder, so a moved or freshly cloned
    checkout keeps it; leaderboards that record no owner, and suites built in code, pass.

    A warning, not a refusal: variants of one suite (a copied file with one setting changed)
    are a common way to work; what must not happen is replacing another suite's files
    without a word."""
    if suite_file is None:
        return None
    directory = Path(directory)
    try:
        owner = json.loads(columns_path(directory / f"{name}.csv").read_text())["suite_file"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(owner, str) or (directory / owner).resolve() == Path(suite_file).resolve():
        return None
    return (
        f"warning: leaderboard_dir '{directory}': {name}.csv is the leaderboard of suite file "
        f"{os.path.normpath(directory / owner)}; {suite_file} has the same name '{name}' and "
        "replaces it (rename one of the suites or give each its own leaderboard_dir to keep both)"
    )


def write_leaderboard(
    frame: pd.DataFrame,
    directory: str | Path,
    name: str,
    columns: Mapping[str, MetricSpec] | None = None,
    markdown: str | None = None,
    headline: list[str] | None = None,
    suite_file: str | None = None,
) -> list[Path]:
    """CSV, Markdown and the column declarations (each file written atomically). The
    declarations go first: a CSV is never newer than the declarations of its columns.
    ``markdown``: the Markdown file's text (default: the whole table); ``headline``: the
    columns of the headline table, listed in the declarations file; ``suite_file``: the
    suite written from, recorded (relative to ``directory``; see
    :func:`leaderboard_owner_conflict`)."""
    directory = Path(directory)
    csv_path, md_path = directory / f"{name}.csv", directory / f"{name}.md"
    declared = {c: s for c, s in (columns or {}).items() if c in frame.columns}
    json_path = columns_path(csv_path)
    payload = columns_to_json(declared) | ({"headline": headline} if headline else {})
    if suite_file is not None:
        owner = os.path.relpath(Path(suite_file).resolve(), directory.resolve())
        payload["suite_file"] = Path(owner).as_posix()
    write_text_atomic(json_path, json.dumps(payload, indent=1) + "\n")
    write_text_atomic(csv_path, frame.to_csv(index=False))
    text = markdown if markdown is not None else f"# Leaderboard: {name}\n\n{to_markdown(frame)}\n"
    write_text_atomic(md_path, text)
    return [csv_path, md_path, json_path]


def read_columns(csv_path: str | Path) -> dict[str, MetricSpec]:
    """The column declarations stored beside a leaderboard CSV; {} when there are none (an
    older leaderboard) or they cannot be read: every column then has direction "none"."""
    path = columns_path(csv_path)
    try:
        payload = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return columns_from_json(payload)


# Marks a robust accuracy whose row carries a trust flag, wherever a person reads it
# (Markdown, terminal, HTML); the CSV keeps the number numeric and the ``flags`` column.
FLAG_MARK = " (flagged)"


def is_robustness_column(column: str) -> bool:
    """A robust-accuracy number (every attack evaluation's headline, sweeps included): the
    numbers a masked, noisy or lying model inflates, hence the ones a flag puts in doubt."""
    return str(column).endswith("_robust_acc_pct")


def flagged_rows(frame: pd.DataFrame) -> pd.Series:
    """True for the rows whose ``flags`` column names at least one flag."""
    if "flags" not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame["flags"].astype(object).fillna("").astype(str).str.strip() != ""


def mark_flagged(frame: pd.DataFrame, fmt: str = "{:.4g}") -> pd.DataFrame:
    """A copy with the robust accuracies of flagged rows as text ending in FLAG_MARK (the
    other rows' numbers formatted alike), for views people read."""
    flagged = flagged_rows(frame)
    if not flagged.any():
        return frame
    view = frame.copy()

    def marked(value: object, bad: bool) -> object:
        if not isinstance(value, str):
            if pd.isna(value):
                return value
            value = fmt.format(value)
        return value + FLAG_MARK if bad else value

    for column in [c for c in view.columns if is_robustness_column(c)]:
        view[column] = [marked(v, b) for v, b in zip(view[column], flagged, strict=True)]
    return view


def to_markdown(frame: pd.DataFrame) -> str:
    return mark_flagged(frame).to_markdown(index=False, floatfmt=".4g")


# Leaderboard columns that describe a row rather than measure it, left to the files.
DESCRIPTIVE_COLUMNS = frozenset({"arch"})


def terminal_view(
    frame: pd.DataFrame, columns: Mapping[str, MetricSpec] | None = None
) -> pd.DataFrame:
    """The columns a reader wants first: confidence intervals folded into their metric as
    ``value [low, high]``; the columns whose declaration (``columns``) marks them ``detail``
    (attack success rate, perturbation norms) and descriptive ones (arch) left to the files."""
    declared = columns or {}
    view = frame.drop(
        columns=[
            c
            for c in frame.columns
            if c in DESCRIPTIVE_COLUMNS or (c in declared and declared[c].detail)
        ]
    )
    return mark_flagged(fold_intervals(view))


def fold_intervals(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy with every ``<metric>_ci_low`` / ``_ci_high`` pair folded into its metric as
    ``value [low, high]`` and dropped (the views people read; the CSV keeps the columns)."""
    view = frame.copy()
    for low in [c for c in view.columns if str(c).endswith("_ci_low")]:
        main = str(low).removesuffix("_ci_low")
        high = f"{main}_ci_high"
        if main in view.columns and high in view.columns:
            view[main] = [
                "" if pd.isna(m) else f"{m:.4g} [{lo:.3g}, {hi:.3g}]"  # no value: no cell
                for m, lo, hi in zip(view[main], view[low], view[high], strict=True)
            ]
            view = view.drop(columns=[low, high])
    return view


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """``text`` with control characters (ANSI/OSC escape sequences, carriage returns, bells)
    written as ``\\xNN``: a name read from a CSV or a reference file must not drive the
    terminal (recolour it, rewrite earlier lines, set its title or a hyperlink)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def printable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell and column name passed through :func:`terminal_safe`."""
    out = frame.rename(columns=lambda c: terminal_safe(str(c)))
    for column in out.columns:
        if not pd.api.types.is_numeric_dtype(out[column]):
            out[column] = out[column].map(lambda v: terminal_safe(v) if isinstance(v, str) else v)
    return out


def format_table(
    frame: pd.DataFrame,
    full: bool = False,
    width: int | None = None,
    columns: Mapping[str, MetricSpec] | None = None,
) -> str:
    """Terminal rendering, 4 significant digits; transposed (one row per metric) when the
    table would be wider than the terminal. ``columns``: the declarations (which columns
    are details); ``full`` shows every column."""
    view = printable(frame if full else terminal_view(frame, columns))
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


def sort_leaderboard(
    frame: pd.DataFrame,
    column: str,
    ascending: bool | None = None,
    columns: Mapping[str, MetricSpec] | None = None,
) -> pd.DataFrame:
    """Sort by ``column``: in ``ascending`` order if given, else best first by the column's
    declared direction (``columns``: column -> declaration). A column with direction "none"
    (a count, a diagnostic, an undeclared metric, a leaderboard without its declarations) has
    no best first, so it needs an explicit order rather than a guess."""
    if column not in frame.columns:
        raise BenchmarkError(
            f"--sort: no column '{column}' (columns: {', '.join(map(str, frame.columns))})"
        )
    if ascending is None:
        direction = direction_of(columns, column)
        if direction == "none":
            raise BenchmarkError(
                f"--sort: column '{column}' declares no better direction; "
                "add --ascending or --descending"
            )
        ascending = direction == "lower"
    ordered = frame.sort_values(column, ascending=ascending, kind="stable")
    # a flagged row never sorts above an unflagged one: its number may be the attack's failure
    ordered = ordered.iloc[flagged_rows(ordered).to_numpy().argsort(kind="stable")]
    return ordered.reset_index(drop=True)
