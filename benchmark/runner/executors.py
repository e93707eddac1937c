"""Executors: where a suite's tasks run -- in process, in a local process pool, or on Ray.

The runner hands an executor the tasks that are not cached yet and writes each finished
result to the cache as it arrives, so every executor feeds the same content-addressed cache
and leaderboard, and a run killed at any point resumes with only the missing tasks. The
executor only decides placement: every task is seeded from its job key (see
:mod:`benchmark.runner.worker`), so local, process and Ray runs give identical numbers.

New executors register with :func:`register_executor`; the suite's ``executor.kind`` or the
CLI's ``--executor`` picks one by key.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, ClassVar

import torch

from benchmark.errors import BenchmarkError
from benchmark.registry import Entry, Registry, StrictParams
from benchmark.runner import worker
from benchmark.runner.jobs import Task
from benchmark.runner.worker import JobWorker, WorkItem, WorkOutcome
from benchmark.suite.schema import ExecutorSpec, Suite


class Executor(ABC):
    """Runs tasks and yields their outcomes as they finish (in any order)."""

    default_workers: ClassVar[int | None] = None  # None: one per CPU core

    def __init__(
        self, spec: ExecutorSpec, suite: Suite, device: torch.device, progress: bool
    ) -> None:
        self.spec, self.suite, self.device, self.progress = spec, suite, device, progress
        self.workers = spec.workers or self.default_workers or cpu_count()

    @abstractmethod
    def run(self, tasks: Sequence[Task]) -> Iterator[WorkOutcome]:
        """Yield one outcome per task; stop early if the caller stops iterating."""

    def close(self) -> None:  # noqa: B027  (optional hook; local has nothing to release)
        """Release workers (called once, also after an error or Ctrl-C)."""

    def abort(self) -> None:
        """Stop at once after an error, Ctrl-C or SIGTERM: results still in flight would be
        discarded anyway (default: :meth:`close`)."""
        self.close()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def threads_per_worker(self) -> int:
        """Torch threads per worker so that workers x threads <= cores (no oversubscription)."""
        return max(1, cpu_count() // self.workers)

    def item(self, task: Task, device: str | None = None) -> WorkItem:
        return WorkItem(
            self.suite,
            task,
            device or self.device.type,
            self.threads_per_worker(),
            tuple(p for p in sys.path if p),
        )


EXECUTORS: Registry[type[Executor]] = Registry("executor")


def register_executor(key: str, description: str) -> Callable[[type[Executor]], type[Executor]]:
    def decorator(cls: type[Executor]) -> type[Executor]:
        EXECUTORS.add(Entry(key, cls, description, StrictParams))
        return cls

    return decorator


def cpu_count() -> int:
    """CPU cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@register_executor("local", "in this process, one job after another (default)")
class LocalExecutor(Executor):
    default_workers = 1

    def run(self, tasks: Sequence[Task]) -> Iterator[WorkOutcome]:
        runner = JobWorker(self.suite, self.device, self.progress)
        for task in tasks:
            started = time.perf_counter()
            result = runner.run(task)  # user errors propagate as BenchmarkError
            yield WorkOutcome(
                WorkItem(self.suite, task, self.device.type, None),
                result,
                None,
                time.perf_counter() - started,
                os.getpid(),
            )


def _die_with_parent() -> None:
    """Make this worker exit when the driver dies, even by SIGKILL (which runs no cleanup in
    the driver): otherwise each orphan keeps its model and data (hundreds of MB) and its
    semaphores. Linux: the kernel's parent-death signal; elsewhere (and as a backstop) a
    daemon thread that notices the parent change."""
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        with contextlib.suppress(OSError, AttributeError):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL))
        if os.getppid() != parent:  # died before the call took effect
            os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _assign_device(slots: Any, devices: list[str]) -> None:
    """Pool initializer: each worker takes a slot number and its device (GPU i % n), and
    arranges to die with the driver."""
    _die_with_parent()
    slot = slots.get()
    worker.PROCESS_DEVICE = devices[slot % len(devices)]


