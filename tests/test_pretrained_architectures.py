"""Published architectures: every shared pretrained checkpoint loads strictly into its registry
model, and with the checkpoint's own input normalization the models reproduce the accuracies
their authors measured (exact counts on the full test sets).

The checkpoints and datasets live in ``../shared/data`` beside the project, never inside it;
those tests skip when it is absent. The random-init tests of the option-A ResNets and of the
lazily sized heads need no data.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark.datasets import load_dataset
from benchmark.datasets.base import DataInfo
from benchmark.datasets.cifar10 import CIFAR10_INFO
from benchmark.datasets.digits import DIGITS_INFO
from benchmark.errors import BenchmarkError
from models import build_model, load_checkpoint
from models.resnet import HeResNet, ZeroPadShortcut

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WEIGHTS = DATA / "weights"
needs_data = pytest.mark.skipif(
    not WEIGHTS.is_dir(),
    reason=f"../shared/data is absent ({DATA}): the real checkpoints and datasets live there",
)


def _info(mean: tuple[float, ...], std: tuple[float, ...], channels: int = 3) -> DataInfo:
    size = (32, 32) if channels == 3 else (28, 28)
    return DataInfo(num_classes=10, in_channels=channels, image_size=size, mean=mean, std=std)


# Each checkpoint's own normalization (shared/data/README.md, checked against the sources).
AKAMASTER = _info((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CROWN_RESNET = _info((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616))
SDP = _info((0.4914, 0.4824, 0.4467), (0.2471, 0.2435, 0.2616))  # 125.3/123.0/113.9, 63/62.1/66.7
ERAN = _info((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
OVAL = _info((0.485, 0.456, 0.406), (0.225, 0.225, 0.225))
MNIST_RAW = _info((0.0,), (1.0,), channels=1)


@dataclass(frozen=True)
class Case:
    file: str
    key: str
    info: DataInfo
    correct: int | None  # measured correct count on the 10,000 test images (None: stored)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset(self) -> str:
        return "mnist" if self.info.in_channels == 1 else "cifar10"


A = {"shortcut": "A"}
CASES = [
    # akamaster/pytorch_resnet_cifar10: published 91.73 / 92.63 / 93.10 / 93.39 %
    Case("akamaster_resnet20-12fca82f.th", "resnet20", AKAMASTER, 9173, A),
    Case("akamaster_resnet32-d509ac18.th", "resnet32", AKAMASTER, 9263, A),
    Case("akamaster_resnet44-014dd654.th", "resnet44", AKAMASTER, 9310, A),
    Case("akamaster_resnet56-4bfd9763.th", "resnet56", AKAMASTER, 9339, A),
    # alpha-beta-CROWN: compared with the test_acc stored in the file (69.25 / 77.20 %)
    Case("abcrown__cifar10_resnet__resnet2b.pth", "resnet2b", CROWN_RESNET, None),
    Case("abcrown__cifar10_resnet__resnet4b.pth", "resnet4b", CROWN_RESNET, None),
    # no published accuracy: the counts measured here (regression values)
    Case("abcrown__sdp__cifar_cnn_a_adv.model", "cnn_a", SDP, 6563),
    Case("abcrown__sdp__cifar_cnn_a_mix.model", "cnn_a", SDP, 7418),
    Case("abcrown__eran__cifar_conv_small_pgd.pth", "conv_small", ERAN, 6292),
    Case("abcrown__oval__cifar_base.pth", "oval_base", OVAL, 5853),
    Case("abcrown__sdp__mnist_cnn_a_adv.model", "cnn_a", MNIST_RAW, 9633),
    Case("advertorch__mnist_lenet5_clntrained.pt", "lenet5", MNIST_RAW, 9889),
    Case("advertorch__mnist_lenet5_advtrained.pt", "lenet5", MNIST_RAW, 9864),
]
SLOW = {"resnet32", "resnet44", "resnet56"}  # 25-50 s each on 2 shared CPU cores


def _param(case: Case, *, accuracy: bool = False) -> Any:
    marks = [pytest.mark.slow] if accuracy and case.key in SLOW else []
    return pytest.param(case, id=case.file.split(".")[0], marks=marks)


def raw_state(path: Path) -> dict[str, torch.Tensor]:
    """The file's tensors, unwrapped by hand (independently of models.checkpoints)."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if isinstance(obj, list):
        (obj,) = obj
    return {k.removeprefix("module."): v for k, v in obj.items()}


