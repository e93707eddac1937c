"""RobustBench's leaderboard entry layout (``model_info/<dataset>/<threat_model>/<name>.json``).

RobustBench stores one JSON object per model with the fields ``link, name, authors,
additional_data, number_forward_passes, dataset, venue, architecture, eps, clean_acc,
reported`` and then ``autoattack_acc`` (Linf, L2) or ``corruptions_acc`` (corruptions).
Its files store accuracies as strings ("59.53"); our export writes numbers as numbers, and
our import accepts either.

Export: one entry per leaderboard row and threat model -- the clean accuracy of the suite's
``clean`` evaluation, the robust accuracy of its standard AutoAttack evaluation per (norm,
eps), and the mean accuracy of a ``corruptions`` evaluation over the standard 15
corruptions. Import: entries become *reference rows* of the leaderboard (``source =
reported``) whose numbers sit in the columns of the matching evaluations, so a measured model
and a published number can be read side by side.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.errors import BenchmarkError
from benchmark.utils import write_text_atomic

FIELDS = (
    "link",
    "name",
    "authors",
    "additional_data",
    "number_forward_passes",
    "dataset",
    "venue",
    "architecture",
    "eps",
    "clean_acc",
    "reported",
)
ROBUST_FIELD = {"Linf": "autoattack_acc", "L2": "autoattack_acc", "corruptions": "corruptions_acc"}


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _threat_columns(suite: Any) -> dict[str, tuple[str, str | None]]:
    """threat model -> (leaderboard column of its robust accuracy, eps as written)."""
    from benchmark.evaluations.adversarial import ThreatParams
    from benchmark.evaluations.corruptions import CorruptionParams

    found: dict[str, tuple[str, str | None]] = {}
    for spec in suite.evaluations:
        resolved = spec.resolved
        params, name = resolved.params, resolved.name
        if (
            resolved.attack_kind == "ensemble"
            and isinstance(params, ThreatParams)
            and getattr(params, "version", "") in ("standard", "rand")
        ):
            found.setdefault(params.norm, (f"{name}_robust_acc_pct", str(params.eps)))
        elif (
            spec.type == "corruptions"
            and isinstance(params, CorruptionParams)
            and params.corruptions == "standard"
        ):
            found.setdefault("corruptions", (f"{name}_mean_acc_pct", None))
    return found


def _clean_column(suite: Any, frame: pd.DataFrame) -> str | None:
    for spec in suite.evaluations:
        if spec.type == "clean":
            column = f"{spec.resolved.name}_acc_pct"
            if column in frame.columns:
                return column
    return None


def to_entries(suite: Any, frame: pd.DataFrame) -> list[tuple[str, str, dict[str, Any]]]:
    """(threat model, model name, entry) for every measured row with a robust accuracy."""
    threats = _threat_columns(suite)
    clean = _clean_column(suite, frame)
    entries = []
    for _, row in frame.iterrows():
        if row.get("source", "measured") == "reported":
            continue
        for threat, (column, eps) in threats.items():
            robust = _number(row.get(column))
            if robust is None:
                continue
            randomized = bool(row.get("randomized", False))
            entry: dict[str, Any] = {
                "link": "",
                "name": str(row["model"]),
                "authors": "",
                "additional_data": False,
                "number_forward_passes": 1 if not randomized else None,
                "dataset": suite.dataset.name,
                "venue": "",
                "architecture": str(row.get("arch", "")),
                "eps": eps,
                "clean_acc": _number(row.get(clean)) if clean else None,
                "reported": None,
                ROBUST_FIELD[threat]: robust,
            }
            flags = str(row.get("flags") or "")
            if flags:
                entry["footnote"] = f"trust flags: {flags}"
            entries.append((threat, str(row["model"]), entry))
    return entries


def export_entries(
    suite: Any, frame: pd.DataFrame, out_dir: str | Path, allow_flagged: bool = False
) -> list[Path]:
    """Write ``<out_dir>/<dataset>/<threat model>/<model>.json`` per entry; return paths.

    A row with trust flags is refused (its robust accuracy may measure the attack's failure)
    unless ``allow_flagged``; then its entry carries the flags as its footnote."""
    entries = to_entries(suite, frame)
    flagged = sorted({e["name"] for _, _, e in entries if "footnote" in e})
    if flagged and not allow_flagged:
        raise BenchmarkError(
            f"export: row(s) {', '.join(flagged)} carry trust flags (see `check`); their "
            "robust accuracy may measure an attack's failure: fix them, or export them with "
            "--allow-flagged (the flags become the entry's footnote)"
        )
    written = []
    for threat, model, entry in entries:
        stem = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in model)
        path = Path(out_dir) / suite.dataset.name / threat / f"{stem}.json"
        write_text_atomic(path, json.dumps(entry, indent=2) + "\n")
        written.append(path)
    return written


def read_entries(path: str | Path) -> list[tuple[str, str, dict[str, Any]]]:
    """(threat model, model id, entry) from a RobustBench JSON file or a folder of them
    (``model_info`` layout: the threat model is the parent folder's name, the model id the
    file stem)."""
    path = Path(path)
    files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
    if not files or not files[0].is_file():
        raise BenchmarkError(f"{path}: no RobustBench JSON entries found")
    entries = []
    for file in files:
        try:
            entry = json.loads(file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BenchmarkError(f"{file}: not a JSON file ({exc})") from None
        if not isinstance(entry, dict) or "clean_acc" not in entry:
            raise BenchmarkError(f"{file}: not a RobustBench entry (no 'clean_acc' field)")
        threat = file.parent.name
        if threat not in ROBUST_FIELD:
            threat = "corruptions" if "corruptions_acc" in entry else _norm_of(entry)
        entries.append((threat, file.stem, entry))
    return entries


def _norm_of(entry: dict[str, Any]) -> str:
    eps = str(entry.get("eps") or "")
    return "Linf" if "/255" in eps else "L2"


def reference_rows(suite: Any, frame: pd.DataFrame, paths: list[str]) -> pd.DataFrame:
    """``frame`` with one ``source = reported`` row per imported entry: its clean accuracy in
    the clean column, its AutoAttack / corruption accuracy in the column of the suite's
    evaluation of that threat model (else ``robustbench_<threat>_acc_pct``), and the paper's
    own number in ``reported_acc_pct``. Measured rows get ``source = measured``."""
    threats = _threat_columns(suite)
    clean = _clean_column(suite, frame) or "clean_acc_pct"
    rows = []
    for path in paths:
        for threat, model_id, entry in read_entries(path):
            column = threats.get(threat, (f"robustbench_{threat.lower()}_acc_pct", None))[0]
            row: dict[str, Any] = {
                "model": f"{model_id} (reported)",
                "arch": entry.get("architecture", ""),
                "randomized": False,
                "flags": "",
                "source": "reported",
                clean: _number(entry.get("clean_acc")),
                column: _number(entry.get(ROBUST_FIELD.get(threat, "autoattack_acc"))),
                "reported_acc_pct": _number(entry.get("reported")),
            }
            rows.append(row)
    if not rows:
        return frame
    measured = frame.assign(source="measured")
    return pd.concat([measured, pd.DataFrame(rows)], ignore_index=True)
