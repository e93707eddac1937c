"""Damaged cache entries are reported in one line and recomputed, never served or crashed on."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from benchmark.runner import expand_jobs, run_suite
from benchmark.runner.cache import RECORDS_FILE, RESULT_FILE, ResultCache, entry_problem
from benchmark.suite import load_suite
from tests.conftest import tiny_suite


def quiet(_: str) -> None:
    pass


def _truncate(path):
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_metric(path):
    payload = json.loads(path.read_text())
    name = next(iter(payload["metrics"]))
    payload["metrics"][name] = 123.0
    path.write_text(json.dumps(payload))


DAMAGE = {
    "result truncated": (RESULT_FILE, _truncate),
    "result empty": (RESULT_FILE, lambda p: p.write_text("")),
    "result wrong type": (RESULT_FILE, lambda p: p.write_text("[1, 2]")),
    "result edited": (RESULT_FILE, _edit_metric),
    "records truncated": (RECORDS_FILE, _truncate),
    "records deleted": (RECORDS_FILE, lambda p: p.unlink()),
    "records bit flipped": (RECORDS_FILE, _flip),
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("integrity")
    doc = tiny_suite(tmp)
    doc["evaluations"] = [{"type": "clean"}]
    doc["models"] = doc["models"][:1]
    path = tmp / "suite.yaml"
    import yaml

    path.write_text(yaml.safe_dump(doc))
    suite = load_suite(path)
    first = run_suite(suite, progress=False, log=quiet, write=False)
    return suite, first.leaderboard


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_entry_is_reported_and_recomputed(finished, damage, caplog):
    suite, board = finished
    job = expand_jobs(suite, "cpu")[0]
    folder = ResultCache(suite.cache_root).path(job.key)
    name, hurt = DAMAGE[damage]
    hurt(folder / name)
    assert entry_problem(folder) not in (None, "absent")
    with caplog.at_level(logging.WARNING, logger="benchmark.runner.cache"):
        again = run_suite(suite, progress=False, log=quiet, write=False)
    assert again.executed == [job.label]
    pd.testing.assert_frame_equal(again.leaderboard, board, check_exact=True)
    warnings = [r.getMessage() for r in caplog.records if job.key in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0] and "recomputing" in warnings[0]
    assert entry_problem(folder) is None  # replaced by an intact entry


def test_entries_written_before_checksums_are_still_served(finished):
    suite, board = finished
    job = expand_jobs(suite, "cpu")[0]
    result = ResultCache(suite.cache_root).path(job.key) / RESULT_FILE
    payload = json.loads(result.read_text())
    del payload["checksums"], payload["schema_version"]
    result.write_text(json.dumps(payload))
    again = run_suite(suite, progress=False, log=quiet, write=False)
    assert again.executed == [] and again.reused == [job.label]
    pd.testing.assert_frame_equal(again.leaderboard, board, check_exact=True)
