"""Executors: local, process and Ray runs give the same leaderboard; one training per model;
executor settings from the suite and the command line."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from benchmark.cli import build_parser, executor_overrides, main
from benchmark.runner import run_suite
from benchmark.runner.executors import EXECUTORS, ProcessExecutor
from benchmark.suite import load_suite
from benchmark.suite.schema import ExecutorSpec
from tests.conftest import REPO, tiny_suite

FAST_TRAINING = {
    "recipe": "standard",
    "params": {
        "epochs": 1,
        "batch_size": 128,
        "optimizer": "adam",
        "lr": 0.01,
        "weight_decay": 0.0,
        "schedule": "constant",
        "warmup_epochs": 0,
        "augment": "none",
    },
}


def quiet(_message: str) -> None:
    pass


def reduced_quickstart(folder: Path) -> dict[str, Any]:
    """The quickstart's models, shrunk to run in seconds: one-epoch training, 24 test digits,
    short attacks; AutoAttack is left out (minutes on a busy 2-core CPU; see test_sharding)."""
    suite = yaml.safe_load((REPO / "suites" / "quickstart.yaml").read_text())
    suite["dataset"]["n_examples"] = 24
    suite["batch_size"] = 64
    for model in suite["models"]:
        if "training" in model:
            model["training"] = copy.deepcopy(FAST_TRAINING)
        if model["model"] == "resnet20":
            model["params"] = {"width": 0.25}
    suite["evaluations"] = [
        {"type": "clean", "params": {"bootstrap": 20}},
        {"type": "fgsm", "params": {"norm": "Linf", "eps": 0.1}},
        {"type": "pgd", "params": {"norm": "Linf", "eps": 0.1, "steps": 3}},
    ]
    suite["output_dir"] = str(folder / "run")
    suite["leaderboard_dir"] = str(folder / "leaderboard")
    return suite


def run_with(folder: Path, suite: dict[str, Any], executor: ExecutorSpec) -> pd.DataFrame:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    loaded = load_suite(path)  # with the automatic sanity evaluation
    summary = run_suite(loaded, progress=False, log=quiet, executor=executor)
    assert len(summary.executed) == len(summary.leaderboard) * len(loaded.evaluations)
    return summary.leaderboard


def test_ray_run_with_two_workers_equals_the_local_run(tmp_path):
    pytest.importorskip("ray")
    local = run_with(tmp_path / "a", reduced_quickstart(tmp_path / "a"), ExecutorSpec())
    ray_board = run_with(
        tmp_path / "b", reduced_quickstart(tmp_path / "b"), ExecutorSpec(kind="ray", workers=2)
    )
    pd.testing.assert_frame_equal(local, ray_board, check_exact=True)
    assert local["model"].tolist() == [
        "small_cnn",
        "small_cnn_w0.125",
        "small_cnn_w0.125+temperature",
        "resnet20_w0.5",
        "small_cnn_untrained",
    ]


@pytest.mark.slow
def test_ray_quickstart_equals_the_local_quickstart(tmp_path):
    """The full shipped quickstart (~2 min each way on 2 cores)."""
    pytest.importorskip("ray")
    boards = []
    for name, spec in (("local", ExecutorSpec()), ("ray", ExecutorSpec(kind="ray", workers=2))):
        suite = yaml.safe_load((REPO / "suites" / "quickstart.yaml").read_text())
        suite["output_dir"] = str(tmp_path / name / "run")
        suite["leaderboard_dir"] = str(tmp_path / name / "leaderboard")
        boards.append(run_with(tmp_path / name, suite, spec))
    pd.testing.assert_frame_equal(boards[0], boards[1], check_exact=True)


COUNTING_RECIPE = """
import os
import time

from benchmark.registry import StrictParams
from models.training import register_recipe


class CountingParams(StrictParams):
    log: str
    sleep: float = 2.0


@register_recipe("counting", "test: seeded weights, logs each training", CountingParams)
def counting(model, train, val, params, ctx):
    with open(params.log, "a") as handle:
        handle.write(f"{os.getpid()}\\n")
    time.sleep(params.sleep)  # long enough for the other worker to ask for the same model
    return {}
