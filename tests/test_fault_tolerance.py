"""Fault tolerance: a run killed with SIGKILL leaves only complete results and resumes with the
missing jobs; two concurrent runs on overlapping suites share one cache without damage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from benchmark.leaderboard import read_leaderboard
from benchmark.runner import run_suite
from benchmark.runner.cache import RECORDS_FILE, RESULT_FILE
from benchmark.suite import load_suite
from tests.conftest import REPO, tiny_suite
from tests.test_executors import COUNTING_RECIPE


def slow_suite(folder: Path) -> dict[str, Any]:
    """Six jobs of about a second each: long enough to be killed in the middle."""
    suite = tiny_suite(folder)
    suite["dataset"]["n_examples"] = 40
    suite["models"][1] = {
        "name": "other",
        "model": "small_cnn",
        "params": {"width": 0.5},
        "random_init": True,
    }
    suite["evaluations"] = [
        {"type": "clean", "params": {"bootstrap": 0}},
        {"type": "pgd", "params": {"eps": 0.1, "steps": 10}},
        {"type": "pgd", "name": "pgd_l2", "params": {"norm": "L2", "eps": 1.0, "steps": 10}},
    ]
    suite["sanity"] = False  # exactly the six jobs counted below
    suite["fallbacks"] = False
    return suite


def cli(suite_path: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "benchmark", "run", str(suite_path), "--no-progress", *extra],
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(results: Path) -> list[Path]:
    if not results.is_dir():
        return []
    # hidden ".tmp-*" folders are results still being written (a kill may leave one with its
    # result.json but never renamed into place): the cache never reads them, so neither here
    return [
        p for p in results.iterdir() if not p.name.startswith(".") and (p / RESULT_FILE).is_file()
    ]


def assert_cache_intact(results: Path) -> None:
    """Every visible result directory is complete; only hidden temporaries may be partial."""
    for entry in results.iterdir():
        if entry.name.startswith("."):
            continue
        assert (entry / RESULT_FILE).is_file() and (entry / RECORDS_FILE).is_file(), entry
        pd.read_parquet(entry / RECORDS_FILE)


def test_sigkill_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path):
    suite = slow_suite(tmp_path / "killed")
    path = tmp_path / "killed.yaml"
    path.write_text(yaml.safe_dump(suite))
    results = tmp_path / "killed" / "run" / "cache" / "results"

    proc = cli(path)
    deadline = time.monotonic() + 240
    while len(finished(results)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    done_at_kill = len(finished(results))
    assert 2 <= done_at_kill < 6, f"kill came too late ({done_at_kill} of 6 jobs done)"
    assert_cache_intact(results)

    rerun = cli(path)
    _out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"6 job(s), {6 - done_at_kill} task(s) to run" in err
    assert_cache_intact(results)
    resumed = read_leaderboard(tmp_path / "killed" / "leaderboard" / "tiny.csv")

    clean = slow_suite(tmp_path / "clean")
    clean_path = tmp_path / "clean.yaml"
    clean_path.write_text(yaml.safe_dump(clean))
    uninterrupted = run_suite(load_suite(clean_path), progress=False, log=lambda _m: None)
    pd.testing.assert_frame_equal(
        resumed, read_leaderboard(tmp_path / "clean" / "leaderboard" / "tiny.csv")
    )
    assert resumed["pgd_linf_0.1_robust_acc_pct"].tolist() == (
        uninterrupted.leaderboard["pgd_linf_0.1_robust_acc_pct"].tolist()
    )


def test_two_concurrent_runs_on_overlapping_suites_share_the_cache(tmp_path):
    """Suites A = {cnn, shared} and B = {shared, other} run at the same time on one cache_dir;
    ``shared`` is trained (by a recipe that logs each training) exactly once."""
    (tmp_path / "counting_recipe.py").write_text(COUNTING_RECIPE)
    cache = str(tmp_path / "shared_cache")
    training = {"recipe": "counting", "params": {"log": str(tmp_path / "trainings.log")}}
    shared = {
        "name": "shared",
        "model": "small_cnn",
        "params": {"width": 0.5},
        "training": training,
    }
    paths = []
    for name in ("a", "b"):
        suite = slow_suite(tmp_path / name)
        suite.update(name=name, cache_dir=cache, plugins=["counting_recipe"])
        cnn, other = suite["models"]
        suite["models"] = [cnn, shared] if name == "a" else [shared, other]
        paths.append(tmp_path / f"{name}.yaml")
        paths[-1].write_text(yaml.safe_dump(suite))

    env = {"PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"}
    procs = [cli(p, env=env) for p in paths]
    for proc in procs:
        _, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, err
    assert len((tmp_path / "trainings.log").read_text().split()) == 1
    assert_cache_intact(Path(cache) / "results")
    assert len(finished(Path(cache) / "results")) == 9  # 3 models x 3 evaluations, no dupes

    a = read_leaderboard(tmp_path / "a" / "leaderboard" / "a.csv")
    b = read_leaderboard(tmp_path / "b" / "leaderboard" / "b.csv")
    assert a["model"].tolist() == ["cnn", "shared"] and b["model"].tolist() == ["shared", "other"]
    metrics = [c for c in a.columns if c.endswith("acc_pct")]
    assert not a[metrics].isna().any().any() and not b[metrics].isna().any().any()
    pd.testing.assert_series_equal(
        a.set_index("model").loc["shared"], b.set_index("model").loc["shared"]
    )
