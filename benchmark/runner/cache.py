"""Content-addressed result cache with atomic, idempotent writes.

Each job result lives in ``<root>/results/<key>/`` (``result.json`` + ``records.parquet``).
It is written into a private temporary directory first and then renamed into place: rename is
atomic, so a job killed at any point leaves no partial result, and two processes finishing the
same job race harmlessly (the loser discards its identical copy).
"""

from __future__ import annotations

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


class ResultCache:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.results = self.root / "results"

    def path(self, key: str) -> Path:
        return self.results / key

    def has(self, key: str) -> bool:
        return (self.path(key) / RESULT_FILE).is_file()

    def put(self, key: str, result: EvaluationResult, info: dict[str, Any]) -> Path:
        final = self.path(key)
        self.results.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.results, prefix=f".tmp-{key}-"))
        try:
            result.records.to_parquet(tmp / RECORDS_FILE, index=False)
            payload = {"key": key, "metrics": result.metrics, "extras": result.extras, **info}
            if result.cost:
                payload["cost"] = result.cost
            for name, content in result.artifacts.items():
                if "/" in name or name in (RESULT_FILE, RECORDS_FILE) or name.startswith("."):
                    raise ValueError(f"bad artifact name {name!r}")
                (tmp / name).write_bytes(content)
            (tmp / RESULT_FILE).write_text(json.dumps(payload, indent=1, default=str))
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
