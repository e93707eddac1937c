"""Shared fixtures: suite-file writer and a tiny CIFAR-10-format dataset made on the fly."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _fingerprint_cache(tmp_path_factory):
    """Sidecar SHA-256 records of the data files tests write go to a temporary folder, not to
    the user's ``~/.cache`` (benchmark.fingerprints)."""
    from benchmark.fingerprints import FINGERPRINT_CACHE_ENV

    previous = os.environ.get(FINGERPRINT_CACHE_ENV)
    os.environ[FINGERPRINT_CACHE_ENV] = str(tmp_path_factory.mktemp("fingerprints"))
    yield
    if previous is None:
        os.environ.pop(FINGERPRINT_CACHE_ENV, None)
    else:
        os.environ[FINGERPRINT_CACHE_ENV] = previous


def tiny_suite(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """A fast suite on 60 digits with two untrained narrow models and two evaluations."""
    suite: dict[str, Any] = {
        "name": "tiny",
        "seed": 3,
        "device": "cpu",
        "batch_size": 32,
        "dataset": {"name": "digits", "split": "test", "n_examples": 60},
        "models": [
            {"name": "cnn", "model": "small_cnn", "params": {"width": 0.25}, "random_init": True},
            {"name": "rn20", "model": "resnet20", "params": {"width": 0.25}, "random_init": True},
        ],
        "evaluations": [
            {"type": "clean"},
            {"type": "clean", "name": "clean10", "params": {"n_bins": 10}},
        ],
        "output_dir": str(tmp_path / "run"),
        "leaderboard_dir": str(tmp_path / "leaderboard"),
    }
    suite.update(overrides)
    return suite


def run_shipped_quickstart(folder: Path) -> None:
    """Run ``suites/quickstart.yaml`` as shipped, its run and leaderboard under ``folder``
    (``folder/run``, ``folder/leaderboard``)."""
    from benchmark.runner import run_suite
    from benchmark.suite import load_suite

    suite = yaml.safe_load((REPO / "suites" / "quickstart.yaml").read_text())
    suite["output_dir"] = str(folder / "run")
    suite["leaderboard_dir"] = str(folder / "leaderboard")
    path = folder / "quickstart.yaml"
    path.write_text(yaml.safe_dump(suite))
    run_suite(load_suite(path), progress=False, log=lambda _m: None)


@pytest.fixture
def write_suite(tmp_path: Path):
    """Write a suite mapping (or raw text) to a YAML file and return its path."""

    def write(content: dict[str, Any] | str, name: str = "suite.yaml") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
        return path

    return write


def write_cifar_batches(folder: Path, per_batch: int = 20, seed: int = 0) -> dict[str, Any]:
    """Write the official cifar-10-batches-py layout (python pickles with bytes keys)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=per_batch)]
        with open(folder / name, "wb") as handle:
            pickle.dump(
                {b"batch_label": name.encode(), b"data": data, b"labels": labels},
                handle,
                protocol=2,
            )
        written[name] = (data, labels)
    return written


@pytest.fixture
def cifar_root(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    root = tmp_path / "cifar"
    batches = write_cifar_batches(root / "cifar-10-batches-py")
    return root, batches


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A small CNN trained for 6 epochs on digits (~2 s) and the 360 test digits."""
    import torch

    from benchmark.datasets import load_dataset
    from models.training import TrainingJob, train_or_load

    train, val, test = (load_dataset("digits", s) for s in ("train", "val", "test"))
    job = TrainingJob(
        "small_cnn",
        {"width": 0.5},
        "standard",
        {
            "epochs": 6,
            "batch_size": 64,
            "optimizer": "adam",
            "lr": 0.01,
            "weight_decay": 0.0,
            "schedule": "cosine",
            "warmup_epochs": 0,
            "augment": "crop",
            "crop_padding": 1,
        },
        {"dataset": "digits"},
        seed=0,
    )
    model, _ = train_or_load(
        job, train, val, tmp_path_factory.mktemp("ck"), torch.device("cpu"), progress=False
    )
    return model, test


# Property tests draw the same examples on every run (CI must not fail by chance on a case a
# previous run never saw); explicit @settings in a test still override other fields.
try:
    from hypothesis import settings as _hypothesis_settings

    _hypothesis_settings.register_profile("deterministic", derandomize=True, database=None)
    _hypothesis_settings.load_profile("deterministic")
except ImportError:  # hypothesis is a test extra; tests that need it import it themselves
    pass


def interrupt_in_second_epoch(monkeypatch: pytest.MonkeyPatch, train: Callable[[], object]) -> None:
    """Run ``train()`` with the training loop's end-of-epoch validation raising
    KeyboardInterrupt on its second call (as a kill in the second epoch would, after the
    first epoch's resume state was saved), then restore the validation."""
    from models.training import loop

    original, calls = loop.accuracy, {"n": 0}

    def interrupt(*args: Any, **kwargs: Any) -> float:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(loop, "accuracy", interrupt)
    with pytest.raises(KeyboardInterrupt):
        train()
    monkeypatch.setattr(loop, "accuracy", original)