def loaded(case: Case) -> torch.nn.Module:
    model = build_model(case.key, case.params, case.info)
    load_checkpoint(model, WEIGHTS / case.file)
    return model.eval()


@pytest.fixture(autouse=True)
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(min(before, 2))
    yield
    torch.set_num_threads(before)


# --- every checkpoint loads strictly -----------------------------------------------------


@needs_data
def test_every_shared_checkpoint_has_a_case():
    files = {p.name for p in WEIGHTS.iterdir() if not p.name.startswith("LICENSE")}
    assert files == {case.file for case in CASES}


@needs_data
@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_checkpoint_loads_strictly_into_its_registry_model(case):
    model = loaded(case)
    state = raw_state(WEIGHTS / case.file)
    own = model.backbone.state_dict()
    for key, tensor in state.items():
        assert torch.equal(own[key], tensor), key
    # strict: the backbone has exactly the file's parameters and buffers (BatchNorm's step
    # counter, absent from older files, is filled in by PyTorch)
    model.backbone.load_state_dict(state, strict=True)
    x = torch.rand(2, case.info.in_channels, *case.info.image_size)
    with torch.no_grad():
        assert model(x).shape == (2, 10)


# --- accuracies ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cifar_test() -> tuple[torch.Tensor, torch.Tensor]:
    data = load_dataset("cifar10", "test", root=str(DATA))
    return data.x, data.y


def _idx(path: Path, magic: int, header_ints: int) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    header = np.frombuffer(raw, ">u4", count=header_ints)
    assert header[0] == magic, f"{path}: not an IDX file"
    return np.frombuffer(raw, np.uint8, offset=4 * header_ints).reshape(header[1:])


@pytest.fixture(scope="module")
def mnist_test() -> tuple[torch.Tensor, torch.Tensor]:
    images = _idx(DATA / "mnist" / "t10k-images-idx3-ubyte.gz", 2051, 4)
    labels = _idx(DATA / "mnist" / "t10k-labels-idx1-ubyte.gz", 2049, 2)
    x = torch.from_numpy(images.copy()).float().div_(255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def count_correct(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(y), 500):
            logits = model(x[start : start + 500])
            correct += int((logits.argmax(1) == y[start : start + 500]).sum())
    return correct


@needs_data
@pytest.mark.parametrize("case", [_param(c, accuracy=True) for c in CASES])
def test_checkpoint_reproduces_its_test_accuracy(case, request):
    x, y = request.getfixturevalue("mnist_test" if case.dataset == "mnist" else "cifar_test")
    assert len(y) == 10_000
    correct = count_correct(loaded(case), x, y)
    if case.correct is None:
        stored = torch.load(WEIGHTS / case.file, map_location="cpu", weights_only=True)
        assert abs(100 * correct / len(y) - 100 * stored["test_acc"]) <= 0.01
    else:
        assert correct == case.correct


# --- option-A ResNets from random init (no data needed) ---------------------------------------

# akamaster's README: parameter counts of its networks (10 classes)
AKAMASTER_PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}


@pytest.mark.parametrize("depth", [20, 32])
@pytest.mark.parametrize("width", [1.0, 0.5])
def test_shortcut_a_forward_and_akamaster_key_names(depth, width):
    torch.manual_seed(0)
    model = build_model(f"resnet{depth}", {"shortcut": "A", "width": width}, CIFAR10_INFO)
    assert isinstance(model.backbone, HeResNet)
    logits = model.train()(torch.rand(4, 3, 32, 32))
    assert logits.shape == (4, 10) and torch.isfinite(logits).all()
    blocks = (depth - 2) // 6
    keys = set(model.backbone.state_dict())
    c1, c3 = round(16 * width), round(64 * width)
    expected = {"conv1.weight", "bn1.running_var", "layer1.0.conv1.weight", "linear.weight"}
    assert expected | {f"layer3.{blocks - 1}.bn2.weight"} <= keys
    assert f"layer3.{blocks}.conv1.weight" not in keys
    assert not any("shortcut" in k for k in keys)  # option A has no parameters
    assert model.backbone.conv1.out_channels == c1 and model.backbone.linear.in_features == c3
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert convs + 1 == depth  # conv layers + the linear layer
    if width == 1.0:
        assert sum(p.numel() for p in model.parameters()) == AKAMASTER_PARAMS[depth]


