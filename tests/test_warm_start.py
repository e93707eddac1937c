"""``training.init``: fine-tuning starts from the named weights (a file or another row), the
starting weights are part of the checkpoint key, and a bad warm start is refused at load."""

from __future__ import annotations

import pytest
import torch

from benchmark.errors import BenchmarkError
from benchmark.runner.jobs import training_job
from benchmark.suite import load_suite
from models.training import TrainingJob, train_or_load
from models.training.engine import WarmStart
from tests.test_training import FAST

ONE_EPOCH = {**FAST, "epochs": 1}


def suite_dict(models, **extra):
    return {
        "name": "warm",
        "dataset": {"name": "digits"},
        "models": models,
        "evaluations": [{"type": "clean"}],
        **extra,
    }


def trained_row(name="base", **training):
    return {
        "name": name,
        "model": "small_cnn",
        "params": {"width": 0.5},
        "training": {"recipe": "standard", "params": ONE_EPOCH, **training},
    }


def test_row_warm_start_starts_from_the_parent_weights(tmp_path, write_suite):
    """Zero epochs of fine-tuning would be the parent itself; with a learning rate of ~0 the
    child stays within rounding of its parent, which a random start cannot."""
    tiny_lr = {**ONE_EPOCH, "lr": 1e-12}
    suite = load_suite(
        write_suite(
            suite_dict(
                [
                    trained_row(),
                    trained_row("child", init={"row": "base"}, params=tiny_lr),
                    trained_row("cold", params=tiny_lr),
                ]
            )
        )
    )
    jobs = {m.row_name: training_job(m, suite) for m in suite.models}
    assert jobs["child"].init is not None and jobs["child"].init.job == jobs["base"]
    assert jobs["child"].key() != jobs["cold"].key()
    from benchmark.datasets import load_dataset

    train, val = load_dataset("digits", "train"), load_dataset("digits", "val")
    cpu = torch.device("cpu")
    models = {n: train_or_load(j, train, val, tmp_path, cpu, False)[0] for n, j in jobs.items()}

    def distance(a, b):
        pa = torch.cat([p.flatten() for p in models[a].parameters()])
        pb = torch.cat([p.flatten() for p in models[b].parameters()])
        return (pa - pb).abs().max().item()

    assert distance("child", "base") < 1e-6
    assert distance("cold", "base") > 1e-2


def test_file_warm_start_is_keyed_by_the_file_hash(tmp_path, trained):
    model, _ = trained
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    state = model.state_dict()
    torch.save(state, first)
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in state.items()}, second)

    def job(path):
        from models.weights import cached_sha256

        init = WarmStart(cached_sha256(path), str(path))
        return TrainingJob(
            "small_cnn", {}, "standard", ONE_EPOCH, {"dataset": "digits"}, 0, None, None, init
        )

    plain = TrainingJob("small_cnn", {}, "standard", ONE_EPOCH, {"dataset": "digits"}, 0)
    assert len({job(first).key(), job(second).key(), plain.key()}) == 3
    assert job(first).key() == job(first).key()


def test_a_mismatched_warm_start_is_refused_in_one_line(tmp_path, trained):
    """A ResNet cannot start from a small CNN's weights: strict loading names the keys."""
    model, _ = trained
    path = tmp_path / "cnn.pt"
    torch.save(model.state_dict(), path)
    from benchmark.datasets import load_dataset
    from models.weights import cached_sha256

    job = TrainingJob(
        "resnet20",
        {"width": 0.25},
        "standard",
        ONE_EPOCH,
        {"dataset": "digits"},
        0,
        init=WarmStart(cached_sha256(path), str(path)),
    )
    train = load_dataset("digits", "train")
    with pytest.raises(BenchmarkError, match=r"cnn\.pt"):
        train_or_load(job, train, None, tmp_path / "ck", torch.device("cpu"), False)


@pytest.mark.parametrize(
    ("init", "message"),
    [
        ({"row": "nowhere"}, r"models\[1\].training.init.row: no row named 'nowhere'"),
        ({"row": "child"}, r"warm starts form a cycle \(child -> child\)"),
        ({"path": "missing.pt"}, r"models\[1\].training.init: file not found: missing.pt"),
        ({"row": "base", "sha256": "0" * 64}, "'sha256' belongs to a 'path' or 'url'"),
        ({"path": "a.pt", "row": "base"}, "exactly one of 'path', 'url' or 'row'"),
    ],
)
def test_bad_warm_starts_are_refused_at_load(write_suite, init, message):
    path = write_suite(suite_dict([trained_row(), trained_row("child", init=init)]))
    with pytest.raises(BenchmarkError, match=message):
        load_suite(path)


def test_a_warm_start_from_an_ensemble_row_is_refused(write_suite):
    ensemble = {**trained_row("pair"), "ensemble": {"seeds": [0, 1]}}
    path = write_suite(suite_dict([ensemble, trained_row("child", init={"row": "pair"})]))
    with pytest.raises(BenchmarkError, match="'pair' has no single set of weights"):
        load_suite(path)