@register_executor("process", "a pool of worker processes on this machine, one job each")
class ProcessExecutor(Executor):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pool: ProcessPoolExecutor | None = None

    def run(self, tasks: Sequence[Task]) -> Iterator[WorkOutcome]:
        if not tasks:
            return
        context = multiprocessing.get_context("spawn")  # no forked torch/OpenMP state
        slots = context.Queue()
        for slot in range(self.workers):
            slots.put(slot)
        if self.device.type == "cuda":
            devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        else:
            devices = [self.device.type]
        self._pool = ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_assign_device, initargs=(slots, devices)
        )
        pending: set[Future[WorkOutcome]] = {
            self._pool.submit(worker.execute, self.item(task)) for task in tasks
        }
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield future.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def abort(self) -> None:
        """Terminate the workers instead of waiting for their running jobs (``shutdown``
        would wait for each to finish, minutes for a long attack)."""
        if self._pool is None:
            return
        # ProcessPoolExecutor has no public way to stop running tasks: reach its processes.
        processes = list(getattr(self._pool, "_processes", {}).values())
        for process in processes:
            with contextlib.suppress(Exception):
                process.terminate()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        self._pool = None


RAY_TIMEOUT_ENV = "BENCHMARK_RAY_CONNECT_TIMEOUT"
RAY_CONNECT_TIMEOUT_S = 60.0


def ray_connect_timeout() -> float:
    """Seconds to wait for a ``ray_address`` to answer (``$BENCHMARK_RAY_CONNECT_TIMEOUT``
    overrides): ``ray.init`` on an unreachable one retries for minutes, printing warnings."""
    value = os.environ.get(RAY_TIMEOUT_ENV, "")
    try:
        seconds = float(value) if value else RAY_CONNECT_TIMEOUT_S
    except ValueError:
        raise BenchmarkError(f"${RAY_TIMEOUT_ENV}: expected seconds, got {value!r}") from None
    if not seconds > 0:
        raise BenchmarkError(f"${RAY_TIMEOUT_ENV}: expected a positive number, got {value!r}")
    return seconds


def probe_address(address: str, seconds: float) -> str | None:
    """Why ``address`` (``ray://host:port`` or ``host:port``) cannot be reached by a TCP
    connection within ``seconds``, or None when it answers or names no host and port
    (``auto``, ``local``: Ray finds those itself). ``ray.init`` must run in the main thread
    (it installs signal handlers), so the wait is bounded here, before it is called."""
    target = address.split("://", 1)[-1].rsplit("/", 1)[0]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return None
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=seconds):
            return None
    except TimeoutError:
        return f"no answer within {seconds:g} s"
    except OSError as exc:
        return str(exc) or type(exc).__name__


@register_executor("ray", "each job a Ray task (local Ray, or a cluster via ray_address)")
class RayExecutor(Executor):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            import ray
        except ImportError:
            raise BenchmarkError(
                "executor 'ray': Ray is not installed; pip install -e '.[ray]'"
            ) from None
        self.ray = ray
        self._started = False

    def _connect(self) -> None:
        ray = self.ray
        if ray.is_initialized():
            return
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if self.spec.ray_address:
            options["address"] = self.spec.ray_address
        else:
            # Local Ray: as many CPU slots as workers; workers import this checkout.
            options["num_cpus"] = self.workers
            root = str(Path(__file__).resolve().parents[2])
            paths = [root, os.getcwd(), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
            os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if p))
        where = self.spec.ray_address or "a local Ray instance"
        if self.spec.ray_address:
            problem = probe_address(self.spec.ray_address, ray_connect_timeout())
            if problem is not None:
                raise BenchmarkError(
                    f"executor 'ray': cannot reach {where}: {problem} (${RAY_TIMEOUT_ENV} "
                    "sets the wait)"
                )
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BenchmarkError(f"executor 'ray': cannot start/connect {where}: {exc}") from None
        self._started = True

    def run(self, tasks: Sequence[Task]) -> Iterator[WorkOutcome]:
        if not tasks:
            return
        self._connect()
        ray = self.ray
        gpus = 1 if self.device.type == "cuda" else 0
        remote = ray.remote(worker.execute).options(
            num_cpus=1,
            num_gpus=gpus,
            max_retries=1,  # a worker lost to a node failure is retried once
        )
        pending = [remote.remote(self.item(task)) for task in tasks]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                yield ray.get(done[0])
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def threads_per_worker(self) -> int:
        if self.spec.ray_address:
            return 1  # one CPU requested per task on a cluster
        return super().threads_per_worker()

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()
            self._started = False


def make_executor(
    spec: ExecutorSpec, suite: Suite, device: torch.device, progress: bool
) -> Executor:
    if spec.kind not in EXECUTORS:
        known = ", ".join(EXECUTORS.keys())
        raise BenchmarkError(f"executor: unknown executor '{spec.kind}' (known: {known})")
    return EXECUTORS.get(spec.kind).obj(spec, suite, device, progress)