@pytest.mark.parametrize("depth", [44, 56, 110])
def test_shortcut_a_parameter_counts_match_akamaster(depth):
    model = build_model(f"resnet{depth}", {"shortcut": "A"}, CIFAR10_INFO)
    assert sum(p.numel() for p in model.parameters()) == AKAMASTER_PARAMS[depth]


def test_zero_pad_shortcut_is_akamasters_lambda_and_handles_odd_widths():
    x = torch.randn(2, 16, 8, 8)
    expected = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 32 // 4, 32 // 4), "constant", 0)
    assert torch.equal(ZeroPadShortcut(16, 32, 2)(x), expected)
    for in_planes, planes in [(5, 10), (10, 19), (1, 1), (8, 16)]:
        out = ZeroPadShortcut(in_planes, planes, 2)(torch.randn(1, in_planes, 6, 6))
        assert out.shape == (1, planes, 3, 3)
    model = build_model("resnet20", {"shortcut": "A", "width": 0.3}, CIFAR10_INFO)  # 5/10/19
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_shortcut_a_uses_akamasters_kaiming_normal_init():
    torch.manual_seed(0)
    model = build_model("resnet56", {"shortcut": "A"}, CIFAR10_INFO)
    weights = torch.cat([block.conv2.weight.flatten() for block in model.backbone.layer3])
    assert weights.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.02)  # fan-in


def test_shortcut_b_is_the_default_and_keeps_the_old_key_names():
    torch.manual_seed(0)
    default = build_model("resnet20", {}, CIFAR10_INFO)
    torch.manual_seed(0)
    explicit = build_model("resnet20", {"shortcut": "B", "width": 1.0}, CIFAR10_INFO)
    keys = list(default.backbone.state_dict())
    assert keys == list(explicit.backbone.state_dict())
    assert all(
        torch.equal(a, b)
        for a, b in zip(default.state_dict().values(), explicit.state_dict().values(), strict=True)
    )
    assert {"stem.0.weight", "stages.1.0.shortcut.0.weight", "stages.2.2.bn2.weight"} <= set(keys)
    assert "fc.weight" in keys and "linear.weight" not in keys
    deep = build_model("resnet110", {"width": 0.125}, CIFAR10_INFO)
    deep_keys = set(deep.backbone.state_dict())
    assert "stages.2.17.conv2.weight" in deep_keys and "stages.2.18.conv2.weight" not in deep_keys
    assert "stages.2.0.shortcut.0.weight" in deep_keys


# --- lazily sized heads (no data needed) ---------------------------------------------------


@pytest.mark.parametrize(
    ("key", "info", "layer", "shape"),
    [
        ("cnn_a", CIFAR10_INFO, "5", (100, 2048)),
        ("cnn_a", MNIST_RAW, "5", (100, 1568)),
        ("conv_small", CIFAR10_INFO, "5", (100, 1152)),
        ("oval_base", CIFAR10_INFO, "5", (100, 1024)),
        ("resnet2b", CIFAR10_INFO, "linear1", (100, 1024)),
        ("resnet4b", CIFAR10_INFO, "linear1", (100, 512)),
        ("lenet5", MNIST_RAW, "linear1", (200, 3136)),
        ("cnn_a", DIGITS_INFO, "5", (100, 128)),
    ],
)
def test_first_dense_layer_is_sized_from_the_image(key, info, layer, shape):
    model = build_model(key, {}, info)
    assert tuple(model.backbone.state_dict()[f"{layer}.weight"].shape) == shape


def test_conv_small_refuses_too_small_images_in_one_line():
    with pytest.raises(BenchmarkError, match="at least 10x10 pixels, got 8x8") as info:
        build_model("conv_small", {}, DIGITS_INFO)
    assert "\n" not in str(info.value)
