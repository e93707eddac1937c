"""``python -m benchmark train``: trains a suite's models without evaluating, reuses the cache,
and reports bad ``--model`` names in one line."""

from __future__ import annotations

from benchmark.cli import main
from tests.conftest import tiny_suite

TRAINING = {
    "recipe": "label_smoothing",
    "params": {"epochs": 1, "batch_size": 128, "optimizer": "adam", "lr": 0.01, "augment": "none"},
}


def test_train_command_trains_selected_models_only(tmp_path, write_suite, capsys):
    suite = tiny_suite(tmp_path)
    suite["models"][0] = {**suite["models"][0], "random_init": False, "training": TRAINING}
    suite["models"].append(
        {"name": "cnn2", "model": "small_cnn", "params": {"width": 0.5}, "training": TRAINING}
    )
    path = write_suite(suite)
    assert main(["train", str(path), "--model", "cnn", "--no-progress"]) == 0
    captured = capsys.readouterr()
    checkpoints = captured.out.split()
    assert len(checkpoints) == 1 and checkpoints[0].endswith(".pt")
    assert "model cnn: trained in" in captured.err
    assert sorted(p.name for p in (tmp_path / "run/cache/checkpoints").glob("*.pt")) == [
        checkpoints[0].rsplit("/", 1)[-1]
    ]
    assert not (tmp_path / "run/cache/results").exists(), "train must not evaluate"

    assert main(["train", str(path), "--no-progress"]) == 0  # all trainable models
    captured = capsys.readouterr()
    assert "model cnn: cached" in captured.err and "model cnn2: trained in" in captured.err
    assert len(captured.out.split()) == 2


def test_train_command_rejects_unknown_or_untrained_models(tmp_path, write_suite, capsys):
    path = write_suite(tiny_suite(tmp_path))
    assert main(["train", str(path), "--model", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --model: no model named 'nope' in suite 'tiny' (models: cnn, rn20)"]
    assert main(["train", str(path), "--model", "rn20"]) == 2
    assert "model 'rn20' has no 'training' section" in capsys.readouterr().err
