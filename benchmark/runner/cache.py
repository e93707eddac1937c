"""Content-addressed result cache with atomic, idempotent writes.

Each job result lives in ``<root>/results/<key>/`` (``result.json`` + ``records.parquet``).
It is written into a private temporary directory first and then renamed into place: rename is
atomic, so a job killed at any point leaves no partial result, and two processes finishing the
same job race harmlessly (the loser discards its identical copy).

Every ``result.json`` carries ``schema_version``. A result of another version is treated as
absent -- recomputed and replaced -- because its fields may not mean what this code reads them
as; results are deterministic, so the numbers come back equal. A result without the field was
written before versions existed, in exactly the layout of version 1, and counts as version 1
(so existing caches survive the introduction of the field).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.evaluations.base import EvaluationResult

RESULT_FILE = "result.json"
RECORDS_FILE = "records.parquet"
# Bump when the layout or meaning of result.json changes: older entries are then recomputed.
RESULT_SCHEMA_VERSION = 1


def _current_schema(path: Path) -> bool:
    """True if ``path`` is a readable result.json of this ``RESULT_SCHEMA_VERSION``."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    if not isinstance(payload, dict):
        return False
    return payload.get("schema_version", 1) == RESULT_SCHEMA_VERSION


class ResultCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.results = self.root / "results"
        # keys already read and found current: a finished entry never changes, so each
        # result.json is parsed once per cache object, not on every ``has``
        self._current: set[str] = set()

    def path(self, key: str) -> Path:
        return self.results / key

    def has(self, key: str) -> bool:
        """True if a finished result of the current schema version is cached under ``key``."""
        result = self.path(key) / RESULT_FILE
        if key in self._current:
            return result.is_file()
        if not _current_schema(result):
            return False
        self._current.add(key)
        return True

    def _discard_stale(self, key: str) -> None:
        """Move an entry of another schema version out of the way (then delete it), so the
        new result can be renamed into place; a concurrent writer doing the same is fine."""
        final = self.path(key)
        if not final.exists() or self.has(key):
            return
        aside = Path(tempfile.mkdtemp(dir=self.results, prefix=f".stale-{key}-"))
        with contextlib.suppress(OSError):  # already moved (or replaced) by another process
            os.rename(final, aside / key)
        shutil.rmtree(aside, ignore_errors=True)

    def put(self, key: str, result: EvaluationResult, info: dict[str, Any]) -> Path:
        final = self.path(key)
        self.results.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.results, prefix=f".tmp-{key}-"))
        try:
            result.records.to_parquet(tmp / RECORDS_FILE, index=False)
            payload = {
                "schema_version": RESULT_SCHEMA_VERSION,
                "key": key,
                "metrics": result.metrics,
                "extras": result.extras,
                **info,
            }
            if result.cost:
                payload["cost"] = result.cost
            for name, content in result.artifacts.items():
                if "/" in name or name in (RESULT_FILE, RECORDS_FILE) or name.startswith("."):
                    raise ValueError(f"bad artifact name {name!r}")
                (tmp / name).write_bytes(content)
            (tmp / RESULT_FILE).write_text(json.dumps(payload, indent=1, default=str))
            self._discard_stale(key)
            try:
                os.rename(tmp, final)
            except OSError:
                if not self.has(key):  # not a lost race: a real failure
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return final

    def load_summary(self, key: str) -> dict[str, Any]:
        return json.loads((self.path(key) / RESULT_FILE).read_text())

    def load_records(self, key: str) -> pd.DataFrame:
        return pd.read_parquet(self.path(key) / RECORDS_FILE)
