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


def test_entries_without_checksums_are_recomputed(finished):
    """An entry that carries no checksums cannot be verified: an edit would be served."""
    suite, board = finished
    job = expand_jobs(suite, "cpu")[0]
    result = ResultCache(suite.cache_root).path(job.key) / RESULT_FILE
    payload = json.loads(result.read_text())
    del payload["checksums"], payload["schema_version"]
    payload["metrics"] = {k: 50.0 for k in payload["metrics"]}  # edited, unverifiable
    result.write_text(json.dumps(payload))
    assert "no checksums" in str(entry_problem(result.parent))
    again = run_suite(suite, progress=False, log=quiet, write=False)
    assert again.executed == [job.label]
    pd.testing.assert_frame_equal(again.leaderboard, board, check_exact=True)


def test_an_entry_copied_under_another_key_is_recomputed(finished, caplog):
    """A whole, intact entry of one job copied into another job's folder is not that job's
    result (its stored key says whose it is)."""
    import shutil

    suite, board = finished
    job = expand_jobs(suite, "cpu")[0]
    cache = ResultCache(suite.cache_root)
    donor = cache.path("0" * 16)
    shutil.copytree(cache.path(job.key), donor)
    payload = json.loads((donor / RESULT_FILE).read_text())
    payload["metrics"] = {k: 11.7 for k in payload["metrics"]}
    payload["key"] = donor.name  # a genuine entry of another job, checksums and all
    from benchmark.runner.cache import _digest

    payload["checksums"][RESULT_FILE] = _digest(payload)
    (donor / RESULT_FILE).write_text(json.dumps(payload))
    assert entry_problem(donor) is None
    shutil.rmtree(cache.path(job.key))
    shutil.copytree(donor, cache.path(job.key))
    assert "copied entry" in str(entry_problem(cache.path(job.key)))
    again = run_suite(suite, progress=False, log=quiet, write=False)
    assert again.executed == [job.label]
    pd.testing.assert_frame_equal(again.leaderboard, board, check_exact=True)


# ----- the checkpoint cache (trained models) -------------------------------------------------


def _tiny_training_job():
    from models.training import TrainingJob

    params = {"epochs": 1, "batch_size": 256, "optimizer": "adam", "augment": "none"}
    return TrainingJob("small_cnn", {"width": 0.25}, "standard", params, {"dataset": "digits"}, 0)


def _train(folder):
    import torch

    from benchmark.datasets import load_dataset
    from models.training import train_or_load

    train = load_dataset("digits", "train")
    return train_or_load(_tiny_training_job(), train, None, folder, torch.device("cpu"), False)


@pytest.fixture(scope="module")
def trained_entry(tmp_path_factory):
    """A pristine checkpoint cache folder holding one trained model, and its SHA-256."""
    from benchmark.utils import file_sha256

    folder = tmp_path_factory.mktemp("checkpoints")
    _, checkpoint = _train(folder)
    return folder, checkpoint.name, file_sha256(checkpoint)


def _meta(path):
    return path.with_suffix(".json")


CHECKPOINT_DAMAGE = {
    "record empty": lambda ck: _meta(ck).write_text(""),
    "record truncated": lambda ck: _truncate(_meta(ck)),
    "record wrong type": lambda ck: _meta(ck).write_text("[1, 2]"),
    "record without hash": lambda ck: _meta(ck).write_text('{"key": "x"}'),
    "record deleted": lambda ck: _meta(ck).unlink(),
    "checkpoint empty": lambda ck: ck.write_bytes(b""),
    "checkpoint truncated": _truncate,
    "checkpoint bit flipped": _flip,
    "checkpoint deleted": lambda ck: ck.unlink(),
}


@pytest.mark.parametrize("damage", list(CHECKPOINT_DAMAGE))
def test_damaged_checkpoint_entry_is_reported_and_retrained(
    trained_entry, tmp_path, damage, caplog
):
    import shutil

    from benchmark.utils import file_sha256

    pristine, name, sha = trained_entry
    folder = tmp_path / "checkpoints"
    shutil.copytree(pristine, folder)
    CHECKPOINT_DAMAGE[damage](folder / name)
    with caplog.at_level(logging.WARNING, logger="models.training.engine"):
        _, checkpoint = _train(folder)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "\n" not in warnings[0], warnings
    assert name in warnings[0] and "retraining" in warnings[0]
    # retrained (identically: training is deterministic) and recorded again
    assert checkpoint.name == name and file_sha256(checkpoint) == sha
    assert json.loads(_meta(checkpoint).read_text())["sha256"] == sha
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="models.training.engine"):
        _train(folder)  # now served from the cache, silently
    assert caplog.records == []


@pytest.mark.parametrize("content", [b"", b"not a torch file", b"PK\x03\x04 truncated zip"])
def test_unreadable_resume_state_restarts_training_in_one_line(
    trained_entry, tmp_path, content, caplog
):
    from benchmark.utils import file_sha256

    _, name, sha = trained_entry
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    state = folder / name.replace(".pt", ".state.pt")  # what an interrupted training left
    state.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="models.training.engine"):
        _, checkpoint = _train(folder)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "\n" not in warnings[0], warnings
    assert "resume state" in warnings[0] and "training from the start" in warnings[0]
    assert file_sha256(checkpoint) == sha and not state.exists()
