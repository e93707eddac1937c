"""Written files follow the umask (not mkstemp's 0600) and are fsynced around their rename;
saving -- or training -- the same weights twice gives the same bytes (the checkpoint SHA-256
is part of cache keys). Run outputs: a plot phase killed half-way is redone, two suites cannot
clobber one output_dir, and a full disk or read-only folder is one line, not a traceback."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
from pathlib import Path

import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from benchmark.cli import main
from benchmark.errors import BenchmarkError
from benchmark.runner import run_suite
from benchmark.suite import load_suite
from benchmark.utils import file_sha256, write_text_atomic
from models.checkpoints import save_checkpoint
from tests.conftest import tiny_suite


def test_atomic_writes_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
        os.umask(0o077)
        write_text_atomic(tmp_path / "b.txt", "x")
        assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600
    finally:
        os.umask(old)


def test_saving_identical_weights_gives_identical_files(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    first = save_checkpoint(model, tmp_path / "one.pt")
    second = save_checkpoint(model, tmp_path / "two.pt")
    again = save_checkpoint(model, tmp_path / "one.pt")
    assert first == second == again == file_sha256(tmp_path / "two.pt")


def test_atomic_writes_fsync_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    import benchmark.utils

    events: list[tuple[str, int]] = []  # (what, inode)
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.fstat(fd).st_ino))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.stat(src).st_ino))
        return real_replace(src, dst)

    monkeypatch.setattr(benchmark.utils.os, "fsync", fsync)
    monkeypatch.setattr(benchmark.utils.os, "replace", replace)
    write_text_atomic(tmp_path / "out.txt", "x")
    written, folder = (tmp_path / "out.txt").stat().st_ino, tmp_path.stat().st_ino
    rename = events.index(("replace", written))
    assert ("fsync", written) in events[:rename]  # contents on disk before they are visible
    assert ("fsync", folder) in events[rename + 1 :]  # and the rename itself after


def _tiny_training_job():
    from models.training import TrainingJob

    params = {"epochs": 1, "batch_size": 256, "optimizer": "adam", "augment": "none"}
    return TrainingJob("small_cnn", {"width": 0.25}, "standard", params, {"dataset": "digits"}, 0)


def test_training_the_same_model_twice_gives_byte_identical_checkpoints(tmp_path):
    from benchmark.datasets import load_dataset
    from models.training import train_or_load

    train = load_dataset("digits", "train")
    paths = [
        train_or_load(_tiny_training_job(), train, None, tmp_path / r, torch.device("cpu"), False)[
            1
        ]
        for r in ("one", "two")
    ]
    assert paths[0].name == paths[1].name  # same cache key in both roots
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].with_suffix(".json").read_text() == paths[1].with_suffix(".json").read_text()


# ----- run outputs: plots redone after an interruption, no clobbering, write errors -----------


def _quick_suite(tmp_path: Path, **overrides) -> dict:
    """One model, one clean evaluation without bootstrap: a run of about a second."""
    doc = tiny_suite(tmp_path, **overrides)
    doc["models"] = doc["models"][:1]
    doc["evaluations"] = [
        {"type": "clean", "params": {"bootstrap": 0}},
        {"type": "clean", "name": "clean10", "params": {"bootstrap": 0, "n_bins": 10}},
    ]
    return doc


def _run(path: Path):
    return run_suite(load_suite(path), progress=False, log=lambda _m: None)


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def test_a_plot_phase_killed_half_way_is_redone_on_the_next_run(tmp_path, write_suite, monkeypatch):
    reference = _quick_suite(tmp_path / "ref", output_dir=str(tmp_path / "ref" / "run"))
    _run(write_suite(reference, "ref.yaml"))
    expected = _files(tmp_path / "ref" / "run" / "plots")
    assert len(expected) > 3

    path = write_suite(_quick_suite(tmp_path))
    real_savefig, saved = Figure.savefig, []

    def killed_after_two(self, *args, **kwargs):
        if len(saved) == 2:
            raise KeyboardInterrupt  # the run is killed while it draws the figures
        saved.append(args[0])
        return real_savefig(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        _run(path)
    monkeypatch.setattr(Figure, "savefig", real_savefig)
    plots = tmp_path / "run" / "plots"
    assert plots.is_dir() and _files(plots) < expected  # every job cached, figures missing

    again = _run(path)
    assert again.executed == []
    assert _files(plots) == expected
    assert not [p for p in _run(path).written if "plots" in p.parts]  # complete: kept
    (plots / sorted(expected - {".complete.json"})[0]).unlink()  # a figure deleted by hand
    _run(path)
    assert _files(plots) == expected


def test_two_suites_cannot_clobber_one_output_dir(tmp_path, write_suite):
    first = _run(write_suite(_quick_suite(tmp_path, name="first"), "first.yaml"))
    manifest = tmp_path / "run" / "manifest.json"
    before = manifest.read_text(), (tmp_path / "run" / "checks.json").read_text()
    other = write_suite(_quick_suite(tmp_path, name="second"), "second.yaml")
    with pytest.raises(BenchmarkError) as info:
        _run(other)
    message = str(info.value)
    assert "\n" not in message and "suite 'first'" in message and "suite 'second'" in message
    assert "output_dir" in message and str(tmp_path / "run" / "cache") in message
    assert (manifest.read_text(), (tmp_path / "run" / "checks.json").read_text()) == before
    # with its own output_dir (and the shared cache, as the message says) it runs, reusing
    own = _quick_suite(
        tmp_path,
        name="second",
        output_dir=str(tmp_path / "second"),
        cache_dir=str(tmp_path / "run" / "cache"),
    )
    second = _run(write_suite(own, "second.yaml"))
    assert second.executed == [] and len(second.reused) == len(first.executed)
    assert json.loads(manifest.read_text())["suite"]["name"] == "first"
    assert _run(write_suite(_quick_suite(tmp_path, name="first"), "first.yaml")).executed == []


def _cli_error(path: Path, capsys) -> str:
    """Run ``python -m benchmark run`` in this process; return its only stderr line."""
    code = main(["run", str(path), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def _full_under(folder: Path, monkeypatch) -> None:
    """Make every file write below ``folder`` fail as on a full disk."""

    def refuse(path) -> None:
        if Path(path).resolve().is_relative_to(folder.resolve()):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    for name in ("write_text", "write_bytes"):
        real = getattr(Path, name)

        def guarded(self, *args, _real=real, **kwargs):
            refuse(self)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(Path, name, guarded)
    real_to_parquet = pd.DataFrame.to_parquet

    def to_parquet(self, path, *args, **kwargs):
        refuse(path)
        return real_to_parquet(self, path, *args, **kwargs)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)
    real_savefig = Figure.savefig

    def savefig(self, fname, *args, **kwargs):
        if isinstance(fname, str | os.PathLike):
            refuse(fname)
        return real_savefig(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)


TRAINED = {
    "name": "cnn",
    "model": "small_cnn",
    "params": {"width": 0.25},
    "training": {
        "recipe": "standard",
        "params": {"epochs": 1, "batch_size": 256, "optimizer": "adam", "augment": "none"},
    },
}


@pytest.mark.parametrize("where", ["leaderboard", "run", "cache", "checkpoints"])
def test_a_full_disk_is_one_line_through_the_cli(tmp_path, write_suite, monkeypatch, capsys, where):
    doc = _quick_suite(tmp_path)
    if where == "checkpoints":
        doc["models"] = [TRAINED]
    path = write_suite(doc)
    if where in ("leaderboard", "run"):  # after all jobs ran: only output files to write
        assert main(["run", str(path), "--quiet"]) == 0
        capsys.readouterr()
    folder = {
        "leaderboard": tmp_path / "leaderboard",
        "run": tmp_path / "run",  # figures (redrawn: their record is gone), checks, manifest
        "cache": tmp_path / "run" / "cache" / "results",
        "checkpoints": tmp_path / "run" / "cache" / "checkpoints",  # while training
    }[where]
    if where == "run":
        (tmp_path / "run" / "plots" / ".complete.json").unlink()
    _full_under(folder, monkeypatch)
    line = _cli_error(path, capsys)
    assert line.startswith(f"error: {folder}") and "No space left on device" in line, line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders anyway")
@pytest.mark.parametrize("where", ["leaderboard", "run", "cache"])
def test_a_read_only_folder_is_one_line_through_the_cli(tmp_path, write_suite, capsys, where):
    path = write_suite(_quick_suite(tmp_path))
    assert main(["run", str(path), "--quiet"]) == 0
    capsys.readouterr()
    folder = {
        "leaderboard": tmp_path / "leaderboard",
        "run": tmp_path / "run",
        "cache": tmp_path / "run" / "cache" / "results",
    }[where]
    if where == "cache":
        for entry in folder.iterdir():  # the cached results are gone: they must be rewritten
            shutil.rmtree(entry)
    else:
        (tmp_path / "run" / "plots" / ".complete.json").unlink()
        for sub in [p for p in folder.rglob("*") if p.is_dir()]:
            sub.chmod(0o555)
    folder.chmod(0o555)
    try:
        line = _cli_error(path, capsys)
    finally:
        for sub in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
            sub.chmod(0o755)
    assert line.startswith(f"error: {folder}") and "Permission denied" in line, line


def test_a_second_run_of_one_output_dir_is_refused_while_the_first_writes(tmp_path, write_suite):
    """Two runs writing one output folder would interleave manifests and plots: the second
    is refused in one line while the first holds the folder's lock."""
    from filelock import FileLock

    from benchmark.errors import BenchmarkError
    from benchmark.runner import run_suite
    from benchmark.suite import load_suite
    from tests.conftest import tiny_suite

    suite = load_suite(write_suite(tiny_suite(tmp_path, evaluations=[{"type": "clean"}])))
    (tmp_path / "run").mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(tmp_path / "run" / ".run.lock"))
    with lock, pytest.raises(BenchmarkError, match="another run is writing it"):
        run_suite(suite, progress=False, log=lambda _m: None)
    run_suite(suite, progress=False, log=lambda _m: None)  # free again
