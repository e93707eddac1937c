"""Signals: SIGTERM ends a run with one line and status 143, and no worker process of the
``process`` executor outlives its driver -- not after SIGTERM, not after SIGKILL -- nor any
of the run's POSIX semaphores (``/dev/shm/sem.*``)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.test_fault_tolerance import cli, finished, slow_suite

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


def children(pid: int) -> set[int]:
    """Direct child processes of ``pid`` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


SHM = Path("/dev/shm")


def mapped_semaphores(pids: set[int]) -> set[int]:
    """Inodes of the ``/dev/shm`` semaphores the processes ``pids`` have mapped (from
    /proc/<pid>/maps). Inodes, not names: glibc maps a semaphore under a temporary name before
    linking it as ``sem.<name>``, and the inodes single out this run's semaphores among those
    of any other program on the machine."""
    found = set()
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].startswith(str(SHM / "sem.")):
                found.add(int(fields[4]))
    return found


def linked_semaphores() -> dict[int, str]:
    """inode -> name of every semaphore file in /dev/shm now."""
    linked = {}
    for entry in SHM.glob("sem.*"):
        try:
            linked[entry.stat().st_ino] = entry.name
        except OSError:  # unlinked meanwhile
            continue
    return linked


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def start(tmp_path: Path, *extra: str):
    suite = slow_suite(tmp_path / "run")
    suite["evaluations"][1]["params"]["steps"] = 400  # jobs long enough to be in flight
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return cli(path, *extra), tmp_path / "run" / "run" / "cache" / "results"


def test_sigterm_exits_with_one_line(tmp_path):
    proc, results = start(tmp_path)
    assert wait_for(lambda: len(finished(results)) >= 1 or proc.poll() is not None, 240)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated: finished jobs are cached; rerun to resume" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_process_workers_do_not_outlive_the_driver(tmp_path, how):
    proc, results = start(tmp_path, "--executor", "process", "--workers", "2")
    # the pool's workers (spawned python processes; the resource tracker is one more child)
    assert wait_for(lambda: len(children(proc.pid)) >= 3 or proc.poll() is not None, 120)
    assert wait_for(lambda: len(finished(results)) >= 1 or proc.poll() is not None, 240)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    workers = children(proc.pid)
    # the run's named semaphores (the pool's queues and locks) that exist as files now
    semaphores = set()
    if SHM.is_dir():
        semaphores = mapped_semaphores({proc.pid, *workers}) & set(linked_semaphores())
    os.kill(proc.pid, how)
    _out, err = proc.communicate(timeout=60)
    if how == signal.SIGTERM:
        assert proc.returncode == 143 and "Traceback" not in err, err
    assert wait_for(lambda: not any(alive(p) for p in workers), 20), [
        p for p in workers if alive(p)
    ]
    if not SHM.is_dir():
        pytest.skip("no /dev/shm here: workers checked, semaphore files not")
    assert semaphores, "found no semaphore file of the run to check"

    def leaked() -> list[str]:
        return [name for inode, name in linked_semaphores().items() if inode in semaphores]

    assert wait_for(lambda: not leaked(), 20), f"left in {SHM}: {leaked()}"
