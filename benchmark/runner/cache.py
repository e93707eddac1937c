"""Content-addressed result cache with atomic, idempotent writes.

Each job result lives in ``<root>/results/<key>/`` (``result.json`` + ``records.parquet``).
It is written into a private temporary directory first and then renamed into place: rename is
atomic, so a job killed at any point leaves no partial result, and two processes finishing the
same job race harmlessly (the loser discards its identical copy). Files are fsynced before
the rename. ``result.json`` carries SHA-256 checksums of itself and of every file beside it;
an entry that fails them (truncated, emptied, edited, bit-flipped) is reported in one line
and recomputed (:func:`entry_problem`).

Every ``result.json`` carries ``schema_version``. A result of another version is treated as
absent -- recomputed and replaced -- because its fields may not mean what this code reads them
as; results are deterministic, so the numbers come back equal. A result without the field was
written before versions existed, in exactly the layout of version 1, and counts as version 1
(so existing caches survive the introduction of the field).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.evaluations.base import EvaluationResult
from benchmark.utils import current_umask, file_sha256, writing
from benchmark.utils import fsync_path as _fsync

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
RECORDS_FILE = "records.parquet"
# Bump when the layout or meaning of result.json changes: older entries are then recomputed.
RESULT_SCHEMA_VERSION = 1


def _digest(payload: dict[str, Any]) -> str:
    """SHA-256 of the payload's canonical JSON (without its own ``checksums`` field)."""
    body = {k: v for k, v in payload.items() if k != "checksums"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def entry_problem(folder: Path) -> str | None:
    """Why the cache entry in ``folder`` cannot be served (``None``: it can).

    An entry is served only if its ``result.json`` parses, is of this schema version, names
    the key of the folder it sits in (an entry copied under another key is not that job's
    result), and its checksums match ``result.json`` itself, ``records.parquet`` and every
    artifact: a truncated, emptied, edited, bit-flipped or copied entry is recomputed, never
    read back. An entry without checksums cannot be verified and is recomputed too."""
    result, records = folder / RESULT_FILE, folder / RECORDS_FILE
    if not result.is_file():
        return "absent"
    try:
        payload = json.loads(result.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return f"{RESULT_FILE} is not valid JSON"
    if not isinstance(payload, dict) or not isinstance(payload.get("metrics"), dict):
        return f"{RESULT_FILE} is not a result"
    if payload.get("schema_version", 1) != RESULT_SCHEMA_VERSION:
        return f"schema version {payload.get('schema_version')!r}, expected {RESULT_SCHEMA_VERSION}"
    if not records.is_file():
        return f"{RECORDS_FILE} is missing"
    if payload.get("key") != folder.name:
        return f"its stored key {payload.get('key')!r} is not its folder's (a copied entry)"
    checksums = payload.get("checksums")
    if checksums is None:
        return "no checksums (written before they existed; cannot be verified)"
    if not isinstance(checksums, dict) or checksums.get(RESULT_FILE) != _digest(payload):
        return f"{RESULT_FILE} does not match its checksum (edited or corrupted)"
    for name, digest in checksums.items():
        if name == RESULT_FILE:
            continue
        path = folder / name
        if "/" in name or not path.is_file() or file_sha256(path) != digest:
            return f"{name} does not match its checksum (truncated, edited or missing)"
    return None


class ResultCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.results = self.root / "results"
        # keys already read and found current: a finished entry never changes, so each
        # result.json is parsed once per cache object, not on every ``has``
        self._current: set[str] = set()
        self._reported: set[str] = set()  # damaged keys already reported

    def path(self, key: str) -> Path:
        return self.results / key

    def has(self, key: str) -> bool:
        """True if a finished, intact result of the current schema version is cached under
        ``key``. A damaged entry is reported in one line (logged once) and counts as absent,
        so the job is recomputed and the entry replaced."""
        if key in self._current:
            return (self.path(key) / RESULT_FILE).is_file()
        problem = entry_problem(self.path(key))
        if problem is None:
            self._current.add(key)
            return True
        if problem != "absent" and key not in self._reported:
            self._reported.add(key)
            log.warning("cache entry %s: %s; recomputing it", key, problem)
        return False

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
        """Store ``result`` under ``key`` (atomically); a full disk or a read-only cache
        raises a one-line :class:`~benchmark.errors.WriteError` naming the entry."""
        with writing(self.path(key)):
            return self._put(key, result, info)

    def _put(self, key: str, result: EvaluationResult, info: dict[str, Any]) -> Path:
        final = self.path(key)
        self.results.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.results, prefix=f".tmp-{key}-"))
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; follow the umask
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
            payload = json.loads(json.dumps(payload, default=str))  # as it will read back
            checksums = {name: file_sha256(tmp / name) for name in os.listdir(tmp)}
            payload["checksums"] = {**checksums, RESULT_FILE: _digest(payload)}
            (tmp / RESULT_FILE).write_text(json.dumps(payload, indent=1))
            for name in os.listdir(tmp):  # on disk before the rename makes them visible
                _fsync(tmp / name)
            _fsync(tmp)
            self._discard_stale(key)
            try:
                os.rename(tmp, final)
                _fsync(self.results)
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
