"""The standard recipe: learns, is deterministic, resumes an interrupted run exactly, and the
engine caches checkpoints by hash."""

from __future__ import annotations

import pytest
import torch

from benchmark.datasets import load_dataset
from models.training import TrainingJob, standard, train_or_load
from models.training.augment import random_crop, random_flip
from models.training.standard import StandardParams, learning_rate
from tests.conftest import interrupt_in_second_epoch

FAST = {
    "epochs": 3,
    "batch_size": 64,
    "optimizer": "adam",
    "lr": 0.01,
    "weight_decay": 0.0,
    "schedule": "cosine",
    "warmup_epochs": 0,
    "augment": "crop",
    "crop_padding": 1,
}


def job(**params) -> TrainingJob:
    return TrainingJob(
        "small_cnn", {"width": 0.5}, "standard", {**FAST, **params}, {"dataset": "digits"}, seed=5
    )


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), load_dataset("digits", "val")


def test_training_learns_and_is_cached(tmp_path, digits):
    train, val = digits
    model, path = train_or_load(job(), train, val, tmp_path, torch.device("cpu"), progress=False)
    assert standard.accuracy(model, val, torch.device("cpu")) > 70
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert not list(tmp_path.glob("*.state.pt")), "resume state should be removed when done"
    stamp = path.stat().st_mtime_ns
    again, _ = train_or_load(job(), train, val, tmp_path, torch.device("cpu"), progress=False)
    assert path.stat().st_mtime_ns == stamp, "cached checkpoint was retrained"
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def uninterrupted_and_interrupted(tmp_path, digits, monkeypatch):
    """The weights of an uninterrupted training, and the resume state a training killed in
    its second epoch left in ``tmp_path / "b"``."""
    train, val = digits
    reference, _ = train_or_load(job(), train, val, tmp_path / "a", torch.device("cpu"), False)
    interrupt_in_second_epoch(
        monkeypatch,
        lambda: train_or_load(job(), train, val, tmp_path / "b", torch.device("cpu"), False),
    )
    return reference, next((tmp_path / "b").glob("*.state.pt"))


def test_interrupted_training_resumes_to_identical_weights(tmp_path, digits, monkeypatch):
    train, val = digits
    reference, state = uninterrupted_and_interrupted(tmp_path, digits, monkeypatch)
    assert torch.load(state, weights_only=True)["epoch"] == 1
    resumed, _ = train_or_load(job(), train, val, tmp_path / "b", torch.device("cpu"), False)
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_cache_key_changes_with_recipe_params_and_seed():
    assert job().key() == job().key()
    assert job(lr=0.001).key() != job().key()
    assert job(epochs=3).key() == job().key()  # explicit value equal to the one in FAST
    other_seed = TrainingJob(
        "small_cnn", {"width": 0.5}, "standard", FAST, {"dataset": "digits"}, 6
    )
    assert other_seed.key() != job().key()


def test_learning_rate_schedules():
    step = StandardParams(lr=0.1, warmup_epochs=1, milestones=(60, 130, 160), gamma=0.2)
    assert learning_rate(step, 0.5) == pytest.approx(0.1 * 0.501)
    assert learning_rate(step, 1) == pytest.approx(0.1)
    assert learning_rate(step, 60) == pytest.approx(0.02)
    assert learning_rate(step, 165) == pytest.approx(0.1 * 0.2**3)
    cosine = StandardParams(lr=0.1, epochs=10, warmup_epochs=0, schedule="cosine")
    assert learning_rate(cosine, 0) == pytest.approx(0.1)
    assert learning_rate(cosine, 5) == pytest.approx(0.05)
    assert learning_rate(cosine, 10) == pytest.approx(0.0)


def test_augmentations_shift_and_flip_images():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    cropped = random_crop(x, 1, g)
    assert cropped.shape == x.shape
    for i in range(2):
        # every crop equals the zero-padded image at some offset
        padded = torch.nn.functional.pad(x[i], (1, 1, 1, 1))
        windows = [padded[:, dy : dy + 4, dx : dx + 4] for dy in range(3) for dx in range(3)]
        assert any(torch.equal(cropped[i], w) for w in windows)
    flipped = random_flip(x, torch.Generator().manual_seed(1))
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))


def test_channels_last_training_is_keyed_and_served_as_cached(tmp_path, digits):
    """``training.channels_last``: its own checkpoint key (same seeds), and the model handed
    back is the NCHW model a later run loads from the cache, value for value."""
    from dataclasses import replace

    train, val = digits
    nhwc = replace(job(epochs=1), model_key="resnet20", model_params={"width": 0.25},
                   channels_last=True)  # fmt: skip
    plain = replace(nhwc, channels_last=False)
    assert nhwc.key() != plain.key() and nhwc.seed_key() == plain.seed_key()
    trained, _ = train_or_load(nhwc, train, val, tmp_path, torch.device("cpu"), False)
    assert not trained.channels_last
    assert all(p.is_contiguous() for p in trained.parameters())
    loaded, _ = train_or_load(nhwc, train, val, tmp_path, torch.device("cpu"), False)
    for a, b in zip(trained.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    x = val.x[:16]
    assert torch.equal(trained.eval()(x), loaded.eval()(x))


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s.pop("optimizer"),
        lambda s: s["model"].pop(next(iter(s["model"]))),
        lambda s: s["model"].update({k: torch.zeros(3) for k in list(s["model"])[-1:]}),
        lambda s: s.update(epoch=99),
    ],
    ids=["missing entry", "missing weight", "wrong shape", "epoch out of range"],
)
def test_a_resume_state_that_does_not_fit_is_discarded(
    tmp_path, digits, monkeypatch, caplog, damage
):
    """A state that loads but does not fit the model (a missing entry or weight, a wrong
    shape, an impossible epoch) is reported in one line and training starts over, to the
    same weights as an uninterrupted run, instead of crashing on every rerun."""
    train, val = digits
    reference, path = uninterrupted_and_interrupted(tmp_path, digits, monkeypatch)
    state = torch.load(path, weights_only=True)
    damage(state)
    torch.save(state, path)
    with caplog.at_level("WARNING"):
        again, _ = train_or_load(job(), train, val, tmp_path / "b", torch.device("cpu"), False)
    assert "training from the start" in caplog.text
    for a, b in zip(reference.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