"""


def counting_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A suite whose one trained model logs every training it receives to ``trainings.log``."""
    (tmp_path / "counting_recipe.py").write_text(COUNTING_RECIPE)
    monkeypatch.syspath_prepend(str(tmp_path))
    suite = tiny_suite(tmp_path, plugins=["counting_recipe"])
    training = {"recipe": "counting", "params": {"log": str(tmp_path / "trainings.log")}}
    suite["models"] = [
        {"name": "cnn", "model": "small_cnn", "params": {"width": 0.25}, "training": training}
    ]
    suite["evaluations"] = [
        {"type": "clean", "params": {"bootstrap": 0}},
        {"type": "clean", "name": "clean10", "params": {"n_bins": 10, "bootstrap": 0}},
    ]
    return suite


def test_process_pool_trains_each_model_once_and_matches_local(tmp_path, monkeypatch):
    """Both workers start with a job of the same untrained model: the checkpoint lock lets one
    train while the other waits and loads; numbers equal the in-process run."""
    suite = counting_suite(tmp_path, monkeypatch)
    pooled = run_with(tmp_path / "b", suite, ExecutorSpec(kind="process", workers=2))
    trainings = (tmp_path / "trainings.log").read_text().split()
    assert len(trainings) == 1, f"trained {len(trainings)} times"
    local_suite = {**suite, "output_dir": str(tmp_path / "a/run")}
    local = run_with(tmp_path / "a", local_suite, ExecutorSpec())
    pd.testing.assert_frame_equal(local, pooled, check_exact=True)


def test_process_executor_gives_workers_disjoint_threads():
    spec = ExecutorSpec(kind="process", workers=2)
    executor = ProcessExecutor(spec, load_suite_stub(), _cpu(), progress=False)
    from benchmark.runner.executors import cpu_count

    assert executor.workers * executor.threads_per_worker() <= max(cpu_count(), 2)


def _cpu():
    import torch

    return torch.device("cpu")


def load_suite_stub():
    from benchmark.suite.schema import Suite

    return Suite.model_validate(tiny_suite(Path("/nonexistent")))


def test_executors_are_a_registry_and_the_cli_overrides_the_suite(tmp_path, write_suite, capsys):
    assert {"local", "process", "ray"} <= set(EXECUTORS.keys())
    parser = build_parser()
    args = parser.parse_args(
        ["run", "s.yaml", "--ray-address", "ray://head:10001", "--workers", "3"]
    )
    spec = executor_overrides(ExecutorSpec(kind="process", workers=8), args)
    assert (spec.kind, spec.workers, spec.ray_address) == ("ray", 3, "ray://head:10001")

    path = write_suite(tiny_suite(tmp_path, executor={"kind": "spark"}))
    assert main(["validate", str(path)]) == 2
    assert "executor.kind: unknown executor 'spark' (known: local, process, ray)" in (
        capsys.readouterr().err
    )
    path = write_suite(tiny_suite(tmp_path, executor={"kind": "ray", "worker": 2}), "typo.yaml")
    assert main(["validate", str(path)]) == 2
    assert "executor.worker" in capsys.readouterr().err
    ok = write_suite(tiny_suite(tmp_path), "ok.yaml")
    assert main(["run", str(ok), "--quiet", "--executor", "mpi"]) == 2
    assert "error: executor: unknown executor 'mpi'" in capsys.readouterr().err
    assert main(["run", str(ok), "--quiet", "--workers", "0"]) == 2
    assert "--workers: Input should be greater than or equal to 1" in capsys.readouterr().err
    # the command line is held to the file's bounds: 100000 workers would hang the driver
    assert main(["run", str(ok), "--quiet", "--workers", "100000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--workers: Input should be less than or equal to 1024" in err[0]


def test_an_unreachable_ray_address_fails_in_bounded_time(
    tmp_path, write_suite, monkeypatch, capsys
):
    """``ray.init`` on an unreachable address retries for minutes; the run probes the address
    first and gives up after ``$BENCHMARK_RAY_CONNECT_TIMEOUT`` seconds with one line. A
    listening socket that is closed at once stands in for a dead head node (no network)."""
    import socket
    import time

    pytest.importorskip("ray")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
    # nothing listens on the port now: connecting is refused at once
    monkeypatch.setenv("BENCHMARK_RAY_CONNECT_TIMEOUT", "2")
    path = write_suite(tiny_suite(tmp_path, sanity=False))
    started = time.perf_counter()
    code = main(["run", str(path), "--quiet", "--ray-address", f"ray://127.0.0.1:{port}"])
    assert code == 2 and time.perf_counter() - started < 30
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot reach ray://127.0.0.1:{port}" in err[0], err
