"""An evaluation's ``models`` list: it runs on those rows only (no job for the others, whose
columns stay empty), and a name that is no row is refused at load."""

from __future__ import annotations

import pytest

from benchmark.errors import BenchmarkError
from benchmark.runner import expand_jobs, run_suite
from benchmark.suite import load_suite
from tests.conftest import tiny_suite


def test_an_evaluation_runs_only_on_its_rows(tmp_path, write_suite):
    content = tiny_suite(tmp_path)
    content["evaluations"][1]["models"] = ["cnn"]
    suite = load_suite(write_suite(content))
    jobs = [(j.row_name, j.evaluation_name) for j in expand_jobs(suite, "cpu")]
    assert sorted(jobs) == [("cnn", "clean"), ("cnn", "clean10"), ("rn20", "clean")]
    board = run_suite(suite, progress=False, log=lambda _m: None).leaderboard.set_index("model")
    assert board["clean10_acc_pct"].notna().tolist() == [True, False]
    assert board["clean_acc_pct"].notna().all()


def test_an_unknown_row_is_refused(tmp_path, write_suite):
    content = tiny_suite(tmp_path)
    content["evaluations"][1]["models"] = ["cnn", "nope"]
    with pytest.raises(BenchmarkError, match=r"evaluations\[1\]\.models: no row named 'nope'"):
        load_suite(write_suite(content))
