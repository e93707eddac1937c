"""Model registry, the model contract (normalization inside, logits out) and checkpoints."""

from __future__ import annotations

import os

import pytest
import torch

from benchmark.datasets.cifar10 import CIFAR10_INFO
from benchmark.datasets.digits import DIGITS_INFO
from benchmark.errors import BenchmarkError
from models import MODELS, build_model, load_checkpoint, register_model, save_checkpoint


@pytest.mark.parametrize("key", ["small_cnn", "resnet20", "resnet18"])
@pytest.mark.parametrize("info", [DIGITS_INFO, CIFAR10_INFO], ids=["digits", "cifar"])
def test_builders_produce_logits_for_each_dataset(key, info):
    torch.manual_seed(0)
    model = build_model(key, {"width": 0.25}, info).eval()
    x = torch.rand(4, info.in_channels, *info.image_size)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (4, info.num_classes)
    assert not torch.allclose(out.softmax(1).sum(1), out.sum(1)), "outputs look like probabilities"


def test_normalization_lives_inside_the_model():
    model = build_model("small_cnn", {}, CIFAR10_INFO).eval()
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor(CIFAR10_INFO.mean).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_INFO.std).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(model(x), model.backbone((x - mean) / std))
    assert "mean" in model.state_dict() and "std" in model.state_dict()


def test_cifar_resnet18_matches_reference_architecture():
    model = build_model("resnet18", {}, CIFAR10_INFO)
    # kuangliu/pytorch-cifar ResNet18 (the papers' backbone) has 11,173,962 parameters
    assert sum(p.numel() for p in model.parameters()) == 11_173_962
    stem = model.backbone.stem[0]
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    assert len(model.backbone.stages) == 4


def test_resnet20_depth_and_width():
    model = build_model("resnet20", {}, CIFAR10_INFO)
    convs = [
        m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)
    ]
    assert len(convs) + 1 == 20  # 19 3x3 convolutions + the linear head
    assert [s[0].conv1.out_channels for s in model.backbone.stages] == [16, 32, 64]
    narrow = build_model("resnet20", {"width": 0.5}, CIFAR10_INFO)
    assert [s[0].conv1.out_channels for s in narrow.backbone.stages] == [8, 16, 32]


def test_registering_a_model_is_one_decorator():
    @register_model("test_linear", "a linear probe used by this test")
    def test_linear(num_classes: int, in_channels: int, *, hidden: int = 4) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(num_classes))

    entry = MODELS.get("test_linear")
    assert entry.parameter_table() == [("hidden", "int", "4")]
    assert build_model("test_linear", {"hidden": 2}, DIGITS_INFO)(torch.rand(1, 1, 8, 8)).shape == (
        1,
        10,
    )


def test_checkpoint_roundtrip_and_backbone_only_weights(tmp_path):
    torch.manual_seed(0)
    source = build_model("resnet20", {"width": 0.25}, CIFAR10_INFO).eval()
    path = tmp_path / "w.pt"
    sha = save_checkpoint(source, path)
    x = torch.rand(2, 3, 32, 32)
    for state_path in (path, tmp_path / "backbone.pt", tmp_path / "wrapped.pt"):
        if state_path.name == "backbone.pt":
            torch.save(source.backbone.state_dict(), state_path)
        elif state_path.name == "wrapped.pt":
            torch.save({"state_dict": source.state_dict(), "epoch": 3}, state_path)
        torch.manual_seed(1)
        target = build_model("resnet20", {"width": 0.25}, CIFAR10_INFO).eval()
        load_checkpoint(target, state_path, expected_sha256=sha if state_path == path else None)
        with torch.no_grad():
            assert torch.equal(target(x), source(x))


def test_tampered_checkpoint_is_detected(tmp_path):
    model = build_model("small_cnn", {"width": 0.25}, DIGITS_INFO)
    path = tmp_path / "w.pt"
    sha = save_checkpoint(model, path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(BenchmarkError, match="hash mismatch"):
        load_checkpoint(model, path, expected_sha256=sha)
    with pytest.raises(BenchmarkError, match="cannot read checkpoint"):
        load_checkpoint(model, path)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"weight": _Exploit()}, path)
    model = build_model("small_cnn", {"width": 0.25}, DIGITS_INFO)
    with pytest.raises(BenchmarkError, match="refused to load: not a weights-only checkpoint"):
        load_checkpoint(model, path)


def test_wrong_architecture_checkpoint_names_keys(tmp_path):
    path = tmp_path / "w.pt"
    save_checkpoint(build_model("small_cnn", {"width": 0.25}, DIGITS_INFO), path)
    target = build_model("resnet20", {"width": 0.25}, DIGITS_INFO)
    with pytest.raises(BenchmarkError, match="weights do not match the model"):
        load_checkpoint(target, path)


def test_wrong_width_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "w.pt"
    save_checkpoint(build_model("resnet20", {"width": 0.5}, DIGITS_INFO), path)
    target = build_model("resnet20", {"width": 0.25}, DIGITS_INFO)
    expected = r"weights do not match the model.*shape mismatch.*checkpoint \(.*vs model \("
    with pytest.raises(BenchmarkError, match=expected):
        load_checkpoint(target, path)


def test_added_builder_params_at_their_old_value_keep_cache_keys():
    """resnet20 gained ``shortcut`` (always "B" before): suites that do not set it, or set
    "B", keep their checkpoints and results; "A" is another network with another key."""
    from models.registry import key_params

    assert key_params("resnet20", {"width": 0.5}) == {"width": 0.5}
    assert key_params("resnet20", {"width": 0.5, "shortcut": "B"}) == {"width": 0.5}
    assert key_params("resnet20", {"shortcut": "A"}) == {"width": 1.0, "shortcut": "A"}
    assert key_params("resnet56", {}) == {"width": 1.0, "shortcut": "B"}  # new: no old keys
